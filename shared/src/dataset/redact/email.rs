//! E-mail addresses as people write them: Unicode local parts and
//! domains (`josé@…`, `anna@müller.de`), punycode and non-Latin top-level
//! domains, spelled-out at-signs and dots (`ana [at] example [dot] com`,
//! `ana at example dot com`), and credentials in a URL
//! (`https://bob:s3cret@host`). All offsets are in the normalised text,
//! where a fullwidth `＠` is already '@'.

use super::text::{char_at, char_before, is_word};

/// How an address's at-sign is written: from which byte to which.
#[derive(Debug, Clone, Copy)]
pub struct AtSign {
    pub start: usize,
    pub end: usize,
    /// Spelled out (`[at]`, ` at `): the domain may spell its dots too,
    /// and a word-form at-sign needs a spelled-out dot to count.
    spelled: bool,
    word: bool,
}

/// The at-sign that starts at `i`, if one does: `@`, `@` between single
/// spaces, `[at]` / `(at)` / `{at}` / `<at>` (also with `@` or `arroba`
/// inside, spaces around), or ` at ` / ` arroba ` between words.
pub fn at_sign(text: &str, i: usize) -> Option<AtSign> {
    let bytes = text.as_bytes();
    let b = *bytes.get(i)?;
    if b == b'@' {
        let spaced = i > 0
            && bytes.get(i - 1) == Some(&b' ')
            && bytes.get(i + 1) == Some(&b' ')
            && char_before(text, i - 1).is_some_and(|c| c != ' ');
        return Some(if spaced {
            AtSign {
                start: i - 1,
                end: i + 2,
                spelled: false,
                word: false,
            }
        } else {
            AtSign {
                start: i,
                end: i + 1,
                spelled: false,
                word: false,
            }
        });
    }
    if matches!(b, b'[' | b'(' | b'{' | b'<') {
        let close = match b {
            b'[' => b']',
            b'(' => b')',
            b'{' => b'}',
            _ => b'>',
        };
        let inner = skip_spaces(bytes, i + 1);
        let word_end = spelled_word(text, inner, &["at", "@", "arroba"])?;
        let after = skip_spaces(bytes, word_end);
        if bytes.get(after) != Some(&close) {
            return None;
        }
        return Some(AtSign {
            start: back_over_spaces(bytes, i),
            end: skip_spaces(bytes, after + 1),
            spelled: true,
            word: false,
        });
    }
    if b == b' ' && char_before(text, i).is_some_and(is_word) {
        let word_end = spelled_word(text, i + 1, &["at", "arroba"])?;
        if bytes.get(word_end) != Some(&b' ') {
            return None;
        }
        return Some(AtSign {
            start: i,
            end: word_end + 1,
            spelled: true,
            word: true,
        });
    }
    None
}

/// The address around `at`, from the start of its local part to the end
/// of its domain, or of the URL's host when `at` ends a URL's userinfo.
pub fn around(text: &str, at: AtSign) -> Option<(usize, usize)> {
    if !at.spelled
        && at.end == at.start + 1
        && let Some(span) = url_credentials(text, at.start)
    {
        return Some(span);
    }
    let start = local_start(text, at.start)?;
    let end = domain_end(text, at.end, at.spelled, at.word)?;
    Some((start, end))
}

/// The address whose local part contains `from` (digits that run on into
/// an address, `0612345678@mail.com`, are its local part).
pub fn through(text: &str, from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(c) = char_at(text, i) {
        if !is_local(c) {
            break;
        }
        i += c.len_utf8();
    }
    let at = at_sign(text, i).filter(|a| !a.word && a.start == i)?;
    let (start, end) = around(text, at)?;
    (start <= from).then_some((start, end))
}

fn is_local(c: char) -> bool {
    is_word(c) || matches!(c, '.' | '%' | '+' | '-')
}

fn is_label(c: char) -> bool {
    (is_word(c) && c != '_') || c == '-'
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

fn back_over_spaces(bytes: &[u8], mut i: usize) -> usize {
    while i > 0 && bytes.get(i - 1) == Some(&b' ') {
        i -= 1;
    }
    i
}

/// The end of one of `words` (ASCII, case-insensitive) at `i`, when no
/// letter follows it.
fn spelled_word(text: &str, i: usize, words: &[&str]) -> Option<usize> {
    let rest = text.get(i..)?;
    words.iter().find_map(|w| {
        let end = i + w.len();
        let matches = rest
            .get(..w.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(w));
        let alone = char_at(text, end).is_none_or(|c| !c.is_alphanumeric());
        (matches && alone).then_some(end)
    })
}

/// Where the local part that ends at `at` starts (leading dots are not
/// part of it), if it has any character.
fn local_start(text: &str, at: usize) -> Option<usize> {
    let mut start = at;
    while let Some(c) = char_before(text, start) {
        if !is_local(c) || at - start > 256 {
            break;
        }
        start -= c.len_utf8();
    }
    while start < at && text.as_bytes().get(start) == Some(&b'.') {
        start += 1;
    }
    (start < at).then_some(start)
}

/// A separator between domain labels at `i`: '.', a bracketed dot
/// (`[dot]`, `(punto)`, spaces around), or — when the at-sign was a word
/// — a word-form dot (` dot `). Returns where the next label starts and
/// whether the dot was spelled out.
fn domain_dot(text: &str, i: usize, spelled: bool) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    if bytes.get(i) == Some(&b'.') {
        return Some((i + 1, false));
    }
    if !spelled {
        return None;
    }
    let open = skip_spaces(bytes, i);
    const DOTS: &[&str] = &["dot", "punto", "point"];
    if let Some(&b) = bytes.get(open)
        && matches!(b, b'[' | b'(' | b'{' | b'<')
    {
        let inner = skip_spaces(bytes, open + 1);
        let end = spelled_word(text, inner, &["dot", "punto", "point", "."])?;
        let close = skip_spaces(bytes, end);
        return matches!(bytes.get(close), Some(b']' | b')' | b'}' | b'>'))
            .then(|| (skip_spaces(bytes, close + 1), true));
    }
    if bytes.get(i) == Some(&b' ') {
        let end = spelled_word(text, i + 1, DOTS)?;
        return (bytes.get(end) == Some(&b' ')).then_some((end + 1, true));
    }
    None
}

