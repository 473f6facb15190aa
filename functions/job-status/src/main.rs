//! `GET /runs`, `/runs/{id}`, `/runs/{id}/events`, `/datasets/{id}`: reads
//! runs, events and datasets from DynamoDB.
//! All logic is in `finetune::http::job_status_handler`; this file builds
//! the clients once per cold start.

use finetune::config::Config;
use finetune::store::Store;
use finetune::telemetry::MainError;

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let store = Store::new(finetune::aws::dynamodb_client(&sdk), &config.table_name);
    let (store, config) = (&store, &config);
    finetune::http::serve(move |req| finetune::http::job_status_handler(store, config, req))
        .await
        .map_err(MainError::runtime)
}
