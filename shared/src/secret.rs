//! Secrets a function needs for some calls only (the OpenAI API key, the
//! webhook signing secret), read from Secrets Manager on first use and kept
//! for the container's life.
//!
//! Read at init they cost every cold start a Secrets Manager round trip,
//! including the starts that never call OpenAI (a `GET /models`, a monitor
//! tick with nothing training, a cancel of a queued run). Read here, a
//! missing or unreadable secret fails the call that needs it with the
//! secret's ARN, and the next call tries again (a failure is not kept).

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::config::ApiKeySource;

/// Why a secret is not available. Names the secret, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{what} is not configured: set {vars}")]
    NotConfigured {
        what: &'static str,
        vars: &'static str,
    },
    #[error("could not read {what} from secret {arn}: {message}")]
    Unreadable {
        what: &'static str,
        arn: String,
        message: String,
    },
    #[error("secret {arn} holds an empty {what}")]
    Empty { what: &'static str, arn: String },
}

enum Source {
    Value(String),
    Secret {
        arn: String,
        client: crate::aws::LazyClient<aws_sdk_secretsmanager::Client>,
    },
    Missing {
        vars: &'static str,
    },
}

/// One secret, resolved once. Its `Debug` never shows the value.
pub struct LazySecret {
    what: &'static str,
    source: Source,
    value: OnceCell<String>,
}

impl std::fmt::Debug for LazySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Value(_) => "value(<redacted>)".to_owned(),
            Source::Secret { arn, .. } => format!("secret({arn})"),
            Source::Missing { .. } => "missing".to_owned(),
        };
        f.debug_struct("LazySecret")
            .field("what", &self.what)
            .field("source", &source)
            .field("resolved", &self.value.initialized())
            .finish()
    }
}

impl LazySecret {
    /// `what` names the secret in errors ("the OpenAI API key"); `vars`
    /// says how to configure it when `source` is [`ApiKeySource::None`].
    /// Makes no call, and no client until the first [`Self::get`].
    pub fn new(
        what: &'static str,
        vars: &'static str,
        source: &ApiKeySource,
        sdk: &SdkConfig,
    ) -> Self {
        let source = match source {
            ApiKeySource::Env(value) => Source::Value(value.clone()),
            ApiKeySource::SecretArn(arn) => Source::Secret {
                arn: arn.clone(),
                client: crate::aws::LazyClient::new(sdk, aws_sdk_secretsmanager::Client::new),
            },
            ApiKeySource::None => Source::Missing { vars },
        };
        Self {
            what,
            source,
            value: OnceCell::new(),
        }
    }

    /// A secret already in hand (tests, tools, an env var).
    pub fn ready(what: &'static str, value: impl Into<String>) -> Self {
        Self {
            what,
            source: Source::Value(value.into()),
            value: OnceCell::new(),
        }
    }

    /// The value, trimmed; fetched on the first call only.
    pub async fn get(&self) -> Result<&str, SecretError> {
        let value = self
            .value
            .get_or_try_init(|| async {
                match &self.source {
                    Source::Value(value) => Ok(value.trim().to_owned()),
                    Source::Missing { vars } => Err(SecretError::NotConfigured {
                        what: self.what,
                        vars,
                    }),
                    Source::Secret { arn, client } => {
                        let out = client
                            .get()
                            .get_secret_value()
                            .secret_id(arn)
                            .send()
                            .await
                            .map_err(|e| SecretError::Unreadable {
                                what: self.what,
                                arn: arn.clone(),
                                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                                    .to_string(),
                            })?;
                        let value = out.secret_string.unwrap_or_default().trim().to_owned();
                        if value.is_empty() {
                            return Err(SecretError::Empty {
                                what: self.what,
                                arn: arn.clone(),
                            });
                        }
                        tracing::info!(secret = %arn, "secret read");
                        Ok(value)
                    }
                }
            })
            .await?;
        Ok(value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_value_is_trimmed_and_never_shown() {
        let secret = LazySecret::ready("the test key", " sk-abc \n");
        assert_eq!(secret.get().await.unwrap(), "sk-abc");
        assert!(!format!("{secret:?}").contains("sk-abc"));
    }

    #[tokio::test]
    async fn a_missing_source_names_the_variables() {
        let sdk = SdkConfig::builder().build();
        let secret = LazySecret::new("the key", "KEY or KEY_ARN", &ApiKeySource::None, &sdk);
        let err = secret.get().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the key is not configured: set KEY or KEY_ARN"
        );
    }
}
