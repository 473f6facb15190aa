//! The redactor proved by properties over generated inputs: every
//! Luhn-valid card, e-mail address and phone number goes, wherever it
//! stands in a sentence and however it is written — separators and digits
//! drawn from the Unicode classes people's keyboards, IMEs and PDF copies
//! produce, invisible characters inside, glued to letters, spelled out —
//! and dates, prices, times, versions and order numbers stay.
//!
//! The claim checked for what must go is the strongest one that holds:
//! the output is *exactly* the text with the item replaced by its
//! placeholder, and one redaction of that kind (and none of another) is
//! counted. The surrounding text has no ASCII digit and no '@', so this
//! implies that not one digit of a card or phone (let alone a run of
//! them, with or without separators) and no part of an address is left.

use std::borrow::Cow;

use proptest::prelude::*;
use proptest::sample::select;

use super::normalise::Normalised;
use super::{CARD, EMAIL, PHONE, Redactions, redact};

/// What may stand right before an item: nothing, punctuation, quotes, an
/// opening bracket, a colon, non-ASCII letters (Latin, CJK, emoji).
pub(super) const BEFORE: &[&str] = &[
    "",
    " ",
    ".",
    ". ",
    ",",
    ";",
    ":",
    ": ",
    "!",
    "?",
    ")",
    "]",
    "\"",
    "'",
    "¿",
    "¡",
    "(",
    "[",
    "á",
    "ñ",
    "ü",
    "Ä",
    "卡号",
    "电话：",
    "😀",
    "«",
    "—",
];

/// What may stand right after an item.
pub(super) const AFTER: &[&str] = &[
    "", " ", ".", ",", ";", ":", "!", "?", ")", "]", "\"", "'", "¿", "¡", "(", "á", "ñ", "ü", "。",
    "，", "😀", ").", ".\"", "!)", "»", "…",
];

/// Text around the item and its neighbours: nothing (the item starts or
/// ends the text) or words, separated from the neighbours by a space.
pub(super) const LEAD: &[&str] = &[
    "",
    "Mi tarjeta es ",
    "Escribe a ",
    "我的号码是 ",
    "Grüße, ",
    "¿Es correcto? ",
];
pub(super) const TRAIL: &[&str] = &["", " Gracias", " y nada más", " 谢谢", " 👍", " ¿vale?"];

/// An item in context, and the same context with `placeholder` instead.
pub(super) fn placed()
-> impl Strategy<Value = (&'static str, &'static str, &'static str, &'static str)> {
    (select(LEAD), select(BEFORE), select(AFTER), select(TRAIL))
}

pub(super) fn redacted(text: &str) -> (String, Redactions) {
    let mut c = Redactions::default();
    let out = redact(text, &mut c).into_owned();
    (out, c)
}

pub(super) fn one(kind: &str) -> Redactions {
    Redactions {
        email: u64::from(kind == EMAIL),
        phone: u64::from(kind == PHONE),
        card: u64::from(kind == CARD),
    }
}

/// The check digit that makes `body` followed by it Luhn-valid: computed
/// here independently of the redactor's own checksum.
pub(super) fn luhn_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            // The check digit will be position 0 from the right, so the
            // body's last digit is doubled.
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    // sum % 10 < 10, so the result fits a digit.
    ((10 - sum % 10) % 10) as u8
}

/// A Luhn-valid card number of 13–19 digits: random digits, then the
/// computed check digit.
pub(super) fn card_digits() -> impl Strategy<Value = Vec<u8>> {
    // Card numbers start with their industry digit, 1–9.
    (13usize..=19)
        .prop_flat_map(|n| (1u8..=9, prop::collection::vec(0u8..=9, n - 2)))
        .prop_map(|(first, mut body)| {
            body.insert(0, first);
            let check = luhn_check_digit(&body);
            body.push(check);
            body
        })
}

