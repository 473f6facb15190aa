//! The bucket's key layout. Keys are built only from validated ids and
//! dates, never from request text.

use chrono::{Datelike, NaiveDate};

use crate::domain::{DatasetId, ModelId, RunId, TenantId};

/// `conversations/{tenant}/{YYYY}/{MM}/{DD}/`: one day of one tenant's exports.
pub fn conversation_day_prefix(tenant: &TenantId, day: NaiveDate) -> String {
    format!(
        "conversations/{tenant}/{:04}/{:02}/{:02}/",
        day.year(),
        day.month(),
        day.day()
    )
}

/// The files of one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetObject {
    Train,
    Validation,
    Manifest,
}

impl DatasetObject {
    pub fn file_name(self) -> &'static str {
        match self {
            DatasetObject::Train => "train.jsonl",
            DatasetObject::Validation => "validation.jsonl",
            DatasetObject::Manifest => "manifest.json",
        }
    }
}

/// `datasets/{tenant}/{dataset_id}/{file}`.
pub fn dataset_key(tenant: &TenantId, dataset: &DatasetId, object: DatasetObject) -> String {
    format!("datasets/{tenant}/{dataset}/{}", object.file_name())
}

/// `shards/{tenant}/{dataset_id}/`: a large run's preparation while it is
/// fanned out (its plan, each shard's task and results); removed once the
/// dataset is recorded or the run fails. A top-level prefix of its own,
/// not under the dataset's, so the bucket's lifecycle rule can expire
/// whatever a cancelled run or a crash leaves behind (a rule matches a key
/// prefix, never `datasets/*/…`).
pub fn shards_prefix(tenant: &TenantId, dataset: &DatasetId) -> String {
    format!("{SHARDS_ROOT}{tenant}/{dataset}/")
}

/// Where every fan-out's objects live (the lifecycle rule's and the
/// notification's prefix in `template.yaml`).
pub const SHARDS_ROOT: &str = "shards/";

/// The objects of a fanned-out preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardObject {
    /// What shard `n` reads; writing it is what hands the shard out (the
    /// bucket notifies the shard queue of every `task.json`).
    Task,
    Train,
    Validation,
    /// Its examples' index (binary, see `dataset::shard`).
    Index,
    /// Its counts; written last, so its presence says the shard is done.
    Done,
    /// Its last error, written when its attempts are spent.
    Failed,
}

impl ShardObject {
    pub fn file_name(self) -> &'static str {
        match self {
            ShardObject::Task => SHARD_TASK_FILE,
            ShardObject::Train => "train.jsonl",
            ShardObject::Validation => "validation.jsonl",
            ShardObject::Index => "index.bin",
            ShardObject::Done => "done.json",
            ShardObject::Failed => "failed.json",
        }
    }
}

/// The file name the bucket's notification to the shard queue matches
/// (its suffix filter in `template.yaml`).
pub const SHARD_TASK_FILE: &str = "task.json";

/// `shards/{tenant}/{dataset_id}/{n:05}/{file}`.
pub fn shard_key(
    tenant: &TenantId,
    dataset: &DatasetId,
    shard: u32,
    object: ShardObject,
) -> String {
    format!(
        "{}{shard:05}/{}",
        shards_prefix(tenant, dataset),
        object.file_name()
    )
}

/// The fan-out's own records: `plan.json` (the shards, fixed once) and
/// `attempts.json` (invocations started on the single path and the merge).
pub fn shards_record_key(tenant: &TenantId, dataset: &DatasetId, name: &str) -> String {
    format!("{}{name}", shards_prefix(tenant, dataset))
}

