//! One tick: every active run whose status a set of steps covers,
//! reconciled concurrently but bounded, stopping before the function's own
//! deadline. Three functions tick every minute, each with its own steps:
//! the prepare function ([`DatasetSteps`]: queued, preparing), the monitor
//! ([`ProviderSteps`]: uploading, submitting, training, deploying) and the
//! evaluate function ([`EvaluateSteps`]: evaluating). They never take the
//! same run at the same status, so a tick of one never waits on another's
//! lease, and no binary links another's steps.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::{DatasetSteps, EvaluateSteps, Outcome, ProviderSteps, PushSteps, Reconciler, Steps};
use crate::domain::{Run, RunId, TenantId};
use crate::metrics::MonitorTick;
use crate::store::{ActiveRun, StoreError};

/// What a tick did, returned by the monitor function and logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Active runs found in the index at a status this tick's steps cover.
    pub checked: usize,
    /// Runs that changed status.
    pub advanced: usize,
    /// Runs whose reconcile returned an error (they stay active and are
    /// retried next tick; one failing run never stops the others).
    pub failed: usize,
    /// Runs not touched: another monitor held the lease, or the deadline
    /// came first.
    pub skipped: usize,
    /// Runs looked at that had nothing to do yet.
    pub unchanged: usize,
    /// The longest any run taken this tick had gone unwritten, in whole
    /// seconds: it grows when runs stop advancing.
    pub stalest_idle_seconds: u64,
}

/// Reconciles every active run the reconciler's steps cover, with at most `concurrency` at
/// once. No run is started once less than `margin` is left before
/// `deadline`; runs already started are allowed to finish. `lease_ends`
/// is the invocation's deadline on the wall clock, which the leases it
/// takes end with (`None`: the pipeline's fixed lease).
pub async fn run_once<S: Steps>(
    reconciler: &Reconciler<S>,
    owner: &str,
    concurrency: usize,
    deadline: Instant,
    margin: Duration,
    lease_ends: Option<DateTime<Utc>>,
) -> Result<Summary, StoreError> {
    let store = &reconciler.ledger.store;
    // The function that uploads admits: its tick first fills the pools'
    // free slots, and the runs it admits are uploaded in the same tick.
    if reconciler.steps.covers(crate::domain::RunStatus::Uploading) {
        // Boxed: its future would otherwise sit inline in every tick's.
        match Box::pin(reconciler.ledger.admit_waiting(Utc::now())).await {
            Ok(admitted) if admitted != Default::default() => {
                tracing::info!(
                    admitted = admitted.admitted,
                    still_waiting = admitted.still_waiting,
                    refused = admitted.refused,
                    reclaimed = admitted.reclaimed,
                    "admission pass"
                );
            }
            Ok(_) => {}
            // The runs already admitted go on; the queues wait a tick.
            Err(e) => {
                tracing::error!(code = e.code(), error = %crate::telemetry::chain(&e), "admission pass failed")
            }
        }
    }
    // Only the runs due now, most overdue first, one turn per tenant in
    // each round: a tenant with many due runs cannot take the tick.
    let due = store
        .list_due_runs_in(|status| reconciler.steps.covers(status), Utc::now())
        .await?;
    let due = crate::domain::fleet::polling::round_robin(due, |run| run.tenant_id.clone());
    let mut summary = Summary {
        checked: due.len(),
        ..Summary::default()
    };
    // Read a hundred at a time as the reconciles need them, so runs the
    // deadline leaves for the next tick are not read in this one.
    let chunks: Vec<Vec<ActiveRun>> = due.chunks(READ_BATCH).map(<[_]>::to_vec).collect();
    let outcomes: Vec<Option<Result<Outcome, super::PipelineError>>> =
        futures::stream::iter(chunks)
            .then(|chunk| async move {
                if Instant::now() + margin >= deadline {
                    return vec![None; chunk.len()];
                }
                read_in_order(reconciler, &chunk).await
            })
            .flat_map(futures::stream::iter)
            // Erased: the nested stream types would otherwise overflow the
            // compiler's layout depth in every function that ticks.
            .boxed()
            .map(|run| async move {
                let run = run?;
                if Instant::now() + margin >= deadline {
                    return None;
                }
                let (tenant_id, run_id) = (run.tenant_id.clone(), run.id.clone());
                let outcome = reconciler.reconcile_run(run, owner, lease_ends).await;
                if let Err(e) = &outcome {
                    tracing::error!(
                        tenant_id = %tenant_id,
                        run_id = %run_id,
                        code = e.code(),
                        error = %crate::telemetry::chain(e),
                        "reconcile failed"
                    );
                }
                Some(outcome)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    for outcome in outcomes {
        match outcome {
            None | Some(Ok(Outcome::Skipped)) => summary.skipped += 1,
            Some(Ok(Outcome::Advanced { idle, .. })) => {
                summary.advanced += 1;
                summary.stalest_idle_seconds = summary.stalest_idle_seconds.max(idle.as_secs());
            }
            // A retry after the run moved counts as moved, as before
            // retries were told apart.
            Some(Ok(Outcome::Retrying { from, to, idle, .. })) if from != to => {
                summary.advanced += 1;
                summary.stalest_idle_seconds = summary.stalest_idle_seconds.max(idle.as_secs());
            }
            Some(Ok(Outcome::Unchanged { idle, .. } | Outcome::Retrying { idle, .. })) => {
                summary.unchanged += 1;
                summary.stalest_idle_seconds = summary.stalest_idle_seconds.max(idle.as_secs());
            }
            Some(Err(_)) => summary.failed += 1,
        }
    }
    Ok(summary)
}

/// Runs read per BatchGetItem as a tick goes.
const READ_BATCH: usize = 100;

/// The runs of `keys` in their order, `None` for one that cannot be
/// taken: gone since it was listed, moved to another function's status,
/// or unreadable (logged; it stays due and is taken next tick).
async fn read_in_order<S: Steps>(
    reconciler: &Reconciler<S>,
    keys: &[ActiveRun],
) -> Vec<Option<Run>> {
    let runs = match reconciler.ledger.store.get_runs(keys).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::error!(error = %crate::telemetry::chain(&e), runs = keys.len(), "could not read due runs");
            return vec![None; keys.len()];
        }
    };
    let mut by_key: std::collections::HashMap<(TenantId, RunId), Run> = runs
        .into_iter()
        .filter(|run| reconciler.steps.covers(run.status))
        .map(|run| ((run.tenant_id.clone(), run.id.clone()), run))
        .collect();
    keys.iter()
        .map(|key| by_key.remove(&(key.tenant_id.clone(), key.run_id.clone())))
        .collect()
}

