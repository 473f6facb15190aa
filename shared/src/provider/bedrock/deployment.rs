//! [`ModelServing`] on Bedrock: on-demand custom model deployments
//! (`CreateCustomModelDeployment`, `GetCustomModelDeployment`,
//! `DeleteCustomModelDeployment`).
//!
//! One deployment per run: its name and `clientRequestToken` come from the
//! run id ([`super::names`]). `deploy` reads the deployment by name first
//! and creates it only when there is none; a create that loses a race with
//! an earlier one (same name: a validation or conflict error) reads it again
//! rather than fail, and the same token makes a retried create answer the
//! same ARN.

use async_trait::async_trait;
use aws_sdk_bedrock::types::{CustomModelDeploymentStatus, Tag};

use super::error::map_sdk_error;
use super::names::{deployment_name, deployment_token};
use super::{BedrockJobs, TAG_RUN, TAG_TENANT};
use crate::domain::RunId;
use crate::provider::serving::{Deployment, DeploymentStatus, ModelServing};
use crate::provider::{JobTags, ProviderError};

fn status_of(status: &CustomModelDeploymentStatus) -> DeploymentStatus {
    match status {
        CustomModelDeploymentStatus::Active => DeploymentStatus::Active,
        CustomModelDeploymentStatus::Failed => DeploymentStatus::Failed,
        // Creating, and any state a newer Bedrock adds: not serving yet.
        _ => DeploymentStatus::Creating,
    }
}

impl BedrockJobs {
    /// The deployment named or with ARN `id`, `None` when Bedrock knows none.
    async fn find_deployment(&self, id: &str) -> Result<Option<Deployment>, ProviderError> {
        match self.deployment(id).await {
            Ok(found) => Ok(Some(found)),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ModelServing for BedrockJobs {
    async fn deploy(&self, model: &str, tags: &JobTags) -> Result<Deployment, ProviderError> {
        let name = deployment_name(&tags.run_id);
        if let Some(found) = self.find_deployment(&name).await? {
            return Ok(found);
        }
        let tag = |key: &str, value: &str| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| ProviderError::Decode(format!("a deployment tag: {e}")))
        };
        let created = self
            .client()
            .create_custom_model_deployment()
            .model_deployment_name(&name)
            .model_arn(model)
            .description(format!("fine-tuning run {}", tags.run_id))
            .tags(tag(TAG_TENANT, tags.tenant_id.as_str())?)
            .tags(tag(TAG_RUN, tags.run_id.as_str())?)
            .client_request_token(deployment_token(&tags.run_id))
            .send()
            .await;
        match created {
            Ok(out) => self.deployment(out.custom_model_deployment_arn()).await,
            Err(e) => {
                let error = map_sdk_error(e, &format!("custom model {model}"));
                // Created meanwhile under our name (another worker, a
                // create whose answer was lost): that one is ours.
                if matches!(error, ProviderError::InvalidRequest { .. })
                    && let Some(found) = self.find_deployment(&name).await?
                {
                    return Ok(found);
                }
                Err(error)
            }
        }
    }

    async fn deployment(&self, id: &str) -> Result<Deployment, ProviderError> {
        let out = self
            .client()
            .get_custom_model_deployment()
            .custom_model_deployment_identifier(id)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("custom model deployment {id}")))?;
        Ok(Deployment {
            id: out.custom_model_deployment_arn().to_owned(),
            status: status_of(out.status()),
            provider_status: out.status().as_str().to_owned(),
            failure: out.failure_message().map(str::to_owned),
        })
    }

    async fn delete_deployment(&self, id: &str) -> Result<(), ProviderError> {
        match self
            .client()
            .delete_custom_model_deployment()
            .custom_model_deployment_identifier(id)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &format!("custom model deployment {id}")))
        {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Bedrock names a deployment by its ARN or its name: the name is the
    /// run's.
    async fn delete_run_deployment(&self, run: &RunId) -> Result<(), ProviderError> {
        self.delete_deployment(&deployment_name(run)).await
    }
}
