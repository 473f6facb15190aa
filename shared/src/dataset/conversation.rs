//! The conversation export format (see `docs/conversation-format.md`) and
//! the rules that turn one conversation into training messages.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::redact::{Redactions, redact, redact_arguments, redact_identifier};
use crate::domain::Filters;

/// One line of an export.
#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub rating: Option<i64>,
    pub messages: Vec<ExportMessage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExportMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A message of a training example, in OpenAI's chat format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    fn parse(role: &str) -> Option<Role> {
        match role {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ToolFunction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolFunction {
    pub name: String,
    pub arguments: String,
}

/// Why a conversation did not become an example. Each is its own counter
/// in the dataset stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    OtherTenant,
    OutsideDateRange,
    ExcludedOutcome,
    BelowMinRating,
    UnknownRole,
    MissingContent,
    BrokenToolCalls,
    NoAssistantReply,
    TooFewAssistantTurns,
    TurnOverTokenLimit,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::OtherTenant => "other_tenant",
            DropReason::OutsideDateRange => "outside_date_range",
            DropReason::ExcludedOutcome => "excluded_outcome",
            DropReason::BelowMinRating => "below_min_rating",
            DropReason::UnknownRole => "unknown_role",
            DropReason::MissingContent => "missing_content",
            DropReason::BrokenToolCalls => "broken_tool_calls",
            DropReason::NoAssistantReply => "no_assistant_reply",
            DropReason::TooFewAssistantTurns => "too_few_assistant_turns",
            DropReason::TurnOverTokenLimit => "turn_over_token_limit",
        }
    }
}

/// What decides whether a conversation is used, and how.
#[derive(Debug, Clone)]
pub struct Rules {
    pub tenant: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub filters: Filters,
    pub system_prompt: Option<String>,
}

