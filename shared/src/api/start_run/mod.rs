//! `POST /runs`: validate the request, honour `Idempotency-Key`, store the
//! run as `queued`. No slow work here (API Gateway cuts requests at 30 s);
//! the monitor does the rest.
//!
//! - [`body`]: every rule of the request body, and its defaults;
//! - [`checker`]: the field-error collector those rules are read with.
//!
//! Validation reads a `serde_json::Value` by hand instead of deserialising
//! into a struct: serde stops at the first error, and callers deserve every
//! violated rule in one answer.

mod body;
mod checker;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use body::{
    DEFAULT_MAX_EXAMPLES, DEFAULT_MIN_EXAMPLES, DEFAULT_SEED, DEFAULT_TRAIN_SPLIT, EARLIEST_DATE,
    MAX_DESCRIPTION_CHARS, MAX_EXAMPLES_CEILING, MAX_NAME_CHARS, MAX_SEED, MAX_SYSTEM_PROMPT_CHARS,
    MIN_EXAMPLES_FLOOR, StartRunRequest, validate,
};

use crate::api::input::{FieldError, IDEMPOTENCY_KEY_HEADER};
use crate::config::Config;
use crate::domain::{DatasetId, IdempotencyKey, NewRun, Run, TenantId};
use crate::store::{CreateOutcome, IdempotentRequest, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    /// The body is not a JSON document.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// Every rule the request breaks.
    #[error("the request is invalid ({} problems)", .0.len())]
    Invalid(Vec<FieldError>),
    /// The key was used before with another body.
    #[error("Idempotency-Key {key} was already used with a different request")]
    IdempotencyKeyReused { key: String },
    #[error(transparent)]
    Store(StoreError),
}

/// Validates, then stores the run (or finds the one this idempotency key
/// created). `idempotency_key` is the raw header value.
pub async fn start_run(
    store: &Store,
    config: &Config,
    tenant: &TenantId,
    body: &[u8],
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CreateOutcome, StartRunError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        return Err(StartRunError::MalformedJson(
            "the body is empty; send a JSON object".to_owned(),
        ));
    } else {
        serde_json::from_slice(body).map_err(|e| StartRunError::MalformedJson(e.to_string()))?
    };
    let validated = validate(&value, config, now.date_naive());
    let mut errors = validated.as_ref().err().cloned().unwrap_or_default();
    if let Some(dataset_id) = value.get("dataset_id").and_then(Value::as_str)
        && let Ok(dataset_id) = DatasetId::parse(dataset_id)
    {
        match store.get_dataset(tenant, &dataset_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                errors.push(FieldError::new("dataset_id", "no dataset with this id"));
            }
            Err(e) => return Err(StartRunError::Store(e)),
        }
    }
    let key = match idempotency_key.map(|k| IdempotencyKey::parse(k.trim())) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                IDEMPOTENCY_KEY_HEADER,
                "must be 1 to 128 ASCII letters, digits, '-' or '_'",
            ));
            None
        }
    };
    let request = match validated {
        Ok(request) if errors.is_empty() => request,
        _ => return Err(StartRunError::Invalid(errors)),
    };
    let idempotency = key.map(|key| IdempotentRequest::for_body(key, &value));
    let run = Run::new_queued(
        NewRun {
            tenant_id: tenant.clone(),
            name: request.name,
            description: request.description,
            provider: request.provider,
            config: request.config,
            dataset_id: request.dataset_id,
            prepare_only: request.prepare_only,
        },
        now,
    );
    match store.create_run(&run, idempotency.as_ref()).await {
        Ok(outcome) => Ok(outcome),
        Err(StoreError::IdempotencyMismatch { key, .. }) => {
            Err(StartRunError::IdempotencyKeyReused { key })
        }
        Err(e) => Err(StartRunError::Store(e)),
    }
}
