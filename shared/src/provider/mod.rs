//! The `FineTuningProvider` port: everything the reconciler asks of a
//! fine-tuning service, in terms that fit each of the three it drives:
//! OpenAI (upload files, job by id, metadata), Amazon Bedrock (S3 URIs, job
//! ARNs, tags) and Together AI (uploaded files, a job found by its suffix,
//! adapter weights to download).
//!
//! OpenAI takes no new fine-tuning jobs after 2027-01-06, so no code outside
//! a provider's folder may depend on one provider's shapes: the reconciler
//! sees only these types, each run records which provider it used, and
//! every per-provider rule (dataset format, limits, hyperparameters,
//! shutdown dates, prices, serving) is asked of the run's [`Profile`]
//! through [`profiles::profile`].

pub mod bedrock;
pub mod openai;
pub mod pool;
pub mod profile;
pub mod profiles;
pub mod shutdown;
pub mod status;
pub mod together;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::blob::BlobError;
use crate::domain::curve::MetricPoint;
use crate::domain::{Hyperparameters, JobStatus, ProviderKind, RunId, TenantId};

pub mod inference;
pub mod registry;
pub mod serving;
pub mod setup;
pub mod weights;

pub use profile::Profile;
pub use registry::{Controls, Providers, Registry};

/// One of our dataset files (in our bucket) to be made available to the
/// provider: uploaded (OpenAI) or referenced by URI (Bedrock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFileSource {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    /// The name the provider shows, e.g. `ds_…-train.jsonl`.
    pub filename: String,
}

/// The provider's handle on a file: an OpenAI file id or an `s3://` URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFileRef {
    pub id: String,
}

/// Who a job belongs to. Adapters attach these to the job (OpenAI
/// `metadata`, Bedrock tags) so a job created just before a crash can be
/// found again instead of paid for twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobTags {
    pub tenant_id: TenantId,
    pub run_id: RunId,
}

/// A request to train `base_model` on an already prepared file.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateJob {
    pub tags: JobTags,
    pub base_model: String,
    pub training_file: ProviderFileRef,
    pub validation_file: Option<ProviderFileRef>,
    pub hyperparameters: Hyperparameters,
    /// Goes into the fine-tuned model's name; adapters sanitise it.
    pub suffix: Option<String>,
    pub seed: Option<u64>,
}

/// The provider's account of a job, already in our terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderJob {
    pub id: String,
    pub status: JobStatus,
    /// The provider's own status word, kept for people and debugging.
    pub provider_status: String,
    pub base_model: String,
    pub fine_tuned_model: Option<String>,
    pub trained_tokens: Option<u64>,
    pub error: Option<ProviderJobError>,
    pub created_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub estimated_finish: Option<DateTime<Utc>>,
    /// The tags read back from the provider, when it reports them.
    pub tags: Option<JobTags>,
    /// The provider's own estimate of the job's price, when it gives one
    /// as the job is created (Together's `estimate-price`); it replaces
    /// ours in the run's stats.
    pub estimated_cost_usd: Option<f64>,
}

/// Why the provider failed a job, as it said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderJobError {
    pub code: Option<String>,
    pub message: String,
    pub param: Option<String>,
}

/// A provider event (a message, a metrics line, a checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderEvent {
    /// The provider's id, used to store each event once.
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// `message`, `metrics`, …
    pub kind: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

/// A snapshot a job saved while training (OpenAI keeps one per epoch, the
/// last three), usable as a model of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCheckpoint {
    pub id: String,
    pub step: u64,
    /// The provider's name for the checkpoint's model.
    pub model: String,
    pub train_loss: Option<f64>,
    /// Over the last batch.
    pub valid_loss: Option<f64>,
    /// Over the whole validation file (OpenAI's `full_valid_loss`).
    pub full_valid_loss: Option<f64>,
}

