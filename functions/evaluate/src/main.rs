//! Every minute (EventBridge schedule): evaluate every run whose model is
//! trained and callable — the candidate and the baseline answer a sample
//! of the run's held-out examples, the answers are scored (and judged),
//! the decision is recorded, the model activated by the run's policy. An
//! evaluation longer than one invocation goes on at the next tick, without
//! asking any answer twice. All logic is in `finetune::pipeline` (the
//! evaluating step); this file builds the table, bucket and inference
//! clients once per cold start: no fine-tuning adapter, no tokenizer.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use finetune::config::Config;
use finetune::pipeline::{EvaluateSteps, Reconciler, monitor};
use finetune::telemetry::MainError;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let reconciler = Reconciler::<EvaluateSteps>::for_evaluating(&config, &sdk)?;
    let (reconciler, config) = (&reconciler, &config);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            monitor::on_evaluate_schedule(reconciler, config, &event.context).await
        },
    ))
    .await
    .map_err(MainError::runtime)
}
