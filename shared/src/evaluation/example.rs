//! One evaluation example from one line of a run's held-out validation
//! file: the prompt is the conversation up to its last assistant turn, the
//! reference is that turn.
//!
//! The two dataset formats we write ([`DatasetFormat`]) become one
//! provider-neutral [`EvalExample`], so scoring, storing and judging do not
//! care which provider trained the model; only the inference adapters turn
//! it back into Chat Completions messages or a Converse request.
//!
//! Rules shared by both formats:
//! - the last assistant *turn* is the reference: in OpenAI lines,
//!   consecutive text-only assistant messages at the end form one turn and
//!   are joined with `"\n"`, exactly as [`crate::provider::bedrock::format::to_record`]
//!   merges them into one Bedrock turn of several blocks (whose texts are
//!   joined with `"\n"` here too), so both files of one conversation give
//!   the same example;
//! - anything after the last assistant turn (a closing "thanks") is not
//!   part of the example: there is no answer to compare it with;
//! - system (and OpenAI `developer`) messages become one system prompt,
//!   their texts joined with `"\n"`, wherever they stood;
//! - a prompt must contain at least one user turn: a reply to nothing
//!   measures nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataset::DatasetFormat;
use crate::provider::bedrock::format::{Record, SCHEMA_VERSION, TextBlock};

/// Who speaks in a prompt turn (the system prompt is kept apart, as
/// Converse takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// An OpenAI tool result (`role: "tool"`); Bedrock records have none.
    Tool,
}

/// A tool call earlier in the conversation, kept in the OpenAI wire form
/// (arguments as the JSON text the dataset holds) so the prompt can be
/// replayed to Chat Completions unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One turn of the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    /// The turn's text; empty for an assistant turn that only calls tools.
    pub text: String,
    /// An assistant turn's tool calls (OpenAI only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Which call a `tool` turn answers (OpenAI only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// The answer the model is expected to give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reference {
    Text {
        text: String,
    },
    /// The reference turn called a tool (any text beside the call is not
    /// compared: the call is what the turn did). When it made several
    /// calls, only the first is kept: a model answering with the right
    /// first call has taken the right step, and comparing sets of parallel
    /// calls would need a matching rule the metric does not have.
    /// Arguments are parsed from the dataset's JSON text (kept as a JSON
    /// string when they are not JSON) so scoring compares values, not
    /// spellings.
    ToolCall {
        name: String,
        arguments: Value,
    },
}

/// A prompt and its reference, ready to send to both models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalExample {
    /// The line's 0-based index among the validation file's non-blank
    /// lines: the key the per-example results are stored under.
    pub index: usize,
    pub system: Option<String>,
    pub turns: Vec<Turn>,
    /// The OpenAI line's `tools` definitions, passed on so the model can
    /// make the call the reference made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    pub reference: Reference,
}

/// What is wrong with a validation line. The caller knows the line number
/// and adds it.
#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    #[error("not a {format} record: {source}")]
    Malformed {
        format: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("schemaVersion is {found:?}, expected \"{SCHEMA_VERSION}\"")]
    SchemaVersion { found: String },
    #[error("message {position} has the role {role:?}, which this format does not have")]
    UnknownRole { position: usize, role: String },
    #[error("message {position}'s content is neither a string nor a list of text parts")]
    ContentNotText { position: usize },
    #[error("the conversation has no assistant turn to use as the reference")]
    NoAssistantTurn,
    #[error("the last assistant turn has neither text nor a tool call")]
    EmptyReference,
    #[error("no user turn precedes the last assistant turn")]
    NoUserTurn,
}

/// Parses one validation line (without its newline) written in `format`.
/// `index` is stored in the example as it is.
pub fn parse_example(
    line: &str,
    index: usize,
    format: DatasetFormat,
) -> Result<EvalExample, ExampleError> {
    let parsed = match format {
        DatasetFormat::OpenAiChat => openai_messages(line)?,
        DatasetFormat::BedrockConversation => bedrock_messages(line)?,
    };
    assemble(index, parsed)
}

