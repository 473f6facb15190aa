//! The Together AI adapter of the [`FineTuningProvider`] port: open-weight
//! models (Llama, Qwen) trained with LoRA (or fully), served serverless,
//! and weights the tenant can take with them.
//!
//! - [`client`]: one typed method per endpoint, over the OpenAI adapter's
//!   transport (Together's API is OpenAI-shaped in auth, errors, retries).
//! - [`types`]: the wire shapes of Together's published OpenAPI document.
//! - [`profile`]: the rules (models, limits, hyperparameters, prices).
//!
//! **One job per run without metadata.** Together jobs carry no tags. The
//! job's `suffix` is derived from the run id ([`suffix_for`]: its 32 hex
//! digits, unique across tenants), so after a crash the run's job is found
//! again by listing the account's jobs and matching the suffix, before any
//! job is created. The account is this deployment's own, so no one else
//! makes jobs with our suffixes.

pub mod client;
pub mod profile;
pub mod types;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::blob::{Blobs, WrittenObject};
use crate::config::AuthStyle;
use crate::config::TogetherConfig;
use crate::domain::ProviderKind;
use crate::domain::curve::MetricPoint;
use crate::evaluation::EvalExample;
use crate::provider::inference::{Inference, Reply};
use crate::provider::openai::http::{ClientSettings, RetryPolicy};
use crate::provider::status::together_job_status;
use crate::provider::weights::ModelWeights;
use crate::provider::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderCheckpoint,
    ProviderError, ProviderEvent, ProviderFileRef, ProviderJob, ProviderJobError,
};
use crate::secret::LazySecret;

pub use client::TogetherClient;
use types::{CreateFineTuneRequest, EstimatePriceRequest, FineTune, TrainingMethod, TrainingType};

/// The secret's name in messages (its value is never shown).
pub const API_KEY: &str = "Together API key";

/// The checkpoint the tenant's copy is made of: the LoRA adapter (what was
/// trained), or the merged model for a full fine-tune.
pub const ADAPTER: &str = "adapter";
pub const MERGED: &str = "merged";

/// The suffix that names a run's job: the run id's hex digits.
pub fn suffix_for(run: &crate::domain::RunId) -> String {
    run.as_str()
        .strip_prefix("run_")
        .unwrap_or(run.as_str())
        .to_owned()
}

/// Job controls and chat completions: what the cancel, models and
/// evaluate functions hold (no bucket).
#[derive(Clone, Debug)]
pub struct TogetherControl {
    client: TogetherClient,
}

/// The whole adapter: the controls plus the bucket files stream from.
#[derive(Clone, Debug)]
pub struct TogetherProvider {
    control: TogetherControl,
    blobs: Blobs,
}

impl TogetherControl {
    pub fn new(client: TogetherClient) -> Self {
        Self { client }
    }

    /// Built from the deployment's config; the key is read on the first
    /// call (see [`LazySecret`]).
    pub fn from_config(config: &TogetherConfig, key: LazySecret) -> Result<Self, ProviderError> {
        let settings = ClientSettings {
            base_url: config.base_url.clone(),
            auth_style: AuthStyle::Bearer,
            organization: None,
            project: None,
            timeout: config.timeout,
            upload_timeout: config.timeout.max(std::time::Duration::from_secs(600)),
            retry: RetryPolicy::new(config.max_retries),
            upload_threshold: u64::MAX,
            part_size: crate::provider::openai::http::DEFAULT_PART_SIZE,
        };
        Ok(Self::new(TogetherClient::new(settings, key)?))
    }

    pub fn client(&self) -> &TogetherClient {
        &self.client
    }

    /// The job that made `model` (Together deletes a model with its job).
    async fn job_of_model(&self, model: &str) -> Result<Option<FineTune>, ProviderError> {
        Ok(self
            .client
            .list_fine_tunes()
            .await?
            .data
            .into_iter()
            .find(|job| job.model_output_name.as_deref() == Some(model)))
    }
}

