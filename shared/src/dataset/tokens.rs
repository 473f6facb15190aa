//! Exact OpenAI token counts, fast enough to check a file at hundreds of MB/s.
//!
//! `bpe-openai` gives tiktoken's exact counts, but its pre-tokenizer regex
//! alone runs at ~60 MB/s here. Both encodings' pre-tokenizer patterns have
//! a property we exploit: a space that follows a non-whitespace character
//! always starts a new piece, and the pieces after it depend only on the
//! text from there on (no alternative can hold a non-space followed by a
//! space, and the only look-ahead, `\s+(?!\S)`, sits inside whitespace
//! runs). So text splits at those spaces into "words" (`hello`, ` world`,
//! ` you?`) whose counts add up exactly, and words repeat heavily in
//! natural language: each distinct word is counted by `bpe-openai` once and
//! then looked up. Exactness against OpenAI's own BPE files is checked in
//! the tests with `tiktoken-rs`.

use super::dictionaries::DictionaryError;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The BPE vocabulary a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GPT-3.5, GPT-4 and older; what OpenAI's published checker hard-codes.
    #[default]
    Cl100kBase,
    /// GPT-4o, GPT-4.1 and later.
    O200kBase,
}

impl Encoding {
    /// The encoding of a model name: GPT-4o and later use o200k_base,
    /// everything older (and anything unknown) cl100k_base.
    pub fn for_model(model: &str) -> Encoding {
        let m = model.strip_prefix("ft:").unwrap_or(model);
        let o200k = ["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4"];
        if o200k.iter().any(|p| m.starts_with(p)) {
            Encoding::O200kBase
        } else {
            Encoding::Cl100kBase
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::O200kBase => "o200k_base",
        }
    }

    pub fn parse(name: &str) -> Option<Encoding> {
        match name {
            "cl100k_base" => Some(Encoding::Cl100kBase),
            "o200k_base" => Some(Encoding::O200kBase),
            _ => None,
        }
    }

    fn tokenizer(self) -> Result<&'static bpe_openai::Tokenizer, DictionaryError> {
        super::dictionaries::tokenizer(self)
    }
}

/// Words longer than this are counted but not remembered: they rarely
/// repeat (URLs, ids, text without spaces) and would only fill the cache.
const MAX_CACHED_WORD: usize = 48;
/// The cache stops taking new words at this size, which bounds its memory
/// (~10 MB) whatever the input size. It is not cleared: by then it holds
/// the frequent words, and clearing would let a flood of one-off words
/// (order numbers, ids) evict them again and again.
const MAX_CACHED_WORDS: usize = 200_000;

/// Counts tokens of one encoding, remembering the count of every short word
/// it has seen. One per thread; not shared.
pub struct TokenCounter {
    encoding: Encoding,
    tokenizer: &'static bpe_openai::Tokenizer,
    /// Words of up to [`SMALL_WORD`] bytes, keyed by [`small_key`]: most
    /// words, looked up without hashing or comparing a byte slice.
    small: FxHashMap<u128, u32>,
    /// The longer words, up to [`MAX_CACHED_WORD`] bytes.
    words: FxHashMap<Box<[u8]>, u32>,
}

/// Words this short are packed, with their length, into one `u128`.
const SMALL_WORD: usize = 15;

/// `word` packed into an integer: its bytes, zero-padded, and its length in
/// the top byte (so `"a"` and `"a\0"` differ). Hashing and comparing it
/// takes a few instructions; a byte-slice key costs a hash loop and a
/// `memcmp` call per lookup, which was 40% of `validate`'s time.
fn small_key(word: &[u8]) -> u128 {
    debug_assert!(word.len() <= SMALL_WORD);
    let mut buf = [0u8; 16];
    for (slot, &b) in buf.iter_mut().zip(word) {
        *slot = b;
    }
    buf[15] = word.len() as u8;
    u128::from_le_bytes(buf)
}

