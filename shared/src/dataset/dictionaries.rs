//! The BPE dictionaries behind [`super::tokens`], built from OpenAI's
//! vocabularies (embedded compact, 1.5 MB) the first time an encoding is
//! needed, instead of linked in prebuilt.
//!
//! `bpe-openai` embeds both dictionaries already built: 47 MB of every
//! binary that can count tokens (the monitor, the webhook), against 8 MB
//! for a whole function (issue 8). Building one here costs about a second
//! (cl100k) or two (o200k) on first use, once per container, and only in
//! a container that prepares a dataset: most monitor ticks never count a
//! token. The command-line tool, which counts tokens on every run and has
//! no size budget, installs the prebuilt ones with [`use_prebuilt`].
//!
//! The vocabularies are `bpe-openai` 0.3.2's `.tiktoken` files, rewritten
//! by `tools/dictionaries/compact.py` as length-prefixed token bytes in
//! rank order, zlib-compressed: the ranks are implied and base64 is gone,
//! 1.5 MB instead of 2.4 MB gzipped. The pre-tokenizer patterns are
//! `bpe-openai`'s (MIT), whose statics are private; a test checks that
//! both ways give the same counts.

use std::io::Read;
use std::sync::OnceLock;

use bpe_openai::Tokenizer;
use bpe_openai::byte_pair_encoding::BytePairEncoding;

use super::tokens::Encoding;

/// OpenAI's published vocabularies, compacted (see the module's doc).
const CL100K_BASE: &[u8] = include_bytes!("../../data/cl100k_base.tokens.zlib");
const O200K_BASE: &[u8] = include_bytes!("../../data/o200k_base.tokens.zlib");
/// Tokens in each vocabulary: a file that decodes to another count is cut.
const CL100K_TOKENS: usize = 100_256;
const O200K_TOKENS: usize = 199_998;

/// The hash factor `bpe-openai` builds both dictionaries with (collision
/// free for them), so no search is needed at start.
const HASH_FACTOR: u64 = 17_846_336_922_010_275_747;

const CL100K_PATTERN: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+$";
const O200K_PATTERN: &str = concat!(
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|\\p{N}{1,3}",
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*",
    "|\\s*[\\r\\n]+",
    "|\\s+$",
);
/// `\s+(?!\S)` as `bpe-openai` rewrites it: a one-character look-ahead.
const WHITESPACE_LOOKAHEAD: &str = "\\s+\\s";
const WHITESPACE: &str = "\\s+";

static PREBUILT: OnceLock<fn(Encoding) -> &'static Tokenizer> = OnceLock::new();
static CL100K: OnceLock<Tokenizer> = OnceLock::new();
static O200K: OnceLock<Tokenizer> = OnceLock::new();

/// The tokenizer of `encoding`: the prebuilt one if installed, else built
/// from the embedded file on the first call.
pub fn tokenizer(encoding: Encoding) -> &'static Tokenizer {
    if let Some(prebuilt) = PREBUILT.get() {
        return prebuilt(encoding);
    }
    match encoding {
        Encoding::Cl100kBase => CL100K.get_or_init(|| build(encoding)),
        Encoding::O200kBase => O200K.get_or_init(|| build(encoding)),
    }
}

/// Uses `bpe-openai`'s prebuilt dictionaries from now on (call before the
/// first count). Linking this in is what adds their 47 MB to a binary.
pub fn use_prebuilt() {
    let _ = PREBUILT.set(prebuilt);
}

fn prebuilt(encoding: Encoding) -> &'static Tokenizer {
    match encoding {
        Encoding::Cl100kBase => bpe_openai::cl100k_base(),
        Encoding::O200kBase => bpe_openai::o200k_base(),
    }
}

/// Builds the tokenizer from the embedded file. The inputs are compiled in
/// and covered by the tests, so a failure here is a build defect, not a
/// runtime condition: it panics like `bpe-openai`'s own statics.
fn build(encoding: Encoding) -> Tokenizer {
    let started = std::time::Instant::now();
    let (compact, count, pattern) = match encoding {
        Encoding::Cl100kBase => (CL100K_BASE, CL100K_TOKENS, CL100K_PATTERN),
        Encoding::O200kBase => (O200K_BASE, O200K_TOKENS, O200K_PATTERN),
    };
    #[allow(clippy::expect_used)]
    let tokens = read_compact(compact, count).expect("the embedded vocabulary is valid");
    let bpe = BytePairEncoding::from_dictionary(tokens, Some(HASH_FACTOR));
    #[allow(clippy::expect_used)]
    let tokenizer = Tokenizer::new_lookahead(
        bpe,
        &[
            (pattern, false),
            (WHITESPACE_LOOKAHEAD, true),
            (WHITESPACE, false),
        ],
        false,
    )
    .expect("the pre-tokenizer patterns compile");
    tracing::info!(
        encoding = encoding.name(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "token dictionary built"
    );
    tokenizer
}

/// The tokens of a compact vocabulary (zlib of `<length byte><bytes>` per
/// token, in rank order), which must hold exactly `count` tokens.
fn read_compact(compact: &[u8], count: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut raw = Vec::with_capacity(compact.len() * 2);
    flate2::read::ZlibDecoder::new(compact)
        .read_to_end(&mut raw)
        .map_err(|e| format!("inflate: {e}"))?;
    let mut tokens = Vec::with_capacity(count);
    let mut rest = raw.as_slice();
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            return Err(format!("token {}: length {len} past the end", tokens.len()));
        }
        let (token, tail) = tail.split_at(len);
        tokens.push(token.to_vec());
        rest = tail;
    }
    if tokens.len() != count {
        return Err(format!("{} tokens, expected {count}", tokens.len()));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that exercises every branch of both patterns: contractions,
    /// case runs, numbers, punctuation runs, newlines and trailing spaces.
    const SAMPLE: &str = "Hello, WORLD! It's 2026-11-25; we'll pay $1,234.56 (10% off).\n\n  \
        naïve café — Ünïcödé ½ ٣ 日本語のテキスト 😀👍  \t\r\n  x/y\\z  CamelCaseWord don'T  ";

    #[test]
    fn built_dictionaries_count_like_the_prebuilt_ones() {
        for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
            let built = build(encoding);
            let prebuilt = prebuilt(encoding);
            assert_eq!(built.bpe.num_tokens(), prebuilt.bpe.num_tokens());
            for text in SAMPLE.split_inclusive(' ').chain([SAMPLE]) {
                assert_eq!(
                    built.count(text),
                    prebuilt.count(text),
                    "{} on {text:?}",
                    encoding.name()
                );
            }
        }
    }

    fn zlib(raw: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(raw).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn a_compact_vocabulary_reads_back_in_rank_order() {
        let tokens = read_compact(&zlib(b"\x01a\x02bc"), 2).unwrap();
        assert_eq!(tokens, vec![b"a".to_vec(), b"bc".to_vec()]);
    }

    #[test]
    fn a_cut_or_miscounted_vocabulary_is_refused() {
        assert_eq!(
            read_compact(&zlib(b"\x01a\x05bc"), 2).unwrap_err(),
            "token 1: length 5 past the end"
        );
        assert_eq!(
            read_compact(&zlib(b"\x01a"), 2).unwrap_err(),
            "1 tokens, expected 2"
        );
    }
}
