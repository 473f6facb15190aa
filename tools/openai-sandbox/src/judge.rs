//! The sandbox's text similarity and its pairwise-judge convention.
//!
//! # Similarity
//!
//! [`similarity`] is the Jaccard index of the two texts' sets of character
//! trigrams, after lower-casing, turning every non-alphanumeric character
//! into a space, collapsing whitespace and padding with one space at each
//! end (so one-word texts still have trigrams). It is symmetric, in
//! `[0, 1]`, 1 for texts equal after normalisation. Fine-tuned models use
//! it to find their nearest training conversation, the judge to compare
//! answers with the reference. It is deliberately not the evaluation's
//! metric: the sandbox must not grade with the ruler it is graded by.
//!
//! # Judge convention
//!
//! Any model the sandbox serves acts as a pairwise judge when a request's
//! messages hold, in any message, the three blocks
//!
//! ```text
//! [REFERENCE] … [/REFERENCE]
//! [ANSWER A] … [/ANSWER A]
//! [ANSWER B] … [/ANSWER B]
//! ```
//!
//! (markers [`REFERENCE_OPEN`] … [`ANSWER_B_CLOSE`]; each block's text is
//! trimmed). The prompt asks for exactly `A`, `B` or `TIE`
//! ([`VERDICT_A`], [`VERDICT_B`], [`VERDICT_TIE`]), and the sandbox answers
//! with exactly one of them: the answer whose [`similarity`] to the
//! reference is higher, `TIE` when the two differ by at most
//! [`TIE_EPSILON`]. Swapping the answers swaps the verdict, so asking in
//! both orders (to cancel a real judge's position bias) gives consistent
//! verdicts here. Anything else in the prompt (the conversation, the
//! instructions) is ignored; [`judge_prompt`] writes a prompt that follows
//! the convention and that a real model can follow too.

use std::collections::HashSet;

pub const REFERENCE_OPEN: &str = "[REFERENCE]";
pub const REFERENCE_CLOSE: &str = "[/REFERENCE]";
pub const ANSWER_A_OPEN: &str = "[ANSWER A]";
pub const ANSWER_A_CLOSE: &str = "[/ANSWER A]";
pub const ANSWER_B_OPEN: &str = "[ANSWER B]";
pub const ANSWER_B_CLOSE: &str = "[/ANSWER B]";
pub const VERDICT_A: &str = "A";
pub const VERDICT_B: &str = "B";
pub const VERDICT_TIE: &str = "TIE";
/// Similarities this close to each other are a tie.
pub const TIE_EPSILON: f64 = 0.01;

/// A judge prompt following the convention: the conversation, the
/// reference and both answers, each in its block, and the instruction to
/// answer with exactly `A`, `B` or `TIE`.
pub fn judge_prompt(conversation: &str, reference: &str, answer_a: &str, answer_b: &str) -> String {
    format!(
        "You compare two answers to the last turn of a conversation with a reference answer.\n\
         Conversation:\n{conversation}\n\n\
         {REFERENCE_OPEN}\n{reference}\n{REFERENCE_CLOSE}\n\n\
         {ANSWER_A_OPEN}\n{answer_a}\n{ANSWER_A_CLOSE}\n\n\
         {ANSWER_B_OPEN}\n{answer_b}\n{ANSWER_B_CLOSE}\n\n\
         Which answer is closer in meaning and content to the reference? \
         Reply with exactly {VERDICT_A}, {VERDICT_B} or {VERDICT_TIE}."
    )
}

/// The three blocks of a judge prompt, when `text` holds all of them.
pub(crate) struct JudgeBlocks<'a> {
    pub reference: &'a str,
    pub answer_a: &'a str,
    pub answer_b: &'a str,
}

fn block<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].trim())
}

pub(crate) fn parse(text: &str) -> Option<JudgeBlocks<'_>> {
    Some(JudgeBlocks {
        reference: block(text, REFERENCE_OPEN, REFERENCE_CLOSE)?,
        answer_a: block(text, ANSWER_A_OPEN, ANSWER_A_CLOSE)?,
        answer_b: block(text, ANSWER_B_OPEN, ANSWER_B_CLOSE)?,
    })
}

