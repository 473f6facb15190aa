//! Validated identifiers. Every S3 key and DynamoDB key is built from these
//! types only, so nothing a caller sends can reach a key unchecked.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier was refused. Names the field and the rule, so it can be
/// shown to an API caller as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct IdError {
    pub field: &'static str,
    pub rule: String,
}

impl IdError {
    fn new(field: &'static str, rule: impl Into<String>) -> Self {
        Self {
            field,
            rule: rule.into(),
        }
    }
}

const MAX_TENANT_LEN: usize = 64;

/// Checks the character set shared by every id: ASCII letters, digits, `-`
/// and `_`. No `/`, `.`, `#` or whitespace can ever reach a key.
fn check_charset(field: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(IdError::new(
            field,
            format!("must be at most {max} characters, got {}", value.len()),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::new(
            field,
            "may contain only ASCII letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// A tenant of the SaaS, as named by the authorizer's JWT claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_charset("tenant_id", &value, MAX_TENANT_LEN)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ids we mint: a kind prefix and a UUIDv7 in lowercase hex, so they sort by
/// creation time (a DynamoDB Query in reverse lists newest first).
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id minted before it.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, Uuid::now_v7().simple()))
            }

            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_charset($field, &value, 64)?;
                let Some(hex) = value.strip_prefix($prefix) else {
                    return Err(IdError::new($field, concat!("must start with '", $prefix, "'")));
                };
                if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(IdError::new(
                        $field,
                        concat!("must be '", $prefix, "' followed by 32 lowercase hex digits"),
                    ));
                }
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

prefixed_id!(
    /// One training run of one tenant.
    RunId, "run_", "run_id"
);
prefixed_id!(
    /// A prepared dataset (train/validation files and manifest in S3).
    DatasetId, "ds_", "dataset_id"
);
prefixed_id!(
    /// One entry of a run's timeline.
    EventId, "evt_", "event_id"
);
prefixed_id!(
    /// A tenant's fine-tuned model: one per completed run.
    ModelId, "mdl_", "model_id"
);

impl ModelId {
    /// The model of a run: derived from the run's id, so recording it
    /// twice (a retried completion) records one model, and model ids sort
    /// by creation like run ids.
    pub fn for_run(run: &RunId) -> Self {
        let hex = run.as_str().trim_start_matches(RunId::PREFIX);
        Self(format!("{}{hex}", Self::PREFIX))
    }
}

/// The caller's `Idempotency-Key` header: opaque to us, but it becomes part
/// of a DynamoDB sort key, so it gets the same strict character set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_charset("idempotency_key", &value, 128)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(id: IdempotencyKey) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_accepts_the_strict_charset() {
        assert_eq!(TenantId::parse("acme-co_1").unwrap().as_str(), "acme-co_1");
    }

    #[test]
    fn tenant_refuses_path_tricks_empty_and_long() {
        for bad in ["", "a/b", "..", "a.b", "a#b", "a b", "ñ"] {
            let err = TenantId::parse(bad).unwrap_err();
            assert_eq!(err.field, "tenant_id", "{bad:?}");
        }
        let err = TenantId::parse("x".repeat(300)).unwrap_err();
        assert!(err.rule.contains("at most 64"), "{err}");
    }

    #[test]
    fn generated_run_ids_parse_and_sort_by_time() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert!(a < b);
        assert_eq!(RunId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn run_id_refuses_wrong_prefix_and_traversal() {
        assert!(RunId::parse("ds_0193a1b2c3d4e5f60718293a4b5c6d7e").is_err());
        assert!(RunId::parse("run_../../etc/passwd").is_err());
        assert!(RunId::parse(format!("run_{}", "a".repeat(300))).is_err());
        assert!(RunId::parse("run_0193A1B2C3D4E5F60718293A4B5C6D7E").is_err());
    }

    #[test]
    fn a_runs_model_id_is_derived_from_it() {
        let run = RunId::generate();
        let model = ModelId::for_run(&run);
        assert_eq!(ModelId::parse(model.as_str()).unwrap(), model);
        assert_eq!(model, ModelId::for_run(&run));
        assert_eq!(&model.as_str()[4..], &run.as_str()[4..]);
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        let ok: Result<DatasetId, _> =
            serde_json::from_str("\"ds_0193a1b2c3d4e5f60718293a4b5c6d7e\"");
        assert!(ok.is_ok());
        let bad: Result<DatasetId, _> = serde_json::from_str("\"ds_/x\"");
        assert!(bad.is_err());
    }
}
