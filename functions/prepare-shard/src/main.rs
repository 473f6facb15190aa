//! The shard queue's consumer: one shard of a large run's preparation per
//! message (read its export files through every rule, write its examples,
//! index and counts to S3). All logic is in
//! `finetune::pipeline::shard_worker`; this file builds the bucket client
//! once per cold start. Like the prepare function it links the tokenizer
//! and reads its vocabularies from the dictionaries layer.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use finetune::blob::Blobs;
use finetune::config::Config;
use finetune::metrics::Metrics;
use finetune::pipeline::shard_worker::ShardWorker;
use finetune::telemetry::MainError;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    finetune::dataset::dictionaries::use_directory(&config.dictionary_dir);
    let worker = ShardWorker {
        blobs: Blobs::lazy(&sdk, &config.bucket_name),
        metrics: Metrics::stdout(),
    };
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, std::convert::Infallible>(
            worker.on_event(event.payload, &event.context).await,
        )
    }))
    .await
    .map_err(MainError::runtime)
}
