//! `POST /v1/chat/completions`: the request checked as OpenAI checks it,
//! a deterministic answer (see the crate doc for who answers what) and
//! OpenAI's response shape.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use finetune::dataset::tokens::{Encoding, TokenCounter};

use crate::api::{ApiError, ApiResult, json_body, ok};
use crate::content::Content;
use crate::judge::{self, Trigrams};
use crate::state::{Inner, Stage, now_secs};
use crate::{AnswerKind, ChatCall, Quality, Shared, ids, together};

/// Chat models the sandbox serves besides the fine-tuned ones: OpenAI's
/// fine-tunable snapshots and their aliases (the pipeline's judges and
/// baselines). Any model a job was created on is served too.
pub const CHAT_BASE_MODELS: &[&str] = &[
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-mini",
    "gpt-4o-2024-08-06",
    "gpt-4o",
    "gpt-4.1-2025-04-14",
    "gpt-4.1",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4.1-nano",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo",
];

/// Every top-level field of `CreateChatCompletionRequest`: anything else
/// is refused, as OpenAI refuses an unrecognized argument.
const KNOWN_FIELDS: &[&str] = &[
    "messages",
    "model",
    "metadata",
    "top_logprobs",
    "temperature",
    "top_p",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "service_tier",
    "modalities",
    "verbosity",
    "reasoning_effort",
    "max_completion_tokens",
    "frequency_penalty",
    "presence_penalty",
    "web_search_options",
    "response_format",
    "audio",
    "store",
    "moderation",
    "stream",
    "stop",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "prediction",
    "seed",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "function_call",
    "functions",
];

/// Request fields Together's `ChatCompletionRequest` has beyond OpenAI's,
/// accepted (and ignored) for Together models only.
const TOGETHER_FIELDS: &[&str] = &[
    "top_k",
    "context_length_exceeded_behavior",
    "repetition_penalty",
    "echo",
    "min_p",
    "compliance",
    "chat_template_kwargs",
    "safety_model",
    "reasoning",
];

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// One request message, reduced to what answering and counting need.
struct Turn {
    role: String,
    text: String,
    name: Option<String>,
    /// The assistant's tool calls as JSON text (for counting).
    tool_calls: Option<String>,
    tool_call_id: Option<String>,
}

enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

struct ChatRequest {
    model: String,
    turns: Vec<Turn>,
    n: usize,
    max_tokens: Option<usize>,
    /// Function names, in order.
    tools: Vec<String>,
    tools_json: Option<String>,
    tool_choice: ToolChoice,
    prompt_digest: String,
}

/// What a model answers: text or function calls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Text(String),
    Calls(Vec<Call>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    name: String,
    arguments: String,
}

/// One training example: its prompt's trigrams and its answer.
#[derive(Debug)]
pub(crate) struct Example {
    trigrams: Trigrams,
    answer: Answer,
}

/// Which kind of model a request names.
enum Serving {
    FineTuned { job_id: String, quality: Quality },
    Base,
}

fn invalid(message: impl Into<String>, param: &str, code: &'static str) -> ApiError {
    ApiError::invalid(message, Some(param)).code(code)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        param,
        "invalid_type",
    )
}

/// A number field within `min..=max`, `null` or absent.
fn number_in(body: &Map<String, Value>, name: &str, min: f64, max: f64) -> Result<(), ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_f64() {
            Some(x) if x >= min && x <= max => Ok(()),
            Some(x) if x < min => Err(invalid(
                format!(
                    "Invalid '{name}': decimal below minimum value. Expected a value >= {min}, but got {x} instead."
                ),
                name,
                "decimal_below_min_value",
            )),
            Some(x) => Err(invalid(
                format!(
                    "Invalid '{name}': decimal above maximum value. Expected a value <= {max}, but got {x} instead."
                ),
                name,
                "decimal_above_max_value",
            )),
            None => Err(wrong_type(name, "a decimal", v)),
        },
    }
}

/// A positive integer field, `null` or absent.
fn positive_integer(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(x) if x >= 1 => Ok(Some(x)),
            Some(x) => Err(invalid(
                format!(
                    "Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {x} instead."
                ),
                name,
                "integer_below_min_value",
            )),
            None => Err(wrong_type(name, "an integer", v)),
        },
    }
}

