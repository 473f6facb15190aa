//! `make bench`: per function, the release binary's size, its init time as
//! Lambda measures it (process start to the first `GET …/invocation/next`)
//! and the time to answer its first real event, beside a hello-world
//! `lambda_runtime` function built the same way.
//!
//! ```text
//! bench-init <dir with the release binaries> [runs]
//! ```
//!
//! The functions start as in Lambda (`AWS_LAMBDA_*` set, JSON logs) against
//! moto on loopback: DynamoDB and S3, and the OpenAI key and webhook secret
//! in Secrets Manager. The events, in order: `POST /runs` (a new run each
//! time), `GET /runs`, `POST /runs/{id}/cancel` of those runs, an
//! EventBridge scheduled event for the monitor, the evaluate and the prepare
//! function (no active runs left: one index Query each), the shard queue's
//! SQS event for a shard task that does not exist (one GetObject),
//! `GET /models`, and
//! a signed OpenAI webhook about a job no run owns (verified, answered 200).
//!
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`, when set, are passed on: where the
//! functions read TLS roots from on their first call.
//!
//! `BENCH_KEY_SOURCE=env` gives the functions `OPENAI_API_KEY` and
//! `OPENAI_WEBHOOK_SECRET` instead of the secrets' ARNs: both are read on
//! first use, so init should not change; the webhook's first response
//! shows the Secrets Manager read.
//!
//! Targets (the size and start-up budget): each binary ≤ 8 MB stripped; each init ≤ 1.5× the
//! hello-world's median. The exit status is non-zero when one is missed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use finetune_tests::ApiEvent;
use finetune_tests::events::scheduled;
use serde_json::{Value, json};

use bench_init::runtime::{BenchError, ColdStart, cold_start};
use bench_init::stack::{WEBHOOK_SECRET, local_stack};
use finetune::webhook::signature::WebhookSecret;

const MAX_BYTES: u64 = 8 * 1024 * 1024;
const MAX_INIT_RATIO: f64 = 1.5;
const TENANT: &str = "bench";

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("bench-init: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: bench-init <release dir> [runs]")?,
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(10);

    let env = local_stack()?;
    println!(
        "{runs} cold starts each, x86_64 host binaries from {}\n",
        dir.display()
    );
    println!(
        "{:<12} {:>9} {:>12} {:>12} {:>10} {:>14} {:>13}  verdict",
        "function",
        "size MB",
        "init med ms",
        "init min ms",
        "x hello",
        "1st resp ms",
        "cold med ms"
    );

    let hello = measure(
        &dir,
        "hello-lambda",
        &env,
        runs,
        |_| json!({"hello": "world"}),
    )?;
    report("hello-lambda", &hello, None);
    let mut ok = true;

    let started = measure(&dir, "start-run", &env, runs, |i| {
        ApiEvent::post("/runs")
            .tenant(TENANT)
            .json(&json!({
                "name": format!("bench {i}"),
                "config": {"start_date": "2026-10-01", "end_date": "2026-10-31",
                           "base_model": "gpt-4o-mini-2024-07-18"}
            }))
            .to_json()
    })?;
    ok &= report("start-run", &started, Some(&hello));
    let run_ids: Vec<String> = started
        .starts
        .iter()
        .filter_map(|s| http_body(&s.body)?["id"].as_str().map(str::to_owned))
        .collect();
    if run_ids.len() != runs {
        return Err(format!("start-run answered {} runs of {runs}", run_ids.len()).into());
    }

    let status = measure(&dir, "job-status", &env, runs, |_| {
        ApiEvent::get("/runs?limit=5").tenant(TENANT).to_json()
    })?;
    ok &= report("job-status", &status, Some(&hello));

    let cancel = measure(&dir, "cancel", &env, runs, |i| {
        ApiEvent::post(&format!("/runs/{}/cancel", run_ids[i]))
            .tenant(TENANT)
            .to_json()
    })?;
    ok &= report("cancel", &cancel, Some(&hello));

    let monitor = measure(&dir, "monitor", &env, runs, |_| {
        scheduled("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "monitor")
    })?;
    ok &= report("monitor", &monitor, Some(&hello));

    let prepare = measure(&dir, "prepare", &env, runs, |_| {
        scheduled("0b5f3c1e-9a7d-4e2b-8c6f-1d2e3f4a5b6c", "prepare")
    })?;
    ok &= report("prepare", &prepare, Some(&hello));

    // A task no shard wrote: the handler reads the notification, finds
    // no task, and reports the message failed (init is what is measured).
    let shard = measure(&dir, "prepare-shard", &env, runs, |_| {
        finetune_tests::events::shard_task(
            "shards/acme/ds_0193f1a2b3c47d5e8f90a1b2c3d4e5f6/00000/task.json",
            1,
        )
    })?;
    ok &= report("prepare-shard", &shard, Some(&hello));

    let evaluate = measure(&dir, "evaluate", &env, runs, |_| {
        scheduled("7c2e9b14-5d3a-4f6e-9a8b-2c1d0e3f4a5b", "evaluate")
    })?;
    ok &= report("evaluate", &evaluate, Some(&hello));

    let models = measure(&dir, "models", &env, runs, |_| {
        ApiEvent::get("/models").tenant(TENANT).to_json()
    })?;
    ok &= report("models", &models, Some(&hello));

    let secret = WebhookSecret::parse(WEBHOOK_SECRET)?;
    let webhook = measure(&dir, "webhook", &env, runs, |i| {
        // A genuine delivery about a job no run owns: verified, then
        // answered 200 with nothing changed.
        let body = json!({
            "id": format!("evt_bench{i}"), "object": "event", "type": "fine_tuning.job.succeeded",
            "created_at": 1_764_079_380, "data": {"id": format!("ftjob-bench{i}")}
        })
        .to_string();
        let (id, timestamp) = (format!("wh_bench{i}"), chrono_now().to_string());
        let signature = secret.sign(&id, &timestamp, body.as_bytes());
        ApiEvent::post("/webhooks/openai")
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", &signature)
            .header("content-type", "application/json")
            .body(body)
            .to_json()
    })?;
    ok &= report("webhook", &webhook, Some(&hello));

    println!(
        "\ntargets: size <= {} MB stripped, init median <= {MAX_INIT_RATIO}x hello-lambda's",
        MAX_BYTES / (1024 * 1024)
    );
    Ok(ok)
}

/// A function's cold starts and its binary's size.
struct Measured {
    bytes: u64,
    starts: Vec<ColdStart>,
}

impl Measured {
    fn median(&self, of: impl Fn(&ColdStart) -> Duration) -> Duration {
        let mut values: Vec<Duration> = self.starts.iter().map(of).collect();
        values.sort();
        values[values.len() / 2]
    }

    fn min(&self, of: impl Fn(&ColdStart) -> Duration) -> Duration {
        self.starts.iter().map(of).min().unwrap_or_default()
    }
}

fn measure(
    dir: &Path,
    binary: &str,
    env: &[(String, String)],
    runs: usize,
    event: impl Fn(usize) -> Value,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let path = dir.join(binary);
    let bytes = std::fs::metadata(&path)
        .map_err(|e| {
            format!(
                "{}: {e} (run `make bench`, which builds it)",
                path.display()
            )
        })?
        .len();
    let mut function_env = env.to_vec();
    function_env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), binary.into()));
    let mut starts = Vec::with_capacity(runs);
    for i in 0..runs.max(1) {
        let start = cold_start(&[], false, &path, &function_env, &event(i))?;
        if !start.ok {
            return Err(BenchError::InitError {
                binary: binary.to_owned(),
                body: start.body,
            }
            .into());
        }
        if matches!(
            binary,
            "start-run" | "job-status" | "cancel" | "models" | "webhook"
        ) {
            let status = serde_json::from_str::<Value>(&start.body)
                .ok()
                .and_then(|v| v["statusCode"].as_u64())
                .unwrap_or(0);
            if !(200..300).contains(&status) {
                return Err(format!("{binary} answered {status}: {}", start.body).into());
            }
        }
        starts.push(start);
    }
    Ok(Measured { bytes, starts })
}

/// The JSON body of an API Gateway proxy response.
fn http_body(response: &str) -> Option<Value> {
    let response: Value = serde_json::from_str(response).ok()?;
    serde_json::from_str(response["body"].as_str()?).ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints one row; true when the function meets both targets.
fn report(name: &str, m: &Measured, hello: Option<&Measured>) -> bool {
    let init = m.median(|s| s.init);
    let ratio = hello.map(|h| ms(init) / ms(h.median(|s| s.init)).max(0.001));
    let size_ok = m.bytes <= MAX_BYTES;
    let init_ok = ratio.is_none_or(|r| r <= MAX_INIT_RATIO);
    let verdict = match (size_ok, init_ok) {
        (true, true) => "ok",
        (false, true) => "TOO BIG",
        (true, false) => "SLOW INIT",
        (false, false) => "TOO BIG, SLOW INIT",
    };
    println!(
        "{:<12} {:>9.2} {:>12.1} {:>12.1} {:>10} {:>14.1} {:>13.1}  {}",
        name,
        m.bytes as f64 / (1024.0 * 1024.0),
        ms(init),
        ms(m.min(|s| s.init)),
        ratio.map_or("-".to_owned(), |r| format!("{r:.2}")),
        ms(m.median(|s| s.first_response)),
        ms(m.median(|s| s.init + s.first_response)),
        verdict
    );
    size_ok && init_ok
}
