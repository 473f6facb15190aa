//! The providers a deployment has, built once at init from its config.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::ProviderError;
use super::bedrock::{BedrockJobs, BedrockProvider, BedrockRuntime, BedrockSettings};
use super::openai::{API_KEY, OpenAiControl, OpenAiProvider};
use super::registry::{Answerers, Controls, Providers};
use super::together::{TogetherControl, TogetherProvider};
use crate::blob::Blobs;
use crate::config::{ApiKeySource, Config};
use crate::domain::ProviderKind;
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
    if let Some(key) = openai_key(config, sdk) {
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
    if let Some(key) = together_key(config, sdk) {
        let control = TogetherControl::from_config(&config.together, key)?;
        providers = providers.with(Arc::new(TogetherProvider::new(control, blobs.clone())));
    }
    Ok(providers)
}

/// The inference API of the same providers: what the evaluate function
/// holds (OpenAI's chat completions, Bedrock Runtime's Converse), and
/// nothing else of them. Like the others, no call is made here.
pub fn answerers_from_config(config: &Config, sdk: &SdkConfig) -> Result<Answerers, ProviderError> {
    let mut answerers = Answerers::none();
    if let Some(key) = openai_key(config, sdk) {
        let openai = OpenAiControl::from_config(&config.openai, key)?;
        answerers = answerers.with_kind(ProviderKind::OpenAi, Arc::new(openai));
    }
    if config.bedrock.role_arn.is_some() {
        answerers = answerers.with_kind(ProviderKind::Bedrock, Arc::new(BedrockRuntime::lazy(sdk)));
    }
    if let Some(key) = together_key(config, sdk) {
        let control = TogetherControl::from_config(&config.together, key)?;
        answerers = answerers.with_kind(ProviderKind::Together, Arc::new(control));
    }
    Ok(answerers)
}

/// The same providers as [`providers_from_config`], built to stop jobs and
/// retire models only (the cancel and models functions): no bucket, so
/// those binaries link no S3 client.
pub fn controls_from_config(config: &Config, sdk: &SdkConfig) -> Result<Controls, ProviderError> {
    let mut controls = Controls::new();
    if let Some(key) = openai_key(config, sdk) {
        controls = controls.with(Arc::new(OpenAiControl::from_config(&config.openai, key)?));
    }
    if config.bedrock.role_arn.is_some() {
        controls = controls.with(Arc::new(BedrockJobs::lazy(sdk)));
    }
    if let Some(key) = together_key(config, sdk) {
        controls = controls.with(Arc::new(TogetherControl::from_config(
            &config.together,
            key,
        )?));
    }
    Ok(controls)
}

/// The Together key, when a source is configured; read by the first call.
fn together_key(config: &Config, sdk: &SdkConfig) -> Option<LazySecret> {
    (config.together.api_key != ApiKeySource::None).then(|| {
        LazySecret::new(
            super::together::API_KEY,
            "TOGETHER_API_KEY or TOGETHER_API_KEY_SECRET_ARN",
            &config.together.api_key,
            sdk,
        )
    })
}

/// The OpenAI key, when a source is configured; read by the first call.
fn openai_key(config: &Config, sdk: &SdkConfig) -> Option<LazySecret> {
    (config.openai.api_key != ApiKeySource::None).then(|| {
        LazySecret::new(
            API_KEY,
            "OPENAI_API_KEY or OPENAI_API_KEY_SECRET_ARN",
            &config.openai.api_key,
            sdk,
        )
    })
}
