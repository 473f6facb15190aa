//! The `bedrock-conversation-2024` format Amazon Nova fine-tuning reads,
//! and its checker.
//!
//! A record: `{"schemaVersion": "bedrock-conversation-2024", "system":
//! [{"text": …}], "messages": [{"role": "user", "content": [{"text": …}]},
//! {"role": "assistant", "content": [{"text": …}]}, …]}`. Per Amazon Nova's
//! "Preparing data for fine-tuning Understanding models" guide: roles are
//! only `user` and `assistant`, the first turn is the user's and the last
//! the assistant's (we also require them to alternate, as the Converse
//! format they follow does), the system turn is optional, and a user or
//! system prompt must not start with a reserved keyword (`User:`, `Bot:`,
//! `Assistant:`, `System:`, `<image>`, `<video>`, `[EOS]`). Record and
//! token limits per model are in [`super::limits`].
//!
//! It lives with the Bedrock adapter because only Bedrock reads it; the
//! preparation reaches it through the Bedrock profile
//! ([`super::profile::BedrockProfile`]) as an [`ExampleFormat`], and the
//! evaluation reads its [`Record`]s back.
//!
//! Like the OpenAI checker, every violation is a counted category, never
//! fatal: a conversation that breaks one is dropped as `format:<category>`.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::limits::ModelLimits;
use crate::dataset::DatasetFormat;
use crate::dataset::check::{LineError, trim_line};
use crate::dataset::conversation::{Message, Role};
use crate::dataset::dictionaries::DictionaryError;
use crate::dataset::format::ExampleFormat;
use crate::dataset::stats::Distribution;
use crate::dataset::tokens::{Encoding, TokenCounter};

/// The `schemaVersion` of every record (the format's name).
pub const SCHEMA_VERSION: &str = DatasetFormat::BedrockConversation.as_str();

/// Words Nova reserves at the start of a user or system prompt.
const RESERVED_PREFIXES: &[&str] = &[
    "User:",
    "Bot:",
    "Assistant:",
    "System:",
    "<image>",
    "<video>",
    "[EOS]",
];

/// Nova's tokenizer is not public; o200k_base is the estimate we count with.
pub const ESTIMATE_ENCODING: Encoding = Encoding::O200kBase;

/// Per message, as for OpenAI's convention: a rough allowance for the role
/// and turn markers (an estimate; Nova's template is not published).
const TOKENS_PER_MESSAGE: u64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextBlock {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: Vec<TextBlock>,
}

/// One line of a Bedrock dataset file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "schemaVersion")]
    pub schema_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<TextBlock>,
    pub messages: Vec<Turn>,
}

/// The record of a prepared conversation: system messages become system
/// blocks, consecutive messages of one role become one turn of several
/// blocks, and what the assistant said before the user first spoke (a
/// greeting) is left out, since a record must open with the user. Tool
/// calls have no place in this text format: such conversations are
/// refused with `tool_calls_unsupported`.
pub fn to_record(messages: &[Message]) -> Result<Record, &'static str> {
    let mut record = Record {
        schema_version: SCHEMA_VERSION.to_owned(),
        system: Vec::new(),
        messages: Vec::new(),
    };
    for m in messages {
        if m.role == Role::Tool || m.tool_calls.is_some() {
            return Err("tool_calls_unsupported");
        }
        let Some(text) = m.content.as_ref().filter(|c| !c.trim().is_empty()) else {
            continue;
        };
        let role = match m.role {
            Role::System => {
                record.system.push(TextBlock { text: text.clone() });
                continue;
            }
            Role::User => "user",
            Role::Assistant if record.messages.is_empty() => continue,
            Role::Assistant => "assistant",
            Role::Tool => return Err("tool_calls_unsupported"),
        };
        match record.messages.last_mut() {
            Some(turn) if turn.role == role => turn.content.push(TextBlock { text: text.clone() }),
            _ => record.messages.push(Turn {
                role: role.to_owned(),
                content: vec![TextBlock { text: text.clone() }],
            }),
        }
    }
    Ok(record)
}

/// Writes `messages` as one record line (no newline); the category when
/// the conversation cannot be a record.
pub fn write_record(out: &mut Vec<u8>, messages: &[Message]) -> Result<(), &'static str> {
    let record = to_record(messages)?;
    // Plain strings into a Vec: serialisation cannot fail.
    let _ = serde_json::to_writer(&mut *out, &record);
    Ok(())
}

/// The `bedrock-conversation-2024` format as the preparation writes it:
/// one record per example, checked against Nova's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConversationFormat;

impl ExampleFormat for ConversationFormat {
    fn write_checked(
        &self,
        out: &mut Vec<u8>,
        messages: &[Message],
        counter: &mut TokenCounter,
        max_tokens: usize,
    ) -> Result<u64, &'static str> {
        write_record(out, messages)?;
        let text = std::str::from_utf8(out).unwrap_or_default();
        let check = check_record(text, counter, max_tokens);
        match check.errors.first() {
            Some(category) => Err(*category),
            None => Ok(check.tokens.unwrap_or(0)),
        }
    }
}

