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
