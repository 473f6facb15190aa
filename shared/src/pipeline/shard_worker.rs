//! The prepare-shard function's handler: one shard of a fanned-out
//! preparation per SQS message.
//!
//! The prepare function hands a shard out by writing its `task.json`; the
//! bucket notifies the shard queue (an S3 event in the message's body);
//! Lambda polls the queue and calls this. A shard that fails is reported
//! as a batch item failure, so SQS delivers it again after the visibility
//! timeout; on its last attempt its error is also written beside it
//! (`failed.json`), so the run fails with that sentence instead of
//! waiting, and SQS moves the message to the dead-letter queue.

use std::time::{Duration, Instant};

use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};

use crate::blob::keys::{ShardObject, parse_shard_task_key, shard_key};
use crate::blob::{BlobError, Blobs};
use crate::dataset::PrepareError;
use crate::dataset::fanout::{
    ShardFailure, ShardTask, instant_before, record_shard_failure, run_shard,
};
use crate::metrics::Metrics;

/// Deliveries of one shard before it is given up (the queue's
/// `maxReceiveCount` in `template.yaml`).
pub const SHARD_ATTEMPTS: u32 = 3;

/// Kept back from the invocation's deadline to abort the shard's uploads.
const MARGIN: Duration = Duration::from_secs(20);

/// What the worker needs: the bucket and the metrics.
pub struct ShardWorker {
    pub blobs: Blobs,
    pub metrics: Metrics,
}

/// Why one message was not done.
#[derive(Debug, thiserror::Error)]
pub enum ShardMessageError {
    #[error("the message is not a bucket notification: {0}")]
    NotANotification(#[source] serde_json::Error),
    #[error("task {key} could not be read: {source}")]
    Task {
        key: String,
        #[source]
        source: BlobError,
    },
    #[error("task {key} names shard {found} of dataset {dataset}, not the one its key names")]
    Mismatch {
        key: String,
        found: u32,
        dataset: String,
    },
    #[error("shard {shard} of dataset {dataset}: {source}")]
    Shard {
        shard: u32,
        dataset: String,
        #[source]
        source: PrepareError,
    },
}

impl ShardMessageError {
    /// The stable code kept in `failed.json` and the logs.
    pub fn code(&self) -> &'static str {
        match self {
            ShardMessageError::NotANotification(_) => "shard_message_malformed",
            ShardMessageError::Task { .. } => "shard_task_unreadable",
            ShardMessageError::Mismatch { .. } => "shard_task_mismatch",
            ShardMessageError::Shard { source, .. } => match source {
                PrepareError::OutOfTime { .. } => "shard_out_of_time",
                PrepareError::Blob(_) | PrepareError::Io { .. } => "shard_io",
                PrepareError::Dictionary(_) => "tokenizer_unavailable",
                _ => "shard_invalid",
            },
        }
    }
}

impl ShardWorker {
    /// The function's handler: [`Self::on_messages`] until the
    /// invocation's deadline.
    pub async fn on_event(
        &self,
        event: SqsEvent,
        context: &lambda_runtime::Context,
    ) -> SqsBatchResponse {
        let deadline =
            DateTime::<Utc>::from_timestamp_millis(i64::try_from(context.deadline).unwrap_or(0));
        self.on_messages(event, deadline).await
    }

