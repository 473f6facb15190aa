//! [`Inference`] on OpenAI: `POST /v1/chat/completions`, the shapes of
//! OpenAI's published schema (`CreateChatCompletionRequest` /
//! `CreateChatCompletionResponse`), only the members we send or read.
//!
//! The prompt goes as it was trained: system prompt, user, assistant (with
//! its tool calls) and tool turns, and the line's `tools` definitions, so a
//! fine-tuned model can make the call its reference made.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::OpenAiControl;
use crate::evaluation::{Answer, EvalExample, Role};
use crate::provider::ProviderError;
use crate::provider::inference::{Inference, Reply};

/// The request body.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Value>,
    pub temperature: f64,
    /// The bound on the answer (`max_tokens` is deprecated in its favour).
    pub max_completion_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a Value>,
}

/// The answer body, as far as we read it.
#[derive(Debug, Deserialize)]
pub struct ChatCompletion {
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    pub message: ChoiceMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ChoiceMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ChoiceToolCall>,
}

#[derive(Debug, Deserialize)]
pub struct ChoiceToolCall {
    pub function: ChoiceFunction,
}

#[derive(Debug, Deserialize)]
pub struct ChoiceFunction {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// The example's prompt as Chat Completions messages.
pub fn messages(example: &EvalExample) -> Vec<Value> {
    let mut messages = Vec::with_capacity(example.turns.len() + 1);
    if let Some(system) = &example.system {
        messages.push(serde_json::json!({"role": "system", "content": system}));
    }
    for turn in &example.turns {
        let message = match turn.role {
            Role::User => serde_json::json!({"role": "user", "content": turn.text}),
            Role::Assistant if turn.tool_calls.is_empty() => {
                serde_json::json!({"role": "assistant", "content": turn.text})
            }
            Role::Assistant => {
                let calls: Vec<Value> = turn
                    .tool_calls
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}
                        })
                    })
                    .collect();
                let content = (!turn.text.is_empty()).then_some(turn.text.as_str());
                serde_json::json!({"role": "assistant", "content": content, "tool_calls": calls})
            }
            Role::Tool => serde_json::json!({
                "role": "tool",
                "content": turn.text,
                "tool_call_id": turn.tool_call_id.as_deref().unwrap_or_default(),
            }),
        };
        messages.push(message);
    }
    messages
}

/// The first choice as our [`Reply`]. A refusal is an answer (a text the
/// metric scores low), not an error: the model did answer.
pub fn reply(completion: ChatCompletion) -> Result<Reply, ProviderError> {
    let usage = completion.usage.unwrap_or(Usage {
        prompt_tokens: 0,
        completion_tokens: 0,
    });
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Decode("a chat completion without a choice".into()))?;
    let truncated = choice.finish_reason.as_deref() == Some("length");
    let message = choice.message;
    let answer = match message.tool_calls.into_iter().next() {
        Some(call) => Answer::ToolCall {
            name: call.function.name,
            arguments: Value::String(call.function.arguments),
        },
        None => Answer::Text {
            text: message.content.or(message.refusal).unwrap_or_default(),
        },
    };
    Ok(Reply {
        answer,
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        truncated,
    })
}

#[async_trait]
impl Inference for OpenAiControl {
    async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError> {
        let request = ChatRequest {
            model,
            messages: messages(example),
            temperature: 0.0,
            max_completion_tokens: max_tokens,
            tools: example.tools.as_ref(),
        };
        reply(self.client.chat_completion(&request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DatasetFormat;
    use crate::evaluation::parse_example;

    #[test]
    fn a_tool_using_conversation_is_replayed_as_it_was_trained() {
        // GIVEN a validation line whose last assistant turn calls a tool,
        // after an earlier call and its result
        let line = r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Where is order 7?"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"order\":7}"}}]},{"role":"tool","tool_call_id":"c1","content":"shipped"},{"role":"user","content":"Track it"},{"role":"assistant","tool_calls":[{"id":"c2","type":"function","function":{"name":"track","arguments":"{\"order\":7}"}}]}],"tools":[{"type":"function","function":{"name":"track","parameters":{"type":"object"}}}]}"#;
        let example = parse_example(line, 0, DatasetFormat::OpenAiChat).unwrap();
        // WHEN it becomes Chat Completions messages
        let messages = messages(&example);
        // THEN the prompt stops before the reference call, with the earlier
        // call and its result in place
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(messages[2]["content"], Value::Null);
        assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "lookup");
        assert_eq!(messages[3]["tool_call_id"], "c1");
    }

    #[test]
    fn the_first_tool_call_or_the_text_is_the_answer_and_a_cut_answer_says_so() {
        let called: ChatCompletion = serde_json::from_value(serde_json::json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "track", "arguments": "{\"order\":7}"}},
                {"id": "y", "type": "function", "function": {"name": "other", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5}
        }))
        .unwrap();
        let reply_ = reply(called).unwrap();
        assert_eq!(
            reply_.answer,
            Answer::ToolCall {
                name: "track".into(),
                arguments: Value::String("{\"order\":7}".into())
            }
        );
        assert_eq!((reply_.input_tokens, reply_.output_tokens), (12, 5));
        assert!(!reply_.truncated);

        let cut: ChatCompletion = serde_json::from_value(serde_json::json!({
            "choices": [{"message": {"content": "It ships on"}, "finish_reason": "length"}]
        }))
        .unwrap();
        let reply_ = reply(cut).unwrap();
        assert_eq!(
            reply_.answer,
            Answer::Text {
                text: "It ships on".into()
            }
        );
        assert!(reply_.truncated);

        let none: ChatCompletion =
            serde_json::from_value(serde_json::json!({"choices": []})).unwrap();
        assert_eq!(reply(none).unwrap_err().code(), "provider_bad_response");
    }
}
