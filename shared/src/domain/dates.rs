//! The days of conversations a run reads.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// First and last day, both included, the first not after the last:
/// checked once when built, so preparation can read the exports in between
/// without asking again. Written as `start_date` and `end_date` (flattened
/// into the settings that hold it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Days")]
pub struct DateRange {
    start_date: NaiveDate,
    end_date: NaiveDate,
}

/// The two days as written, before the check.
#[derive(Deserialize)]
struct Days {
    start_date: NaiveDate,
    end_date: NaiveDate,
}

/// Why two days are no range, or not one a caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateRangeError {
    #[error("start_date {start} is after end_date {end}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("the date range is {days} days; at most {max} are allowed")]
    TooLong { days: i64, max: u32 },
}

impl DateRange {
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<Self, DateRangeError> {
        if end < start {
            return Err(DateRangeError::EndBeforeStart { start, end });
        }
        Ok(Self {
            start_date: start,
            end_date: end,
        })
    }

    /// A range of at most `max_days` days (a deployment's limit on how
    /// much one run may read).
    pub fn at_most(
        start: NaiveDate,
        end: NaiveDate,
        max_days: u32,
    ) -> Result<Self, DateRangeError> {
        let range = Self::new(start, end)?;
        let days = range.days();
        if days > i64::from(max_days) {
            return Err(DateRangeError::TooLong {
                days,
                max: max_days,
            });
        }
        Ok(range)
    }

    pub fn start(&self) -> NaiveDate {
        self.start_date
    }

    pub fn end(&self) -> NaiveDate {
        self.end_date
    }

    /// Days in the range, both ends included (a one-day range is 1).
    pub fn days(&self) -> i64 {
        (self.end_date - self.start_date).num_days() + 1
    }
}

impl TryFrom<Days> for DateRange {
    type Error = DateRangeError;
    fn try_from(days: Days) -> Result<Self, Self::Error> {
        Self::new(days.start_date, days.end_date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_date_range_that_ends_before_it_starts_is_refused() {
        let err = DateRange::new(day("2026-10-31"), day("2026-10-01")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "start_date 2026-10-31 is after end_date 2026-10-01"
        );
    }

    #[test]
    fn a_one_day_range_is_one_day_long() {
        let range = DateRange::new(day("2026-10-01"), day("2026-10-01")).unwrap();
        assert_eq!(range.days(), 1);
        assert_eq!(
            (range.start(), range.end()),
            (day("2026-10-01"), day("2026-10-01"))
        );
    }

    #[test]
    fn a_date_range_longer_than_the_limit_is_refused_with_its_length() {
        let err = DateRange::at_most(day("2026-09-30"), day("2026-10-31"), 31).unwrap_err();
        assert_eq!(err, DateRangeError::TooLong { days: 32, max: 31 });
        assert_eq!(
            err.to_string(),
            "the date range is 32 days; at most 31 are allowed"
        );
        assert!(DateRange::at_most(day("2026-10-01"), day("2026-10-31"), 31).is_ok());
    }

    #[test]
    fn a_date_range_is_written_as_two_days_and_checked_when_read() {
        let range = DateRange::new(day("2026-10-01"), day("2026-10-02")).unwrap();
        let json = serde_json::to_value(range).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"start_date": "2026-10-01", "end_date": "2026-10-02"})
        );
        assert_eq!(serde_json::from_value::<DateRange>(json).unwrap(), range);
        let reversed = serde_json::json!({"start_date": "2026-10-02", "end_date": "2026-10-01"});
        assert!(serde_json::from_value::<DateRange>(reversed).is_err());
    }
}
