//! What every operation reads from a request the same way, without knowing
//! HTTP: the field errors it answers with, a listing's page parameters and
//! the name of the idempotency header. `crate::http` turns these into
//! problem+json; nothing here picks a status code.

use serde::Serialize;

/// One violated rule of a request, named by its JSON path (e.g.
/// `config.train_split`), a query parameter, or a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `limit` (1–100, default 20) and the opaque `cursor` of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageParams {
    pub limit: usize,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

impl PageParams {
    /// Parses the raw parameters; a bad `limit` is a field error (the
    /// cursor's validity is only known to the store, which checks it).
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, FieldError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let cursor = cursor.filter(|c| !c.is_empty()).map(str::to_owned);
        Ok(Self { limit, cursor })
    }
}

/// The idempotency header's name as shown in field errors (and read by
/// `crate::http`).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(PageParams::parse(None, None).unwrap().limit, 20);
        assert_eq!(PageParams::parse(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten", "1.5", ""] {
            assert_eq!(
                PageParams::parse(Some(bad), None).unwrap_err().field,
                "limit"
            );
        }
    }
}
