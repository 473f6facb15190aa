//! The fine-tuned model's `suffix`, made acceptable to OpenAI.
//!
//! OpenAI documents only a length (1..=64 in the spec; its docs said 40,
//! and in 2023 the server enforced 18) and no character set. The suffix
//! becomes part of `ft:{base}:{org}:{suffix}:{id}`, so the rule picked
//! here is the conservative one: lowercase ASCII letters, digits, `-` and
//! `_`; every other run of characters (spaces, dots, colons — the name's
//! own separator — accents) becomes one `-`; leading and trailing `-`/`_`
//! are trimmed; at most [`MAX_SUFFIX_LEN`] characters. An empty result
//! means "no suffix". Anything the server still dislikes comes back as a
//! 400 with `param: "suffix"`.

/// 40: the documented limit at the time of writing, under the spec's 64.
pub const MAX_SUFFIX_LEN: usize = 40;

pub fn sanitize_suffix(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(MAX_SUFFIX_LEN));
    let mut pending_dash = false;
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
            if pending_dash && !out.is_empty() && c != '-' {
                out.push('-');
            }
            pending_dash = false;
            if c == '-' && out.ends_with('-') {
                continue;
            }
            out.push(c);
        } else {
            pending_dash = true;
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '_');
    let mut cut: String = trimmed.chars().take(MAX_SUFFIX_LEN).collect();
    while cut.ends_with(['-', '_']) {
        cut.pop();
    }
    (!cut.is_empty()).then_some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_characters_pass_through_lowercased() {
        assert_eq!(
            sanitize_suffix("Acme_Support-v2").as_deref(),
            Some("acme_support-v2")
        );
    }

    #[test]
    fn other_characters_collapse_to_one_dash() {
        assert_eq!(
            sanitize_suffix("acme: support  bot.v2").as_deref(),
            Some("acme-support-bot-v2")
        );
        assert_eq!(sanitize_suffix("café--bot").as_deref(), Some("caf-bot"));
    }

    #[test]
    fn edges_are_trimmed_and_length_capped() {
        assert_eq!(sanitize_suffix("  --run--  ").as_deref(), Some("run"));
        let long = "a".repeat(39) + "-bcd";
        let s = sanitize_suffix(&long).unwrap();
        assert_eq!(s, "a".repeat(39));
        assert!(s.len() <= MAX_SUFFIX_LEN);
    }

    #[test]
    fn nothing_usable_means_no_suffix() {
        assert_eq!(sanitize_suffix(":::"), None);
        assert_eq!(sanitize_suffix(""), None);
    }
}
