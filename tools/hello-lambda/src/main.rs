//! The smallest useful Lambda function in Rust: it echoes its event.
//! `make bench` measures our functions' start-up against this one, built
//! with the same profile and the same runtime crate.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
