//! What a run asks of its evaluation and activation, and what the
//! evaluation found: the records the evaluating phase writes on the run
//! and on its model. The arithmetic is in `crate::evaluation`.

use serde::{Deserialize, Serialize};

use crate::evaluation::{Decision, Difference, Summary};

/// The examples an evaluation samples when the run does not say.
pub const DEFAULT_EVALUATION_EXAMPLES: u32 = 200;
/// The most examples an evaluation may sample: two answers each, and the
/// judge's two verdicts, stay within a few monitor ticks.
pub const MAX_EVALUATION_EXAMPLES: u32 = 1000;
/// The longest answer asked of a model when the run does not say.
pub const DEFAULT_ANSWER_TOKENS: u32 = 512;
/// The longest answer a run may ask for.
pub const MAX_ANSWER_TOKENS: u32 = 4096;

/// `config.evaluation` on `POST /runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// `false` skips the evaluating phase (and with it any decision).
    #[serde(default = "EvaluationConfig::default_enabled")]
    pub enabled: bool,
    /// Validation examples sampled (seeded by the run's seed).
    #[serde(default = "EvaluationConfig::default_max_examples")]
    pub max_examples: u32,
    /// The `max_tokens` of every answer.
    #[serde(default = "EvaluationConfig::default_max_tokens")]
    pub max_tokens: u32,
    /// A model of the run's provider that compares both answers with the
    /// reference, in both orders; none: the text metric decides alone.
    #[serde(default)]
    pub judge_model: Option<String>,
}

impl EvaluationConfig {
    fn default_enabled() -> bool {
        true
    }
    fn default_max_examples() -> u32 {
        DEFAULT_EVALUATION_EXAMPLES
    }
    fn default_max_tokens() -> u32 {
        DEFAULT_ANSWER_TOKENS
    }

    /// Every rule the config breaks, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=MAX_EVALUATION_EXAMPLES).contains(&self.max_examples) {
            problems.push((
                "config.evaluation.max_examples",
                format!("must be between 1 and {MAX_EVALUATION_EXAMPLES}"),
            ));
        }
        if !(1..=MAX_ANSWER_TOKENS).contains(&self.max_tokens) {
            problems.push((
                "config.evaluation.max_tokens",
                format!("must be between 1 and {MAX_ANSWER_TOKENS}"),
            ));
        }
        if let Some(judge) = &self.judge_model
            && (judge.trim().is_empty() || judge.len() > 256)
        {
            problems.push((
                "config.evaluation.judge_model",
                "must be a model id of 1 to 256 characters".to_owned(),
            ));
        }
        problems
    }
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            enabled: Self::default_enabled(),
            max_examples: Self::default_max_examples(),
            max_tokens: Self::default_max_tokens(),
            judge_model: None,
        }
    }
}

/// `config.activation`: what happens to the tenant's active model when
/// the run completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActivationPolicy {
    /// Never by itself: `POST /models/{id}/activate` decides.
    Manual,
    /// Only when the evaluation's decision is `better`.
    #[default]
    IfBetter,
    /// Whatever the evaluation found (it still runs, and is on record).
    Always,
}

impl ActivationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationPolicy::Manual => "manual",
            ActivationPolicy::IfBetter => "if_better",
            ActivationPolicy::Always => "always",
        }
    }
}

/// `config.serving`: who serves the trained model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServingChoice {
    /// The provider, on demand (Bedrock: a custom model deployment this
    /// service creates). A base model the provider cannot serve on demand
    /// is refused at `POST /runs`.
    #[default]
    OnDemand,
    /// The tenant (e.g. Provisioned Throughput it buys): no deployment is
    /// made, and so nothing can be evaluated here.
    SelfManaged,
}

impl ServingChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ServingChoice::OnDemand => "on_demand",
            ServingChoice::SelfManaged => "self_managed",
        }
    }
}

/// Where an evaluation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationStatus {
    /// Planned and answering (the figures come with `completed`).
    Running,
    Completed,
    /// Not run: `reason` says why.
    Skipped,
}

