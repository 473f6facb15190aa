//! The deploying step: make the trained model callable. Where the provider
//! serves a trained model at once (OpenAI) there is nothing to wait for;
//! where it serves one only through a deployment (Bedrock's on-demand
//! custom model deployments), the run's deployment is found again or
//! created, and followed across ticks until it serves — its id is then the
//! model's endpoint, what the chat system calls. A failed deployment fails
//! the run with the provider's reason. The evaluating step follows.
//! Where the provider lets the trained weights go (Together), they are
//! copied into the tenant's bucket prefix first. Needs the table and the
//! providers.

use super::{Ledger, PipelineError, Step, Steps};
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
            RunStatus::Deploying => self.deploy(ledger, run).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }
}

impl DeploySteps {
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
        let tags = JobTags {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
        };
        let deployment = serving.deploy(&model.provider_model, &tags).await?;
        match deployment.status {
            DeploymentStatus::Creating => {
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
                ledger
                    .store
                    .finish_deployment(
                        &run.tenant_id,
                        &model.id,
                        ModelStatus::Ready,
                        &deployment.id,
                    )
                    .await?;
                ledger
                    .event(
                        run,
                        EventLevel::Info,
                        "model_deployed",
                        format!("model {} is served at {}", model.id, deployment.id),
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