/// The verdict on a parsed judge prompt.
pub(crate) fn verdict(blocks: &JudgeBlocks<'_>) -> &'static str {
    let reference = Trigrams::of(blocks.reference);
    let a = reference.similarity(&Trigrams::of(blocks.answer_a));
    let b = reference.similarity(&Trigrams::of(blocks.answer_b));
    if (a - b).abs() <= TIE_EPSILON {
        VERDICT_TIE
    } else if a > b {
        VERDICT_A
    } else {
        VERDICT_B
    }
}

/// A text's normalised character trigrams (see the module doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct Trigrams(HashSet<[char; 3]>);

impl Trigrams {
    pub fn of(text: &str) -> Self {
        let mut normalised = vec![' '];
        for c in text.chars().flat_map(char::to_lowercase) {
            let c = if c.is_alphanumeric() { c } else { ' ' };
            if !(c == ' ' && normalised.last() == Some(&' ')) {
                normalised.push(c);
            }
        }
        if normalised.last() != Some(&' ') {
            normalised.push(' ');
        }
        if normalised.len() < 3 {
            return Self::default();
        }
        Self(normalised.windows(3).map(|w| [w[0], w[1], w[2]]).collect())
    }

    /// Jaccard index; two empty sets are equal (1), one empty set shares
    /// nothing (0).
    pub fn similarity(&self, other: &Self) -> f64 {
        if self.0.is_empty() && other.0.is_empty() {
            return 1.0;
        }
        let (small, large) = if self.0.len() <= other.0.len() {
            (&self.0, &other.0)
        } else {
            (&other.0, &self.0)
        };
        let shared = small.iter().filter(|t| large.contains(*t)).count();
        let union = self.0.len() + other.0.len() - shared;
        shared as f64 / union as f64
    }
}

/// The sandbox's similarity of two texts (see the module doc).
pub fn similarity(a: &str, b: &str) -> f64 {
    Trigrams::of(a).similarity(&Trigrams::of(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_ignores_case_and_punctuation_and_orders_texts_sensibly() {
        assert_eq!(similarity("Order 5 ships!", "order 5 ships"), 1.0);
        assert_eq!(similarity("", ""), 1.0);
        assert_eq!(similarity("abc", ""), 0.0);
        let reference = "Order 57 ships tomorrow.";
        assert!(
            similarity(reference, "Order 5 ships tomorrow.")
                > similarity(reference, "Thanks for your message.")
        );
        assert_eq!(
            similarity("a b c", "x y z"),
            similarity("x y z", "a b c"),
            "symmetric"
        );
    }

    #[test]
    fn a_prompt_missing_any_block_is_not_a_judge_prompt() {
        let full = judge_prompt("user: hi", "ref", "one", "two");
        let blocks = parse(&full).expect("all blocks");
        assert_eq!(
            (blocks.reference, blocks.answer_a, blocks.answer_b),
            ("ref", "one", "two")
        );
        assert!(parse(&full.replace(ANSWER_B_CLOSE, "")).is_none());
        assert!(parse("[REFERENCE] x [/REFERENCE] [ANSWER A] y [/ANSWER A]").is_none());
    }

    #[test]
    fn the_verdict_follows_the_nearer_answer_and_swaps_with_the_order() {
        let near = "Order 57 ships tomorrow.";
        let far = "I cannot help with that.";
        let reference = "Order 57 ships tomorrow morning.";
        let ab = judge_prompt("", reference, near, far);
        let ba = judge_prompt("", reference, far, near);
        assert_eq!(verdict(&parse(&ab).unwrap()), VERDICT_A);
        assert_eq!(verdict(&parse(&ba).unwrap()), VERDICT_B);
        let same = judge_prompt("", reference, near, near);
        assert_eq!(verdict(&parse(&same).unwrap()), VERDICT_TIE);
    }
}
