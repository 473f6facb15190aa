//! The shard queue on the local stack, made as `template.yaml` makes it:
//! the bucket notifies a queue of every shard task (S3 → SQS, both at
//! moto), and the queue moves a message to its dead-letter queue after
//! [`SHARD_ATTEMPTS`] receives. [`ShardQueue::drive`] plays Lambda's SQS
//! event source: it receives messages, hands each to the real handler as
//! the `SqsEvent` Lambda would deliver, deletes the ones the handler did,
//! and makes the others visible again (the visibility timeout, shortened).

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use finetune::blob::keys::SHARD_TASK_FILE;
use finetune::pipeline::shard_worker::{SHARD_ATTEMPTS, ShardWorker};
use futures::StreamExt;

use crate::TestEnv;

/// The queue and its dead-letter queue.
pub struct ShardQueue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
    pub dead_letters_url: String,
}

/// How one delivery's invocation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// The handler runs to its end.
    Normal,
    /// The invocation has only this long before its deadline.
    Deadline(Duration),
    /// The process is killed this long after it starts (its timeout, an
    /// out-of-memory): the handler never returns.
    KilledAfter(Duration),
}

/// What one [`ShardQueue::drive`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Driven {
    /// Invocations of the handler (one message each).
    pub invocations: usize,
    /// Messages the handler reported as failed.
    pub failures: usize,
}

impl ShardQueue {
    /// Makes the queues on `env`'s local stack and points `env`'s bucket's
    /// notifications of shard tasks at the queue.
    pub async fn create(env: &TestEnv) -> Self {
        let sqs = aws_sdk_sqs::Client::new(&env.sdk);
        let name = crate::unique_name("shards");
        let dead_letters_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create the dead-letter queue")
            .queue_url
            .unwrap_or_default();
        let dead_letters_arn = queue_arn(&sqs, &dead_letters_url).await;
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({
                    "deadLetterTargetArn": dead_letters_arn,
                    "maxReceiveCount": SHARD_ATTEMPTS,
                })
                .to_string(),
            )
            .attributes(QueueAttributeName::VisibilityTimeout, "900")
            .send()
            .await
            .expect("create the shard queue")
            .queue_url
            .unwrap_or_default();
        let arn = queue_arn(&sqs, &url).await;
        let filter = NotificationConfigurationFilter::builder()
            .key(
                S3KeyFilter::builder()
                    .filter_rules(
                        FilterRule::builder()
                            .name(FilterRuleName::Prefix)
                            .value(finetune::blob::keys::SHARDS_ROOT)
                            .build(),
                    )
                    .filter_rules(
                        FilterRule::builder()
                            .name(FilterRuleName::Suffix)
                            .value(format!("/{SHARD_TASK_FILE}"))
                            .build(),
                    )
                    .build(),
            )
            .build();
        env.s3
            .put_bucket_notification_configuration()
            .bucket(&env.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .queue_arn(&arn)
                            .events(Event::from("s3:ObjectCreated:*"))
                            .filter(filter)
                            .build()
                            .expect("a queue configuration"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("notify the shard queue of shard tasks");
        Self {
            sqs,
            url,
            arn,
            dead_letters_url,
        }
    }

    /// Up to `max` messages as Lambda's event source would hand them over.
    pub async fn receive(&self, max: i32) -> Vec<SqsMessage> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive from the shard queue");
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attributes: serde_json::Map<String, serde_json::Value> = m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v)))
                    .collect();
                // The record as Lambda's SQS event carries it.
                serde_json::from_value(serde_json::json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1",
                }))
                .expect("an SQS record")
            })
            .collect()
    }

    /// Deletes what the handler did; makes what it failed visible again.
    pub async fn settle(&self, delivered: &SqsMessage, response: &SqsBatchResponse) {
        let id = delivered.message_id.clone().unwrap_or_default();
        let handle = delivered.receipt_handle.clone().unwrap_or_default();
        if response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == id)
        {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .expect("make a failed message visible again");
        } else {
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete a handled message");
        }
    }

    /// Delivers every message until the queue stays empty, `concurrency`
    /// invocations at a time (one message each: the template's batch size
    /// is 1), each with a deadline `timeout` away. `choose` decides how
    /// each delivery's invocation goes (a test's crash or short deadline).
    pub async fn drive<F>(
        &self,
        worker: &ShardWorker,
        concurrency: usize,
        timeout: Duration,
        mut choose: F,
    ) -> Driven
    where
        F: FnMut(&SqsMessage) -> Invocation,
    {
        let mut driven = Driven::default();
        let mut idle_since: Option<Instant> = None;
        loop {
            let mut batch = Vec::new();
            while batch.len() < concurrency {
                let got = self.receive((concurrency - batch.len()) as i32).await;
                if got.is_empty() {
                    break;
                }
                batch.extend(got);
            }
            if batch.is_empty() {
                // A grace period covers a message made visible a moment ago.
                match idle_since {
                    Some(t) if t.elapsed() > Duration::from_millis(500) => return driven,
                    Some(_) => {}
                    None => idle_since = Some(Instant::now()),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            idle_since = None;
            let planned: Vec<(SqsMessage, Invocation)> = batch
                .into_iter()
                .map(|m| {
                    let how = choose(&m);
                    (m, how)
                })
                .collect();
            let results: Vec<(SqsMessage, SqsBatchResponse)> =
                futures::stream::iter(planned.into_iter().map(|(message, how)| async move {
                    let mut event = SqsEvent::default();
                    event.records.push(message.clone());
                    let time = match how {
                        Invocation::Normal | Invocation::KilledAfter(_) => timeout,
                        Invocation::Deadline(d) => d,
                    };
                    let deadline =
                        chrono::Utc::now() + chrono::Duration::from_std(time).unwrap_or_default();
                    let handled = worker.on_messages(event, Some(deadline));
                    let response = match how {
                        // The process dies: nothing is reported, so SQS
                        // delivers the message again.
                        Invocation::KilledAfter(after) => {
                            match tokio::time::timeout(after, handled).await {
                                Ok(response) => response,
                                Err(_) => crashed(&message),
                            }
                        }
                        _ => handled.await,
                    };
                    (message, response)
                }))
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
            for (message, response) in &results {
                driven.invocations += 1;
                driven.failures += response.batch_item_failures.len();
                self.settle(message, response).await;
            }
        }
    }

    /// Messages waiting in the dead-letter queue.
    pub async fn dead_letters(&self) -> usize {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.dead_letters_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("read the dead-letter queue");
        out.attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("read a queue's ARN")
        .attributes
        .unwrap_or_default()
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .unwrap_or_default()
}

/// What a killed invocation amounts to: every message of its batch
/// delivered again.
fn crashed(message: &SqsMessage) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
    failure.item_identifier = message.message_id.clone().unwrap_or_default();
    response.batch_item_failures.push(failure);
    response
}

/// Uploads `files` (key, bytes) to `env`'s bucket.
pub async fn put_exports(env: &TestEnv, files: impl IntoIterator<Item = (String, Vec<u8>)>) {
    for (key, bytes) in files {
        env.s3
            .put_object()
            .bucket(&env.bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .expect("put an export");
    }
}
