//! What may reach a record the tenant reads (a run's error, its job's
//! error, its timeline): no names of our AWS resources and no account id.
//!
//! Failures are written for the tenant on purpose (a stable code and a
//! sentence, the detail in the logs), but some sentences carry a
//! provider's own words (why a job or a deployment failed), and those can
//! name a role, a secret or the account. This scrubber is the last wall:
//! the store runs every tenant-visible text through it before writing, so
//! a sentence that slips past its author still cannot leak them.

use std::borrow::Cow;

/// What an ARN is replaced with.
pub const ARN_PLACEHOLDER: &str = "[aws resource]";
/// What a 12-digit number (an AWS account id's shape) is replaced with.
pub const ACCOUNT_PLACEHOLDER: &str = "[account]";

/// `text` with every ARN (`arn:` at the start of a word, up to the next
/// space, quote or bracket) and every run of exactly 12 ASCII digits that
/// is not part of a word (an id's hex) replaced. Borrowed when there is nothing to replace (the common case).
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !needs_scrubbing(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let boundary = out
            .chars()
            .next_back()
            .is_none_or(|p| !p.is_alphanumeric() && p != '_' && p != '-');
        if boundary && let Some(len) = arn_len(rest) {
            out.push_str(ARN_PLACEHOLDER);
            rest = &rest[len..];
            continue;
        }
        if c.is_ascii_digit() {
            // The whole run of digits at once: 13 digits hold no account
            // id, and nor do digits inside a word (our hex ids).
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let before = out.chars().next_back();
            let after = rest[digits..].chars().next();
            if digits == 12 && !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                out.push_str(ACCOUNT_PLACEHOLDER);
            } else {
                out.push_str(&rest[..digits]);
            }
            rest = &rest[digits..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Whether `text` holds something [`scrub`] replaces (what a test over a
/// record asserts is absent).
pub fn needs_scrubbing(text: &str) -> bool {
    has_arn(text) || has_account_id(text)
}

fn has_arn(text: &str) -> bool {
    text.match_indices("arn:").any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|p| !p.is_alphanumeric() && p != '_' && p != '-')
            && arn_len(&text[at..]).is_some()
    })
}

fn has_account_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if end - start == 12 && !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        start = end;
    }
    false
}

/// A letter or digit: a 12-digit run next to one is part of a word (a
/// hex id), not an account id.
fn is_word(c: char) -> bool {
    c.is_alphanumeric()
}

/// The length of the ARN `text` starts with: `arn:` and what follows up
/// to a space, a quote or a bracket, less a sentence's closing punctuation.
/// `None` when `text` does not start with one (`arn:` and nothing).
fn arn_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("arn:")?;
    let end = body
        .find(|c: char| c.is_whitespace() || "\"'`()[]{}<>".contains(c))
        .unwrap_or(body.len());
    let token = body[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
    (!token.is_empty()).then_some("arn:".len() + token.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_roles_secrets_and_deployments_are_replaced_and_the_sentence_kept() {
        let text = "User: arn:aws:sts::123456789012:assumed-role/finetune-monitor/abc is not \
                    authorized to perform secretsmanager:GetSecretValue on resource: \
                    arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-key-AbCdEf.";
        assert_eq!(
            scrub(text),
            "User: [aws resource] is not authorized to perform secretsmanager:GetSecretValue \
             on resource: [aws resource]."
        );
    }

    #[test]
    fn a_bare_account_id_is_replaced_but_other_numbers_are_kept() {
        assert_eq!(
            scrub("account 123456789012 has 1234567890123 bytes, 12345678901 tokens"),
            "account [account] has 1234567890123 bytes, 12345678901 tokens"
        );
        assert_eq!(scrub("id=123456789012;"), "id=[account];");
    }

    #[test]
    fn digits_inside_a_hex_id_are_kept() {
        let text = "model mdl_123456789012abcdef0123456789abcdef and run_abcdef01234567890123";
        assert!(!needs_scrubbing(text));
        assert_eq!(scrub(text), text);
    }

    #[test]
    fn words_ending_in_arn_are_not_arns() {
        let text = "you will learn: nothing; Darn: it";
        assert!(!needs_scrubbing(text));
        assert!(matches!(scrub(text), Cow::Borrowed(_)));
    }

    #[test]
    fn an_arn_in_quotes_or_brackets_keeps_them() {
        assert_eq!(
            scrub(
                "model 'arn:aws:bedrock:us-east-1:000000000000:custom-model/x' (arn:aws:iam::role/y)"
            ),
            "model '[aws resource]' ([aws resource])"
        );
    }

    #[test]
    fn text_without_either_is_borrowed_unchanged() {
        let text = "only 4 training examples were left after filtering, at least 10 are needed";
        assert!(matches!(scrub(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn scrubbed_text_needs_no_more_scrubbing() {
        for text in [
            "arn:aws:iam::123456789012:role/x123456789012",
            "123456789012123456789012",
            "a:arn:aws:s3:::bucket/key 123456789012.",
            "ﬁ arn:aws:kms:eu-west-1:123456789012:key/é 123456789012",
        ] {
            let once = scrub(text).into_owned();
            assert!(!needs_scrubbing(&once), "{text} -> {once}");
        }
    }
}
