//! Giving up a run's deployment when the run ends before its model serves
//! (cancelled, failed): a deployment bills for as long as it exists, and
//! nothing else would ever delete one whose run has ended.
//!
//! The order is the protocol. The model is recorded `failed` first (only
//! a model still `deploying` changes), then the run's deployment is
//! deleted by the name it was created under (so also one whose id was
//! never recorded), then the caller ends the run. A deploying step that
//! created the deployment concurrently checks the model after creating
//! it and, finding it given up, deletes it too; a crash before the run is
//! ended leaves the run in `deploying` with its model failed, and the next
//! tick finishes the job ([`PipelineError::DeploymentStopped`]). Every part
//! is idempotent, so retries, crashes and duplicates converge to the
//! deployment deleted once.

use crate::domain::{ModelId, Run};
use crate::provider::ProviderError;
use crate::provider::serving::ModelServing;
use crate::store::{Store, StoreError};

/// Why a deployment could not be given up (yet): the same call again
/// finishes it.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl From<ReleaseError> for super::PipelineError {
    fn from(error: ReleaseError) -> Self {
        match error {
            ReleaseError::Store(e) => e.into(),
            ReleaseError::Provider(e) => e.into(),
        }
    }
}

/// Records the run's model failed (if it was still deploying) and deletes
/// the run's deployment. Returns whether this call gave the model up.
pub async fn release_deployment(
    store: &Store,
    serving: &dyn ModelServing,
    run: &Run,
) -> Result<bool, ReleaseError> {
    let model_id = ModelId::for_run(&run.id);
    // `false` also when no model is recorded: a deployment made under the
    // run's name would still bill, so it is deleted all the same.
    let gave_up = store
        .give_up_deploying_model(&run.tenant_id, &model_id)
        .await?;
    serving.delete_run_deployment(&run.id).await?;
    tracing::info!(
        run_id = %run.id,
        model_id = %model_id,
        gave_up,
        status = %run.status,
        "run's deployment deleted: the run ended before its model served"
    );
    Ok(gave_up)
}
