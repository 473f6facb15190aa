//! AWS SDK clients, built once at init and shared by every invocation.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region, credentials and endpoint from the environment (in Lambda:
/// the function's role; locally: `AWS_ENDPOINT_URL` pointing at moto).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
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
