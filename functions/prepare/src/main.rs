//! Every minute (EventBridge schedule): prepare the dataset of every queued
//! run (read the exports, validate, filter, redact, split, count tokens,
//! estimate cost), leaving it for the monitor to hand to the provider. All
//! logic is in `finetune::pipeline::monitor`; this file builds the table
//! and bucket clients once per cold start. No provider is built: this is
//! the one binary that links the tokenizer, and none of the adapters. The
//! tokenizer's vocabularies are read, on first use, from the dictionaries
//! layer (`FINETUNE_DICTIONARY_DIR`, default `/opt`).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use finetune::config::Config;
use finetune::pipeline::{DatasetSteps, Reconciler, monitor};
use finetune::telemetry::MainError;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    // The vocabularies come from the dictionaries layer, not the binary.
    finetune::dataset::dictionaries::use_directory(&config.dictionary_dir);
    let reconciler = Reconciler::<DatasetSteps>::for_preparing(&config, &sdk);
    let (reconciler, config) = (&reconciler, &config);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            monitor::on_prepare_schedule(reconciler, config, &event.context).await
        },
    ))
    .await
    .map_err(MainError::runtime)
}
