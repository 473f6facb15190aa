//! PII redaction: e-mail addresses, phone numbers and payment card numbers
//! become placeholders. Hand-written scanners rather than `regex`: they
//! run once over every character of every conversation, need Luhn and
//! date checks a regex cannot express, and stay allocation-free when a
//! text has nothing to redact (the common case).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub const EMAIL: &str = "[EMAIL]";
pub const PHONE: &str = "[PHONE]";
pub const CARD: &str = "[CARD]";

/// Redactions made, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
            email_at(bytes, i).map(|(s, e)| (s, e, EMAIL))
        } else if (b.is_ascii_digit() || b == b'+' || b == b'(')
            && (i == 0 || !is_word_byte(bytes[i - 1]))
        {
            number_at(bytes, i)
        } else {
            None
        };
        match found {
            // An e-mail's local part starts before '@' and may overlap
            // text already copied; only take it if it does not.
            Some((start, end, placeholder)) if start >= copied => {
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

/// A phone or card number starting at `start`: digits in groups joined by
/// single separators (space, '-', '.', or a parenthesised area code).
fn number_at(bytes: &[u8], start: usize) -> Option<(usize, usize, &'static str)> {
    let mut i = start;
    let plus = bytes[i] == b'+';
    if plus {
        i += 1;
    }
    let mut digits: Vec<u8> = Vec::with_capacity(20);
    let mut groups: Vec<usize> = Vec::with_capacity(6);
    let mut separators: Vec<u8> = Vec::with_capacity(6);
    let mut end = i;
    loop {
        let paren = i < bytes.len() && bytes[i] == b'(';
        let mut j = i + usize::from(paren);
        let group_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            digits.push(bytes[j] - b'0');
            j += 1;
        }
        if j == group_start || digits.len() > 19 {
            break;
        }
        if paren {
            if j >= bytes.len() || bytes[j] != b')' {
                break;
            }
            j += 1;
        }
        groups.push(j - group_start - if paren { 1 } else { 0 });
        end = j;
        // A separator, then maybe a space after ')'.
        let mut k = j;
        if k < bytes.len() && matches!(bytes[k], b' ' | b'-' | b'.') {
            separators.push(bytes[k]);
            k += 1;
        } else if k < bytes.len() && bytes[k] == b'(' {
            separators.push(b' ');
        } else {
            break;
        }
        if k >= bytes.len() || !(bytes[k].is_ascii_digit() || bytes[k] == b'(') {
            break;
        }
        i = k;
    }
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // Glued to a word or a decimal (v2, 3.14159x): not a number we want.
    if end < bytes.len() && (is_word_byte(bytes[end])) {
        return None;
    }
    let n = digits.len();
    if !plus
        && (13..=19).contains(&n)
        && separators.iter().all(|&s| s == b' ' || s == b'-')
        && luhn(&digits)
    {
        return Some((start, end, CARD));
    }
    if plus {
        return (8..=15).contains(&n).then_some((start, end, PHONE));
    }
    if looks_like_date_or_decimal(&groups, &separators) {
        return None;
    }
    // Local formats: grouped (555-123-4567, (555) 123 4567, 06 12 34 56 78)
    // or a run starting with a trunk 0 (0612345678). A bare run of digits
    // without a 0 is more likely an order number than a phone.
    let grouped = groups.len() >= 2 && (7..=12).contains(&n);
    let trunk = groups.len() == 1 && digits[0] == 0 && (9..=11).contains(&n);
    (grouped || trunk).then_some((start, end, PHONE))
}

fn looks_like_date_or_decimal(groups: &[usize], separators: &[u8]) -> bool {
    let shape = |s: &[usize]| groups == s;
    let dateish = shape(&[4, 2, 2]) || shape(&[2, 2, 4]) || shape(&[1, 2, 4]) || shape(&[2, 1, 4]);
    dateish || (groups.len() == 2 && separators == b".")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> (String, Redactions) {
        let mut c = Redactions::default();
        let out = redact(text, &mut c).into_owned();
        (out, c)
    }

    #[test]
    fn emails_become_placeholders() {
        let (out, c) = r("Write to ana.lopez+shop@mail.example.com. Thanks");
        assert_eq!(out, "Write to [EMAIL]. Thanks");
        assert_eq!(c.email, 1);
        assert_eq!(r("a @ b, x@y, me@host.c1").1.email, 0);
    }

    #[test]
    fn international_and_local_phones_become_placeholders() {
        for (text, expected) in [
            ("call +34 612 345 678 now", "call [PHONE] now"),
            ("call +1 (555) 123-4567", "call [PHONE]"),
            ("call +447911123456", "call [PHONE]"),
            ("call 555-123-4567.", "call [PHONE]."),
            ("call (555) 123-4567", "call [PHONE]"),
            ("llama al 06 12 34 56 78", "llama al [PHONE]"),
            ("llama al 0612345678", "llama al [PHONE]"),
        ] {
            let (out, c) = r(text);
            assert_eq!(out, expected, "{text}");
            assert_eq!(c.phone, 1, "{text}");
        }
    }

    #[test]
    fn dates_amounts_and_order_numbers_are_left_alone() {
        for text in [
            "on 2026-10-01 at 14:03",
            "on 01.10.2026",
            "order 123456789",
            "pay 1,299.50 EUR",
            "pi is 3.14159",
            "version v2.3.4",
            "room 42",
        ] {
            let (out, c) = r(text);
            assert_eq!(out, text);
            assert_eq!(c, Redactions::default(), "{text}");
        }
    }

    #[test]
    fn only_luhn_valid_cards_are_cards() {
        let (out, c) = r("card 4111 1111 1111 1111 or 4111-1111-1111-1111 or 4111111111111111");
        assert_eq!(out, "card [CARD] or [CARD] or [CARD]");
        assert_eq!(c.card, 3);
        let (out, c) = r("ref 4111111111111112");
        assert_eq!(out, "ref 4111111111111112");
        assert_eq!(c.card, 0);
    }

    #[test]
    fn text_without_candidates_is_not_copied() {
        let mut c = Redactions::default();
        assert!(matches!(
            redact("hola, ¿qué tal?", &mut c),
            Cow::Borrowed(_)
        ));
    }
}
