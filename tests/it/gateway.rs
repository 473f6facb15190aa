//! Whatever an API Gateway HTTP API event holds, each
//! HTTP function answers it, and its process lives. Events go in as JSON
//! text, through the runtime's deserialisation and the functions' entry
//! point (`finetune::http::gateway`), to each function's real handler
//! against moto; the answer must be 2xx, or 4xx problem+json.
//!
//! A byte in JSON text: 0x00–0x7F go in as that character (JSON escapes
//! the controls, `"` and `\`); 0x80–0xFF as the characters U+0080–U+00FF,
//! what a byte-preserving (Latin-1) reading of the request line gives.
//! Raw invalid UTF-8 cannot be in a Lambda payload (Invoke takes JSON
//! text only), and were it there the runtime's JSON parse would refuse it
//! before any code of ours (see `gateway`'s unit tests). Percent-encoded,
//! each byte is `%XX`, which is also how non-UTF-8 bytes reach a handler.

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};

use crate::api::{Api, Function, body, run_id};
use finetune_tests::ApiEvent;

const TENANT: &str = "acme";

/// 2xx, or 4xx with a problem document; and the response serialises, as
/// the runtime will serialise it.
fn assert_answered(answer: &ApiGatewayV2httpResponse, what: &str) {
    let status = answer.status_code;
    let content_type = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let text = serde_json::to_string(answer)
        .unwrap_or_else(|e| panic!("{what}: the response does not serialise: {e}"));
    assert!(
        (200..300).contains(&status)
            || ((400..500).contains(&status) && content_type == "application/problem+json"),
        "{what}: answered {status} {content_type}: {text}"
    );
}

/// The byte as a character in the JSON text, and percent-encoded.
fn forms(byte: u8) -> [(&'static str, String); 2] {
    [
        ("raw", char::from(byte).to_string()),
        ("encoded", format!("%{byte:02X}")),
    ]
}

/// Where a byte goes for one function: `{}` in the path, the query and
/// each named header's value.
struct Probe {
    function: Function,
    base: ApiEvent,
    paths: &'static [&'static str],
    queries: &'static [&'static str],
    headers: &'static [&'static str],
}

/// Sends every byte 0x00–0xFF, raw and percent-encoded, in each place of
/// `probe` and checks every answer; returns how many events were sent.
async fn every_byte_everywhere(api: &Api, probe: &Probe) -> usize {
    let base = probe.base.to_json();
    let mut sent = 0;
    for byte in 0u8..=255 {
        for (form, text) in forms(byte) {
            let mut events: Vec<(String, Value)> = Vec::new();
            for path in probe.paths {
                let mut event = base.clone();
                event["rawPath"] = json!(path.replace("{}", &text));
                events.push((format!("path {path}"), event));
            }
            for query in probe.queries {
                let mut event = base.clone();
                event["rawQueryString"] = json!(query.replace("{}", &text));
                events.push((format!("query {query}"), event));
            }
            for header in probe.headers {
                let mut event = base.clone();
                event["headers"][*header] = json!(format!("a{text}b"));
                events.push((format!("header {header}"), event));
            }
            for (place, event) in events {
                let answer = api.invoke(probe.function, &event.to_string()).await;
                let what = format!(
                    "{:?}: byte {byte:#04x} {form} in the {place}",
                    probe.function
                );
                assert_answered(&answer, &what);
                sent += 1;
            }
        }
    }
    sent
}

#[tokio::test]
async fn start_run_answers_every_byte_in_path_query_and_headers() {
    // GIVEN the start-run function and a valid POST /runs
    let api = Api::new().await;
    let probe = Probe {
        function: Function::StartRun,
        base: ApiEvent::post("/runs").tenant(TENANT).json(&body("probe")),
        paths: &["/runs{}", "/{}/runs"],
        queries: &["x=a{}b"],
        headers: &["idempotency-key", "content-type", "x-probe"],
    };
    // WHEN every byte goes into each place THEN each gets an answer
    let sent = every_byte_everywhere(&api, &probe).await;
    assert_eq!(sent, 256 * 2 * 6);
}

#[tokio::test]
async fn job_status_answers_every_byte_in_path_query_and_headers() {
    // GIVEN a run to read
    let api = Api::new().await;
    let run = run_id(&api.start(TENANT, &body("read me")).await);
    let path = format!("/runs/{run}");
    let probe = Probe {
        function: Function::JobStatus,
        base: ApiEvent::get(&path).tenant(TENANT),
        paths: &["/runs/{}", "/runs/run_{}/events", "/datasets/{}"],
        queries: &["limit={}", "cursor=a{}b", "status={}"],
        headers: &["accept", "x-probe"],
    };
    let sent = every_byte_everywhere(&api, &probe).await;
    // AND the same for the listing's query
    let listing = Probe {
        base: ApiEvent::get("/runs").tenant(TENANT),
        paths: &[],
        ..probe
    };
    let listed = every_byte_everywhere(&api, &listing).await;
    assert_eq!(sent + listed, 256 * 2 * (8 + 5));
}

