//! Every minute (EventBridge schedule): advance every active run. All logic
//! is in `finetune::pipeline::monitor`; this file builds the clients and the
//! providers once per cold start.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use finetune::config::Config;
use finetune::pipeline::{Pipeline, monitor};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::load_sdk_config().await;
    let pipeline = Pipeline::from_config(&config, &sdk).await?;
    let (pipeline, config) = (&pipeline, &config);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            monitor::on_schedule(pipeline, config, &event.context)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
