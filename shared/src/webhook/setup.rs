//! The webhook secret, read once per cold start (from Secrets Manager in
//! Lambda), so a missing or unusable secret fails the cold start by name
//! instead of answering every delivery 401.

use aws_config::SdkConfig;

use super::signature::{SecretError, WebhookSecret};
use crate::config::{ApiKeySource, Config};

#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    #[error("neither OPENAI_WEBHOOK_SECRET nor OPENAI_WEBHOOK_SECRET_ARN is set")]
    NotConfigured,
    #[error("could not read the webhook secret {arn}: {message}")]
    Unreadable { arn: String, message: String },
    #[error(transparent)]
    Unusable(#[from] SecretError),
}

pub async fn openai_secret(
    config: &Config,
    sdk: &SdkConfig,
) -> Result<WebhookSecret, WebhookSetupError> {
    let raw = match &config.openai_webhook_secret {
        ApiKeySource::None => return Err(WebhookSetupError::NotConfigured),
        ApiKeySource::Env(value) => value.clone(),
        ApiKeySource::SecretArn(arn) => aws_sdk_secretsmanager::Client::new(sdk)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| WebhookSetupError::Unreadable {
                arn: arn.clone(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?
            .secret_string
            .unwrap_or_default(),
    };
    Ok(WebhookSecret::parse(&raw)?)
}
