//! Opaque pagination cursors: base64url of the last sort key returned.
//! The partition never comes from a cursor (it comes from the caller's
//! tenant), so a cursor copied from another tenant reveals nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::StoreError;

pub fn encode(sort_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(sort_key.as_bytes())
}

/// Decodes a cursor and checks it is a sort key of the expected kind; the
/// `check` closure validates the id part so a forged cursor is refused.
pub fn decode(
    cursor: &str,
    prefix: &str,
    check: impl Fn(&str) -> bool,
) -> Result<String, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| StoreError::InvalidCursor)?;
    let sort_key = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)?;
    match sort_key.strip_prefix(prefix) {
        Some(rest) if check(rest) => Ok(sort_key),
        _ => Err(StoreError::InvalidCursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let c = encode("RUN#run_abc");
        assert_eq!(decode(&c, "RUN#", |_| true).unwrap(), "RUN#run_abc");
        assert!(decode(&c, "DATASET#", |_| true).is_err());
        assert!(decode("%%%", "RUN#", |_| true).is_err());
        assert!(decode(&encode("RUN#x"), "RUN#", |id| id.len() > 3).is_err());
    }
}
