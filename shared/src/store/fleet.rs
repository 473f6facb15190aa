//! Pools of provider slots, tenants' places in flight, their monthly
//! spend and their limits: the records admission reads and writes.
//!
//! Items (keys in `keys`):
//! - `POOL#{pool}` / `ITEM`: `holders` (a string set of `tenant/run`),
//!   `cooldown_until` (epoch ms), `served#{tenant}` (epoch ms, the last
//!   admission of the tenant's runs to the pool).
//! - `TENANT#{t}` / `FLEET`: `in_flight` (a string set of run ids).
//! - `TENANT#{t}` / `SPEND#{YYYY-MM}`: `committed` (micro-dollars reserved
//!   by runs in flight plus settled by runs that ended), `settled`, and
//!   `res#{run}` (what each run in flight reserved).
//! - `TENANT#{t}` / `LIMITS`: an operator's override of the defaults.
//! - `POOLS` / `ITEM`: `pools` (a string set), every pool that ever had a
//!   waiting run, so a tick finds the queues without a scan.
//!
//! Admission is one transaction: the run's version-conditional move from
//! waiting, the pool (`size(holders) < budget`, no cool-down), the
//! tenant's place (`size(in_flight) < limit`) and its spend
//! (`committed <= cap - estimate`). No counter lives in memory, so
//! overlapping ticks, pushes and cancels can never admit past a pool. The
//! release is part of the run's own write that ends what it held
//! ([`release_items`], called by `update_run`), so it happens exactly
//! when the run's version moves, once.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::keys::{
    FLEET_SK, ITEM_SK, LIMITS_SK, PK, POOLS_PK, SK, WORK_INDEX, WORK_PK, WORK_SK, admit_work_pk,
    pool_pk, spend_sk, tenant_pk,
};
use super::{
    Item, Store, StoreError, is_condition_failure, n, s, string_attr, unless_condition_failed,
};
use crate::domain::fleet::{Admission, Month, PoolId, TenantLimits, TenantUsage, Usd};
use crate::domain::{Run, RunId, TenantId};

/// A pool as stored: who holds its slots and whether it is cooling down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolState {
    pub holders: Vec<(TenantId, RunId)>,
    pub cooldown_until: Option<DateTime<Utc>>,
    pub last_served: BTreeMap<TenantId, DateTime<Utc>>,
}

impl PoolState {
    pub fn in_flight(&self, tenant: &TenantId) -> u32 {
        self.holders.iter().filter(|(t, _)| t == tenant).count() as u32
    }
}

/// A run in a pool's queue, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRun {
    pub tenant_id: TenantId,
    pub run_id: RunId,
    pub since: String,
}

/// The budget checks of one admission, as the transaction enforces them.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub pool_budget: u32,
    pub tenant: TenantLimits,
}

fn holder(tenant: &TenantId, run: &RunId) -> String {
    format!("{tenant}/{run}")
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp_millis())
}

fn time_attr(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
}

fn number_attr(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse::<i64>().map_or(0, |v| v.max(0) as u64),
        _ => 0,
    }
}