/// The tenant, dataset and shard of a task's key, for the shard worker
/// reading a bucket notification: `None` for any other key. The ids are
/// parsed, so a key outside the layout never names a prefix to read.
pub fn parse_shard_task_key(key: &str) -> Option<(TenantId, DatasetId, u32)> {
    let rest = key.strip_prefix(SHARDS_ROOT)?;
    let mut parts = rest.split('/');
    let tenant = TenantId::parse(parts.next()?).ok()?;
    let dataset = DatasetId::parse(parts.next()?).ok()?;
    let shard = parts.next()?;
    if shard.len() != 5 || !shard.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shard: u32 = shard.parse().ok()?;
    if parts.next()? != SHARD_TASK_FILE || parts.next().is_some() {
        return None;
    }
    Some((tenant, dataset, shard))
}

/// `runs/{tenant}/{run_id}/evaluation/`: everything a run's evaluation
/// stores (its plan, each answer as it arrives, each example's row).
pub fn evaluation_prefix(tenant: &TenantId, run: &RunId) -> String {
    format!("runs/{tenant}/{run}/evaluation/")
}

/// The evaluation's plan, fixed when it starts.
pub fn evaluation_plan_key(tenant: &TenantId, run: &RunId) -> String {
    format!("{}plan.json", evaluation_prefix(tenant, run))
}

/// The rows' prefix: listed in key order, they are in example order.
pub fn evaluation_rows_prefix(tenant: &TenantId, run: &RunId) -> String {
    format!("{}rows/", evaluation_prefix(tenant, run))
}

/// One example's row (written when all its answers are in).
pub fn evaluation_row_key(tenant: &TenantId, run: &RunId, index: usize) -> String {
    format!("{}{index:06}.json", evaluation_rows_prefix(tenant, run))
}

/// One answer (`role`: candidate, baseline, judge-a, judge-b), stored the
/// moment it arrives, so a crash never pays for it twice.
pub fn evaluation_answer_key(tenant: &TenantId, run: &RunId, index: usize, role: &str) -> String {
    format!(
        "{}answers/{index:06}/{role}.json",
        evaluation_prefix(tenant, run)
    )
}

/// `models/{tenant}/{model_id}/{checkpoint}.tar.zst`: a model's weights
/// as the provider packs them (Together: a zstd-compressed tar of the
/// adapter or the merged model).
pub fn model_weights_key(tenant: &TenantId, model: &ModelId, checkpoint: &str) -> String {
    format!("models/{tenant}/{model}/{checkpoint}.tar.zst")
}

/// Every UTC day from `start` to `end`, both included.
pub fn days(start: NaiveDate, end: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    start.iter_days().take_while(move |d| *d <= end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_prefixes_are_zero_padded() {
        let t = TenantId::parse("acme").unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(
            conversation_day_prefix(&t, d),
            "conversations/acme/2026/03/07/"
        );
    }

    #[test]
    fn days_include_both_ends_and_cross_months() {
        let s = NaiveDate::from_ymd_opt(2026, 1, 30).unwrap();
        let e = NaiveDate::from_ymd_opt(2026, 2, 2).unwrap();
        let all: Vec<_> = days(s, e).map(|d| d.to_string()).collect();
        assert_eq!(
            all,
            ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"]
        );
        assert_eq!(days(e, s).count(), 0);
    }
}

#[cfg(test)]
mod shard_key_tests {
    use super::*;

    #[test]
    fn a_task_key_parses_back_to_its_tenant_dataset_and_shard() {
        let tenant = TenantId::parse("acme").unwrap();
        let dataset = DatasetId::generate();
        let key = shard_key(&tenant, &dataset, 7, ShardObject::Task);
        assert_eq!(
            parse_shard_task_key(&key),
            Some((tenant.clone(), dataset.clone(), 7))
        );
        // Any other object of the shard, or a key off the layout, is not a task.
        for other in [
            shard_key(&tenant, &dataset, 7, ShardObject::Done),
            format!("shards/acme/{dataset}/7/task.json"),
            format!("shards/acme/{dataset}/00007/task.json/x"),
            format!("shards/../{dataset}/00007/task.json"),
            format!("datasets/acme/{dataset}/00007/task.json"),
            format!("shards/acme/{dataset}/00007/plan.json"),
        ] {
            assert_eq!(parse_shard_task_key(&other), None, "{other}");
        }
    }
}