/// The end of a domain starting at `from`: labels joined by dots, the
/// last an alphabetic top-level domain of two letters or more (any
/// script) or a punycode one (`xn--p1ai`). A word-form at-sign counts
/// only with a spelled-out dot, so `meet at example.com` is left alone.
fn domain_end(text: &str, from: usize, spelled: bool, word_at: bool) -> Option<usize> {
    let mut labels: Vec<(usize, usize)> = Vec::new();
    let mut i = from;
    let mut spelled_dot = false;
    loop {
        let start = i;
        while let Some(c) = char_at(text, i) {
            if !is_label(c) || i - from > 512 {
                break;
            }
            i += c.len_utf8();
        }
        // A hyphen that ends a label is the sentence's, not the domain's.
        let mut end = i;
        while end > start && text.as_bytes().get(end - 1) == Some(&b'-') {
            end -= 1;
        }
        if end == start {
            break;
        }
        labels.push((start, end));
        if end < i {
            break;
        }
        match domain_dot(text, i, spelled) {
            Some((next, word)) if char_at(text, next).is_some_and(is_label) => {
                spelled_dot |= word;
                i = next;
            }
            _ => break,
        }
    }
    if labels.len() < 2 || (word_at && !spelled_dot) {
        return None;
    }
    // The last label that can be a top-level domain ends the address: in
    // `ana@example.com.I've` the sentence's full stop comes before `I`.
    labels
        .iter()
        .skip(1)
        .rev()
        .find(|&&(start, end)| text.get(start..end).is_some_and(is_tld))
        .map(|&(_, end)| end)
}

/// A top-level domain: two letters or more of any script (with the marks
/// a decomposed letter carries), or punycode (`xn--p1ai`).
fn is_tld(tld: &str) -> bool {
    let punycode = tld.len() > 4 && tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"));
    let alphabetic = tld.chars().count() >= 2
        && tld
            .chars()
            .all(|c| is_word(c) && !c.is_numeric() && c != '_');
    punycode || alphabetic
}

/// `scheme://user:password@host`: the span from the userinfo to the end
/// of the host, when the '@' at `at` ends a URL's userinfo.
fn url_credentials(text: &str, at: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut start = at;
    while start > 0 && at - start < 512 {
        let b = *bytes.get(start - 1)?;
        if b.is_ascii_whitespace() || matches!(b, b'/' | b'@' | b'"' | b'<' | b'>' | b'\'') {
            break;
        }
        start -= 1;
    }
    let scheme_end = start.checked_sub(3)?;
    if bytes.get(scheme_end..start)? != b"://" || start == at {
        return None;
    }
    let scheme = text.get(..scheme_end)?;
    if !scheme.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut end = at + 1;
    while let Some(c) = char_at(text, end) {
        if !(is_label(c) || matches!(c, '.' | ':' | '[' | ']')) {
            break;
        }
        end += c.len_utf8();
    }
    while end > at + 1 && matches!(bytes.get(end - 1), Some(b'.' | b':')) {
        end -= 1;
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Option<&str> {
        let i = text.find(['@', '[', '(']).or_else(|| text.find(" at "))?;
        let at = at_sign(text, i)?;
        let (s, e) = around(text, at)?;
        text.get(s..e)
    }

    #[test]
    fn unicode_and_punycode_addresses_are_found_whole() {
        for (text, address) in [
            ("write to josé@example.com.", "josé@example.com"),
            ("anna@müller.de", "anna@müller.de"),
            ("müller@example.org", "müller@example.org"),
            ("a mu\u{308}ller@example.org", "mu\u{308}ller@example.org"),
            ("ivan@пример.рф", "ivan@пример.рф"),
            ("ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai"),
            ("ana@example.com.I've", "ana@example.com"),
        ] {
            assert_eq!(find(text), Some(address), "{text}");
        }
    }

    #[test]
    fn spelled_out_addresses_are_found_whole() {
        for (text, address) in [
            ("ana [at] example [dot] com", "ana [at] example [dot] com"),
            ("ana(at)example.com", "ana(at)example.com"),
            ("ana at example dot com", "ana at example dot com"),
            ("ana @ example.com", "ana @ example.com"),
        ] {
            assert_eq!(find(text), Some(address), "{text}");
        }
        assert_eq!(find("meet at example.com"), None);
        assert_eq!(find("look at this"), None);
    }

    #[test]
    fn credentials_in_a_url_go_with_the_host() {
        assert_eq!(
            find("see https://bob:s3cret@example.com/x"),
            Some("bob:s3cret@example.com")
        );
    }
}
