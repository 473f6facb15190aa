//! The share of conversations that train (the rest validate).

use serde::{Deserialize, Serialize};

/// A share of conversations in (0, 1]: checked once when built, so the
/// start-run checker reports it and preparation can trust it. Stored and
/// shown as a plain number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct TrainSplit(f64);

/// A share outside (0, 1], or not a number at all.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{}", TrainSplit::RULE)]
pub struct TrainSplitError {
    pub given: f64,
}

impl TrainSplit {
    /// What a split must be, as the API says it.
    pub const RULE: &'static str = "must be a number greater than 0 and at most 1";

    /// Nine conversations in ten train.
    pub const DEFAULT: TrainSplit = TrainSplit(0.9);

    pub fn new(share: f64) -> Result<Self, TrainSplitError> {
        // NaN fails both comparisons, so it is refused too.
        if share > 0.0 && share <= 1.0 {
            Ok(Self(share))
        } else {
            Err(TrainSplitError { given: share })
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for TrainSplit {
    type Error = TrainSplitError;
    fn try_from(share: f64) -> Result<Self, Self::Error> {
        Self::new(share)
    }
}

impl From<TrainSplit> for f64 {
    fn from(split: TrainSplit) -> Self {
        split.0
    }
}

/// Compares with the number it holds (`split == 1.0`).
impl PartialEq<f64> for TrainSplit {
    fn eq(&self, other: &f64) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for TrainSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_train_split_outside_zero_to_one_is_refused() {
        for bad in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
            let err = TrainSplit::new(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                "must be a number greater than 0 and at most 1"
            );
        }
    }

    #[test]
    fn a_train_split_up_to_and_including_one_is_kept_as_given() {
        for good in [0.01, 0.5, 0.9, 1.0] {
            assert_eq!(TrainSplit::new(good).unwrap(), good);
        }
        assert_eq!(TrainSplit::DEFAULT, 0.9);
    }

    #[test]
    fn a_train_split_is_stored_as_a_plain_number_and_checked_when_read() {
        let split = TrainSplit::new(0.8).unwrap();
        assert_eq!(serde_json::to_string(&split).unwrap(), "0.8");
        assert_eq!(serde_json::from_str::<TrainSplit>("0.8").unwrap(), split);
        assert!(serde_json::from_str::<TrainSplit>("1.5").is_err());
    }
}
