//! One object made of byte ranges of others, assembled inside S3: ranges
//! of 5 MiB and more are copied by `UploadPartCopy` (the bytes never pass
//! through the function); only what is needed to bring a part up to S3's
//! 5 MiB minimum is read and uploaded. The merge of a fanned-out
//! preparation builds its dataset files this way.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{BlobError, Blobs};

/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest copied range per part.
pub const MAX_COPY_PART: u64 = 5 * 1024 * 1024 * 1024;
/// S3's most parts per object.
pub const MAX_PARTS: usize = 10_000;
/// Parts copied or uploaded at once.
const CONCURRENCY: usize = 8;
/// Two ranges of one source closer than this are read in one GET, the gap
/// read and dropped: cheaper than a request per example of a sparse sample.
const READ_GAP: u64 = 256 * 1024;

/// A byte range (end exclusive) of `sources[source]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub source: usize,
    pub start: u64,
    pub end: u64,
}

impl Piece {
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// One part of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Copied inside S3.
    Copy(Piece),
    /// Read through the function and uploaded (at most [`MIN_PART`]).
    Upload(Vec<Piece>),
}

/// The parts that make `pieces`, in order: every part but the last is at
/// least [`MIN_PART`]; a piece is copied when it can be, and read only to
/// fill a part up to the minimum. `None` when the object would need more
/// than S3's 10,000 parts.
pub fn plan_parts(pieces: &[Piece]) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    let mut pending: Vec<Piece> = Vec::new();
    let mut pending_len = 0u64;
    for piece in pieces {
        let mut rest = *piece;
        while rest.len() > 0 {
            if pending_len == 0 && rest.len() >= MIN_PART {
                let take = rest.len().min(MAX_COPY_PART);
                parts.push(Part::Copy(Piece {
                    end: rest.start + take,
                    ..rest
                }));
                rest.start += take;
            } else {
                let take = rest.len().min(MIN_PART - pending_len);
                pending.push(Piece {
                    end: rest.start + take,
                    ..rest
                });
                pending_len += take;
                rest.start += take;
                if pending_len == MIN_PART {
                    parts.push(Part::Upload(std::mem::take(&mut pending)));
                    pending_len = 0;
                }
            }
        }
    }
    if !pending.is_empty() {
        parts.push(Part::Upload(pending));
    }
    (parts.len() <= MAX_PARTS).then_some(parts)
}