fn set_attr(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn build(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
) -> Result<TransactWriteItem, StoreError> {
    let update = update
        .build()
        .map_err(|e| StoreError::dynamo("build update", e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// The items that give back what `next` no longer holds of its admission,
/// with `next.admission` marked accordingly: the pool's slot once the job
/// is terminal, the tenant's place and reservation once the run is (or is
/// back to waiting). Empty when nothing changes.
pub(super) fn release_items(
    table: &str,
    next: &mut Run,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let had_job = next.job.is_some();
    let (keep_slot, keep_tenant) = Admission::holds(next.status);
    let Some(admission) = next.admission.as_mut() else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    let key = holder(&next.tenant_id, &next.id);
    if admission.slot_held && !keep_slot {
        admission.slot_held = false;
        items.push(build(
            Update::builder()
                .table_name(table)
                .key(PK, s(pool_pk(&admission.pool)))
                .key(SK, s(ITEM_SK))
                .update_expression("DELETE holders :k")
                .expression_attribute_values(":k", AttributeValue::Ss(vec![key])),
        )?);
    }
    if admission.tenant_held && !keep_tenant {
        admission.tenant_held = false;
        // What the evaluation's calls billed once it completed, else its
        // estimate (an upper bound), else nothing (it did not run).
        let evaluation = next
            .evaluation
            .as_ref()
            .and_then(|e| e.cost_usd)
            .or_else(|| {
                next.stats
                    .as_ref()
                    .and_then(|s| s.evaluation_estimated_cost_usd)
            })
            .map_or(Usd::ZERO, Usd::from_dollars);
        let settle = admission.to_settle(had_job, evaluation);
        items.push(build(
            Update::builder()
                .table_name(table)
                .key(PK, s(tenant_pk(&next.tenant_id)))
                .key(SK, s(FLEET_SK))
                .update_expression("DELETE in_flight :r")
                .expression_attribute_values(
                    ":r",
                    AttributeValue::Ss(vec![next.id.as_str().to_owned()]),
                ),
        )?);
        // committed += settle - reserved, as two ADDs (a number may not
        // be negative in one ADD only if it underflows; it cannot here).
        let delta = settle.micros() as i128 - admission.reserved.micros() as i128;
        items.push(build(
            Update::builder()
                .table_name(table)
                .key(PK, s(tenant_pk(&next.tenant_id)))
                .key(SK, s(spend_sk(admission.month)))
                .update_expression("REMOVE #res ADD committed :delta, settled :settle")
                .expression_attribute_names("#res", format!("res#{}", next.id))
                .expression_attribute_values(":delta", n(delta))
                .expression_attribute_values(":settle", n(settle.micros())),
        )?);
    }
    Ok(items)
}

impl Store {
    /// The pool's holders, cool-down and who it served when.
    pub async fn get_pool(&self, pool: &PoolId) -> Result<PoolState, StoreError> {
        let item = self.get_fleet_item(&pool_pk(pool), ITEM_SK).await?;
        let Some(item) = item else {
            return Ok(PoolState::default());
        };
        let holders = set_attr(&item, "holders")
            .into_iter()
            .filter_map(|h| {
                let (t, r) = h.split_once('/')?;
                Some((TenantId::parse(t).ok()?, RunId::parse(r).ok()?))
            })
            .collect();
        let last_served = item
            .keys()
            .filter_map(|name| {
                let tenant = TenantId::parse(name.strip_prefix("served#")?).ok()?;
                Some((tenant, time_attr(&item, name)?))
            })
            .collect();
        Ok(PoolState {
            holders,
            cooldown_until: time_attr(&item, "cooldown_until"),
            last_served,
        })
    }

    /// Every pool that ever had a waiting run.
    pub async fn list_pools(&self) -> Result<Vec<PoolId>, StoreError> {
        let item = self.get_fleet_item(POOLS_PK, ITEM_SK).await?;
        Ok(item
            .map(|i| set_attr(&i, "pools"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| PoolId::parse(p).ok())
            .collect())
    }

    /// Puts `pool` on the list the admission pass walks (idempotent).
    pub async fn register_pool(&self, pool: &PoolId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(POOLS_PK))
            .key(SK, s(ITEM_SK))
            .update_expression("ADD pools :p")
            .expression_attribute_values(":p", AttributeValue::Ss(vec![pool.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// The pool's waiting runs, oldest first, at most `limit` (from the
    /// sparse work index: only waiting runs are in it under this key).
    pub async fn list_waiting(
        &self,
        pool: &PoolId,
        limit: usize,
    ) -> Result<Vec<QueuedRun>, StoreError> {
        let mut runs = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(WORK_INDEX)
                .key_condition_expression("#wpk = :pk")
                .expression_attribute_names("#wpk", WORK_PK)
                .expression_attribute_values(":pk", s(admit_work_pk(pool)))
                .set_exclusive_start_key(start.take())
                .limit(limit.saturating_sub(runs.len()).clamp(1, 1000) as i32)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items.unwrap_or_default() {
                let tenant =
                    string_attr(&item, PK).and_then(|pk| super::keys::parse_tenant_pk(&pk));
                let run = string_attr(&item, SK)
                    .and_then(|sk| sk.strip_prefix("RUN#").and_then(|id| RunId::parse(id).ok()));
                if let (Some(tenant_id), Some(run_id)) = (tenant, run) {
                    runs.push(QueuedRun {
                        tenant_id,
                        run_id,
                        since: string_attr(&item, WORK_SK).unwrap_or_default(),
                    });
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() || runs.len() >= limit {
                break;
            }
        }
        Ok(runs)
    }

    /// The tenant's limits: an operator's override, else `default`.
    pub async fn tenant_limits(
        &self,
        tenant: &TenantId,
        default: TenantLimits,
    ) -> Result<TenantLimits, StoreError> {
        let item = self.get_fleet_item(&tenant_pk(tenant), LIMITS_SK).await?;
        Ok(match item {
            Some(item) => TenantLimits {
                max_in_flight: match item.get("max_in_flight") {
                    Some(AttributeValue::N(v)) => v.parse().unwrap_or(default.max_in_flight),
                    _ => default.max_in_flight,
                },
                monthly_cap: match item.get("monthly_cap") {
                    Some(AttributeValue::N(v)) => v.parse().ok().map(Usd::from_micros),
                    Some(AttributeValue::Null(true)) => None,
                    _ => default.monthly_cap,
                },
            },
            None => default,
        })
    }

    /// Sets the tenant's limits (an operator's action: see the operations
    /// guide). `monthly_cap: None` is no cap, whatever the default.
    pub async fn set_tenant_limits(
        &self,
        tenant: &TenantId,
        limits: TenantLimits,
    ) -> Result<(), StoreError> {
        let cap = match limits.monthly_cap {
            Some(cap) => n(cap.micros()),
            None => AttributeValue::Null(true),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(tenant_pk(tenant)))
            .item(SK, s(LIMITS_SK))
            .item("max_in_flight", n(limits.max_in_flight))
            .item("monthly_cap", cap)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    /// What the tenant holds now and has spent in `month`.
    pub async fn tenant_usage(
        &self,
        tenant: &TenantId,
        month: Month,
    ) -> Result<TenantUsage, StoreError> {
        let fleet = self.get_fleet_item(&tenant_pk(tenant), FLEET_SK).await?;
        let spend = self
            .get_fleet_item(&tenant_pk(tenant), &spend_sk(month))
            .await?;
        let in_flight = fleet.map_or(0, |f| set_attr(&f, "in_flight").len() as u32);
        let (committed, settled) = spend.map_or((0, 0), |s| {
            (number_attr(&s, "committed"), number_attr(&s, "settled"))
        });
        Ok(TenantUsage {
            in_flight,
            reserved: Usd::from_micros(committed.saturating_sub(settled)),
            settled: Usd::from_micros(settled),
        })
    }

    /// Admits `admitted` (the run as read while waiting, moved to its first
    /// provider status with its [`Admission`]) if every limit still holds
    /// at the instant of the write. `Ok(None)`: a condition did not hold
    /// (the pool is full or cooling, the tenant at its limit or cap, or the
    /// run changed); nothing was written.
    pub async fn admit(
        &self,
        admitted: &Run,
        limits: AdmissionLimits,
        now: DateTime<Utc>,
    ) -> Result<Option<Run>, StoreError> {
        let Some(admission) = admitted.admission.as_ref() else {
            return Err(StoreError::ConditionFailed {
                kind: "run",
                id: admitted.id.to_string(),
            });
        };
        let (mut next, run_update) = self.run_update(admitted)?;
        let tenant = &admitted.tenant_id;
        let mut items = vec![run_update];
        items.push(build(
            Update::builder()
                .table_name(&self.table)
                .key(PK, s(pool_pk(&admission.pool)))
                .key(SK, s(ITEM_SK))
                .update_expression("ADD holders :k SET #served = :now")
                .condition_expression(
                    "(attribute_not_exists(holders) OR size(holders) < :budget) \
                     AND (attribute_not_exists(cooldown_until) OR cooldown_until <= :now)",
                )
                .expression_attribute_names("#served", format!("served#{tenant}"))
                .expression_attribute_values(
                    ":k",
                    AttributeValue::Ss(vec![holder(tenant, &admitted.id)]),
                )
                .expression_attribute_values(":budget", n(limits.pool_budget))
                .expression_attribute_values(":now", millis(now)),
        )?);
        items.push(build(
            Update::builder()
                .table_name(&self.table)
                .key(PK, s(tenant_pk(tenant)))
                .key(SK, s(FLEET_SK))
                .update_expression("ADD in_flight :r")
                .condition_expression("attribute_not_exists(in_flight) OR size(in_flight) < :limit")
                .expression_attribute_values(
                    ":r",
                    AttributeValue::Ss(vec![admitted.id.as_str().to_owned()]),
                )
                .expression_attribute_values(":limit", n(limits.tenant.max_in_flight)),
        )?);
        let mut spend = Update::builder()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(spend_sk(admission.month)))
            .update_expression("SET #res = :reserve ADD committed :reserve")
            .expression_attribute_names("#res", format!("res#{}", admitted.id))
            .expression_attribute_values(":reserve", n(admission.reserved.micros()));
        if let Some(cap) = limits.tenant.monthly_cap {
            let Some(room) = cap.micros().checked_sub(admission.reserved.micros()) else {
                return Ok(None);
            };
            spend = spend
                .condition_expression("attribute_not_exists(committed) OR committed <= :room")
                .expression_attribute_values(":room", n(room));
        }
        items.push(build(spend)?);
        next.waiting = None;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(next)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_transaction_canceled_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    /// Cools `pool` down until `until`: no admission before (the provider
    /// said it was busy). Never shortens a longer cool-down.
    pub async fn cool_down(&self, pool: &PoolId, until: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pool_pk(pool)))
            .key(SK, s(ITEM_SK))
            .update_expression("SET cooldown_until = :until")
            .condition_expression("attribute_not_exists(cooldown_until) OR cooldown_until < :until")
            .expression_attribute_values(":until", millis(until))
            .send()
            .await;
        unless_condition_failed("UpdateItem", result)
    }

    /// Takes `tenant`'s `run` out of `pool`'s holders if it is still there
    /// (the reaper's repair for a holder that is terminal or gone). True
    /// when it was there.
    pub async fn reclaim_slot(
        &self,
        pool: &PoolId,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<bool, StoreError> {
        let key = holder(tenant, run);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pool_pk(pool)))
            .key(SK, s(ITEM_SK))
            .update_expression("DELETE holders :k")
            .condition_expression("contains(holders, :one)")
            .expression_attribute_values(":k", AttributeValue::Ss(vec![key.clone()]))
            .expression_attribute_values(":one", s(key))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    async fn get_fleet_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.get_item(pk.to_owned(), sk.to_owned(), true).await
    }
}

/// The work-index attributes of a run: set while it waits, in its pool's
/// queue ordered by when it started waiting.
pub(super) fn work_attributes(run: &Run) -> Option<HashMap<String, AttributeValue>> {
    let waiting = run.waiting.as_ref()?;
    if run.status != crate::domain::RunStatus::Waiting {
        return None;
    }
    Some(HashMap::from([
        (WORK_PK.to_owned(), s(admit_work_pk(&waiting.pool))),
        (
            WORK_SK.to_owned(),
            s(format!(
                "{}#{}",
                waiting
                    .since
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                run.id
            )),
        ),
    ]))
}
