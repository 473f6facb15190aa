//! Making a trained model callable: the capability the deploying phase
//! asks of a provider whose fine-tuned models are not served at once.
//!
//! Amazon Bedrock serves a Nova custom model on demand only through a
//! custom model deployment (its ARN is then the `modelId` of Converse);
//! OpenAI's `ft:` models are callable the moment the job succeeds and need
//! none. Like creating a job, creating a deployment costs money and must
//! happen once per run: [`ModelServing::deploy`] finds the run's deployment
//! again (by its name, derived from the run) before it creates one.

use async_trait::async_trait;

use super::{JobTags, ProviderError};
use crate::domain::RunId;

/// Where a deployment is: the provider's own three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// Being set up; ask again on the next tick.
    Creating,
    /// Serving: its id is what to call.
    Active,
    /// Will never serve; the provider said why.
    Failed,
}

/// A deployment of a trained model, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// What inference calls and what deleting names (Bedrock: the
    /// deployment's ARN).
    pub id: String,
    pub status: DeploymentStatus,
    /// The provider's own status word, for people and debugging.
    pub provider_status: String,
    /// Why it failed, in the provider's words.
    pub failure: Option<String>,
}

/// Deploying, following and removing a trained model's deployment.
#[async_trait]
pub trait ModelServing: Send + Sync {
    /// The run's deployment of `model`: the one made before (a crash, a
    /// retry) when there is one, else a new one, tagged with `tags`.
    async fn deploy(&self, model: &str, tags: &JobTags) -> Result<Deployment, ProviderError>;

    /// The deployment as it is now.
    async fn deployment(&self, id: &str) -> Result<Deployment, ProviderError>;

    /// Removes the deployment; one already gone is not an error.
    async fn delete_deployment(&self, id: &str) -> Result<(), ProviderError>;

    /// Removes the run's deployment, found by what [`ModelServing::deploy`]
    /// named it after: also one whose id was never recorded (a run that
    /// ended while it was being created). None, or one already gone, is
    /// not an error, so a retry or a duplicate is harmless.
    async fn delete_run_deployment(&self, run: &RunId) -> Result<(), ProviderError>;
}