/// The text of a message's `content`: a string, or the text of its parts
/// (`text` everywhere, `refusal` for an assistant), or empty for `null`.
fn content_text(content: &Value, role: &str, param: &str) -> Result<String, ApiError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) if parts.is_empty() => Err(invalid(
            format!(
                "Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."
            ),
            param,
            "empty_array",
        )),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let part_param = format!("{param}[{j}]");
                let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                let field = match kind {
                    "text" => "text",
                    "refusal" if role == "assistant" => "refusal",
                    _ => {
                        return Err(invalid(
                            format!(
                                "Invalid value: '{kind}'. The sandbox answers text only: \
                                 supported content part types are 'text'{}.",
                                if role == "assistant" {
                                    " and 'refusal'"
                                } else {
                                    ""
                                }
                            ),
                            &format!("{part_param}.type"),
                            "invalid_value",
                        ));
                    }
                };
                match part.get(field) {
                    Some(Value::String(s)) => texts.push(s.as_str()),
                    Some(other) => {
                        return Err(wrong_type(
                            &format!("{part_param}.{field}"),
                            "a string",
                            other,
                        ));
                    }
                    None => {
                        return Err(invalid(
                            format!("Missing required parameter: '{part_param}.{field}'."),
                            &format!("{part_param}.{field}"),
                            "missing_required_parameter",
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        other => Err(wrong_type(
            param,
            "one of a string or array of objects",
            other,
        )),
    }
}

fn check_tool_calls(calls: &Value, param: &str) -> Result<(), ApiError> {
    let Value::Array(items) = calls else {
        return Err(wrong_type(param, "an array", calls));
    };
    for (k, call) in items.iter().enumerate() {
        let p = format!("{param}[{k}]");
        for field in ["id", "function.name", "function.arguments"] {
            let value = field
                .split('.')
                .try_fold(call, |v, key| v.get(key))
                .and_then(Value::as_str);
            if value.is_none() {
                return Err(invalid(
                    format!("Missing required parameter: '{p}.{field}'."),
                    &format!("{p}.{field}"),
                    "missing_required_parameter",
                ));
            }
        }
        if call.get("type").and_then(Value::as_str) != Some("function") {
            return Err(invalid(
                format!(
                    "Invalid value for '{p}.type': the sandbox supports 'function' tool calls only."
                ),
                &format!("{p}.type"),
                "invalid_value",
            ));
        }
    }
    Ok(())
}

fn parse_turn(i: usize, message: &Value) -> Result<Turn, ApiError> {
    let param = format!("messages[{i}]");
    let Value::Object(m) = message else {
        return Err(wrong_type(&param, "an object", message));
    };
    let role = match m.get("role") {
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.clone(),
        Some(Value::String(r)) => {
            return Err(invalid(
                format!(
                    "Invalid value: '{r}'. Supported values are: 'system', 'assistant', 'user', \
                     'tool', and 'developer'."
                ),
                &format!("{param}.role"),
                "invalid_value",
            ));
        }
        _ => {
            return Err(invalid(
                format!("Missing required parameter: '{param}.role'."),
                &format!("{param}.role"),
                "missing_required_parameter",
            ));
        }
    };
    let content_param = format!("{param}.content");
    let tool_calls = match m.get("tool_calls") {
        Some(calls) if role == "assistant" && !calls.is_null() => {
            check_tool_calls(calls, &format!("{param}.tool_calls"))?;
            Some(calls.to_string())
        }
        _ => None,
    };
    let content = m.get("content");
    let needs_content = role != "assistant" || tool_calls.is_none();
    let text = match content {
        Some(c) if !c.is_null() => content_text(c, &role, &content_param)?,
        _ if needs_content => {
            return Err(invalid(
                format!("Missing required parameter: '{content_param}'."),
                &content_param,
                "missing_required_parameter",
            ));
        }
        _ => String::new(),
    };
    let tool_call_id = match m.get("tool_call_id") {
        Some(Value::String(id)) => Some(id.clone()),
        _ if role == "tool" => {
            return Err(invalid(
                format!("Missing required parameter: '{param}.tool_call_id'."),
                &format!("{param}.tool_call_id"),
                "missing_required_parameter",
            ));
        }
        _ => None,
    };
    Ok(Turn {
        role,
        text,
        name: m.get("name").and_then(Value::as_str).map(str::to_owned),
        tool_calls,
        tool_call_id,
    })
}

fn parse_tools(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let tools = match body.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    };
    if tools.len() > 128 {
        return Err(invalid(
            format!(
                "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length {} instead.",
                tools.len()
            ),
            "tools",
            "array_above_max_length",
        ));
    }
    let mut names = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(invalid(
                "Invalid value: the sandbox supports 'function' tools only.",
                &format!("tools[{i}].type"),
                "invalid_value",
            ));
        }
        let name = tool
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    format!("Missing required parameter: 'tools[{i}].function.name'."),
                    &format!("tools[{i}].function.name"),
                    "missing_required_parameter",
                )
            })?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(invalid(
                format!(
                    "Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
                ),
                &format!("tools[{i}].function.name"),
                "invalid_value",
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn parse_tool_choice(body: &Map<String, Value>, tools: &[String]) -> Result<ToolChoice, ApiError> {
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => {
            return Ok(if tools.is_empty() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            });
        }
        Some(c) => c,
    };
    if tools.is_empty() && choice != "none" {
        return Err(invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
            "invalid_value",
        ));
    }
    match choice {
        Value::String(s) if s == "none" => Ok(ToolChoice::None),
        Value::String(s) if s == "auto" => Ok(ToolChoice::Auto),
        Value::String(s) if s == "required" => Ok(ToolChoice::Required),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("allowed_tools") => {
            Ok(ToolChoice::Auto)
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if tools.iter().any(|t| t == name) {
                Ok(ToolChoice::Named(name.to_owned()))
            } else {
                Err(invalid(
                    format!(
                        "Invalid value for 'tool_choice': function '{name}' is not one of the tools."
                    ),
                    "tool_choice",
                    "invalid_value",
                ))
            }
        }
        other => Err(invalid(
            format!(
                "Invalid value for 'tool_choice': {other}. Supported values are: 'none', 'auto', 'required' or a function."
            ),
            "tool_choice",
            "invalid_value",
        )),
    }
}

