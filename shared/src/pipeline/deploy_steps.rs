//! The deploying step: make the trained model callable. Where the provider
//! serves a trained model at once (OpenAI) there is nothing to wait for;
//! where it serves one only through a deployment (Bedrock's on-demand
//! custom model deployments), the run's deployment is found again or
//! created, and followed across ticks until it serves — its id is then the
//! model's endpoint, what the chat system calls. A failed deployment fails
//! the run with the provider's reason. A run that fails here (a failed
//! deployment, a permanent provider error, retries run out) gives its
//! deployment up first: the model becomes failed and the deployment is
//! deleted (`release.rs`), since it would bill for ever otherwise. The
//! evaluating step follows.
//! Where the provider lets the trained weights go (Together), they are
//! copied into the tenant's bucket prefix first. Needs the table and the
//! providers.

use super::reconciler::fails_the_run;
use super::{Ledger, PipelineError, Step, Steps, release_deployment};
use crate::blob::keys::model_weights_key;
use crate::domain::{EventLevel, ModelId, ModelStatus, Run, RunStatus, ServingChoice, WeightsFile};
use crate::provider::serving::DeploymentStatus;
use crate::provider::weights::checkpoint_name;
use crate::provider::{JobTags, Providers};
use crate::store::StoreError;

/// The statuses these steps take a run out of.
pub(super) const COVERS: [RunStatus; 1] = [RunStatus::Deploying];

/// Deploying.
pub struct DeploySteps {
    pub providers: Providers,
}

impl Steps for DeploySteps {
    fn covers(&self, status: RunStatus) -> bool {
        COVERS.contains(&status)
    }

    async fn step(
        &self,
        ledger: &Ledger,
        run: &Run,
        _deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Deploying => {
                let result = self.deploy(ledger, run).await;
                if let Err(error) = &result
                    && fails_the_run(error, run, ledger.fleet.busy_patience)
                {
                    self.give_up(ledger, run).await;
                }
                result
            }
            _ => Ok(Step::Wait(run.clone())),
        }
    }
}

impl DeploySteps {
    /// The run is about to fail in `deploying`: its model becomes failed
    /// and its deployment is deleted ([`release_deployment`]), before the
    /// reconciler records the failure. A release that cannot finish now is
    /// logged and the run fails all the same (its model's `DELETE` finishes
    /// it: a model whose run has ended can always be deleted).
    async fn give_up(&self, ledger: &Ledger, run: &Run) {
        let Ok(provider) = self.providers.get(run.provider) else {
            return;
        };
        let Some(serving) = provider.serving() else {
            return;
        };
        if run.config.serving != ServingChoice::OnDemand {
            return;
        }
        if let Err(e) = release_deployment(&ledger.store, serving, run).await {
            tracing::error!(
                run_id = %run.id,
                error = %crate::telemetry::chain(&e),
                "could not delete the deployment of a run failing in deploying; DELETE /models/{{id}} deletes it"
            );
        }
    }

