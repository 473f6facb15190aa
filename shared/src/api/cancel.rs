//! `POST /runs/{id}/cancel`: stop the provider's job (if any), give up the
//! run's deployment if it is deploying one, and mark the run cancelled,
//! without racing the monitor into a lost update.
//!
//! Every write is conditional on the version read (`Store::update_run`); on
//! a conflict the run is read again and the decision made again, a bounded
//! number of times. The provider's cancel is idempotent, but it is called
//! at most once per job per request all the same.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::job_status::{GetRunError, read_run};
use crate::domain::{
    EventLevel, JobInfo, JobStatus, Run, RunEvent, RunStatus, ServingChoice, TenantId,
};
use crate::pipeline::{ReleaseError, release_deployment};
use crate::provider::{Controls, ProviderError, ProviderJob};
use crate::store::{Store, StoreError};

/// Re-reads after a version conflict before giving up with 503.
pub const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// This request cancelled the run.
    Cancelled(Run),
    /// It was cancelled before: nothing changed (idempotent).
    AlreadyCancelled(Run),
}

impl CancelOutcome {
    pub fn run(&self) -> &Run {
        match self {
            CancelOutcome::Cancelled(run) | CancelOutcome::AlreadyCancelled(run) => run,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("run not found")]
    NotFound,
    /// Completed or failed runs stay as they are.
    #[error("the run is {status}; only a run that has not finished can be cancelled")]
    Finished { status: RunStatus },
    /// The provider's job ended on its own before we could stop it; its
    /// state is recorded and the monitor finishes the run.
    #[error(
        "the provider's job already {}; the run will be marked accordingly shortly",
        ended(.status)
    )]
    JobAlreadyFinished { status: JobStatus },
    /// A provider error worth retrying (rate limit, 5xx, network), or no
    /// adapter for the run's provider. The run is left as it was.
    #[error("could not cancel the provider's job right now: {0}")]
    ProviderUnavailable(ProviderError),
    /// The provider refused in a way retrying will not fix (credentials,
    /// permissions). The run is left as it was.
    #[error("the provider refused to cancel the job: {0}")]
    ProviderRefused(ProviderError),
    /// Another writer kept changing the run; the caller may retry.
    #[error("the run is being updated by the pipeline; try again")]
    Contended,
    #[error(transparent)]
    Store(StoreError),
}

fn ended(status: &JobStatus) -> &'static str {
    if *status == JobStatus::Succeeded {
        "succeeded"
    } else {
        "failed"
    }
}

