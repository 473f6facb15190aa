//! The table's key layout, in one place. Every key is built from validated
//! ids, so no request text ever becomes a key.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{DatasetId, EventId, IdempotencyKey, RunId, TenantId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// The sparse active-runs index: these two attributes exist only while a
/// run is not terminal, so the index holds exactly the runs to reconcile.
pub const ACTIVE_INDEX: &str = "active-runs";
pub const ACTIVE_PK: &str = "active_pk";
pub const ACTIVE_SK: &str = "active_sk";
pub const ACTIVE_PARTITION: &str = "ACTIVE";

pub const RUN_PREFIX: &str = "RUN#";
pub const DATASET_PREFIX: &str = "DATASET#";
pub const EVENT_PREFIX: &str = "EVENT#";

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub fn run_sk(run: &RunId) -> String {
    format!("{RUN_PREFIX}{run}")
}

pub fn dataset_sk(dataset: &DatasetId) -> String {
    format!("{DATASET_PREFIX}{dataset}")
}

pub fn idempotency_sk(key: &IdempotencyKey) -> String {
    format!("IDEMPOTENCY#{}", key.as_str())
}

/// A run's events live in a partition that names the tenant too, so even
/// the timeline cannot be read without the owning tenant (the design had
/// `RUN#{run_id}`; the tenant makes the wall structural).
pub fn events_pk(tenant: &TenantId, run: &RunId) -> String {
    format!("TENANT#{tenant}#RUN#{run}")
}

/// Time first (fixed-width UTC, millisecond precision) so a Query sorts
/// the timeline; the id breaks ties and makes the key unique.
pub fn event_sk(at: DateTime<Utc>, id: &EventId) -> String {
    format!(
        "{EVENT_PREFIX}{}#{id}",
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// Reads `TENANT#{tenant}` back into a tenant id.
pub fn parse_tenant_pk(pk: &str) -> Option<TenantId> {
    pk.strip_prefix("TENANT#")
        .and_then(|t| TenantId::parse(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_time() {
        let early = "2026-01-02T03:04:05.006Z".parse().unwrap();
        let late = "2026-01-02T03:04:05.100Z".parse().unwrap();
        let id = EventId::generate();
        assert!(event_sk(early, &id) < event_sk(late, &id));
        assert!(event_sk(early, &id).starts_with("EVENT#2026-01-02T03:04:05.006Z#evt_"));
    }

    #[test]
    fn tenant_pk_round_trips() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(parse_tenant_pk(&tenant_pk(&t)), Some(t));
        assert_eq!(parse_tenant_pk("TENANT#a/b"), None);
    }
}
