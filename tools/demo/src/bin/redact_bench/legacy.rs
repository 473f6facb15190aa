//! The redactor as it was before it read text as a person does (copied
//! verbatim from shared/src/dataset/redact.rs at commit 3e1ef59, tests
//! left out), so that `make bench-redact` compares both on the same
//! corpus in the same run.
#![allow(dead_code)]

// PII redaction: e-mail addresses, phone numbers and payment card numbers
// become placeholders. Hand-written scanners rather than `regex`: they
// run once over every character of every conversation, need Luhn and
// date checks a regex cannot express, and stay allocation-free when a
// text has nothing to redact (the common case).

use std::borrow::Cow;

pub const EMAIL: &str = "[EMAIL]";
pub const PHONE: &str = "[PHONE]";
pub const CARD: &str = "[CARD]";

/// Redactions made, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redactions {
    pub email: u64,
    pub phone: u64,
    pub card: u64,
}

/// `text` with every e-mail address, phone number and Luhn-valid card
/// number replaced by a placeholder.
pub fn redact<'a>(text: &'a str, counts: &mut Redactions) -> Cow<'a, str> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'@' || b.is_ascii_digit()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        let found = if b == b'@' {
            email_at(bytes, i).map_or(Scan::Nothing, |(s, e)| Scan::Pii(s, e, EMAIL))
        } else if (b.is_ascii_digit() || b == b'+' || b == b'(')
            && (i == 0 || !is_word_byte(bytes[i - 1]))
        {
            // Digits that run on into an address (0612345678@mail.com)
            // are its local part: the whole address goes, not a "phone"
            // that would leave the domain behind.
            match email_through(bytes, i).filter(|&(s, _)| s >= copied) {
                Some((s, e)) => Scan::Pii(s, e, EMAIL),
                None => number_at(bytes, i),
            }
        } else {
            Scan::Nothing
        };
        match found {
            // An e-mail's local part starts before '@' and may overlap
            // text already copied; only take it if it does not.
            Scan::Pii(start, end, placeholder) if start >= copied => {
                out.push_str(&text[copied..start]);
                out.push_str(placeholder);
                match placeholder {
                    EMAIL => counts.email += 1,
                    PHONE => counts.phone += 1,
                    _ => counts.card += 1,
                }
                copied = end;
                i = end;
            }
            Scan::Clear(end) => i = end,
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// The address whose local part contains `from`, if the local-part
/// characters from there lead to an '@' that starts a valid domain.
fn email_through(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let at = from + bytes[from..].iter().position(|&b| !is_local_byte(b))?;
    if bytes[at] != b'@' {
        return None;
    }
    email_at(bytes, at)
}

/// The address around the '@' at `at`: a local part, and a domain with a
/// dot and an alphabetic top-level label of two letters or more.
fn email_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut start = at;
    while start > 0 && is_local_byte(bytes[start - 1]) {
        start -= 1;
    }
    while start < at && bytes[start] == b'.' {
        start += 1;
    }
    if start == at {
        return None;
    }
    let mut end = at + 1;
    while end < bytes.len()
        && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'.' | b'-'))
    {
        end += 1;
    }
    // A sentence's full stop is not part of the domain.
    while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &bytes[at + 1..end];
    let dot = domain.iter().rposition(|&b| b == b'.')?;
    let tld = &domain[dot + 1..];
    if dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    Some((start, end))
}

/// The most digits a card has, and so the most any number read here
/// keeps (a longer phone is not one).
const MAX_DIGITS: usize = 19;

/// Digits in groups, as read by [`number_at`]: fixed arrays, so that
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
        &self.len[..self.count]
    }

    /// Separators between the groups.
    fn seps(&self) -> &[u8] {
        &self.sep[..self.count.saturating_sub(1)]
    }

    /// Whether the first `g` groups are a card number: 13–19 digits,
    /// only spaces or hyphens between groups, no parentheses, and a valid
    /// Luhn checksum.
    fn card(&self, g: usize) -> bool {
        let n: usize = self.len[..g].iter().map(|&l| usize::from(l)).sum();
        (13..=19).contains(&n)
            && self.sep[..g - 1].iter().all(|&s| s == b' ' || s == b'-')
            && !self.paren[..g].contains(&true)
            && luhn(&self.digits[..n])
    }
}