impl TogetherProvider {
    pub fn new(control: TogetherControl, blobs: Blobs) -> Self {
        Self { control, blobs }
    }

    pub fn control(&self) -> &TogetherControl {
        &self.control
    }
}

/// Together's `/finetune/download` (the adapter, or the merged model),
/// streamed into our bucket.
#[async_trait]
impl ModelWeights for TogetherProvider {
    async fn copy_weights(
        &self,
        job_id: &str,
        full: bool,
        key: &str,
    ) -> Result<WrittenObject, ProviderError> {
        let checkpoint = if full { MERGED } else { ADAPTER };
        self.control
            .client
            .download_to(job_id, checkpoint, &self.blobs, key)
            .await
    }
}

fn time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The wire job in our terms. The model is named only once it can answer
/// (`completed`): Together names it at creation.
pub fn provider_job(job: FineTune, tags: Option<JobTags>) -> ProviderJob {
    let status = together_job_status(&job.status);
    let finished_at = status
        .is_terminal()
        .then(|| time(job.updated_at.as_deref()))
        .flatten();
    let error = (status == crate::domain::JobStatus::Failed).then(|| ProviderJobError {
        code: Some("job_error".to_owned()),
        message: job
            .events
            .as_deref()
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|e| e.level.as_deref() == Some("error") || e.kind.as_deref() == Some("job_error"))
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "Together ended the job with an error".to_owned()),
        param: None,
    });
    ProviderJob {
        provider_status: job.status.clone(),
        status,
        base_model: job.model.clone().unwrap_or_default(),
        fine_tuned_model: (status == crate::domain::JobStatus::Succeeded)
            .then(|| job.model_output_name.clone())
            .flatten(),
        trained_tokens: job.token_count,
        error,
        created_at: time(job.created_at.as_deref()),
        finished_at,
        estimated_finish: None,
        tags,
        estimated_cost_usd: None,
        id: job.id,
    }
}

/// An event's id: Together's `hash` when it gives one, else its time and
/// text (stored once either way).
fn event_id(job_id: &str, index: usize, event: &types::FineTuneEvent) -> String {
    match event.hash.as_deref().filter(|h| !h.is_empty()) {
        Some(hash) => format!("{job_id}:{hash}"),
        None => format!(
            "{job_id}:{}:{index}",
            event.created_at.as_deref().unwrap_or_default()
        ),
    }
}

#[async_trait]
impl JobControl for TogetherControl {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Together
    }

    /// Together refuses to cancel an ended job; the port wants a no-op, so
    /// the job is read and returned as it is.
    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        match self.client.cancel_fine_tune(job_id).await {
            Ok(job) => Ok(provider_job(job, None)),
            Err(err @ ProviderError::InvalidRequest { .. }) => {
                let job = provider_job(self.client.get_fine_tune(job_id).await?, None);
                if job.status.is_terminal() {
                    Ok(job)
                } else {
                    Err(err)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A Together model goes with its job: the job that made `model` is
    /// deleted; none left means it is gone already.
    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        match self.job_of_model(model).await? {
            Some(job) => match self.client.delete_fine_tune(&job.id).await {
                Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            None => Ok(()),
        }
    }

    /// Serverless LoRA: callable by its name once its job completes.
    fn serving(&self) -> Option<&dyn crate::provider::serving::ModelServing> {
        None
    }
}

#[async_trait]
impl JobControl for TogetherProvider {
    fn kind(&self) -> ProviderKind {
        self.control.kind()
    }

    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.control.cancel_job(job_id).await
    }

    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        self.control.delete_model(model).await
    }

    fn serving(&self) -> Option<&dyn crate::provider::serving::ModelServing> {
        self.control.serving()
    }
}

#[async_trait]
impl Inference for TogetherControl {
    async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError> {
        self.client.answer(model, example, max_tokens).await
    }
}