/// What the run's activation policy did once its evaluation had decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationDecision {
    /// The model became the tenant's active model.
    Activated,
    /// The policy said no (`manual`, or `if_better` without `better`), or
    /// the model could not be (not ready).
    NotActivated,
    /// The policy said yes, but the tenant's active model was no longer
    /// the evaluation's baseline: another was activated while it ran, and
    /// that newer choice stands ("baseline changed, not activated").
    BaselineChanged,
}

impl ActivationDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationDecision::Activated => "activated",
            ActivationDecision::NotActivated => "not_activated",
            ActivationDecision::BaselineChanged => "baseline_changed",
        }
    }
}

/// A model and its mean score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredModel {
    pub model: String,
    #[serde(default)]
    pub score: Option<f64>,
}

/// The evaluation as the run and its model carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub status: EvaluationStatus,
    /// Examples sampled (`running`) or scored (`completed`).
    pub examples: u64,
    pub candidate: ScoredModel,
    pub baseline: ScoredModel,
    #[serde(default)]
    pub difference: Option<Difference>,
    #[serde(default)]
    pub win_rate: Option<f64>,
    #[serde(default)]
    pub win_rate_ci: Option<[f64; 2]>,
    #[serde(default)]
    pub judge_model: Option<String>,
    #[serde(default)]
    pub decision: Option<Decision>,
    /// The upper bound of what the evaluation's calls cost, recorded
    /// before the first one.
    pub estimated_cost_usd: f64,
    /// What the calls cost, from the tokens each provider billed at the
    /// models' prices, once the evaluation completed (`null` before, and
    /// for an evaluation planned before prices were kept): what the
    /// tenant's month is settled with.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Why it was skipped.
    #[serde(default)]
    pub reason: Option<String>,
    /// What the activation policy did with the decision (`null` until the
    /// evaluation ends).
    #[serde(default)]
    pub activation: Option<ActivationDecision>,
}

impl EvaluationRecord {
    /// An evaluation that did not run, and why.
    pub fn skipped(candidate: &str, reason: impl Into<String>) -> Self {
        Self {
            status: EvaluationStatus::Skipped,
            examples: 0,
            candidate: ScoredModel {
                model: candidate.to_owned(),
                score: None,
            },
            baseline: ScoredModel {
                model: String::new(),
                score: None,
            },
            difference: None,
            win_rate: None,
            win_rate_ci: None,
            judge_model: None,
            decision: None,
            estimated_cost_usd: 0.0,
            cost_usd: None,
            reason: Some(reason.into()),
            activation: None,
        }
    }

    /// A finished evaluation's record.
    pub fn completed(summary: &Summary, estimated_cost_usd: f64) -> Self {
        Self {
            status: EvaluationStatus::Completed,
            examples: summary.examples as u64,
            candidate: ScoredModel {
                model: summary.candidate.model.clone(),
                score: Some(summary.candidate.score),
            },
            baseline: ScoredModel {
                model: summary.baseline.model.clone(),
                score: Some(summary.baseline.score),
            },
            difference: Some(summary.difference),
            win_rate: summary.win_rate,
            win_rate_ci: summary.win_rate_ci,
            judge_model: summary.judge_model.clone(),
            decision: Some(summary.decision),
            estimated_cost_usd,
            cost_usd: None,
            reason: None,
            activation: None,
        }
    }

    /// A sentence with the figures: what a 409 on activation and the run's
    /// phase say.
    pub fn figures(&self) -> String {
        let decision = self.decision.map_or("no decision", Decision::as_str);
        let mut text = format!(
            "{decision} on {} examples: {} scored {} against {} for {}",
            self.examples,
            self.candidate.model,
            score(self.candidate.score),
            score(self.baseline.score),
            self.baseline.model,
        );
        if let Some(d) = &self.difference {
            text.push_str(&format!(
                " (difference {:+.3}, 95% interval [{:+.3}, {:+.3}])",
                d.mean, d.ci_low, d.ci_high
            ));
        }
        if let (Some(rate), Some([low, high])) = (self.win_rate, self.win_rate_ci) {
            text.push_str(&format!("; judge win rate {rate:.2} [{low:.2}, {high:.2}]"));
        }
        text
    }
}

fn score(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}