/// What the checker found in one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordCheck {
    /// Categories, once per occurrence.
    pub errors: Vec<&'static str>,
    /// Estimated tokens (None when the line is not a record at all).
    pub tokens: Option<u64>,
}

/// Checks one record line against Nova's rules and `max_tokens`.
pub fn check_record(line: &str, counter: &mut TokenCounter, max_tokens: usize) -> RecordCheck {
    let mut out = RecordCheck::default();
    let record: Record = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(_) => {
            out.errors.push("invalid_record");
            return out;
        }
    };
    if record.schema_version != SCHEMA_VERSION {
        out.errors.push("schema_version");
    }
    let mut tokens = 0u64;
    for block in &record.system {
        if starts_reserved(&block.text) {
            out.errors.push("reserved_keyword");
        }
        tokens += counter.count(&block.text) as u64;
    }
    if !record.system.is_empty() {
        tokens += TOKENS_PER_MESSAGE;
    }
    if record.messages.is_empty() {
        out.errors.push("missing_messages");
    }
    for (i, turn) in record.messages.iter().enumerate() {
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        match turn.role.as_str() {
            "user" | "assistant" => {
                if turn.role != expected {
                    out.errors.push(if i == 0 {
                        "first_turn_not_user"
                    } else {
                        "turns_not_alternating"
                    });
                }
            }
            _ => out.errors.push("role_invalid"),
        }
        if turn.content.is_empty() || turn.content.iter().any(|b| b.text.trim().is_empty()) {
            out.errors.push("content_empty");
        }
        for block in &turn.content {
            if turn.role == "user" && starts_reserved(&block.text) {
                out.errors.push("reserved_keyword");
            }
            tokens += counter.count(&block.text) as u64;
        }
        tokens += TOKENS_PER_MESSAGE;
    }
    if record
        .messages
        .last()
        .is_some_and(|t| t.role != "assistant")
    {
        out.errors.push("last_turn_not_assistant");
    }
    if tokens > max_tokens as u64 {
        out.errors.push("over_token_limit");
    }
    out.tokens = Some(tokens);
    out
}

fn starts_reserved(text: &str) -> bool {
    let t = text.trim_start();
    RESERVED_PREFIXES.iter().any(|p| t.starts_with(p))
}

/// A Bedrock dataset file's report, shaped like the OpenAI checker's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordReport {
    pub records: u64,
    /// Category -> occurrences; only categories that occurred.
    pub format_errors: BTreeMap<String, u64>,
    /// Where (the first 1,000).
    pub line_errors: Vec<LineError>,
    /// `too_few_records` / `too_many_records` for the file's role.
    pub count_errors: Vec<String>,
    pub max_tokens_per_record: usize,
    pub tokens: Distribution,
}

/// Which file of a dataset is checked: the record limits differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Train,
    Validation,
}

