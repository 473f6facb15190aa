//! `GET /models`, `GET /models/active`, `GET /models/{id}`,
//! `POST /models/{id}/activate`, `GET /models/{id}/download`,
//! `DELETE /models/{id}`: the tenant's fine-tuned models and its active
//! one. All logic is in `finetune::http::models_handler`; this file builds
//! the clients and the providers' job controls (deleting a model deletes it
//! at the provider) once per cold start. The bucket holds the weights the
//! tenant downloads (presigned URLs) and deletes with a model.

use finetune::blob::Blobs;
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
    // The bucket's client is made by the first download or weights delete.
    let blobs = Blobs::lazy(&sdk, &config.bucket_name);
    let (store, blobs, providers, config) = (&store, &blobs, &providers, &config);
    finetune::http::serve(move |req| {
        finetune::http::models_handler(store, blobs, providers, config, req)
    })
    .await
    .map_err(MainError::runtime)
}