/// Checks a request as OpenAI does (the parts the sandbox can judge).
fn parse_request(body: &Value) -> Result<ChatRequest, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::invalid(
            "We could not parse the JSON body of your request: expected an object.",
            None,
        ));
    };
    let together_model = body
        .get("model")
        .and_then(Value::as_str)
        .is_some_and(together::is_together_model_name);
    let known =
        |k: &str| KNOWN_FIELDS.contains(&k) || (together_model && TOGETHER_FIELDS.contains(&k));
    if let Some(unknown) = body.keys().find(|k| !known(k.as_str())) {
        return Err(ApiError::invalid(
            format!("Unrecognized request argument supplied: {unknown}"),
            None,
        ));
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(ApiError::invalid(
                "you must provide a model parameter",
                None,
            ));
        }
    };
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(invalid(
                "Missing required parameter: 'messages'.",
                "messages",
                "missing_required_parameter",
            ));
        }
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                "messages",
                "empty_array",
            ));
        }
        Some(Value::Array(m)) => m,
        Some(other) => return Err(wrong_type("messages", "an array", other)),
    };
    let turns = messages
        .iter()
        .enumerate()
        .map(|(i, m)| parse_turn(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    match body.get("stream") {
        Some(Value::Bool(true)) => {
            return Err(invalid(
                "Unsupported value: 'stream' does not support true with this model. Supported values are: false.",
                "stream",
                "unsupported_value",
            ));
        }
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(other) => return Err(wrong_type("stream", "a boolean", other)),
    }
    if body.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(invalid(
            "Unsupported value: 'logprobs' does not support true with this model. Supported values are: false.",
            "logprobs",
            "unsupported_value",
        ));
    }
    number_in(body, "temperature", 0.0, 2.0)?;
    number_in(body, "top_p", 0.0, 1.0)?;
    number_in(body, "frequency_penalty", -2.0, 2.0)?;
    number_in(body, "presence_penalty", -2.0, 2.0)?;
    let n = positive_integer(body, "n")?.unwrap_or(1);
    if n > 128 {
        return Err(invalid(
            format!(
                "Invalid 'n': integer above maximum value. Expected a value <= 128, but got {n} instead."
            ),
            "n",
            "integer_above_max_value",
        ));
    }
    // The newer name wins when both are given.
    let max_tokens = match positive_integer(body, "max_completion_tokens")? {
        Some(m) => Some(m),
        None => positive_integer(body, "max_tokens")?,
    };
    match body.get("seed") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_i64() || v.is_u64() => {}
        Some(v) => return Err(wrong_type("seed", "an integer", v)),
    }
    let tools = parse_tools(body)?;
    let tool_choice = parse_tool_choice(body, &tools)?;
    let prompt_digest = hex::encode(Sha256::digest(
        serde_json::to_vec(&Value::Array(messages.clone())).unwrap_or_default(),
    ));
    Ok(ChatRequest {
        model,
        turns,
        n: usize::try_from(n).unwrap_or(1),
        max_tokens: max_tokens.map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
        tools_json: body
            .get("tools")
            .filter(|t| !t.is_null())
            .map(Value::to_string),
        tools,
        tool_choice,
        prompt_digest,
    })
}

