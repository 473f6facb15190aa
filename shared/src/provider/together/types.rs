//! Together's wire shapes, as its published OpenAPI document names them
//! (`tests/contract/together-finetuning-openapi.json`): only the members
//! the adapter reads or sends. Every member Together may leave out is
//! optional here, so a response with more or fewer members still parses.

use serde::{Deserialize, Serialize};

/// `FileResponse`.
#[derive(Debug, Clone, Deserialize)]
pub struct FileResponse {
    pub id: String,
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// `training_type`: LoRA (Together's default) with its rank and alpha, or
/// every weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum TrainingType {
    Lora { lora_r: u32, lora_alpha: u32 },
    Full,
}

/// `training_method`: supervised fine-tuning on the chat messages.
/// `TrainingMethodSFT` requires `train_on_inputs`: false trains on the
/// assistant turns only (the prompt is context, not a target), as OpenAI's
/// chat fine-tuning does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingMethod {
    pub method: &'static str,
    pub train_on_inputs: bool,
}

impl TrainingMethod {
    pub const SFT: TrainingMethod = TrainingMethod {
        method: "sft",
        train_on_inputs: false,
    };
}

/// The body of `POST /fine-tunes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateFineTuneRequest<'a> {
    pub training_file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_file: Option<&'a str>,
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_epochs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_checkpoints: Option<u32>,
    /// Evaluations on the validation file during training (with one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_evals: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    pub suffix: &'a str,
    pub training_type: TrainingType,
    pub training_method: TrainingMethod,
}

/// The body of `POST /fine-tunes/estimate-price`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimatePriceRequest<'a> {
    pub training_file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_file: Option<&'a str>,
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_epochs: Option<u32>,
    pub training_type: TrainingType,
    pub training_method: TrainingMethod,
}

/// Its answer.
#[derive(Debug, Clone, Deserialize)]
pub struct PriceEstimate {
    #[serde(default)]
    pub estimated_total_price: Option<f64>,
    #[serde(default)]
    pub allowed_to_proceed: Option<bool>,
    #[serde(default)]
    pub user_limit: Option<f64>,
    #[serde(default)]
    pub estimated_train_token_count: Option<f64>,
}

/// `FinetuneResponse` / `FinetuneResponseTruncated`: one job.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTune {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub model: Option<String>,
    /// The trained model's name: what chat completions call.
    #[serde(default)]
    pub model_output_name: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub token_count: Option<u64>,
    #[serde(default)]
    pub events: Option<Vec<FineTuneEvent>>,
}

/// `FinetuneTruncatedList`.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTuneList {
    pub data: Vec<FineTune>,
}

/// `FineTuneEvent`.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTuneEvent {
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub step: Option<u64>,
    #[serde(default)]
    pub hash: Option<String>,
}

/// `FinetuneListEvents`.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTuneEvents {
    pub data: Vec<FineTuneEvent>,
}

/// `FineTuneCheckpoint`.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTuneCheckpoint {
    pub step: u64,
    pub path: String,
    #[serde(default)]
    pub checkpoint_type: Option<String>,
}

/// `FinetuneListCheckpoints`.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTuneCheckpoints {
    pub data: Vec<FineTuneCheckpoint>,
}

/// The answer of `GET /fine-tunes/{id}/metrics`: flat snapshots such as
/// `{"train/loss": 0.5, "train/global_step": 7}`, oldest first.
#[derive(Debug, Clone, Deserialize)]
pub struct FineTuneMetrics {
    #[serde(default)]
    pub metrics: Vec<serde_json::Map<String, serde_json::Value>>,
}
