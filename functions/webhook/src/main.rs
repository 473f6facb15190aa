//! `POST /webhooks/openai`: OpenAI's signed fine-tuning webhooks advance
//! the job's run at once. All logic is in `finetune::http::webhook_handler`;
//! this file builds the push steps' reconciler (the table and the
//! providers) once per cold start; the signing secret
//! is read by the first delivery.

use finetune::config::Config;
use finetune::pipeline::{PushSteps, Reconciler};
use finetune::telemetry::MainError;

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let reconciler = Reconciler::<PushSteps>::for_pushes(&config, &sdk).await?;
    let secret = finetune::webhook::setup::openai_secret(&config, &sdk)?;
    let (reconciler, secret) = (&reconciler, &secret);
    finetune::http::serve(move |req| finetune::http::webhook_handler(reconciler, secret, req))
        .await
        .map_err(MainError::runtime)
}
