//! What makes `POST /runs` idempotent: an `Idempotency-Key` and the
//! fingerprint of the request it came with, stored together (in the same
//! transaction as the run, see `runs.rs`), so the same key with another
//! body can be told apart from a retry of the same request.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::IdempotencyKey;

/// An `Idempotency-Key` and a fingerprint of the request it came with, so
/// the same key with another body can be told apart from a retry.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    pub key: IdempotencyKey,
    pub request_hash: String,
}

impl IdempotentRequest {
    /// The record of `key` sent with `body` (its [`request_hash`]).
    pub fn for_body(key: IdempotencyKey, body: &Value) -> Self {
        Self {
            key,
            request_hash: request_hash(body),
        }
    }
}

/// sha256 of the body's canonical form (keys sorted, no whitespace), so a
/// retry that only reorders keys or reformats still matches.
pub fn request_hash(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_ignores_key_order_and_whitespace_only() {
        let a: Value = serde_json::from_str(r#"{"name":"x","config":{"a":1,"b":[1,2]}}"#).unwrap();
        let b: Value =
            serde_json::from_str("{ \"config\": {\"b\": [1, 2], \"a\": 1},\n \"name\": \"x\" }")
                .unwrap();
        let c: Value = serde_json::from_str(r#"{"name":"y","config":{"a":1,"b":[1,2]}}"#).unwrap();
        let d: Value = serde_json::from_str(r#"{"name":"x","config":{"a":1,"b":[2,1]}}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
        assert_ne!(request_hash(&a), request_hash(&d));
        assert_eq!(request_hash(&a).len(), 64);
    }
}
