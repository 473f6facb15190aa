//! The [`FineTuningProvider`] port on Amazon Bedrock model customization.
//!
//! Bedrock reads the dataset from our bucket (no upload: `prepare_file`
//! returns the object's `s3://` URI) as the service role from config, and
//! needs no API key: the functions' own role calls it.
//!
//! Ids: a job is recorded by its *name* (`ft-run-…`), which Bedrock takes
//! wherever it takes the job ARN, and which is derived from the run, so a
//! job can always be found again. (moto also only looks jobs up by name: it
//! does not decode an ARN in the request path.) The fine-tuned model is the
//! custom model's ARN, as Bedrock gives it.
//!
//! One job per run: the name and `clientRequestToken` come from the run id;
//! a create that conflicts with an existing job (a retry after a timeout)
//! adopts that job instead of failing, and the reconciler first looks for
//! the job by name and tags.

pub mod format;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod profile;

mod converse;
mod deployment;
mod error;

pub use converse::BedrockRuntime;

use async_trait::async_trait;
use aws_sdk_bedrock::Client;
use aws_sdk_bedrock::types::{
    CustomizationType, ModelCustomizationJobStatus, OutputDataConfig, SortJobsBy, SortOrder, Tag,
    TrainingDataConfig, ValidationDataConfig, Validator,
};
use chrono::{DateTime, Utc};

use super::status::bedrock_job_status;
use super::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderCheckpoint,
    ProviderError, ProviderEvent, ProviderFileRef, ProviderJob, ProviderJobError,
};
use crate::blob::Blobs;
use crate::domain::curve::MetricPoint;
use crate::domain::{JobStatus, ProviderKind, RunId, TenantId};
use error::{is_conflict, map_sdk_error};

/// The tag keys on jobs and custom models (the same words as OpenAI's
/// `metadata` keys).
pub const TAG_TENANT: &str = "tenant_id";
pub const TAG_RUN: &str = "run_id";

/// What the adapter needs besides the client.
#[derive(Debug, Clone)]
pub struct BedrockSettings {
    /// The service role Bedrock assumes (`BEDROCK_ROLE_ARN`).
    pub role_arn: String,
    /// Our bucket: datasets are read and output written there.
    pub bucket: String,
}

#[derive(Debug, Clone)]
pub struct BedrockProvider {
    jobs: BedrockJobs,
    /// Our bucket, where Bedrock writes a job's metrics files.
    blobs: Blobs,
    settings: BedrockSettings,
}

/// The Bedrock calls on jobs and models that need no bucket: what the
/// cancel and models functions hold (see [`JobControl`]).
#[derive(Debug, Clone)]
pub struct BedrockJobs {
    client: crate::aws::LazyClient<Client>,
}

impl BedrockJobs {
    pub fn new(client: Client) -> Self {
        Self {
            client: crate::aws::LazyClient::ready(client),
        }
    }

    /// The client made on the first call: most cold starts of the functions
    /// holding this never call Bedrock.
    pub fn lazy(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: crate::aws::LazyClient::new(sdk, Client::new),
        }
    }

    fn client(&self) -> &Client {
        self.client.get()
    }

    async fn job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        let out = self
            .client()
            .get_model_customization_job()
            .job_identifier(job_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("model customization job {job_id}")))?;
        let provider_status = out
            .status()
            .map(ModelCustomizationJobStatus::as_str)
            .unwrap_or("InProgress")
            .to_owned();
        let status = bedrock_job_status(&provider_status);
        // moto (and perhaps Bedrock) fill these before the job ends: only
        // an ended job's model and failure mean anything.
        let fine_tuned_model = (status == JobStatus::Succeeded)
            .then(|| out.output_model_arn().map(str::to_owned))
            .flatten();
        let error = (status == JobStatus::Failed).then(|| ProviderJobError {
            code: None,
            message: out
                .failure_message()
                .unwrap_or("Bedrock failed the job without a message")
                .to_owned(),
            param: None,
        });
        Ok(ProviderJob {
            id: out.job_name().to_owned(),
            status,
            provider_status,
            base_model: out.base_model_arn().to_owned(),
            fine_tuned_model,
            // Bedrock reports losses, not trained tokens.
            trained_tokens: None,
            error,
            created_at: time(Some(out.creation_time())),
            finished_at: if status.is_terminal() {
                time(out.end_time())
            } else {
                None
            },
            estimated_finish: None,
            tags: None,
            estimated_cost_usd: None,
        })
    }
}

impl BedrockProvider {
    pub fn new(client: Client, blobs: Blobs, settings: BedrockSettings) -> Self {
        Self {
            jobs: BedrockJobs::new(client),
            blobs,
            settings,
        }
    }

    /// The client made on the first call: most cold starts of the functions
    /// holding this provider never call Bedrock.
    pub fn lazy(sdk: &aws_config::SdkConfig, blobs: Blobs, settings: BedrockSettings) -> Self {
        Self {
            jobs: BedrockJobs::lazy(sdk),
            blobs,
            settings,
        }
    }