/// What a composed object holds, read back once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Blobs {
    /// Writes `key` from `pieces` of `sources` (keys in this bucket), then
    /// reads it back once for its sha256: S3 keeps no SHA-256 of a whole
    /// multipart object, and the dataset's record carries one.
    pub async fn compose(
        &self,
        key: &str,
        content_type: &str,
        sources: &[String],
        pieces: &[Piece],
    ) -> Result<Composed, BlobError> {
        let parts = plan_parts(pieces).ok_or_else(|| {
            BlobError::s3(
                "UploadPartCopy",
                key,
                std::io::Error::other("the object would need more than 10,000 parts"),
            )
        })?;
        if parts.is_empty() {
            self.put_bytes(key, Vec::new(), content_type).await?;
        } else {
            self.compose_parts(key, content_type, sources, parts)
                .await?;
        }
        self.sha256(key).await
    }

    async fn compose_parts(
        &self,
        key: &str,
        content_type: &str,
        sources: &[String],
        parts: Vec<Part>,
    ) -> Result<(), BlobError> {
        let created = self
            .client()
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| BlobError::s3("CreateMultipartUpload", key, e))?;
        let upload_id = created.upload_id.unwrap_or_default();
        let result: Result<Vec<CompletedPart>, BlobError> =
            stream::iter(parts.into_iter().enumerate())
                .map(|(i, part)| self.send_part(key, &upload_id, i as i32 + 1, sources, part))
                .buffered(CONCURRENCY)
                .try_collect()
                .await;
        let completed = match result {
            Ok(parts) => parts,
            Err(e) => {
                self.abort_upload(key, &upload_id).await;
                return Err(e);
            }
        };
        let done = self
            .client()
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = done {
            self.abort_upload(key, &upload_id).await;
            return Err(BlobError::s3("CompleteMultipartUpload", key, e));
        }
        Ok(())
    }

    async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        sources: &[String],
        part: Part,
    ) -> Result<CompletedPart, BlobError> {
        let e_tag = match part {
            Part::Copy(piece) => {
                let source = source_key(sources, piece.source, key)?;
                let copied = self
                    .client()
                    .upload_part_copy()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(format!("{}/{source}", self.bucket()))
                    .copy_source_range(format!("bytes={}-{}", piece.start, piece.end - 1))
                    .send()
                    .await
                    .map_err(|e| BlobError::s3("UploadPartCopy", source, e))?;
                copied.copy_part_result.and_then(|r| r.e_tag)
            }
            Part::Upload(pieces) => {
                let body = self.read_pieces(sources, &pieces, key).await?;
                self.client()
                    .upload_part()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| BlobError::s3("UploadPart", key, e))?
                    .e_tag
            }
        };
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(e_tag)
            .build())
    }

    /// The bytes of `pieces`, in order; ranges of one source close to each
    /// other are fetched in one GET.
    async fn read_pieces(
        &self,
        sources: &[String],
        pieces: &[Piece],
        key: &str,
    ) -> Result<Vec<u8>, BlobError> {
        let mut body = Vec::with_capacity(pieces.iter().map(|p| p.len() as usize).sum());
        let mut i = 0;
        while i < pieces.len() {
            let first = pieces[i];
            let mut j = i + 1;
            while j < pieces.len()
                && pieces[j].source == first.source
                && pieces[j].start >= pieces[j - 1].end
                && pieces[j].start - pieces[j - 1].end <= READ_GAP
            {
                j += 1;
            }
            let source = source_key(sources, first.source, key)?;
            let range = first.start..pieces[j - 1].end;
            // One GET streamed through: the pieces kept, the gaps dropped,
            // so memory is the part's bytes whatever the gaps.
            let mut reader = self.open_raw(source, Some(range.clone())).await?;
            let mut at = range.start;
            for piece in &pieces[i..j] {
                let gap = piece.start - at;
                let skipped = tokio::io::copy(&mut (&mut reader).take(gap), &mut tokio::io::sink())
                    .await
                    .map_err(|e| BlobError::s3("GetObject", source, e))?;
                let from = body.len();
                body.resize(from + piece.len() as usize, 0);
                let read = reader.read_exact(&mut body[from..]).await;
                if skipped != gap || read.is_err() {
                    return Err(BlobError::s3(
                        "GetObject",
                        source,
                        std::io::Error::other("the object is shorter than its index says"),
                    ));
                }
                at = piece.end;
            }
            i = j;
        }
        Ok(body)
    }

    /// The object's size and sha256, streamed in constant memory.
    pub async fn sha256(&self, key: &str) -> Result<Composed, BlobError> {
        let mut reader = self.open_raw(key, None).await?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut chunk = vec![0u8; 1024 * 1024];
        loop {
            let n = reader
                .read(&mut chunk)
                .await
                .map_err(|e| BlobError::s3("GetObject", key, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
            bytes += n as u64;
        }
        Ok(Composed {
            key: key.to_owned(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) {
        let result = self
            .client()
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(key, error = %crate::telemetry::chain(&e), "could not abort a failed multipart upload");
        }
    }
}

fn source_key<'a>(sources: &'a [String], i: usize, key: &str) -> Result<&'a str, BlobError> {
    sources.get(i).map(String::as_str).ok_or_else(|| {
        BlobError::s3(
            "UploadPartCopy",
            key,
            std::io::Error::other(format!("piece names source {i} of {}", sources.len())),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1024 * 1024;

    fn piece(source: usize, start: u64, len: u64) -> Piece {
        Piece {
            source,
            start,
            end: start + len,
        }
    }

    #[test]
    fn whole_large_files_are_copied_and_nothing_is_read() {
        let parts = plan_parts(&[piece(0, 0, 300 * MIB), piece(1, 0, 6 * MIB)]).unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Copy(piece(0, 0, 300 * MIB)),
                Part::Copy(piece(1, 0, 6 * MIB))
            ]
        );
    }

    #[test]
    fn a_small_range_between_large_ones_borrows_from_the_next_to_reach_the_minimum() {
        let parts = plan_parts(&[
            piece(0, 0, 20 * MIB),
            piece(1, 0, MIB),
            piece(2, 0, 20 * MIB),
        ])
        .unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Copy(piece(0, 0, 20 * MIB)),
                Part::Upload(vec![piece(1, 0, MIB), piece(2, 0, 4 * MIB)]),
                Part::Copy(piece(2, 4 * MIB, 16 * MIB)),
            ]
        );
    }

    #[test]
    fn nothing_to_write_makes_no_part() {
        assert_eq!(plan_parts(&[]), Some(vec![]));
    }

    proptest! {
        #[test]
        fn parts_cover_the_pieces_in_order_and_all_but_the_last_meet_s3s_minimum(
            lens in proptest::collection::vec(0u64..12 * MIB, 0..30)
        ) {
            let pieces: Vec<Piece> = lens
                .iter()
                .enumerate()
                .map(|(i, &len)| piece(i % 3, (i as u64) * 16 * MIB, len))
                .collect();
            let parts = plan_parts(&pieces).unwrap();
            // The bytes the parts name, flattened, are the pieces' bytes.
            let flat = |ps: &[Piece]| -> Vec<(usize, u64, u64)> {
                let mut out: Vec<(usize, u64, u64)> = Vec::new();
                for p in ps.iter().filter(|p| p.len() > 0) {
                    match out.last_mut() {
                        Some(last) if last.0 == p.source && last.2 == p.start => last.2 = p.end,
                        _ => out.push((p.source, p.start, p.end)),
                    }
                }
                out
            };
            let named: Vec<Piece> = parts
                .iter()
                .flat_map(|p| match p {
                    Part::Copy(c) => vec![*c],
                    Part::Upload(u) => u.clone(),
                })
                .collect();
            prop_assert_eq!(flat(&named), flat(&pieces));
            let sizes: Vec<u64> = parts
                .iter()
                .map(|p| match p {
                    Part::Copy(c) => c.len(),
                    Part::Upload(u) => u.iter().map(Piece::len).sum(),
                })
                .collect();
            if let Some((_, all_but_last)) = sizes.split_last() {
                prop_assert!(all_but_last.iter().all(|&s| s >= MIN_PART), "{sizes:?}");
            }
            // Nothing is read that could have been copied: an upload part
            // never exceeds the minimum.
            for p in &parts {
                if let Part::Upload(u) = p {
                    prop_assert!(u.iter().map(Piece::len).sum::<u64>() <= MIN_PART);
                }
            }
        }
    }
}
