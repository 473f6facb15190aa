//! Reading the normalised text around a byte offset: characters, words
//! and the word a number follows. Every offset here may come from a
//! scanner, so nothing indexes or slices without a check.

/// The character that starts at byte `i`.
pub fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..)?.chars().next()
}

/// The character that ends at byte `i`.
pub fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i)?.chars().next_back()
}

/// A letter, digit, mark or '_' of any script: what glues a number to a
/// word, or makes up an address.
pub fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_mark(c)
}

/// Combining marks that `is_alphanumeric` leaves out (a decomposed
/// `ü` is `u` and U+0308).
fn is_mark(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0300..=0x036F | 0x0483..=0x0489 | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF
            | 0xFE20..=0xFE2F
    )
}

/// The word (letters only) that ends where `i` is, after skipping back
/// over up to three spaces and the punctuation people put between a
/// label and a number (`Tel: `, `nº `, `#`, `order no. `). A slice: this
/// runs for every number, and allocates nothing.
fn word_ending_before(text: &str, i: usize) -> Option<(&str, usize)> {
    let mut end = i;
    for _ in 0..3 {
        match char_before(text, end) {
            Some(c) if matches!(c, ' ' | ':' | '.' | '#' | '-' | 'º' | '°' | '\t') => {
                end -= c.len_utf8();
            }
            _ => break,
        }
    }
    let mut start = end;
    while let Some(c) = char_before(text, start) {
        if !c.is_alphabetic() || end - start > 32 {
            break;
        }
        start -= c.len_utf8();
    }
    let word = text.get(start..end)?;
    (!word.is_empty()).then_some((word, start))
}

/// Whether `word` is one of `list` (lowercase), in any case.
fn one_of(word: &str, list: &[&str]) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(word))
        || (!word.is_ascii() && list.contains(&word.to_lowercase().as_str()))
}

/// Words that stand between a label and its number, and say nothing.
const CONNECTORS: &[&str] = &[
    "number", "no", "n", "nº", "num", "nr", "nro", "número", "numero", "de", "del", "is", "es",
    "me", "on", "at", "al", "a", "to", "my", "mi", "su", "your", "the", "el", "la",
];

/// The label a number carries: the first word before it that is not a
/// connector (`order number 123` is labelled `order`, `call me on` is
/// labelled `call`), looking back at most three words.
fn label_before(text: &str, i: usize) -> Option<&str> {
    let mut at = i;
    for _ in 0..3 {
        let (word, start) = word_ending_before(text, at)?;
        if !one_of(word, CONNECTORS) {
            return Some(word);
        }
        at = start;
    }
    None
}

/// Labels of a phone number.
const PHONE_LABELS: &[&str] = &[
    "tel",
    "tél",
    "tlf",
    "telf",
    "telefono",
    "teléfono",
    "telephone",
    "téléphone",
    "telefon",
    "phone",
    "mobile",
    "móvil",
    "movil",
    "cell",
    "celular",
    "fax",
    "whatsapp",
    "call",
    "llama",
    "llámame",
    "llamame",
    "llamar",
    "sms",
    "ph",
    "mob",
    "handy",
    "portable",
    "contacto",
];

/// Labels of a reference: an order, an invoice, a ticket.
const REFERENCE_LABELS: &[&str] = &[
    "order",
    "orden",
    "pedido",
    "ref",
    "reference",
    "referencia",
    "invoice",
    "factura",
    "ticket",
    "tracking",
    "seguimiento",
    "case",
    "caso",
    "booking",
    "reserva",
    "commande",
    "bestellung",
    "sku",
    "item",
    "id",
    "serial",
    "confirmation",
    "confirmación",
    "albarán",
    "albaran",
    "envío",
    "envio",
    "shipment",
    "parcel",
    "paquete",
];

/// Whether the number at `i` is labelled as a phone (`Tel-0612…`,
/// `llama al 612.345.678`).
pub fn phone_label_before(text: &str, i: usize) -> bool {
    label_before(text, i).is_some_and(|w| one_of(w, PHONE_LABELS))
}

/// Whether the number at `i` is a reference: labelled as one, joined to
/// a word by a hyphen (`ORD-2026-00123`), or after a '#'.
pub fn reference_before(text: &str, i: usize) -> bool {
    let bytes = text.as_bytes();
    let hyphenated =
        i >= 2 && bytes.get(i - 1) == Some(&b'-') && char_before(text, i - 1).is_some_and(is_word);
    let hash = text.get(..i).is_some_and(|t| t.trim_end().ends_with('#'));
    hyphenated || hash || label_before(text, i).is_some_and(|w| one_of(w, REFERENCE_LABELS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbers_label_skips_connectors_and_punctuation() {
        assert!(reference_before("order number 123", 13));
        assert!(reference_before("Pedido nº 123", 10));
        assert!(reference_before("ORD-2026", 4));
        assert!(reference_before("ref #123", 5));
        assert!(phone_label_before("Tel: 0612", 5));
        assert!(phone_label_before("call me on 612", 11));
        assert!(phone_label_before("mi teléfono es 612", 16));
        assert!(!phone_label_before("my number is 612", 13));
        assert!(!reference_before("my number is 612", 13));
    }
}
