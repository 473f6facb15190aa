//! The reconciler: advances one run as far as it can go right now, one
//! recorded step at a time, with the steps of one [`Steps`] set.
//!
//! It owns what every function does the same way: the run's lease, the
//! tick's step budget, counting a transient failure as a retry, failing
//! the run on a permanent one, and yielding to a concurrent writer
//! (cancel). The steps only say what the run needs next.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Ledger, Outcome, PipelineError, lease_until};
use crate::domain::{Run, RunId, RunStatus, TenantId};
use crate::provider::ProviderError;
use crate::store::StoreError;

/// Consecutive transient failures of one step before the run fails: about
/// this many monitor ticks (minutes) of an unreachable provider or bucket.
pub const MAX_RETRIES: u32 = 10;

/// Steps one reconcile may take before it yields to the next tick; a run
/// reusing a dataset goes queued → uploading → submitting → training.
const MAX_STEPS_PER_TICK: usize = 6;

/// What one step left behind.
pub enum Step {
    /// Recorded; the next step may follow at once.
    Continue(Run),
    /// Recorded or unchanged; wait for the next tick.
    Wait(Run),
}

/// A set of steps: the statuses it takes a run out of, and the step for
/// each. Each set is a struct holding exactly what its steps need, and a
/// function's reconciler is generic over the one set it runs, so its
/// binary links only those steps (the monitor no tokenizer, the prepare
/// function no provider adapter). Sets compose with [`super::Both`].
pub trait Steps: Send + Sync {
    /// Whether this set has a step for a run at `status`; a tick skips
    /// runs no step of its set covers.
    fn covers(&self, status: RunStatus) -> bool;

    /// The step for the run's status. A status the set does not cover
    /// waits (the run is another function's). `deadline` is the end of the
    /// invocation running it, when known: a step whose work spans ticks
    /// (evaluating) stops starting new work in time to record what it did.
    fn step<'a>(
        &'a self,
        ledger: &'a Ledger,
        run: &'a Run,
        deadline: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Step, PipelineError>> + Send + 'a;
}

/// A reconciler of the runs `S` covers.
pub struct Reconciler<S> {
    pub ledger: Ledger,
    /// The lease taken when no invocation deadline is known (tools, tests,
    /// pushes).
    pub lease: Duration,
    /// Names the function reconciling: the leases it takes
    /// (`monitor-<request id>`) and its tick's log span.
    pub name: &'static str,
    pub steps: S,
}

/// Whether the step for `status` must hold the run's lease. Following a
/// job in training only reads at the provider, stores its events under
/// ids derived from the provider's (a second copy overwrites the first),
/// and writes the run only if its version is unchanged: two monitors doing
/// it at once waste a call, never money or data. Every other step creates
/// something (a dataset, a provider file, a job) and must run once.
fn needs_lease(status: RunStatus) -> bool {
    !matches!(status, RunStatus::Training)
}

/// Whether the reconciler fails the run on `error` from its step (rather
/// than count a retry, or yield to a concurrent writer): a step that left
/// something billing behind (a deployment) gives it up first.
///
/// After admission (training, deploying, evaluating) a transient answer
/// never fails the run by count: the job trains on and bills whatever we
/// hear, so the run waits the provider out for `patience` since the
/// phase's last successful call, and records the model when it ends.
pub(super) fn fails_the_run(error: &PipelineError, run: &Run, patience: Duration) -> bool {
    let yields = matches!(
        error,
        PipelineError::Store(StoreError::VersionConflict { .. })
    );
    let retries = if !error.is_transient() {
        false
    } else if after_admission(run.status) {
        let since = run.busy_since.unwrap_or_else(Utc::now);
        let patience = chrono::Duration::from_std(patience).unwrap_or(chrono::Duration::days(1));
        Utc::now() - since < patience
    } else {
        run.retries < MAX_RETRIES
    };
    !yields && !retries
}

/// The phases a provider job (or its model) is already paid for in.
fn after_admission(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Training | RunStatus::Deploying | RunStatus::Evaluating
    )
}

/// A busy answer at upload or job creation: the run goes back to waiting.
fn busy_before_the_job(error: &ProviderError, run: &Run) -> bool {
    matches!(run.status, RunStatus::Uploading | RunStatus::Submitting)
        && run.admission.is_some()
        && matches!(error, ProviderError::RateLimited { .. })
}

fn outcome(from: RunStatus, run: &Run, idle: Duration, retrying: Option<&'static str>) -> Outcome {
    if let Some(code) = retrying {
        Outcome::Retrying {
            from,
            to: run.status,
            idle,
            code,
        }
    } else if run.status == from {
        Outcome::Unchanged { status: from, idle }
    } else {
        Outcome::Advanced {
            from,
            to: run.status,
            idle,
        }
    }
}

impl<S: Steps> Reconciler<S> {
    pub fn new(ledger: Ledger, lease: Duration, name: &'static str, steps: S) -> Self {
        Self {
            ledger,
            lease,
            name,
            steps,
        }
    }

