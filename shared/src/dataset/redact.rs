//! PII redaction: e-mail addresses, phone numbers and payment card numbers
//! become placeholders. Hand-written scanners rather than `regex`: they
//! run once over every character of every conversation, need Luhn and
//! date checks a regex cannot express, and stay allocation-free when a
//! text has nothing to redact (the common case).
//!
//! Detection reads the text as a person does ([`normalise`]: no-break and
//! thin spaces are spaces, fullwidth and other scripts' digits are
//! digits, invisible characters are not there), finds addresses
//! ([`email`]) and numbers ([`number`]) in it, and redacts the original
//! characters those came from.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use self::normalise::Normalised;
use self::number::Scan;
use self::text::char_before;

mod email;
pub mod normalise;
mod number;
mod text;

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

/// What a span of PII is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Email,
    Phone,
    Card,
}

impl Kind {
    /// What replaces it in free text.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => EMAIL,
            Kind::Phone => PHONE,
            Kind::Card => CARD,
        }
    }

    fn count(self, counts: &mut Redactions) {
        match self {
            Kind::Email => counts.email += 1,
            Kind::Phone => counts.phone += 1,
            Kind::Card => counts.card += 1,
        }
    }

    /// What replaces it in an identifier (a message's `name`, a tool
    /// call's id, a function name), where brackets are not allowed.
    fn token(self, original: &str) -> String {
        use sha2::{Digest, Sha256};
        let kind = match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
        };
        // Six hex digits of a digest: the same value gives the same token
        // (a call's id and its result's `tool_call_id` still pair up), two
        // values in one conversation practically never collide, and 24
        // bits say nothing of a 10-digit phone number.
        let digest = Sha256::digest(original.as_bytes());
        format!("{kind}_{}", hex::encode(digest.get(..3).unwrap_or(&[])))
    }
}

/// One span of PII in a text, by byte offsets into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

/// Every e-mail address, phone number and Luhn-valid card number in
/// `text`, in order and not overlapping, found in the text as a reader
/// sees it (see [`normalise`]) and mapped back to the original.
pub fn spans(text: &str) -> Vec<Span> {
    if !may_hold_pii(text) {
        return Vec::new();
    }
    let norm = Normalised::new(text);
    let t: &str = &norm.text;
    let bytes = t.as_bytes();
    let mut found: Vec<Span> = Vec::new();
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        // A space starts an at-sign only as ` at ` or ` arroba `: look at
        // the next byte before anything else, spaces being a sixth of text.
        let spelled_at = b == b' ' && bytes.get(i + 1).is_some_and(|&n| n | 0x20 == b'a');
        let email = match b {
            b'@' | b'[' | b'(' | b'{' | b'<' => {
                email::at_sign(t, i).and_then(|at| email::around(t, at))
            }
            b' ' if spelled_at => email::at_sign(t, i).and_then(|at| email::around(t, at)),
            _ => None,
        };
        let scan = match email {
            Some((s, e)) => Scan::Pii(s, e, Kind::Email),
            None if (b.is_ascii_digit() || b == b'+' || b == b'(')
                && !char_before(t, i).is_some_and(|c| c.is_ascii_digit()) =>
            {
                match email::through(t, i) {
                    Some((s, e)) => Scan::Pii(s, e, Kind::Email),
                    None => number::number_at(t, i),
                }
            }
            None => Scan::Nothing,
        };
        match scan {
            Scan::Pii(start, end, kind) => {
                push(&mut found, start, end, kind);
                i = end.max(i + 1);
            }
            Scan::Clear(end) => i = end.max(i + 1),
            Scan::Nothing => i += 1,
        }
    }
    found
        .into_iter()
        .map(|s| {
            let (start, end) = norm.original_span(s.start, s.end);
            Span { start, end, ..s }
        })
        .collect()
}

/// A cheap first look: a text with no digit and no at-sign in any form,
/// and no spelled-out at-sign, holds nothing to redact (most texts).
fn may_hold_pii(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| b.is_ascii_digit() || b == b'@') {
        return true;
    }
    if !text.is_ascii() && Normalised::folds_to_digit_or_at(text) {
        return true;
    }
    // `[at]`, `(at)`, ` at `, ` arroba `: the word after a space or a
    // bracket.
    let after_gap = |w: &[u8]| matches!(w.first(), Some(b' ' | b'[' | b'(' | b'{' | b'<'));
    bytes.windows(4).any(|w| {
        after_gap(w)
            && w.get(1..3).is_some_and(|at| at.eq_ignore_ascii_case(b"at"))
            && w.get(3).is_some_and(|b| !b.is_ascii_alphabetic())
    }) || bytes.windows(7).any(|w| {
        after_gap(w)
            && w.get(1..)
                .is_some_and(|word| word.eq_ignore_ascii_case(b"arroba"))
    })
}

/// Adds a span; one that reaches back over earlier ones (an address
/// whose local part held a "phone") takes their place.
fn push(found: &mut Vec<Span>, mut start: usize, end: usize, kind: Kind) {
    while let Some(last) = found.last() {
        if last.end <= start {
            break;
        }
        start = start.min(last.start);
        found.pop();
    }
    found.push(Span { start, end, kind });
}

