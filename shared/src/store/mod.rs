//! Runs, datasets, timelines, training curves, models, idempotency keys
//! and what pushes need (job owners, handled deliveries), in one DynamoDB
//! table (`keys` has the layout).
//!
//! One concrete store, tested against a real DynamoDB API (moto locally):
//! there is no second backend, and a trait here would only invite mocks of
//! our own storage. Every read takes the tenant and builds the partition
//! key from it, so one tenant's call cannot reach another's records.

mod active;
mod batch;
pub mod cursor;
mod curve;
mod datasets;
mod events;
mod fleet;
pub mod idempotency;
pub mod keys;
mod models;
pub mod provision;
mod push;
mod runs;

use std::collections::HashMap;
use std::error::Error as StdError;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::IdError;

pub use active::ActiveRun;
pub use fleet::{AdmissionLimits, PoolState, QueuedRun};
pub use idempotency::{IdempotentRequest, request_hash};
pub use models::Activation;
pub use push::{DELIVERY_TTL, JobOwner};
pub use runs::{CreateOutcome, Page};

/// What a store call can fail with. Conflicts are their own variants so
/// callers decide (retry, 409, skip) instead of parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} was changed by another writer (expected version {expected})")]
    VersionConflict {
        kind: &'static str,
        id: String,
        expected: u64,
    },
    /// A transaction's condition did not hold (e.g. activating a model
    /// that is being deleted, deleting the active one).
    #[error("{kind} {id} is not in a state that allows this")]
    ConditionFailed { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("idempotency key {key} was already used with a different request (run {run_id})")]
    IdempotencyMismatch { key: String, run_id: String },
    #[error("the pagination cursor is not valid here")]
    InvalidCursor,
    #[error("stored {kind} record could not be read: {source}")]
    Corrupt {
        kind: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    /// DynamoDB kept leaving part of a batch unprocessed (throttling).
    #[error("DynamoDB {op} left {left} items unprocessed after retrying")]
    Unprocessed { op: &'static str, left: usize },
    #[error("DynamoDB {op} failed: {source}")]
    Dynamo {
        op: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StoreError {
    fn dynamo(op: &'static str, source: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Dynamo {
            op,
            source: Box::new(source),
        }
    }
}

pub type Item = HashMap<String, AttributeValue>;

/// The records store. Cheap to clone (the SDK client is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn to_item<T: serde::Serialize>(kind: &'static str, value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|source| StoreError::Corrupt { kind, source })
}

fn from_item<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    item: Item,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|source| StoreError::Corrupt { kind, source })
}

/// True when an SDK error is DynamoDB refusing a condition expression.
fn is_condition_failure<E>(err: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// The end of a write whose condition may fail without it being an
/// error (someone else's write stands, or there was nothing to do).
fn unless_condition_failed<O, E>(
    op: &'static str,
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E>>,
) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + StdError + Send + Sync + 'static,
    aws_sdk_dynamodb::error::SdkError<E>: StdError + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failure(&e) => Ok(()),
        Err(e) => Err(StoreError::dynamo(op, e)),
    }
}

fn string_attr(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}