/// The model a request names, as the sandbox serves it; `None` when it
/// does not exist (or was deleted).
fn resolve(inner: &Inner, model: &str) -> Option<Serving> {
    if inner.models_deleted.iter().any(|m| m == model) {
        return None;
    }
    let fine_tuned = inner.jobs.iter().find(|j| {
        (j.stage == Stage::Succeeded && j.fine_tuned_model.as_deref() == Some(model))
            || j.checkpoints
                .iter()
                .any(|c| c["fine_tuned_model_checkpoint"].as_str() == Some(model))
    });
    if let Some(job) = fine_tuned {
        let quality = inner
            .model_quality
            .get(model)
            .copied()
            .unwrap_or(job.quality);
        return Some(Serving::FineTuned {
            job_id: job.id.clone(),
            quality,
        });
    }
    let together = inner
        .together_jobs
        .iter()
        .find(|j| j.stage == together::job::Stage::Completed && j.model_output_name == model);
    if let Some(job) = together {
        let quality = inner
            .model_quality
            .get(model)
            .copied()
            .unwrap_or(job.quality);
        return Some(Serving::FineTuned {
            job_id: job.id.clone(),
            quality,
        });
    }
    let base = CHAT_BASE_MODELS.contains(&model)
        || together::base_model(model).is_some()
        || inner.jobs.iter().any(|j| j.model == model)
        || inner
            .together_jobs
            .iter()
            .any(|j| j.spec.model.name == model);
    base.then_some(Serving::Base)
}

fn model_not_found(model: &str) -> ApiError {
    ApiError::not_found(format!(
        "The model `{model}` does not exist or you do not have access to it."
    ))
    .code("model_not_found")
}

/// The text a prompt is matched on: its user and tool turns (what the
/// conversation asks), or every turn when it has none.
fn matching_text<'a>(turns: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> String {
    let asked: Vec<&str> = turns
        .clone()
        .filter(|(role, _)| *role == "user" || *role == "tool")
        .map(|(_, text)| text)
        .collect();
    if asked.iter().any(|t| !t.trim().is_empty()) {
        asked.join("\n")
    } else {
        turns.map(|(_, text)| text).collect::<Vec<_>>().join("\n")
    }
}

fn value_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An assistant message of a training file as an answer.
fn answer_of(message: &Value) -> Answer {
    let calls: Vec<Call> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| {
                    let f = c.get("function")?;
                    let arguments = match f.get("arguments")? {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    Some(Call {
                        name: f.get("name")?.as_str()?.to_owned(),
                        arguments,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if calls.is_empty() {
        Answer::Text(value_text(message.get("content")))
    } else {
        Answer::Calls(calls)
    }
}

/// One JSONL line as an example: chat fine-tuning (`messages`, answered
/// by its last assistant turn) or preference (`input.messages`, answered
/// by `preferred_output`). Lines with no answer are skipped.
fn example_of(line: &str) -> Option<Example> {
    let value: Value = serde_json::from_str(line).ok()?;
    let (prompt, answer) = if let Some(input) = value.get("input") {
        let prompt = input.get("messages")?.as_array()?.clone();
        let preferred = value.get("preferred_output")?.as_array()?;
        let last = preferred
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))?;
        (prompt, answer_of(last))
    } else {
        let messages = value.get("messages")?.as_array()?;
        let last = messages
            .iter()
            .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))?;
        (messages[..last].to_vec(), answer_of(&messages[last]))
    };
    let turns: Vec<(String, String)> = prompt
        .iter()
        .map(|m| {
            (
                m.get("role")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                value_text(m.get("content")),
            )
        })
        .collect();
    let text = matching_text(turns.iter().map(|(r, t)| (r.as_str(), t.as_str())));
    Some(Example {
        trigrams: Trigrams::of(&text),
        answer,
    })
}

