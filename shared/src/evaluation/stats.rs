//! The error bars: a paired bootstrap interval for the metric's mean
//! difference and a Wilson interval for the judge's win rate.
//!
//! Both models answer the same examples, so the comparison is paired: the
//! interval is over the mean of per-example differences (candidate −
//! baseline), which removes the examples' own difficulty from the noise
//! and is far narrower than comparing two independent means.

use serde::{Deserialize, Serialize};

use super::judge::Outcome;

/// Bootstrap resamples: 2,000 puts the 2.5th and 97.5th percentiles on
/// ~50 resamples each, enough for a stable 95% interval (Efron &
/// Tibshirani 1993 suggest >= 1,000 for percentile intervals), and costs
/// 400,000 additions for 200 examples.
pub const DEFAULT_RESAMPLES: usize = 2_000;

/// The standard normal's 97.5% quantile: a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// One example's scores, both on 0..1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedScore {
    pub candidate: f64,
    pub baseline: f64,
}

/// The mean paired difference (candidate − baseline) and its 95%
/// interval; the issue's `difference {mean, ci_low, ci_high}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    pub n: usize,
    pub candidate_mean: f64,
    pub baseline_mean: f64,
    pub difference: Difference,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("there are no examples to compare")]
    NoExamples,
    #[error("example {index}'s score is not a finite number")]
    NotFinite { index: usize },
    #[error("a bootstrap needs at least one resample")]
    NoResamples,
}

/// Means of both models and the percentile-bootstrap 95% interval of the
/// mean paired difference: `resamples` times, draw n examples with
/// replacement and take their mean difference; the interval is the 2.5th
/// and 97.5th percentiles of those means (linear interpolation between
/// order statistics, numpy's default "type 7").
///
/// The draws come from SplitMix64 (Steele, Lea & Flood 2014; Vigna's
/// reference constants) seeded with `seed`, written out here rather than
/// taken from `rand`: `rand` does not promise the same stream across
/// versions, and a recorded interval must be recomputable from the stored
/// scores after any dependency upgrade. An index is drawn as
/// `(x * n) >> 64` (Lemire 2019), whose bias, at most n / 2^64, is nil here.
pub fn paired_bootstrap(
    scores: &[PairedScore],
    seed: u64,
    resamples: usize,
) -> Result<PairedComparison, StatsError> {
    if scores.is_empty() {
        return Err(StatsError::NoExamples);
    }
    if resamples == 0 {
        return Err(StatsError::NoResamples);
    }
    if let Some(index) = scores
        .iter()
        .position(|s| !s.candidate.is_finite() || !s.baseline.is_finite())
    {
        return Err(StatsError::NotFinite { index });
    }
    let n = scores.len();
    let mean = |values: &mut dyn Iterator<Item = f64>| values.sum::<f64>() / n as f64;
    let differences: Vec<f64> = scores.iter().map(|s| s.candidate - s.baseline).collect();
    let mut rng = SplitMix64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| differences[rng.below(n)]).sum();
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Ok(PairedComparison {
        n,
        candidate_mean: mean(&mut scores.iter().map(|s| s.candidate)),
        baseline_mean: mean(&mut scores.iter().map(|s| s.baseline)),
        difference: Difference {
            mean: mean(&mut differences.iter().copied()),
            ci_low: quantile(&means, 0.025),
            ci_high: quantile(&means, 0.975),
        },
    })
}

/// The `p` quantile of sorted, non-empty `values` (type 7).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let below = h.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (h - below as f64) * (sorted[above] - sorted[below])
}

/// SplitMix64: a 64-bit state advanced by the golden-ratio increment and
/// finalised by two xor-shift-multiplies (Vigna's `splitmix64.c`).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// The judge's tally: the issue's `win_rate` = (wins + ties/2) / n with
/// its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    pub n: u64,
    pub wins: u64,
    pub ties: u64,
    pub losses: u64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The candidate's win rate over the judged examples, a tie counting half