    fn client(&self) -> &Client {
        self.jobs.client()
    }

    async fn job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.jobs.job(job_id).await
    }

    fn tags(tags: &JobTags) -> Result<Vec<Tag>, ProviderError> {
        [
            (TAG_TENANT, tags.tenant_id.as_str()),
            (TAG_RUN, tags.run_id.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::Decode(format!("tag {k}: {e}")))
        })
        .collect()
    }

    /// The job's tags, read back, when they name a tenant and a run.
    async fn read_tags(&self, job_arn: &str) -> Result<Option<JobTags>, ProviderError> {
        let out = self
            .client()
            .list_tags_for_resource()
            .resource_arn(job_arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "the job's tags"))?;
        let find = |key: &str| {
            out.tags()
                .iter()
                .find(|t| t.key() == key)
                .map(|t| t.value().to_owned())
        };
        Ok(match (find(TAG_TENANT), find(TAG_RUN)) {
            (Some(tenant), Some(run)) => match (TenantId::parse(tenant), RunId::parse(run)) {
                (Ok(tenant_id), Ok(run_id)) => Some(JobTags { tenant_id, run_id }),
                _ => None,
            },
            _ => None,
        })
    }
}

/// Training and validation loss, when Bedrock reported them.
fn metrics(
    out: &aws_sdk_bedrock::operation::get_model_customization_job::GetModelCustomizationJobOutput,
) -> Option<serde_json::Value> {
    let training = out.training_metrics().and_then(|m| m.training_loss());
    let validation: Vec<f32> = out
        .validation_metrics()
        .iter()
        .filter_map(|m| m.validation_loss())
        .collect();
    if training.is_none() && validation.is_empty() {
        return None;
    }
    Some(serde_json::json!({
        "training_loss": training,
        "validation_loss": validation,
    }))
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

#[async_trait]
impl JobControl for BedrockJobs {
    /// A Nova custom model answers on demand only through a custom model
    /// deployment.
    fn serving(&self) -> Option<&dyn crate::provider::serving::ModelServing> {
        Some(self)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Bedrock
    }

    /// Stops the job; a job that already ended is returned as it is
    /// (Bedrock refuses to stop it with a validation error).
    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        let current = self.job(job_id).await?;
        if current.status.is_terminal() || current.status == JobStatus::Stopping {
            return Ok(current);
        }
        self.client()
            .stop_model_customization_job()
            .job_identifier(job_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("model customization job {job_id}")))?;
        tracing::info!(job = %job_id, "Bedrock model customization job stop requested");
        self.job(job_id).await
    }

    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        self.client()
            .delete_custom_model()
            .model_identifier(model)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("custom model {model}")))?;
        Ok(())
    }
}

#[async_trait]
impl JobControl for BedrockProvider {
    fn kind(&self) -> ProviderKind {
        self.jobs.kind()
    }

    fn serving(&self) -> Option<&dyn crate::provider::serving::ModelServing> {
        self.jobs.serving()
    }

    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.jobs.cancel_job(job_id).await
    }

    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        self.jobs.delete_model(model).await
    }
}

#[async_trait]
impl FineTuningProvider for BedrockProvider {
    /// Bedrock keeps the weights it trains: none to copy.
    fn weights(&self) -> Option<&dyn crate::provider::weights::ModelWeights> {
        None
    }

