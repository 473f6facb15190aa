//! The reconciler: advances one run as far as it can go right now, one
//! recorded step at a time.
//!
//! Every step ends with a version-conditional write of the run before the
//! next begins, so a crash anywhere resumes on the next tick without
//! repeating paid work: the dataset id is fixed before preparation (a
//! retry rewrites the same objects), provider files are recorded against
//! their sha256, and a job is looked up by its tags before one is created.

mod error;
pub mod monitor;
mod steps;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::blob::Blobs;
use crate::domain::{EventLevel, Run, RunEvent, RunId, RunStatus, TenantId};
use crate::metrics::Metrics;
use crate::provider::registry::Providers;
use crate::store::{Store, StoreError};

pub use error::PipelineError;

/// Consecutive transient failures of one step before the run fails: about
/// this many monitor ticks (minutes) of an unreachable provider or bucket.
pub const MAX_RETRIES: u32 = 10;

/// Steps one reconcile may take before it yields to the next tick; a run
/// reusing a dataset goes queued → uploading → submitting → training.
const MAX_STEPS_PER_TICK: usize = 6;

/// How long a lease outlives the invocation that took it: Lambda ends an
/// invocation at its deadline, so past it nobody can still be working on
/// the run; the margin covers clock skew between Lambda and this process.
pub const LEASE_MARGIN: Duration = Duration::from_secs(15);

/// When a lease taken at `now` ends by itself if it is never given back
/// (a crash, a timeout): with the invocation's deadline, just after it, so
/// the first tick after a crashed invocation resumes the run; without one
/// (tools, tests, a deadline already past), after `fallback`.
pub fn lease_until(
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    fallback: Duration,
) -> DateTime<Utc> {
    let after = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(2));
    match deadline {
        Some(deadline) if deadline > now => deadline + after(LEASE_MARGIN),
        _ => now + after(fallback),
    }
}

/// What a reconcile did to one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run moved from one status to another (maybe several steps).
    /// `idle` is how long it had gone unwritten when this tick took it.
    Advanced {
        from: RunStatus,
        to: RunStatus,
        idle: Duration,
    },
    /// Nothing to do yet (training in progress).
    Unchanged { status: RunStatus, idle: Duration },
    /// A step failed with a transient error (`code`): the retry is counted
    /// on the run and the next tick tries again. The run may have moved
    /// before the failing step (`from` → `to`). Told apart from
    /// `Unchanged` so that a push (a webhook delivery) is not acknowledged
    /// as handled when it could not be.
    Retrying {
        from: RunStatus,
        to: RunStatus,
        idle: Duration,
        code: &'static str,
    },
    /// Another monitor holds the run's lease.
    Skipped,
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

/// Everything a step needs: the stores and the providers.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Store,
    pub blobs: Blobs,
    pub providers: Providers,
    pub lease: Duration,
    /// Where run and monitor metrics go (stdout in Lambda).
    pub metrics: Metrics,
}

/// What one step left behind.
pub(crate) enum Step {
    /// Recorded; the next step may follow at once.
    Continue(Run),
    /// Recorded or unchanged; wait for the next tick.
    Wait(Run),
}

type StepFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Step, PipelineError>> + Send + 'a>>;

/// The sets of steps a reconcile may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepSet {
    /// Every step, queued to the end (tests, the demo, tools).
    All,
    /// queued and preparing: the prepare function's.
    Prepare,
    /// uploading, submitting and training: the monitor's.
    Provider,
    /// submitting and training: what a push about a job may advance.
    Job,
}

impl StepSet {
    /// The statuses whose step this set takes; a tick skips other runs.
    pub fn covers(self, status: RunStatus) -> bool {
        use RunStatus::*;
        match self {
            StepSet::All => !status.is_terminal(),
            StepSet::Prepare => matches!(status, Queued | Preparing),
            StepSet::Provider => matches!(status, Uploading | Submitting | Training),
            StepSet::Job => matches!(status, Submitting | Training),
        }
    }
}

/// A [`StepSet`] as a type, so that reconciling is compiled once per set:
/// each function reconciles with its own, and the step futures are boxed
/// per set, so a binary links only the steps it takes. The monitor links
/// no dataset preparation (the tokenizer and its dictionaries), the
/// prepare function no provider adapter.
pub trait Steps: Send + Sync + 'static {
    const SET: StepSet;
    /// Names a tick's leases and log span (`prepare-<request id>`).
    const NAME: &'static str;
}

/// [`StepSet::All`].
pub struct AllSteps;
/// [`StepSet::Prepare`].
pub struct PrepareSteps;
/// [`StepSet::Provider`].
pub struct ProviderSteps;
/// [`StepSet::Job`].
pub struct JobSteps;

impl Steps for AllSteps {
    const SET: StepSet = StepSet::All;
    const NAME: &'static str = "all";
}
impl Steps for PrepareSteps {
    const SET: StepSet = StepSet::Prepare;
    const NAME: &'static str = "prepare";
}
impl Steps for ProviderSteps {
    const SET: StepSet = StepSet::Provider;
    const NAME: &'static str = "monitor";
}
impl Steps for JobSteps {
    const SET: StepSet = StepSet::Job;
    const NAME: &'static str = "job";
}