/// a win, with the 95% Wilson score interval of `wins + ties/2` successes
/// out of n.
///
/// Counting a tie as half a win keeps 0.5 the point of "no difference"
/// whatever the share of ties. Treating the per-example outcome (0, ½
/// or 1) as a Bernoulli trial overstates its variance: an outcome of ½ with
/// mean p varies less than a 0/1 outcome with the same mean, so the Wilson
/// interval here is conservative (too wide, never too narrow) when there
/// are ties, which is the safe side for gating an activation.
pub fn win_rate(outcomes: &[Outcome]) -> Result<WinRate, StatsError> {
    if outcomes.is_empty() {
        return Err(StatsError::NoExamples);
    }
    let count = |o: Outcome| outcomes.iter().filter(|&&x| x == o).count() as u64;
    let (wins, ties, losses) = (
        count(Outcome::Win),
        count(Outcome::Tie),
        count(Outcome::Loss),
    );
    let n = outcomes.len() as u64;
    let successes = wins as f64 + ties as f64 / 2.0;
    let (ci_low, ci_high) = wilson_interval(successes, n as f64, Z_95);
    Ok(WinRate {
        n,
        wins,
        ties,
        losses,
        rate: successes / n as f64,
        ci_low,
        ci_high,
    })
}

/// Wilson's score interval (Wilson 1927, "Probable inference, the law of
/// succession, and statistical inference", JASA 22:209-212) for
/// `successes` out of `n` at the normal quantile `z`:
///
/// ```text
///   (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n),  p = successes/n
/// ```
///
/// Chosen over the normal ("Wald") interval because it stays inside 0..1
/// and keeps close to its nominal coverage for small n and for rates near
/// 0 or 1 (Newcombe 1998; Brown, Cai & DasGupta 2001), which is where an
/// evaluation of a few dozen examples lands. `(0, 1)` when n is 0.
pub fn wilson_interval(successes: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = (successes / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() < tolerance
    }

    #[test]
    fn splitmix64_gives_the_reference_stream() {
        // Vigna's splitmix64.c seeded with 1234567 (the values other
        // ports, e.g. Java's SplittableRandom tests, check against).
        let mut rng = SplitMix64(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| rng.next()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn wilson_intervals_match_published_values() {
        // 8/10 at z = 1.96: [0.490, 0.943] (the textbook example).
        let (low, high) = wilson_interval(8.0, 10.0, Z_95);
        assert!(
            close(low, 0.490, 1e-3) && close(high, 0.943, 1e-3),
            "{low} {high}"
        );
        // Newcombe 1998 (Statistics in Medicine 17:857-872), Table II,
        // method 3 (score interval without continuity correction).
        for (successes, n, expected_low, expected_high) in [
            (81.0, 263.0, 0.2553, 0.3662),
            (15.0, 148.0, 0.0624, 0.1605),
            (0.0, 20.0, 0.0, 0.1611),
            (1.0, 29.0, 0.0061, 0.1718),
        ] {
            let (low, high) = wilson_interval(successes, n, Z_95);
            assert!(
                close(low, expected_low, 5e-5) && close(high, expected_high, 5e-5),
                "{successes}/{n}: {low} {high}"
            );
        }
    }

    #[test]
    fn ties_count_as_half_a_win() {
        use Outcome::*;
        let outcomes = [Win, Win, Win, Win, Win, Win, Win, Tie, Loss, Loss];
        let rate = win_rate(&outcomes).unwrap();
        assert_eq!((rate.n, rate.wins, rate.ties, rate.losses), (10, 7, 1, 2));
        assert!(close(rate.rate, 0.75, 1e-12));
        // Wilson's interval of 7.5 successes out of 10.
        assert!(close(rate.ci_low, 0.442181, 1e-6), "{}", rate.ci_low);
        assert!(close(rate.ci_high, 0.919052, 1e-6), "{}", rate.ci_high);
    }

    #[test]
    fn no_judged_examples_is_an_error() {
        assert_eq!(win_rate(&[]), Err(StatsError::NoExamples));
    }

    fn pairs(differences: &[f64]) -> Vec<PairedScore> {
        differences
            .iter()
            .map(|&d| PairedScore {
                candidate: 0.5 + d / 2.0,
                baseline: 0.5 - d / 2.0,
            })
            .collect()
    }

    #[test]
    fn the_bootstrap_is_the_same_for_the_same_seed() {
        let scores = pairs(&[0.1, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0, 0.15]);
        let a = paired_bootstrap(&scores, 42, DEFAULT_RESAMPLES).unwrap();
        assert_eq!(a, paired_bootstrap(&scores, 42, DEFAULT_RESAMPLES).unwrap());
        let b = paired_bootstrap(&scores, 43, DEFAULT_RESAMPLES).unwrap();
        assert_ne!(a.difference, b.difference);
        assert_eq!(a.difference.mean, b.difference.mean);
    }

    #[test]
    fn means_are_of_each_model_and_of_the_differences() {
        let scores = [
            PairedScore {
                candidate: 0.9,
                baseline: 0.5,
            },
            PairedScore {
                candidate: 0.7,
                baseline: 0.6,
            },
        ];
        let result = paired_bootstrap(&scores, 1, 100).unwrap();
        assert_eq!(result.n, 2);
        assert!(close(result.candidate_mean, 0.8, 1e-12));
        assert!(close(result.baseline_mean, 0.55, 1e-12));
        assert!(close(result.difference.mean, 0.25, 1e-12));
        // Resampled means of {0.4, 0.1} lie between 0.1 and 0.4.
        assert!(result.difference.ci_low >= 0.1 - 1e-12);
        assert!(result.difference.ci_high <= 0.4 + 1e-12);
    }

    #[test]
    fn the_interval_covers_a_known_mean_most_of_the_time() {
        // GIVEN 200 runs of 100 differences drawn around a true mean of 0.1
        // WHEN each gets its 95% bootstrap interval
        // THEN about 95% of them contain 0.1 (percentile intervals run a
        // little narrow at n = 100; 88% is a wide margin below 95%)
        let mut draws = SplitMix64(99);
        let mut covered = 0;
        for run in 0..200 {
            let differences: Vec<f64> = (0..100)
                .map(|_| 0.1 + (draws.next() as f64 / u64::MAX as f64 - 0.5))
                .collect();
            let ci = paired_bootstrap(&pairs(&differences), run, 1_000)
                .unwrap()
                .difference;
            if ci.ci_low <= 0.1 && 0.1 <= ci.ci_high {
                covered += 1;
            }
        }
        assert!(covered >= 176, "{covered} of 200");
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(paired_bootstrap(&[], 1, 10), Err(StatsError::NoExamples));
        assert_eq!(
            paired_bootstrap(&pairs(&[0.1]), 1, 0),
            Err(StatsError::NoResamples)
        );
        let scores = [
            PairedScore {
                candidate: 0.1,
                baseline: 0.1,
            },
            PairedScore {
                candidate: f64::NAN,
                baseline: 0.1,
            },
        ];
        assert_eq!(
            paired_bootstrap(&scores, 1, 10),
            Err(StatsError::NotFinite { index: 1 })
        );
    }

    proptest! {
        #[test]
        fn all_positive_differences_give_an_interval_above_zero(
            differences in proptest::collection::vec(0.001f64..1.0, 1..60), seed: u64
        ) {
            let d = paired_bootstrap(&pairs(&differences), seed, 500).unwrap().difference;
            prop_assert!(d.ci_low > 0.0);
            prop_assert!(d.ci_low <= d.mean + 1e-12 && d.mean <= d.ci_high + 1e-12);
        }

        #[test]
        fn a_wilson_interval_lies_in_zero_one_around_the_rate(
            n in 1u32..2_000, share in 0.0f64..=1.0
        ) {
            let successes = (f64::from(n) * share).round();
            let (low, high) = wilson_interval(successes, f64::from(n), Z_95);
            let p = successes / f64::from(n);
            prop_assert!(0.0 <= low && low <= p + 1e-12);
            prop_assert!(p - 1e-12 <= high && high <= 1.0);
        }
    }
}
