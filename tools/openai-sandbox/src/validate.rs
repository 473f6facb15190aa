//! Training-file validation, behind one function: the library's dataset
//! checker, so the sandbox and the pipeline apply the same rules.

use std::io::BufRead;

use finetune::dataset::check::{CheckOptions, check_jsonl};

/// Why a training file was refused, in the words the job's `error` uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ValidationFailure {
    /// 1-based line of the first problem, when one line is to blame.
    pub line: Option<u64>,
    pub problem: String,
}

/// Checks a chat fine-tuning JSONL file with the pipeline's own checker
/// (`finetune::dataset::check`, the cookbook's rules and its extensions),
/// so the sandbox refuses exactly what the pipeline would have refused,
/// plus OpenAI's minimum of `min_examples` examples (10). The checker's
/// options are the base model's (encoding, token limit); examples over the
/// limit are a warning there, as OpenAI truncates them.
///
/// Takes a reader, not a byte slice: uploaded files may be spilled to disk
/// and are read line by line, never loaded whole.
pub fn validate_training_file<R: BufRead>(
    reader: R,
    model: &str,
    min_examples: u64,
) -> Result<(), ValidationFailure> {
    // The sandbox counts with the vocabularies compiled in: it is a local
    // stand-in, with no dictionaries layer beside it.
    finetune::dataset::dictionaries::use_embedded();
    let report =
        check_jsonl(reader, &CheckOptions::for_model(model)).map_err(|e| ValidationFailure {
            line: None,
            problem: e.to_string(),
        })?;
    if report.has_format_errors() {
        let summary: Vec<String> = report
            .format_errors
            .iter()
            .map(|(category, n)| format!("{category}: {n}"))
            .collect();
        let summary = format!("format errors {}", summary.join(", "));
        return Err(match report.line_errors.first() {
            Some(first) => ValidationFailure {
                line: Some(first.line),
                problem: format!("{} ({summary})", first.category),
            },
            None => ValidationFailure {
                line: None,
                problem: summary,
            },
        });
    }
    if report.examples < min_examples {
        return Err(ValidationFailure {
            line: None,
            problem: format!(
                "the file has {} example(s), but must have at least {min_examples}",
                report.examples
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}"#;

    const MODEL: &str = "gpt-4o-mini-2024-07-18";

    #[test]
    fn good_examples_pass() {
        let file = format!("{GOOD}\n{GOOD}\n\n");
        assert_eq!(validate_training_file(file.as_bytes(), MODEL, 2), Ok(()));
    }

    #[test]
    fn the_first_bad_line_is_named_with_the_checkers_category() {
        let file = format!("{GOOD}\n[1]\n");
        let err = validate_training_file(file.as_bytes(), MODEL, 1).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().starts_with("line 2: data_type"), "{err}");
        let file = format!("{GOOD}\n{{\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}]}}\n");
        let err = validate_training_file(file.as_bytes(), MODEL, 1).unwrap_err();
        assert!(
            err.problem.contains("example_missing_assistant_message"),
            "{err}"
        );
        let err = validate_training_file(r#"{"messages":[]}"#.as_bytes(), MODEL, 1).unwrap_err();
        assert!(err.problem.contains("missing_messages_list"), "{err}");
    }

    #[test]
    fn too_few_examples_fail() {
        let err = validate_training_file(GOOD.as_bytes(), MODEL, 10).unwrap_err();
        assert_eq!(err.line, None);
        assert!(err.problem.contains("at least 10"));
    }
}
