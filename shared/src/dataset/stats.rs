//! Figures about a set of examples: distributions, OpenAI's default epoch
//! heuristic, and the estimated training cost.

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

/// USD per 1M training tokens, by model-name prefix (longest first).
///
/// ESTIMATE: taken from OpenAI's public pricing page (platform.openai.com/
/// docs/pricing, "Fine-tuning" table) as last seen in 2025-06; it could not
/// be re-checked offline and OpenAI changes prices. Unknown models get
/// `None` and a cost of 0 in the stats.
pub const TRAINING_PRICE_USD_PER_1M: &[(&str, f64)] = &[
    ("gpt-4.1-nano", 1.50),
    ("gpt-4.1-mini", 5.00),
    ("gpt-4.1", 25.00),
    ("gpt-4o-mini", 3.00),
    ("gpt-4o", 25.00),
    ("gpt-3.5-turbo", 8.00),
    ("davinci-002", 6.00),
    ("babbage-002", 0.40),
];

pub fn training_price_per_million(model: &str) -> Option<f64> {
    TRAINING_PRICE_USD_PER_1M
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map(|&(_, price)| price)
}

/// Cost of training on `charged_tokens`, rounded to cents.
pub fn estimated_cost_usd(model: &str, charged_tokens: u64) -> f64 {
    let price = training_price_per_million(model).unwrap_or(0.0);
    (charged_tokens as f64 * price / 1_000_000.0 * 100.0).round() / 100.0
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

    #[test]
    fn cost_uses_the_longest_matching_price() {
        assert_eq!(
            training_price_per_million("gpt-4o-mini-2024-07-18"),
            Some(3.0)
        );
        assert_eq!(training_price_per_million("gpt-4o-2024-08-06"), Some(25.0));
        assert_eq!(estimated_cost_usd("gpt-4o-mini-2024-07-18", 1_000_000), 3.0);
        assert_eq!(estimated_cost_usd("unknown", 1_000_000), 0.0);
    }
}
