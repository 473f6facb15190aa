//! The table's key layout, in one place. Every key is built from validated
//! ids, so no request text ever becomes a key.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::fleet::{Month, PoolId};
use crate::domain::{
    DatasetId, EventId, IdempotencyKey, ModelId, ProviderKind, RunId, RunStatus, TenantId,
};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// The sparse active-runs index: these two attributes exist only while a
/// scheduled function has work on the run, under that function's
/// partition ([`active_partition`]), so each function's tick reads its own
/// runs and nobody else's: a waiting run is on none (admission reads it
/// from the work index), a terminal one leaves the index.
pub const ACTIVE_INDEX: &str = "active-runs";
pub const ACTIVE_PK: &str = "active_pk";
pub const ACTIVE_SK: &str = "active_sk";
/// The one partition every active run was on before the functions got
/// their own; still read, so runs written before an upgrade are not lost
/// (their next write moves them).
pub const LEGACY_ACTIVE_PARTITION: &str = "ACTIVE";

/// Each scheduled function's partition of the active-runs index, with the
/// statuses it takes runs out of.
pub const ACTIVE_PARTITIONS: [(&str, &[RunStatus]); 3] = [
    ("ACTIVE#prepare", &[RunStatus::Queued, RunStatus::Preparing]),
    (
        "ACTIVE#monitor",
        &[
            RunStatus::Uploading,
            RunStatus::Submitting,
            RunStatus::Training,
            RunStatus::Deploying,
        ],
    ),
    ("ACTIVE#evaluate", &[RunStatus::Evaluating]),
];

/// The active-runs partition of a run in `status`: `None` when no
/// scheduled function works on it (waiting, terminal).
pub fn active_partition(status: RunStatus) -> Option<&'static str> {
    ACTIVE_PARTITIONS
        .iter()
        .find(|(_, statuses)| statuses.contains(&status))
        .map(|(partition, _)| *partition)
}

/// The active index's sort key: when the run is next due for its
/// function, then the run. A tick queries its partition up to its own
/// "now", most overdue first; a write of the run makes it due at once (its
/// new status is work), and a run in training is put off until its next
/// poll ([`super::Store::defer_run`]). Fixed-width milliseconds sort as
/// text.
pub fn active_sk(due: DateTime<Utc>, run: &RunId) -> String {
    format!("{DUE_PREFIX}{:013}#{run}", due.timestamp_millis().max(0))
}

/// Every due key starts so; a key that does not is from before runs had
/// due times (the run id alone) and is always due.
pub const DUE_PREFIX: &str = "DUE#";

/// The last possible due key at `now`.
pub fn due_by(now: DateTime<Utc>) -> String {
    format!("{DUE_PREFIX}{:013}#~", now.timestamp_millis().max(0))
}

/// The sparse work index: a run is in it while some function has work
/// for it, under that work's key (today: `ADMIT#{pool}` while waiting for
/// admission), ordered by when the work came due.
pub const WORK_INDEX: &str = "work";
pub const WORK_PK: &str = "work_pk";
pub const WORK_SK: &str = "work_sk";

pub const RUN_PREFIX: &str = "RUN#";
pub const DATASET_PREFIX: &str = "DATASET#";
pub const EVENT_PREFIX: &str = "EVENT#";
pub const MODEL_PREFIX: &str = "MODEL#";
/// The tenant's active-model pointer: one item, so reading it is one GetItem.
pub const ACTIVE_MODEL_SK: &str = "ACTIVE_MODEL";

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub fn run_sk(run: &RunId) -> String {
    format!("{RUN_PREFIX}{run}")
}

pub fn dataset_sk(dataset: &DatasetId) -> String {
    format!("{DATASET_PREFIX}{dataset}")
}

/// A run's training curve, beside the run in the tenant's partition.
pub fn metrics_sk(run: &RunId) -> String {
    format!("METRICS#{run}")
}

pub fn model_sk(model: &ModelId) -> String {
    format!("{MODEL_PREFIX}{model}")
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

/// The sort key of items that are alone in their partition (job owners,
/// webhook deliveries).
pub const ITEM_SK: &str = "ITEM";

/// A provider's id never becomes a key as given (design rule: provider ids
/// are shown, not keyed on; a Bedrock ARN has `:` and `/`): its sha256
/// does, in 32 hex digits.
fn digest(provider: &str, value: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("{provider}\n{value}").as_bytes());
    hex::encode(&hash[..16])
}

/// Which tenant and run a provider's job belongs to: how a push (webhook,
/// EventBridge) that names only the job finds its run with one GetItem.
/// Outside every tenant partition on purpose: the push carries no tenant.
pub fn job_owner_pk(provider: ProviderKind, job_id: &str) -> String {
    format!(
        "JOB#{}#{}",
        provider.as_str(),
        digest(provider.as_str(), job_id)
    )
}

/// A webhook delivery already handled (by its `webhook-id`), kept for the
/// provider's retry window so a replay changes nothing.
pub fn delivery_pk(provider: ProviderKind, delivery_id: &str) -> String {
    format!(
        "WEBHOOK#{}#{}",
        provider.as_str(),
        digest(provider.as_str(), delivery_id)
    )
}

/// A pool of provider slots, alone in its partition: admission's
/// transactions meet on it, and no tenant partition holds it.
pub fn pool_pk(pool: &PoolId) -> String {
    format!("POOL#{pool}")
}

/// The list of pools that ever had a waiting run.
pub const POOLS_PK: &str = "POOLS";

/// A pool's admission queue in the work index.
pub fn admit_work_pk(pool: &PoolId) -> String {
    format!("ADMIT#{pool}")
}

/// The tenant's runs in flight (all pools), in its own partition.
pub const FLEET_SK: &str = "FLEET";
/// An operator's override of the tenant's limits.
pub const LIMITS_SK: &str = "LIMITS";

/// The tenant's spend of one month.
pub fn spend_sk(month: Month) -> String {
    format!("SPEND#{month}")
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
    fn provider_ids_are_hashed_into_keys() {
        let arn = "arn:aws:bedrock:us-east-1:1:model-customization-job/a/b";
        let key = job_owner_pk(ProviderKind::Bedrock, arn);
        assert!(key.starts_with("JOB#bedrock#") && key.len() == "JOB#bedrock#".len() + 32);
        assert!(!key[4..].contains(['/', ':']));
        assert_ne!(
            job_owner_pk(ProviderKind::OpenAi, "ftjob-1"),
            job_owner_pk(ProviderKind::Bedrock, "ftjob-1")
        );
        assert_ne!(
            delivery_pk(ProviderKind::OpenAi, "msg_1"),
            delivery_pk(ProviderKind::OpenAi, "msg_2")
        );
    }

    #[test]
    fn due_keys_sort_by_time_and_fall_due_at_their_moment() {
        let run = RunId::generate();
        let early: DateTime<Utc> = "2026-01-02T03:04:05.006Z".parse().unwrap();
        let late: DateTime<Utc> = "2026-11-02T03:04:05.100Z".parse().unwrap();
        assert!(active_sk(early, &run) < active_sk(late, &run));
        assert!(active_sk(early, &run) <= due_by(early));
        assert!(active_sk(late, &run) > due_by(early));
        assert!(DUE_PREFIX < active_sk(early, &run).as_str());
        // a key from before due times (the run id) is outside every due range
        assert!(run.as_str() > due_by(late).as_str());
    }

    #[test]
    fn tenant_pk_round_trips() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(parse_tenant_pk(&tenant_pk(&t)), Some(t));
        assert_eq!(parse_tenant_pk("TENANT#a/b"), None);
    }
}
