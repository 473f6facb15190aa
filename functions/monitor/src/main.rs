//! Every minute (EventBridge schedule): advance every run whose dataset is
//! ready (upload it to the provider, create the job, follow it to the end;
//! the prepare function prepares datasets). Also
//! Bedrock's `Model Customization Job State Change` events (an EventBridge
//! rule), which advance the one run that owns the job at once, through
//! the same push path as OpenAI's webhooks. All logic is in
//! `finetune::pipeline::monitor`; this file builds the clients and the
//! providers once per cold start.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use finetune::config::Config;
use finetune::pipeline::monitor::{self, Monitor};
use finetune::telemetry::MainError;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let reconcilers = Monitor::from_config(&config, &sdk).await?;
    let (reconcilers, config) = (&reconcilers, &config);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let payload = &event.payload;
            monitor::on_event(
                reconcilers,
                config,
                &payload.source,
                &payload.detail_type,
                &payload.detail,
                &event.context,
            )
            .await
        },
    ))
    .await
    .map_err(MainError::runtime)
}
