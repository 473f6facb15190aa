//! `GET /runs`, `/runs/{id}`, `/runs/{id}/events`, `/runs/{id}/metrics`,
//! `/runs/{id}/evaluation`, `/datasets/{id}`: reads runs, events and
//! datasets from DynamoDB, and evaluation rows from S3.
//! All logic is in `finetune::http::job_status_handler`; this file builds
//! the clients once per cold start.

use finetune::blob::Blobs;
use finetune::config::Config;
use finetune::store::Store;
use finetune::telemetry::MainError;

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let store = Store::new(finetune::aws::dynamodb_client(&sdk), &config.table_name);
    // The bucket's client is made by the first evaluation listing.
    let blobs = Blobs::lazy(&sdk, &config.bucket_name);
    let (store, blobs, config) = (&store, &blobs, &config);
    finetune::http::serve(move |req| finetune::http::job_status_handler(store, blobs, config, req))
        .await
        .map_err(MainError::runtime)
}
