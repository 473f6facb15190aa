//! Figures about a set of examples: distributions and OpenAI's default
//! epoch heuristic (the cookbook checker's, which this crate's chat
//! checker reproduces). Prices are each provider's: see its profile.

use serde::{Deserialize, Serialize};

/// Min, max, mean, median and 95th percentile of a list of counts, plus
/// their sum. Percentiles interpolate linearly between neighbours, as
/// numpy's `quantile` (used by OpenAI's checker) does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub sum: u64,
}

impl Distribution {
    pub fn of(values: &[u32]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let sum: u64 = sorted.iter().map(|&v| u64::from(v)).sum();
        Self {
            min: u64::from(sorted[0]),
            max: u64::from(sorted[sorted.len() - 1]),
            mean: sum as f64 / sorted.len() as f64,
            p50: quantile(&sorted, 0.5),
            p95: quantile(&sorted, 0.95),
            sum,
        }
    }
}

fn quantile(sorted: &[u32], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi]));
    a + (b - a) * (pos - lo as f64)
}

/// The epoch count OpenAI picks when `n_epochs` is `auto`, as the cookbook
/// checker states it: 3, raised so small sets see at least 100 examples,
/// lowered so large sets see at most 25,000 (between 1 and 25).
pub fn default_epochs(train_examples: u64) -> u32 {
    const TARGET_EPOCHS: u64 = 3;
    const MIN_TARGET_EXAMPLES: u64 = 100;
    const MAX_TARGET_EXAMPLES: u64 = 25_000;
    const MIN_DEFAULT_EPOCHS: u64 = 1;
    const MAX_DEFAULT_EPOCHS: u64 = 25;
    let n = train_examples;
    if n == 0 {
        return 0;
    }
    let epochs = if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES {
        MAX_DEFAULT_EPOCHS.min(MIN_TARGET_EXAMPLES / n)
    } else if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES {
        MIN_DEFAULT_EPOCHS.max(MAX_TARGET_EXAMPLES / n)
    } else {
        TARGET_EPOCHS
    };
    epochs as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_follow_the_cookbook_heuristic() {
        // The cookbook toy file has 5 examples and reports 20 epochs.
        assert_eq!(default_epochs(5), 20);
        assert_eq!(default_epochs(1), 25);
        assert_eq!(default_epochs(33), 3);
        assert_eq!(default_epochs(34), 3);
        assert_eq!(default_epochs(8_333), 3);
        assert_eq!(default_epochs(8_334), 2);
        assert_eq!(default_epochs(100_000), 1);
        assert_eq!(default_epochs(0), 0);
    }

    #[test]
    fn distribution_matches_numpy_linear_quantiles() {
        // The toy file's per-example tokens.
        let d = Distribution::of(&[45, 111, 26, 28, 8032]);
        assert_eq!((d.min, d.max, d.sum), (26, 8032, 8242));
        assert_eq!(d.p50, 45.0);
        // numpy: 111 + 0.8 * (8032 - 111)
        assert!((d.p95 - 6447.8).abs() < 1e-9);
        assert!((d.mean - 1648.4).abs() < 1e-9);
        let even = Distribution::of(&[1, 2, 3, 4]);
        assert_eq!(even.p50, 2.5);
    }
}
