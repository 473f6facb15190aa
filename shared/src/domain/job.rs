//! The provider's job as this service records it: one provider-neutral
//! status whatever the provider calls it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A fine-tuning job's state, the same for every provider. Each adapter maps
/// its own statuses here in one place; a status it does not know maps to
/// `Unknown` (not terminal, so the run keeps being watched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    ValidatingFiles,
    Queued,
    Running,
    Paused,
    Stopping,
    Succeeded,
    Failed,
    Cancelled,
    Unknown,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// What we keep of the provider's job on the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The provider's id as given (`ftjob-…`, a Bedrock ARN); never our key.
    pub provider_job_id: String,
    pub status: JobStatus,
    /// The provider's own word for the status, for people and debugging.
    pub provider_status: String,
    #[serde(default)]
    pub fine_tuned_model: Option<String>,
    #[serde(default)]
    pub trained_tokens: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub estimated_finish: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the monitor last copied the job from the provider.
    pub synced_at: DateTime<Utc>,
    /// The provider's last event id we stored, to list only newer ones.
    #[serde(default)]
    pub events_cursor: Option<String>,
    /// The newest training step the job reported, and how many it will
    /// take: progress without reading the metrics record.
    #[serde(default)]
    pub step: Option<u64>,
    #[serde(default)]
    pub total_steps: Option<u64>,
}
