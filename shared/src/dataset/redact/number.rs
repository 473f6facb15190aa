//! Phone and card numbers, told apart from dates, amounts and references.
//!
//! Digits are read in groups joined by separators people use (spaces,
//! doubled spaces, '-', '.', '/', '_', a parenthesised area code), then
//! judged in an order that puts privacy first: a Luhn-valid card, then a
//! number with a phone's marks (`+` or `00`, a trunk `0`, an area code in
//! parentheses, a phone label before it), and only then the rules that
//! keep dates, times, amounts and references; what is left is a phone if
//! it is grouped like one or is a bare national number of 9–10 digits.
//! Offsets are in the normalised text (ASCII digits and separators).

use super::Kind;
use super::text::{char_before, phone_label_before, reference_before};

/// The most digits a card has, and so the most any number read here
/// keeps (a longer phone is not one).
const MAX_DIGITS: usize = 19;

/// What [`number_at`] made of the text at a position.
pub enum Scan {
    /// PII from the first byte to the second.
    Pii(usize, usize, Kind),
    /// No PII up to this byte (a date, an amount, a reference): its later
    /// groups are not looked at again on their own, where the `11.2026 14`
    /// of `30.11.2026 14:03` would pass for a phone.
    Clear(usize),
    /// Nothing here; a later group may still start something.
    Nothing,
}

/// Digits in groups, as read by [`read_groups`]: fixed arrays, so that
/// looking at a number costs no allocation.
struct Groups {
    digits: [u8; MAX_DIGITS],
    /// Digits in all groups.
    n: usize,
    /// Per group: its digit count, the byte after it, whether it was
    /// parenthesised, and the separator before the next group.
    len: [u8; MAX_DIGITS],
    end: [usize; MAX_DIGITS],
    paren: [bool; MAX_DIGITS],
    sep: [u8; MAX_DIGITS],
    count: usize,
}

impl Groups {
    fn lens(&self) -> &[u8] {
        self.len.get(..self.count).unwrap_or(&[])
    }

    /// Separators between the groups.
    fn seps(&self) -> &[u8] {
        self.sep.get(..self.count.saturating_sub(1)).unwrap_or(&[])
    }

    fn digits_in(&self, groups: usize) -> usize {
        self.lens()
            .iter()
            .take(groups)
            .map(|&l| usize::from(l))
            .sum()
    }

    /// Whether the first `g` groups are a card number: 13–19 digits, no
    /// parentheses, and a valid Luhn checksum.
    fn card(&self, g: usize) -> bool {
        let n = self.digits_in(g);
        (13..=19).contains(&n)
            && !self.paren.iter().take(g).any(|&p| p)
            && self.digits.get(..n).is_some_and(luhn)
    }

    fn end_of(&self, groups: usize) -> usize {
        groups
            .checked_sub(1)
            .and_then(|g| self.end.get(g))
            .copied()
            .unwrap_or(0)
    }
}

