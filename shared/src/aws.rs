//! AWS SDK clients, built once at init and shared by every invocation.

use std::borrow::Cow;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, SdkConfig};
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

/// Loads region, credentials and endpoint from the environment (in Lambda:
/// the function's role; locally: `AWS_ENDPOINT_URL` pointing at moto).
/// Every client made from it shares one [`LazyHttpsClient`].
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
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
