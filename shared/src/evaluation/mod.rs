//! The pure core of a run's evaluation: is the newly trained
//! model better than what the tenant has?
//!
//! Nothing here does I/O. The evaluating phase reads the run's held-out
//! validation file, calls the models and stores rows; it calls into these
//! modules for every decision that must be reproducible from the stored
//! figures alone:
//!
//! 1. [`sample::sample_indices`]: which lines of the validation file are
//!    evaluated (seeded, so a resumed evaluation picks the same ones);
//! 2. [`example::parse_example`]: a line to a prompt and its reference
//!    answer, in either dataset format;
//! 3. [`cost::estimate_cost`]: the token bill, recorded before any call;
//! 4. [`score::score_answer`]: each model's answer against the reference
//!    (chrF for text, exact match for a tool call);
//! 5. [`judge::combine_orders`]: an optional pairwise judge's two verdicts
//!    (both orders) to one outcome per example;
//! 6. [`decision::summarize`]: means, the paired difference with a seeded
//!    bootstrap interval ([`stats`]), the judge's win rate with its Wilson
//!    interval, and the [`decision::Decision`] that gates activation.
//!
//! Every score is on a 0..1 scale (sacrebleu prints chrF x 100).

pub mod cost;
pub mod decision;
pub mod example;
pub mod judge;
pub mod row;
pub mod sample;
pub mod score;
pub mod stats;

pub use cost::{CostEstimate, CostInputs, JudgeCost, Price, estimate_cost};
pub use decision::{
    Decision, EvaluationInput, JudgeInput, MIN_DECISIVE_EXAMPLES, ModelScore, Summary,
    SummaryError, summarize,
};
pub use example::{EvalExample, ExampleError, Reference, Role, ToolCall, Turn, parse_example};
pub use judge::{Outcome, Verdict, combine_orders};
pub use sample::{DEFAULT_MAX_EXAMPLES, sample_indices};
pub use score::{Answer, Chrf, chrf, score_answer};
pub use stats::{
    DEFAULT_RESAMPLES, Difference, PairedComparison, PairedScore, StatsError, WinRate, Z_95,
    paired_bootstrap, wilson_interval, win_rate,
};
