//! The file formats a dataset is written in, and how one example is
//! written and checked in each.
//!
//! The OpenAI chat format (`{"messages": [...]}`) is generic and lives
//! here: OpenAI trains on it, and other providers take it as it is
//! (Together AI reads the same JSONL), so its writer and checker
//! ([`super::check`]) are not one provider's. A format only one provider
//! reads lives with that provider (Bedrock's `bedrock-conversation-2024`
//! in `provider/bedrock/format.rs`); the preparation reaches either
//! through the run's provider profile ([`crate::provider::Profile`]),
//! never by name.

use serde::{Deserialize, Serialize};

use super::check::check_example;
use super::conversation::Message;
use super::tokens::TokenCounter;

/// The file format a dataset is written in: each provider reads its own
/// (its profile says which). Recorded on the dataset, so a run can only
/// reuse a dataset its provider reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DatasetFormat {
    /// OpenAI's chat fine-tuning format (`{"messages": [...]}`).
    #[default]
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// Amazon Nova's `bedrock-conversation-2024` schema.
    #[serde(rename = "bedrock-conversation-2024")]
    BedrockConversation,
}

impl DatasetFormat {
    /// The name recorded on datasets and in manifests.
    pub const fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::OpenAiChat => "openai-chat",
            DatasetFormat::BedrockConversation => "bedrock-conversation-2024",
        }
    }
}

/// How one prepared conversation becomes one line of a dataset file.
pub trait ExampleFormat: Send + Sync {
    /// Writes `messages` as one line (no newline) into `out`, then checks
    /// that line with `counter`: its tokens, or the category that refuses
    /// it (counted as `format:<category>` in the stats). `max_tokens` is
    /// the per-example limit the preparation windows to.
    fn write_checked(
        &self,
        out: &mut Vec<u8>,
        messages: &[Message],
        counter: &mut TokenCounter,
        max_tokens: usize,
    ) -> Result<u64, &'static str>;
}

/// The OpenAI chat format: `{"messages": [...]}`, checked by the
/// cookbook's rules ([`check_example`]; its token limit is applied by the
/// windowing, not per line).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatFormat;

impl ExampleFormat for ChatFormat {
    fn write_checked(
        &self,
        out: &mut Vec<u8>,
        messages: &[Message],
        counter: &mut TokenCounter,
        _max_tokens: usize,
    ) -> Result<u64, &'static str> {
        write_chat_example(out, messages);
        let text = std::str::from_utf8(out).unwrap_or_default();
        let check = check_example(text, counter);
        match check.errors.first() {
            Some(category) => Err(*category),
            None => Ok(check.tokens.unwrap_or(0)),
        }
    }
}

/// Writes `messages` as one chat-format line (no newline).
pub fn write_chat_example(out: &mut Vec<u8>, messages: &[Message]) {
    #[derive(Serialize)]
    struct Example<'a> {
        messages: &'a [Message],
    }
    // Serializing plain strings and enums into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &Example { messages });
}
