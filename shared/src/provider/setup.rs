//! The providers a deployment has, built once at init from its config.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::ProviderError;
use super::bedrock::{BedrockProvider, BedrockSettings};
use super::openai::{API_KEY, OpenAiProvider};
use super::registry::Providers;
use crate::blob::Blobs;
use crate::config::{ApiKeySource, Config};
use crate::secret::LazySecret;

/// Bedrock is registered when `BEDROCK_ROLE_ARN` is set (it needs nothing
/// else: the function's role calls it). OpenAI is registered when a key
/// source is configured; its key is read from Secrets Manager by the first
/// call to OpenAI, not here (see [`LazySecret`]): no call is made at init.
pub async fn providers_from_config(
    config: &Config,
    sdk: &SdkConfig,
    blobs: &Blobs,
) -> Result<Providers, ProviderError> {
    let mut providers = Providers::new();
    if config.openai.api_key != ApiKeySource::None {
        let key = LazySecret::new(
            API_KEY,
            "OPENAI_API_KEY or OPENAI_API_KEY_SECRET_ARN",
            &config.openai.api_key,
            sdk,
        );
        let openai = OpenAiProvider::from_config(&config.openai, key, blobs.clone())?;
        providers = providers.with(Arc::new(openai));
    }
    if let Some(role_arn) = &config.bedrock.role_arn {
        let bedrock = BedrockProvider::lazy(
            sdk,
            blobs.clone(),
            BedrockSettings {
                role_arn: role_arn.clone(),
                bucket: config.bucket_name.clone(),
            },
        );
        providers = providers.with(Arc::new(bedrock));
    }
    Ok(providers)
}
