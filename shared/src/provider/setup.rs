//! The providers a deployment has, built once at init from its config.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::ProviderError;
use super::bedrock::{BedrockProvider, BedrockSettings};
use super::openai::{OpenAiProvider, resolve_api_key};
use super::registry::Providers;
use crate::blob::Blobs;
use crate::config::{ApiKeySource, Config};

/// Bedrock is registered when `BEDROCK_ROLE_ARN` is set (it needs nothing
/// else: the function's role calls it). OpenAI is registered when a key
/// source is configured; its key is read
/// from Secrets Manager here, once per cold start, so no invocation pays
/// for it and a missing secret fails the cold start with its ARN.
pub async fn providers_from_config(
    config: &Config,
    sdk: &SdkConfig,
    blobs: &Blobs,
) -> Result<Providers, ProviderError> {
    let mut providers = Providers::new();
    if config.openai.api_key != ApiKeySource::None {
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let key = resolve_api_key(&config.openai.api_key, |arn| async move {
            secrets
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map(|out| out.secret_string.unwrap_or_default())
        })
        .await?;
        let openai = OpenAiProvider::from_config(&config.openai, key, blobs.clone())?;
        providers = providers.with(Arc::new(openai));
    }
    if let Some(role_arn) = &config.bedrock.role_arn {
        let bedrock = BedrockProvider::new(
            aws_sdk_bedrock::Client::new(sdk),
            BedrockSettings {
                role_arn: role_arn.clone(),
                bucket: config.bucket_name.clone(),
            },
        );
        providers = providers.with(Arc::new(bedrock));
    }
    Ok(providers)
}
