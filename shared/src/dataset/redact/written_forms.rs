//! Properties over the ways people write PII, drawn from classes rather
//! than listed: every separator of Unicode category Zs, hyphen-like
//! dashes, '/', '.', '_', doubled spaces; digits of every script the
//! normaliser folds; invisible characters anywhere inside; numbers glued
//! to letters; national phone formats that look like amounts; Unicode,
//! punycode and spelled-out addresses; credentials in URLs; and the
//! identifiers (names, call ids) that reach a provider.

use proptest::prelude::*;
use proptest::sample::select;

use super::properties::{
    AFTER, BEFORE, LEAD, TRAIL, assert_replaced, card_digits, one, placed, reads_as_pii_residue,
    redacted,
};
use super::{CARD, EMAIL, PHONE, Redactions, redact, redact_identifier, spans};

/// Spaces of category Zs, and the ASCII ones.
const SPACES: &[&str] = &[
    " ", "  ", "\u{a0}", "\u{1680}", "\u{2000}", "\u{2001}", "\u{2002}", "\u{2003}", "\u{2004}",
    "\u{2005}", "\u{2006}", "\u{2007}", "\u{2008}", "\u{2009}", "\u{200a}", "\u{202f}", "\u{205f}",
    "\u{3000}", "\t",
];

/// Hyphens and dashes: ASCII, U+2010–U+2015, minus sign, small and
/// fullwidth hyphen-minus, and a hyphen with spaces around it.
const DASHES: &[&str] = &[
    "-",
    "\u{2010}",
    "\u{2011}",
    "\u{2012}",
    "\u{2013}",
    "\u{2014}",
    "\u{2015}",
    "\u{2212}",
    "\u{fe63}",
    "\u{ff0d}",
    " - ",
    " \u{2013} ",
];

/// Other separators between a number's groups.
const OTHER_SEPARATORS: &[&str] = &["/", ".", "_", "\u{ff0f}", "\u{ff0e}", " / "];

/// Characters no reader sees.
const INVISIBLE: &[&str] = &[
    "\u{ad}", "\u{200b}", "\u{200c}", "\u{200d}", "\u{2060}", "\u{feff}", "\u{200e}", "\u{200f}",
];

/// The zero of each digit form a number may be written in.
const ZEROS: &[u32] = &[
    0x30, 0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x1D7CE, 0x1D7D8, 0x1D7EC, 0x0AE6,
];

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![select(SPACES), select(DASHES), select(OTHER_SEPARATORS)]
}

/// Each digit of `ascii` in a digit form (one for the whole number, or
/// one per digit), and `invisible` characters slipped in between
/// characters (never at either end: what stands outside the number is
/// not the number's).
fn rewrite(ascii: &str, forms: &[u32], per_digit: bool, invisible: &[Option<&str>]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = ascii.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if i > 0
            && let Some(Some(inv)) = invisible.get(i)
        {
            out.push_str(inv);
        }
        match c.to_digit(10) {
            Some(d) => {
                let zero = if per_digit {
                    forms[i % forms.len()]
                } else {
                    forms[0]
                };
                out.push(char::from_u32(zero + d).unwrap_or(*c));
            }
            None => out.push(*c),
        }
    }
    out
}

/// Digit forms and invisible characters for a number of up to 40 characters.
fn disguise() -> impl Strategy<Value = (Vec<u32>, bool, Vec<Option<&'static str>>)> {
    (
        prop::collection::vec(select(ZEROS), 1..4),
        any::<bool>(),
        prop::collection::vec(prop::option::weighted(0.15, select(INVISIBLE)), 40),
    )
}

/// A Luhn-valid card, grouped by any separator of the classes (one for
/// the whole number, as people type them, or mixed).
fn card_in_any_form() -> impl Strategy<Value = String> {
    (
        card_digits(),
        prop::collection::vec(any::<bool>(), 18),
        prop::collection::vec(separator(), 18),
        any::<bool>(),
        disguise(),
    )
        .prop_map(|(digits, cuts, seps, same_sep, (forms, per_digit, inv))| {
            let mut ascii = String::new();
            for (i, d) in digits.iter().enumerate() {
                if i > 0 && cuts[i - 1] && i % 2 == 0 {
                    ascii.push_str(if same_sep { seps[0] } else { seps[i - 1] });
                }
                ascii.push(char::from(b'0' + d));
            }
            rewrite(&ascii, &forms, per_digit, &inv)
        })
}

/// Digit strings of `n` digits, the first from `first`.
fn digits(first: std::ops::RangeInclusive<u8>, n: usize) -> impl Strategy<Value = Vec<u8>> {
    (first, prop::collection::vec(0u8..=9, n - 1)).prop_map(|(f, mut rest)| {
        rest.insert(0, f);
        rest
    })
}