/// Stop starting runs this long before the function's deadline: a started
/// run may need a few provider calls to finish its step.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Why a scheduled tick did nothing: it could not list the active runs
/// (each run's own failure is counted in its [`Summary`], never this).
#[derive(Debug, thiserror::Error)]
#[error("the tick could not read the active runs")]
pub struct TickError(#[source] pub StoreError);

impl TickError {
    /// The stable code Lambda reports as the invocation's error type.
    pub fn code(&self) -> &'static str {
        "active_runs_unreadable"
    }
}

/// A scheduled function's handler (prepare, monitor, evaluate): one tick
/// of the reconciler's steps, owned by this invocation (its request id
/// names the leases it takes). Logs and emits the tick's metrics (a tick
/// that cannot list the active runs counts as errored); every scheduled
/// function emits the same metrics, so the alarms on them cover each.
pub async fn on_schedule<S: Steps>(
    reconciler: &Reconciler<S>,
    config: &crate::config::Config,
    context: &lambda_runtime::Context,
) -> Result<Summary, TickError> {
    let span =
        tracing::info_span!("tick", steps = reconciler.name, request_id = %context.request_id);
    tracing::Instrument::instrument(tick(reconciler, config, context), span).await
}

async fn tick<S: Steps>(
    reconciler: &Reconciler<S>,
    config: &crate::config::Config,
    context: &lambda_runtime::Context,
) -> Result<Summary, TickError> {
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let left = Duration::from_millis(context.deadline.saturating_sub(now_ms));
    let owner = format!("{}-{}", reconciler.name, context.request_id);
    let metrics = &reconciler.ledger.metrics;
    let summary = run_once(
        reconciler,
        &owner,
        config.monitor_concurrency,
        started + left,
        DEADLINE_MARGIN.min(left / 4),
        DateTime::<Utc>::from_timestamp_millis(i64::try_from(context.deadline).unwrap_or(0)),
    )
    .await;
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            metrics.monitor_tick(&MonitorTick {
                errored: 1,
                duration: started.elapsed(),
                ..MonitorTick::default()
            });
            return Err(TickError(e));
        }
    };
    metrics.monitor_tick(&MonitorTick {
        checked: summary.checked,
        advanced: summary.advanced,
        errored: summary.failed,
        duration: started.elapsed(),
        stalest_idle: Duration::from_secs(summary.stalest_idle_seconds),
    });
    tracing::info!(
        checked = summary.checked,
        advanced = summary.advanced,
        unchanged = summary.unchanged,
        failed = summary.failed,
        skipped = summary.skipped,
        stalest_idle_seconds = summary.stalest_idle_seconds,
        duration_ms = started.elapsed().as_millis() as u64,
        "tick done"
    );
    Ok(summary)
}