/// Checks a Bedrock JSONL file line by line against `limits`.
pub fn check_records<R: BufRead>(
    mut reader: R,
    limits: &ModelLimits,
    role: FileRole,
) -> Result<RecordReport, DictionaryError> {
    const MAX_LINE_ERRORS: usize = 1_000;
    let mut counter = TokenCounter::new(ESTIMATE_ENCODING)?;
    let mut report = RecordReport {
        records: 0,
        format_errors: BTreeMap::new(),
        line_errors: Vec::new(),
        count_errors: Vec::new(),
        max_tokens_per_record: limits.max_tokens_per_record,
        tokens: Distribution::default(),
    };
    let mut tokens = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        line_no += 1;
        let bytes = trim_line(&buf, line_no == 1);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.records += 1;
        let check = match std::str::from_utf8(bytes) {
            Ok(line) => check_record(line, &mut counter, limits.max_tokens_per_record),
            Err(_) => RecordCheck {
                errors: vec!["invalid_record"],
                tokens: None,
            },
        };
        for category in &check.errors {
            *report
                .format_errors
                .entry((*category).to_owned())
                .or_default() += 1;
            if report.line_errors.len() < MAX_LINE_ERRORS {
                report.line_errors.push(LineError {
                    line: line_no,
                    category: (*category).to_owned(),
                });
            }
        }
        if let Some(t) = check.tokens {
            tokens.push(u32::try_from(t).unwrap_or(u32::MAX));
        }
    }
    let (min, max) = match role {
        FileRole::Train => (limits.min_train_records, limits.max_train_records),
        FileRole::Validation => (0, limits.max_validation_records),
    };
    if report.records < min {
        report.count_errors.push(format!(
            "too_few_records: {} records, at least {min} needed",
            report.records
        ));
    }
    if report.records > max {
        report.count_errors.push(format!(
            "too_many_records: {} records, at most {max} allowed",
            report.records
        ));
    }
    report.tokens = Distribution::of(&tokens);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::bedrock::limits::limits_for;

    fn msg(role: Role, text: &str) -> Message {
        Message {
            role,
            content: Some(text.to_owned()),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }
    }

    fn line(messages: &[Message]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, messages).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn check(line: &str) -> RecordCheck {
        check_record(
            line,
            &mut TokenCounter::new(ESTIMATE_ENCODING).unwrap(),
            32_000,
        )
    }

    #[test]
    fn a_conversation_becomes_the_documented_record_shape() {
        let text = line(&[
            msg(Role::System, "You are Acme's support agent."),
            msg(Role::User, "Where is my order?"),
            msg(Role::Assistant, "It ships today."),
        ]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "schemaVersion": "bedrock-conversation-2024",
                "system": [{"text": "You are Acme's support agent."}],
                "messages": [
                    {"role": "user", "content": [{"text": "Where is my order?"}]},
                    {"role": "assistant", "content": [{"text": "It ships today."}]}
                ]
            })
        );
        let checked = check(&text);
        assert_eq!(checked.errors, Vec::<&str>::new());
        assert!(checked.tokens.unwrap() > 10);
    }

    #[test]
    fn a_greeting_is_dropped_and_repeated_roles_merge_into_one_turn() {
        let record = to_record(&[
            msg(Role::Assistant, "Hi! How can I help?"),
            msg(Role::User, "My parcel"),
            msg(Role::User, "is late"),
            msg(Role::Assistant, "Sorry to hear that."),
        ])
        .unwrap();
        assert!(record.system.is_empty());
        assert_eq!(record.messages.len(), 2);
        assert_eq!(record.messages[0].role, "user");
        assert_eq!(record.messages[0].content.len(), 2);
        assert_eq!(record.messages[1].role, "assistant");
    }

    #[test]
    fn tool_calls_cannot_be_written_in_this_format() {
        let mut call = msg(Role::Assistant, "");
        call.content = None;
        call.tool_calls = Some(vec![]);
        assert_eq!(
            to_record(&[msg(Role::User, "hi"), call]),
            Err("tool_calls_unsupported")
        );
    }

    #[test]
    fn every_broken_rule_is_its_own_category() {
        let cases = [
            ("not json", vec!["invalid_record"]),
            (
                r#"{"schemaVersion":"x","messages":[{"role":"user","content":[{"text":"a"}]},{"role":"assistant","content":[{"text":"b"}]}]}"#,
                vec!["schema_version"],
            ),
            (
                r#"{"schemaVersion":"bedrock-conversation-2024","messages":[]}"#,
                vec!["missing_messages"],
            ),
            (
                r#"{"schemaVersion":"bedrock-conversation-2024","messages":[{"role":"assistant","content":[{"text":"a"}]}]}"#,
                vec!["first_turn_not_user"],
            ),
            (
                r#"{"schemaVersion":"bedrock-conversation-2024","messages":[{"role":"user","content":[{"text":"a"}]},{"role":"user","content":[{"text":"b"}]}]}"#,
                vec!["turns_not_alternating", "last_turn_not_assistant"],
            ),
            (
                r#"{"schemaVersion":"bedrock-conversation-2024","messages":[{"role":"system","content":[{"text":"a"}]},{"role":"assistant","content":[{"text":"b"}]}]}"#,
                vec!["role_invalid"],
            ),
            (
                r#"{"schemaVersion":"bedrock-conversation-2024","messages":[{"role":"user","content":[]},{"role":"assistant","content":[{"text":"b"}]}]}"#,
                vec!["content_empty"],
            ),
            (
                r#"{"schemaVersion":"bedrock-conversation-2024","system":[{"text":"System: be nice"}],"messages":[{"role":"user","content":[{"text":"User: hi"}]},{"role":"assistant","content":[{"text":"b"}]}]}"#,
                vec!["reserved_keyword", "reserved_keyword"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(check(text).errors, expected, "{text}");
        }
    }

    #[test]
    fn a_record_over_the_token_limit_is_reported() {
        let long = "word ".repeat(200);
        let text = line(&[msg(Role::User, &long), msg(Role::Assistant, "ok")]);
        let checked = check_record(
            &text,
            &mut TokenCounter::new(ESTIMATE_ENCODING).unwrap(),
            100,
        );
        assert_eq!(checked.errors, ["over_token_limit"]);
    }

    #[test]
    fn a_file_report_counts_categories_lines_and_the_record_limits() {
        let limits = limits_for("amazon.nova-micro-v1:0:128k").unwrap();
        let good = line(&[msg(Role::User, "q"), msg(Role::Assistant, "a")]);
        let file = format!("{good}\n\nnot json\n{good}\n");
        let report = check_records(file.as_bytes(), limits, FileRole::Train).unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(report.format_errors["invalid_record"], 1);
        assert_eq!(report.line_errors[0].line, 3);
        assert_eq!(
            report.count_errors,
            ["too_few_records: 3 records, at least 8 needed"]
        );
        let validation = check_records(file.as_bytes(), limits, FileRole::Validation).unwrap();
        assert!(validation.count_errors.is_empty());
    }
}
