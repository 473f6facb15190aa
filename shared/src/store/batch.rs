//! Batched reads and writes for the monitor: one request per 100 runs read
//! or 25 events written, instead of one each. A tick over a thousand runs
//! is then a few dozen requests, not a few thousand.

use std::time::Duration;

use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};

use super::active::ActiveRun;
use super::keys::{PK, SK, event_sk, events_pk, run_sk, tenant_pk};
use super::{Item, Store, StoreError, from_item, s, to_item};
use crate::domain::{Run, RunEvent, TenantId};

/// DynamoDB's limits per BatchGetItem and BatchWriteItem request.
const GET_BATCH: usize = 100;
const WRITE_BATCH: usize = 25;

/// Rounds of retrying what DynamoDB left unprocessed (it does under
/// throttling), with exponential back-off from 50 ms: about 6 s in all.
const UNPROCESSED_ROUNDS: u32 = 7;

impl Store {
    /// The runs named by `keys`, read strongly consistently, in no
    /// particular order. A run deleted since it was listed is left out.
    pub async fn get_runs(&self, keys: &[ActiveRun]) -> Result<Vec<Run>, StoreError> {
        let mut runs = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_BATCH) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk
                        .iter()
                        .map(|k| {
                            Item::from([
                                (PK.to_owned(), s(tenant_pk(&k.tenant_id))),
                                (SK.to_owned(), s(run_sk(&k.run_id))),
                            ])
                        })
                        .collect(),
                ))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
            for round in 0.. {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    runs.push(from_item("run", item)?);
                }
                match out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty())
                {
                    None => break,
                    Some(left) if round + 1 >= UNPROCESSED_ROUNDS => {
                        return Err(StoreError::Unprocessed {
                            op: "BatchGetItem",
                            left: left.keys.len(),
                        });
                    }
                    Some(left) => {
                        pending = left;
                        tokio::time::sleep(backoff(round)).await;
                    }
                }
            }
        }
        Ok(runs)
    }

    /// Stores provider events copied from a job. Each event's id is
    /// derived from the provider's, so writing one again replaces it with
    /// the same content: no condition is needed, and batching is safe.
    /// Messages are scrubbed of ARNs and account ids, as
    /// [`Store::append_event`] does.
    pub async fn put_events(
        &self,
        tenant: &TenantId,
        events: &[RunEvent],
    ) -> Result<(), StoreError> {
        for chunk in events.chunks(WRITE_BATCH) {
            let mut pending = Vec::with_capacity(chunk.len());
            for event in chunk {
                let mut item = to_item("event", &super::events::scrubbed_event(event))?;
                item.insert(PK.to_owned(), s(events_pk(tenant, &event.run_id)));
                item.insert(SK.to_owned(), s(event_sk(event.at, &event.id)));
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
                pending.push(WriteRequest::builder().put_request(put).build());
            }
            for round in 0.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
                match out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|left| !left.is_empty())
                {
                    None => break,
                    Some(left) if round + 1 >= UNPROCESSED_ROUNDS => {
                        return Err(StoreError::Unprocessed {
                            op: "BatchWriteItem",
                            left: left.len(),
                        });
                    }
                    Some(left) => {
                        pending = left;
                        tokio::time::sleep(backoff(round)).await;
                    }
                }
            }
        }
        Ok(())
    }
}

fn backoff(round: u32) -> Duration {
    Duration::from_millis(50u64 << round.min(6))
}
