//! The webhook signing secret: configured at init, read from Secrets
//! Manager by the first delivery (see [`LazySecret`]), then kept.

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use super::signature::{SecretError, WebhookSecret};
use crate::config::{ApiKeySource, Config};
use crate::secret::{self, LazySecret};

#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// Found at init, from the environment alone: the function cannot
    /// verify anything, so it does not start.
    #[error("neither OPENAI_WEBHOOK_SECRET nor OPENAI_WEBHOOK_SECRET_ARN is set")]
    NotConfigured,
    #[error(transparent)]
    Unreadable(#[from] secret::SecretError),
    #[error(transparent)]
    Unusable(#[from] SecretError),
}

/// What a delivery is checked against. Its `Debug` never shows the key.
#[derive(Debug)]
pub struct SigningSecret {
    raw: LazySecret,
    key: OnceCell<WebhookSecret>,
}

impl SigningSecret {
    /// A secret in hand (tests, tools).
    pub fn ready(secret: impl Into<String>) -> Self {
        Self {
            raw: LazySecret::ready(WHAT, secret),
            key: OnceCell::new(),
        }
    }

    /// The key, read and parsed by the first delivery. A failure is not
    /// kept: the delivery gets a 500 (OpenAI retries it) and the next one
    /// reads again.
    pub async fn get(&self) -> Result<&WebhookSecret, WebhookSetupError> {
        self.key
            .get_or_try_init(|| async {
                let raw = self.raw.get().await?;
                Ok(WebhookSecret::parse(raw)?)
            })
            .await
    }
}

const WHAT: &str = "the OpenAI webhook secret";

/// Makes no call: only a missing configuration fails here.
pub fn openai_secret(config: &Config, sdk: &SdkConfig) -> Result<SigningSecret, WebhookSetupError> {
    if config.openai_webhook_secret == ApiKeySource::None {
        return Err(WebhookSetupError::NotConfigured);
    }
    Ok(SigningSecret {
        raw: LazySecret::new(
            WHAT,
            "OPENAI_WEBHOOK_SECRET or OPENAI_WEBHOOK_SECRET_ARN",
            &config.openai_webhook_secret,
            sdk,
        ),
        key: OnceCell::new(),
    })
}
