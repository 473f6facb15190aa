//! One evaluated example as it is stored and listed, the judge's prompt
//! and how its reply is read, and the token estimate of a prompt. Pure:
//! the evaluating phase (`pipeline/evaluate_steps.rs`) does the calls.

use serde::{Deserialize, Serialize};

use super::example::{EvalExample, Reference, Role, Turn};
use super::judge::{Outcome, Verdict};
use super::score::Answer;

/// The longest prompt excerpt a row keeps (characters).
pub const EXCERPT_CHARS: usize = 300;

/// The judge's instructions, its system prompt. The blocks follow the
/// marker convention the local stack's models judge by (its sandboxes
/// document it), which a real model follows as plain instructions.
pub const JUDGE_INSTRUCTIONS: &str = "You are a strict evaluator of customer-support answers. \
You compare two answers to the last turn of a conversation with a reference answer, and reply \
with exactly one word: A, B or TIE.";

/// The most tokens a verdict may take.
pub const JUDGE_MAX_TOKENS: u32 = 5;

/// The judge's instructions around each comparison, in tokens (for the
/// estimate): [`JUDGE_INSTRUCTIONS`] and the prompt's fixed text.
pub const JUDGE_INSTRUCTION_TOKENS: u64 = 120;

/// One model's answer to one example, as stored (redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub model: String,
    pub answer: Answer,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub truncated: bool,
}

/// A judge's verdict on one presentation, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVerdict {
    /// `None`: the judge's reply was none of `A`, `B`, `TIE` (counted as
    /// a tie, the cautious reading).
    pub verdict: Option<Verdict>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl StoredVerdict {
    pub fn read(&self) -> Verdict {
        self.verdict.unwrap_or(Verdict::Tie)
    }
}

/// A scored answer in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredAnswer {
    pub model: String,
    pub answer: Answer,
    pub score: f64,
    pub truncated: bool,
    /// What the call was billed for, as the provider counted it (0 in
    /// rows stored before they were kept).
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// The judge's two verdicts on one example and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgedRow {
    pub model: String,
    /// The verdict with the candidate's answer shown as A.
    pub candidate_as_a: Option<Verdict>,
    /// The verdict with the candidate's answer shown as B.
    pub candidate_as_b: Option<Verdict>,
    pub outcome: Outcome,
    /// What the two verdicts were billed for together.
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// One evaluated example: what `GET /runs/{id}/evaluation` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRow {
    /// The example's line among the validation file's lines.
    pub index: usize,
    /// The start of the last user turn (the prompt's question).
    pub prompt_excerpt: String,
    pub reference: Reference,
    pub candidate: ScoredAnswer,
    pub baseline: ScoredAnswer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgedRow>,
}

/// The last user turn's first [`EXCERPT_CHARS`] characters.
pub fn prompt_excerpt(example: &EvalExample) -> String {
    let text = example
        .turns
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map_or("", |t| t.text.as_str());
    let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        excerpt.push('…');
    }
    excerpt
}

/// An answer as the judge reads it.
pub fn render_answer(answer: &Answer) -> String {
    match answer {
        Answer::Text { text } => text.clone(),
        Answer::ToolCall { name, arguments } => format!("(calls the tool {name} with {arguments})"),
    }
}

/// The reference as the judge reads it.
pub fn render_reference(reference: &Reference) -> String {
    match reference {
        Reference::Text { text } => text.clone(),
        Reference::ToolCall { name, arguments } => {
            format!("(calls the tool {name} with {arguments})")
        }
    }
}

fn render_turn(turn: &Turn) -> String {
    let role = match turn.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let calls: Vec<String> = turn
        .tool_calls
        .iter()
        .map(|c| format!("(calls the tool {} with {})", c.name, c.arguments))
        .collect();
    let mut text = turn.text.clone();
    if !calls.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&calls.join(" "));
    }
    format!("{role}: {text}")
}

/// The conversation before the reference turn, one line per turn.
pub fn render_conversation(example: &EvalExample) -> String {
    let mut lines: Vec<String> = Vec::with_capacity(example.turns.len() + 1);
    if let Some(system) = &example.system {
        lines.push(format!("system: {system}"));
    }
    lines.extend(example.turns.iter().map(render_turn));
    lines.join("\n")
}

