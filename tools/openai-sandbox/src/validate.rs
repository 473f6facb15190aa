//! Training-file validation, behind one function so the rules can be
//! swapped for the library's dataset checker without touching the API code.

use std::io::BufRead;

/// Why a training file was refused, in the words the job's `error` uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ValidationFailure {
    /// 1-based line of the first problem, when one line is to blame.
    pub line: Option<u64>,
    pub problem: String,
}

/// Checks a chat fine-tuning JSONL file: every non-blank line is a JSON
/// object with a non-empty `messages` array that contains an assistant
/// message, and there are at least `min_examples` examples (OpenAI's
/// minimum is 10).
///
/// Takes a reader, not a byte slice: uploaded files may be spilled to disk
/// and are read line by line, never loaded whole.
// TODO(merge): use finetune::dataset::check (check_jsonl + CheckOptions) once
// the `dataset` branch is merged, so the sandbox refuses exactly what the
// pipeline's own checker refuses.
pub fn validate_training_file<R: BufRead>(
    reader: R,
    min_examples: u64,
) -> Result<(), ValidationFailure> {
    let mut examples = 0u64;
    for (index, line) in reader.lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.map_err(|e| ValidationFailure {
            line: Some(number),
            problem: format!("could not be read as UTF-8 text ({e})"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let fail = |problem: &str| ValidationFailure {
            line: Some(number),
            problem: problem.to_owned(),
        };
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|_| fail("is not valid JSON (data_type)"))?;
        let object = value
            .as_object()
            .ok_or_else(|| fail("is not a JSON object (data_type)"))?;
        let messages = object
            .get("messages")
            .and_then(|m| m.as_array())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| fail("has no messages (missing_messages_list)"))?;
        let has_assistant = messages
            .iter()
            .any(|m| m.get("role").and_then(|r| r.as_str()) == Some("assistant"));
        if !has_assistant {
            return Err(fail(
                "has no assistant message (example_missing_assistant_message)",
            ));
        }
        examples += 1;
    }
    if examples < min_examples {
        return Err(ValidationFailure {
            line: None,
            problem: format!(
                "the file has {examples} example(s), but must have at least {min_examples}"
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

    #[test]
    fn good_examples_pass() {
        let file = format!("{GOOD}\n{GOOD}\n\n");
        assert_eq!(validate_training_file(file.as_bytes(), 2), Ok(()));
    }

    #[test]
    fn the_first_bad_line_is_named() {
        let file = format!("{GOOD}\n[1]\n");
        let err = validate_training_file(file.as_bytes(), 1).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.to_string(), "line 2: is not a JSON object (data_type)");
        let file = format!("{GOOD}\n{{\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}]}}\n");
        let err = validate_training_file(file.as_bytes(), 1).unwrap_err();
        assert!(err.problem.contains("assistant"));
        let err = validate_training_file(r#"{"messages":[]}"#.as_bytes(), 1).unwrap_err();
        assert!(err.problem.contains("missing_messages_list"));
    }

    #[test]
    fn too_few_examples_fail() {
        let err = validate_training_file(GOOD.as_bytes(), 10).unwrap_err();
        assert_eq!(err.line, None);
        assert!(err.problem.contains("at least 10"));
    }
}
