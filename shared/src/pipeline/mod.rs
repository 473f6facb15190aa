//! The pipeline: a run advanced one recorded step at a time, by whichever
//! function's reconciler covers its status.
//!
//! Every step ends with a version-conditional write of the run before the
//! next begins, so a crash anywhere resumes on the next tick without
//! repeating paid work: the dataset id is fixed before preparation (a
//! retry rewrites the same objects), provider files are recorded against
//! their sha256, and a job is looked up by its tags before one is created.
//!
//! Where to look: [`Reconciler`] (reconciler.rs) owns the lease, retries,
//! failure and the step budget; [`Ledger`] (ledger.rs) what a transition
//! records; each step set is a file holding its steps
//! ([`DatasetSteps`], [`UploadSteps`], [`JobSteps`], [`DeploySteps`],
//! [`EvaluateSteps`]) and compose.rs says
//! which function runs which; monitor.rs is the scheduled ticks.

mod admission;
mod compose;
mod dataset_steps;
mod deploy_steps;
mod error;
mod evaluate_steps;
mod job_steps;
mod ledger;
pub mod monitor;
mod reconciler;
mod release;
pub mod shard_worker;
mod upload_steps;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::blob::Blobs;
use crate::domain::RunStatus;
use crate::metrics::Metrics;
use crate::provider::registry::{Answerers, Providers};
use crate::store::Store;

pub use admission::AdmissionSummary;
pub use compose::{Both, ProviderSteps, PushSteps};
pub use dataset_steps::DatasetSteps;
pub use deploy_steps::DeploySteps;
pub use error::PipelineError;
pub use evaluate_steps::{
    DEADLINE_MARGIN as EVALUATION_DEADLINE_MARGIN, EvaluateSteps, redact_answer,
};
pub use job_steps::JobSteps;
pub use ledger::Ledger;
pub use reconciler::{MAX_RETRIES, Reconciler, Step, Steps};
pub use release::{ReleaseError, release_deployment};
pub use upload_steps::UploadSteps;

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

/// Every part of the pipeline: what the tests, the demo and tools hold to
/// build any function's reconciler. A function builds only its own (see
/// [`Reconciler::for_preparing`] and compose.rs, [`monitor::Monitor::from_config`]), so
/// it holds and links only what its steps use.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Store,
    pub blobs: Blobs,
    pub providers: Providers,
    /// The providers' inference: what the evaluating phase asks.
    pub answerers: Answerers,
    pub lease: Duration,
    /// Where run and monitor metrics go (stdout in Lambda).
    pub metrics: Metrics,
    /// Pools, tenants' default limits, patience with a busy provider.
    pub fleet: crate::domain::fleet::FleetSettings,
}

impl Pipeline {
    /// Every part from a deployment's config: clients, providers and their
    /// inference, built once per cold start (the demo and tools).
    pub async fn from_config(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::provider::ProviderError> {
        let mut pipeline = Self::without_inference(config, sdk).await?;
        pipeline.answerers = crate::provider::setup::answerers_from_config(config, sdk)?;
        Ok(pipeline)
    }

    /// Every part but the providers' inference: the monitor's, which never
    /// evaluates (so its binary links no inference client).
    pub async fn without_inference(
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
            answerers: Answerers::none(),
            lease: config.run_lease,
            metrics: Metrics::stdout(),
            fleet: config.fleet.clone(),
        })
    }

    fn ledger(&self) -> Ledger {
        Ledger::new(self.store.clone(), self.metrics.clone()).with_fleet(self.fleet.clone())
    }

    /// The prepare function's reconciler with the deployment's fan-out
    /// thresholds (`config.fan_out`): the same builder the function uses.
    pub fn preparing(
        &self,
        limits: crate::dataset::fanout::FanOutLimits,
    ) -> Reconciler<DatasetSteps> {
        compose::preparing(self.ledger(), self.lease, self.blobs.clone(), limits)
    }

    /// The monitor function's reconcilers (ticks and Bedrock's pushes).
    pub fn monitor(&self) -> monitor::Monitor {
        monitor::Monitor {
            ticks: Reconciler::new(
                self.ledger(),
                self.lease,
                "monitor",
                Both(
                    UploadSteps {
                        blobs: self.blobs.clone(),
                        providers: self.providers.clone(),
                    },
                    Both(self.job_steps(), self.deploy_steps()),
                ),
            ),
            pushes: self.following_jobs(),
        }
    }

    /// The evaluate function's reconciler.
    pub fn evaluating(&self) -> Reconciler<EvaluateSteps> {
        compose::evaluating(
            self.ledger(),
            self.lease,
            self.blobs.clone(),
            self.answerers.clone(),
        )
    }

    /// The reconciler of pushes about a job (the webhook function).
    pub fn following_jobs(&self) -> Reconciler<PushSteps> {
        compose::following_jobs(self.ledger(), self.lease, self.providers.clone())
    }

    fn deploy_steps(&self) -> DeploySteps {
        DeploySteps {
            providers: self.providers.clone(),
        }
    }

    fn job_steps(&self) -> JobSteps {
        JobSteps {
            providers: self.providers.clone(),
        }
    }
}

impl Reconciler<DatasetSteps> {
    /// The prepare function's reconciler: the table and the bucket, no
    /// provider (its steps call none, so its binary links no adapter).
    pub fn for_preparing(config: &crate::config::Config, sdk: &aws_config::SdkConfig) -> Self {
        compose::preparing(
            ledger_from_config(config, sdk),
            config.run_lease,
            Blobs::lazy(sdk, &config.bucket_name),
            config.fan_out.clone(),
        )
    }
}

impl Reconciler<EvaluateSteps> {
    /// The evaluate function's reconciler: the table, the bucket and the
    /// providers' inference APIs, nothing else of them (no fine-tuning
    /// adapter, no Bedrock control plane: the monitor's).
    pub fn for_evaluating(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::provider::ProviderError> {
        Ok(compose::evaluating(
            ledger_from_config(config, sdk),
            config.run_lease,
            Blobs::lazy(sdk, &config.bucket_name),
            crate::provider::setup::answerers_from_config(config, sdk)?,
        ))
    }
}

impl Reconciler<PushSteps> {
    /// The webhook function's reconciler: the table and the providers.
    pub async fn for_pushes(
        config: &crate::config::Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::provider::ProviderError> {
        let blobs = Blobs::lazy(sdk, &config.bucket_name);
        let providers = crate::provider::setup::providers_from_config(config, sdk, &blobs).await?;
        Ok(compose::following_jobs(
            ledger_from_config(config, sdk),
            config.run_lease,
            providers,
        ))
    }
}

/// A function's ledger: the configured table, metrics on stdout.
fn ledger_from_config(config: &crate::config::Config, sdk: &aws_config::SdkConfig) -> Ledger {
    Ledger::new(
        Store::new(crate::aws::dynamodb_client(sdk), &config.table_name),
        Metrics::stdout(),
    )
    .with_fleet(config.fleet.clone())
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
