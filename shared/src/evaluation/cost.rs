//! What an evaluation will cost in tokens and dollars, recorded in the
//! run's stats before the first call, so a tenant sees the bill
//! of the phase it asked for.
//!
//! Pure arithmetic: the caller counts the sampled prompts' tokens and
//! passes each model's price; no price table lives here, since prices
//! change and differ per provider and per fine-tuned model.
//!
//! It is an upper bound on output: every answer is counted at its
//! `max_tokens`, which is all a bounded request can cost.

use serde::{Deserialize, Serialize};

/// A model's price in USD per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

/// What the sampled examples need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostInputs {
    pub examples: u64,
    /// The prompts' tokens (system, turns and tool definitions) summed
    /// over the sampled examples.
    pub prompt_tokens: u64,
    /// The references' tokens summed over the sampled examples (the judge
    /// reads them).
    pub reference_tokens: u64,
    /// The `max_tokens` each answer is generated with.
    pub max_answer_tokens: u64,
}

/// The judge's share: its price, the tokens of its instructions around
/// each comparison, and the `max_tokens` of its verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeCost {
    pub price: Price,
    pub instruction_tokens: u64,
    pub max_verdict_tokens: u64,
}

/// The estimate, by model and in total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub candidate_usd: f64,
    pub baseline_usd: f64,
    pub judge_usd: f64,
    pub total_usd: f64,
}

/// Candidate and baseline each read every prompt and write at most
/// `max_answer_tokens` per example. A judge, per example and per order
/// (two orders), reads the prompt, the reference, both answers (at most
/// `max_answer_tokens` each) and its instructions, and writes a verdict.
pub fn estimate_cost(
    inputs: &CostInputs,
    candidate: Price,
    baseline: Price,
    judge: Option<&JudgeCost>,
) -> CostEstimate {
    let answer_tokens = inputs.examples.saturating_mul(inputs.max_answer_tokens);
    let usd = |price: Price, input: u64, output: u64| {
        (input as f64 * price.input_per_1k + output as f64 * price.output_per_1k) / 1_000.0
    };
    let candidate_usd = usd(candidate, inputs.prompt_tokens, answer_tokens);
    let baseline_usd = usd(baseline, inputs.prompt_tokens, answer_tokens);
    let mut input_tokens = inputs.prompt_tokens.saturating_mul(2);
    let mut output_tokens = answer_tokens.saturating_mul(2);
    let mut judge_usd = 0.0;
    if let Some(judge) = judge {
        let per_order_input = inputs
            .prompt_tokens
            .saturating_add(inputs.reference_tokens)
            .saturating_add(answer_tokens.saturating_mul(2))
            .saturating_add(inputs.examples.saturating_mul(judge.instruction_tokens));
        let judge_input = per_order_input.saturating_mul(2);
        let judge_output = inputs
            .examples
            .saturating_mul(judge.max_verdict_tokens)
            .saturating_mul(2);
        judge_usd = usd(judge.price, judge_input, judge_output);
        input_tokens = input_tokens.saturating_add(judge_input);
        output_tokens = output_tokens.saturating_add(judge_output);
    }
    CostEstimate {
        input_tokens,
        output_tokens,
        candidate_usd,
        baseline_usd,
        judge_usd,
        total_usd: candidate_usd + baseline_usd + judge_usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUTS: CostInputs = CostInputs {
        examples: 200,
        prompt_tokens: 100_000,
        reference_tokens: 20_000,
        max_answer_tokens: 256,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn two_models_read_every_prompt_and_write_at_most_max_tokens() {
        // GIVEN 200 examples of 500 prompt tokens, answers of <= 256 tokens
        let candidate = Price {
            input_per_1k: 0.0003,
            output_per_1k: 0.0012,
        };
        let baseline = Price {
            input_per_1k: 0.00015,
            output_per_1k: 0.0006,
        };
        // WHEN estimated without a judge
        let estimate = estimate_cost(&INPUTS, candidate, baseline, None);
        // THEN each model reads 100,000 and writes 51,200 tokens
        assert_eq!(estimate.input_tokens, 200_000);
        assert_eq!(estimate.output_tokens, 102_400);
        assert!(close(estimate.candidate_usd, 0.03 + 0.06144));
        assert!(close(estimate.baseline_usd, 0.015 + 0.03072));
        assert_eq!(estimate.judge_usd, 0.0);
        assert!(close(
            estimate.total_usd,
            estimate.candidate_usd + estimate.baseline_usd
        ));
    }

    #[test]
    fn a_judge_reads_prompt_reference_and_both_answers_in_both_orders() {
        let free = Price {
            input_per_1k: 0.0,
            output_per_1k: 0.0,
        };
        let judge = JudgeCost {
            price: Price {
                input_per_1k: 0.002,
                output_per_1k: 0.008,
            },
            instruction_tokens: 150,
            max_verdict_tokens: 5,
        };
        let estimate = estimate_cost(&INPUTS, free, free, Some(&judge));
        // per order: 100,000 + 20,000 + 2 x 51,200 + 200 x 150 = 252,400
        let judge_input = 2 * 252_400;
        let judge_output = 2 * 200 * 5;
        assert_eq!(estimate.input_tokens, 200_000 + judge_input);
        assert_eq!(estimate.output_tokens, 102_400 + judge_output);
        assert!(close(
            estimate.judge_usd,
            judge_input as f64 * 0.002 / 1_000.0 + judge_output as f64 * 0.008 / 1_000.0
        ));
        assert!(close(estimate.total_usd, estimate.judge_usd));
    }

    #[test]
    fn no_examples_cost_nothing() {
        let price = Price {
            input_per_1k: 1.0,
            output_per_1k: 1.0,
        };
        let none = CostInputs {
            examples: 0,
            prompt_tokens: 0,
            reference_tokens: 0,
            max_answer_tokens: 256,
        };
        let estimate = estimate_cost(&none, price, price, None);
        assert_eq!(estimate.total_usd, 0.0);
        assert_eq!(estimate.input_tokens + estimate.output_tokens, 0);
    }
}
