//! What a fine-tune costs in the sandbox: tokens are a quarter of a file's
//! bytes, billed per epoch (training) and per evaluation (validation) at
//! the base model's price per million tokens ([`super::BASE_MODELS`]).
//! Deterministic, so a test can predict an estimate and a job's
//! `total_price` from the files it uploaded.

use super::BaseModel;

/// Tokens the sandbox bills for a file: a quarter of its bytes, rounded up.
pub fn tokens_of(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// A price estimate, from the files' sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub train_tokens: u64,
    pub eval_tokens: u64,
    /// US dollars.
    pub price: f64,
}

/// Trained tokens = training tokens × epochs; evaluation tokens =
/// validation tokens × evaluations; both billed at the model's price per
/// million tokens (LoRA or full).
pub fn estimate(
    model: &BaseModel,
    full: bool,
    training_bytes: u64,
    validation_bytes: u64,
    n_epochs: u64,
    n_evals: u64,
) -> Estimate {
    let train_tokens = tokens_of(training_bytes) * n_epochs;
    let eval_tokens = tokens_of(validation_bytes) * n_evals;
    let per_million = if full {
        model.full_price_per_million
    } else {
        model.lora_price_per_million
    };
    Estimate {
        train_tokens,
        eval_tokens,
        price: (train_tokens + eval_tokens) as f64 * per_million / 1e6,
    }
}

/// Together's `total_price` unit: an integer number of nano-dollars
/// (its CLI divides by 10^9 to show dollars).
pub fn nano_dollars(price: f64) -> u64 {
    (price * 1e9).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::together::base_model;

    const LLAMA: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference";

    #[test]
    fn the_price_is_a_quarter_of_the_bytes_times_epochs_at_the_models_rate() {
        let model = base_model(LLAMA).unwrap();
        let e = estimate(model, false, 4_000_000, 400_000, 3, 2);
        assert_eq!(e.train_tokens, 3_000_000);
        assert_eq!(e.eval_tokens, 200_000);
        assert!((e.price - 3.2 * 0.48).abs() < 1e-9, "{}", e.price);
        assert_eq!(nano_dollars(e.price), 1_536_000_000);
        let full = estimate(model, true, 4_000_000, 0, 1, 0);
        assert!((full.price - 0.54).abs() < 1e-9);
        assert_eq!(tokens_of(5), 2);
    }
}
