//! The bucket's key layout. Keys are built only from validated ids and
//! dates, never from request text.

use chrono::{Datelike, NaiveDate};

use crate::domain::{DatasetId, TenantId};

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
