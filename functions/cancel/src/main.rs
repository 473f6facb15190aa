//! `POST /runs/{id}/cancel`: stops the provider's job and marks the run
//! cancelled. All logic is in `finetune::http::cancel_handler`; this file
//! builds the clients and the providers' job controls once per cold start
//! (no bucket: cancelling needs none, so no S3 client is linked).

use finetune::config::Config;
use finetune::provider::setup::controls_from_config;
use finetune::store::Store;
use finetune::telemetry::MainError;

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let store = Store::new(finetune::aws::dynamodb_client(&sdk), &config.table_name);
    let providers = controls_from_config(&config, &sdk)?;
    let metrics = finetune::metrics::Metrics::stdout();
    let (store, providers, config, metrics) = (&store, &providers, &config, &metrics);
    finetune::http::serve(move |req| {
        finetune::http::cancel_handler(store, providers, config, metrics, req)
    })
    .await
    .map_err(MainError::runtime)
}
