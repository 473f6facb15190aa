//! A tenant's fine-tuned models and which one its chat system should use.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{DatasetId, ModelId, RunId, TenantId};
use super::provider::ProviderKind;

/// A model's life here. Only a `Ready` model can be activated: one still
/// `Deploying` cannot answer yet, one whose deployment `Failed` never will
/// (delete it, or train again). `Deleting` is recorded before the provider
/// is asked to delete it, so a model being deleted can never be activated,
/// and a failed provider call is finished by repeating the DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    Deploying,
    Ready,
    Failed,
    Deleting,
    Deleted,
}

impl ModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Deploying => "deploying",
            ModelStatus::Ready => "ready",
            ModelStatus::Failed => "failed",
            ModelStatus::Deleting => "deleting",
            ModelStatus::Deleted => "deleted",
        }
    }
}

/// One fine-tuned model, recorded when its run completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: ModelId,
    pub tenant_id: TenantId,
    pub provider: ProviderKind,
    pub base_model: String,
    /// The provider's name for the trained model (`ft:gpt-4o-mini:…`, a
    /// Bedrock custom model ARN).
    pub provider_model: String,
    /// The deployment serving it, when the provider serves trained models
    /// only through one (Bedrock: the custom model deployment's ARN).
    #[serde(default)]
    pub deployment: Option<String>,
    pub run_id: RunId,
    #[serde(default)]
    pub dataset_id: Option<DatasetId>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub trained_tokens: Option<u64>,
    #[serde(default)]
    pub final_train_loss: Option<f64>,
    #[serde(default)]
    pub final_valid_loss: Option<f64>,
    /// When the base model (and with it this fine-tune) stops serving.
    #[serde(default)]
    pub base_model_shutdown: Option<NaiveDate>,
    pub status: ModelStatus,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The job's saved checkpoints, oldest first: earlier states of this
    /// model the provider can serve too.
    #[serde(default)]
    pub checkpoints: Vec<ModelCheckpoint>,
    /// The trained weights, copied into our bucket when the provider lets
    /// them go (Together: the LoRA adapter): the tenant's to download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsFile>,
    /// How it compared with the tenant's model when its run evaluated it;
    /// activating a `worse` model needs `force`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<super::evaluation::EvaluationRecord>,
}

impl ModelRecord {
    /// What the tenant's chat system calls: the deployment when there is
    /// one, else the trained model itself.
    pub fn endpoint(&self) -> &str {
        self.deployment.as_deref().unwrap_or(&self.provider_model)
    }
}

/// A model's weights in our bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsFile {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    /// What was copied: `adapter` (LoRA) or `merged` (a full fine-tune).
    pub checkpoint: String,
}

/// One checkpoint of a model's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCheckpoint {
    pub step: u64,
    /// The provider's name for the checkpoint's model.
    pub model: String,
    #[serde(default)]
    pub train_loss: Option<f64>,
    #[serde(default)]
    pub valid_loss: Option<f64>,
}

/// The tenant's active model, as one small item: what `GET /models/active`
/// answers from a single GetItem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveModel {
    pub model_id: ModelId,
    pub provider: ProviderKind,
    /// What the chat system calls ([`ModelRecord::endpoint`]: the
    /// deployment when the model is served through one).
    pub provider_model: String,
    pub base_model: String,
    pub activated_at: DateTime<Utc>,
}