/// What one monitor invocation did: a tick, or a pushed job event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Invocation {
    Tick(Summary),
    Push(crate::webhook::Handled),
}

/// The monitor function's two reconcilers over the same clients: its
/// ticks take uploading, submitting and training; a pushed job event only
/// the job's steps (a push is about a job that exists; a run not there yet
/// is left to the ticks).
pub struct Monitor {
    pub ticks: Reconciler<ProviderSteps>,
    pub pushes: Reconciler<PushSteps>,
}

impl Monitor {
    /// Built once per cold start from the deployment's config.
    pub async fn from_config(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::provider::ProviderError> {
        Ok(super::Pipeline::without_inference(config, sdk)
            .await?
            .monitor())
    }
}

/// Why a monitor invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Tick(#[from] TickError),
    #[error(transparent)]
    Push(#[from] crate::webhook::WebhookError),
}

impl MonitorError {
    /// The stable code Lambda reports as the invocation's error type.
    pub fn code(&self) -> &'static str {
        match self {
            MonitorError::Tick(e) => e.code(),
            MonitorError::Push(e) => e.code(),
        }
    }
}

/// Lambda's report of a failed scheduled invocation: the stable code as
/// its error type, the sentence as its message. The whole source chain is
/// logged here, where the failure leaves the function.
fn diagnostic(
    code: &'static str,
    error: &(dyn std::error::Error + 'static),
) -> lambda_runtime::Diagnostic {
    let chain = crate::telemetry::chain(error);
    tracing::error!(code, error = %chain, "invocation failed");
    lambda_runtime::Diagnostic {
        error_type: code.to_owned(),
        error_message: chain.to_string(),
    }
}

impl From<TickError> for lambda_runtime::Diagnostic {
    fn from(error: TickError) -> Self {
        diagnostic(error.code(), &error)
    }
}

impl From<MonitorError> for lambda_runtime::Diagnostic {
    fn from(error: MonitorError) -> Self {
        diagnostic(error.code(), &error)
    }
}

/// The monitor function's handler for every EventBridge event it gets:
/// Bedrock's job state changes (a rule on `aws.bedrock`) reconcile the
/// job's run at once through the push path; anything else (the schedule)
/// is a tick of [`ProviderSteps`].
pub async fn on_event(
    monitor: &Monitor,
    config: &crate::config::Config,
    source: &str,
    detail_type: &str,
    detail: &serde_json::Value,
    context: &lambda_runtime::Context,
) -> Result<Invocation, MonitorError> {
    if source == crate::webhook::BEDROCK_SOURCE {
        let owner = format!("eventbridge-{}", context.request_id);
        let handled =
            crate::webhook::receive_bedrock(&monitor.pushes, source, detail_type, detail, &owner)
                .await?;
        return Ok(Invocation::Push(handled));
    }
    Ok(Invocation::Tick(
        on_schedule(&monitor.ticks, config, context).await?,
    ))
}

/// The prepare function's handler: a tick of [`DatasetSteps`].
pub async fn on_prepare_schedule(
    reconciler: &Reconciler<DatasetSteps>,
    config: &crate::config::Config,
    context: &lambda_runtime::Context,
) -> Result<Summary, TickError> {
    on_schedule(reconciler, config, context).await
}

/// The evaluate function's handler: a tick of [`EvaluateSteps`].
pub async fn on_evaluate_schedule(
    reconciler: &Reconciler<EvaluateSteps>,
    config: &crate::config::Config,
    context: &lambda_runtime::Context,
) -> Result<Summary, TickError> {
    on_schedule(reconciler, config, context).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_that_cannot_read_the_runs_reports_its_stable_code_as_lambdas_error_type() {
        // GIVEN a tick whose listing of the active runs failed
        let error = TickError(StoreError::Unprocessed {
            op: "BatchGetItem",
            left: 3,
        });
        // WHEN the runtime turns it into its report
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        // THEN the error type is the stable code, and the message names the
        // cause, not just the outer sentence
        assert_eq!(diagnostic.error_type, "active_runs_unreadable");
        assert!(
            diagnostic.error_message.contains("BatchGetItem"),
            "{}",
            diagnostic.error_message
        );
    }

    #[test]
    fn a_push_the_monitor_cannot_read_reports_the_webhooks_code() {
        let error = MonitorError::Push(crate::webhook::WebhookError::MalformedBody(
            "no jobArn".into(),
        ));
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "webhook_body_malformed");
        assert!(diagnostic.error_message.contains("no jobArn"));
    }
}
