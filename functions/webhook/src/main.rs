//! `POST /webhooks/openai`: OpenAI's signed fine-tuning webhooks advance
//! the job's run at once. All logic is in `finetune::http::webhook_handler`;
//! this file builds the pipeline once per cold start; the signing secret
//! is read by the first delivery.

use finetune::config::Config;
use finetune::pipeline::Pipeline;
use finetune::telemetry::MainError;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), MainError> {
    finetune::telemetry::init_lambda();
    let config = Config::from_env()?;
    let sdk = finetune::aws::lambda_sdk_config()?;
    let pipeline = Pipeline::from_config(&config, &sdk).await?;
    let secret = finetune::webhook::setup::openai_secret(&config, &sdk)?;
    let (pipeline, secret) = (&pipeline, &secret);
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(finetune::http::webhook_handler(pipeline, secret, req).await)
    }))
    .await
    .map_err(MainError::runtime)
}