/// `digits` in groups of 2–4 (at least three groups), joined by one
/// separator.
fn grouped(digits: &[u8], cuts: &[u8], sep: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut groups = 0;
    while i < digits.len() {
        let left = digits.len() - i;
        let size = if left <= 4 {
            left
        } else {
            usize::from(cuts[groups % cuts.len()]).min(left - 2)
        };
        if groups > 0 {
            out.push_str(sep);
        }
        for d in &digits[i..i + size] {
            out.push(char::from(b'0' + d));
        }
        i += size;
        groups += 1;
    }
    out
}

/// National phone numbers: with a trunk 0 (9–11 digits), without one
/// (9–12 digits grouped, 9–10 bare), with an area code in parentheses,
/// with an international prefix written `00` or `+`, grouped by any
/// separator of the classes — so also the ones that look like an amount
/// (612.345.678) or a date's digits — in any digit form.
fn phone_in_any_form() -> impl Strategy<Value = String> {
    let cuts = prop::collection::vec(2u8..=4, 6);
    let shape = prop_oneof![
        // Trunk 0, grouped or bare.
        (9usize..=11)
            .prop_flat_map(|n| digits(0..=0, n))
            .prop_map(|mut d| {
                d[1] = d[1].max(1);
                (d, 0u8)
            }),
        // No trunk: grouped.
        (9usize..=12)
            .prop_flat_map(|n| digits(1..=9, n))
            .prop_map(|d| (d, 1u8)),
        // No trunk: bare, 9–10 digits.
        (9usize..=10)
            .prop_flat_map(|n| digits(1..=9, n))
            .prop_map(|d| (d, 2u8)),
        // Area code: (555)1234567, (555) 123 4567.
        (7usize..=10)
            .prop_flat_map(|n| digits(1..=9, n))
            .prop_map(|d| (d, 3u8)),
        // 00 or + and a country code.
        (9usize..=13)
            .prop_flat_map(|n| digits(1..=9, n))
            .prop_map(|d| (d, 4u8)),
    ];
    (shape, cuts, separator(), any::<bool>(), disguise()).prop_map(
        |((d, shape), cuts, sep, flag, (forms, per_digit, inv))| {
            let bare = |d: &[u8]| d.iter().map(|&x| char::from(b'0' + x)).collect::<String>();
            let ascii = match shape {
                0 if flag => bare(&d),
                2 => bare(&d),
                3 => {
                    let rest = grouped(&d[3..], &cuts, sep);
                    let gap = if flag { "" } else { " " };
                    format!("({}){gap}{rest}", bare(&d[..3]))
                }
                4 => {
                    let prefix = if flag { "00" } else { "+" };
                    format!("{prefix}{}", grouped(&d, &cuts, sep))
                }
                _ => grouped(&d, &cuts, sep),
            };
            rewrite(&ascii, &forms, per_digit, &inv)
        },
    )
}

/// Letters a number is glued to: labels before, suffixes after.
const GLUE_BEFORE: &[&str] = &["CC", "Tel", "Tel-", "tlf:", "Nr", "card", "Mob."];
const GLUE_AFTER: &[&str] = &["exp", "ext", "x", "h", "CVV", "pm"];

/// What may stand right before and after an address: no letter, digit
/// or character of a local part, which a reader would take as part of it.
pub(super) const EMAIL_BEFORE: &[&str] = &[
    "", " ", ": ", "!", "?", ")", "]", "\"", "¿", "¡", "(", "[", "«", "😀", "卡号 ", "<",
];
pub(super) const EMAIL_AFTER: &[&str] = &[
    "", " ", ".", ",", ";", ":", "!", "?", ")", "]", "\"", "。", "，", "😀", ").", "»", "…", ">",
];

/// Letters of a local part or a domain label, from several scripts and
/// with a decomposed accent.
fn letters() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9]",
            select(vec!["é", "ü", "ñ", "ø", "ç", "ß", "u\u{308}", "e\u{301}"])
                .prop_map(String::from),
            "[а-я]",
            "[α-ω]",
        ],
        1..8,
    )
    .prop_map(|parts| parts.concat())
}

