//! Text as a reader sees it, for detection only: a card written with
//! no-break spaces or in fullwidth digits reads as a card, so it must
//! scan as one. Each character maps to at most one character, so a match
//! in the normalised text maps back to one span of the original, and it
//! is the original span that is redacted.
//!
//! What is folded, and why:
//! - space separators (category Zs: U+00A0, U+2000–U+200A, U+202F, U+3000 …)
//!   become an ASCII space: copies from web pages and PDFs carry them;
//! - line and paragraph separators (U+2028, U+2029) become a line break;
//! - invisible format characters (soft hyphen, zero-width space and
//!   joiners, word joiner, bidi marks, embeddings and isolates, BOM,
//!   variation selectors, the keycap mark) are dropped: they hide a number
//!   from a scanner, not from a reader;
//! - hyphen-like dashes (U+2010–U+2015, U+2212, small and fullwidth
//!   hyphen-minus) become '-';
//! - every decimal digit (fullwidth, Arabic-Indic, Devanagari and the
//!   other Unicode digit blocks, mathematical digits, super- and
//!   subscripts, circled digits) becomes its ASCII digit — NFKC for the
//!   compatibility forms, and further, since a reader reads ٤١١١ as 4111;
//! - fullwidth ASCII (U+FF01–U+FF5E: `＠`, `．`, `（`, letters) and the
//!   small and ideographic forms of '@' and '.' become ASCII.
//!
//! Letters are not folded: detection treats any Unicode letter or mark
//! as a word character, which is all an address needs.

use std::borrow::Cow;

/// The normalised text, and where each of its bytes came from.
pub struct Normalised<'a> {
    pub text: Cow<'a, str>,
    /// Where the normalised text and the original stop moving in step:
    /// from each `(normalised, original)` byte offset on, until the next,
    /// both advance together. Sparse (a pair per folded or dropped
    /// character), so that a long text with a dash in it costs no map of
    /// its length. Empty when `text` is the original.
    checkpoints: Vec<(usize, usize)>,
    original: &'a str,
}

impl<'a> Normalised<'a> {
    pub fn new(original: &'a str) -> Self {
        // Nothing to fold in ASCII, and most text is: borrow it as is.
        let first = original
            .char_indices()
            .find(|&(_, c)| !c.is_ascii() && fold(c) != Fold::Keep);
        let Some((first, _)) = first else {
            return Self {
                text: Cow::Borrowed(original),
                checkpoints: Vec::new(),
                original,
            };
        };
        let mut text = String::with_capacity(original.len());
        let mut checkpoints = vec![(0, 0)];
        text.push_str(original.get(..first).unwrap_or(""));
        for (at, c) in original.get(first..).unwrap_or("").char_indices() {
            let at = first + at;
            match fold(c) {
                Fold::Keep => text.push(c),
                Fold::Drop => checkpoints.push((text.len(), at + c.len_utf8())),
                Fold::To(to) => {
                    checkpoints.push((text.len(), at));
                    text.push(to);
                    checkpoints.push((text.len(), at + c.len_utf8()));
                }
            }
        }
        Self {
            text: Cow::Owned(text),
            checkpoints,
            original,
        }
    }

    /// The original byte where the character that produced byte `k` of
    /// the normalised text starts.
    fn origin(&self, k: usize) -> usize {
        let i = self.checkpoints.partition_point(|&(n, _)| n <= k);
        match i.checked_sub(1).and_then(|i| self.checkpoints.get(i)) {
            Some(&(n, o)) => o + (k - n),
            None => k,
        }
    }

