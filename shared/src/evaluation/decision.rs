//! The evaluation's verdict: is the candidate better than the baseline,
//! with error bars, and the summary the run and the model record carry.

use serde::{Deserialize, Serialize};

use super::judge::Outcome;
use super::stats::{
    DEFAULT_RESAMPLES, Difference, PairedScore, StatsError, WinRate, paired_bootstrap, win_rate,
};

/// What the evaluation concluded; `if_better` activation acts only on
/// `Better`, and activating a `Worse` model needs `force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Better,
    Worse,
    Inconclusive,
}

/// Fewer examples than this never decide: with a handful of examples a
/// percentile bootstrap interval is too narrow to trust (three small
/// improvements give an interval above zero however noisy the metric),
/// and activating on a handful of answers is the expensive mistake the
/// gate exists to prevent. Such a run is `inconclusive`: `if_better`
/// keeps the previous model, `manual`/`always` and `activate` still work.
pub const MIN_DECISIVE_EXAMPLES: usize = 10;

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Better => "better",
            Decision::Worse => "worse",
            Decision::Inconclusive => "inconclusive",
        }
    }

    /// The metric's verdict: `Better` when the difference's 95% interval
    /// lies entirely above zero, `Worse` when entirely below.
    pub fn from_difference(difference: &Difference, examples: usize) -> Self {
        if examples < MIN_DECISIVE_EXAMPLES {
            Decision::Inconclusive
        } else if difference.ci_low > 0.0 {
            Decision::Better
        } else if difference.ci_high < 0.0 {
            Decision::Worse
        } else {
            Decision::Inconclusive
        }
    }

    /// The judge's verdict: `Better` when the win rate's 95% interval lies
    /// entirely above 0.5, `Worse` when entirely below.
    pub fn from_win_rate(rate: &WinRate) -> Self {
        if rate.n < MIN_DECISIVE_EXAMPLES as u64 {
            Decision::Inconclusive
        } else if rate.ci_low > 0.5 {
            Decision::Better
        } else if rate.ci_high < 0.5 {
            Decision::Worse
        } else {
            Decision::Inconclusive
        }
    }

    /// The run's decision from the metric's and, when one ran, the judge's.
    ///
    /// Without a judge the metric decides. With one, the judge decides and
    /// the metric can only veto: a judge's `Better` against the metric's
    /// `Worse` (or the reverse) is `Inconclusive`. Why the judge leads: it
    /// reads meaning, so a correct answer phrased unlike the reference,
    /// which chrF punishes, still counts, and a tenant pays for a judge to
    /// get that. Why the metric may veto: a judge is a model with biases of
    /// its own (longer answers, its own family's style), and when a
    /// deterministic measure confidently says the opposite the evidence
    /// disagrees; `Inconclusive` neither activates the model nor blocks a
    /// deliberate activation, the safe outcome of a disagreement.
    pub fn combine(metric: Decision, judge: Option<Decision>) -> Self {
        match (judge, metric) {
            (None, metric) => metric,
            (Some(Decision::Better), Decision::Worse)
            | (Some(Decision::Worse), Decision::Better) => Decision::Inconclusive,
            (Some(judge), _) => judge,
        }
    }
}

/// A model and its mean score (0..1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    pub model: String,
    pub score: f64,
}

/// The figures the run JSON and the model record show a tenant
/// (`status` and `estimated_cost_usd` belong to the phase, which adds
/// them). The judge's fields are `null` when no judge ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Examples scored by both models (the issue's `n`).
    pub examples: usize,
    pub candidate: ModelScore,
    pub baseline: ModelScore,
    /// Candidate − baseline, mean and 95% bootstrap interval.
    pub difference: Difference,
    /// (wins + ties/2) / judged examples.
    #[serde(default)]
    pub win_rate: Option<f64>,
    /// The win rate's 95% Wilson interval, `[low, high]`.
    #[serde(default)]
    pub win_rate_ci: Option<[f64; 2]>,
    #[serde(default)]
    pub judge_model: Option<String>,
    pub decision: Decision,
}

