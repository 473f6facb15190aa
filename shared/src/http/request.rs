//! Reading what API Gateway (HTTP API, payload v2) hands us: the tenant from
//! the JWT authorizer, the path without its stage, query parameters and the
//! headers. A missing or bad tenant is an [`ApiError`] at once; the other
//! readers hand back what they found for the operation to check.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::problem::ApiError;
use crate::domain::TenantId;

/// The tenant named by the JWT claim `claim` in the authorizer context.
///
/// Never from the body or a header: only API Gateway's verified claims
/// count. A missing, empty or malformed claim is 401, and the value is not
/// echoed back (it came from a token we did not issue).
pub fn tenant(req: &Request, claim: &str) -> Result<TenantId, ApiError> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(ApiError::Unauthenticated);
    };
    let value = ctx
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get(claim))
        .ok_or(ApiError::Unauthenticated)?;
    TenantId::parse(value.as_str()).map_err(|_| ApiError::Unauthenticated)
}

/// The request path as the caller wrote it, without a named stage prefix
/// (`/prod/runs` on stage `prod` is `/runs`), so routes match on any stage.
pub fn path(req: &Request) -> String {
    let raw = req.raw_http_path();
    let raw = if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    };
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(stage) = ctx.stage.as_deref()
        && stage != "$default"
        && let Some(rest) = raw.strip_prefix(&format!("/{stage}"))
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        };
    }
    raw.to_owned()
}

/// API Gateway's id of the request (the `apigw-requestid` a caller sees),
/// to find a caller's request in the logs.
pub fn request_id(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
}

/// A query parameter's first value. An empty value (`?limit=`) is the
/// same as leaving the parameter out, for every parameter: that is what
/// forms and most HTTP clients send for "no value", and one rule is
/// easier to document than one per parameter.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A header's first value as text. Bytes that are not UTF-8 become
/// U+FFFD, which no validated value accepts, so they fail validation
/// instead of being silently dropped.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::input::{DEFAULT_LIMIT, PageParams};
    use serde_json::json;

    /// A listing's parameters as the handlers pass them to the operations.
    fn page(req: &Request) -> PageParams {
        PageParams::parse(
            query(req, "limit").as_deref(),
            query(req, "cursor").as_deref(),
        )
        .unwrap()
    }

    fn event(claims: serde_json::Value, stage: &str, raw_path: &str) -> Request {
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": "limit=5&cursor=abc",
            "headers": {"idempotency-key": "key-1"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "stage": stage,
                "requestId": "r",
                "routeKey": "$default",
                "authorizer": {"jwt": {"claims": claims, "scopes": null}},
                "http": {"method": "GET", "path": raw_path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "time": "25/Nov/2026:14:03:00 +0000",
                "timeEpoch": 1_795_615_380_000_i64
            },
            "isBase64Encoded": false
        });
        super::super::gateway::request_from_event(event, lambda_runtime::Context::default())
            .unwrap()
    }

    #[test]
    fn tenant_comes_from_the_configured_claim() {
        let req = event(
            json!({"tenant_id": "acme", "sub": "u1"}),
            "$default",
            "/runs",
        );
        assert_eq!(tenant(&req, "tenant_id").unwrap().as_str(), "acme");
        let req = event(json!({"custom:org": "globex"}), "$default", "/runs");
        assert_eq!(tenant(&req, "custom:org").unwrap().as_str(), "globex");
    }

    #[test]
    fn missing_or_malformed_tenant_is_401() {
        for claims in [
            json!({"sub": "u1"}),
            json!({"tenant_id": ""}),
            json!({"tenant_id": "../other"}),
            json!({"tenant_id": "a b"}),
        ] {
            let req = event(claims.clone(), "$default", "/runs");
            assert_eq!(
                tenant(&req, "tenant_id"),
                Err(ApiError::Unauthenticated),
                "{claims}"
            );
        }
    }

    #[test]
    fn a_request_without_authorizer_is_401() {
        let req = Request::default();
        assert_eq!(tenant(&req, "tenant_id"), Err(ApiError::Unauthenticated));
    }

    #[test]
    fn path_drops_a_named_stage_only() {
        let req = event(json!({}), "prod", "/prod/runs/run_1");
        assert_eq!(path(&req), "/runs/run_1");
        let req = event(json!({}), "$default", "/prod/runs");
        assert_eq!(path(&req), "/prod/runs");
        let req = event(json!({}), "prod", "/production/runs");
        assert_eq!(path(&req), "/production/runs");
    }

    #[test]
    fn query_and_idempotency_key_are_read() {
        let req = event(json!({}), "$default", "/runs");
        assert_eq!(
            page(&req),
            PageParams {
                limit: 5,
                cursor: Some("abc".into())
            }
        );
        assert_eq!(header(&req, "Idempotency-Key").as_deref(), Some("key-1"));
    }

    #[test]
    fn an_empty_query_parameter_is_the_same_as_an_absent_one() {
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/runs",
            "rawQueryString": "limit=&status=&cursor=",
            "queryStringParameters": {"limit": "", "status": "", "cursor": ""},
            "requestContext": {"accountId": "1", "apiId": "api", "stage": "$default",
                "requestId": "r", "routeKey": "$default",
                "http": {"method": "GET", "path": "/runs", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "time": "25/Nov/2026:14:03:00 +0000", "timeEpoch": 0},
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(query(&req, "status"), None);
        assert_eq!(
            page(&req),
            PageParams {
                limit: DEFAULT_LIMIT,
                cursor: None
            }
        );
    }
}
