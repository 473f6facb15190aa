//! The one door from API Gateway (HTTP API, payload v2) into a handler,
//! and back: every HTTP function's `main` calls [`serve`].
//!
//! Why not `lambda_http::run`: its event → request conversion (1.3.2)
//! panics on input a caller controls — a byte `http::Uri` refuses in the
//! raw query or path (`"`, `<`, `>`, a space, …: "failed to build
//! request"), a host the `url` crate cannot parse, a body marked base64
//! that is not — and with `panic = "abort"` a panic ends the container.
//! A header value `HeaderValue` refuses (a control byte) fails the typed
//! event's deserialisation before any handler runs. So this module takes
//! the event as plain JSON from the runtime (`serde_json::Value`: any JSON
//! the Lambda service can deliver deserialises) and builds the request
//! itself, total by construction:
//!
//! - the raw path and raw query are repaired for the URI only: every byte
//!   outside RFC 3986's `pchar` (and `/`, and `?` in the query) is
//!   percent-encoded, `%XX` triplets are kept. The handlers never read the
//!   URI: they route on the raw path as API Gateway gave it
//!   ([`RequestExt::raw_http_path`]) and read query parameters parsed from
//!   the raw query (`form_urlencoded`, lossy, infallible), exactly as
//!   lambda_http does. A URI that is still refused (over 64 KiB) falls back
//!   to the repaired path alone, then to `/`.
//! - a header value with bytes `HeaderValue` refuses (controls but tab,
//!   DEL) keeps its readable part, each refused character replaced by
//!   U+FFFD. Not dropped: a dropped `Idempotency-Key` would turn a retry
//!   into a second run, and a dropped webhook header would read as
//!   "unsigned" rather than "tampered". U+FFFD is what
//!   [`super::request::header`] already makes of non-UTF-8 bytes, and no
//!   validated header accepts it, so the request fails validation with a
//!   4xx naming the header. A header *name* `HeaderName` refuses is
//!   dropped: no handler reads a name that is not a valid token.
//! - a body marked base64 that does not decode, or an event without an
//!   HTTP API request context, is a 400 problem+json; the handler is not
//!   called.
//!
//! The answer goes back as `ApiGatewayV2httpResponse`, built the way
//! lambda_http builds it (`Set-Cookie` to `cookies`, binary bodies base64),
//! keeping only header values that serialise (UTF-8), so serialising the
//! response cannot fail either.

use std::future::Future;

use base64::Engine;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpResponse,
};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use super::problem::ApiError;
use crate::api::input::FieldError;

/// Runs the Lambda runtime loop with `handler` answering every API
/// Gateway HTTP API request. Never returns while the runtime runs; an
/// error means the runtime API itself failed.
pub async fn serve<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response<Body>>,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move {
            Ok::<_, lambda_runtime::Error>(answer(event, handler).await)
        },
    ))
    .await
}

/// One invocation: the event as the runtime deserialised it, the
/// handler's response (or the 400 for an event that is not a request) as
/// API Gateway expects it. [`serve`] calls this; tests call it with the
/// same JSON the runtime would be given.
pub async fn answer<H, F>(event: LambdaEvent<Value>, handler: H) -> ApiGatewayV2httpResponse
where
    H: FnOnce(Request) -> F,
    F: Future<Output = Response<Body>>,
{
    let response = match request_from_event(event.payload, event.context) {
        // Boxed: a handler's future (the webhook's reconciler) is large,
        // and would otherwise sit in the runtime's future on the stack.
        Ok(request) => Box::pin(handler(request)).await,
        Err(error) => {
            tracing::warn!(error = %error, "an event that is not an HTTP API request was refused");
            error.into_response()
        }
    };
    gateway_response(response)
}