/// Reads a training file's examples (blocking: the file may be on disk).
fn read_examples(content: &Content) -> Vec<Example> {
    use std::io::BufRead;
    let Ok(reader) = content.reader() else {
        return Vec::new();
    };
    std::io::BufReader::new(reader)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| example_of(&line))
        .collect()
}

/// A job's examples, parsed once and kept with the job.
async fn examples_of(shared: &Shared, job_id: &str) -> Result<Arc<Vec<Example>>, ApiError> {
    let content = match shared.lock().examples_or_content(job_id) {
        None => return Err(ApiError::server("the job behind this model is gone")),
        Some(Ok(examples)) => return Ok(examples),
        Some(Err(content)) => content,
    };
    let examples = tokio::task::spawn_blocking(move || Arc::new(read_examples(&content)))
        .await
        .map_err(|e| ApiError::server(format!("reading the training file failed: {e}")))?;
    shared.lock().keep_examples(job_id, examples.clone());
    Ok(examples)
}

/// The base models' answer: polite, generic, quoting the first words of
/// the last user message.
fn base_answer(turns: &[Turn]) -> String {
    let last_user = turns
        .iter()
        .rev()
        .find(|t| t.role == "user")
        .map(|t| t.text.as_str())
        .unwrap_or_default();
    let words: Vec<&str> = last_user.split_whitespace().collect();
    let topic = if words.is_empty() {
        "your request".to_owned()
    } else {
        let mut quoted = words[..words.len().min(6)].join(" ");
        if words.len() > 6 {
            quoted.push('…');
        }
        format!("\"{quoted}\"")
    };
    format!(
        "Thank you for your message about {topic}. I am a general-purpose assistant, so I do not \
         have the specific details needed to answer it fully. Could you share more information?"
    )
}

/// [`Quality::Worse`]: every word's letters reversed.
fn scrambled(text: &str) -> String {
    text.split(' ')
        .map(|w| w.chars().rev().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message a model answers, and who answered.
fn generate(
    request: &ChatRequest,
    serving: &Serving,
    examples: Option<&[Example]>,
) -> (Answer, AnswerKind) {
    let all_text: Vec<&str> = request.turns.iter().map(|t| t.text.as_str()).collect();
    if let Some(blocks) = judge::parse(&all_text.join("\n")) {
        return (
            Answer::Text(judge::verdict(&blocks).to_owned()),
            AnswerKind::Judge,
        );
    }
    let (answer, kind) = match serving {
        Serving::FineTuned {
            quality: Quality::Worse,
            ..
        } => (
            Answer::Text(scrambled(&base_answer(&request.turns))),
            AnswerKind::FineTunedWorse,
        ),
        Serving::FineTuned {
            quality: Quality::Good,
            ..
        } => {
            let asked = Trigrams::of(&matching_text(
                request
                    .turns
                    .iter()
                    .map(|t| (t.role.as_str(), t.text.as_str())),
            ));
            let text_only = matches!(request.tool_choice, ToolChoice::None);
            let mut best: Option<(f64, &Example)> = None;
            for example in examples.unwrap_or_default() {
                if text_only && matches!(example.answer, Answer::Calls(_)) {
                    continue;
                }
                let score = asked.similarity(&example.trigrams);
                // Strictly greater: the first example wins a tie.
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, example));
                }
            }
            match best {
                Some((_, example)) => (example.answer.clone(), AnswerKind::FineTuned),
                None => (
                    Answer::Text(base_answer(&request.turns)),
                    AnswerKind::FineTuned,
                ),
            }
        }
        Serving::Base => (Answer::Text(base_answer(&request.turns)), AnswerKind::Base),
    };
    let forced = match &request.tool_choice {
        ToolChoice::Named(name) => Some(name.clone()),
        ToolChoice::Required => request.tools.first().cloned(),
        ToolChoice::None | ToolChoice::Auto => None,
    };
    match (answer, forced) {
        (Answer::Text(_), Some(name)) => (
            Answer::Calls(vec![Call {
                name,
                arguments: "{}".to_owned(),
            }]),
            kind,
        ),
        (answer, _) => (answer, kind),
    }
}

