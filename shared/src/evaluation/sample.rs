//! Which lines of the validation file are evaluated.
//!
//! The choice must be the same every time the evaluating phase resumes (a
//! crash or a tick's deadline must not move it to other examples, or
//! answers already paid for would be wasted) and must depend on nothing but
//! the run's seed and the file's length: not on a library's random number
//! generator, whose output may change between versions. So each line gets a
//! key, the first 8 bytes of SHA-256(seed ‖ index) (both little-endian
//! u64), and the `k` lines with the smallest keys are taken: a uniform
//! sample without replacement, since SHA-256's output is indistinguishable
//! from random for distinct inputs.

use sha2::{Digest, Sha256};

/// `evaluation.max_examples` when the run does not say: enough examples
/// for a paired comparison to decide, few enough to keep its cost small.
pub const DEFAULT_MAX_EXAMPLES: usize = 200;

/// Up to `max_examples` of the line indices `0..n`, chosen by `seed`, in
/// file order (so the phase can read the file once, front to back). Takes
/// every line when `max_examples >= n`.
pub fn sample_indices(seed: u64, n: usize, max_examples: usize) -> Vec<usize> {
    if max_examples >= n {
        return (0..n).collect();
    }
    if max_examples == 0 {
        return Vec::new();
    }
    let mut keyed: Vec<(u64, usize)> = (0..n).map(|i| (key(seed, i), i)).collect();
    // (key, index) is a total order, so ties of the 64-bit key (never seen
    // in practice) still give one answer.
    keyed.select_nth_unstable(max_examples - 1);
    let mut chosen: Vec<usize> = keyed[..max_examples].iter().map(|&(_, i)| i).collect();
    chosen.sort_unstable();
    chosen
}

fn key(seed: u64, index: usize) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update((index as u64).to_le_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_same_seed_chooses_the_same_lines() {
        assert_eq!(
            sample_indices(42, 1_000, 200),
            sample_indices(42, 1_000, 200)
        );
    }

    #[test]
    fn different_seeds_choose_different_lines() {
        assert_ne!(sample_indices(1, 1_000, 200), sample_indices(2, 1_000, 200));
    }

    #[test]
    fn a_file_no_longer_than_the_limit_is_taken_whole() {
        assert_eq!(sample_indices(7, 5, 200), [0, 1, 2, 3, 4]);
        assert_eq!(sample_indices(7, 200, 200), (0..200).collect::<Vec<_>>());
        assert!(sample_indices(7, 0, 200).is_empty());
        assert!(sample_indices(7, 10, 0).is_empty());
    }

    #[test]
    fn the_choice_is_spread_over_the_whole_file() {
        // 200 of 10,000: a uniform sample has about 100 in each half; a
        // count outside 60..140 would take a 5.7-sigma accident.
        let chosen = sample_indices(42, 10_000, 200);
        let first_half = chosen.iter().filter(|&&i| i < 5_000).count();
        assert!((60..140).contains(&first_half), "{first_half}");
    }

    #[test]
    fn the_key_is_pinned_so_a_resumed_evaluation_picks_the_same_lines() {
        // Computed independently with Python's hashlib (the 5 smallest of
        // int.from_bytes(sha256(pack('<QQ', 42, i))[:8], 'little')); a
        // change here would make runs evaluated before it resume on
        // different lines.
        assert_eq!(sample_indices(42, 20, 5), [1, 4, 5, 9, 19]);
    }

    proptest! {
        #[test]
        fn a_sample_is_k_distinct_indices_in_file_order(
            seed: u64, n in 0usize..500, k in 0usize..600
        ) {
            let chosen = sample_indices(seed, n, k);
            prop_assert_eq!(chosen.len(), k.min(n));
            prop_assert!(chosen.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(chosen.iter().all(|&i| i < n));
            prop_assert_eq!(&chosen, &sample_indices(seed, n, k));
        }

        #[test]
        fn a_larger_sample_contains_the_smaller_one(seed: u64, n in 1usize..300, k in 0usize..300) {
            // Growing max_examples later only adds lines: answers already
            // stored for the smaller sample stay useful.
            let small = sample_indices(seed, n, k);
            let large = sample_indices(seed, n, k + 10);
            prop_assert!(small.iter().all(|i| large.contains(i)));
        }
    }
}