/// An address written any way people write one.
fn email_in_any_form() -> impl Strategy<Value = String> {
    let local = (
        letters(),
        prop::option::of((select(vec![".", "_", "-", "+"]), letters())),
    )
        .prop_map(|(a, b)| match b {
            Some((sep, b)) => format!("{a}{sep}{b}"),
            None => a,
        });
    let tld = prop_oneof![
        "[a-z]{2,6}",
        "xn--[a-z0-9]{2,8}",
        select(vec!["рф", "укр", "中国", "ελ", "de"]).prop_map(String::from),
    ];
    let labels = prop::collection::vec(letters(), 1..3);
    let notation = 0u8..5;
    (local, labels, tld, notation).prop_map(|(local, labels, tld, notation)| {
        let (at, dot) = match notation {
            0 => ("@", "."),
            1 => ("＠", "．"),
            2 => (" [at] ", " [dot] "),
            3 => ("(at)", "."),
            _ => (" at ", " dot "),
        };
        let mut domain = labels.join(dot);
        domain.push_str(dot);
        domain.push_str(&tld);
        format!("{local}{at}{domain}")
    })
}

pub(super) fn email_placed()
-> impl Strategy<Value = (&'static str, &'static str, &'static str, &'static str)> {
    (
        select(LEAD),
        select(EMAIL_BEFORE),
        select(EMAIL_AFTER),
        select(TRAIL),
    )
}

/// Numbers that stay, in forms this file adds: labelled references of
/// the lengths a bare national number has, versions, times with
/// seconds, quantities, short codes glued to letters.
fn must_stay_too() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            select(vec![
                " order ",
                " pedido nº ",
                " ref #",
                " invoice no. ",
                " ticket ",
                "#"
            ]),
            "[1-9][0-9]{8,9}"
        )
            .prop_map(|(label, n)| format!("{label}{n}")),
        "v[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,3}",
        "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
        "[1-9][0-9]? x [1-9][0-9]?",
        "A[1-9][0-9]{5}",
        "SKU[1-9][0-9]{8,9}",
        "[1-9][0-9]{0,2}( [0-9]{3}){0,2} ?(€|\\$|£)",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn a_card_in_any_separator_or_digit_form_is_redacted(
        card in card_in_any_form(),
        context in placed(),
    ) {
        assert_replaced(&card, CARD, context)?;
    }

    #[test]
    fn a_phone_in_any_national_or_international_form_is_redacted(
        number in phone_in_any_form(),
        context in placed(),
    ) {
        assert_replaced(&number, PHONE, context)?;
    }

    #[test]
    fn an_address_in_any_script_or_notation_is_redacted(
        address in email_in_any_form(),
        context in email_placed(),
    ) {
        assert_replaced(&address, EMAIL, context)?;
    }

    #[test]
    fn a_card_or_phone_glued_to_letters_is_redacted(
        (_, card) in (Just(()), card_in_any_form()),
        trunk in "0[1-9][0-9]{8}",
        before in select(GLUE_BEFORE),
        after in select(GLUE_AFTER),
        (lead, trail) in (select(LEAD), select(TRAIL)),
    ) {
        for (item, placeholder) in [(card.as_str(), CARD), (trunk.as_str(), PHONE)] {
            let text = format!("{lead}{before}{item}{after}{trail}");
            let (out, counts) = redacted(&text);
            prop_assert_eq!(&out, &format!("{lead}{before}{placeholder}{after}{trail}"));
            prop_assert_eq!(counts, one(placeholder));
        }
    }

    #[test]
    fn credentials_in_a_url_are_redacted_with_its_host(
        user in "[a-z][a-z0-9._-]{0,10}",
        password in "[A-Za-z0-9!$&*+,;=~%-]{1,16}",
        host in "[a-z]{1,10}(\\.[a-z]{2,6}){1,2}",
        path in "(/[a-z][a-z0-9]{0,8}){0,3}",
    ) {
        let text = format!("see https://{user}:{password}@{host}{path} now");
        let (out, counts) = redacted(&text);
        prop_assert_eq!(out, format!("see https://{EMAIL}{path} now"));
        prop_assert_eq!(counts, one(EMAIL));
    }

    #[test]
    fn labelled_references_versions_times_and_codes_stay(
        item in must_stay_too(),
        (lead, before, after, trail) in (select(LEAD), select(BEFORE), select(AFTER), select(TRAIL)),
    ) {
        let text = format!("{lead}{before}{item}{after}{trail}");
        prop_assert!(spans(&text).is_empty(), "{:?} in {:?}", spans(&text), text);
    }

    #[test]
    fn an_identifier_keeps_an_identifiers_shape_and_pairs_with_itself(
        (_, card) in (Just(()), card_digits()),
        trunk in "0[1-9][0-9]{8}",
        prefix in "[a-z]{1,8}_",
        address in "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,4}",
    ) {
        let card: String = card.iter().map(|&d| char::from(b'0' + d)).collect();
        for item in [card, trunk, address] {
            let id = format!("{prefix}{item}");
            let mut counts = Redactions::default();
            let once = redact_identifier(&id, &mut counts).into_owned();
            prop_assert_eq!(counts.email + counts.phone + counts.card, 1, "{}", id);
            // An address takes the prefix with it: `_` belongs to its
            // local part.
            prop_assert!(item.contains('@') || once.starts_with(&prefix), "{}", once);
            prop_assert!(
                once.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{}", once
            );
            prop_assert!(!once.contains(&item));
            // The same id gives the same token: a call and its result pair up.
            let again = redact_identifier(&id, &mut Redactions::default()).into_owned();
            prop_assert_eq!(&once, &again);
            // A token is not PII again.
            prop_assert!(spans(&once).is_empty(), "{}", once);
        }
    }

    #[test]
    fn any_text_is_scanned_without_panic_into_ordered_spans_on_character_boundaries(
        text in prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop_oneof![
                    select(vec!["@", "[at]", " at ", " dot ", ".", "(", ")", "+", "00", "0", "-", "/"])
                        .prop_map(String::from),
                    "[0-9]{1,6}",
                    select(SPACES).prop_map(String::from),
                    select(INVISIBLE).prop_map(String::from),
                    "\\PC{0,3}",
                ],
                0..40,
            ).prop_map(|parts| parts.concat()),
        ],
    ) {
        let found = spans(&text);
        let mut last = 0;
        for s in &found {
            prop_assert!(s.start >= last && s.start < s.end && s.end <= text.len(), "{:?}", found);
            prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            last = s.end;
        }
        let mut counts = Redactions::default();
        let out = redact(&text, &mut counts);
        prop_assert_eq!(
            (counts.email + counts.phone + counts.card) as usize,
            found.len()
        );
        let _ = redact_identifier(&out, &mut Redactions::default());
    }

    #[test]
    fn a_mix_in_any_form_leaves_nothing_a_reader_would_read_as_pii(
        card in card_in_any_form(),
        number in phone_in_any_form(),
        address in email_in_any_form(),
    ) {
        let text = format!("Tarjeta: {card}; tel. {number}; correo: {address}.");
        let (out, counts) = redacted(&text);
        prop_assert_eq!(counts, Redactions { email: 1, phone: 1, card: 1 }, "{}", out);
        prop_assert!(!reads_as_pii_residue(&out), "{}", out);
    }
}

