//! Step sets made of step sets, and the sets the functions run.
//!
//! | set | statuses | run by |
//! |---|---|---|
//! | [`DatasetSteps`](super::DatasetSteps) | queued, preparing | the prepare function |
//! | [`ProviderSteps`] = [`UploadSteps`] + [`JobSteps`] + [`DeploySteps`] | uploading, submitting, training, deploying | the monitor |
//! | [`EvaluateSteps`](super::EvaluateSteps) | evaluating | the evaluate function |
//! | [`PushSteps`] = [`JobSteps`] + [`DeploySteps`] | submitting, training, deploying | pushes (webhook, Bedrock's job events) |

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::Either;

use super::{
    DatasetSteps, DeploySteps, EvaluateSteps, JobSteps, Ledger, PipelineError, Reconciler, Step,
    Steps, UploadSteps,
};
use crate::blob::Blobs;
use crate::dataset::fanout::FanOutLimits;
use crate::domain::{Run, RunStatus};
use crate::provider::registry::{Answerers, Providers};

/// The steps of `A` where it covers the run's status, else those of `B`.
/// Its step future is one of the two (no box): a binary instantiating a
/// `Both` links both sets' steps and nothing else.
pub struct Both<A, B>(pub A, pub B);

impl<A: Steps, B: Steps> Steps for Both<A, B> {
    fn covers(&self, status: RunStatus) -> bool {
        self.0.covers(status) || self.1.covers(status)
    }

    fn step<'a>(
        &'a self,
        ledger: &'a Ledger,
        run: &'a Run,
        deadline: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Step, PipelineError>> + Send + 'a {
        if self.0.covers(run.status) {
            Either::Left(self.0.step(ledger, run, deadline))
        } else {
            Either::Right(self.1.step(ledger, run, deadline))
        }
    }
}

/// Uploading, submitting, training and deploying: the monitor's.
/// Evaluating is a function of its own: the inference clients it needs
/// (Bedrock Runtime's Converse among them) would take the monitor past its
/// 8 MB budget, and its minutes of model calls are a workload of their own.
pub type ProviderSteps = Both<UploadSteps, Both<JobSteps, DeploySteps>>;

/// Submitting, training and deploying: what a push about a job may
/// advance (a push is about a job that exists; a run not there yet is left
/// to the ticks). Deploying follows so that a model callable at once
/// (OpenAI) reaches its evaluation with the push that says the job
/// succeeded; evaluating is left to the evaluate function's ticks
/// (minutes of model calls do not belong in a webhook's HTTP request).
pub type PushSteps = Both<JobSteps, DeploySteps>;

/// The prepare function's reconciler, the one builder of it: the function
/// (from its config) and the tests, demo and tools (from their parts) pass
/// the fan-out thresholds they run with, so none takes other defaults.
pub fn preparing(
    ledger: Ledger,
    lease: Duration,
    blobs: Blobs,
    limits: FanOutLimits,
) -> Reconciler<DatasetSteps> {
    Reconciler::new(ledger, lease, "prepare", DatasetSteps::new(blobs, limits))
}

/// The evaluate function's reconciler: the bucket and the providers'
/// inference, no fine-tuning adapter.
pub fn evaluating(
    ledger: Ledger,
    lease: Duration,
    blobs: Blobs,
    answerers: Answerers,
) -> Reconciler<EvaluateSteps> {
    Reconciler::new(
        ledger,
        lease,
        "evaluate",
        EvaluateSteps { blobs, answerers },
    )
}

/// The reconciler of pushes about a job (the webhook function, and the
/// monitor's Bedrock job events).
pub fn following_jobs(
    ledger: Ledger,
    lease: Duration,
    providers: Providers,
) -> Reconciler<PushSteps> {
    Reconciler::new(
        ledger,
        lease,
        "job",
        Both(
            JobSteps {
                providers: providers.clone(),
            },
            DeploySteps { providers },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses a set's `covers` answers for, without building one:
    /// the same rules as the sets' own, checked against each other.
    fn dataset(status: RunStatus) -> bool {
        super::super::dataset_steps::COVERS.contains(&status)
    }
    fn upload(status: RunStatus) -> bool {
        super::super::upload_steps::COVERS.contains(&status)
    }
    fn job(status: RunStatus) -> bool {
        super::super::job_steps::COVERS.contains(&status)
    }
    fn deploy(status: RunStatus) -> bool {
        super::super::deploy_steps::COVERS.contains(&status)
    }
    fn evaluate(status: RunStatus) -> bool {
        super::super::evaluate_steps::COVERS.contains(&status)
    }

    #[test]
    fn the_prepare_monitor_and_evaluate_functions_split_every_active_status_between_them() {
        for status in RunStatus::ALL {
            let provider = [upload(status), job(status), deploy(status)];
            let takers = usize::from(dataset(status))
                + provider.iter().filter(|t| **t).count()
                + usize::from(evaluate(status))
                // Waiting runs are the monitor's admission pass's, not a
                // step set's (admission is over a pool, not one run).
                + usize::from(status == RunStatus::Waiting);
            assert_eq!(takers, usize::from(!status.is_terminal()), "{status}");
        }
    }
}