/// What the evaluating phase has collected when every example is done.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInput<'a> {
    pub candidate_model: &'a str,
    pub baseline_model: &'a str,
    /// One per example, in any order (the bootstrap resamples them).
    pub scores: &'a [PairedScore],
    pub judge: Option<JudgeInput<'a>>,
    /// The run's seed: the same stored scores always give the same
    /// interval, so a recomputed summary matches the recorded one.
    pub seed: u64,
}

/// The judge's model and its combined outcome per judged example (see
/// [`super::judge::combine_orders`]); examples the judge could not judge
/// are simply left out.
#[derive(Debug, Clone, Copy)]
pub struct JudgeInput<'a> {
    pub model: &'a str,
    pub outcomes: &'a [Outcome],
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SummaryError {
    #[error("the metric's comparison failed: {0}")]
    Metric(#[source] StatsError),
    #[error("the judge's win rate failed: {0}")]
    Judge(#[source] StatsError),
}

/// The summary and decision of a finished evaluation.
pub fn summarize(input: &EvaluationInput<'_>) -> Result<Summary, SummaryError> {
    let comparison = paired_bootstrap(input.scores, input.seed, DEFAULT_RESAMPLES)
        .map_err(SummaryError::Metric)?;
    let metric = Decision::from_difference(&comparison.difference, comparison.n);
    let judged = match input.judge {
        Some(judge) => Some((
            judge.model,
            win_rate(judge.outcomes).map_err(SummaryError::Judge)?,
        )),
        None => None,
    };
    let decision = Decision::combine(
        metric,
        judged
            .as_ref()
            .map(|(_, rate)| Decision::from_win_rate(rate)),
    );
    Ok(Summary {
        examples: comparison.n,
        candidate: ModelScore {
            model: input.candidate_model.to_owned(),
            score: comparison.candidate_mean,
        },
        baseline: ModelScore {
            model: input.baseline_model.to_owned(),
            score: comparison.baseline_mean,
        },
        difference: comparison.difference,
        win_rate: judged.as_ref().map(|(_, rate)| rate.rate),
        win_rate_ci: judged.as_ref().map(|(_, rate)| [rate.ci_low, rate.ci_high]),
        judge_model: judged.map(|(model, _)| model.to_owned()),
        decision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Better, Inconclusive, Worse};
    use serde_json::json;

    fn scores(pairs: &[(f64, f64)]) -> Vec<PairedScore> {
        pairs
            .iter()
            .map(|&(candidate, baseline)| PairedScore {
                candidate,
                baseline,
            })
            .collect()
    }

    fn interval(ci_low: f64, ci_high: f64) -> Difference {
        Difference {
            mean: (ci_low + ci_high) / 2.0,
            ci_low,
            ci_high,
        }
    }

    fn input<'a>(scores: &'a [PairedScore], judge: Option<JudgeInput<'a>>) -> EvaluationInput<'a> {
        EvaluationInput {
            candidate_model: "ft:gpt-4o-mini:acme::abc",
            baseline_model: "gpt-4o-mini",
            scores,
            judge,
            seed: 42,
        }
    }

    #[test]
    fn the_metric_decides_by_where_its_interval_lies() {
        assert_eq!(Decision::from_difference(&interval(0.01, 0.2), 50), Better);
        assert_eq!(Decision::from_difference(&interval(-0.2, -0.01), 50), Worse);
        assert_eq!(
            Decision::from_difference(&interval(-0.1, 0.2), 50),
            Inconclusive
        );
        assert_eq!(
            Decision::from_difference(&interval(0.0, 0.2), 50),
            Inconclusive
        );
    }

    #[test]
    fn too_few_examples_never_decide() {
        assert_eq!(
            Decision::from_difference(&interval(0.3, 0.5), 9),
            Inconclusive
        );
        assert_eq!(Decision::from_difference(&interval(0.3, 0.5), 10), Better);
    }

    #[test]
    fn the_judge_decides_by_where_the_win_rate_interval_lies() {
        let rate = |wins: u64, losses: u64| {
            let outcomes: Vec<Outcome> = (0..wins)
                .map(|_| Outcome::Win)
                .chain((0..losses).map(|_| Outcome::Loss))
                .collect();
            Decision::from_win_rate(&win_rate(&outcomes).unwrap())
        };
        // 8/10: Wilson [0.490, 0.943] still reaches below 0.5.
        assert_eq!(rate(8, 2), Inconclusive);
        assert_eq!(rate(9, 1), Better);
        assert_eq!(rate(1, 9), Worse);
    }

    #[test]
    fn the_judge_leads_and_the_metric_vetoes_a_contradiction() {
        let table = [
            (Better, None, Better),
            (Worse, None, Worse),
            (Inconclusive, None, Inconclusive),
            (Inconclusive, Some(Better), Better),
            (Better, Some(Better), Better),
            (Worse, Some(Better), Inconclusive),
            (Inconclusive, Some(Worse), Worse),
            (Better, Some(Worse), Inconclusive),
            (Better, Some(Inconclusive), Inconclusive),
            (Worse, Some(Inconclusive), Inconclusive),
        ];
        for (metric, judge, expected) in table {
            assert_eq!(
                Decision::combine(metric, judge),
                expected,
                "{metric:?} {judge:?}"
            );
        }
    }

    #[test]
    fn a_clearly_better_candidate_is_summarized_as_better() {
        // GIVEN 40 examples where the fine-tune is ahead by 0.3 to 0.5
        let pairs: Vec<(f64, f64)> = (0..40)
            .map(|i| (0.6 + f64::from(i % 3) * 0.1, 0.3))
            .collect();
        let scores = scores(&pairs);
        // WHEN summarized without a judge
        let summary = summarize(&input(&scores, None)).unwrap();
        // THEN the figures and the decision say so
        assert_eq!(summary.examples, 40);
        assert_eq!(summary.decision, Better);
        assert!(summary.candidate.score > summary.baseline.score);
        assert!(summary.difference.ci_low > 0.3 && summary.difference.ci_high < 0.5);
        assert_eq!(summary.win_rate, None);
        assert_eq!(summary.judge_model, None);
    }

    #[test]
    fn a_judge_that_prefers_the_baseline_makes_it_worse() {
        let scores = scores(&[(0.5, 0.5); 30]);
        let outcomes: Vec<Outcome> = (0..30)
            .map(|i| if i < 25 { Outcome::Loss } else { Outcome::Tie })
            .collect();
        let judge = JudgeInput {
            model: "gpt-4.1",
            outcomes: &outcomes,
        };
        let summary = summarize(&input(&scores, Some(judge))).unwrap();
        assert_eq!(summary.decision, Worse);
        assert_eq!(summary.judge_model.as_deref(), Some("gpt-4.1"));
        let rate = summary.win_rate.unwrap();
        assert!((rate - 2.5 / 30.0).abs() < 1e-12);
        let [low, high] = summary.win_rate_ci.unwrap();
        assert!(low < rate && rate < high && high < 0.5);
    }

    #[test]
    fn the_summary_has_the_issues_json_shape() {
        let scores = scores(&[(0.8, 0.4), (0.7, 0.5)]);
        let outcomes = [Outcome::Win, Outcome::Tie];
        let judge = JudgeInput {
            model: "gpt-4.1",
            outcomes: &outcomes,
        };
        let summary = summarize(&input(&scores, Some(judge))).unwrap();
        let value = serde_json::to_value(&summary).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "examples",
            "candidate",
            "baseline",
            "difference",
            "win_rate",
            "win_rate_ci",
            "judge_model",
            "decision",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(value["candidate"]["model"], "ft:gpt-4o-mini:acme::abc");
        assert_eq!(value["baseline"]["model"], "gpt-4o-mini");
        assert_eq!(value["decision"], json!("inconclusive"));
        assert!(value["difference"]["ci_low"].is_number());
        assert_eq!(value["win_rate_ci"].as_array().unwrap().len(), 2);
        let back: Summary = serde_json::from_value(value).unwrap();
        assert_eq!(back, summary);
    }

    #[test]
    fn nothing_to_summarize_is_an_error() {
        assert_eq!(
            summarize(&input(&[], None)),
            Err(SummaryError::Metric(StatsError::NoExamples))
        );
        let scores = scores(&[(0.5, 0.5)]);
        let judge = JudgeInput {
            model: "j",
            outcomes: &[],
        };
        assert_eq!(
            summarize(&input(&scores, Some(judge))),
            Err(SummaryError::Judge(StatsError::NoExamples))
        );
    }
}
