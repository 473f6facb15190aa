//! What the API shows: the JSON shapes of runs, jobs, datasets, events and
//! lists. Separate from the stored records so storage details (versions,
//! S3 keys, the tenant, sync cursors) never leak and every documented field
//! is always present (`null` when absent, never missing).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::curve::TrainingMetrics;
use crate::domain::{
    ActiveModel, DatasetFile, DatasetRecord, EvaluationRecord, EventLevel, EventSource, JobInfo,
    JobStatus, ModelCheckpoint, ModelRecord, ModelStatus, ProviderKind, Run, RunConfig, RunError,
    RunEvent, RunStats, RunStatus,
};
use crate::store::Page;

/// RFC 3339 in UTC with a `Z` and whole seconds, as the API promises
/// (`2026-11-25T14:03:00Z`); chrono's default would print nanoseconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_timestamp(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(timestamp)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub status: RunStatus,
    pub phase: String,
    pub provider: ProviderKind,
    pub config: RunConfig,
    pub prepare_only: bool,
    pub dataset_id: Option<String>,
    pub job: Option<JobView>,
    pub stats: Option<RunStats>,
    pub error: Option<RunError>,
    /// The trained model against the tenant's (from `evaluating` on).
    pub evaluation: Option<EvaluationRecord>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

impl From<&Run> for RunView {
    fn from(run: &Run) -> Self {
        Self {
            id: run.id.to_string(),
            name: run.name.clone(),
            description: run.description.clone(),
            status: run.status,
            phase: run.phase.clone(),
            provider: run.provider,
            config: run.config.clone(),
            prepare_only: run.prepare_only,
            dataset_id: run.dataset_id.as_ref().map(ToString::to_string),
            job: run.job.as_ref().map(JobView::from),
            stats: run.stats.clone(),
            error: run.error.clone(),
            evaluation: run.evaluation.clone(),
            created_at: timestamp(run.created_at),
            updated_at: timestamp(run.updated_at),
            completed_at: opt_timestamp(run.completed_at),
        }
    }
}

/// The provider's job as shown: its id as the provider gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub provider_status: String,
    pub fine_tuned_model: Option<String>,
    pub trained_tokens: Option<u64>,
    pub error: Option<String>,
    pub estimated_finish: Option<String>,
    pub finished_at: Option<String>,
    pub synced_at: String,
    /// Progress: the newest step the job reported and how many it takes.
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
}

impl From<&JobInfo> for JobView {
    fn from(job: &JobInfo) -> Self {
        Self {
            id: job.provider_job_id.clone(),
            status: job.status,
            provider_status: job.provider_status.clone(),
            fine_tuned_model: job.fine_tuned_model.clone(),
            trained_tokens: job.trained_tokens,
            error: job.error.clone(),
            estimated_finish: opt_timestamp(job.estimated_finish),
            finished_at: opt_timestamp(job.finished_at),
            synced_at: timestamp(job.synced_at),
            step: job.step,
            total_steps: job.total_steps,
        }
    }
}

/// `GET /runs/{id}`: the run and, once prepared, its dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetailView {
    #[serde(flatten)]
    pub run: RunView,
    pub dataset: Option<DatasetView>,
}

/// A dataset file without its S3 key (storage layout is ours to change).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetFileView {
    pub examples: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl From<&DatasetFile> for DatasetFileView {
    fn from(f: &DatasetFile) -> Self {
        Self {
            examples: f.examples,
            bytes: f.bytes,
            sha256: f.sha256.clone(),
        }
    }
}

