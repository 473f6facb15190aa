//! The BPE dictionaries behind [`super::tokens`], built from OpenAI's
//! vocabularies (compact files, 1.5 MB for both) the first time an
//! encoding is needed, instead of linked in prebuilt.
//!
//! Where the vocabularies come from: in Lambda, files in a directory
//! ([`use_directory`]; the prepare function's dictionaries layer, so its
//! binary stays within the 8 MB budget); in tests, tools and the demo, the
//! copies compiled in by [`use_embedded`] (only a binary that calls it links
//! them); in the CLI, `bpe-openai`'s prebuilt dictionaries ([`use_prebuilt`]).
//!
//! `bpe-openai` embeds both dictionaries already built: 47 MB of every
//! binary that can count tokens, against 8 MB for a whole function (issue
//! 8). Building one here costs about a second (cl100k) or two (o200k) on
//! first use, once per container, and only in a container that prepares a
//! dataset. The command-line tool, which counts tokens on every run and
//! has no size budget, installs the prebuilt ones.
//!
//! The vocabularies are `bpe-openai` 0.3.2's `.tiktoken` files, rewritten
//! by `tools/dictionaries/compact.py` as length-prefixed token bytes in
//! rank order, zlib-compressed: the ranks are implied and base64 is gone,
//! 1.5 MB instead of 2.4 MB gzipped. The pre-tokenizer patterns are
//! `bpe-openai`'s (MIT), whose statics are private; a test checks that
//! both ways give the same counts.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bpe_openai::Tokenizer;
use bpe_openai::byte_pair_encoding::BytePairEncoding;

use super::tokens::Encoding;

/// OpenAI's published vocabularies, compacted (see the module's doc), as
/// [`use_embedded`] installs them.
fn embedded(encoding: Encoding) -> &'static [u8] {
    match encoding {
        Encoding::Cl100kBase => include_bytes!("../../data/cl100k_base.tokens.zlib"),
        Encoding::O200kBase => include_bytes!("../../data/o200k_base.tokens.zlib"),
    }
}
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
static EMBEDDED: OnceLock<fn(Encoding) -> &'static [u8]> = OnceLock::new();
static DIRECTORY: OnceLock<PathBuf> = OnceLock::new();
static CL100K: OnceLock<Tokenizer> = OnceLock::new();
static O200K: OnceLock<Tokenizer> = OnceLock::new();

/// A vocabulary that could not be had: the run's preparation fails with
/// this (and is retried on later ticks), never the process.
#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    #[error(
        "the {encoding} token vocabulary could not be read from {path}: {source} \
         (the prepare function needs the dictionaries layer, or FINETUNE_DICTIONARY_DIR)"
    )]
    Read {
        encoding: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {encoding} token vocabulary at {path} is damaged: {reason}")]
    Damaged {
        encoding: &'static str,
        path: String,
        reason: String,
    },
    /// The pre-tokenizer's patterns did not compile (a build bug).
    #[error("the {encoding} pre-tokenizer patterns do not compile: {reason}")]
    Patterns {
        encoding: &'static str,
        reason: String,
    },
}

/// The tokenizer of `encoding`: the prebuilt one if installed, else built
/// on the first call from the embedded vocabulary, if installed, or from
/// the file in the vocabulary directory. A failed build is not kept: the
/// next call tries again.
pub fn tokenizer(encoding: Encoding) -> Result<&'static Tokenizer, DictionaryError> {
    if let Some(prebuilt) = PREBUILT.get() {
        return Ok(prebuilt(encoding));
    }
    let cell = match encoding {
        Encoding::Cl100kBase => &CL100K,
        Encoding::O200kBase => &O200K,
    };
    if let Some(tokenizer) = cell.get() {
        return Ok(tokenizer);
    }
    let built = build(encoding)?;
    Ok(cell.get_or_init(|| built))
}