/// `text` with every e-mail address, phone number and Luhn-valid card
/// number replaced by a placeholder.
pub fn redact<'a>(text: &'a str, counts: &mut Redactions) -> Cow<'a, str> {
    replace(text, counts, |kind, _| Cow::Borrowed(kind.placeholder()))
}

/// `text`, an identifier, with every e-mail address, phone number and
/// card number replaced by a token of the same shape as an identifier
/// (`phone_3fa2b1`): deterministic, so that references between
/// identifiers survive, and free of brackets and spaces, which the
/// providers refuse in names and ids.
pub fn redact_identifier<'a>(text: &'a str, counts: &mut Redactions) -> Cow<'a, str> {
    replace(text, counts, |kind, original| {
        Cow::Owned(kind.token(original))
    })
}

/// A JSON value with every string redacted, keys included, and every
/// number that is PII (a phone or a card written as a JSON number)
/// replaced by its placeholder as a string: the value stays valid JSON.
pub fn redact_json(value: serde_json::Value, counts: &mut Redactions) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact(&s, counts).into_owned()),
        Value::Number(n) => {
            let written = n.to_string();
            match redact(&written, counts) {
                Cow::Borrowed(_) => Value::Number(n),
                Cow::Owned(redacted) => Value::String(redacted),
            }
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| redact_json(v, counts)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (redact(&k, counts).into_owned(), redact_json(v, counts)))
                .collect(),
        ),
        other => other,
    }
}

/// A tool call's `arguments`, a JSON document in a string: redacted as
/// JSON when it parses (so that it still does), as text when it does not.
pub fn redact_arguments(arguments: &str, counts: &mut Redactions) -> String {
    let mut found = Redactions::default();
    if spans(arguments).is_empty() {
        return arguments.to_owned();
    }
    let redacted = match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(value) => serde_json::to_string(&redact_json(value, &mut found))
            .unwrap_or_else(|_| redact(arguments, &mut Redactions::default()).into_owned()),
        Err(_) => redact(arguments, &mut found).into_owned(),
    };
    counts.email += found.email;
    counts.phone += found.phone;
    counts.card += found.card;
    redacted
}

fn replace<'a>(
    text: &'a str,
    counts: &mut Redactions,
    by: impl Fn(Kind, &str) -> Cow<'static, str>,
) -> Cow<'a, str> {
    let found = spans(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0usize;
    for span in found {
        // Spans are in order, inside the text and on character
        // boundaries; a span that were not would be left out rather than
        // end the process.
        let (Some(before), Some(original)) =
            (text.get(copied..span.start), text.get(span.start..span.end))
        else {
            continue;
        };
        out.push_str(before);
        out.push_str(&by(span.kind, original));
        span.kind.count(counts);
        copied = span.end;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    Cow::Owned(out)
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod written_forms;

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
    fn a_card_at_the_end_of_a_sentence_is_redacted() {
        for (text, expected) in [
            ("Mi tarjeta es 4111111111111111.", "Mi tarjeta es [CARD]."),
            (
                "Mi tarjeta es 4111 1111 1111 1111.",
                "Mi tarjeta es [CARD].",
            ),
            ("¿Es 4111-1111-1111-1111?", "¿Es [CARD]?"),
            ("(tarjeta: 4111111111111111).", "(tarjeta: [CARD])."),
        ] {
            let (out, c) = r(text);
            assert_eq!(out, expected, "{text}");
            assert_eq!(
                c,
                Redactions {
                    card: 1,
                    ..Redactions::default()
                },
                "{text}"
            );
        }
    }

    #[test]
    fn a_card_followed_by_more_digits_is_still_redacted() {
        // GIVEN a card followed by its expiry date or its security code
        for (text, expected) in [
            ("4111 1111 1111 1111 12/28", "[CARD] 12/28"),
            ("4111111111111111 123", "[CARD] 123"),
        ] {
            // WHEN redacted THEN the card goes, what follows stays
            let (out, c) = r(text);
            assert_eq!(out, expected, "{text}");
            assert_eq!(c.card, 1, "{text}");
        }
    }

    #[test]
    fn digits_in_an_address_go_with_the_address() {
        let (out, c) = r("escribe a 0612345678@mail.example.com.");
        assert_eq!(out, "escribe a [EMAIL].");
        assert_eq!(
            c,
            Redactions {
                email: 1,
                ..Redactions::default()
            }
        );
    }

    #[test]
    fn dates_with_times_amounts_with_thousands_and_references_are_left_alone() {
        for text in [
            "el 2026-11-30 14:03",
            "el 30.11.2026 14:03.",
            "total 1.299.000,00 €",
            "total 1 299 000,50 €",
            "pedido ORD-2026-00123.",
        ] {
            let (out, c) = r(text);
            assert_eq!(out, text);
            assert_eq!(c, Redactions::default(), "{text}");
        }
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
