//! A pairwise judge's verdicts, turned into one outcome per example.
//!
//! A model asked "which answer is better, A or B?" favours one position
//! (usually the first) more often than chance (Zheng et al. 2023, "Judging
//! LLM-as-a-Judge with MT-Bench and Chatbot Arena", §3.3). So each example
//! is judged twice, once with the candidate's answer as A and once as B,
//! and only a preference that survives the swap counts.

use serde::{Deserialize, Serialize};

/// What the judge said about one presentation: answer A is better, answer
/// B is better, or neither. Serialized as the judge is asked to answer:
/// `"A"`, `"B"`, `"tie"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "A")]
    A,
    #[serde(rename = "B")]
    B,
    #[serde(rename = "tie")]
    Tie,
}

/// The candidate's result on one example, from both orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Win,
    Tie,
    Loss,
}

/// Combines the verdict given with the candidate as A and the one given
/// with the candidate as B.
///
/// Each verdict is +1 for the candidate, −1 for the baseline, 0 for a tie;
/// the outcome is the sign of their sum. So the candidate wins when it is
/// preferred in both orders, or in one with a tie in the other; it loses
/// symmetrically; and it ties when both orders tie or when the two orders
/// disagree (each answer preferred in the position it held: the judge
/// followed the position, not the content). Treating a disagreement as a
/// tie, not as a discarded example, keeps n the number of judged examples
/// and moves the win rate towards 0.5, the cautious direction for gating.
pub fn combine_orders(candidate_as_a: Verdict, candidate_as_b: Verdict) -> Outcome {
    let first = match candidate_as_a {
        Verdict::A => 1,
        Verdict::B => -1,
        Verdict::Tie => 0,
    };
    let second = match candidate_as_b {
        Verdict::B => 1,
        Verdict::A => -1,
        Verdict::Tie => 0,
    };
    match first + second {
        s if s > 0 => Outcome::Win,
        s if s < 0 => Outcome::Loss,
        _ => Outcome::Tie,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{A, B, Tie};

    #[test]
    fn every_pair_of_verdicts_has_its_documented_outcome() {
        // (candidate as A, candidate as B) -> outcome
        let table = [
            (A, B, Outcome::Win),     // preferred in both orders
            (A, Tie, Outcome::Win),   // preferred once, tie once
            (Tie, B, Outcome::Win),   //
            (B, A, Outcome::Loss),    // the baseline preferred in both
            (B, Tie, Outcome::Loss),  //
            (Tie, A, Outcome::Loss),  //
            (Tie, Tie, Outcome::Tie), // no preference
            (A, A, Outcome::Tie),     // always the first position: bias
            (B, B, Outcome::Tie),     // always the second position: bias
        ];
        for (as_a, as_b, expected) in table {
            assert_eq!(combine_orders(as_a, as_b), expected, "{as_a:?} {as_b:?}");
        }
    }

    #[test]
    fn swapping_the_models_swaps_win_and_loss() {
        // The baseline's outcome from the same two judgements: in the
        // first the baseline was B, in the second A.
        for as_a in [A, B, Tie] {
            for as_b in [A, B, Tie] {
                let candidate = combine_orders(as_a, as_b);
                let baseline = combine_orders(as_b, as_a);
                let mirrored = match candidate {
                    Outcome::Win => Outcome::Loss,
                    Outcome::Loss => Outcome::Win,
                    Outcome::Tie => Outcome::Tie,
                };
                assert_eq!(baseline, mirrored);
            }
        }
    }

    #[test]
    fn verdicts_serialize_as_the_judge_says_them_and_outcomes_in_snake_case() {
        assert_eq!(serde_json::to_string(&Verdict::Tie).unwrap(), "\"tie\"");
        assert_eq!(serde_json::to_string(&Verdict::A).unwrap(), "\"A\"");
        assert_eq!(serde_json::to_string(&Outcome::Win).unwrap(), "\"win\"");
    }
}
