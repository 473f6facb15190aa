//! What a whole run logs, through the JSON subscriber the functions install
//! in Lambda: every line is JSON with the fields an on-call engineer
//! filters by, and none holds the API key or conversation text.
//!
//! The subscriber is installed as the process's global default (once),
//! writing only the lines of threads that asked to capture them. A scoped
//! (`set_default`) subscriber is not enough here: when it is the only one
//! registered, tracing caches each callsite's interest as seen from the
//! thread that hits it first, and another test's thread without a
//! subscriber then switches the callsite off for everyone.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use finetune::domain::RunStatus;
use finetune_tests::ApiEvent;
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

use crate::pipeline::{run_body, seed, start, world};
use crate::world::{TENANT, drive};

/// Everything the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Writes to the current thread's capture, if it has one; else nowhere.
#[derive(Clone, Copy)]
struct ThreadRouted;

impl Write for ThreadRouted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(captured) = c.borrow_mut().as_mut() {
                captured.write_all(buf)
            } else {
                Ok(())
            }
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadRouted {
    type Writer = ThreadRouted;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Everything logged on this thread from now on (our crate at debug,
/// stricter than Lambda's default info). `#[tokio::test]` runs the whole
/// test, spawned tasks included, on its own thread.
fn capture_this_thread() -> Captured {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = finetune::telemetry::json_subscriber(
            finetune::telemetry::parse_filter(Some("info,finetune=debug")),
            ThreadRouted,
        );
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binary");
    });
    let captured = Captured::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));
    captured
}

/// Every field of a line: the event's, and each of its spans'.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["fields"].get(name).or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .rev()
            .find_map(|span| span.get(name))
    })
}

#[tokio::test]
async fn a_whole_run_logs_ids_and_durations_but_no_key_or_conversation_text() {
    // GIVEN the functions' JSON subscriber capturing this test's lines
    let captured = capture_this_thread();

    // WHEN a run goes from POST /runs to a fine-tuned model
    let world = world().await;
    seed(&world, 30).await;
    let id = start(&world, &run_body(10)).await;
    let done = drive(&world, &id, 30).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");

    // THEN every line is JSON, and the lines say what happened to whom
    let text = captured.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |l: &Value| l["fields"]["message"].as_str().unwrap_or("").to_owned();
    let request = lines
        .iter()
        .find(|l| message(l) == "request")
        .unwrap_or_else(|| panic!("no request line in:\n{}", &text[..text.len().min(3000)]));
    assert_eq!(field(request, "tenant").unwrap(), TENANT);
    assert_eq!(field(request, "request_id").unwrap(), "req-1");
    assert!(field(request, "duration_ms").unwrap().is_u64());
    let reconciled: Vec<&Value> = lines
        .iter()
        .filter(|l| message(l) == "reconciled")
        .collect();
    assert!(reconciled.len() >= 2, "{text}");
    for line in &reconciled {
        assert_eq!(field(line, "run_id").unwrap(), id.as_str());
        assert_eq!(field(line, "tenant").unwrap(), TENANT);
        assert_eq!(field(line, "provider").unwrap(), "openai");
        assert!(field(line, "phase").unwrap().is_string());
        assert!(field(line, "duration_ms").unwrap().is_u64());
        assert!(
            field(line, "request_id").unwrap().is_string(),
            "monitor span"
        );
    }
    let ticks: Vec<&Value> = lines.iter().filter(|l| message(l) == "tick done").collect();
    for steps in ["prepare", "monitor"] {
        let tick = ticks
            .iter()
            .find(|l| field(l, "steps").and_then(Value::as_str) == Some(steps))
            .unwrap_or_else(|| panic!("no {steps} tick line"));
        assert!(field(tick, "duration_ms").is_some());
    }

    // AND nothing secret or private was written
    assert!(!text.contains(crate::openai::KEY), "the API key was logged");
    for private in ["Where is order", "ships on day"] {
        assert!(
            !text.contains(private),
            "conversation text {private:?} was logged"
        );
    }
}

#[tokio::test]
async fn the_webhook_and_a_500_close_their_request_like_every_route() {
    // GIVEN the functions' JSON subscriber capturing this test's lines
    let captured = capture_this_thread();
    let world = world().await;

    // WHEN a webhook delivery with no signature arrives
    let secret = finetune::webhook::setup::SigningSecret::ready(
        "whsec_dGVzdC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWJjZGVm",
    );
    let response = finetune::http::webhook_handler(
        &world.pipeline.following_jobs(),
        &secret,
        ApiEvent::post("/webhooks/openai").body("{}").build(),
    )
    .await;
    assert_eq!(response.status(), 401);
    // AND a read meets a store failure (a table that does not exist)
    let missing = finetune::store::Store::new(world.env.dynamodb.clone(), "no-such-table");
    let response = finetune::http::job_status_handler(
        &missing,
        &world.pipeline.blobs,
        &world.config,
        ApiEvent::get("/runs").tenant(TENANT).build(),
    )
    .await;
    assert_eq!(response.status(), 500);

    // THEN the webhook's request closes with the same line as every route
    let text = captured.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |l: &Value| l["fields"]["message"].as_str().unwrap_or("").to_owned();
    let closing = |path: &str| {
        lines
            .iter()
            .find(|l| {
                message(l) == "request" && field(l, "path").and_then(Value::as_str) == Some(path)
            })
            .unwrap_or_else(|| panic!("no request line for {path} in:\n{text}"))
    };
    let webhook = closing("/webhooks/openai");
    assert_eq!(field(webhook, "status").unwrap(), 401);
    assert_eq!(field(webhook, "request_id").unwrap(), "req-1");
    assert_eq!(field(webhook, "method").unwrap(), "POST");
    assert!(field(webhook, "duration_ms").unwrap().is_u64());
    let runs = closing("/runs");
    assert_eq!(field(runs, "status").unwrap(), 500);
    // AND the 500's cause is logged once, inside the request's span
    let causes: Vec<&Value> = lines
        .iter()
        .filter(|l| message(l) == "store failure")
        .collect();
    assert_eq!(causes.len(), 1, "{text}");
    assert_eq!(causes[0]["level"], "ERROR");
    assert_eq!(field(causes[0], "tenant").unwrap(), TENANT);
    assert_eq!(field(causes[0], "path").unwrap(), "/runs");
    assert!(
        field(causes[0], "error")
            .and_then(Value::as_str)
            .is_some_and(|e| e.contains("DynamoDB")),
        "{text}"
    );
}