/// What [`number_at`] made of the text at a position.
enum Scan {
    /// PII from the first byte to the second, to replace by the placeholder.
    Pii(usize, usize, &'static str),
    /// No PII up to this byte (a date, an amount, a reference): its later
    /// groups are not looked at again on their own, where the `11.2026 14`
    /// of `30.11.2026 14:03` would pass for a phone.
    Clear(usize),
    /// Nothing here; a later group may still start something.
    Nothing,
}

/// A phone or card number starting at `start`: digits in groups joined by
/// single separators (space, '-', '.', or a parenthesised area code). A
/// separator counts only when another group follows it, so a sentence's
/// full stop after a number is never part of it.
fn number_at(bytes: &[u8], start: usize) -> Scan {
    let plus = bytes[start] == b'+';
    let g = read_groups(bytes, start + usize::from(plus));
    if g.count == 0 {
        return Scan::Nothing;
    }
    let end = g.end[g.count - 1];
    // Glued to a word or a decimal (v2, 3.14159x): not a number we want.
    let glued = end < bytes.len() && is_word_byte(bytes[end]);
    if plus {
        return if !glued && (8..=15).contains(&g.n) {
            Scan::Pii(start, end, PHONE)
        } else {
            Scan::Nothing
        };
    }
    // All the groups, or the longest run of them from the start, when
    // more digits follow a card (an expiry date, a CVV, an IBAN's tail):
    // privacy first, a card is a card whatever comes after it.
    let all = g.count - usize::from(glued);
    if let Some(cards) = (1..=all).rev().find(|&k| g.card(k)) {
        return Scan::Pii(start, g.end[cards - 1], CARD);
    }
    if glued {
        return Scan::Nothing;
    }
    // A reference such as ORD-2026-00123: a word joined to the digits by
    // a hyphen names the number.
    let reference = start >= 2 && bytes[start - 1] == b'-' && is_word_byte(bytes[start - 2]);
    let clear = if reference {
        Some(end)
    } else {
        date_or_amount(bytes, start, end, &g)
    };
    if let Some(clear) = clear {
        // Skipped whole only when no card can hide in the skipped groups
        // (the groups after a date are read again).
        return if g.n < 13 || clear < end {
            Scan::Clear(clear)
        } else {
            Scan::Nothing
        };
    }
    // Local formats: grouped (555-123-4567, (555) 123 4567, 06 12 34 56 78)
    // or a run starting with a trunk 0 (0612345678). A bare run of digits
    // without a 0 is more likely an order number than a phone.
    let n = g.n;
    let grouped = g.count >= 2 && (7..=12).contains(&n);
    let trunk = g.count == 1 && g.digits[0] == 0 && (9..=11).contains(&n);
    if grouped || trunk {
        Scan::Pii(start, end, PHONE)
    } else {
        Scan::Nothing
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
    loop {
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
        for (slot, &d) in g.digits[g.n..g.n + len].iter_mut().zip(&bytes[first..]) {
            *slot = d - b'0';
        }
        g.n += len;
        // `len` <= MAX_DIGITS (19) here.
        g.len[g.count] = len as u8;
        g.end[g.count] = j;
        g.paren[g.count] = paren;
        g.count += 1;
        // A separator, then another group; '(' right after a group opens
        // an area code as if a space stood before it.
        let (sep, next) = match bytes.get(j) {
            Some(&s) if matches!(s, b' ' | b'-' | b'.') => (s, j + 1),
            Some(&b'(') => (b' ', j),
            _ => return g,
        };
        let opens_group = digit_at(next) || (bytes.get(next) == Some(&b'(') && digit_at(next + 1));
        if !opens_group {
            return g;
        }
        g.sep[g.count - 1] = sep;
        i = next;
    }
}

/// Where the date (2026-10-01, 01.10.2026, also followed by a time),
/// decimal (3.14159) or amount (1.299.000, 1 299,50) that the groups are
/// ends, if they are one: digits in groups that are not a phone.
fn date_or_amount(bytes: &[u8], start: usize, end: usize, g: &Groups) -> Option<usize> {
    let lens = g.lens();
    let seps = g.seps();
    let date = |s: &[u8]| matches!(s, [4, 2, 2] | [2, 2, 4] | [1, 2, 4] | [2, 1, 4]);
    // A date alone, or followed by a time after a space (2026-11-30 14:03).
    let dateish = lens.len() >= 3 && date(&lens[..3]) && (lens.len() == 3 || seps[2] == b' ');
    let decimal = lens.len() == 2 && seps == b".";
    // Thousands with dots: 1.299.000 (a dotted phone has pairs: 06.12.34.56.78).
    let thousands = lens.len() >= 2
        && seps.iter().all(|&s| s == b'.')
        && (1..=3).contains(&lens[0])
        && lens[1..].iter().all(|&l| l == 3);
    // A decimal comma after it (1 299,50 €) or a currency sign before it.
    let decimal_comma =
        bytes.get(end) == Some(&b',') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
    let before = bytes[..start].strip_suffix(b" ").unwrap_or(&bytes[..start]);
    let currency = ["$", "€", "£"]
        .iter()
        .any(|sign| before.ends_with(sign.as_bytes()));
    if dateish {
        Some(g.end[2])
    } else {
        (decimal || thousands || decimal_comma || currency).then_some(end)
    }
}

/// The Luhn checksum used by every payment card number.
fn luhn(digits: &[u8]) -> bool {
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
