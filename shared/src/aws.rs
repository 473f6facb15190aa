//! The functions' AWS SDK config and clients: the config from the
//! variables Lambda sets, one HTTPS client on ring made by the first call
//! ([`LazyHttpsClient`]), and clients a function only sometimes needs made
//! on first use ([`LazyClient`]). Whatever is built is kept for the
//! container's life and shared by every invocation.

use std::borrow::Cow;
use std::sync::OnceLock;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;

/// A function's SDK config, from the variables Lambda sets: the region,
/// the function role's credentials, and `AWS_ENDPOINT_URL` when one is set
/// (moto locally). Every client made from it shares one [`LazyHttpsClient`].
///
/// Not `aws_config::defaults`: its provider chains (profile files, SSO, web
/// identity through STS, ECS, IMDS) are built and probed at every cold start
/// (0.5–0.7 ms of a function's init, measured) and linked into every binary
/// (~0.3 MB with STS), while in Lambda the answer is always in these
/// variables. Retries, timeouts and stalled-stream protection are the SDK's
/// defaults for this behaviour version, as the loader would set them.
/// Per-service endpoint variables (`AWS_ENDPOINT_URL_S3`, …) and profiles
/// are not read.
pub fn lambda_sdk_config() -> Result<SdkConfig, SdkConfigError> {
    sdk_config_from(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// [`lambda_sdk_config`] with the environment given as a lookup.
pub fn sdk_config_from(var: impl Fn(&str) -> Option<String>) -> Result<SdkConfig, SdkConfigError> {
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .ok_or(SdkConfigError::Missing("AWS_REGION"))?;
    let key = var("AWS_ACCESS_KEY_ID").ok_or(SdkConfigError::Missing("AWS_ACCESS_KEY_ID"))?;
    let secret =
        var("AWS_SECRET_ACCESS_KEY").ok_or(SdkConfigError::Missing("AWS_SECRET_ACCESS_KEY"))?;
    let credentials = Credentials::new(
        key,
        secret,
        var("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}

/// The connect timeout `aws_config` sets by default.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3100);

/// A function started without what Lambda always sets.
#[derive(Debug, thiserror::Error)]
pub enum SdkConfigError {
    #[error(
        "{0} is not set: a function's region and credentials come from the environment Lambda sets"
    )]
    Missing(&'static str),
}

/// The HTTP client every SDK client of ours uses (the tests' too).
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(LazyHttpsClient::default())
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// S3 with path-style addressing when an endpoint override is set: a local
/// server on `127.0.0.1` has no `bucket.host` virtual hosts.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let local =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(local)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The SDK's default HTTPS client (hyper 1, rustls on ring, proxy from
/// the environment), made on the first request instead of when a client is
/// constructed.
///
/// The default client builds its TLS connector while each SDK client is
/// constructed, so that the system's root certificates are read then: on
/// this machine that is ~300 files and most of a function's start-up, paid
/// again for every client a function builds. Built here on first use, it is
/// paid once per container, by the first call, and not at all by a cold
/// start that answers without calling AWS (a 400, a 401).
#[derive(Debug, Default)]
pub struct LazyHttpsClient {
    inner: OnceLock<SharedHttpClient>,
}

impl LazyHttpsClient {
    fn client(&self) -> &SharedHttpClient {
        self.inner.get_or_init(|| {
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut connector =
                    ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            })
        })
    }
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }

    /// Deliberately not forwarded: the inner client's check is what builds
    /// its connector (and reads the certificates) at client construction.
    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

/// An SDK client made on first use. Building one costs ~0.2 ms of a cold
/// start (measured, release build); a function that only sometimes calls a
/// service (cancel calls Bedrock for Bedrock runs only, S3 is needed only to
/// upload or read job output, Secrets Manager once per container) should not
/// pay for it on every cold start. Cheap to clone: clones share the client.
#[derive(Clone)]
pub struct LazyClient<C> {
    cell: std::sync::Arc<OnceLock<C>>,
    make: std::sync::Arc<dyn Fn() -> C + Send + Sync>,
}

impl<C> std::fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("made", &self.cell.get().is_some())
            .finish()
    }
}

impl<C: Clone + Send + Sync + 'static> LazyClient<C> {
    /// Made from `sdk` by `make` on the first [`Self::get`].
    pub fn new(sdk: &SdkConfig, make: fn(&SdkConfig) -> C) -> Self {
        let sdk = sdk.clone();
        Self {
            cell: std::sync::Arc::new(OnceLock::new()),
            make: std::sync::Arc::new(move || make(&sdk)),
        }
    }

    /// A client in hand (tests, tools).
    pub fn ready(client: C) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(client.clone());
        Self {
            cell: std::sync::Arc::new(cell),
            make: std::sync::Arc::new(move || client.clone()),
        }
    }

    pub fn get(&self) -> &C {
        self.cell.get_or_init(|| (self.make)())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::ProvideCredentials;

    fn lambda_env(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut vars: std::collections::HashMap<String, String> = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            if v.is_empty() {
                vars.remove(*k);
            } else {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        move |name| vars.get(name).cloned()
    }

    #[tokio::test]
    async fn lambdas_environment_gives_region_role_credentials_and_sdk_defaults() {
        let config = sdk_config_from(lambda_env(&[])).unwrap();
        assert_eq!(config.region().unwrap().as_ref(), "eu-west-1");
        let credentials = config
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(config.endpoint_url(), None);
        assert_eq!(config.retry_config().unwrap().max_attempts(), 3);
        assert_eq!(
            config.timeout_config().unwrap().connect_timeout(),
            Some(CONNECT_TIMEOUT)
        );
    }

    #[test]
    fn a_local_endpoint_and_the_default_region_variable_are_taken() {
        let config = sdk_config_from(lambda_env(&[
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]))
        .unwrap();
        assert_eq!(config.region().unwrap().as_ref(), "us-east-1");
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = sdk_config_from(lambda_env(&[("AWS_SECRET_ACCESS_KEY", "")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("AWS_SECRET_ACCESS_KEY is not set"),
            "{err}"
        );
        let err = sdk_config_from(lambda_env(&[("AWS_REGION", "")])).unwrap_err();
        assert!(
            err.to_string().starts_with("AWS_REGION is not set"),
            "{err}"
        );
    }
}