/// What a provider call can fail with, provider-neutral. Adapters map
/// their wire errors here once; callers decide on the variant, never on text.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider is rate limiting us{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs_f32())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },
    #[error("the provider refused the request: {message}{}", param.as_ref().map(|p| format!(" (parameter: {p})")).unwrap_or_default())]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<String>,
        request_id: Option<String>,
    },
    /// OpenAI answers 403 on job creation to organisations it no longer
    /// lets fine-tune (its wind-down: none after 2027-01-06). Retrying will
    /// not help; another provider will.
    #[error(
        "the provider does not allow this account to create fine-tuning jobs: {message} \
         (OpenAI stopped new fine-tuning for most organisations; train this run on another provider such as Bedrock)"
    )]
    FineTuningNotPermitted {
        message: String,
        request_id: Option<String>,
    },
    #[error("the provider denied access: {message}")]
    PermissionDenied {
        message: String,
        request_id: Option<String>,
    },
    #[error("the provider rejected our credentials: {message}")]
    Auth {
        message: String,
        request_id: Option<String>,
    },
    #[error("{what} not found at the provider")]
    NotFound {
        what: String,
        request_id: Option<String>,
    },
    #[error("the provider failed ({status}): {message}")]
    Server {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    #[error("could not reach the provider: {0}")]
    Transport(String),
    #[error("the provider answered something we could not read: {0}")]
    Decode(String),
    #[error("the provider is not configured: {0}")]
    NotConfigured(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

impl ProviderError {
    /// Worth trying again later (the next monitor tick), as opposed to a
    /// refusal that will be the same next time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Transport(_)
        )
    }

    /// A stable code for run errors and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "provider_rate_limited",
            ProviderError::InvalidRequest { .. } => "provider_invalid_request",
            ProviderError::FineTuningNotPermitted { .. } => "provider_fine_tuning_not_permitted",
            ProviderError::PermissionDenied { .. } => "provider_permission_denied",
            ProviderError::Auth { .. } => "provider_auth",
            ProviderError::NotFound { .. } => "provider_not_found",
            ProviderError::Server { .. } => "provider_server_error",
            ProviderError::Transport(_) => "provider_unreachable",
            ProviderError::Decode(_) => "provider_bad_response",
            ProviderError::NotConfigured(_) => "provider_not_configured",
            ProviderError::Blob(_) => "dataset_unreadable",
        }
    }
}

/// Stopping a job and retiring a model: all the cancel and models
/// functions ask of a provider. Its own trait so that those functions can
/// hold adapters built without our bucket ([`setup::controls_from_config`]):
/// a binary that holds only these links no S3 client, no uploads and no
/// job output readers (each binary must stay within the 8 MB size budget).
#[async_trait]
pub trait JobControl: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Asks the provider to stop the job. Cancelling a job that already
    /// ended is not an error: the job is returned as it is.
    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError>;

    /// Deletes a fine-tuned model (retiring it). A model served through a
    /// deployment is deleted after it (see [`JobControl::serving`]).
    async fn delete_model(&self, model: &str) -> Result<(), ProviderError>;

    /// How the provider makes a trained model callable: `None` when it is
    /// callable as soon as its job succeeds (OpenAI), else its deployments
    /// (Bedrock). Part of the job controls because retiring a model starts
    /// with its deployment.
    fn serving(&self) -> Option<&dyn serving::ModelServing>;
}

/// A fine-tuning service. Every method is safe to call again after a
/// crash: the reconciler relies on that to never pay twice.
#[async_trait]
pub trait FineTuningProvider: JobControl {
    /// Makes one of our files usable for training: OpenAI uploads it
    /// (streamed from S3, Files or Uploads API by size); Bedrock returns its
    /// S3 URI. The caller records the result against the file's sha256 and
    /// does not call this again for the same content.
    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError>;

    /// Creates a training job tagged with `job.tags`.
    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError>;

    /// Jobs carrying these tags, newest first: how a job created just
    /// before a crash is found again.
    async fn find_jobs(&self, tags: &JobTags) -> Result<Vec<ProviderJob>, ProviderError>;

    async fn get_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError>;

    /// Events after the one with id `after` (all when `None`), oldest
    /// first, at most `limit`.
    async fn list_events(
        &self,
        job_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProviderEvent>, ProviderError>;

    /// The checkpoints a job saved, oldest first. A provider that keeps
    /// none answers none.
    async fn list_checkpoints(
        &self,
        job_id: &str,
    ) -> Result<Vec<ProviderCheckpoint>, ProviderError>;

    /// Step metrics an ended job left outside its events (Bedrock writes
    /// them as CSV files beside its output), oldest first. Providers whose
    /// events carry every step (OpenAI) answer none.
    async fn step_metrics(
        &self,
        job_id: &str,
        owner: &JobTags,
    ) -> Result<Vec<MetricPoint>, ProviderError>;

    /// The trained weights, when the provider lets them go (Together);
    /// `None` when they stay with it (OpenAI, Bedrock).
    fn weights(&self) -> Option<&dyn weights::ModelWeights>;
}
