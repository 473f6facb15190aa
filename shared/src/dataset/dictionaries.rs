//! The BPE dictionaries behind [`super::tokens`], built from OpenAI's
//! `.tiktoken` files (embedded gzipped, 2.4 MB) the first time an encoding
//! is needed, instead of linked in prebuilt.
//!
//! `bpe-openai` embeds both dictionaries already built: 47 MB of every
//! binary that can count tokens (the monitor, the webhook), against 8 MB
//! for a whole function (issue 8). Building one here costs about a second
//! (cl100k) or two (o200k) on first use, once per container, and only in
//! a container that prepares a dataset: most monitor ticks never count a
//! token. The command-line tool, which counts tokens on every run and has
//! no size budget, installs the prebuilt ones with [`use_prebuilt`].
//!
//! The pre-tokenizer patterns are `bpe-openai`'s (MIT), whose statics are
//! private; a test checks that both ways give the same counts.

use std::io::Read;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bpe_openai::Tokenizer;
use bpe_openai::byte_pair_encoding::BytePairEncoding;

use super::tokens::Encoding;

/// OpenAI's published vocabularies, as `bpe-openai` 0.3 ships them.
const CL100K_BASE: &[u8] = include_bytes!("../../data/cl100k_base.tiktoken.gz");
const O200K_BASE: &[u8] = include_bytes!("../../data/o200k_base.tiktoken.gz");

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
    let (gz, pattern) = match encoding {
        Encoding::Cl100kBase => (CL100K_BASE, CL100K_PATTERN),
        Encoding::O200kBase => (O200K_BASE, O200K_PATTERN),
    };
    #[allow(clippy::expect_used)]
    let tokens = read_tiktoken(gz).expect("the embedded .tiktoken file is valid");
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

/// The tokens of a gzipped `.tiktoken` file (`<base64 token> <rank>` per
/// line), in rank order.
fn read_tiktoken(gz: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| format!("gunzip: {e}"))?;
    let mut tokens = Vec::with_capacity(text.len() / 12);
    for (i, line) in text.lines().enumerate() {
        let (token, rank) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: no rank", i + 1))?;
        if rank.parse::<usize>().ok() != Some(i) {
            return Err(format!("line {}: rank {rank} out of order", i + 1));
        }
        tokens.push(
            STANDARD
                .decode(token)
                .map_err(|e| format!("line {}: {e}", i + 1))?,
        );
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

    #[test]
    fn a_tiktoken_file_out_of_order_is_refused() {
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut w = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            w.write_all(b"YQ== 0\nYg== 2\n").unwrap();
            w.finish().unwrap();
        }
        assert_eq!(
            read_tiktoken(&gz).unwrap_err(),
            "line 2: rank 2 out of order"
        );
    }
}