#[async_trait]
impl FineTuningProvider for TogetherProvider {
    /// Uploaded (`/files/upload`), streamed from S3.
    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError> {
        let uploaded = self
            .control
            .client
            .upload_file_from_blob(&self.blobs, &file.key, file.bytes, &file.filename)
            .await?;
        Ok(ProviderFileRef { id: uploaded.id })
    }

    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError> {
        let h = &job.hyperparameters;
        let suffix = suffix_for(&job.tags.run_id);
        let training_type = match profile::lora_settings(h) {
            Some((lora_r, lora_alpha)) => TrainingType::Lora { lora_r, lora_alpha },
            None => TrainingType::Full,
        };
        let request = CreateFineTuneRequest {
            training_file: &job.training_file.id,
            validation_file: job.validation_file.as_ref().map(|f| f.id.as_str()),
            model: &job.base_model,
            n_epochs: h.n_epochs.value(),
            n_checkpoints: h.n_checkpoints.value(),
            n_evals: job.validation_file.as_ref().map(|_| 1),
            batch_size: h.batch_size.value(),
            learning_rate: h.learning_rate.value(),
            suffix: &suffix,
            training_type,
            training_method: TrainingMethod::SFT,
        };
        // Together's own price first: what the run's stats show, and a
        // refusal in words when the account may not spend it.
        let estimate = self
            .control
            .client
            .estimate_price(&EstimatePriceRequest {
                training_file: request.training_file,
                validation_file: request.validation_file,
                model: request.model,
                n_epochs: request.n_epochs,
                training_type: request.training_type.clone(),
                training_method: TrainingMethod::SFT,
            })
            .await?;
        if estimate.allowed_to_proceed == Some(false) {
            return Err(ProviderError::PermissionDenied {
                message: format!(
                    "Together estimates ${:.2} for this job, more than the account may spend (its credit limit is ${:.2})",
                    estimate.estimated_total_price.unwrap_or_default(),
                    estimate.user_limit.unwrap_or_default()
                ),
                request_id: None,
            });
        }
        let created = self.control.client.create_fine_tune(&request).await?;
        let mut created = provider_job(created, Some(job.tags.clone()));
        created.estimated_cost_usd = estimate.estimated_total_price;
        Ok(created)
    }

    /// The account's jobs whose suffix is the run's, newest first.
    async fn find_jobs(&self, tags: &JobTags) -> Result<Vec<ProviderJob>, ProviderError> {
        let suffix = suffix_for(&tags.run_id);
        let mut jobs: Vec<ProviderJob> = self
            .control
            .client
            .list_fine_tunes()
            .await?
            .data
            .into_iter()
            .filter(|job| {
                job.suffix.as_deref() == Some(suffix.as_str())
                    || job
                        .model_output_name
                        .as_deref()
                        .is_some_and(|name| name.contains(&format!("-{suffix}")))
            })
            .map(|job| provider_job(job, Some(tags.clone())))
            .collect();
        jobs.sort_by_key(|job| std::cmp::Reverse(job.created_at));
        Ok(jobs)
    }