impl TokenCounter {
    /// Fails only when the encoding's vocabulary cannot be had (see
    /// [`super::dictionaries`]).
    pub fn new(encoding: Encoding) -> Result<Self, DictionaryError> {
        Ok(Self {
            encoding,
            tokenizer: encoding.tokenizer()?,
            small: FxHashMap::default(),
            words: FxHashMap::default(),
        })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The number of tokens tiktoken's `encode_ordinary` gives for `text`.
    pub fn count(&mut self, text: &str) -> usize {
        let bytes = text.as_bytes();
        let mut total = 0usize;
        let mut start = 0usize;
        // In bounds, on char boundaries: every cut is at an ASCII space
        // found in `bytes` (or 0, or the end).
        for i in memchr::memchr_iter(b' ', bytes) {
            if i > 0 && !ends_with_whitespace(&text[..i]) {
                total += self.count_word(&text[start..i]);
                start = i;
            }
        }
        if start < bytes.len() {
            total += self.count_word(&text[start..]);
        }
        total
    }

    /// A word's count, with its ASCII digit runs counted apart where that
    /// is exact (see [`digit_run`]): order numbers, amounts and dates
    /// would otherwise make most words distinct, each a cache miss and a
    /// full BPE count.
    fn count_word(&mut self, word: &str) -> usize {
        let Some((start, end)) = digit_run(word.as_bytes()) else {
            return self.count_piece(word);
        };
        let mut total = 0;
        // In bounds, on char boundaries: `start..end` is a run of ASCII
        // digits inside `word` (digit_run), and `at..next` steps within it.
        if start > 0 {
            total += self.count_piece(&word[..start]);
        }
        // `\p{N}{1,3}`: runs split into pieces of three from the left.
        let mut at = start;
        while at < end {
            let next = (at + 3).min(end);
            total += self.count_piece(&word[at..next]);
            at = next;
        }
        if end < word.len() {
            total += self.count_word(&word[end..]);
        }
        total
    }

    fn count_piece(&mut self, word: &str) -> usize {
        if word.len() <= SMALL_WORD {
            let key = small_key(word.as_bytes());
            if let Some(&n) = self.small.get(&key) {
                return n as usize;
            }
            let n = self.tokenizer.count(word);
            if self.small.len() + self.words.len() < MAX_CACHED_WORDS {
                self.small.insert(key, n as u32);
            }
            return n;
        }
        if word.len() > MAX_CACHED_WORD {
            return self.tokenizer.count(word);
        }
        if let Some(&n) = self.words.get(word.as_bytes()) {
            return n as usize;
        }
        let n = self.tokenizer.count(word);
        if self.small.len() + self.words.len() < MAX_CACHED_WORDS {
            self.words.insert(word.as_bytes().into(), n as u32);
        }
        n
    }
}

/// The first run of ASCII digits in `word`, if the word's pieces split at
/// both its ends whatever the digits are, so that the parts can be counted
/// apart exactly. In both encodings' patterns a digit belongs only to a
/// `\p{N}{1,3}` piece, and no other piece can take one in; so the run
/// stands alone if the characters around it are no other kind of number
/// (`²`, `٣`: non-ASCII is refused outright) and the text before it does
/// not end in whitespace, where `\s+(?!\S)` looks ahead (a lone leading
/// whitespace character is one piece either way, so that is allowed).
fn digit_run(word: &[u8]) -> Option<(usize, usize)> {
    // In bounds: `start` is a position found in `word`, `start - 1` is
    // read only when `start` is 2 or more, `word[0]` only when it is 1.
    let start = word.iter().position(u8::is_ascii_digit)?;
    let end = word[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(word.len(), |n| start + n);
    let before_ok = match start {
        0 => true,
        1 => word[0].is_ascii(),
        _ => {
            word[start - 1].is_ascii()
                && !word[start - 1].is_ascii_whitespace()
                && word[start - 1] != 0x0b
        }
    };
    let after_ok = word.get(end).is_none_or(|b| b.is_ascii());
    (before_ok && after_ok).then_some((start, end))
}

/// Whether the last character of `text` is whitespace in the regex `\s`
/// sense (Unicode White_Space, as `char::is_whitespace`).
fn ends_with_whitespace(text: &str) -> bool {
    match text.as_bytes().last() {
        None => false,
        Some(&b) if b < 0x80 => matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        Some(_) => text.chars().next_back().is_some_and(char::is_whitespace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Hola, ¿cómo estás?  I'd like a refund for order #12345 — it's LATE!!\r\n\n\
        Ünïcödé   test\u{00a0} non-breaking\u{00a0}\u{00a0}spaces\t\ttabs \n  trailing   \
        日本語のテキスト 中文 한국어 😀👍🏽 emoji… 'S 'LL 'sup don't   \
        3.14159 1234567 x=42; fn main() {} //comment\n    indented code\n\n\n  ";

    fn samples() -> Vec<String> {
        let mut out = vec![
            SAMPLE.to_owned(),
            String::new(),
            " ".into(),
            "  a".into(),
            "a  ".into(),
            "\u{3000} x \u{2003}y".into(),
            "word".into(),
        ];
        // Every suffix and prefix at a char boundary exercises the split at
        // each kind of position.
        for (i, _) in SAMPLE.char_indices().step_by(3) {
            out.push(SAMPLE[i..].to_owned());
            out.push(SAMPLE[..i].to_owned());
        }
        out
    }

    #[test]
    fn counts_equal_tiktoken_for_cl100k_base() {
        let reference = tiktoken_rs::cl100k_base_singleton();
        let mut counter = TokenCounter::new(Encoding::Cl100kBase).unwrap();
        for s in samples() {
            assert_eq!(
                counter.count(&s),
                reference.encode_ordinary(&s).len(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn counts_equal_tiktoken_for_o200k_base() {
        let reference = tiktoken_rs::o200k_base_singleton();
        let mut counter = TokenCounter::new(Encoding::O200kBase).unwrap();
        for s in samples() {
            assert_eq!(
                counter.count(&s),
                reference.encode_ordinary(&s).len(),
                "{s:?}"
            );
        }
    }

    /// Random text dense in the cases the digit-run split must get right:
    /// digits next to spaces, tabs, newlines, punctuation, letters,
    /// contractions and non-ASCII numerals.
    fn numeric_samples() -> Vec<String> {
        use rand::{Rng, SeedableRng};
        const PARTS: &[&str] = &[
            "1", "2", "9", "0", "12", "123", "4567", "00012", " ", "  ", "\n", "\t", "\r\n",
            "\u{b}", "\u{c}", "a", "Z", "ab", "é", "²", "٣", "½", "#", "$", ".", ",", "'s", "'",
            "-", "/", "日", "😀", "\u{a0}", "\u{85}", "x1", "v2.0", "+44 ", "€", "%", "'ll",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..20_000)
            .map(|_| {
                (0..rng.random_range(1..12))
                    .map(|_| PARTS[rng.random_range(0..PARTS.len())])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn digit_runs_counted_apart_equal_tiktoken_in_both_encodings() {
        for (encoding, reference) in [
            (Encoding::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
            (Encoding::O200kBase, tiktoken_rs::o200k_base_singleton()),
        ] {
            let mut counter = TokenCounter::new(encoding).unwrap();
            for s in numeric_samples() {
                assert_eq!(
                    counter.count(&s),
                    reference.encode_ordinary(&s).len(),
                    "{encoding:?} {s:?}"
                );
            }
        }
    }

    #[test]
    fn cached_counts_equal_fresh_counts() {
        let mut counter = TokenCounter::new(Encoding::Cl100kBase).unwrap();
        let first = counter.count(SAMPLE);
        assert_eq!(counter.count(SAMPLE), first);
        assert_eq!(bpe_openai::cl100k_base().count(SAMPLE), first);
    }

    #[test]
    fn models_pick_their_encoding() {
        assert_eq!(
            Encoding::for_model("gpt-4o-mini-2024-07-18"),
            Encoding::O200kBase
        );
        assert_eq!(
            Encoding::for_model("gpt-4.1-2025-04-14"),
            Encoding::O200kBase
        );
        assert_eq!(
            Encoding::for_model("gpt-3.5-turbo-0125"),
            Encoding::Cl100kBase
        );
        assert_eq!(Encoding::for_model("davinci-002"), Encoding::Cl100kBase);
    }
}
