//! Runs and their idempotency items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};

use super::idempotency::IdempotentRequest;
use super::keys::{
    ACTIVE_PK, ACTIVE_SK, PK, RUN_PREFIX, SK, WORK_PK, WORK_SK, active_partition, active_sk,
    idempotency_sk, run_sk, tenant_pk,
};
use super::{
    Item, Store, StoreError, cursor, from_item, is_condition_failure, n, s, string_attr, to_item,
};
use crate::domain::{Run, RunId, RunStatus, TenantId};

/// How long an `Idempotency-Key` is remembered (DynamoDB TTL attribute).
const IDEMPOTENCY_TTL_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created(Run),
    /// The key was seen before with the same request: the first run.
    Replayed(Run),
}

impl CreateOutcome {
    pub fn run(&self) -> &Run {
        match self {
            CreateOutcome::Created(run) | CreateOutcome::Replayed(run) => run,
        }
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl Store {
    /// Writes a new run (and its idempotency item, in the same transaction).
    /// A key already used returns the run it created, never a second run.
    pub async fn create_run(
        &self,
        run: &Run,
        idempotency: Option<&IdempotentRequest>,
    ) -> Result<CreateOutcome, StoreError> {
        let run_item = self.run_item(run)?;
        let Some(idem) = idempotency else {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(run_item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(CreateOutcome::Created(run.clone())),
                Err(e) if is_condition_failure(&e) => Err(StoreError::AlreadyExists {
                    kind: "run",
                    id: run.id.to_string(),
                }),
                Err(e) => Err(StoreError::dynamo("PutItem", e)),
            };
        };
        let put_run = Put::builder()
            .table_name(&self.table)
            .set_item(Some(run_item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| StoreError::dynamo("build put", e))?;

        let expires = run.created_at + Duration::hours(IDEMPOTENCY_TTL_HOURS);
        let put_idem = Put::builder()
            .table_name(&self.table)
            .item(PK, s(tenant_pk(&run.tenant_id)))
            .item(SK, s(idempotency_sk(&idem.key)))
            .item("run_id", s(run.id.as_str()))
            .item("request_hash", s(&idem.request_hash))
            .item("created_at", s(run.created_at.to_rfc3339()))
            .item("expires_at", n(expires.timestamp()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| StoreError::dynamo("build put", e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_run).build())
            .transact_items(TransactWriteItem::builder().put(put_idem).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(CreateOutcome::Created(run.clone())),
            Err(e) => {
                // Cancelled: most likely the key exists. Read it to tell a
                // retry (same request) from a misuse (another request).
                let cancelled = e
                    .as_service_error()
                    .is_some_and(|se| se.is_transaction_canceled_exception());
                if !cancelled {
                    return Err(StoreError::dynamo("TransactWriteItems", e));
                }
                match self.replay(&run.tenant_id, idem).await? {
                    Some(outcome) => Ok(outcome),
                    None => Err(StoreError::dynamo("TransactWriteItems", e)),
                }
            }
        }
    }

    async fn replay(
        &self,
        tenant: &TenantId,
        idem: &IdempotentRequest,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(idempotency_sk(&idem.key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?
            .item;
        let Some(item) = item else { return Ok(None) };
        let run_id = string_attr(&item, "run_id").unwrap_or_default();
        if string_attr(&item, "request_hash").as_deref() != Some(idem.request_hash.as_str()) {
            return Err(StoreError::IdempotencyMismatch {
                key: idem.key.as_str().to_owned(),
                run_id,
            });
        }
        let run_id = RunId::parse(run_id)?;
        Ok(Some(CreateOutcome::Replayed(
            self.get_run(tenant, &run_id).await?,
        )))
    }

    /// The run, if it belongs to this tenant. Another tenant's run id is
    /// simply not found: the key is built from the caller's tenant.
    pub async fn get_run(&self, tenant: &TenantId, run_id: &RunId) -> Result<Run, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(run_sk(run_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?
            .item;
        match item {
            Some(item) => from_item("run", item),
            None => Err(StoreError::NotFound {
                kind: "run",
                id: run_id.to_string(),
            }),
        }
    }

    /// The tenant's runs, newest first, optionally of one status.
    /// `limit` is clamped to 1..=100.
    pub async fn list_runs(
        &self,
        tenant: &TenantId,
        status: Option<RunStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Run>, StoreError> {
        let limit = limit.clamp(1, 100);
        let mut start_key = match cursor {
            Some(c) => Some(cursor::decode(c, RUN_PREFIX, |id| {
                RunId::parse(id).is_ok()
            })?),
            None => None,
        };
        let mut runs: Vec<Run> = Vec::with_capacity(limit + 1);
        // Ask for one more than the page so we know whether a next page
        // exists; a status filter applies after DynamoDB's Limit, so loop.
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(tenant_pk(tenant)))
                .expression_attribute_values(":prefix", s(RUN_PREFIX))
                .scan_index_forward(false)
                .limit((limit + 1 - runs.len()) as i32);
            if let Some(status) = status {
                query = query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.as_str()));
            }
            if let Some(sk) = &start_key {
                query = query
                    .exclusive_start_key(PK, s(tenant_pk(tenant)))
                    .exclusive_start_key(SK, s(sk.clone()));
            }
            let out = query
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items.unwrap_or_default() {
                runs.push(from_item("run", item)?);
            }
            start_key = out.last_evaluated_key.and_then(|k| string_attr(&k, SK));
            if runs.len() > limit || start_key.is_none() {
                break;
            }
        }
        let next_cursor = if runs.len() > limit {
            runs.truncate(limit);
            runs.last().map(|r| cursor::encode(&run_sk(&r.id)))
        } else {
            None
        };
        Ok(Page {
            items: runs,
            next_cursor,
        })
    }

    /// Stores `run` if nobody changed it since it was read at
    /// `run.version`; returns it at its new version. A stale writer gets
    /// [`StoreError::VersionConflict`], never a silent overwrite.
    /// The texts the tenant reads (its error, its job's error) are
    /// scrubbed of ARNs and account ids on the way in
    /// ([`crate::domain::tenant_text`]); the run returned is as stored.
    pub async fn update_run(&self, run: &Run) -> Result<Run, StoreError> {
        let mut next = next_version(run);
        // What the run gives back of its admission goes in the same
        // write: it happens exactly when the version moves, so once.
        let releases = super::fleet::release_items(&self.table, &mut next)?;
        let (expression, names, values) = update_expression(&next, run.version)?;
        if releases.is_empty() {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(tenant_pk(&run.tenant_id)))
                .key(SK, s(run_sk(&run.id)))
                .update_expression(expression)
                .condition_expression("#version = :expected")
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(next),
                Err(e) if is_condition_failure(&e) => Err(version_conflict(run)),
                Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
            };
        }
        let mut items = vec![self.run_update_item(run, expression, names, values)?];
        items.extend(releases);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_transaction_canceled_exception()) =>
            {
                Err(version_conflict(run))
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    /// `run`'s next version and the transaction item that writes it if
    /// the stored version is still `run.version` (for writes that change
    /// other items with it, as admission does).
    pub(super) fn run_update(&self, run: &Run) -> Result<(Run, TransactWriteItem), StoreError> {
        let next = next_version(run);
        let (expression, names, values) = update_expression(&next, run.version)?;
        let item = self.run_update_item(run, expression, names, values)?;
        Ok((next, item))
    }

    fn run_update_item(
        &self,
        run: &Run,
        expression: String,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(&run.tenant_id)))
            .key(SK, s(run_sk(&run.id)))
            .update_expression(expression)
            .condition_expression("#version = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::dynamo("build update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn run_item(&self, run: &Run) -> Result<Item, StoreError> {
        let mut item = to_item("run", run)?;
        item.insert(PK.to_owned(), s(tenant_pk(&run.tenant_id)));
        item.insert(SK.to_owned(), s(run_sk(&run.id)));
        if let Some(partition) = active_partition(run.status) {
            item.insert(ACTIVE_PK.to_owned(), s(partition));
            item.insert(ACTIVE_SK.to_owned(), s(active_sk(run.updated_at, &run.id)));
        }
        if let Some(work) = super::fleet::work_attributes(run) {
            item.extend(work);
        }
        Ok(item)
    }
}

fn next_version(run: &Run) -> Run {
    let mut next = run.clone();
    next.version = run.version + 1;
    scrub_run(&mut next);
    next
}

fn version_conflict(run: &Run) -> StoreError {
    StoreError::VersionConflict {
        kind: "run",
        id: run.id.to_string(),
        expected: run.version,
    }
}

/// An update expression with its attribute names and values.
type RunUpdate = (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
);

/// The update that stores every field of `next` (and its index
/// attributes: in the active index under the function that works on it,
/// in the work index while waiting) if the stored version is `expected`.
fn update_expression(next: &Run, expected: u64) -> Result<RunUpdate, StoreError> {
    let mut item = to_item("run", next)?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut values: HashMap<String, AttributeValue> = HashMap::new();
    let mut sets = Vec::with_capacity(item.len() + 4);
    let mut removes = Vec::new();
    if let Some(partition) = active_partition(next.status) {
        item.insert(ACTIVE_PK.to_owned(), s(partition));
        item.insert(
            ACTIVE_SK.to_owned(),
            s(active_sk(next.updated_at, &next.id)),
        );
    } else {
        removes.push(ACTIVE_PK);
        removes.push(ACTIVE_SK);
    }
    match super::fleet::work_attributes(next) {
        Some(work) => item.extend(work),
        None => {
            removes.push(WORK_PK);
            removes.push(WORK_SK);
        }
    }
    for (i, (name, value)) in item.into_iter().enumerate() {
        names.insert(format!("#a{i}"), name);
        values.insert(format!(":a{i}"), value);
        sets.push(format!("#a{i} = :a{i}"));
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        let removed: Vec<String> = removes
            .iter()
            .enumerate()
            .map(|(i, name)| {
                names.insert(format!("#r{i}"), (*name).to_owned());
                format!("#r{i}")
            })
            .collect();
        expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
    }
    names.insert("#version".into(), "version".into());
    values.insert(":expected".into(), n(expected));
    Ok((expression, names, values))
}

/// Milliseconds since the epoch, as the lease attributes store time.
pub(super) fn epoch_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The run's tenant-visible texts with ARNs and account ids replaced.
fn scrub_run(run: &mut Run) {
    use crate::domain::tenant_text::{needs_scrubbing, scrub};
    let scrubbed = |text: &mut String| {
        if needs_scrubbing(text) {
            *text = scrub(text).into_owned();
        }
    };
    if let Some(error) = run.error.as_mut() {
        scrubbed(&mut error.message);
    }
    if let Some(error) = run.job.as_mut().and_then(|j| j.error.as_mut()) {
        scrubbed(error);
    }
}
