//! How close an answer is to the reference: chrF for text, exact match
//! for a tool call. Deterministic, so a stored score can be recomputed
//! from the stored answer and reference.
//!
//! chrF (Popović 2015, "chrF: character n-gram F-score for automatic MT
//! evaluation", WMT) is implemented from its definition as sacrebleu 2.x
//! computes it (`sacrebleu/metrics/chrf.py`, the reference implementation
//! the community reports with), with sacrebleu's defaults: character
//! n-grams of orders 1..=6, β = 2 (recall weighs twice precision),
//! whitespace removed before n-grams are taken, no word n-grams (chrF, not
//! chrF++), and the "effective order" averaging: the precision and recall
//! of each order are averaged over the orders that both strings are long
//! enough to have, then combined into one F-score. That averaging is what
//! makes identical strings score 1 however short they are (the epsilon
//! smoothing of chrF++.py scores "a" against "a" 1/6).
//!
//! Why chrF rather than ROUGE-L or BLEU: it needs no tokenizer (answers
//! are in any language, some without spaces), it is robust to inflection
//! and small spelling changes, and it correlates with human judgement at
//! the sentence level better than BLEU (WMT metrics tasks 2015-2017).
//!
//! Scores are on 0..1 here; sacrebleu prints them x 100.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::example::Reference;

/// A model's answer to an example's prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Text {
        text: String,
    },
    /// A tool call; arguments as the API returned them (Chat Completions
    /// sends a JSON string, Converse an object): both are accepted.
    ToolCall {
        name: String,
        arguments: Value,
    },
}

/// The answer's score against the reference, 0..1.
///
/// - Text against text: [`chrf`].
/// - Tool call against a tool-call reference: 1 when the tool's name is
///   the same and the arguments are equal as JSON values (key order,
///   spacing and `1` vs `1.0` do not matter; an argument string that holds
///   JSON is parsed first, on either side), else 0. No partial credit: a
///   call with one wrong argument does the wrong thing.
/// - A text answer to a tool-call reference, or a tool call answering a
///   text reference, is 0: the model did not do what was expected.
pub fn score_answer(reference: &Reference, answer: &Answer) -> f64 {
    match (reference, answer) {
        (Reference::Text { text: expected }, Answer::Text { text }) => chrf(text, expected),
        (
            Reference::ToolCall {
                name: expected_name,
                arguments: expected_args,
            },
            Answer::ToolCall { name, arguments },
        ) => {
            let same =
                name == expected_name && json_equal(&as_json(expected_args), &as_json(arguments));
            if same { 1.0 } else { 0.0 }
        }
        _ => 0.0,
    }
}

