//! `make package`: proves that packaged `bootstrap` files start and answer
//! as Lambda would run them. Two functions of the build, started against
//! the Runtime API stand-in (`bench_init::runtime`) and moto: `job-status`
//! answers a real API Gateway HTTP API event (`GET /runs` of a tenant) and
//! `monitor` an EventBridge scheduled event (one index Query). Their log
//! lines and answers are printed.
//!
//! ```text
//! package-smoke <sam build dir> [runner…]
//! package-smoke .aws-sam/build qemu-aarch64 -L /usr/aarch64-linux-gnu
//! ```
//!
//! The runner (none for a build of this machine's architecture) is the
//! command each `bootstrap` is started under: a user-mode emulator runs an
//! arm64 build on x86_64. The exit status is non-zero when a function does
//! not start or does not answer as expected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bench_init::runtime::cold_start;
use bench_init::stack::local_stack;
use finetune_tests::ApiEvent;
use finetune_tests::events::scheduled;
use serde_json::Value;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("package-smoke: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let build_dir = PathBuf::from(
        args.next()
            .ok_or("usage: package-smoke <sam build dir> [runner…]")?,
    );
    let runner: Vec<String> = args.collect();
    let env = local_stack()?;

    let status = start(
        &runner,
        &build_dir,
        ("JobStatusFunction", "job-status"),
        &env,
        &ApiEvent::get("/runs?limit=5").tenant("smoke").to_json(),
    )?;
    let response: Value = serde_json::from_str(&status)?;
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or_default())
        .map_err(|e| format!("job-status answered without a JSON body ({e}): {status}"))?;
    if response["statusCode"] != 200 || !body["data"].is_array() {
        return Err(format!("job-status answered GET /runs with {status}").into());
    }

    start(
        &runner,
        &build_dir,
        ("MonitorFunction", "monitor"),
        &env,
        &scheduled("7f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", "monitor"),
    )?;
    println!("package-smoke: both functions started and answered");
    Ok(())
}

/// Starts one function's `bootstrap` and returns what it posted as its
/// response (an error document or no answer is an error).
fn start(
    runner: &[String],
    build_dir: &Path,
    (resource, name): (&str, &str),
    env: &[(String, String)],
    event: &Value,
) -> Result<String, Box<dyn std::error::Error>> {
    let binary = build_dir.join(resource).join("bootstrap");
    if !binary.is_file() {
        return Err(format!("{} is missing (run `sam build` first)", binary.display()).into());
    }
    let mut function_env = env.to_vec();
    function_env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), name.into()));
    println!("== {name}: {} {}", runner.join(" "), binary.display());
    let started = cold_start(runner, true, &binary, &function_env, event)?;
    println!(
        "== {name}: init {} ms, answered in {} ms: {}",
        ms(started.init),
        ms(started.first_response),
        started.body
    );
    if !started.ok {
        return Err(format!("{name} reported an error: {}", started.body).into());
    }
    Ok(started.body)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}
