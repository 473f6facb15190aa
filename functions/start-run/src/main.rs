//! `POST /runs`: validates the request and stores the run as `queued`.
//! All logic is in `finetune::http::start_run_handler`; this file builds
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
    let metrics = finetune::metrics::Metrics::stdout();
    let (store, config, metrics) = (&store, &config, &metrics);
    finetune::http::serve(move |req| finetune::http::start_run_handler(store, config, metrics, req))
        .await
        .map_err(MainError::runtime)
}