/// Arguments sent as JSON text become the value they spell.
fn as_json(arguments: &Value) -> Value {
    match arguments {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| arguments.clone()),
        other => other.clone(),
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`), which
/// `Value`'s `==` does not do across integer and float representations.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Sentence-level chrF of `hypothesis` against `reference` with
/// sacrebleu's default settings, 0..1.
pub fn chrf(hypothesis: &str, reference: &str) -> f64 {
    Chrf::default().sentence_score(hypothesis, reference)
}

/// chrF's parameters, named as in sacrebleu's `CHRF` (only the ones this
/// metric uses; word n-grams are not implemented). The non-default values
/// exist so the published test vectors, computed with other settings, can
/// check the implementation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chrf {
    /// Highest character n-gram order (sacrebleu: `char_order`, 6).
    pub char_order: usize,
    /// Recall's weight relative to precision (`beta`, 2).
    pub beta: f64,
    /// Keep whitespace in the n-grams (`whitespace`, false).
    pub keep_whitespace: bool,
    /// chrF++.py's epsilon smoothing instead of the effective order
    /// (`eps_smoothing`, false).
    pub eps_smoothing: bool,
}

impl Default for Chrf {
    fn default() -> Self {
        Self {
            char_order: 6,
            beta: 2.0,
            keep_whitespace: false,
            eps_smoothing: false,
        }
    }
}

/// Per order: n-grams in the hypothesis, in the reference, and matched.
#[derive(Debug, Clone, Copy, Default)]
struct OrderStats {
    hyp: u64,
    reference: u64,
    matched: u64,
}

impl Chrf {
    /// The sentence-level score, 0..1 (sacrebleu's `sentence_score / 100`).
    pub fn sentence_score(&self, hypothesis: &str, reference: &str) -> f64 {
        let hyp = self.characters(hypothesis);
        let reference = self.characters(reference);
        let stats: Vec<OrderStats> = (1..=self.char_order)
            .map(|n| order_stats(&hyp, &reference, n))
            .collect();
        self.f_score(&stats)
    }

    /// The characters n-grams are taken from. Whitespace is what Python's
    /// `str.split()` splits on (sacrebleu removes it with
    /// `''.join(line.split())`): Unicode White_Space plus the four ASCII
    /// separators U+001C..U+001F.
    fn characters(&self, text: &str) -> Vec<char> {
        if self.keep_whitespace {
            return text.chars().collect();
        }
        text.chars()
            .filter(|c| !(c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(c)))
            .collect()
    }

    /// sacrebleu's `CHRF._compute_f_score`, divided by 100.
    fn f_score(&self, stats: &[OrderStats]) -> f64 {
        const EPS: f64 = 1e-16;
        let factor = self.beta * self.beta;
        let mut smoothed = 0.0;
        let (mut avg_precision, mut avg_recall, mut effective_order) = (0.0, 0.0, 0u32);
        for s in stats {
            let precision = if s.hyp > 0 {
                s.matched as f64 / s.hyp as f64
            } else {
                EPS
            };
            let recall = if s.reference > 0 {
                s.matched as f64 / s.reference as f64
            } else {
                EPS
            };
            let denominator = factor * precision + recall;
            smoothed += if denominator > 0.0 {
                (1.0 + factor) * precision * recall / denominator
            } else {
                EPS
            };
            if s.hyp > 0 && s.reference > 0 {
                avg_precision += precision;
                avg_recall += recall;
                effective_order += 1;
            }
        }
        if self.eps_smoothing {
            return if stats.is_empty() {
                0.0
            } else {
                smoothed / stats.len() as f64
            };
        }
        if effective_order == 0 {
            return 0.0;
        }
        avg_precision /= f64::from(effective_order);
        avg_recall /= f64::from(effective_order);
        if avg_precision + avg_recall > 0.0 {
            (1.0 + factor) * avg_precision * avg_recall / (factor * avg_precision + avg_recall)
        } else {
            0.0
        }
    }
}

/// sacrebleu's `_get_match_statistics` for the n-grams of one order.
fn order_stats(hyp: &[char], reference: &[char], n: usize) -> OrderStats {
    let reference_counts = ngram_counts(reference, n);
    let mut stats = OrderStats {
        reference: reference_counts.values().sum(),
        ..OrderStats::default()
    };
    // sacrebleu: no hypothesis n-grams are counted when the reference has
    // none of this order.
    if reference_counts.is_empty() {
        return stats;
    }
    for (gram, count) in ngram_counts(hyp, n) {
        stats.hyp += count;
        if let Some(&r) = reference_counts.get(gram) {
            stats.matched += count.min(r);
        }
    }
    stats
}

fn ngram_counts(chars: &[char], n: usize) -> FxHashMap<&[char], u64> {
    let mut counts = FxHashMap::default();
    if n > 0 {
        for gram in chars.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn assert_score(settings: Chrf, hypothesis: &str, reference: &str, expected_x100: f64) {
        let got = settings.sentence_score(hypothesis, reference) * 100.0;
        // sacrebleu's own tests compare with EPSILON = 1e-4.
        assert!(
            (got - expected_x100).abs() < 1e-4,
            "{hypothesis:?} vs {reference:?}: {got} != {expected_x100}"
        );
    }

    // sacrebleu's test/test_chrf.py (mjpost/sacrebleu, v2.6.0),
    // `test_sentence_level_chrf`: sentence_chrf(..., eps_smoothing=True)
    // with the default β = 2.
    #[test]
    fn sacrebleus_sentence_level_vectors_are_reproduced() {
        let eps = Chrf {
            eps_smoothing: true,
            ..Chrf::default()
        };
        assert_score(
            eps,
            "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
            "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
            39.14078509,
        );
        assert_score(
            eps,
            "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
            "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
            31.22557079,
        );
        assert_score(
            eps,
            "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
            "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.",
            57.15704367,
        );
    }

    // Same file, `test_cases` (corpus_chrf of one segment: the sentence
    // score): β = 3, eps_smoothing=True.
    #[test]
    fn sacrebleus_epsilon_smoothing_vectors_are_reproduced() {
        let settings = Chrf {
            beta: 3.0,
            eps_smoothing: true,
            ..Chrf::default()
        };
        for (hypothesis, reference, expected) in [
            ("abcdefg", "hijklmnop", 0.0),
            ("a", "b", 0.0),
            ("", "b", 0.0),
            ("", "reference", 0.0),
            ("aa", "ab", 8.3333),
            ("a", "a", 16.6667),
            ("a b c", "a b c", 50.0),
            ("a b c", "abc", 50.0),
            (
                " risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .",
                "risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .",
                63.361730,
            ),
            (
                " Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. ",
                "Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.",
                64.1302698,
            ),
            (
                "Niemand hat die Absicht, eine Mauer zu errichten",
                "Niemand hat die Absicht, eine Mauer zu errichten",
                100.0,
            ),
        ] {
            assert_score(settings, hypothesis, reference, expected);
        }
    }

    // Same file, `test_cases_effective_order`: β = 3, the default
    // effective-order averaging (the mode this module scores with).
    #[test]
    fn sacrebleus_effective_order_vectors_are_reproduced() {
        let settings = Chrf {
            beta: 3.0,
            ..Chrf::default()
        };
        for (hypothesis, reference, expected) in [
            ("a", "a", 100.0),
            ("", "reference", 0.0),
            ("a b c", "a b c", 100.0),
            ("a b c", "abc", 100.0),
            ("", "c", 0.0),
            ("aa", "ab", 25.0),
        ] {
            assert_score(settings, hypothesis, reference, expected);
        }
    }

    // Same file, `test_cases_keep_whitespace`: β = 3,
    // remove_whitespace=False.
    #[test]
    fn sacrebleus_keep_whitespace_vectors_are_reproduced() {
        let settings = Chrf {
            beta: 3.0,
            keep_whitespace: true,
            ..Chrf::default()
        };
        assert_score(
            settings,
            "Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich.",
            "Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.",
            67.3481606,
        );
        assert_score(
            settings,
            "risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .",
            "risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .",
            65.2414427,
        );
    }

    // Not in sacrebleu's tests: the exact settings we score with, computed
    // with sacrebleu 2.6.0's own chrf.py (`CHRF().sentence_score(h, [r])`).
    #[test]
    fn the_default_settings_match_sacrebleu_on_its_test_sentences() {
        for (hypothesis, reference, expected) in [
            (
                "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
                "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
                39.14081690,
            ),
            (
                " Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. ",
                "Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.",
                64.81812373,
            ),
            ("It ships today.", "Your order ships today.", 52.27928347),
            ("aa", "ab", 25.0),
        ] {
            assert_score(Chrf::default(), hypothesis, reference, expected);
        }
    }

    fn text(t: &str) -> Reference {
        Reference::Text { text: t.into() }
    }

    fn call(name: &str, arguments: Value) -> Answer {
        Answer::ToolCall {
            name: name.into(),
            arguments,
        }
    }

    fn call_reference(name: &str, arguments: Value) -> Reference {
        Reference::ToolCall {
            name: name.into(),
            arguments,
        }
    }

    #[test]
    fn a_tool_call_with_the_same_name_and_equal_arguments_scores_one() {
        let reference = call_reference("weather", json!({"city": "Paris", "days": 3}));
        // Chat Completions sends the arguments as JSON text, in any key order.
        let answer = call("weather", json!("{\"days\": 3.0, \"city\": \"Paris\"}"));
        assert_eq!(score_answer(&reference, &answer), 1.0);
        let answer = call("weather", json!({"city": "Paris", "days": 3}));
        assert_eq!(score_answer(&reference, &answer), 1.0);
    }

    #[test]
    fn any_difference_in_a_tool_call_scores_zero() {
        let reference = call_reference("weather", json!({"city": "Paris"}));
        for answer in [
            call("forecast", json!({"city": "Paris"})),
            call("weather", json!({"city": "Rome"})),
            call("weather", json!({"city": "Paris", "days": 1})),
            call("weather", json!("not json")),
            Answer::Text {
                text: "weather(city=Paris)".into(),
            },
        ] {
            assert_eq!(score_answer(&reference, &answer), 0.0, "{answer:?}");
        }
    }

    #[test]
    fn a_tool_call_answering_a_text_reference_scores_zero() {
        let answer = call("weather", json!({}));
        assert_eq!(score_answer(&text("It is sunny."), &answer), 0.0);
    }

    #[test]
    fn a_text_answer_is_scored_with_chrf() {
        let answer = Answer::Text {
            text: "It ships today.".into(),
        };
        let score = score_answer(&text("Your order ships today."), &answer);
        assert!((score - 0.5227928347).abs() < 1e-9, "{score}");
    }

    proptest! {
        #[test]
        fn a_score_is_between_zero_and_one(hypothesis in "\\PC{0,40}", reference in "\\PC{0,40}") {
            let score = chrf(&hypothesis, &reference);
            prop_assert!((0.0..=1.0).contains(&score), "{}", score);
        }

        #[test]
        fn an_identical_answer_scores_one(text in "[a-zA-Zéü ,.]{0,30}[a-z]") {
            prop_assert!((chrf(&text, &text) - 1.0).abs() < 1e-12);
        }

        #[test]
        fn an_empty_answer_scores_zero(reference in "\\PC{1,40}") {
            prop_assert_eq!(chrf("", &reference), 0.0);
            prop_assert_eq!(chrf("   ", &reference), 0.0);
        }

        #[test]
        fn whitespace_does_not_change_the_score(words in proptest::collection::vec("[a-z]{1,6}", 1..8)) {
            let spaced = words.join(" ");
            let packed = words.concat();
            prop_assert_eq!(chrf(&spaced, &packed), chrf(&packed, &packed));
        }

        #[test]
        fn tool_arguments_compare_equal_as_text_or_value(
            keys in proptest::collection::btree_map("[a-z]{1,5}", 0i64..100, 0..5)
        ) {
            let value = serde_json::to_value(&keys).unwrap();
            let reference = call_reference("f", value.clone());
            let as_text = call("f", Value::String(value.to_string()));
            prop_assert_eq!(score_answer(&reference, &as_text), 1.0);
        }
    }
}