    /// Handles a batch: every message whose shard did not finish is
    /// returned as a failure, so SQS redelivers it alone.
    pub async fn on_messages(
        &self,
        event: SqsEvent,
        deadline: Option<DateTime<Utc>>,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            if let Err(e) = self.on_message(&message, deadline).await {
                tracing::error!(
                    message_id = %id,
                    code = e.code(),
                    error = %crate::telemetry::chain(&e),
                    "shard not done; SQS will deliver it again"
                );
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn on_message(
        &self,
        message: &SqsMessage,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(), ShardMessageError> {
        let body = message.body.as_deref().unwrap_or_default();
        // S3 sends one test message when the notification is configured.
        if let Ok(test) = serde_json::from_str::<serde_json::Value>(body)
            && test.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent")
        {
            return Ok(());
        }
        let notification: S3Event =
            serde_json::from_str(body).map_err(ShardMessageError::NotANotification)?;
        let attempt = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        for record in notification.records {
            let Some(key) = record.s3.object.key.as_deref().map(url_decoded) else {
                continue;
            };
            let Some((tenant, dataset, shard)) = parse_shard_task_key(&key) else {
                // Not a task (the notification's filter should have kept
                // it out): nothing to do, nothing to retry.
                tracing::warn!(key = %key, "notification for an object that is not a shard task");
                continue;
            };
            let task: ShardTask =
                self.blobs
                    .get_json(&key)
                    .await
                    .map_err(|source| ShardMessageError::Task {
                        key: key.clone(),
                        source,
                    })?;
            if task.tenant != tenant || task.dataset != dataset || task.shard != shard {
                return Err(ShardMessageError::Mismatch {
                    key,
                    found: task.shard,
                    dataset: task.dataset.to_string(),
                });
            }
            self.run(&task, attempt, deadline).await?;
        }
        Ok(())
    }

    /// Runs one shard, unless a earlier delivery already did it.
    async fn run(
        &self,
        task: &ShardTask,
        attempt: u32,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(), ShardMessageError> {
        let done_key = shard_key(&task.tenant, &task.dataset, task.shard, ShardObject::Done);
        if self.blobs.size(&done_key).await.is_ok() {
            tracing::info!(
                shard = task.shard,
                "shard already done (a repeated delivery)"
            );
            return Ok(());
        }
        let started = Instant::now();
        let span = tracing::info_span!("shard", tenant = %task.tenant, dataset = %task.dataset, shard = task.shard, attempt);
        let result = tracing::Instrument::instrument(
            run_shard(
                &self.blobs,
                task,
                deadline.map(|d| instant_before(d, MARGIN)),
            ),
            span,
        )
        .await;
        match result {
            Ok(counts) => {
                self.metrics
                    .shard_ended(true, counts.bytes_read, started.elapsed());
                tracing::info!(
                    shard = task.shard,
                    shards = task.shards,
                    conversations = counts.conversations_read,
                    bytes = counts.bytes_read,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "shard done"
                );
                Ok(())
            }
            Err(source) => {
                let bytes = match &source {
                    PrepareError::OutOfTime { bytes_read, .. } => *bytes_read,
                    _ => 0,
                };
                self.metrics.shard_ended(false, bytes, started.elapsed());
                let error = ShardMessageError::Shard {
                    shard: task.shard,
                    dataset: task.dataset.to_string(),
                    source,
                };
                if attempt >= SHARD_ATTEMPTS {
                    let failure = ShardFailure {
                        code: error.code().to_owned(),
                        message: error.to_string(),
                        attempts: attempt,
                        at: Utc::now(),
                    };
                    if let Err(e) = record_shard_failure(&self.blobs, task, &failure).await {
                        tracing::error!(error = %crate::telemetry::chain(&e), "could not record the shard's failure");
                    }
                }
                Err(error)
            }
        }
    }
}

/// An S3 notification's key as stored: notifications URL-encode keys
/// (`+` for a space, `%XX` for other bytes).
fn url_decoded(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker whose bucket is never reached: these cases need no I/O.
    fn offline_worker() -> ShardWorker {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        ShardWorker {
            blobs: Blobs::new(aws_sdk_s3::Client::from_conf(config), "bucket"),
            metrics: Metrics::discard(),
        }
    }

    fn event(bodies: &[&str]) -> SqsEvent {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                serde_json::json!({
                    "messageId": format!("m{i}"), "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[tokio::test]
    async fn s3s_test_message_is_acknowledged_and_a_malformed_one_is_retried_not_a_crash() {
        // GIVEN S3's test message, a body that is not JSON, a notification
        // of an object that is not a shard task
        let worker = offline_worker();
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-30T10:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
        let elsewhere = r#"{"Records":[{"eventTime":"2026-11-30T10:00:00.000Z","userIdentity":{"principalId":"p"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{},"s3":{"bucket":{"name":"b"},"object":{"key":"conversations/acme/2026/10/01/x.jsonl"}}}]}"#;

        // WHEN the worker gets them in one batch
        let response = worker
            .on_messages(event(&[test, "not json {", elsewhere]), None)
            .await;

        // THEN only the malformed one is reported (SQS retries it, then
        // dead-letters it for someone to read); the others are done
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m1"]);
    }

    #[test]
    fn notification_keys_are_url_decoded_as_s3_encodes_them() {
        assert_eq!(
            url_decoded("shards/acme/ds/00001/task.json"),
            "shards/acme/ds/00001/task.json"
        );
        assert_eq!(url_decoded("a+b%2Fc%3D"), "a b/c=");
        // A stray % is kept as it is, never a panic.
        assert_eq!(url_decoded("100%"), "100%");
        assert_eq!(url_decoded("%zz"), "%zz");
        assert_eq!(url_decoded("%é"), "%é");
    }
}
