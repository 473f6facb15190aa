//! Standard Webhooks signatures, as OpenAI signs its webhooks (and as
//! `openai-python`'s `webhooks.verify_signature` checks them).
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{raw body}"`,
//! signed with HMAC-SHA256 under the secret's key; the `webhook-signature`
//! header holds space-separated `v1,<base64>` entries and the request is
//! genuine if any one matches. Pure: the caller passes the clock, so the
//! time window is tested without waiting.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a `webhook-timestamp` may be from now, either way: OpenAI's SDK
/// default. Older deliveries are refused so a captured request cannot be
/// replayed later; the replay record covers the window itself.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// The three headers every signed delivery carries.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The `whsec_` prefix of a Standard Webhooks secret: the rest is the key
/// in base64. Any other secret is used as its UTF-8 bytes (the SDK's rule).
const SECRET_PREFIX: &str = "whsec_";

/// The key webhooks are signed with, keyed into HMAC once. It never
/// reaches a log, not even through `{:?}`.
#[derive(Clone)]
pub struct WebhookSecret(HmacSha256);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A secret that cannot be used (a deploy mistake, found at cold start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook secret is empty")]
    Empty,
    #[error("the webhook secret starts with whsec_ but the rest is not base64")]
    NotBase64,
    #[error("the webhook secret is not a usable HMAC key")]
    InvalidKey,
}

impl WebhookSecret {
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let secret = secret.trim();
        let key = match secret.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|_| SecretError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        let mac = <HmacSha256 as Mac>::new_from_slice(&key).map_err(|_| SecretError::InvalidKey)?;
        Ok(Self(mac))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value for a delivery (`v1,<base64>`): what a
    /// sender (or a test) puts in the header.
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

/// The signing headers of one delivery, as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Why a delivery is not accepted as genuine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp header is not a whole number of seconds")]
    InvalidTimestamp,
    #[error("the webhook-timestamp is more than {tolerance} s old")]
    TooOld { tolerance: i64 },
    #[error("the webhook-timestamp is more than {tolerance} s in the future")]
    InFuture { tolerance: i64 },
    #[error("no webhook-signature entry matches")]
    NoMatch,
}