impl Pipeline {
    /// The pipeline of the prepare function: the table and the bucket, no
    /// provider (its steps call none, so its binary links no adapter).
    pub fn for_preparing(config: &crate::config::Config, sdk: &aws_config::SdkConfig) -> Self {
        Self {
            store: Store::new(crate::aws::dynamodb_client(sdk), &config.table_name),
            blobs: Blobs::lazy(sdk, &config.bucket_name),
            providers: Providers::new(),
            lease: config.run_lease,
            metrics: Metrics::stdout(),
        }
    }

    /// The pipeline of a deployment: clients and providers from its config,
    /// built once per cold start.
    pub async fn from_config(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::provider::ProviderError> {
        let store = Store::new(crate::aws::dynamodb_client(sdk), &config.table_name);
        let blobs = Blobs::lazy(sdk, &config.bucket_name);
        let providers = crate::provider::setup::providers_from_config(config, sdk, &blobs).await?;
        Ok(Self {
            store,
            blobs,
            providers,
            lease: config.run_lease,
            metrics: Metrics::stdout(),
        })
    }

    /// Advances one run. A step that does paid or one-off work at the
    /// provider (prepare, upload, create a job) runs under the run's lease;
    /// following a job in training does not need one (see
    /// [`needs_lease`]), which keeps the common tick to one read per run.
    /// Its log lines carry the tenant, run, provider and status (the span).
    pub async fn reconcile(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<Outcome, PipelineError> {
        self.read_and_reconcile::<AllSteps>(tenant, run_id, owner)
            .await
    }

    /// [`Pipeline::reconcile`] for a push about the run's job (an OpenAI
    /// webhook, Bedrock's job event): only the steps that follow a job
    /// (submitting, training) are taken; a run not there yet is left to
    /// the monitor. A push can only be about a job that exists, and a
    /// binary that reconciles only this way (the webhook function) links
    /// none of the dataset preparation (the tokenizer and its dictionaries).
    pub async fn reconcile_job(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<Outcome, PipelineError> {
        self.read_and_reconcile::<JobSteps>(tenant, run_id, owner)
            .await
    }

    async fn read_and_reconcile<S: Steps>(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<Outcome, PipelineError> {
        let run = self.store.get_run(tenant, run_id).await?;
        self.reconcile_with::<S>(run, owner, None).await
    }

    /// [`Pipeline::reconcile`] for a run just read (a tick reads its runs
    /// in batches), taking only the steps of `S`. `deadline` is the end of
    /// the invocation doing it: a lease it takes ends just after (see
    /// [`lease_until`]).
    pub async fn reconcile_run<S: Steps>(
        &self,
        run: Run,
        owner: &str,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Outcome, PipelineError> {
        self.reconcile_with::<S>(run, owner, deadline).await
    }

    async fn reconcile_with<S: Steps>(
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
        let result = tracing::Instrument::instrument(self.advance::<S>(run), span.clone()).await;
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
        if leased && let Err(e) = self.store.release_lease(&tenant, &run_id, owner).await {
            // The lease expires by itself; the next tick waits it out.
            tracing::warn!(run_id = %run_id, error = %crate::telemetry::chain(&e), "could not release a run lease");
        }
        let (run, retrying) = result?;
        Ok(outcome(from, &run, idle, retrying))
    }

    /// Runs steps until one waits, the run ends, or the tick's step budget
    /// is spent. A transient error is counted on the run and retried next
    /// tick (its code is returned beside the run); a permanent one fails
    /// the run with its reason.
    async fn advance<S: Steps>(
        &self,
        mut run: Run,
    ) -> Result<(Run, Option<&'static str>), PipelineError> {
        for _ in 0..MAX_STEPS_PER_TICK {
            if run.status.is_terminal() {
                break;
            }
            let result = self.step::<S>(&run).await;
            if let Err(PipelineError::Provider(e)) = &result {
                self.metrics.provider_error(run.provider, e.code());
            }
            match result {
                Ok(Step::Continue(next)) => run = next,
                Ok(Step::Wait(next)) => return Ok((next, None)),
                // Someone else (cancel) wrote the run: their word stands.
                Err(PipelineError::Store(StoreError::VersionConflict { .. })) => {
                    return Ok((self.store.get_run(&run.tenant_id, &run.id).await?, None));
                }
                Err(e) if e.is_transient() && run.retries < MAX_RETRIES => {
                    let stored = self.record_retry(run, &e).await?;
                    return Ok((stored, Some(e.code())));
                }
                Err(e) => return Ok((self.record_failure(run, &e).await?, None)),
            }
        }
        Ok((run, None))
    }

    /// The step for the run's status, within `S`. Boxed, and chosen by a
    /// constant, so that each instance holds no future of the steps outside
    /// its set: the code it does not take is not linked in.
    fn step<'a, S: Steps>(&'a self, run: &'a Run) -> StepFuture<'a> {
        match S::SET {
            StepSet::All => Box::pin(self.any_step(run)),
            StepSet::Prepare => Box::pin(self.prepare_step(run)),
            StepSet::Provider => Box::pin(self.provider_step(run)),
            StepSet::Job => Box::pin(self.job_step(run)),
        }
    }

    async fn job_step(&self, run: &Run) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Submitting => self.submit(run).await,
            RunStatus::Training => self.sync_training(run).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }

    async fn prepare_step(&self, run: &Run) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Queued => self.start(run).await,
            RunStatus::Preparing => self.prepare(run).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }

    async fn provider_step(&self, run: &Run) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Uploading => self.upload(run).await,
            _ => self.job_step(run).await,
        }
    }

    async fn any_step(&self, run: &Run) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Queued | RunStatus::Preparing => self.prepare_step(run).await,
            _ => self.provider_step(run).await,
        }
    }

    async fn record_retry(
        &self,
        mut run: Run,
        error: &PipelineError,
    ) -> Result<Run, PipelineError> {
        run.retries += 1;
        tracing::warn!(
            run_id = %run.id,
            status = %run.status,
            retries = run.retries,
            code = error.code(),
            error = %crate::telemetry::chain(error),
            "step failed; retrying on the next tick"
        );
        run.phase = format!(
            "retrying {} after a temporary error ({}/{MAX_RETRIES}): {}",
            run.status,
            run.retries,
            error.code()
        );
        run.updated_at = Utc::now();
        let stored = self.store.update_run(&run).await?;
        self.event(
            &stored,
            EventLevel::Warn,
            "retrying",
            format!("{}: {error}", error.code()),
        )
        .await;
        Ok(stored)
    }

    async fn record_failure(
        &self,
        mut run: Run,
        error: &PipelineError,
    ) -> Result<Run, PipelineError> {
        tracing::error!(run_id = %run.id, status = %run.status, code = error.code(), error = %crate::telemetry::chain(error), "run failed");
        run.fail(error.code(), error.to_string(), Utc::now())?;
        let stored = self.store.update_run(&run).await?;
        self.metrics.run_ended(stored.provider, stored.status);
        self.event(
            &stored,
            EventLevel::Error,
            "status_changed",
            format!("failed: {error}"),
        )
        .await;
        Ok(stored)
    }

    /// Moves the run, records it, and notes it on the timeline.
    pub(crate) async fn transition(
        &self,
        mut run: Run,
        next: RunStatus,
        phase: impl Into<String>,
    ) -> Result<Run, PipelineError> {
        let from = run.status;
        run.move_to(next, phase, Utc::now())?;
        run.retries = 0;
        let stored = self.store.update_run(&run).await?;
        tracing::info!(run_id = %stored.id, from = %from, to = %next, "run advanced");
        self.metrics.run_ended(stored.provider, stored.status);
        self.event(
            &stored,
            EventLevel::Info,
            "status_changed",
            format!("{from} -> {next}: {}", stored.phase),
        )
        .await;
        Ok(stored)
    }

    /// Appends a pipeline event. The run's record is the truth; an event
    /// that cannot be written is logged, not allowed to undo a step.
    pub(crate) async fn event(&self, run: &Run, level: EventLevel, kind: &str, message: String) {
        let event = RunEvent::pipeline(run.id.clone(), level, kind, message, Utc::now());
        if let Err(e) = self.store.append_event(&run.tenant_id, &event).await {
            tracing::warn!(run_id = %run.id, error = %crate::telemetry::chain(&e), "could not append a run event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prepare_function_and_the_monitor_split_every_active_status_between_them() {
        for status in RunStatus::ALL {
            let takers = [StepSet::Prepare, StepSet::Provider]
                .into_iter()
                .filter(|set| set.covers(status))
                .count();
            let expected = usize::from(!status.is_terminal());
            assert_eq!(takers, expected, "{status}");
            assert_eq!(StepSet::All.covers(status), !status.is_terminal());
            if StepSet::Job.covers(status) {
                assert!(StepSet::Provider.covers(status), "{status}");
            }
        }
    }
}

#[cfg(test)]
mod lease_tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_lease_ends_just_after_the_invocation_that_took_it() {
        // GIVEN an invocation with 280 s left and a fixed lease of 360 s
        let until = lease_until(at(0), Some(at(280)), Duration::from_secs(360));
        // THEN its lease ends 15 s after its deadline, not 360 s from now:
        // a crash is resumed by the first tick after the deadline
        assert_eq!(until, at(295));
        // AND a run taken late in the invocation is not held past it
        let late = lease_until(at(270), Some(at(280)), Duration::from_secs(360));
        assert_eq!(late, at(295));
    }

    #[test]
    fn without_a_deadline_or_with_one_past_the_lease_is_the_fixed_one() {
        let fixed = Duration::from_secs(120);
        assert_eq!(lease_until(at(0), None, fixed), at(120));
        assert_eq!(lease_until(at(10), Some(at(5)), fixed), at(130));
    }
}
