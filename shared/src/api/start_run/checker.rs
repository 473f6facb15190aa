//! The field-error collector of `POST /runs`: reads a JSON value by hand
//! and records every rule it breaks instead of stopping at the first, so a
//! caller sees every problem in one answer. It knows JSON shapes (objects
//! with known keys, strings, booleans, whole numbers, calendar days); the
//! body's own rules are in [`super::body`], and the rules of values that
//! check themselves are in `crate::domain`.

use std::ops::RangeInclusive;

use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::api::input::FieldError;

/// What a free-text field may hold. A name is one line shown in lists and
/// dashboards; a description or a system prompt may have paragraphs. None
/// may hold other control characters (NUL, escape, bell…): they are never
/// meant, break logs and terminals, and some stores refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    Line,
    Paragraphs,
}

impl Text {
    pub(super) fn allows(self, c: char) -> bool {
        !c.is_control() || (self == Text::Paragraphs && matches!(c, '\t' | '\n' | '\r'))
    }

    pub(super) fn rule(self) -> &'static str {
        match self {
            Text::Line => "; a name is one line of text",
            Text::Paragraphs => "; tabs and line breaks are allowed",
        }
    }
}

/// A control character as a person can read it in an error: `U+0000`.
struct ControlChar(char);

impl std::fmt::Display for ControlChar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

/// `null` is the same as absent for every optional field.
pub(super) fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

pub(super) fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Collects errors instead of stopping at the first one.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) errors: Vec<FieldError>,
}

impl Checker {
    pub(super) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// An object whose keys are all known; unknown keys are errors of their
    /// own (a typo must not silently fall back to a default).
    pub(super) fn object<'v>(
        &mut self,
        value: Option<&'v Value>,
        at: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let field = if at.is_empty() { "body" } else { at };
        match value {
            None | Some(Value::Null) => {
                self.error(field, "is required");
                None
            }
            Some(Value::Object(map)) => {
                let mut unknown: Vec<&String> = map
                    .keys()
                    .filter(|k| !known.contains(&k.as_str()))
                    .collect();
                unknown.sort();
                for key in unknown {
                    self.error(path(at, key), "is not a known field");
                }
                Some(map)
            }
            Some(_) => {
                self.error(field, "must be a JSON object");
                None
            }
        }
    }

    pub(super) fn string(
        &mut self,
        value: Option<&Value>,
        field: &str,
        required: bool,
        max_chars: usize,
        kind: Text,
    ) -> Option<String> {
        match present(value) {
            None => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                let chars = trimmed.chars().count();
                if trimmed.is_empty() {
                    if required {
                        self.error(field, "must not be empty");
                    }
                    None
                } else if chars > max_chars {
                    self.error(
                        field,
                        format!("must be at most {max_chars} characters, got {chars}"),
                    );
                    None
                } else if let Some(c) = trimmed.chars().find(|&c| !kind.allows(c)) {
                    self.error(
                        field,
                        format!(
                            "must not contain control characters ({} found){}",
                            ControlChar(c),
                            kind.rule()
                        ),
                    );
                    None
                } else {
                    Some(trimmed.to_owned())
                }
            }
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, value: Option<&Value>, field: &str) -> Option<bool> {
        match present(value) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(field, "must be true or false");
                None
            }
        }
    }

    /// A whole number in `range`; `None` (with an error) otherwise.
    pub(super) fn integer(
        &mut self,
        value: &Value,
        field: &str,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = match value {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    field,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn date(
        &mut self,
        value: Option<&Value>,
        field: &str,
        required: bool,
    ) -> Option<NaiveDate> {
        match present(value) {
            None => {
                if required {
                    self.error(field, "is required (or give dataset_id)");
                }
                None
            }
            Some(Value::String(s))
                if s.len() == 10
                    && s.as_bytes()[4] == b'-'
                    && s.as_bytes()[7] == b'-'
                    && s.bytes().filter(u8::is_ascii_digit).count() == 8 =>
            {
                match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(d) => Some(d),
                    Err(_) => {
                        self.error(field, "is not a calendar date");
                        None
                    }
                }
            }
            Some(_) => {
                self.error(field, "must be a date as YYYY-MM-DD");
                None
            }
        }
    }
}
