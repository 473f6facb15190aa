//! The run's record-keeping every step shares: moving a run from one
//! status to the next, counting a retry, failing it, and its timeline.
//! Written once here so no step set has its own idea of what a transition
//! records.

use chrono::Utc;

use super::{MAX_RETRIES, PipelineError};
use crate::domain::fleet::FleetSettings;
use crate::domain::{EventLevel, Run, RunEvent, RunStatus};
use crate::metrics::Metrics;
use crate::store::Store;

/// The table and the metrics: what every step writes to, whatever else it
/// needs.
#[derive(Clone)]
pub struct Ledger {
    pub store: Store,
    /// Where run metrics go (stdout in Lambda).
    pub metrics: Metrics,
    /// Pools, tenants' default limits, patience with a busy provider.
    pub fleet: FleetSettings,
}

impl Ledger {
    pub fn new(store: Store, metrics: Metrics) -> Self {
        Self {
            store,
            metrics,
            fleet: FleetSettings::default(),
        }
    }

    /// The same ledger with the configured fleet settings.
    pub fn with_fleet(mut self, fleet: FleetSettings) -> Self {
        self.fleet = fleet;
        self
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
        run.busy_since = None;
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

    /// Counts a transient failure on the run: the next tick tries the same
    /// step again, and the run's phase says why it waits (its code; the
    /// timeline has the tenant's sentence, the log the whole error).
    pub async fn record_retry(
        &self,
        mut run: Run,
        error: &PipelineError,
    ) -> Result<Run, PipelineError> {
        run.retries += 1;
        run.busy_since.get_or_insert_with(Utc::now);
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
            format!("{}: {}", error.code(), error.tenant_message()),
        )
        .await;
        Ok(stored)
    }

    /// Fails the run with the error's stable code and its sentence for the
    /// tenant ([`PipelineError::tenant_message`]); the whole error, with
    /// its source chain, goes to the log only.
    pub async fn record_failure(
        &self,
        mut run: Run,
        error: &PipelineError,
    ) -> Result<Run, PipelineError> {
        tracing::error!(run_id = %run.id, status = %run.status, code = error.code(), error = %crate::telemetry::chain(error), "run failed");
        let message = error.tenant_message();
        run.fail(error.code(), message.clone(), Utc::now())?;
        let stored = self.store.update_run(&run).await?;
        self.metrics.run_ended(stored.provider, stored.status);
        self.event(
            &stored,
            EventLevel::Error,
            "status_changed",
            format!("failed: {message}"),
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