#[tokio::test]
async fn cancel_answers_every_byte_in_path_query_and_headers() {
    // GIVEN a queued run to cancel (cancelling again is 200 too)
    let api = Api::new().await;
    let run = run_id(&api.start(TENANT, &body("cancel me")).await);
    let path = format!("/runs/{run}/cancel");
    let probe = Probe {
        function: Function::Cancel,
        base: ApiEvent::post(&path).tenant(TENANT),
        paths: &["/runs/run_{}/cancel", "/runs/{}/cancel"],
        queries: &["x={}"],
        headers: &["x-probe", "content-type"],
    };
    let sent = every_byte_everywhere(&api, &probe).await;
    assert_eq!(sent, 256 * 2 * 5);
}

#[tokio::test]
async fn models_answers_every_byte_in_path_query_and_headers() {
    let api = Api::new().await;
    let probe = Probe {
        function: Function::Models,
        base: ApiEvent::get("/models").tenant(TENANT),
        paths: &["/models/{}", "/models/model_{}/activate"],
        queries: &["limit={}", "cursor={}"],
        headers: &["x-probe"],
    };
    let sent = every_byte_everywhere(&api, &probe).await;
    assert_eq!(sent, 256 * 2 * 5);
}

#[tokio::test]
async fn webhook_answers_every_byte_in_path_query_and_headers() {
    // GIVEN a signed delivery about a job this deployment does not know
    let api = Api::new().await;
    let secret =
        finetune::webhook::signature::WebhookSecret::parse(crate::api::WEBHOOK_SECRET).unwrap();
    let body = json!({"id": "evt_1", "object": "event", "type": "fine_tuning.job.succeeded",
                      "created_at": 0, "data": {"id": "ftjob-unknown"}})
    .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let base = ApiEvent::post("/webhooks/openai")
        .header("webhook-id", "msg_probe")
        .header("webhook-timestamp", &ts)
        .header(
            "webhook-signature",
            &secret.sign("msg_probe", &ts, body.as_bytes()),
        )
        .body(body);
    let probe = Probe {
        function: Function::Webhook,
        base,
        paths: &["/webhooks/openai{}", "/webhooks/{}"],
        queries: &["x={}"],
        headers: &[
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "x-probe",
        ],
    };
    let sent = every_byte_everywhere(&api, &probe).await;
    assert_eq!(sent, 256 * 2 * 7);
}

/// Any text, controls and non-ASCII included (`any::<String>()` draws
/// printable characters only), with ASCII drawn often.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![any::<char>(), (0u8..0x80).prop_map(char::from)],
        0..24,
    )
    .prop_map(String::from_iter)
}

/// An arbitrary API Gateway v2 event: the route's start, then any text;
/// any query; any headers (names valid or not); any body, flagged base64
/// or not; a tenant or none.
fn any_event() -> impl Strategy<Value = (Function, Value)> {
    let functions = prop::sample::select(vec![
        (Function::StartRun, "POST", "/runs"),
        (Function::JobStatus, "GET", "/runs/"),
        (Function::JobStatus, "GET", "/datasets/"),
        (Function::Cancel, "POST", "/runs/"),
        (Function::Models, "GET", "/models"),
        (Function::Models, "DELETE", "/models/"),
        (Function::Webhook, "POST", "/webhooks/openai"),
    ]);
    let header_name = prop_oneof![
        Just("idempotency-key".to_owned()),
        Just("accept".to_owned()),
        Just("content-type".to_owned()),
        Just("webhook-signature".to_owned()),
        text(),
    ];
    (
        functions,
        text(),
        text(),
        prop::collection::vec((header_name, text()), 0..4),
        prop::option::of(text()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |((function, method, route), tail, query, headers, body, base64, tenant)| {
                let mut event = ApiEvent::new(method, route);
                if tenant {
                    event = event.tenant(TENANT);
                }
                let mut event = event.to_json();
                event["rawPath"] = json!(format!("{route}{tail}"));
                event["rawQueryString"] = json!(query);
                for (name, value) in headers {
                    event["headers"][name] = json!(value);
                }
                event["body"] = json!(body);
                event["isBase64Encoded"] = json!(base64);
                (function, event)
            },
        )
}

#[test]
fn any_api_gateway_event_gets_an_answer() {
    // GIVEN the five functions against moto
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(Api::new());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // WHEN arbitrary events arrive THEN each gets an answer
    runner
        .run(&any_event(), |(function, event)| {
            let answer = runtime.block_on(api.invoke(function, &event.to_string()));
            assert_answered(&answer, &format!("{function:?} {event}"));
            Ok(())
        })
        .unwrap();
}