/// The request an API Gateway HTTP API (payload v2) event describes, with
/// the extensions the handlers read (request context, query parameters,
/// raw path) and the Lambda context. Total: see the module's doc.
pub fn request_from_event(event: Value, context: Context) -> Result<Request, ApiError> {
    let Value::Object(mut event) = event else {
        return Err(not_a_request("the event is not a JSON object"));
    };
    let request_context: ApiGatewayV2httpRequestContext = event
        .remove("requestContext")
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| not_a_request("it has no HTTP API request context"))?;

    let raw_path = match event.get("rawPath").or_else(|| event.get("path")) {
        Some(Value::String(p)) => p.clone(),
        _ => String::new(),
    };
    let raw_query = match event.get("rawQueryString") {
        Some(Value::String(q)) => q.clone(),
        _ => String::new(),
    };

    let is_base64 = matches!(event.get("isBase64Encoded"), Some(Value::Bool(true)));
    let body = match event.remove("body") {
        Some(Value::String(text)) if is_base64 => {
            match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                Ok(bytes) => Body::Binary(bytes),
                Err(_) => {
                    return Err(ApiError::MalformedBody(
                        "the body is marked base64 but does not decode".to_owned(),
                    ));
                }
            }
        }
        Some(Value::String(text)) => Body::Text(text),
        _ => Body::Empty,
    };

    let mut headers = headers_from(event.get("headers"));
    if let Some(Value::Array(cookies)) = event.get("cookies") {
        let joined: Vec<&str> = cookies.iter().filter_map(Value::as_str).collect();
        if !joined.is_empty()
            && let Some(value) = header_value(&joined.join("; "))
        {
            // `try_`: a full map (32,768 entries) refuses rather than panics.
            let _ = headers.try_insert(header::COOKIE, value);
        }
    }
    if let Some(trace) = context.xray_trace_id.as_deref()
        && let Ok(value) = HeaderValue::from_str(trace)
    {
        let _ = headers.try_insert(HeaderName::from_static("x-amzn-trace-id"), value);
    }

    let mut request = Request::new(body);
    *request.method_mut() = request_context.http.method.clone();
    *request.uri_mut() = uri(&raw_path, &raw_query);
    *request.headers_mut() = headers;
    let query: QueryMap = raw_query.parse().unwrap_or_default();
    Ok(request
        .with_raw_http_path(raw_path)
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(request_context))
        .with_lambda_context(context))
}

fn not_a_request(why: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        "requestContext",
        format!("not an API Gateway HTTP API request: {why}"),
    )])
}

/// The request's URI from the raw path and query, repaired so that
/// `http::Uri` accepts it.
fn uri(raw_path: &str, raw_query: &str) -> Uri {
    let mut path = String::with_capacity(raw_path.len() + 1);
    if !raw_path.starts_with('/') {
        path.push('/');
    }
    percent_encode_into(&mut path, raw_path, b"/");
    let mut target = path.clone();
    if !raw_query.is_empty() {
        target.push('?');
        percent_encode_into(&mut target, raw_query, b"/?");
    }
    Uri::try_from(target)
        .or_else(|_| Uri::try_from(path))
        .unwrap_or_default()
}

/// RFC 3986 `pchar` without `%`: unreserved, sub-delims, `:` and `@`.
fn is_pchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte)
}