/// Token counts with the workspace's exact BPE counter for the model's
/// encoding; a quarter of the characters if its vocabulary cannot load.
struct Tokens(Option<TokenCounter>);

impl Tokens {
    fn for_model(model: &str) -> Self {
        // A local stand-in: the vocabularies compiled in, no layer beside it.
        finetune::dataset::dictionaries::use_embedded();
        Self(TokenCounter::new(Encoding::for_model(model)).ok())
    }

    fn count(&mut self, text: &str) -> usize {
        match &mut self.0 {
            Some(counter) => counter.count(text),
            None => text.chars().count().div_ceil(4),
        }
    }

    /// The cookbook's convention: 3 per message, its role, content and
    /// calls, 1 more for a name, and 3 to prime the reply.
    fn prompt(&mut self, request: &ChatRequest) -> usize {
        let mut total = 3;
        for turn in &request.turns {
            total += 3 + self.count(&turn.role) + self.count(&turn.text);
            if let Some(name) = &turn.name {
                total += self.count(name) + 1;
            }
            for extra in [&turn.tool_calls, &turn.tool_call_id].into_iter().flatten() {
                total += self.count(extra);
            }
        }
        if let Some(tools) = &request.tools_json {
            total += self.count(tools);
        }
        total
    }

    /// `text` cut to at most `max` tokens (at a character boundary), and
    /// whether it was cut.
    fn truncate(&mut self, text: &str, max: usize) -> (String, usize, bool) {
        let n = self.count(text);
        if n <= max {
            return (text.to_owned(), n, false);
        }
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        // The longest prefix that fits: counts grow with the prefix.
        let (mut lo, mut hi) = (0usize, bounds.len() - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.count(&text[..bounds[mid]]) <= max {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let cut = &text[..bounds[lo]];
        (cut.to_owned(), self.count(cut), true)
    }
}

/// The answer cut to the request's token limit: (answer, tokens, cut).
fn limited(answer: Answer, max: Option<usize>, tokens: &mut Tokens) -> (Answer, usize, bool) {
    let max = max.unwrap_or(usize::MAX);
    match answer {
        Answer::Text(text) => {
            let (text, n, cut) = tokens.truncate(&text, max);
            (Answer::Text(text), n, cut)
        }
        Answer::Calls(calls) => {
            let mut used = 0usize;
            let mut any_cut = false;
            let mut out = Vec::with_capacity(calls.len());
            for call in calls {
                used += tokens.count(&call.name);
                let (arguments, n, cut) =
                    tokens.truncate(&call.arguments, max.saturating_sub(used));
                used += n;
                any_cut |= cut;
                out.push(Call {
                    name: call.name,
                    arguments,
                });
            }
            (Answer::Calls(out), used, any_cut)
        }
    }
}

/// The `chat.completion` object.
fn response(
    request: &ChatRequest,
    answer: &Answer,
    completion: usize,
    cut: bool,
    prompt: usize,
) -> Value {
    let (message, finish_reason) = match answer {
        Answer::Text(text) => (
            json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
            if cut { "length" } else { "stop" },
        ),
        Answer::Calls(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let id =
                        Sha256::digest(format!("{}:{}:{i}", request.prompt_digest, request.model));
                    json!({
                        "id": format!("{}{}", ids::TOOL_CALL, &hex::encode(id)[..24]),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
            (
                json!({"role": "assistant", "content": null, "refusal": null, "annotations": [], "tool_calls": calls}),
                if cut { "length" } else { "tool_calls" },
            )
        }
    };
    let choices: Vec<Value> = (0..request.n)
        .map(|index| {
            json!({
                "index": index,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            })
        })
        .collect();
    let completion_tokens = completion * request.n;
    let fingerprint = hex::encode(Sha256::digest(request.model.as_bytes()));
    let mut body = json!({
        "id": ids::new_id(ids::CHAT_COMPLETION),
        "object": "chat.completion",
        "created": now_secs(),
        "model": request.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": format!("fp_{}", &fingerprint[..10]),
    });
    // Together's ChatCompletionResponse requires `prompt` (filled only
    // with `echo`, which the sandbox does not do).
    if together::is_together_model_name(&request.model) {
        body["prompt"] = json!([]);
    }
    body
}

pub(crate) async fn create_chat_completion(
    State(shared): State<Arc<Shared>>,
    body: Result<axum::Json<Value>, JsonRejection>,
) -> ApiResult {
    let request = parse_request(&json_body(body)?)?;
    let serving = {
        let settings = shared.settings();
        let mut inner = shared.lock();
        inner.catch_up(&settings);
        resolve(&inner, &request.model).ok_or_else(|| model_not_found(&request.model))?
    };
    let latency = shared.settings().chat_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let examples = match &serving {
        Serving::FineTuned {
            job_id,
            quality: Quality::Good,
        } => Some(examples_of(&shared, job_id).await?),
        _ => None,
    };
    let (body, call) = tokio::task::spawn_blocking(move || {
        let (answer, kind) = generate(&request, &serving, examples.as_deref().map(Vec::as_slice));
        let mut tokens = Tokens::for_model(&request.model);
        let prompt = tokens.prompt(&request);
        let (answer, completion, cut) = limited(answer, request.max_tokens, &mut tokens);
        let body = response(&request, &answer, completion, cut, prompt);
        let call = ChatCall {
            model: request.model.clone(),
            prompt_digest: request.prompt_digest.clone(),
            answered_as: kind,
        };
        (body, call)
    })
    .await
    .map_err(|e| ApiError::server(format!("the sandbox failed to answer: {e}")))?;
    shared.lock().chat_calls.push(call);
    ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: &str, text: &str) -> Turn {
        Turn {
            role: role.to_owned(),
            text: text.to_owned(),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }
    }

    #[test]
    fn a_training_line_is_its_prompt_and_its_last_assistant_turn() {
        let line = r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Where is order 7?"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"track","arguments":"{\"order\":7}"}}]}]}"#;
        let example = example_of(line).expect("an example");
        assert_eq!(
            example.answer,
            Answer::Calls(vec![Call {
                name: "track".into(),
                arguments: "{\"order\":7}".into()
            }])
        );
        assert_eq!(
            example
                .trigrams
                .similarity(&Trigrams::of("where is order 7")),
            1.0,
            "matched on the user turn only"
        );
        let dpo = r#"{"input":{"messages":[{"role":"user","content":"hi"}]},"preferred_output":[{"role":"assistant","content":"hello"}],"non_preferred_output":[{"role":"assistant","content":"go away"}]}"#;
        assert_eq!(
            example_of(dpo).unwrap().answer,
            Answer::Text("hello".into())
        );
        assert!(example_of(r#"{"messages":[{"role":"user","content":"x"}]}"#).is_none());
    }

    #[test]
    fn the_base_answer_quotes_a_few_words_and_the_worse_one_reverses_them() {
        let turns = [turn(
            "user",
            "Where is my order 42 that I placed last week?",
        )];
        let answer = base_answer(&turns);
        assert!(
            answer.contains("\"Where is my order 42 that…\""),
            "{answer}"
        );
        assert_eq!(scrambled("Thank you."), "knahT .uoy");
    }

    #[test]
    fn truncation_keeps_the_longest_prefix_within_the_limit() {
        let mut tokens = Tokens::for_model("gpt-4o-mini-2024-07-18");
        let text = "one two three four five six seven eight";
        let (cut, n, was_cut) = tokens.truncate(text, 3);
        assert!(was_cut);
        assert_eq!((cut.as_str(), n), ("one two three", 3));
        let (same, _, was_cut) = tokens.truncate(text, 100);
        assert!(!was_cut);
        assert_eq!(same, text);
    }
}