/// Cancels the tenant's run `id` (raw from the path).
pub async fn cancel_run(
    store: &Store,
    providers: &Controls,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<CancelOutcome, CancelError> {
    // The provider's answer for the job id already cancelled in this
    // request, so a retry after a version conflict does not call it again.
    let mut cancelled_job: Option<ProviderJob> = None;
    // Whether this request already gave up the run's deployment.
    let mut released = false;
    for attempt in 0..MAX_ATTEMPTS {
        let mut run = read_run(store, tenant, id).await.map_err(|e| match e {
            GetRunError::NotFound => CancelError::NotFound,
            GetRunError::Store(e) => CancelError::Store(e),
        })?;
        match run.status {
            RunStatus::Cancelled => return Ok(CancelOutcome::AlreadyCancelled(run)),
            RunStatus::Completed | RunStatus::Failed => {
                return Err(CancelError::Finished { status: run.status });
            }
            _ => {}
        }
        let from = run.status;

        if let Some(job) = run.job.clone()
            && !job.status.is_terminal()
        {
            let answer = match cancelled_job.take() {
                Some(done) if done.id == job.provider_job_id => done,
                _ => cancel_at_provider(providers, &run, &job).await?,
            };
            run.job = Some(merge_job(&job, &answer, now));
            cancelled_job = Some(answer);
        }
        // A run deploying its model is past its job (which succeeded):
        // it is cancelled as it stands.
        if from != RunStatus::Deploying
            && let Some(job) = &run.job
            && matches!(job.status, JobStatus::Succeeded | JobStatus::Failed)
        {
            // Record what the provider says; the monitor completes or fails
            // the run from it (it fetches the model, the error, the events).
            let status = job.status;
            return match store.update_run(&run).await {
                Ok(_) => Err(CancelError::JobAlreadyFinished { status }),
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => Err(CancelError::Store(e)),
            };
        }

        if from == RunStatus::Deploying && !released {
            // Before the run is cancelled: once it is, nothing would ever
            // delete a deployment it leaves (see `pipeline::release`).
            release(store, providers, &run).await?;
            released = true;
        }
        if run
            .move_to(RunStatus::Cancelled, "cancelled on request", now)
            .is_err()
        {
            // Unreachable given the checks above; refuse rather than guess.
            return Err(CancelError::Finished { status: run.status });
        }
        match store.update_run(&run).await {
            Ok(stored) => {
                record_event(store, tenant, &stored, from, now).await;
                tracing::info!(run_id = %stored.id, %from, attempt, "run cancelled");
                return Ok(CancelOutcome::Cancelled(stored));
            }
            Err(StoreError::VersionConflict { .. }) => {
                tracing::info!(run_id = %run.id, attempt, "run changed while cancelling; re-reading");
                continue;
            }
            Err(e) => return Err(CancelError::Store(e)),
        }
    }
    Err(CancelError::Contended)
}

async fn cancel_at_provider(
    providers: &Controls,
    run: &Run,
    job: &JobInfo,
) -> Result<ProviderJob, CancelError> {
    let provider = providers
        .get(run.provider)
        .map_err(CancelError::ProviderUnavailable)?;
    match provider.cancel_job(&job.provider_job_id).await {
        Ok(answer) => Ok(answer),
        // The provider no longer knows the job: nothing left to stop.
        Err(ProviderError::NotFound { .. }) => Ok(ProviderJob {
            id: job.provider_job_id.clone(),
            status: JobStatus::Cancelled,
            provider_status: "not_found".to_owned(),
            base_model: run.config.base_model.clone(),
            fine_tuned_model: job.fine_tuned_model.clone(),
            trained_tokens: job.trained_tokens,
            error: None,
            created_at: None,
            finished_at: None,
            estimated_finish: None,
            tags: None,
            estimated_cost_usd: None,
        }),
        Err(e) if e.is_transient() => {
            tracing::warn!(run_id = %run.id, code = e.code(), "provider cancel failed, transient");
            Err(CancelError::ProviderUnavailable(e))
        }
        Err(e) => {
            tracing::warn!(run_id = %run.id, code = e.code(), "provider refused cancel");
            Err(CancelError::ProviderRefused(e))
        }
    }
}

/// A run cancelled in `deploying`: its model becomes failed and its
/// deployment is deleted. Left as it was on an error (the run is not
/// cancelled); a model given up already is not deployed again, and the
/// monitor fails the run if nobody cancels it again.
async fn release(store: &Store, providers: &Controls, run: &Run) -> Result<(), CancelError> {
    if run.config.serving != ServingChoice::OnDemand {
        return Ok(());
    }
    let provider = providers
        .get(run.provider)
        .map_err(CancelError::ProviderUnavailable)?;
    let Some(serving) = provider.serving() else {
        return Ok(());
    };
    match release_deployment(store, serving, run).await {
        Ok(_) => Ok(()),
        Err(ReleaseError::Store(e)) => Err(CancelError::Store(e)),
        Err(ReleaseError::Provider(e)) if e.is_transient() => {
            tracing::warn!(run_id = %run.id, code = e.code(), "deleting the deployment failed, transient");
            Err(CancelError::ProviderUnavailable(e))
        }
        Err(ReleaseError::Provider(e)) => {
            tracing::warn!(run_id = %run.id, code = e.code(), "provider refused to delete the deployment");
            Err(CancelError::ProviderRefused(e))
        }
    }
}

/// The job as recorded after the provider's answer.
fn merge_job(job: &JobInfo, answer: &ProviderJob, now: DateTime<Utc>) -> JobInfo {
    JobInfo {
        provider_job_id: job.provider_job_id.clone(),
        status: answer.status,
        provider_status: answer.provider_status.clone(),
        fine_tuned_model: answer
            .fine_tuned_model
            .clone()
            .or_else(|| job.fine_tuned_model.clone()),
        trained_tokens: answer.trained_tokens.or(job.trained_tokens),
        error: answer
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .or_else(|| job.error.clone()),
        estimated_finish: answer.estimated_finish.or(job.estimated_finish),
        finished_at: answer.finished_at.or(job.finished_at),
        synced_at: now,
        events_cursor: job.events_cursor.clone(),
        step: job.step,
        total_steps: job.total_steps,
    }
}

/// The timeline entry. The run is already cancelled when this runs: a
/// failure here is logged, not answered as an error the caller would
/// retry for nothing.
async fn record_event(
    store: &Store,
    tenant: &TenantId,
    run: &Run,
    from: RunStatus,
    now: DateTime<Utc>,
) {
    let mut event = RunEvent::pipeline(
        run.id.clone(),
        EventLevel::Info,
        "status_changed",
        format!("run cancelled on request (was {from})"),
        now,
    );
    event.data = Some(json!({"from": from.as_str(), "to": RunStatus::Cancelled.as_str()}));
    if let Err(e) = store.append_event(tenant, &event).await {
        tracing::error!(run_id = %run.id, error = %crate::telemetry::chain(&e), "could not record the cancel event");
    }
}
