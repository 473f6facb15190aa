//! [`Inference`] on Bedrock: Bedrock Runtime's `Converse`, on a base model
//! id or a custom model deployment's ARN (how a Nova custom model is served
//! on demand).
//!
//! Bedrock datasets carry no tool calls, so neither does a prompt made
//! from one; a prompt with a tool turn is refused rather than sent with
//! the turn dropped.

use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, StopReason, SystemContentBlock,
};

use super::error::map_sdk_error;
use crate::evaluation::{Answer, EvalExample, Role};
use crate::provider::ProviderError;
use crate::provider::inference::{Inference, Reply};

/// The Bedrock Runtime client (a `LazyClient`, so the function that wires
/// it in can make it on first use: most of its invocations never evaluate).
#[derive(Debug, Clone)]
pub struct BedrockRuntime {
    client: crate::aws::LazyClient<Client>,
}

impl BedrockRuntime {
    pub fn new(client: Client) -> Self {
        Self {
            client: crate::aws::LazyClient::ready(client),
        }
    }

    /// Made on the first answer asked of it.
    pub fn lazy(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: crate::aws::LazyClient::new(sdk, Client::new),
        }
    }
}

/// The example's prompt as Converse messages.
fn messages(example: &EvalExample) -> Result<Vec<Message>, ProviderError> {
    example
        .turns
        .iter()
        .enumerate()
        .map(|(i, turn)| {
            let role = match turn.role {
                Role::User => ConversationRole::User,
                Role::Assistant if turn.tool_calls.is_empty() => ConversationRole::Assistant,
                Role::Assistant | Role::Tool => {
                    return Err(ProviderError::InvalidRequest {
                        message: format!(
                            "turn {i} of example {} calls a tool, which a Bedrock prompt cannot carry",
                            example.index
                        ),
                        param: None,
                        code: None,
                        request_id: None,
                    });
                }
            };
            Message::builder()
                .role(role)
                .content(ContentBlock::Text(turn.text.clone()))
                .build()
                .map_err(|e| ProviderError::Decode(format!("a Converse message: {e}")))
        })
        .collect()
}

#[async_trait]
impl Inference for BedrockRuntime {
    async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError> {
        let mut request = self
            .client
            .get()
            .converse()
            .model_id(model)
            .set_messages(Some(messages(example)?))
            .inference_config(
                InferenceConfiguration::builder()
                    .temperature(0.0)
                    .max_tokens(i32::try_from(max_tokens).unwrap_or(i32::MAX))
                    .build(),
            );
        if let Some(system) = &example.system {
            request = request.system(SystemContentBlock::Text(system.clone()));
        }
        let out = request
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("model {model}")))?;
        let truncated = out.stop_reason() == &StopReason::MaxTokens;
        let (input_tokens, output_tokens) = out.usage().map_or((0, 0), |u| {
            (
                u64::try_from(u.input_tokens()).unwrap_or(0),
                u64::try_from(u.output_tokens()).unwrap_or(0),
            )
        });
        let blocks = out
            .output()
            .and_then(|o| o.as_message().ok())
            .map(|m| m.content().to_vec())
            .unwrap_or_default();
        let tool_call = blocks.iter().find_map(|b| b.as_tool_use().ok());
        let answer = match tool_call {
            Some(call) => Answer::ToolCall {
                name: call.name().to_owned(),
                arguments: document_to_json(call.input()),
            },
            None => Answer::Text {
                text: blocks
                    .iter()
                    .filter_map(|b| b.as_text().ok())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        };
        Ok(Reply {
            answer,
            input_tokens,
            output_tokens,
            truncated,
        })
    }
}

/// A Smithy document (a tool's input) as JSON.
fn document_to_json(document: &aws_smithy_types::Document) -> serde_json::Value {
    use aws_smithy_types::{Document, Number};
    match document {
        Document::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), document_to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Document::Array(items) => items.iter().map(document_to_json).collect(),
        Document::Number(Number::PosInt(n)) => (*n).into(),
        Document::Number(Number::NegInt(n)) => (*n).into(),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Document::String(s) => s.clone().into(),
        Document::Bool(b) => (*b).into(),
        Document::Null => serde_json::Value::Null,
    }
}
