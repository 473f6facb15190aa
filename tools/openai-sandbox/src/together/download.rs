//! The file `GET /finetune/download` streams: a safetensors-shaped byte
//! stream (8-byte little-endian header length, a JSON header padded to
//! [`HEADER_BYTES`], then one `U8` tensor), every byte derived from the job
//! id, the variant and the step, so two downloads of one checkpoint are
//! byte-identical and a client can check what it stored. Bytes are computed
//! from their offset, never held: a download of tens of MB costs the
//! sandbox one chunk of memory, so a test measuring a client's memory in
//! the same process measures the client.

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The JSON header's padded length (safetensors allows trailing spaces).
pub const HEADER_BYTES: u64 = 512;
/// The smallest file: the length prefix, the header and 8 data bytes.
pub const MIN_BYTES: u64 = 8 + HEADER_BYTES + 8;

/// One downloadable file, described but not materialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterFile {
    prefix: Vec<u8>,
    seed: u64,
    total: u64,
}

impl AdapterFile {
    /// The file for `job_id`'s `variant` (`adapter`, `merged`,
    /// `model_output_path`) at `step`, `size` bytes long (at least
    /// [`MIN_BYTES`]).
    pub fn new(job_id: &str, variant: &str, step: u64, size: u64) -> Self {
        let total = size.max(MIN_BYTES);
        let data_len = total - 8 - HEADER_BYTES;
        let digest = Sha256::digest(format!("{job_id}\n{variant}\n{step}"));
        let mut seed_bytes = [0u8; 8];
        seed_bytes.copy_from_slice(&digest[..8]);
        let header = json!({
            "__metadata__": {
                "format": "pt",
                "fine_tune_id": job_id,
                "variant": variant,
                "step": step.to_string(),
                "source": "openai-sandbox together mode",
            },
            "base_model.model.lora.weight": {
                "dtype": "U8",
                "shape": [data_len],
                "data_offsets": [0, data_len],
            },
        })
        .to_string();
        let mut header = header.into_bytes();
        // Ids are short; a header longer than the pad would only come from
        // an absurd id, and is cut rather than breaking the layout.
        header.resize(HEADER_BYTES as usize, b' ');
        let mut prefix = HEADER_BYTES.to_le_bytes().to_vec();
        prefix.extend_from_slice(&header);
        Self {
            prefix,
            seed: u64::from_le_bytes(seed_bytes),
            total,
        }
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Up to `max` bytes from `offset` (empty at the end).
    pub fn chunk(&self, offset: u64, max: usize) -> Bytes {
        let end = self.total.min(offset.saturating_add(max as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            if let Some(b) = self.prefix.get(at as usize) {
                out.push(*b);
            } else {
                let data_at = at - self.prefix.len() as u64;
                let word = splitmix64(self.seed ^ (data_at / 8));
                out.push(word.to_le_bytes()[(data_at % 8) as usize]);
            }
            at += 1;
        }
        Bytes::from(out)
    }
}

/// A well-mixed 64-bit function of its input (SplitMix64's finaliser):
/// cheap enough in a debug build to stream tens of MB.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(file: &AdapterFile, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let piece = file.chunk(out.len() as u64, chunk);
            if piece.is_empty() {
                return out;
            }
            out.extend_from_slice(&piece);
        }
    }

    #[test]
    fn the_same_job_variant_and_step_give_the_same_bytes_whatever_the_chunking() {
        let a = AdapterFile::new("ft-1", "adapter", 10, 5000);
        let b = AdapterFile::new("ft-1", "adapter", 10, 5000);
        assert_eq!(whole(&a, 64 * 1024), whole(&b, 7));
        assert_eq!(whole(&a, 1000).len(), 5000);
    }

    #[test]
    fn another_job_variant_or_step_gives_other_bytes() {
        let base = whole(&AdapterFile::new("ft-1", "adapter", 10, 4096), 4096);
        for other in [
            AdapterFile::new("ft-2", "adapter", 10, 4096),
            AdapterFile::new("ft-1", "merged", 10, 4096),
            AdapterFile::new("ft-1", "adapter", 5, 4096),
        ] {
            assert_ne!(whole(&other, 4096)[600..], base[600..]);
        }
    }

    #[test]
    fn the_file_reads_as_safetensors_with_one_tensor_filling_the_rest() {
        let file = AdapterFile::new("ft-1", "adapter", 3, 2048);
        let bytes = whole(&file, 100);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(header_len, HEADER_BYTES);
        let header: serde_json::Value =
            serde_json::from_slice(&bytes[8..8 + header_len as usize]).unwrap();
        let offsets = &header["base_model.model.lora.weight"]["data_offsets"];
        assert_eq!(offsets[1].as_u64().unwrap(), 2048 - 8 - HEADER_BYTES);
        assert_eq!(header["__metadata__"]["fine_tune_id"], "ft-1");
    }

    #[test]
    fn a_tiny_size_still_gives_a_whole_file() {
        let file = AdapterFile::new("ft-1", "adapter", 1, 10);
        assert_eq!(file.len(), MIN_BYTES);
        assert_eq!(whole(&file, 3).len() as u64, MIN_BYTES);
    }
}