/// A message of either format, before the prompt/reference split.
struct Message {
    role: MessageRole,
    text: String,
    tool_calls: Vec<ToolCall>,
    tool_call_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MessageRole {
    System,
    Turn(Role),
}

struct Parsed {
    messages: Vec<Message>,
    tools: Option<Value>,
}

fn assemble(index: usize, parsed: Parsed) -> Result<EvalExample, ExampleError> {
    let Parsed { messages, tools } = parsed;
    let is_assistant = |m: &Message| m.role == MessageRole::Turn(Role::Assistant);
    let last = messages
        .iter()
        .rposition(is_assistant)
        .ok_or(ExampleError::NoAssistantTurn)?;
    // In bounds: `last` is a position found in `messages`, `start - 1` is
    // read only while `start > 0`, and `start..=last` stays under `last`.
    let (start, reference) = match messages[last].tool_calls.first() {
        Some(call) => (
            last,
            Reference::ToolCall {
                name: call.name.clone(),
                arguments: parse_arguments(&call.arguments),
            },
        ),
        None => {
            // The turn: the text-only assistant messages ending at `last`.
            let mut start = last;
            while start > 0 {
                let prev = &messages[start - 1];
                if !is_assistant(prev) || !prev.tool_calls.is_empty() || prev.text.is_empty() {
                    break;
                }
                start -= 1;
            }
            let text = messages[start..=last]
                .iter()
                .map(|m| m.text.as_str())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            if text.trim().is_empty() {
                return Err(ExampleError::EmptyReference);
            }
            (start, Reference::Text { text })
        }
    };
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for m in messages.into_iter().take(start) {
        match m.role {
            MessageRole::System => system.push(m.text),
            MessageRole::Turn(role) => turns.push(Turn {
                role,
                text: m.text,
                tool_calls: m.tool_calls,
                tool_call_id: m.tool_call_id,
            }),
        }
    }
    if !turns.iter().any(|t| t.role == Role::User) {
        return Err(ExampleError::NoUserTurn);
    }
    system.retain(|s| !s.is_empty());
    Ok(EvalExample {
        index,
        system: (!system.is_empty()).then(|| system.join("\n")),
        turns,
        tools,
        reference,
    })
}

/// Tool arguments are JSON text in the OpenAI format; a text that is not
/// JSON is kept as a string rather than refused, so the example is still
/// scored (only an answer with the same text can then match).
fn parse_arguments(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[derive(Deserialize)]
struct OpenAiLine {
    messages: Vec<OpenAiMessage>,
    #[serde(default)]
    tools: Option<Value>,
}

#[derive(Deserialize)]
struct OpenAiMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Option<Vec<OpenAiToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiToolCall {
    #[serde(default)]
    id: String,
    function: OpenAiFunction,
}

#[derive(Deserialize)]
struct OpenAiFunction {
    name: String,
    /// A JSON string per the format; an object is accepted and kept as its
    /// JSON text.
    arguments: Value,
}

fn openai_messages(line: &str) -> Result<Parsed, ExampleError> {
    let record: OpenAiLine =
        serde_json::from_str(line).map_err(|source| ExampleError::Malformed {
            format: DatasetFormat::OpenAiChat.as_str(),
            source,
        })?;
    let mut messages = Vec::with_capacity(record.messages.len());
    for (position, m) in record.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => MessageRole::System,
            "user" => MessageRole::Turn(Role::User),
            "assistant" => MessageRole::Turn(Role::Assistant),
            "tool" => MessageRole::Turn(Role::Tool),
            _ => {
                return Err(ExampleError::UnknownRole {
                    position,
                    role: m.role,
                });
            }
        };
        let text = content_text(m.content).ok_or(ExampleError::ContentNotText { position })?;
        let tool_calls = m
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: match c.function.arguments {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
            })
            .collect();
        messages.push(Message {
            role,
            text,
            tool_calls,
            tool_call_id: m.tool_call_id,
        });
    }
    Ok(Parsed {
        messages,
        tools: record.tools,
    })
}