/// Builds from the vocabularies compiled into this binary from now on
/// (tests, the demo, tools). Linking this in adds their 1.5 MB.
pub fn use_embedded() {
    let _ = EMBEDDED.set(embedded);
}

/// Reads the vocabulary files from `dir` (the prepare function: its
/// dictionaries layer). Without a call, `/opt`.
pub fn use_directory(dir: &Path) {
    let _ = DIRECTORY.set(dir.to_path_buf());
}

/// The compact vocabulary of `encoding`, and where it came from.
fn vocabulary(encoding: Encoding) -> Result<(Cow<'static, [u8]>, String), DictionaryError> {
    if let Some(embedded) = EMBEDDED.get() {
        return Ok((Cow::Borrowed(embedded(encoding)), "(embedded)".to_owned()));
    }
    // The unit tests of this crate count tokens without an installer.
    if cfg!(test) {
        return Ok((Cow::Borrowed(embedded(encoding)), "(embedded)".to_owned()));
    }
    let dir = DIRECTORY.get().map_or(Path::new("/opt"), PathBuf::as_path);
    read_vocabulary(dir, encoding)
}

/// `<dir>/<encoding>.tokens.zlib`, and its path for messages.
fn read_vocabulary(
    dir: &Path,
    encoding: Encoding,
) -> Result<(Cow<'static, [u8]>, String), DictionaryError> {
    let path = dir.join(format!("{}.tokens.zlib", encoding.name()));
    let shown = path.to_string_lossy().into_owned();
    match std::fs::read(&path) {
        Ok(bytes) => Ok((Cow::Owned(bytes), shown)),
        Err(source) => Err(DictionaryError::Read {
            encoding: encoding.name(),
            path: shown,
            source,
        }),
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

/// Builds the tokenizer of `encoding`. The vocabulary is checked (its token
/// count); the patterns are compiled in and covered by the tests, so their
/// failing to compile is a build defect: it panics like `bpe-openai`'s own
/// statics.
fn build(encoding: Encoding) -> Result<Tokenizer, DictionaryError> {
    let started = std::time::Instant::now();
    let (count, pattern) = match encoding {
        Encoding::Cl100kBase => (CL100K_TOKENS, CL100K_PATTERN),
        Encoding::O200kBase => (O200K_TOKENS, O200K_PATTERN),
    };
    let (compact, path) = vocabulary(encoding)?;
    let tokens = read_compact(&compact, count).map_err(|reason| DictionaryError::Damaged {
        encoding: encoding.name(),
        path,
        reason,
    })?;
    let bpe = BytePairEncoding::from_dictionary(tokens, Some(HASH_FACTOR));
    // The patterns are constants that every test counting tokens compiles,
    // so this fails only on a build bug; it is still an error, not a
    // panic, so the run's preparation fails instead of the container.
    let tokenizer = Tokenizer::new_lookahead(
        bpe,
        &[
            (pattern, false),
            (WHITESPACE_LOOKAHEAD, true),
            (WHITESPACE, false),
        ],
        false,
    )
    .map_err(|e| DictionaryError::Patterns {
        encoding: encoding.name(),
        reason: e.to_string(),
    })?;
    tracing::info!(
        encoding = encoding.name(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "token dictionary built"
    );
    Ok(tokenizer)
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
            let built = build(encoding).unwrap();
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

    #[test]
    fn the_vocabulary_files_are_the_embedded_ones_and_a_missing_one_is_named() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
            let (bytes, _) = read_vocabulary(&data, encoding).unwrap();
            assert_eq!(&bytes[..], embedded(encoding), "{}", encoding.name());
        }
        let err = read_vocabulary(Path::new("/nonexistent/layer"), Encoding::O200kBase)
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the o200k_base token vocabulary could not be read from /nonexistent/layer/o200k_base.tokens.zlib"
            ),
            "{message}"
        );
        assert!(message.contains("FINETUNE_DICTIONARY_DIR"), "{message}");
    }
}