/// `GET /limits`: dollars as numbers (two decimals' worth of precision is
/// kept: the store counts micro-dollars), `null` for no cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitsView {
    pub tenant_id: String,
    pub limits: LimitsOfTenant,
    pub usage: UsageOfTenant,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitsOfTenant {
    pub max_in_flight: u32,
    pub monthly_cap_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageOfTenant {
    /// The month the spend counts in, `YYYY-MM` (UTC).
    pub month: String,
    pub in_flight: u32,
    /// Estimates held by runs in flight.
    pub reserved_usd: f64,
    /// What runs that ended this month cost.
    pub settled_usd: f64,
    /// What is left under the cap, `null` with no cap.
    pub remaining_usd: Option<f64>,
}

impl LimitsView {
    pub fn new(tenant: &crate::domain::TenantId, fleet: &crate::api::TenantFleet) -> Self {
        let spent = fleet.usage.spent();
        Self {
            tenant_id: tenant.to_string(),
            limits: LimitsOfTenant {
                max_in_flight: fleet.limits.max_in_flight,
                monthly_cap_usd: fleet.limits.monthly_cap.map(|c| c.dollars()),
            },
            usage: UsageOfTenant {
                month: fleet.month.to_string(),
                in_flight: fleet.usage.in_flight,
                reserved_usd: fleet.usage.reserved.dollars(),
                settled_usd: fleet.usage.settled.dollars(),
                remaining_usd: fleet
                    .limits
                    .monthly_cap
                    .map(|cap| cap.saturating_sub(spent).dollars()),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetView {
    pub id: String,
    pub run_id: String,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub format: String,
    pub train: DatasetFileView,
    pub validation: Option<DatasetFileView>,
    pub stats: serde_json::Value,
    pub created_at: String,
}

impl From<&DatasetRecord> for DatasetView {
    fn from(d: &DatasetRecord) -> Self {
        Self {
            id: d.id.to_string(),
            run_id: d.run_id.to_string(),
            start_date: d.start_date,
            end_date: d.end_date,
            format: d.format.clone(),
            train: DatasetFileView::from(&d.train),
            validation: d.validation.as_ref().map(DatasetFileView::from),
            stats: d.stats.clone(),
            created_at: timestamp(d.created_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub id: String,
    pub at: String,
    pub source: EventSource,
    pub level: EventLevel,
    pub kind: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

impl From<&RunEvent> for EventView {
    fn from(e: &RunEvent) -> Self {
        Self {
            id: e.id.to_string(),
            at: timestamp(e.at),
            source: e.source,
            level: e.level,
            kind: e.kind.clone(),
            message: e.message.clone(),
            data: e.data.clone(),
        }
    }
}

/// A fine-tuned model as `GET /models` shows it; `model` is the provider's
/// name for it (what the chat system calls).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelView {
    pub id: String,
    pub provider: ProviderKind,
    pub base_model: String,
    /// What to call: the deployment when the model is served through one.
    pub model: String,
    /// The provider's name for the trained model itself.
    pub trained_model: String,
    /// The deployment serving it (Bedrock), if any.
    pub deployment: Option<String>,
    pub run_id: String,
    pub dataset_id: Option<String>,
    pub status: ModelStatus,
    pub active: bool,
    pub created_at: String,
    pub trained_tokens: Option<u64>,
    pub final_train_loss: Option<f64>,
    pub final_valid_loss: Option<f64>,
    pub base_model_shutdown_date: Option<NaiveDate>,
    pub deleted_at: Option<String>,
    /// Earlier states of the model the provider can serve too.
    pub checkpoints: Vec<ModelCheckpoint>,
    /// How it compared with the tenant's model when its run evaluated it.
    pub evaluation: Option<EvaluationRecord>,
    /// Its weights in our bucket (`GET /models/{id}/download`), if any.
    pub weights: Option<WeightsView>,
}

/// A model's downloadable weights, without the bucket key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightsView {
    pub checkpoint: String,
    pub bytes: u64,
    pub sha256: String,
}

impl ModelView {
    pub fn new(m: &ModelRecord, active: bool) -> Self {
        Self {
            id: m.id.to_string(),
            provider: m.provider,
            base_model: m.base_model.clone(),
            model: m.endpoint().to_owned(),
            trained_model: m.provider_model.clone(),
            deployment: m.deployment.clone(),
            run_id: m.run_id.to_string(),
            dataset_id: m.dataset_id.as_ref().map(ToString::to_string),
            status: m.status,
            active,
            created_at: timestamp(m.created_at),
            trained_tokens: m.trained_tokens,
            final_train_loss: m.final_train_loss,
            final_valid_loss: m.final_valid_loss,
            base_model_shutdown_date: m.base_model_shutdown,
            deleted_at: opt_timestamp(m.deleted_at),
            checkpoints: m.checkpoints.clone(),
            evaluation: m.evaluation.clone(),
            weights: m.weights.as_ref().map(|w| WeightsView {
                checkpoint: w.checkpoint.clone(),
                bytes: w.bytes,
                sha256: w.sha256.clone(),
            }),
        }
    }
}

/// A download URL and what it fetches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadView {
    pub url: String,
    pub expires_at: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl From<&crate::api::download::Download> for DownloadView {
    fn from(d: &crate::api::download::Download) -> Self {
        Self {
            url: d.url.clone(),
            expires_at: timestamp(d.expires_at),
            file: d.file.clone(),
            bytes: d.bytes,
            sha256: d.sha256.clone(),
        }
    }
}

/// `GET /models/active`: the one model the tenant's chat system calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveModelView {
    pub id: String,
    pub provider: ProviderKind,
    pub model: String,
    pub base_model: String,
    pub activated_at: String,
}

impl From<&ActiveModel> for ActiveModelView {
    fn from(a: &ActiveModel) -> Self {
        Self {
            id: a.model_id.to_string(),
            provider: a.provider,
            model: a.provider_model.clone(),
            base_model: a.base_model.clone(),
            activated_at: timestamp(a.activated_at),
        }
    }
}

/// One point of `GET /runs/{id}/metrics`, in OpenAI's metric names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPointView {
    pub step: u64,
    pub train_loss: Option<f64>,
    pub valid_loss: Option<f64>,
    pub train_mean_token_accuracy: Option<f64>,
    pub valid_mean_token_accuracy: Option<f64>,
    /// Over the whole validation file (checkpoints, Bedrock's validation).
    pub full_valid_loss: Option<f64>,
}

/// `GET /runs/{id}/metrics`: the training curve, oldest step first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsView {
    pub run_id: String,
    pub status: RunStatus,
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub estimated_finish: Option<String>,
    pub points: Vec<MetricPointView>,
}

impl MetricsView {
    pub fn new(run: &Run, metrics: &TrainingMetrics) -> Self {
        Self {
            run_id: run.id.to_string(),
            status: run.status,
            step: metrics.last_step(),
            total_steps: metrics.total_steps,
            estimated_finish: run
                .job
                .as_ref()
                .and_then(|j| opt_timestamp(j.estimated_finish)),
            points: metrics
                .points
                .iter()
                .map(|p| MetricPointView {
                    step: p.step,
                    train_loss: p.train_loss,
                    valid_loss: p.valid_loss,
                    train_mean_token_accuracy: p.train_accuracy,
                    valid_mean_token_accuracy: p.valid_accuracy,
                    full_valid_loss: p.full_valid_loss,
                })
                .collect(),
        }
    }
}

/// `{"data": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListView<T> {
    pub fn from_page<S>(page: &Page<S>, view: impl Fn(&S) -> T) -> Self {
        Self {
            data: page.items.iter().map(view).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Filters, Hyperparameters, NewRun, TenantId};
    use chrono::TimeZone;

    #[test]
    fn a_new_run_shows_every_field_with_nulls() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 14, 3, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let run = Run::new_queued(
            NewRun {
                tenant_id: TenantId::parse("acme").unwrap(),
                name: "n".into(),
                description: None,
                provider: ProviderKind::OpenAi,
                config: RunConfig {
                    start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
                    end_date: NaiveDate::from_ymd_opt(2026, 10, 31),
                    base_model: "m".into(),
                    min_examples: 10,
                    max_examples: 100,
                    train_split: crate::domain::TrainSplit::DEFAULT,
                    system_prompt: None,
                    seed: 1,
                    hyperparameters: Hyperparameters::default(),
                    filters: Filters::default(),
                    evaluation: Default::default(),
                    activation: Default::default(),
                    serving: Default::default(),
                },
                dataset_id: None,
                prepare_only: false,
            },
            at,
        );
        let json = serde_json::to_value(RunView::from(&run)).unwrap();
        for field in [
            "id",
            "name",
            "status",
            "phase",
            "provider",
            "config",
            "dataset_id",
            "job",
            "stats",
            "error",
            "evaluation",
            "created_at",
            "updated_at",
            "completed_at",
        ] {
            assert!(json.get(field).is_some(), "{field} missing");
        }
        assert_eq!(json["created_at"], "2026-11-25T14:03:00Z");
        assert_eq!(json["completed_at"], serde_json::Value::Null);
        assert_eq!(json["provider"], "openai");
        assert_eq!(json["status"], "queued");
        assert_eq!(json["config"]["start_date"], "2026-10-01");
        assert_eq!(json["config"]["hyperparameters"]["n_epochs"], "auto");
        assert!(json.get("tenant_id").is_none() && json.get("version").is_none());
    }
}
