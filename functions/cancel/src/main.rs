//! `POST /runs/{id}/cancel`: stops the provider's job and marks the run
//! cancelled. All logic is in `finetune::http::cancel_handler`; this file
//! builds the clients and the provider registry once per cold start.

use finetune::config::Config;
use finetune::provider::Providers;
use finetune::store::Store;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let sdk = finetune::aws::load_sdk_config().await;
    let store = Store::new(finetune::aws::dynamodb_client(&sdk), &config.table_name);
    // TODO(merge): register the OpenAI adapter (built from `config.openai`)
    // with `Providers::new().with(Arc::new(adapter))`. Until then a run with
    // a job answers 503 "provider_not_configured" and stays uncancelled.
    let providers = Providers::new();
    let (store, providers, config) = (&store, &providers, &config);
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(finetune::http::cancel_handler(store, providers, config, req).await)
    }))
    .await
}

/// JSON lines for CloudWatch; level from `RUST_LOG`, default `info`.
fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .init();
}
