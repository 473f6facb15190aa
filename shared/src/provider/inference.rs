//! Asking a model for one answer: the capability the evaluation phase
//! needs of a provider, for the candidate, the baseline and the judge.
//!
//! The prompt is the provider-neutral [`EvalExample`] (system prompt,
//! turns, tool definitions); each adapter turns it into its own wire form
//! (OpenAI Chat Completions, Bedrock Converse). Always at temperature 0
//! with a bounded answer, so the same model on the same example answers
//! the same and costs at most what the estimate said.

use async_trait::async_trait;

use super::ProviderError;
use crate::evaluation::{Answer, EvalExample};

/// One answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Text, or the first tool call when the model called tools (the
    /// reference keeps only its first call too).
    pub answer: Answer,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The answer was cut at `max_tokens`.
    pub truncated: bool,
}

/// A model that answers prompts.
#[async_trait]
pub trait Inference: Send + Sync {
    /// `model`'s answer to the prompt of `example` (its reference is not
    /// sent), at temperature 0, at most `max_tokens` long.
    async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError>;
}