/// A message's content as text: a string, nothing (`null` or absent, as
/// an assistant turn that only calls tools has), or a list of
/// `{"type": "text", "text": …}` parts joined with `"\n"`. `None` for
/// anything else (images, audio): the metric compares text only.
fn content_text(content: Option<Value>) -> Option<String> {
    match content {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in &parts {
                if part.get("type").and_then(Value::as_str) != Some("text") {
                    return None;
                }
                texts.push(part.get("text")?.as_str()?);
            }
            Some(texts.join("\n"))
        }
        Some(_) => None,
    }
}

fn bedrock_messages(line: &str) -> Result<Parsed, ExampleError> {
    let record: Record = serde_json::from_str(line).map_err(|source| ExampleError::Malformed {
        format: DatasetFormat::BedrockConversation.as_str(),
        source,
    })?;
    if record.schema_version != SCHEMA_VERSION {
        return Err(ExampleError::SchemaVersion {
            found: record.schema_version,
        });
    }
    let join = |blocks: &[TextBlock]| {
        blocks
            .iter()
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut messages = Vec::with_capacity(record.messages.len() + 1);
    if !record.system.is_empty() {
        messages.push(Message {
            role: MessageRole::System,
            text: join(&record.system),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
    }
    for (position, turn) in record.messages.iter().enumerate() {
        let role = match turn.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(ExampleError::UnknownRole {
                    position,
                    role: turn.role.clone(),
                });
            }
        };
        messages.push(Message {
            role: MessageRole::Turn(role),
            text: join(&turn.content),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
    }
    Ok(Parsed {
        messages,
        tools: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::conversation::{Message as DatasetMessage, Role as DatasetRole};
    use crate::provider::bedrock::format::write_record;
    use serde_json::json;

    fn openai(line: Value) -> Result<EvalExample, ExampleError> {
        parse_example(&line.to_string(), 7, DatasetFormat::OpenAiChat)
    }

    fn bedrock(line: Value) -> Result<EvalExample, ExampleError> {
        parse_example(&line.to_string(), 7, DatasetFormat::BedrockConversation)
    }

    fn text(t: &str) -> Reference {
        Reference::Text { text: t.to_owned() }
    }

    #[test]
    fn an_openai_line_splits_into_the_prompt_and_its_last_assistant_turn() {
        let example = openai(json!({"messages": [
            {"role": "system", "content": "You are Acme's agent."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "content": "It ships today.", "weight": 1}
        ]}))
        .unwrap();
        assert_eq!(example.index, 7);
        assert_eq!(example.system.as_deref(), Some("You are Acme's agent."));
        let roles: Vec<_> = example.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        assert_eq!(example.turns[2].text, "Where is my order?");
        assert_eq!(example.reference, text("It ships today."));
        assert_eq!(example.tools, None);
    }

    #[test]
    fn a_bedrock_record_splits_the_same_way() {
        let example = bedrock(json!({
            "schemaVersion": "bedrock-conversation-2024",
            "system": [{"text": "You are Acme's agent."}],
            "messages": [
                {"role": "user", "content": [{"text": "Where is"}, {"text": "my order?"}]},
                {"role": "assistant", "content": [{"text": "It ships today."}]}
            ]
        }))
        .unwrap();
        assert_eq!(example.system.as_deref(), Some("You are Acme's agent."));
        assert_eq!(example.turns.len(), 1);
        assert_eq!(example.turns[0].text, "Where is\nmy order?");
        assert_eq!(example.reference, text("It ships today."));
    }

    #[test]
    fn both_files_of_one_conversation_give_the_same_example() {
        // GIVEN a conversation whose assistant answered in two messages
        let msg = |role, text: &str| DatasetMessage {
            role,
            content: Some(text.to_owned()),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        };
        let conversation = [
            msg(DatasetRole::System, "Be brief."),
            msg(DatasetRole::User, "Refund?"),
            msg(DatasetRole::Assistant, "Yes."),
            msg(DatasetRole::Assistant, "Within 30 days."),
        ];
        // WHEN it is written in both formats and parsed back
        let openai_line = serde_json::to_string(&json!({ "messages": conversation })).unwrap();
        let mut bedrock_line = Vec::new();
        write_record(&mut bedrock_line, &conversation).unwrap();
        let bedrock_line = String::from_utf8(bedrock_line).unwrap();
        let a = parse_example(&openai_line, 0, DatasetFormat::OpenAiChat).unwrap();
        let b = parse_example(&bedrock_line, 0, DatasetFormat::BedrockConversation).unwrap();
        // THEN the examples are equal, the two messages one reference turn
        assert_eq!(a, b);
        assert_eq!(a.reference, text("Yes.\nWithin 30 days."));
    }

    #[test]
    fn a_tool_call_reference_keeps_the_first_call_with_parsed_arguments() {
        let example = openai(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}},
                    {"id": "c2", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\": \"Rome\"}"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "weather"}}]
        }))
        .unwrap();
        assert_eq!(
            example.reference,
            Reference::ToolCall {
                name: "weather".into(),
                arguments: json!({"city": "Paris"})
            }
        );
        assert_eq!(example.tools.unwrap()[0]["function"]["name"], "weather");
    }

    #[test]
    fn earlier_tool_calls_and_results_stay_in_the_prompt_as_written() {
        let example = openai(json!({"messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "-3C"},
            {"role": "assistant", "content": "It is -3C in Oslo."}
        ]}))
        .unwrap();
        assert_eq!(example.turns.len(), 3);
        assert_eq!(
            example.turns[1].tool_calls,
            [ToolCall {
                id: "c1".into(),
                name: "weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into()
            }]
        );
        assert_eq!(example.turns[2].role, Role::Tool);
        assert_eq!(example.turns[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(example.reference, text("It is -3C in Oslo."));
    }

    #[test]
    fn arguments_that_are_not_json_are_kept_as_a_string() {
        let example = openai(json!({"messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "go", "arguments": "not json"}}]}
        ]}))
        .unwrap();
        assert_eq!(
            example.reference,
            Reference::ToolCall {
                name: "go".into(),
                arguments: json!("not json")
            }
        );
    }

    #[test]
    fn text_parts_are_read_and_turns_after_the_last_assistant_are_left_out() {
        let example = openai(json!({"messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "thanks"}
        ]}))
        .unwrap();
        assert_eq!(example.system.as_deref(), Some("Be kind."));
        assert_eq!(example.turns.len(), 1);
        assert_eq!(example.turns[0].text, "a\nb");
        assert_eq!(example.reference, text("ok"));
    }

    #[test]
    fn each_broken_line_names_what_is_wrong() {
        let cases: Vec<(Result<EvalExample, ExampleError>, &str)> = vec![
            (
                parse_example("not json", 0, DatasetFormat::OpenAiChat),
                "not a openai-chat record",
            ),
            (
                parse_example("{}", 0, DatasetFormat::BedrockConversation),
                "not a bedrock-conversation-2024 record",
            ),
            (
                bedrock(json!({"schemaVersion": "x", "messages": []})),
                "schemaVersion is \"x\"",
            ),
            (
                openai(json!({"messages": [{"role": "robot", "content": "x"}]})),
                "message 0 has the role \"robot\"",
            ),
            (
                openai(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})),
                "message 0's content is neither",
            ),
            (
                openai(json!({"messages": [{"role": "user", "content": "x"}]})),
                "no assistant turn",
            ),
            (
                openai(json!({"messages": [
                    {"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]})),
                "neither text nor a tool call",
            ),
            (
                openai(json!({"messages": [
                    {"role": "system", "content": "x"}, {"role": "assistant", "content": "hi"}]})),
                "no user turn",
            ),
        ];
        for (result, expected) in cases {
            let message = result.unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
}