/// The judge's prompt for one presentation: the conversation, the
/// reference and two answers, each in its marked block.
pub fn judge_example(
    example: &EvalExample,
    conversation: &str,
    answer_a: &Answer,
    answer_b: &Answer,
) -> EvalExample {
    let reference = render_reference(&example.reference);
    let prompt = format!(
        "Conversation:\n{conversation}\n\n\
         [REFERENCE]\n{reference}\n[/REFERENCE]\n\n\
         [ANSWER A]\n{}\n[/ANSWER A]\n\n\
         [ANSWER B]\n{}\n[/ANSWER B]\n\n\
         Which answer is closer in meaning and content to the reference? \
         Reply with exactly A, B or TIE.",
        render_answer(answer_a),
        render_answer(answer_b),
    );
    EvalExample {
        index: example.index,
        system: Some(JUDGE_INSTRUCTIONS.to_owned()),
        turns: vec![Turn {
            role: Role::User,
            text: prompt,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }],
        tools: None,
        reference: Reference::Text {
            text: String::new(),
        },
    }
}

/// The verdict in a judge's reply: its first word, `A`, `B` or `TIE` in
/// any case and with any punctuation around it; anything else is `None`.
pub fn read_verdict(reply: &Answer) -> Option<Verdict> {
    let Answer::Text { text } = reply else {
        return None;
    };
    let word: String = text
        .split_whitespace()
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    match word.as_str() {
        "A" => Some(Verdict::A),
        "B" => Some(Verdict::B),
        "TIE" => Some(Verdict::Tie),
        _ => None,
    }
}

/// Tokens of a text, estimated as one per four characters (rounded up):
/// the evaluation's estimate is made in the monitor, which links no
/// tokenizer, and is an upper bound on output anyway.
pub fn estimated_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DatasetFormat;
    use crate::evaluation::parse_example;
    use serde_json::json;

    fn example() -> EvalExample {
        let line = json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where is order 7?"},
            {"role": "assistant", "content": "It ships tomorrow."}
        ]})
        .to_string();
        parse_example(&line, 3, DatasetFormat::OpenAiChat).unwrap()
    }

    #[test]
    fn a_judge_reads_the_conversation_the_reference_and_both_answers_in_their_blocks() {
        let example = example();
        let conversation = render_conversation(&example);
        assert_eq!(conversation, "system: Be brief.\nuser: Where is order 7?");
        let a = Answer::Text {
            text: "Tomorrow.".into(),
        };
        let b = Answer::Text {
            text: "Hello!".into(),
        };
        let judge = judge_example(&example, &conversation, &a, &b);
        let prompt = &judge.turns[0].text;
        assert!(prompt.contains("[REFERENCE]\nIt ships tomorrow.\n[/REFERENCE]"));
        assert!(prompt.contains("[ANSWER A]\nTomorrow.\n[/ANSWER A]"));
        assert!(prompt.contains("[ANSWER B]\nHello!\n[/ANSWER B]"));
        assert_eq!(judge.system.as_deref(), Some(JUDGE_INSTRUCTIONS));
    }

    #[test]
    fn a_verdict_is_the_first_word_of_the_reply_whatever_its_case_or_punctuation() {
        let text = |t: &str| Answer::Text { text: t.into() };
        assert_eq!(read_verdict(&text("A")), Some(Verdict::A));
        assert_eq!(read_verdict(&text(" b.")), Some(Verdict::B));
        assert_eq!(read_verdict(&text("Tie - both fine")), Some(Verdict::Tie));
        assert_eq!(read_verdict(&text("Answer A is better")), None);
        assert_eq!(read_verdict(&text("")), None);
        let call = Answer::ToolCall {
            name: "a".into(),
            arguments: json!({}),
        };
        assert_eq!(read_verdict(&call), None);
        // An unreadable verdict counts as a tie.
        let stored = StoredVerdict {
            verdict: None,
            input_tokens: 1,
            output_tokens: 1,
        };
        assert_eq!(stored.read(), Verdict::Tie);
    }

    #[test]
    fn an_excerpt_is_the_start_of_the_last_user_turn() {
        assert_eq!(prompt_excerpt(&example()), "Where is order 7?");
        let mut long = example();
        long.turns[0].text = "x".repeat(EXCERPT_CHARS + 5);
        let excerpt = prompt_excerpt(&long);
        assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1);
        assert!(excerpt.ends_with('…'));
    }

    #[test]
    fn tokens_are_estimated_at_four_characters_each_rounded_up() {
        assert_eq!(estimated_tokens(""), 0);
        assert_eq!(estimated_tokens("abcd"), 1);
        assert_eq!(estimated_tokens("abcde"), 2);
    }
}