    /// Reads the run and advances it (a push about its job, the demo, a
    /// tool). Its lease, if the step needs one, is the fixed one.
    pub async fn reconcile(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<Outcome, PipelineError> {
        let run = self.ledger.store.get_run(tenant, run_id).await?;
        self.reconcile_run(run, owner, None).await
    }

    /// Advances a run just read (a tick reads its runs in batches). A step
    /// that does paid or one-off work (prepare, upload, create a job) runs
    /// under the run's lease; following a job in training does not need
    /// one (see [`needs_lease`]), which keeps the common tick to one read
    /// per run. `deadline` is the end of the invocation doing it: a lease
    /// it takes ends just after (see [`lease_until`]). Its log lines carry
    /// the tenant, run, provider and status (the span).
    pub async fn reconcile_run(
        &self,
        run: Run,
        owner: &str,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Outcome, PipelineError> {
        let (tenant, run_id) = (run.tenant_id.clone(), run.id.clone());
        let from = run.status;
        let idle = (Utc::now() - run.updated_at).to_std().unwrap_or_default();
        if run.status.is_terminal() {
            return Ok(Outcome::Unchanged { status: from, idle });
        }
        let span = tracing::info_span!(
            "reconcile",
            tenant = %tenant,
            run_id = %run_id,
            provider = run.provider.as_str(),
            phase = %from,
        );
        let started = std::time::Instant::now();
        let leased = needs_lease(run.status);
        let run = if leased {
            let now = Utc::now();
            let until = lease_until(now, deadline, self.lease);
            match self
                .ledger
                .store
                .acquire_lease(&tenant, &run_id, owner, now, until)
                .await?
            {
                Some(run) => run,
                None => return Ok(Outcome::Skipped),
            }
        } else {
            run
        };
        let from = run.status;
        let result =
            tracing::Instrument::instrument(self.advance(run, deadline), span.clone()).await;
        span.in_scope(|| {
            tracing::info!(
                to = result
                    .as_ref()
                    .map(|(r, _)| r.status.as_str())
                    .unwrap_or("error"),
                duration_ms = started.elapsed().as_millis() as u64,
                "reconciled"
            )
        });
        if leased
            && let Err(e) = self
                .ledger
                .store
                .release_lease(&tenant, &run_id, owner)
                .await
        {
            // The lease expires by itself; the next tick waits it out.
            tracing::warn!(run_id = %run_id, error = %crate::telemetry::chain(&e), "could not release a run lease");
        }
        let (run, retrying) = result?;
        if run.status == RunStatus::Training {
            self.defer_next_poll(&run).await;
        }
        Ok(outcome(from, &run, idle, retrying))
    }

    /// A run left in training is due again at its next poll (see
    /// [`crate::domain::fleet::PollPolicy`]); until then the ticks do not
    /// read it. Failing to put it off only costs an early poll.
    async fn defer_next_poll(&self, run: &Run) {
        let now = Utc::now();
        let since = run
            .admission
            .as_ref()
            .map_or(run.created_at, |admission| admission.admitted_at);
        let wait = self
            .ledger
            .fleet
            .polling
            .next_poll(run.provider, since, now, run.id.as_str());
        let Ok(wait) = chrono::Duration::from_std(wait) else {
            return;
        };
        if wait.is_zero() {
            return;
        }
        if let Err(e) = self.ledger.store.defer_run(run, now + wait).await {
            tracing::warn!(run_id = %run.id, error = %crate::telemetry::chain(&e), "could not put off a run's next poll");
        }
    }

    /// Runs steps until one waits, the run ends, or the tick's step budget
    /// is spent. A transient error is counted on the run and retried next
    /// tick (its code is returned beside the run); a permanent one fails
    /// the run with its reason.
    async fn advance(
        &self,
        mut run: Run,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(Run, Option<&'static str>), PipelineError> {
        for _ in 0..MAX_STEPS_PER_TICK {
            if run.status.is_terminal() {
                break;
            }
            let result = self.steps.step(&self.ledger, &run, deadline).await;
            if let Err(PipelineError::Provider(e)) = &result {
                self.ledger.metrics.provider_error(run.provider, e.code());
            }
            match result {
                Ok(Step::Continue(next)) => run = next,
                Ok(Step::Wait(next)) => return Ok((next, None)),
                // Someone else (cancel) wrote the run: their word stands.
                Err(PipelineError::Store(StoreError::VersionConflict { .. })) => {
                    return Ok((
                        self.ledger.store.get_run(&run.tenant_id, &run.id).await?,
                        None,
                    ));
                }
                Err(PipelineError::Provider(e)) if busy_before_the_job(&e, &run) => {
                    return Ok((self.ledger.back_to_waiting(run, &e).await?, None));
                }
                Err(e) if !fails_the_run(&e, &run, self.ledger.fleet.busy_patience) => {
                    let stored = self.ledger.record_retry(run, &e).await?;
                    return Ok((stored, Some(e.code())));
                }
                Err(e) => return Ok((self.ledger.record_failure(run, &e).await?, None)),
            }
        }
        Ok((run, None))
    }
}