/// A phone or card number starting at `start` (a digit, '+' or '(' that
/// no digit precedes).
pub fn number_at(text: &str, start: usize) -> Scan {
    let bytes = text.as_bytes();
    let plus = bytes.get(start) == Some(&b'+');
    let g = read_groups(bytes, start + usize::from(plus));
    // One number in parentheses, (100000000), is read without them: the
    // digits are scanned from the next byte.
    if g.count == 0 || (g.count == 1 && g.paren[0]) {
        return Scan::Nothing;
    }
    let end = g.end_of(g.count);
    // Glued to a Latin letter or digit (SKU123456789): a code, not a
    // number on its own. Other scripts write numbers against words
    // (电话612345678), so only ASCII glues.
    let glued_before =
        char_before(text, start).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let n = g.n;
    let first = g.digits[0];
    let second = g.digits[1];

    if plus {
        return if (8..=15).contains(&n) {
            Scan::Pii(start, end, Kind::Phone)
        } else {
            Scan::Nothing
        };
    }
    // 0034 612 345 678: an international prefix written with zeros (no
    // card number starts with 0).
    if first == 0 && second == 0 && (10..=17).contains(&n) {
        return Scan::Pii(start, end, Kind::Phone);
    }
    // A card is a card whatever stands around it (CC4111…, …exp) and
    // whatever follows it (an expiry date, a CVV): the longest run of
    // groups from the start that is one.
    if let Some(k) = (1..=g.count).rev().find(|&k| g.card(k)) {
        return Scan::Pii(start, g.end_of(k), Kind::Card);
    }
    // The label is looked up only where it can change the reading: most
    // numbers are short, and this runs for every one.
    let date_end = date(&g);
    let labelled_phone =
        (date_end.is_some() || (7..=15).contains(&n)) && phone_label_before(text, start);
    if !labelled_phone && let Some(date_end) = date_end {
        return Scan::Clear(date_end);
    }
    // A trunk 0 (0612345678, Tel-0612345678, 06 12 34 56 78, 0612…ext),
    // an area code in parentheses ((555)1234567), or a phone's label.
    let trunk = first == 0 && (9..=11).contains(&n);
    let area_code = g.paren[0] && (7..=12).contains(&n);
    let labelled = labelled_phone && (7..=15).contains(&n) && !currency(text, start, end);
    if trunk || area_code || labelled {
        return Scan::Pii(start, end, Kind::Phone);
    }
    // One group that cannot be a national number is nothing, whether a
    // reference or not (skipping it whole or byte by byte is the same).
    if g.count == 1 && !(9..=10).contains(&n) {
        return Scan::Nothing;
    }
    if reference_before(text, start) || amount(text, start, end, &g) {
        // Skipped whole only when no card can hide in the skipped groups.
        return if n < 13 {
            Scan::Clear(end)
        } else {
            Scan::Nothing
        };
    }
    if glued_before {
        return Scan::Nothing;
    }
    // Grouped like a phone (555-123-4567, 612 34 56 78, 555/123.45.67),
    // or a bare national number (612345678, 5551234567). A bare run of
    // other lengths is more likely an order number than a phone.
    let grouped = g.count >= 2 && (7..=12).contains(&n);
    let national = g.count == 1 && (9..=10).contains(&n);
    if grouped || national {
        Scan::Pii(start, end, Kind::Phone)
    } else {
        Scan::Nothing
    }
}