    /// Nothing to upload: Bedrock reads the object where it is.
    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError> {
        Ok(ProviderFileRef {
            id: format!("s3://{}/{}", file.bucket, file.key),
        })
    }

    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError> {
        let run = &job.tags.run_id;
        let name = names::job_name(run);
        let hyperparameters =
            limits::to_bedrock(&job.hyperparameters, &job.base_model).map_err(|problems| {
                ProviderError::InvalidRequest {
                    message: problems
                        .iter()
                        .map(|p| format!("{}: {}", p.field, p.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    param: problems.first().map(|p| p.field.to_owned()),
                    code: Some("invalid_hyperparameters".to_owned()),
                    request_id: None,
                }
            })?;
        let output = OutputDataConfig::builder()
            .s3_uri(format!(
                "s3://{}/{}",
                self.settings.bucket,
                names::output_prefix(&job.tags.tenant_id, run)
            ))
            .build()
            .map_err(|e| ProviderError::Decode(format!("output config: {e}")))?;
        let mut request = self
            .client()
            .create_model_customization_job()
            .job_name(&name)
            .custom_model_name(names::custom_model_name(run))
            .client_request_token(names::client_request_token(run))
            .role_arn(&self.settings.role_arn)
            .base_model_identifier(&job.base_model)
            .customization_type(CustomizationType::FineTuning)
            .training_data_config(
                TrainingDataConfig::builder()
                    .s3_uri(&job.training_file.id)
                    .build(),
            )
            .output_data_config(output)
            .set_hyper_parameters(Some(hyperparameters))
            .set_job_tags(Some(Self::tags(&job.tags)?))
            .set_custom_model_tags(Some(Self::tags(&job.tags)?));
        if let Some(validation) = &job.validation_file {
            let validator = Validator::builder()
                .s3_uri(&validation.id)
                .build()
                .map_err(|e| ProviderError::Decode(format!("validator: {e}")))?;
            request = request.validation_data_config(
                ValidationDataConfig::builder()
                    .validators(validator)
                    .build()
                    .map_err(|e| ProviderError::Decode(format!("validation config: {e}")))?,
            );
        }
        match request.send().await {
            Ok(created) => {
                tracing::info!(job = %name, job_arn = %created.job_arn(), "Bedrock model customization job created");
            }
            Err(e) if is_conflict(&e) => {
                tracing::warn!(job = %name, "a Bedrock job of this run already exists; adopting it");
            }
            Err(e) => return Err(map_sdk_error(e, "the base model or role")),
        }
        let mut created = self.job(&name).await?;
        created.tags = Some(job.tags.clone());
        Ok(created)
    }

    /// Lists by the run's job name (unique per run), newest first, and keeps
    /// only jobs whose tags name this tenant and run: a name match alone
    /// must not make us adopt a job someone else tagged.
    async fn find_jobs(&self, tags: &JobTags) -> Result<Vec<ProviderJob>, ProviderError> {
        let name = names::job_name(&tags.run_id);
        let listed = self
            .client()
            .list_model_customization_jobs()
            .name_contains(&name)
            .sort_by(SortJobsBy::CreationTime)
            .sort_order(SortOrder::Descending)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "model customization jobs"))?;
        let mut found = Vec::new();
        for summary in listed.model_customization_job_summaries() {
            if summary.job_name() != name {
                continue;
            }
            match self.read_tags(summary.job_arn()).await? {
                Some(read) if &read == tags => {
                    let mut job = self.job(summary.job_name()).await?;
                    job.tags = Some(read);
                    found.push(job);
                }
                _ => {
                    tracing::warn!(job = %summary.job_name(), "a Bedrock job has this run's name but not its tags; not adopting it");
                }
            }
        }
        Ok(found)
    }

    async fn get_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.job(job_id).await
    }

    /// Bedrock keeps no event list for a job; the timeline gets one event
    /// when the job ends, with its losses, under a stable id so it is
    /// stored once.
    async fn list_events(
        &self,
        job_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let out = self
            .client()
            .get_model_customization_job()
            .job_identifier(job_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("model customization job {job_id}")))?;
        let status = out
            .status()
            .map(ModelCustomizationJobStatus::as_str)
            .unwrap_or("InProgress");
        let mut events = vec![ProviderEvent {
            id: "created".to_owned(),
            created_at: time(Some(out.creation_time())).unwrap_or_default(),
            level: "info".to_owned(),
            kind: "message".to_owned(),
            message: format!(
                "Bedrock job {} created on {}",
                out.job_name(),
                out.base_model_arn()
            ),
            data: None,
        }];
        if bedrock_job_status(status).is_terminal() {
            let level = if status == "Failed" { "error" } else { "info" };
            events.push(ProviderEvent {
                id: format!("ended-{status}"),
                created_at: time(out.end_time()).unwrap_or_else(Utc::now),
                level: level.to_owned(),
                kind: "metrics".to_owned(),
                message: format!("Bedrock job {status}"),
                data: metrics(&out),
            });
        }
        let start = match after {
            Some(id) => events.iter().position(|e| e.id == id).map_or(0, |i| i + 1),
            None => 0,
        };
        Ok(events.into_iter().skip(start).take(limit).collect())
    }

    /// Bedrock's metrics files under the run's output prefix. Only the run's
    /// own prefix is listed (the job id in the folder name is not needed).
    /// Bedrock keeps no checkpoints a tenant can call.
    async fn list_checkpoints(
        &self,
        _job_id: &str,
    ) -> Result<Vec<ProviderCheckpoint>, ProviderError> {
        Ok(Vec::new())
    }

    async fn step_metrics(
        &self,
        job_id: &str,
        owner: &JobTags,
    ) -> Result<Vec<MetricPoint>, ProviderError> {
        let prefix = names::output_prefix(&owner.tenant_id, &owner.run_id);
        let mut points = Vec::new();
        for object in self.blobs.list_prefix(&prefix).await? {
            let series = if object.key.ends_with(metrics::TRAINING_FILE) {
                metrics::Series::Training
            } else if object.key.ends_with(metrics::VALIDATION_FILE) {
                metrics::Series::Validation
            } else {
                continue;
            };
            let reader = self.blobs.open(&object.key).await?;
            let parsed = metrics::parse(reader, series)
                .await
                .map_err(|e| ProviderError::Decode(format!("{}: {e}", object.key)))?;
            if parsed.skipped > 0 {
                tracing::warn!(job = %job_id, key = %object.key, skipped = parsed.skipped, "metrics rows skipped");
            }
            points.extend(parsed.points);
        }
        Ok(points)
    }
}