/// Checks a delivery against `secret` at `now_unix` (seconds). `body` must
/// be the raw bytes as received: re-serialised JSON would not match.
/// Every candidate is compared in constant time (`verify_slice`).
pub fn verify(
    secret: &WebhookSecret,
    headers: SignedHeaders<'_>,
    body: &[u8],
    now_unix: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let id = headers.id.ok_or(SignatureError::MissingHeader(ID_HEADER))?;
    let timestamp = headers
        .timestamp
        .ok_or(SignatureError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = headers
        .signature
        .ok_or(SignatureError::MissingHeader(SIGNATURE_HEADER))?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::InvalidTimestamp)?;
    if now_unix.saturating_sub(sent) > tolerance {
        return Err(SignatureError::TooOld { tolerance });
    }
    if sent.saturating_sub(now_unix) > tolerance {
        return Err(SignatureError::InFuture { tolerance });
    }
    let mac = secret.mac(id, timestamp, body);
    let matched = signature
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .map(|entry| entry.strip_prefix("v1,").unwrap_or(entry))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference's test vector, checked against openai-python's own
    // verify_signature.
    const SECRET: &str = "whsec_cnVzdC1jbGllbnQtdGVzdC1zZWNyZXQ=";
    const ID: &str = "msg_test123";
    const TS: &str = "1750000000";
    const BODY: &str = r#"{"id":"evt_test","object":"event","type":"fine_tuning.job.succeeded","created_at":1750000000,"data":{"id":"ftjob-abc"}}"#;
    const EXPECTED: &str = "v1,bP9rWNtDJvr7qQnAR2KmJn+HulmS6sSfx62o3V6QCxs=";
    const NOW: i64 = 1_750_000_000;

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).unwrap()
    }

    fn headers<'a>(signature: &'a str, ts: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: Some(ID),
            timestamp: Some(ts),
            signature: Some(signature),
        }
    }

    fn check(signature: &str, ts: &str, now: i64) -> Result<(), SignatureError> {
        verify(
            &secret(),
            headers(signature, ts),
            BODY.as_bytes(),
            now,
            DEFAULT_TOLERANCE_SECONDS,
        )
    }

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        // GIVEN the reference's secret, id, timestamp and body
        // WHEN we sign THEN we produce the reference's header
        assert_eq!(secret().sign(ID, TS, BODY.as_bytes()), EXPECTED);
        // AND the header verifies, with or without its v1, prefix
        assert_eq!(check(EXPECTED, TS, NOW), Ok(()));
        assert_eq!(check(&EXPECTED[3..], TS, NOW), Ok(()));
    }

    #[test]
    fn any_one_of_several_signatures_is_enough() {
        let other = WebhookSecret::parse("whsec_b3RoZXItc2VjcmV0").unwrap();
        let stale = other.sign(ID, TS, BODY.as_bytes());
        for header in [
            format!("{stale} {EXPECTED}"),
            format!("{EXPECTED} {stale}"),
            format!("v1a,abc {EXPECTED}"),
        ] {
            assert_eq!(check(&header, TS, NOW), Ok(()), "{header}");
        }
        assert_eq!(check(&stale, TS, NOW), Err(SignatureError::NoMatch));
    }

    #[test]
    fn a_changed_body_id_or_signature_is_refused() {
        let s = secret();
        let tampered = BODY.replace("succeeded", "cancelled");
        let result = verify(
            &s,
            headers(EXPECTED, TS),
            tampered.as_bytes(),
            NOW,
            DEFAULT_TOLERANCE_SECONDS,
        );
        assert_eq!(result, Err(SignatureError::NoMatch));
        let other_id = SignedHeaders {
            id: Some("msg_other"),
            ..headers(EXPECTED, TS)
        };
        let result = verify(&s, other_id, BODY.as_bytes(), NOW, 300);
        assert_eq!(result, Err(SignatureError::NoMatch));
        for bad in [
            "",
            "v1,",
            "v1,AAAA",
            "not base64 at all!",
            "v2,bP9rWNtDJvr7",
        ] {
            assert_eq!(check(bad, TS, NOW), Err(SignatureError::NoMatch), "{bad}");
        }
    }

    #[test]
    fn timestamps_outside_five_minutes_are_refused_either_way() {
        // WHEN the delivery is 301 s old THEN it is too old; 300 s is fine
        assert_eq!(
            check(EXPECTED, TS, NOW + 301),
            Err(SignatureError::TooOld { tolerance: 300 })
        );
        assert_eq!(check(EXPECTED, TS, NOW + 300), Ok(()));
        // AND a timestamp more than 300 s ahead of our clock is refused
        assert_eq!(
            check(EXPECTED, TS, NOW - 301),
            Err(SignatureError::InFuture { tolerance: 300 })
        );
        assert_eq!(check(EXPECTED, TS, NOW - 300), Ok(()));
        // AND the window is checked before the signature: a valid signature
        // over an old timestamp still fails
        let old = (NOW - 3600).to_string();
        let sig = secret().sign(ID, &old, BODY.as_bytes());
        assert!(matches!(
            check(&sig, &old, NOW),
            Err(SignatureError::TooOld { .. })
        ));
        assert_eq!(
            check(EXPECTED, "soon", NOW),
            Err(SignatureError::InvalidTimestamp)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let none = SignedHeaders {
            id: None,
            timestamp: None,
            signature: None,
        };
        let err = verify(&secret(), none, BODY.as_bytes(), NOW, 300).unwrap_err();
        assert_eq!(err, SignatureError::MissingHeader("webhook-id"));
        let no_sig = SignedHeaders {
            signature: None,
            ..headers(EXPECTED, TS)
        };
        let err = verify(&secret(), no_sig, BODY.as_bytes(), NOW, 300).unwrap_err();
        assert_eq!(err, SignatureError::MissingHeader("webhook-signature"));
    }

    #[test]
    fn a_secret_without_whsec_is_used_as_its_bytes() {
        // GIVEN a plain secret (the SDK uses its UTF-8 bytes as the key)
        let plain = WebhookSecret::parse("rust-client-test-secret").unwrap();
        // THEN it is the same key as its base64 behind whsec_ (the vector's
        // secret decodes to exactly these bytes)
        assert_eq!(plain.sign(ID, TS, BODY.as_bytes()), EXPECTED);
        assert_eq!(
            verify(&plain, headers(EXPECTED, TS), BODY.as_bytes(), NOW, 300),
            Ok(())
        );
        // AND a whsec_ secret that is not base64, or an empty one, is refused
        assert_eq!(
            WebhookSecret::parse("whsec_***").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(WebhookSecret::parse("  ").unwrap_err(), SecretError::Empty);
        assert!(!format!("{plain:?}").contains("rust"));
    }
}
