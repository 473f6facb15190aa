//! The active-runs index and the short lease a monitor takes on a run.

use chrono::{DateTime, Utc};

use super::keys::{
    ACTIVE_INDEX, ACTIVE_PARTITIONS, ACTIVE_PK, ACTIVE_SK, DUE_PREFIX, LEGACY_ACTIVE_PARTITION, PK,
    SK, active_partition, active_sk, due_by, parse_tenant_pk, run_sk, tenant_pk,
};
use super::runs::epoch_millis;
use super::{
    Store, StoreError, from_item, is_condition_failure, n, s, string_attr, unless_condition_failed,
};
use crate::domain::{Run, RunId, RunStatus, TenantId};

/// A run the monitor should look at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActiveRun {
    pub tenant_id: TenantId,
    pub run_id: RunId,
}

/// Which keys of a partition a Query reads.
enum Range {
    /// Those due by this moment.
    Due(DateTime<Utc>),
    /// Those written before runs had due times.
    Undated,
}

impl Store {
    /// Every run a scheduled function works on (not waiting, not
    /// terminal), due or not, most overdue first within each function's
    /// partition.
    pub async fn list_active_runs(&self) -> Result<Vec<ActiveRun>, StoreError> {
        self.list_due_runs_in(|_| true, DateTime::<Utc>::MAX_UTC)
            .await
    }

    /// The runs due by `now` of the functions whose statuses `wanted`
    /// takes: only their partitions of the sparse index are read, and only
    /// up to `now` (Queries, never a Scan), so a tick costs what its own
    /// function's due runs cost — a waiting run, or one in training between
    /// polls, costs none. Most overdue first within each partition. Keys
    /// written before runs had due times are always due, and so is the
    /// partition from before the functions had their own.
    pub async fn list_due_runs_in(
        &self,
        wanted: impl Fn(RunStatus) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<ActiveRun>, StoreError> {
        let mut runs = Vec::new();
        self.list_partition(LEGACY_ACTIVE_PARTITION, None, &mut runs)
            .await?;
        let partitions = ACTIVE_PARTITIONS
            .iter()
            .filter(|(_, statuses)| statuses.iter().any(|status| wanted(*status)))
            .map(|(partition, _)| *partition);
        for partition in partitions {
            self.list_partition(partition, Some(Range::Due(now)), &mut runs)
                .await?;
            self.list_partition(partition, Some(Range::Undated), &mut runs)
                .await?;
        }
        Ok(runs)
    }

    async fn list_partition(
        &self,
        partition: &str,
        range: Option<Range>,
        runs: &mut Vec<ActiveRun>,
    ) -> Result<(), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACTIVE_INDEX)
            .expression_attribute_names("#apk", ACTIVE_PK)
            .expression_attribute_values(":active", s(partition));
        let query = match range {
            None => query.key_condition_expression("#apk = :active"),
            Some(Range::Due(now)) => query
                .key_condition_expression("#apk = :active AND #ask BETWEEN :from AND :to")
                .expression_attribute_names("#ask", ACTIVE_SK)
                .expression_attribute_values(":from", s(DUE_PREFIX))
                .expression_attribute_values(":to", s(due_by(now))),
            // '$' follows '#': every key that does not start with "DUE#"
            // and sorts after it (a run id, "run_…").
            Some(Range::Undated) => query
                .key_condition_expression("#apk = :active AND #ask > :after")
                .expression_attribute_names("#ask", ACTIVE_SK)
                .expression_attribute_values(":after", s("DUE$")),
        };
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| StoreError::dynamo("Query", e))?;
            let tenant = string_attr(&item, PK).and_then(|pk| parse_tenant_pk(&pk));
            let run = string_attr(&item, SK)
                .and_then(|sk| sk.strip_prefix("RUN#").and_then(|id| RunId::parse(id).ok()));
            match (tenant, run) {
                (Some(tenant_id), Some(run_id)) => runs.push(ActiveRun { tenant_id, run_id }),
                _ => tracing::warn!("active-runs index holds an item that is not a run; skipped"),
            }
        }
        Ok(())
    }

    /// Puts the run off until `due` in its function's partition: a run in
    /// training polled with nothing new. Changes neither its version nor
    /// any field, and only if nobody wrote it since it was read (a write
    /// makes it due at once, which stands) and it is still in `partition`.
    pub async fn defer_run(&self, run: &Run, due: DateTime<Utc>) -> Result<(), StoreError> {
        let Some(partition) = active_partition(run.status) else {
            return Ok(());
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(&run.tenant_id)))
            .key(SK, s(run_sk(&run.id)))
            .update_expression("SET #ask = :due")
            .condition_expression("#version = :version AND #apk = :partition")
            .expression_attribute_names("#ask", ACTIVE_SK)
            .expression_attribute_names("#apk", ACTIVE_PK)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":due", s(active_sk(due, &run.id)))
            .expression_attribute_values(":version", n(run.version))
            .expression_attribute_values(":partition", s(partition))
            .send()
            .await;
        unless_condition_failed("UpdateItem", result)
    }

    /// Takes the run's lease for `owner` until `until`, if nobody else
    /// holds an unexpired one. Returns the run as stored, or `None` when
    /// another owner holds it. The lease lives beside the run's fields and
    /// does not change its version.
    pub async fn acquire_lease(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Run>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(run_sk(run_id)))
            .update_expression("SET #owner = :owner, #until = :until")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#until) OR #until < :now OR #owner = :owner)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#owner", "lease_owner")
            .expression_attribute_names("#until", "lease_until")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(epoch_millis(until)))
            .expression_attribute_values(":now", n(epoch_millis(now)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes {
                Some(item) => Ok(Some(from_item("run", item)?)),
                None => Ok(None),
            },
            Err(e) if is_condition_failure(&e) => {
                // Either someone else holds it or the run is gone.
                self.get_run(tenant, run_id).await?;
                Ok(None)
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Gives the lease back early so the next tick need not wait it out.
    /// Releasing a lease we no longer hold is not an error.
    pub async fn release_lease(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(run_sk(run_id)))
            .update_expression("REMOVE #owner, #until")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "lease_owner")
            .expression_attribute_names("#until", "lease_until")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        unless_condition_failed("UpdateItem", result)
    }
}