#[test]
fn the_forms_the_review_found_are_each_redacted() {
    for (text, expected) in [
        ("4111\u{a0}1111\u{a0}1111\u{a0}1111", CARD),
        ("4111\u{2009}1111\u{2009}1111\u{2009}1111", CARD),
        ("4111\u{202f}1111\u{202f}1111\u{202f}1111", CARD),
        ("４１１１１１１１１１１１１１１１", CARD),
        ("4111/1111/1111/1111", CARD),
        ("4111_1111_1111_1111", CARD),
        ("4111.1111.1111.1111", CARD),
        ("4111  1111  1111  1111", CARD),
        ("CC4111111111111111", CARD),
        ("josé@example.com", EMAIL),
        ("anna@müller.de", EMAIL),
        ("müller@example.com", EMAIL),
        ("ivan@xn--e1afmkfd.xn--p1ai", EMAIL),
        ("ana＠example.com", EMAIL),
        ("ana [at] example [dot] com", EMAIL),
        ("https://bob:s3cret@example.com", EMAIL),
        ("612345678", PHONE),
        ("5551234567", PHONE),
        ("612/34/56/78", PHONE),
        ("612.345.678", PHONE),
        ("612\u{2013}345\u{2013}678", PHONE),
        ("612  345  678", PHONE),
        ("0034 612 345 678", PHONE),
        ("(555)1234567", PHONE),
        ("Tel-0612345678", PHONE),
        ("0612345678ext", PHONE),
    ] {
        let found = spans(text);
        assert_eq!(found.len(), 1, "{text:?}: {found:?}");
        assert_eq!(found[0].kind.placeholder(), expected, "{text:?}");
        let (out, _) = redacted(text);
        assert!(!reads_as_pii_residue(&out), "{text:?} became {out:?}");
    }
}

#[test]
fn a_card_broken_over_a_line_is_redacted_as_two_phones() {
    let (out, counts) = redacted("4111 1111\n1111 1111");
    assert_eq!(out, format!("{PHONE}\n{PHONE}"));
    assert_eq!(counts.phone, 2);
}

#[test]
fn only_the_contexts_before_and_after_an_address_are_its_own() {
    // The general contexts hold letters, which would join an address's
    // local part or domain; the address properties use their own.
    assert!(BEFORE.iter().any(|b| b.chars().any(char::is_alphabetic)));
    assert!(AFTER.iter().any(|b| b.chars().any(char::is_alphabetic)));
    assert!(
        !EMAIL_BEFORE
            .iter()
            .any(|b| b.ends_with(char::is_alphanumeric))
    );
}