/// How a card is written: its digits, and the text with groups.
fn card() -> impl Strategy<Value = (String, String)> {
    let grouping = prop_oneof![
        Just(0u8), // one run: 4111111111111111
        Just(1u8), // groups of four: 4111 1111 1111 1111
        Just(2u8), // 4-6-rest, as on Amex cards: 3782 822463 10005
        Just(3u8), // anywhere
    ];
    (
        card_digits(),
        grouping,
        prop::collection::vec(any::<bool>(), 18),
        prop::collection::vec(select(vec![' ', '-']), 18),
        any::<bool>(),
    )
        .prop_map(|(digits, grouping, cuts, seps, same_sep)| {
            let plain: String = digits.iter().map(|&d| char::from(b'0' + d)).collect();
            let mut text = String::new();
            for (i, c) in plain.chars().enumerate() {
                let cut = i > 0
                    && match grouping {
                        0 => false,
                        1 => i % 4 == 0,
                        2 => i == 4 || i == 10,
                        _ => cuts[i - 1],
                    };
                if cut {
                    text.push(if same_sep { seps[0] } else { seps[i - 1] });
                }
                text.push(c);
            }
            (plain, text)
        })
}

/// International phone numbers in the shapes people write them.
fn phone() -> impl Strategy<Value = String> {
    prop_oneof![
        // +52 55 1234 5678, +44 20 7946 0958
        "\\+[1-9][0-9]{0,2} [0-9]{2} [0-9]{4} [0-9]{4}",
        // +1 (555) 123-4567
        "\\+[1-9][0-9]{0,2} \\([0-9]{3}\\) [0-9]{3}-[0-9]{4}",
        // +34 612 345 678
        "\\+[1-9][0-9]{0,2} [0-9]{3} [0-9]{3} [0-9]{3}",
        // +33 6 12 34 56 78, +49-30-1234567
        "\\+[1-9][0-9]{0,2} [0-9] [0-9]{2} [0-9]{2} [0-9]{2} [0-9]{2}",
        "\\+[1-9][0-9]{0,2}-[0-9]{2}-[0-9]{7}",
        // +447911123456
        "\\+[1-9][0-9]{9,12}",
    ]
}

/// E-mail addresses: dotted, hyphenated and underscored local parts
/// (digits too), plus tags, hyphenated labels and subdomains.
fn email() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,10}([._-][A-Za-z0-9]{1,8}){0,2}(\\+[a-z0-9]{1,6})?@([a-z0-9]{1,8}(-[a-z0-9]{1,8})?\\.){1,3}[a-z]{2,6}"
}

/// Numbers that are no card, e-mail or phone.
fn must_stay() -> impl Strategy<Value = String> {
    prop_oneof![
        // Order numbers: a run of 5–8 or 11–19 digits that fails Luhn
        // (a bare run of 9–10 is a national phone number unless labelled
        // as a reference: see `written_forms`).
        prop_oneof![5usize..=8, 11usize..=19]
            .prop_flat_map(|n| (1u8..=9, prop::collection::vec(0u8..=9, n - 2), 1u8..=9))
            .prop_map(|(first, mut body, wrong)| {
                body.insert(0, first);
                let check = (luhn_check_digit(&body) + wrong) % 10;
                body.push(check);
                body.iter()
                    .map(|&d| char::from(b'0' + d))
                    .collect::<String>()
            }),
        "ORD-20[0-9]{2}-[0-9]{5}",
        // Prices: $1,299.00, 1.299,50 €, 1 299,50 €.
        "\\$[1-9][0-9]{0,2}(,[0-9]{3}){0,3}\\.[0-9]{2}",
        "[1-9][0-9]{0,2}(\\.[0-9]{3}){0,3},[0-9]{2} ?€",
        "[1-9][0-9]{0,2}( [0-9]{3}){0,2},[0-9]{2} €",
        "€ ?[1-9][0-9]{0,2}(\\.[0-9]{3}){0,3}(,[0-9]{2})?",
        // Dates, alone or with a time: 2026-11-30, 30/11/2026, 30.11.2026 14:03.
        "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])( [01][0-9]:[0-5][0-9])?",
        "(0[1-9]|[12][0-9]|3[01])/(0[1-9]|1[0-2])/20[0-9]{2}( [01][0-9]:[0-5][0-9])?",
        "(0[1-9]|[12][0-9]|3[01])\\.(0[1-9]|1[0-2])\\.20[0-9]{2}( [01][0-9]:[0-5][0-9])?",
        "(0[1-9]|[12][0-9]|3[01])-(0[1-9]|1[0-2])-20[0-9]{2}( [01][0-9]:[0-5][0-9])?",
        "[1-9]/[1-9]/20[0-9]{2}",
        "[1-9]\\.[1-9]\\.20[0-9]{2}",
        // Times: 14:03, 09:30:15.
        "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?",
    ]
}