impl Rules {
    /// The conversation's training messages: filtered, checked, redacted,
    /// with the configured system prompt, normalised (CRLF to LF, outer
    /// whitespace trimmed) and cut after the last assistant reply.
    pub fn apply(
        &self,
        conv: Conversation,
        redactions: &mut Redactions,
    ) -> Result<Vec<Message>, DropReason> {
        if conv.tenant_id.as_deref().is_some_and(|t| t != self.tenant) {
            return Err(DropReason::OtherTenant);
        }
        // The timestamp decides, not the folder the export was found in.
        let day = conv.started_at.date_naive();
        if day < self.start || day > self.end {
            return Err(DropReason::OutsideDateRange);
        }
        if conv
            .outcome
            .as_deref()
            .is_some_and(|o| self.filters.exclude_outcomes.iter().any(|x| x == o))
        {
            return Err(DropReason::ExcludedOutcome);
        }
        if let (Some(min), Some(rating)) = (self.filters.min_rating, conv.rating)
            && rating < min
        {
            return Err(DropReason::BelowMinRating);
        }
        let redact_pii = self.filters.redact_pii;
        // Every free-text field that reaches a provider is scanned: text
        // as text, identifiers (names, call ids, function names) with
        // tokens they can hold, tool arguments as the JSON they are.
        let text = |t: String, r: &mut Redactions| {
            if redact_pii {
                match redact(&t, r) {
                    Cow::Borrowed(_) => t,
                    Cow::Owned(o) => o,
                }
            } else {
                t
            }
        };
        let ident = |t: String, r: &mut Redactions| {
            if redact_pii {
                match redact_identifier(&t, r) {
                    Cow::Borrowed(_) => t,
                    Cow::Owned(o) => o,
                }
            } else {
                t
            }
        };
        let mut messages = Vec::with_capacity(conv.messages.len() + 1);
        if let Some(prompt) = &self.system_prompt {
            messages.push(text_message(
                Role::System,
                text(prompt.trim().to_owned(), redactions),
            ));
        }
        let mut pending: Vec<String> = Vec::new();
        for m in conv.messages {
            let role = Role::parse(&m.role).ok_or(DropReason::UnknownRole)?;
            if role == Role::System && self.system_prompt.is_some() {
                continue;
            }
            let calls = match m.tool_calls {
                Some(raw) if !raw.is_empty() => {
                    if role != Role::Assistant || !pending.is_empty() {
                        return Err(DropReason::BrokenToolCalls);
                    }
                    let calls = parse_calls(raw).ok_or(DropReason::BrokenToolCalls)?;
                    pending = calls.iter().map(|c| c.id.clone()).collect();
                    Some(calls)
                }
                _ => None,
            };
            if role == Role::Tool {
                let id = m
                    .tool_call_id
                    .as_deref()
                    .ok_or(DropReason::BrokenToolCalls)?;
                let before = pending.len();
                pending.retain(|p| p != id);
                if pending.len() == before {
                    return Err(DropReason::BrokenToolCalls);
                }
            } else if calls.is_none() && !pending.is_empty() {
                // A call left without its result.
                return Err(DropReason::BrokenToolCalls);
            }
            let content = m.content.map(|c| normalise(&c)).filter(|c| !c.is_empty());
            if content.is_none() && calls.is_none() {
                return Err(DropReason::MissingContent);
            }
            let content = content.map(|c| text(c, redactions));
            let calls = calls.map(|calls| {
                calls
                    .into_iter()
                    .map(|mut c| {
                        if redact_pii {
                            c.function.arguments =
                                redact_arguments(&c.function.arguments, redactions);
                        }
                        c.id = ident(c.id, redactions);
                        c.function.name = ident(c.function.name, redactions);
                        c
                    })
                    .collect()
            });
            messages.push(Message {
                role,
                content,
                name: m
                    .name
                    .filter(|n| !n.is_empty())
                    .map(|n| ident(n, redactions)),
                tool_calls: calls,
                tool_call_id: if role == Role::Tool {
                    m.tool_call_id.map(|id| ident(id, redactions))
                } else {
                    None
                },
            });
        }
        // Training ends on a reply: drop what follows the last plain
        // assistant message (an unanswered question, a call in flight).
        let last_reply = messages
            .iter()
            .rposition(|m| m.role == Role::Assistant && m.tool_calls.is_none());
        let Some(last_reply) = last_reply else {
            return Err(DropReason::NoAssistantReply);
        };
        messages.truncate(last_reply + 1);
        let turns = messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        if (turns as u64) < u64::from(self.filters.min_assistant_turns) {
            return Err(DropReason::TooFewAssistantTurns);
        }
        Ok(messages)
    }
}

fn text_message(role: Role, content: String) -> Message {
    Message {
        role,
        content: Some(content),
        name: None,
        tool_calls: None,
        tool_call_id: None,
    }
}

fn parse_calls(raw: Vec<serde_json::Value>) -> Option<Vec<ToolCall>> {
    let mut calls = Vec::with_capacity(raw.len());
    for value in raw {
        let call: ToolCall = serde_json::from_value(value).ok()?;
        if call.id.is_empty() || call.kind != "function" || call.function.name.is_empty() {
            return None;
        }
        calls.push(call);
    }
    Some(calls)
}

/// CRLF to LF and outer whitespace trimmed: the same text exported twice
/// should be the same example.
fn normalise(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.contains('\r') {
        trimmed.replace("\r\n", "\n")
    } else {
        trimmed.to_owned()
    }
}

/// A 128-bit digest of the example's content, blind to ids, times and
/// runs of whitespace: two exports of one conversation collide, different
/// conversations practically never do.
pub fn content_digest(messages: &[Message]) -> u128 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in messages {
        h.update(format!("{:?}\u{0}", m.role).as_bytes());
        if let Some(c) = &m.content {
            for word in c.split_whitespace() {
                h.update(word.as_bytes());
                h.update(b" ");
            }
        }
        h.update(b"\x00");
        if let Some(n) = &m.name {
            h.update(n.as_bytes());
        }
        h.update(b"\x00");
        if let Some(calls) = &m.tool_calls {
            for c in calls {
                h.update(c.function.name.as_bytes());
                h.update(b"\x00");
                h.update(c.function.arguments.as_bytes());
            }
        }
        h.update(b"\x01");
    }
    let d = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_le_bytes(first)
}
