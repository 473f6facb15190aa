//! OpenAI's wire shapes for the endpoints the pipeline uses, as the spec
//! (`openai-finetuning-openapi.json`) documents them.
//!
//! Decoding is lenient on purpose: the real API leaves out fields the spec
//! marks required (`error`, `seed`, `hyperparameters` in the spec's own
//! examples) and returns enum values the spec does not list (`paused`), so
//! every response field is optional or defaulted and every enum is a
//! `String`. Requests are strict: they are what we promise to send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::AutoOr;

/// A `File` (`object: "file"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub purpose: String,
    /// Deprecated by OpenAI but still sent: `uploaded|processed|error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `DELETE /files/{id}` and `DELETE /models/{model}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub deleted: bool,
}

/// `POST /uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUploadRequest {
    pub filename: String,
    pub purpose: String,
    pub bytes: u64,
    pub mime_type: String,
}

/// An `Upload` (`object: "upload"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadObject {
    pub id: String,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub purpose: String,
    /// `pending|completed|cancelled|expired`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Set once the upload is completed.
    #[serde(default)]
    pub file: Option<FileObject>,
}

/// An `UploadPart` (`object: "upload.part"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPartObject {
    pub id: String,
    #[serde(default)]
    pub upload_id: String,
    #[serde(default)]
    pub created_at: i64,
}

/// `POST /uploads/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteUploadRequest {
    pub part_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// The hyperparameters of a supervised or DPO method. `beta` is DPO only
/// and left out of supervised requests.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MethodHyperparameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<AutoOr<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate_multiplier: Option<AutoOr<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_epochs: Option<AutoOr<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<AutoOr<f64>>,
}

/// The settings object a method's `type` names.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MethodSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperparameters: Option<MethodHyperparameters>,
}

/// `FineTuneMethod`: `{type, supervised|dpo: {...}}`. Only supervised is
/// used today; DPO has the same shape plus `beta`, so it is a constructor
/// away. Reinforcement (graders) is out of scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneMethod {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised: Option<MethodSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo: Option<MethodSettings>,
}

impl FineTuneMethod {
    pub fn supervised(hyperparameters: MethodHyperparameters) -> Self {
        Self {
            kind: "supervised".to_owned(),
            supervised: Some(MethodSettings {
                hyperparameters: Some(hyperparameters),
            }),
            dpo: None,
        }
    }

    pub fn dpo(hyperparameters: MethodHyperparameters) -> Self {
        Self {
            kind: "dpo".to_owned(),
            supervised: None,
            dpo: Some(MethodSettings {
                hyperparameters: Some(hyperparameters),
            }),
        }
    }
}

/// `POST /fine_tuning/jobs`. Hyperparameters go under `method` (the
/// top-level `hyperparameters` field is deprecated and never sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateFineTuningJobRequest {
    pub model: String,
    pub training_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<FineTuneMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A failed job's `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobErrorObject {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub param: Option<String>,
}

/// A `fine_tuning.job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuningJobObject {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub error: Option<JobErrorObject>,
    #[serde(default)]
    pub fine_tuned_model: Option<String>,
    #[serde(default)]
    pub finished_at: Option<i64>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub result_files: Vec<String>,
    /// Kept as the wire string: see `provider::status::openai_job_status`.
    pub status: String,
    #[serde(default)]
    pub trained_tokens: Option<u64>,
    #[serde(default)]
    pub training_file: String,
    #[serde(default)]
    pub validation_file: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub estimated_finish: Option<i64>,
    #[serde(default)]
    pub method: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A `fine_tuning.job.event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEventObject {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// A `fine_tuning.job.checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointObject {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub fine_tuned_model_checkpoint: String,
    #[serde(default)]
    pub fine_tuning_job_id: String,
    #[serde(default)]
    pub step_number: u64,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// `{object: "list", data, has_more}` (jobs, events, checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

/// `ErrorResponse`: `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}