/// Appends `raw` to `out` with every byte that is neither a `pchar`, nor
/// in `also`, nor the `%` of a `%XX` triplet percent-encoded. The output
/// is ASCII whatever `raw` holds.
fn percent_encode_into(out: &mut String, raw: &str, also: &[u8]) {
    let bytes = raw.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let triplet = byte == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if is_pchar(byte) || also.contains(&byte) || triplet {
            out.push(char::from(byte));
        } else {
            // In bounds: a byte's high and low nibbles are both under 16.
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// The event's `headers` object (API Gateway joins repeated headers with
/// commas; an array is taken as repeated values too). Names `HeaderName`
/// refuses are dropped; values are repaired by [`header_value`]. Past
/// `HeaderMap`'s 32,768 entries the rest is left out.
fn headers_from(headers: Option<&Value>) -> HeaderMap {
    let mut map = HeaderMap::new();
    let Some(Value::Object(headers)) = headers else {
        return map;
    };
    for (name, value) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let values: Vec<Option<HeaderValue>> = match value {
            Value::Null => Vec::new(),
            Value::String(text) => vec![header_value(text)],
            Value::Array(items) => items.iter().map(scalar_header_value).collect(),
            other => vec![header_value(&other.to_string())],
        };
        for value in values.into_iter().flatten() {
            // `append` panics past 32,768 entries (an event API Gateway
            // cannot send, as its headers are capped far lower): stop there.
            if map.try_append(&name, value).is_err() {
                return map;
            }
        }
    }
    map
}

fn scalar_header_value(value: &Value) -> Option<HeaderValue> {
    match value {
        Value::String(text) => header_value(text),
        Value::Null => None,
        other => header_value(&other.to_string()),
    }
}

/// `text` as a header value, each character `HeaderValue` refuses (the
/// controls but tab, and DEL) replaced by U+FFFD.
fn header_value(text: &str) -> Option<HeaderValue> {
    let refused = |c: char| (c < ' ' && c != '\t') || c == '\u{7f}';
    if text.contains(refused) {
        HeaderValue::from_str(&text.replace(refused, "\u{FFFD}")).ok()
    } else {
        HeaderValue::from_str(text).ok()
    }
}

/// The response as API Gateway v2 takes it.
pub fn gateway_response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut cookies = Vec::new();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        // Serialising a header value that is not UTF-8 fails, and with it
        // the whole response: such a value is left out.
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            continue;
        };
        if name == header::SET_COOKIE {
            cookies.push(text.to_owned());
        } else {
            let _ = headers.try_append(name, value.clone());
        }
    }
    let (is_base64_encoded, body) = match body {
        Body::Empty => (false, None),
        text @ Body::Text(_) => (false, Some(text)),
        binary @ Body::Binary(_) => (true, Some(binary)),
        _ => (false, None),
    };
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = headers;
    answer.body = body;
    answer.is_base64_encoded = is_base64_encoded;
    answer.cookies = cookies;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::{Method, StatusCode};
    use proptest::prelude::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/runs",
            "rawQueryString": "limit=5",
            "headers": {"idempotency-key": "key-1", "host": "api.example.com"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "stage": "$default",
                "requestId": "r", "routeKey": "$default",
                "http": {"method": "POST", "path": "/runs", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "time": "25/Nov/2026:14:03:00 +0000", "timeEpoch": 1_795_615_380_000_i64
            },
            "body": "{}",
            "isBase64Encoded": false
        })
    }

    fn with(mut event: Value, field: &str, value: Value) -> Value {
        event[field] = value;
        event
    }

    #[test]
    fn a_plain_event_becomes_the_request_the_handlers_read() {
        let req = request_from_event(event(), Context::default()).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/runs?limit=5");
        assert_eq!(req.raw_http_path(), "/runs");
        assert_eq!(
            req.query_string_parameters_ref().unwrap().first("limit"),
            Some("5")
        );
        assert_eq!(req.headers()["idempotency-key"], "key-1");
        assert!(matches!(
            req.request_context_ref(),
            Some(RequestContext::ApiGatewayV2(_))
        ));
        assert_eq!(req.body().as_ref(), b"{}");
    }

    #[test]
    fn bytes_the_uri_refuses_are_encoded_in_the_uri_but_read_as_sent() {
        let event = with(event(), "rawQueryString", json!("x=a\"b<c>d e%zz&y=%41"));
        let event = with(event, "rawPath", json!("/runs/\"<>\u{e9}#?"));
        let req = request_from_event(event, Context::default()).unwrap();
        assert_eq!(
            req.uri(),
            "/runs/%22%3C%3E%C3%A9%23%3F?x=a%22b%3Cc%3Ed%20e%25zz&y=%41"
        );
        assert_eq!(req.raw_http_path(), "/runs/\"<>\u{e9}#?");
        let query = req.query_string_parameters_ref().unwrap();
        assert_eq!(query.first("x"), Some("a\"b<c>d e%zz"));
        assert_eq!(query.first("y"), Some("A"));
    }

    #[test]
    fn every_byte_in_path_and_query_gives_a_uri() {
        for byte in 0u8..=255 {
            for raw in [
                char::from(byte).to_string(),
                format!("%{byte:02X}"),
                format!("%{}", char::from(byte)),
            ] {
                let uri = uri(&format!("/a{raw}b"), &format!("x={raw}&{raw}"));
                assert!(uri.path().starts_with("/a"), "{byte:#04x}: {uri}");
                assert!(uri.query().is_some(), "{byte:#04x}: {uri}");
            }
        }
    }

    #[test]
    fn a_uri_over_the_http_limit_keeps_its_path() {
        assert_eq!(uri("/runs", &"x".repeat(70_000)), "/runs");
        assert_eq!(uri(&"/a".repeat(40_000), ""), "/");
    }

    #[test]
    fn a_header_value_with_control_bytes_keeps_its_text_with_replacement_marks() {
        let event = with(
            event(),
            "headers",
            json!({"idempotency-key": "key\u{0}1\n", "x-tab": "a\tb", "bad name": "x",
                   "x-num": 5, "x-many": ["a", "b\u{7f}"], "x-null": null}),
        );
        let req = request_from_event(event, Context::default()).unwrap();
        let headers = req.headers();
        assert_eq!(
            headers["idempotency-key"].as_bytes(),
            "key\u{FFFD}1\u{FFFD}".as_bytes()
        );
        assert_eq!(headers["x-tab"], "a\tb");
        assert_eq!(headers["x-num"], "5");
        let many: Vec<&[u8]> = headers
            .get_all("x-many")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(many, [b"a".as_slice(), "b\u{FFFD}".as_bytes()]);
        assert!(!headers.contains_key("x-null"));
        assert_eq!(headers.len(), 5, "{headers:?}");
    }

    #[test]
    fn base64_bodies_decode_and_a_bad_one_is_a_400() {
        let event = with(event(), "isBase64Encoded", json!(true));
        let req = request_from_event(
            with(event.clone(), "body", json!("e30=")),
            Context::default(),
        )
        .unwrap();
        assert_eq!(req.body().as_ref(), b"{}");
        let refused = request_from_event(
            with(event, "body", json!("not base64!")),
            Context::default(),
        )
        .unwrap_err();
        assert!(matches!(refused, ApiError::MalformedBody(_)));
    }

    #[test]
    fn an_event_without_a_request_context_is_a_400_problem() {
        let mut broken = event();
        broken["requestContext"]["http"]["method"] = json!("NOT A METHOD");
        for event in [json!([1]), json!({"rawPath": "/runs"}), broken] {
            let error = request_from_event(event, Context::default()).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn cookies_and_the_trace_id_become_headers() {
        let event = with(event(), "cookies", json!(["a=1", "b=2"]));
        let mut context = Context::default();
        context.xray_trace_id = Some("Root=1-abc".to_owned());
        let req = request_from_event(event, context).unwrap();
        assert_eq!(req.headers()["cookie"], "a=1; b=2");
        assert_eq!(req.headers()["x-amzn-trace-id"], "Root=1-abc");
    }

    #[test]
    fn responses_go_back_with_cookies_apart_and_binary_bodies_flagged() {
        let mut response = Response::new(Body::Binary(vec![0, 159]));
        *response.status_mut() = StatusCode::CREATED;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.insert("x-latin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let answer = gateway_response(response);
        assert_eq!(answer.status_code, 201);
        assert!(answer.is_base64_encoded);
        assert_eq!(answer.cookies, ["a=1"]);
        assert_eq!(answer.headers.len(), 1, "{:?}", answer.headers);
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["body"], "AJ8=");
        assert_eq!(json["headers"]["content-type"], "image/png");
    }

    #[tokio::test]
    async fn answer_turns_a_refused_event_into_a_problem_without_calling_the_handler() {
        let event = LambdaEvent::new(json!({}), Context::default());
        let answer = answer(event, |_req| async { unreachable!("the handler ran") }).await;
        assert_eq!(answer.status_code, 400);
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            super::super::problem::PROBLEM_JSON
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![any::<char>(), (0u8..0x80).prop_map(char::from)],
            0..40,
        )
        .prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn any_path_query_headers_and_body_make_a_request_or_a_400(
            path in text(),
            query in text(),
            headers in prop::collection::vec((text(), text()), 0..4),
            body in prop::option::of(text()),
            base64 in any::<bool>(),
        ) {
            let mut event = with(event(), "rawPath", json!(path));
            event["rawQueryString"] = json!(query);
            for (name, value) in headers {
                event["headers"][name] = json!(value);
            }
            event["body"] = json!(body);
            event["isBase64Encoded"] = json!(base64);
            // What the runtime does: JSON text in, the payload type out.
            let payload: Value = serde_json::from_str(&event.to_string()).unwrap();
            match request_from_event(payload, Context::default()) {
                Ok(req) => {
                    prop_assert!(req.uri().path().starts_with('/'));
                    prop_assert_eq!(req.raw_http_path(), path.as_str());
                }
                Err(error) => {
                    prop_assert!(base64, "refused: {}", error);
                    prop_assert!(matches!(error, ApiError::MalformedBody(_)));
                }
            }
        }
    }

    #[test]
    fn an_event_that_is_not_utf8_json_never_reaches_the_handler() {
        // Lambda's Invoke API takes JSON only, so such a payload is not
        // delivered; if it were, the runtime's deserialisation into
        // `Value` refuses it (an invocation error), it cannot panic.
        let raw = b"{\"rawPath\": \"/runs/\xff\"}";
        assert!(serde_json::from_slice::<Value>(raw).is_err());
    }
}
