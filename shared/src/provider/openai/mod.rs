//! The OpenAI adapter of the [`FineTuningProvider`] port. Speaks OpenAI's
//! HTTP API, which Azure OpenAI's v1 endpoint shares (another base URL and
//! the `api-key` header) and the local `openai-sandbox` imitates.
//!
//! - [`http`]: auth, timeouts, retries, the error mapping.
//! - [`client`]: one typed method per endpoint.
//! - [`types`]: the wire shapes.
//! - [`suffix`]: the model-name suffix rule.
//! - [`chat`]: Chat Completions, the [`Inference`](crate::provider::inference::Inference) capability.

pub mod chat;
pub mod client;
pub mod http;
pub mod profile;
pub mod suffix;
pub mod types;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::blob::Blobs;
use crate::config::OpenAiConfig;
use crate::domain::{Hyperparameters, ProviderKind, RunId, TenantId};
use crate::provider::status::openai_job_status;
use crate::provider::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderCheckpoint,
    ProviderError, ProviderEvent, ProviderFileRef, ProviderJob, ProviderJobError,
};
use crate::secret::LazySecret;

pub use client::{ListJobs, OpenAiClient};
pub use http::{API_KEY, ApiKey, ClientSettings, RetryPolicy};
pub use suffix::sanitize_suffix;
use types::{
    CreateFineTuningJobRequest, FineTuneMethod, FineTuningJobObject, JobEventObject,
    MethodHyperparameters,
};

/// Metadata keys our jobs carry (OpenAI `metadata`), to find them again.
pub const METADATA_TENANT: &str = "tenant_id";
pub const METADATA_RUN: &str = "run_id";

/// Page size for listing jobs and events (OpenAI's maximum is 100).
const PAGE: u32 = 100;
/// How many job pages `find_jobs` reads at most: a filtered listing is one
/// page; a server that ignores the filter must not make us read forever.
const MAX_JOB_PAGES: usize = 20;
/// How many event pages `list_events` reads at most per call.
const MAX_EVENT_PAGES: usize = 50;

/// The OpenAI provider: the typed client plus the bucket it streams
/// dataset files from.
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    control: OpenAiControl,
    blobs: Blobs,
}

/// The OpenAI calls on jobs and models that need no bucket: what the
/// cancel and models functions hold (see [`JobControl`]).
#[derive(Clone, Debug)]
pub struct OpenAiControl {
    client: OpenAiClient,
}

impl OpenAiControl {
    pub fn new(client: OpenAiClient) -> Self {
        Self { client }
    }

    /// Built from the environment's config; the key is read on the first
    /// call (see [`LazySecret`]).
    pub fn from_config(config: &OpenAiConfig, key: LazySecret) -> Result<Self, ProviderError> {
        Ok(Self::new(OpenAiClient::new(
            ClientSettings::from_config(config),
            key,
        )?))
    }
}

impl OpenAiProvider {
    /// Its calls that need no bucket (also its chat completions).
    pub fn control(&self) -> &OpenAiControl {
        &self.control
    }

    pub fn new(client: OpenAiClient, blobs: Blobs) -> Self {
        Self {
            control: OpenAiControl::new(client),
            blobs,
        }
    }

    /// Built from the environment's config; the key is read on the first
    /// call (see [`LazySecret`]).
    pub fn from_config(
        config: &OpenAiConfig,
        key: LazySecret,
        blobs: Blobs,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            control: OpenAiControl::from_config(config, key)?,
            blobs,
        })
    }

    /// The typed client, for calls outside the port (pause, resume,
    /// checkpoints, files).
    pub fn client(&self) -> &OpenAiClient {
        &self.control.client
    }
}

/// The create request for a port `CreateJob`: supervised method with our
/// hyperparameters, sanitized suffix, and the tags as `metadata`.
pub fn create_request(job: &CreateJob) -> CreateFineTuningJobRequest {
    CreateFineTuningJobRequest {
        model: job.base_model.clone(),
        training_file: job.training_file.id.clone(),
        validation_file: job.validation_file.as_ref().map(|f| f.id.clone()),
        suffix: job.suffix.as_deref().and_then(sanitize_suffix),
        seed: job.seed,
        method: Some(FineTuneMethod::supervised(method_hyperparameters(
            &job.hyperparameters,
        ))),
        metadata: Some(tags_metadata(&job.tags)),
    }
}

fn method_hyperparameters(h: &Hyperparameters) -> MethodHyperparameters {
    MethodHyperparameters {
        batch_size: Some(h.batch_size),
        learning_rate_multiplier: Some(h.learning_rate_multiplier),
        n_epochs: Some(h.n_epochs),
        beta: None,
    }
}

fn tags_metadata(tags: &JobTags) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            METADATA_TENANT.to_owned(),
            tags.tenant_id.as_str().to_owned(),
        ),
        (METADATA_RUN.to_owned(), tags.run_id.as_str().to_owned()),
    ])
}