    /// deploying: nothing to do, a deployment to create or follow, or one
    /// that ended.
    async fn deploy(&self, ledger: &Ledger, run: &Run) -> Result<Step, PipelineError> {
        let provider = self.providers.get(run.provider)?;
        let model_id = ModelId::for_run(&run.id);
        let model = match ledger.store.get_model(&run.tenant_id, &model_id).await {
            Ok(model) => Some(model),
            // The provider named no model (nothing to serve).
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let (Some(weights), Some(model), Some(job)) = (provider.weights(), &model, &run.job)
            && model.weights.is_none()
        {
            // The tenant's copy of what was trained, before anything else
            // can delete it at the provider.
            let full = run.config.hyperparameters.lora == Some(false);
            let checkpoint = checkpoint_name(full);
            let key = model_weights_key(&run.tenant_id, &model.id, checkpoint);
            let written = weights
                .copy_weights(&job.provider_job_id, full, &key)
                .await?;
            let file = WeightsFile {
                key: written.key,
                bytes: written.bytes,
                sha256: written.sha256,
                checkpoint: checkpoint.to_owned(),
            };
            ledger
                .store
                .record_model_weights(&run.tenant_id, &model.id, &file)
                .await?;
            ledger
                .event(
                    run,
                    EventLevel::Info,
                    "weights_copied",
                    format!(
                        "the model's {} ({} bytes, sha256 {}) is in the tenant's bucket prefix: GET /models/{}/download",
                        file.checkpoint, file.bytes, file.sha256, model.id
                    ),
                )
                .await;
        }
        let serving = provider
            .serving()
            .filter(|_| run.config.serving == ServingChoice::OnDemand);
        let (Some(serving), Some(model)) = (serving, model) else {
            let phase = match &run.job.as_ref().and_then(|j| j.fine_tuned_model.clone()) {
                Some(model) => format!("fine-tuned model ready: {model}"),
                None => "the job ended without a model".to_owned(),
            };
            return Ok(Step::Continue(
                ledger
                    .transition(run.clone(), RunStatus::Evaluating, phase)
                    .await?,
            ));
        };
        if model.status == ModelStatus::Ready
            && let Some(deployment) = &model.deployment
        {
            // Served before a crash kept the run from completing.
            let phase = format!("fine-tuned model served at {deployment}");
            return Ok(Step::Continue(
                ledger
                    .transition(run.clone(), RunStatus::Evaluating, phase)
                    .await?,
            ));
        }
        if matches!(
            model.status,
            ModelStatus::Failed | ModelStatus::Deleting | ModelStatus::Deleted
        ) {
            // Given up while the run was still deploying (a cancel or a
            // failure interrupted before it ended the run): never deploy
            // it again; failing the run deletes what is left.
            return Err(PipelineError::DeploymentStopped {
                model_id: model.id.to_string(),
            });
        }
        let tags = JobTags {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
        };
        let deployment = serving.deploy(&model.provider_model, &tags).await?;
        match deployment.status {
            DeploymentStatus::Creating => {
                // A cancel may have given the model up while the
                // deployment was being created, and deleted it before it
                // existed: the model is read again after creating, so one
                // of the two always deletes it.
                let now = ledger.store.get_model(&run.tenant_id, &model.id).await?;
                if now.status != ModelStatus::Deploying {
                    return Err(PipelineError::DeploymentStopped {
                        model_id: model.id.to_string(),
                    });
                }
                let phase = format!(
                    "deploying the model for on-demand inference: {} {}",
                    deployment.id, deployment.provider_status
                );
                if run.phase == phase {
                    return Ok(Step::Wait(run.clone()));
                }
                let mut next = run.clone();
                next.phase = phase;
                next.updated_at = chrono::Utc::now();
                next.retries = 0;
                Ok(Step::Wait(ledger.store.update_run(&next).await?))
            }
            DeploymentStatus::Active => {
                let served = ledger
                    .store
                    .finish_deployment(
                        &run.tenant_id,
                        &model.id,
                        ModelStatus::Ready,
                        &deployment.id,
                    )
                    .await?;
                if !served
                    && ledger
                        .store
                        .get_model(&run.tenant_id, &model.id)
                        .await?
                        .status
                        != ModelStatus::Ready
                {
                    // Given up meanwhile (see Creating above).
                    return Err(PipelineError::DeploymentStopped {
                        model_id: model.id.to_string(),
                    });
                }
                ledger
                    .event(
                        run,
                        EventLevel::Info,
                        "model_deployed",
                        format!(
                            "model {} is served by its deployment (GET /models/{} names it)",
                            model.id, model.id
                        ),
                    )
                    .await;
                let phase = format!("fine-tuned model served at {}", deployment.id);
                Ok(Step::Continue(
                    ledger
                        .transition(run.clone(), RunStatus::Evaluating, phase)
                        .await?,
                ))
            }
            DeploymentStatus::Failed => {
                ledger
                    .store
                    .finish_deployment(
                        &run.tenant_id,
                        &model.id,
                        ModelStatus::Failed,
                        &deployment.id,
                    )
                    .await?;
                Err(PipelineError::DeploymentFailed {
                    deployment: deployment.id,
                    reason: deployment
                        .failure
                        .unwrap_or_else(|| "the provider gave no reason".to_owned()),
                })
            }
        }
    }
}
