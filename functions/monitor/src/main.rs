//! Every minute (EventBridge schedule): advance every active run. Also
//! Bedrock's `Model Customization Job State Change` events (an EventBridge
//! rule), which advance the one run that owns the job at once, through
//! the same push path as OpenAI's webhooks. All logic is in
//! `finetune::pipeline::monitor` and `finetune::webhook`; this file builds
//! the clients and the providers once per cold start.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use finetune::config::Config;
use finetune::pipeline::Pipeline;
use finetune::pipeline::monitor::{self, Summary};
use finetune::webhook::{self, Handled};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Serialize;

/// What one invocation did: a tick's summary, or what a push did.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Tick(Summary),
    Push(Handled),
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::load_sdk_config().await;
    let pipeline = Pipeline::from_config(&config, &sdk).await?;
    let (pipeline, config) = (&pipeline, &config);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let payload = &event.payload;
            if payload.source == webhook::BEDROCK_SOURCE {
                let owner = format!("eventbridge-{}", event.context.request_id);
                return webhook::receive_bedrock(
                    pipeline,
                    &payload.source,
                    &payload.detail_type,
                    &payload.detail,
                    &owner,
                )
                .await
                .map(Answer::Push)
                .map_err(Error::from);
            }
            monitor::on_schedule(pipeline, config, &event.context)
                .await
                .map(Answer::Tick)
                .map_err(Error::from)
        },
    ))
    .await
}
