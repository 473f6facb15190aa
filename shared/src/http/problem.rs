//! `application/problem+json` (RFC 9457): the one place where an API error
//! becomes a status, a type, a title and a body. Every operation's error
//! enum converts into [`ApiError`] (see `super::mapping`); nothing else in
//! the crate picks a status code.

use std::time::Duration;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::api::input::FieldError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Problem types are URNs: stable identifiers that need no web page to
/// exist, and that clients can match on instead of parsing `detail`.
const TYPE_PREFIX: &str = "urn:finetune:problem:";

/// Everything the API can answer besides success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// One or more fields, parameters or headers break a rule; all listed.
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    /// The body is not JSON (or not a JSON object).
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// No tenant in the authorizer context.
    #[error("no valid tenant in the request's credentials")]
    Unauthenticated,
    /// A webhook whose signature, id or timestamp does not check out.
    #[error("{0}")]
    InvalidSignature(String),
    /// Unknown route, or a resource that does not exist for this tenant
    /// (another tenant's resources are indistinguishable from missing ones).
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed on this path")]
    MethodNotAllowed {
        method: String,
        allowed: Vec<&'static str>,
    },
    /// The request conflicts with the resource's state (e.g. cancelling a
    /// completed run).
    #[error("{0}")]
    Conflict(String),
    /// An `Idempotency-Key` reused with a different body.
    #[error("{0}")]
    IdempotencyConflict(String),
    /// A dependency (the provider, a contended record) is briefly unable
    /// to serve; the same request may succeed later.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The fine-tuning provider refused or failed in a way retrying will not fix.
    #[error("{0}")]
    BadGateway(String),
    /// A bug or an infrastructure failure. The detail shown is generic;
    /// the cause is logged once, when the response is made
    /// ([`ApiError::into_response`]), so converting an error stays pure.
    #[error("internal error")]
    Internal(InternalCause),
}

/// Why a request ended in a 500, kept for the log line only: it can name
/// tables and AWS request ids, so it is never shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalCause {
    /// What failed, as the log line's message (e.g. `store failure`).
    pub what: &'static str,
    /// The error with its whole chain of causes, on one line.
    pub error: String,
    /// The error's stable code, when it has one (a pipeline error's).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 500 caused by `error`; `what` names the failure in the log.
    pub fn internal(what: &'static str, error: &(dyn std::error::Error + 'static)) -> Self {
        ApiError::Internal(InternalCause {
            what,
            error: crate::telemetry::chain(error).to_string(),
            code: None,
        })
    }
}

/// The serialised problem document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::IdempotencyConflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Validation(_) => ("validation", "Invalid request"),
            ApiError::MalformedBody(_) => ("malformed-body", "Malformed request body"),
            ApiError::Unauthenticated => ("unauthenticated", "Unauthenticated"),
            ApiError::InvalidSignature(_) => ("invalid-signature", "Invalid webhook signature"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict with the resource's state"),
            ApiError::IdempotencyConflict(_) => {
                ("idempotency-key-reused", "Idempotency key reused")
            }
            ApiError::Unavailable { .. } => ("unavailable", "Temporarily unavailable"),
            ApiError::BadGateway(_) => ("provider-error", "Fine-tuning provider error"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        let detail = match self {
            ApiError::Validation(errors) => match errors.len() {
                1 => "1 field is invalid; see `errors`".to_owned(),
                n => format!("{n} fields are invalid; see `errors`"),
            },
            ApiError::Internal(_) => {
                "something went wrong on our side; the request may be retried".to_owned()
            }
            other => other.to_string(),
        };
        Problem {
            type_: format!("{TYPE_PREFIX}{slug}"),
            title,
            status: self.status().as_u16(),
            detail,
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }

    /// The HTTP response: the problem body and the headers its status
    /// calls for (`Allow`, `Retry-After`, `WWW-Authenticate`). A 500's
    /// cause is logged here, in the request's span, and nowhere else.
    pub fn into_response(self) -> Response<Body> {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(code = cause.code, error = %cause.error, "{}", cause.what);
        }
        let problem = self.problem();
        // A struct of strings and numbers always serialises.
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::MethodNotAllowed { allowed, .. } => {
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    headers.insert(header::ALLOW, v);
                }
            }
            ApiError::Unavailable {
                retry_after: Some(after),
                ..
            } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(after.as_secs().max(1)),
                );
            }
            ApiError::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal() -> ApiError {
        let cause = std::io::Error::other("DynamoDB table-x refused the request");
        ApiError::internal("store failure", &cause)
    }

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn validation_lists_every_field_with_status_400() {
        let err = ApiError::Validation(vec![
            FieldError::new("name", "must not be empty"),
            FieldError::new("config.train_split", "must be greater than 0"),
        ]);
        let response = err.into_response();
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = body_json(&response);
        assert_eq!(body["type"], "urn:finetune:problem:validation");
        assert_eq!(body["title"], "Invalid request");
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "2 fields are invalid; see `errors`");
        assert_eq!(body["errors"][1]["field"], "config.train_split");
        assert_eq!(body["errors"][1]["message"], "must be greater than 0");
    }

    #[test]
    fn each_error_has_its_status_and_no_errors_member_unless_validation() {
        let cases = [
            (ApiError::MalformedBody("x".into()), 400),
            (ApiError::Unauthenticated, 401),
            (ApiError::InvalidSignature("no match".into()), 401),
            (ApiError::NotFound("run not found".into()), 404),
            (
                ApiError::MethodNotAllowed {
                    method: "PUT".into(),
                    allowed: vec!["GET"],
                },
                405,
            ),
            (ApiError::Conflict("done".into()), 409),
            (ApiError::IdempotencyConflict("reused".into()), 409),
            (
                ApiError::Unavailable {
                    detail: "later".into(),
                    retry_after: None,
                },
                503,
            ),
            (ApiError::BadGateway("no".into()), 502),
            (internal(), 500),
        ];
        for (err, status) in cases {
            let response = err.clone().into_response();
            assert_eq!(response.status(), status, "{err:?}");
            let body = body_json(&response);
            assert_eq!(body["status"], status);
            assert!(body.get("errors").is_none(), "{err:?}");
            assert!(body["type"].as_str().unwrap().starts_with(TYPE_PREFIX));
            assert!(!body["title"].as_str().unwrap().is_empty());
            assert!(!body["detail"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn status_specific_headers_are_set() {
        let r = ApiError::MethodNotAllowed {
            method: "DELETE".into(),
            allowed: vec!["GET", "POST"],
        }
        .into_response();
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
        let r = ApiError::Unavailable {
            detail: "x".into(),
            retry_after: Some(Duration::from_secs(5)),
        }
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let r = ApiError::Unauthenticated.into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let body = body_json(&internal().into_response());
        assert!(body["detail"].as_str().unwrap().contains("on our side"));
        assert!(!body.to_string().contains("table-x"));
    }
}