/// Whether any digit or at-sign, in any form a reader would read as one,
/// is left in `out` (the contexts hold none).
pub(super) fn reads_as_pii_residue(out: &str) -> bool {
    Normalised::new(out)
        .text
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'@')
}

/// Exactly the context with `placeholder` instead of the item, and one
/// redaction of that kind counted.
pub(super) fn assert_replaced(
    item: &str,
    placeholder: &str,
    (lead, before, after, trail): (&str, &str, &str, &str),
) -> Result<(), TestCaseError> {
    let text = format!("{lead}{before}{item}{after}{trail}");
    let (out, counts) = redacted(&text);
    prop_assert_eq!(
        &out,
        &format!("{lead}{before}{placeholder}{after}{trail}"),
        "in {:?}",
        text
    );
    prop_assert_eq!(counts, one(placeholder), "in {:?}", text);
    prop_assert!(!reads_as_pii_residue(&out), "{out}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn every_luhn_valid_card_is_redacted_wherever_it_stands(
        (plain, written) in card(),
        context in placed(),
    ) {
        prop_assert!(super::number::luhn(&plain.bytes().map(|b| b - b'0').collect::<Vec<_>>()));
        assert_replaced(&written, CARD, context)?;
    }

    #[test]
    fn every_international_phone_is_redacted_wherever_it_stands(
        number in phone(),
        context in placed(),
    ) {
        assert_replaced(&number, PHONE, context)?;
    }

    #[test]
    fn every_email_address_is_redacted_wherever_it_stands(
        address in email(),
        context in super::written_forms::email_placed(),
    ) {
        assert_replaced(&address, EMAIL, context)?;
    }

    #[test]
    fn a_card_an_address_and_a_phone_in_one_text_are_each_counted_once(
        (_, card) in card(),
        address in email(),
        number in phone(),
        (b1, a1, b2, a2) in (
            select(BEFORE),
            select(AFTER),
            select(super::written_forms::EMAIL_BEFORE),
            select(super::written_forms::EMAIL_AFTER),
        ),
    ) {
        let text = format!("Tarjeta {b1}{card}{a1} correo {b2}{address}{a2} tel {number}.");
        let (out, counts) = redacted(&text);
        prop_assert_eq!(
            &out,
            &format!("Tarjeta {b1}{CARD}{a1} correo {b2}{EMAIL}{a2} tel {PHONE}."),
        );
        prop_assert_eq!(counts, Redactions { email: 1, phone: 1, card: 1 });
        // Redacting again changes nothing and counts nothing.
        let (again, counts) = redacted(&out);
        prop_assert_eq!(again, out);
        prop_assert_eq!(counts, Redactions::default());
    }

    #[test]
    fn dates_prices_times_and_order_numbers_stay_as_they_are(
        item in must_stay(),
        (lead, before, after, trail) in placed(),
    ) {
        let text = format!("{lead}{before}{item}{after}{trail}");
        let mut counts = Redactions::default();
        let out = redact(&text, &mut counts);
        // Borrowed: not even a copy is made.
        prop_assert!(matches!(out, Cow::Borrowed(_)), "{:?} became {:?}", text, out);
        prop_assert_eq!(counts, Redactions::default(), "in {:?}", text);
    }
}