fn tags_match(job: &FineTuningJobObject, tags: &JobTags) -> bool {
    job.metadata.as_ref().is_some_and(|m| {
        m.get(METADATA_TENANT).map(String::as_str) == Some(tags.tenant_id.as_str())
            && m.get(METADATA_RUN).map(String::as_str) == Some(tags.run_id.as_str())
    })
}

fn time(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// The wire job in our terms.
pub fn provider_job(job: FineTuningJobObject) -> ProviderJob {
    let tags = job.metadata.as_ref().and_then(|m| {
        Some(JobTags {
            tenant_id: TenantId::parse(m.get(METADATA_TENANT)?.clone()).ok()?,
            run_id: RunId::parse(m.get(METADATA_RUN)?.clone()).ok()?,
        })
    });
    ProviderJob {
        status: openai_job_status(&job.status),
        provider_status: job.status,
        id: job.id,
        base_model: job.model,
        fine_tuned_model: job.fine_tuned_model,
        trained_tokens: job.trained_tokens,
        error: job.error.map(|e| ProviderJobError {
            code: e.code,
            message: e.message,
            param: e.param,
        }),
        created_at: time(job.created_at),
        finished_at: job.finished_at.and_then(time),
        estimated_finish: job.estimated_finish.and_then(time),
        tags,
        estimated_cost_usd: None,
    }
}

fn provider_event(e: JobEventObject) -> ProviderEvent {
    ProviderEvent {
        created_at: time(e.created_at).unwrap_or_default(),
        id: e.id,
        level: e.level,
        kind: e.kind.unwrap_or_else(|| "message".to_owned()),
        message: e.message,
        data: e.data.filter(|d| !d.is_null()),
    }
}

#[async_trait]
impl JobControl for OpenAiControl {
    /// An `ft:` model is callable the moment its job succeeds.
    fn serving(&self) -> Option<&dyn crate::provider::serving::ModelServing> {
        None
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    /// OpenAI refuses (400) to cancel a job that has ended; the port wants
    /// that to be a no-op, so the job is fetched and returned as it is.
    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        match self.client.cancel_job(job_id).await {
            Ok(job) => Ok(provider_job(job)),
            Err(err @ ProviderError::InvalidRequest { .. }) => {
                let job = provider_job(self.client.retrieve_job(job_id).await?);
                if job.status.is_terminal() {
                    Ok(job)
                } else {
                    Err(err)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        let deleted = self.client.delete_model(model).await?;
        if deleted.deleted {
            Ok(())
        } else {
            Err(ProviderError::Server {
                status: 200,
                message: format!("model {model} was not deleted"),
                request_id: None,
            })
        }
    }
}

#[async_trait]
impl JobControl for OpenAiProvider {
    fn serving(&self) -> Option<&dyn crate::provider::serving::ModelServing> {
        self.control.serving()
    }

    fn kind(&self) -> ProviderKind {
        self.control.kind()
    }

    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.control.cancel_job(job_id).await
    }

    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        self.control.delete_model(model).await
    }
}

#[async_trait]
impl FineTuningProvider for OpenAiProvider {
    /// OpenAI keeps the weights it trains: none to copy.
    fn weights(&self) -> Option<&dyn crate::provider::weights::ModelWeights> {
        None
    }

    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError> {
        let blobs = if file.bucket == self.blobs.bucket() {
            self.blobs.clone()
        } else {
            Blobs::new(self.blobs.client().clone(), file.bucket.clone())
        };
        // The Uploads API insists the parts add up to the declared size:
        // trust the object, not the record, if they ever disagree.
        let bytes = blobs.size(&file.key).await?;
        if bytes != file.bytes {
            tracing::warn!(
                key = %file.key,
                recorded = file.bytes,
                actual = bytes,
                "dataset file size differs from its record; uploading the object as it is"
            );
        }
        let uploaded = self
            .control
            .client
            .upload_from_blob(&blobs, &file.key, bytes, &file.filename)
            .await?;
        tracing::info!(file_id = %uploaded.id, bytes, key = %file.key, "dataset file uploaded to OpenAI");
        Ok(ProviderFileRef { id: uploaded.id })
    }

    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError> {
        let created = self.control.client.create_job(&create_request(job)).await?;
        Ok(provider_job(created))
    }

    /// Lists with the `metadata[...]` filter, and keeps only jobs whose
    /// returned metadata really matches: a server that ignored the filter
    /// must not make us adopt another run's job.
    async fn find_jobs(&self, tags: &JobTags) -> Result<Vec<ProviderJob>, ProviderError> {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_JOB_PAGES {
            let page = self
                .control
                .client
                .list_jobs(&ListJobs {
                    after: after.as_deref(),
                    limit: Some(PAGE),
                    metadata: vec![
                        (METADATA_TENANT, tags.tenant_id.as_str()),
                        (METADATA_RUN, tags.run_id.as_str()),
                    ],
                })
                .await?;
            after = page.data.last().map(|j| j.id.clone());
            for job in page.data {
                if tags_match(&job, tags) {
                    found.push(provider_job(job));
                } else {
                    tracing::warn!(job_id = %job.id, "job listing ignored the metadata filter; skipping a job of another run");
                }
            }
            if !page.has_more || after.is_none() {
                return Ok(found);
            }
        }
        tracing::warn!(pages = MAX_JOB_PAGES, "stopped listing jobs early");
        Ok(found)
    }

    async fn get_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        Ok(provider_job(
            self.control.client.retrieve_job(job_id).await?,
        ))
    }

    /// OpenAI lists events newest first; this pages back until it meets
    /// `after` (or the beginning) and returns the newer ones oldest first,
    /// the first `limit` of them, so a caller that stores them and passes
    /// the last id back never skips one. An `after` OpenAI no longer lists
    /// (expired) means every listed event is returned: the caller stores
    /// events by id, so a repeat is harmless and a gap is not.
    async fn list_events(
        &self,
        job_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let mut newest_first: Vec<JobEventObject> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut reached = false;
        for _ in 0..MAX_EVENT_PAGES {
            let page = self
                .control
                .client
                .list_events_page(job_id, cursor.as_deref(), PAGE)
                .await?;
            let has_more = page.has_more;
            cursor = page.data.last().map(|e| e.id.clone());
            for event in page.data {
                if Some(event.id.as_str()) == after {
                    reached = true;
                    break;
                }
                newest_first.push(event);
            }
            if reached || !has_more || cursor.is_none() {
                reached = true;
                break;
            }
        }
        if !reached {
            tracing::warn!(job_id, "stopped paging events early");
        }
        Ok(newest_first
            .into_iter()
            .rev()
            .take(limit)
            .map(provider_event)
            .collect())
    }

    /// Every step is in the job's events.
    async fn step_metrics(
        &self,
        _job_id: &str,
        _owner: &JobTags,
    ) -> Result<Vec<crate::domain::curve::MetricPoint>, ProviderError> {
        Ok(Vec::new())
    }

    async fn list_checkpoints(
        &self,
        job_id: &str,
    ) -> Result<Vec<ProviderCheckpoint>, ProviderError> {
        // OpenAI keeps a job's last three checkpoints: one page holds them.
        let page = self
            .control
            .client
            .list_checkpoints(job_id, None, 20)
            .await?;
        let mut checkpoints: Vec<ProviderCheckpoint> = page
            .data
            .into_iter()
            .map(|c| ProviderCheckpoint {
                id: c.id,
                step: c.step_number,
                model: c.fine_tuned_model_checkpoint,
                train_loss: c.metrics.get("train_loss").copied(),
                valid_loss: c.metrics.get("valid_loss").copied(),
                full_valid_loss: c.metrics.get("full_valid_loss").copied(),
            })
            .collect();
        checkpoints.sort_by_key(|c| c.step);
        Ok(checkpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AutoOr;

    fn tags() -> JobTags {
        JobTags {
            tenant_id: TenantId::parse("acme").unwrap(),
            run_id: RunId::generate(),
        }
    }

    #[test]
    fn a_create_request_carries_method_metadata_and_a_clean_suffix() {
        let tags = tags();
        let job = CreateJob {
            tags: tags.clone(),
            base_model: "gpt-4o-mini-2024-07-18".to_owned(),
            training_file: ProviderFileRef {
                id: "file-a".to_owned(),
            },
            validation_file: Some(ProviderFileRef {
                id: "file-b".to_owned(),
            }),
            hyperparameters: Hyperparameters {
                n_epochs: AutoOr::Value(3),
                ..Default::default()
            },
            suffix: Some("Acme Support: v2".to_owned()),
            seed: Some(7),
        };
        let body = serde_json::to_value(create_request(&job)).unwrap();
        assert_eq!(body["suffix"], "acme-support-v2");
        assert_eq!(body["method"]["type"], "supervised");
        assert_eq!(
            body["method"]["supervised"]["hyperparameters"]["n_epochs"],
            3
        );
        assert_eq!(
            body["method"]["supervised"]["hyperparameters"]["batch_size"],
            "auto"
        );
        assert_eq!(body["metadata"]["run_id"], tags.run_id.as_str());
        assert_eq!(body["validation_file"], "file-b");
        assert!(body.get("hyperparameters").is_none());
    }

    #[test]
    fn a_wire_job_maps_status_times_error_and_tags() {
        let tags = tags();
        let wire: FineTuningJobObject = serde_json::from_value(serde_json::json!({
            "id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1_700_000_000,
            "model": "gpt-4o-mini", "status": "paused", "training_file": "file-a",
            "error": {"code": "x", "message": "m", "param": null},
            "metadata": {"tenant_id": "acme", "run_id": tags.run_id.as_str()}
        }))
        .unwrap();
        let job = provider_job(wire);
        assert_eq!(job.status, crate::domain::JobStatus::Paused);
        assert_eq!(job.provider_status, "paused");
        assert_eq!(job.tags, Some(tags));
        assert_eq!(job.error.unwrap().message, "m");
        assert_eq!(job.created_at.unwrap().timestamp(), 1_700_000_000);
    }
}