    async fn get_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        let mut job = self.control.client.get_fine_tune(job_id).await?;
        if together_job_status(&job.status) == crate::domain::JobStatus::Failed
            && job.events.as_deref().is_none_or(<[_]>::is_empty)
        {
            // The reason is in the job's events.
            job.events = Some(self.control.client.events(job_id).await?.data);
        }
        Ok(provider_job(job, None))
    }

    async fn list_events(
        &self,
        job_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let events = self.control.client.events(job_id).await?.data;
        let all: Vec<ProviderEvent> = events
            .iter()
            .enumerate()
            .map(|(i, e)| ProviderEvent {
                id: event_id(job_id, i, e),
                created_at: time(e.created_at.as_deref()).unwrap_or_default(),
                level: match e.level.as_deref() {
                    Some("error") => "error",
                    Some("warning" | "warn") => "warn",
                    _ => "info",
                }
                .to_owned(),
                kind: e.kind.clone().unwrap_or_else(|| "message".to_owned()),
                message: e.message.clone(),
                data: e.step.map(|step| serde_json::json!({"step": step})),
            })
            .collect();
        let start = match after {
            Some(after) => all.iter().position(|e| e.id == after).map_or(0, |i| i + 1),
            None => 0,
        };
        Ok(all.into_iter().skip(start).take(limit).collect())
    }

    async fn list_checkpoints(
        &self,
        job_id: &str,
    ) -> Result<Vec<ProviderCheckpoint>, ProviderError> {
        let mut checkpoints: Vec<ProviderCheckpoint> = self
            .control
            .client
            .checkpoints(job_id)
            .await?
            .data
            .into_iter()
            .map(|c| ProviderCheckpoint {
                id: format!("{job_id}:{}", c.step),
                step: c.step,
                model: c.path,
                train_loss: None,
                valid_loss: None,
                full_valid_loss: None,
            })
            .collect();
        checkpoints.sort_by_key(|c| c.step);
        Ok(checkpoints)
    }

    /// `/fine-tunes/{id}/metrics`: `train/loss` and `eval/loss` by
    /// `train/global_step`.
    async fn step_metrics(
        &self,
        job_id: &str,
        _owner: &JobTags,
    ) -> Result<Vec<MetricPoint>, ProviderError> {
        let snapshots = self.control.client.metrics(job_id).await?.metrics;
        let number = |s: &serde_json::Map<String, serde_json::Value>, k: &str| {
            s.get(k).and_then(serde_json::Value::as_f64)
        };
        let mut points: Vec<MetricPoint> = snapshots
            .iter()
            .filter_map(|s| {
                let step = number(s, "train/global_step")? as u64;
                Some(MetricPoint {
                    step,
                    train_loss: number(s, "train/loss"),
                    valid_loss: number(s, "eval/loss"),
                    train_accuracy: None,
                    valid_accuracy: None,
                    full_valid_loss: None,
                })
            })
            .collect();
        points.sort_by_key(|p| p.step);
        Ok(points)
    }

    fn weights(&self) -> Option<&dyn ModelWeights> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobStatus, RunId};

    fn job(status: &str) -> FineTune {
        serde_json::from_value(serde_json::json!({
            "id": "ft-1", "status": status, "model": "Qwen/Qwen2.5-7B-Instruct",
            "model_output_name": "org/Qwen2.5-7B-Instruct-abc-1234",
            "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T11:00:00Z",
            "token_count": 1200,
            "events": [{"message": "started", "level": "info"},
                       {"message": "out of memory at step 3", "level": "error"}]
        }))
        .unwrap()
    }

    #[test]
    fn a_job_names_its_model_only_when_completed_and_a_failed_one_says_why() {
        let running = provider_job(job("running"), None);
        assert_eq!(running.status, JobStatus::Running);
        assert_eq!(running.fine_tuned_model, None);
        assert_eq!(running.finished_at, None);
        let done = provider_job(job("completed"), None);
        assert_eq!(
            done.fine_tuned_model.as_deref(),
            Some("org/Qwen2.5-7B-Instruct-abc-1234")
        );
        assert_eq!(done.trained_tokens, Some(1200));
        assert!(done.finished_at.is_some());
        let failed = provider_job(job("error"), None);
        assert_eq!(failed.error.unwrap().message, "out of memory at step 3");
    }

    #[test]
    fn a_runs_suffix_is_its_ids_hex_digits() {
        let run = RunId::parse("run_0193a1b2c3d4e5f60718293a4b5c6d7e").unwrap();
        assert_eq!(suffix_for(&run), "0193a1b2c3d4e5f60718293a4b5c6d7e");
    }
}