    /// The span of the original text that bytes `start..end` of the
    /// normalised text came from: from the first one's character to the
    /// end of the last one's (dropped characters inside come along).
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.checkpoints.is_empty() || start >= end {
            return (start, end);
        }
        let first = self.origin(start).min(self.original.len());
        // The last byte's character: step back to its first byte.
        let mut last = self.origin(end - 1).min(self.original.len());
        while last > 0 && !self.original.is_char_boundary(last) {
            last -= 1;
        }
        let last_len = self
            .original
            .get(last..)
            .and_then(|rest| rest.chars().next())
            .map_or(0, char::len_utf8);
        (first, last + last_len)
    }

    /// Whether any character folds to an ASCII digit, an at-sign or a
    /// bracket (of a spelled-out `［at］`): what a text without ASCII ones
    /// must have to hold a number or an address.
    pub fn folds_to_digit_or_at(text: &str) -> bool {
        text.chars().any(|c| {
            !c.is_ascii()
                && matches!(fold(c), Fold::To(t)
                    if t.is_ascii_digit() || matches!(t, '@' | '[' | '(' | '{' | '<'))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Keep,
    Drop,
    To(char),
}

/// The first code point of each block of ten decimal digits (category Nd)
/// that is not ASCII, so that `c - zero` is the digit's value.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
    0x11730, 0x118E0, 0x16A60, 0x16B50, 0x1E950,
];

fn digit(value: u32) -> Fold {
    // value < 10 at every call site.
    Fold::To(char::from(b'0' + (value % 10) as u8))
}

fn fold(c: char) -> Fold {
    let u = u32::from(c);
    match u {
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Fold::To(' '),
        0x2028 | 0x2029 => Fold::To('\n'),
        0x00AD
        | 0x034F
        | 0x061C
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0x20E3 => Fold::Drop,
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 | 0xFF0D => Fold::To('-'),
        0xFE6B => Fold::To('@'),
        0xFE52 | 0xFF61 | 0x3002 | 0x2024 => Fold::To('.'),
        0x2044 | 0x2215 => Fold::To('/'),
        0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0).map_or(Fold::Keep, Fold::To),
        0x00B2 | 0x00B3 => digit(u - 0x00B0),
        0x00B9 => digit(1),
        0x2070 => digit(0),
        0x2074..=0x2079 => digit(u - 0x2070),
        0x2080..=0x2089 => digit(u - 0x2080),
        0x2460..=0x2468 => digit(u - 0x2460 + 1),
        0x24EA => digit(0),
        0x1D7CE..=0x1D7FF => digit((u - 0x1D7CE) % 10),
        _ if u >= 0x0660 => DIGIT_ZEROS
            .iter()
            .find(|&&zero| (zero..zero + 10).contains(&u))
            .map_or(Fold::Keep, |&zero| digit(u - zero)),
        _ => Fold::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_text_is_borrowed_and_maps_to_itself() {
        let n = Normalised::new("call 0612 345 678");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.original_span(5, 17), (5, 17));
    }

    #[test]
    fn separators_dashes_and_digit_forms_read_as_ascii() {
        for (text, read) in [
            (
                "4111\u{a0}1111\u{2009}1111\u{202f}1111",
                "4111 1111 1111 1111",
            ),
            ("４１１１－１１１１", "4111-1111"),
            ("٤١١١ ۱۱۱۱ ४१११", "4111 1111 4111"),
            ("06\u{2013}12\u{2212}34", "06-12-34"),
            ("41\u{ad}11\u{200b}11\u{2060}11\u{feff}", "41111111"),
            ("ana＠example．com", "ana@example.com"),
            ("qué tal", "qué tal"),
        ] {
            assert_eq!(Normalised::new(text).text, read, "{text:?}");
        }
    }

    #[test]
    fn a_span_of_the_normalised_text_maps_to_the_original_characters() {
        // GIVEN a fullwidth number between plain words
        let text = "tel ０６１２\u{200b}３４ fin";
        let n = Normalised::new(text);
        assert_eq!(n.text, "tel 061234 fin");
        // WHEN the digits' span maps back THEN it covers exactly the
        // original digits, the zero-width space inside included
        let (s, e) = n.original_span(4, 10);
        assert_eq!(&text[s..e], "０６１２\u{200b}３４");
    }
}
