//! `GET /models`, `GET /models/active`, `GET /models/{id}`,
//! `POST /models/{id}/activate`, `DELETE /models/{id}`: the tenant's
//! fine-tuned models and its active one. All logic is in
//! `finetune::http::models_handler`; this file builds the clients and the
//! providers' job controls (deleting a model deletes it at the provider)
//! once per cold start: no bucket, so no S3 client is linked.

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
    let (store, providers, config) = (&store, &providers, &config);
    finetune::http::serve(move |req| finetune::http::models_handler(store, providers, config, req))
        .await
        .map_err(MainError::runtime)
}