/// The separator at `i` between two groups, and where the next group
/// starts: up to three spaces or tabs, or one of `-./_` with spaces
/// around a '-' or '/'. `(` right after a group opens an area code, and a
/// digit right after `)` starts the next group.
fn separator(bytes: &[u8], j: usize, after_paren: bool) -> Option<(u8, usize)> {
    let spaces = |from: usize| {
        let mut k = from;
        while k - from < 3 && matches!(bytes.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        k
    };
    let k = spaces(j);
    match bytes.get(k) {
        Some(&s @ (b'-' | b'/')) => {
            let next = spaces(k + 1);
            Some((s, next))
        }
        Some(&s @ (b'.' | b'_')) if k == j => Some((s, k + 1)),
        Some(b'(') => Some((b' ', k)),
        Some(b) if b.is_ascii_digit() && k > j => Some((b' ', k)),
        Some(b) if b.is_ascii_digit() && after_paren => Some((b' ', k)),
        _ => None,
    }
}

/// Groups of digits from `i`, up to [`MAX_DIGITS`] digits: a group that
/// would pass that is not read.
fn read_groups(bytes: &[u8], mut i: usize) -> Groups {
    let mut g = Groups {
        digits: [0; MAX_DIGITS],
        n: 0,
        len: [0; MAX_DIGITS],
        end: [0; MAX_DIGITS],
        paren: [false; MAX_DIGITS],
        sep: [0; MAX_DIGITS],
        count: 0,
    };
    let digit_at = |k: usize| bytes.get(k).is_some_and(u8::is_ascii_digit);
    while g.count < MAX_DIGITS {
        let paren = bytes.get(i) == Some(&b'(');
        let first = i + usize::from(paren);
        let mut j = first;
        while digit_at(j) {
            j += 1;
        }
        let len = j - first;
        if len == 0 || g.n + len > MAX_DIGITS {
            return g;
        }
        if paren {
            if bytes.get(j) != Some(&b')') {
                return g;
            }
            j += 1;
        }
        let (Some(slots), Some(source)) = (g.digits.get_mut(g.n..g.n + len), bytes.get(first..j))
        else {
            return g;
        };
        for (slot, &d) in slots.iter_mut().zip(source) {
            *slot = d - b'0';
        }
        g.n += len;
        // `len` <= MAX_DIGITS (19) here.
        g.len[g.count] = len as u8;
        g.end[g.count] = j;
        g.paren[g.count] = paren;
        g.count += 1;
        let Some((sep, next)) = separator(bytes, j, paren) else {
            return g;
        };
        let opens_group = digit_at(next) || (bytes.get(next) == Some(&b'(') && digit_at(next + 1));
        if !opens_group || g.count == MAX_DIGITS {
            return g;
        }
        g.sep[g.count - 1] = sep;
        i = next;
    }
    g
}

/// The value of a group of at most four digits.
fn value(g: &Groups, group: usize) -> u32 {
    let from = g.digits_in(group);
    let len = g.lens().get(group).map_or(0, |&l| usize::from(l));
    g.digits
        .iter()
        .skip(from)
        .take(len.min(4))
        .fold(0, |v, &d| v * 10 + u32::from(d))
}

/// Where the date that the first groups are ends: 2026-10-01, 01.10.2026,
/// 1/10/2026, 30.11.26 — one separator throughout, a month and a day
/// that can be — alone or followed by a time after a space.
fn date(g: &Groups) -> Option<usize> {
    let lens = g.lens();
    let seps = g.seps();
    if lens.len() < 3 {
        return None;
    }
    let sep = *seps.first()?;
    let same = seps.get(1) == Some(&sep) && matches!(sep, b'-' | b'.' | b'/');
    let alone = lens.len() == 3 || seps.get(2) == Some(&b' ');
    let day_month =
        |a: u32, b: u32| (1..=31).contains(&a) && (1..=31).contains(&b) && (a <= 12 || b <= 12);
    let valid = match lens.get(..3)? {
        [4, 2, 2] => (1..=12).contains(&value(g, 1)) && (1..=31).contains(&value(g, 2)),
        [2 | 1, 2 | 1, 4] => day_month(value(g, 0), value(g, 1)),
        [2, 2, 2] => day_month(value(g, 0), value(g, 1)),
        _ => false,
    };
    (same && alone && valid).then(|| g.end_of(3))
}

/// Whether the groups are an amount: a decimal (3.14159), thousands
/// with dots (1.299.000 — up to eight digits: a longer dotted number
/// with nothing around it is read as a phone, 612.345.678), a decimal
/// comma after (1 299,50), or a currency beside it.
fn amount(text: &str, start: usize, end: usize, g: &Groups) -> bool {
    let bytes = text.as_bytes();
    let lens = g.lens();
    let seps = g.seps();
    let decimal = lens.len() == 2 && seps == b".";
    let thousands = lens.len() >= 2
        && g.n <= 8
        && seps.iter().all(|&s| s == b'.')
        && lens.first().is_some_and(|l| (1..=3).contains(l))
        && lens.iter().skip(1).all(|&l| l == 3);
    let decimal_comma =
        bytes.get(end) == Some(&b',') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
    decimal || thousands || decimal_comma || currency(text, start, end)
}

const SIGNS: &[&str] = &["$", "€", "£", "¥", "₹", "₽", "₩", "₺", "₴", "₱", "R$"];
/// ISO codes of the currencies customers of such a service pay in.
const CODES: &[&str] = &[
    "EUR", "USD", "GBP", "MXN", "COP", "ARS", "CLP", "PEN", "BRL", "JPY", "CNY", "INR", "CHF",
    "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RUB", "TRY", "ZAR",
];
const CURRENCY_WORDS: &[&str] = &["euro", "euros", "dollars", "dólares", "pesos", "libras"];

/// A currency sign or ISO code right before or after the number
/// (`$1299`, `€ 1299`, `1299 EUR`, `1299 euros`).
fn currency(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).unwrap_or("");
    let before = before.strip_suffix(' ').unwrap_or(before);
    let after = text.get(end..).unwrap_or("");
    let after = after.strip_prefix(' ').unwrap_or(after);
    let code = |s: &str| CODES.contains(&s);
    let word_after = after
        .find(|c: char| !c.is_alphabetic())
        .map_or(after, |end| after.get(..end).unwrap_or(""));
    let word_before = before
        .rfind(|c: char| !c.is_alphabetic())
        .map_or(before, |at| {
            // `at` starts the last character that is no letter: the word
            // starts after it.
            let next = before.get(at..).and_then(|t| t.chars().next());
            before
                .get(at + next.map_or(0, char::len_utf8)..)
                .unwrap_or("")
        });
    SIGNS
        .iter()
        .any(|s| before.ends_with(s) || after.starts_with(s))
        || code(word_after)
        || code(word_before)
        || CURRENCY_WORDS
            .iter()
            .any(|w| w.eq_ignore_ascii_case(word_after))
}

/// The Luhn checksum used by every payment card number.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
