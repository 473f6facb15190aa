//! `cargo run --release -p demo --bin evaluation-bench [EXAMPLES] [CHAT_LATENCY_MS] [TICK_SECONDS]`
//!
//! How long the evaluating phase takes and how the evaluate function's
//! ticks split it: a run on the OpenAI sandbox evaluated on EXAMPLES (default 200)
//! held-out conversations with a judge, every chat completion taking
//! CHAT_LATENCY_MS (default 0, the sandbox's default) more, each evaluate
//! tick an invocation with TICK_SECONDS (default 300, the deployed timeout)
//! to its deadline. Prints, per tick that answered, its duration and the
//! calls it made, then the totals and the calls per model. Prints figures;
//! asserts nothing (benchmarks are not tests).

use std::time::{Duration, Instant};

use finetune::config::Config;
use finetune::domain::{RunId, RunStatus, TenantId};
use finetune::pipeline::{Pipeline, monitor};
use finetune_tests::ApiEvent;
use openai_sandbox::{Progression, SandboxConfig};

const TENANT: &str = "bench";
const BASE: &str = "gpt-4o-mini-2024-07-18";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let examples = args.first().copied().unwrap_or(200);
    let chat_latency = Duration::from_millis(args.get(1).copied().unwrap_or(0));
    let tick_seconds = args.get(2).copied().unwrap_or(300);

    let env = finetune_tests::TestEnv::new().await;
    let sandbox = openai_sandbox::spawn(SandboxConfig {
        progression: Progression::OnRead,
        epochs: 1,
        steps_per_epoch: 2,
        chat_latency,
        ..SandboxConfig::default()
    })
    .await?;
    let config = Config::from_lookup(|name| match name {
        "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
        // The sandbox moves its jobs on by polls: poll on every tick.
        "TRAINING_POLL_SECONDS" | "PUSHED_POLL_SECONDS" => Some("0".into()),
        "FINETUNE_TABLE" => Some(env.table.clone()),
        "FINETUNE_BUCKET" => Some(env.bucket.clone()),
        "OPENAI_BASE_URL" => Some(sandbox.base_url()),
        "OPENAI_API_KEY" => Some("sk-bench".into()),
        "RUN_LEASE_SECONDS" => Some("60".into()),
        _ => None,
    })?;
    let mut pipeline = Pipeline::from_config(&config, &env.sdk).await?;
    pipeline.metrics = finetune::metrics::Metrics::discard();
    let (preparing, monitoring, evaluator) = (
        pipeline.preparing(config.fan_out.clone()),
        pipeline.monitor(),
        pipeline.evaluating(),
    );

    // Twice as many conversations as examples, half held out (set-up).
    let conversations = examples * 2 + examples / 5;
    let lines: String = (0..conversations)
        .map(|i| {
            serde_json::json!({
                "id": format!("conv-{i}"),
                "started_at": "2026-10-01T10:00:00Z",
                "outcome": "resolved",
                "messages": [
                    {"role": "user", "content": format!("Where is my order A{i}? It was due on day {}.", i % 11)},
                    {"role": "assistant", "content": format!("Order A{i} left our warehouse and ships on day {}.", i % 7)}
                ]
            })
            .to_string()
                + "\n"
        })
        .collect();
    env.blobs
        .put_bytes(
            &format!("conversations/{TENANT}/2026/10/01/export.jsonl"),
            lines.into_bytes(),
            "application/x-ndjson",
        )
        .await?;
    let body = serde_json::json!({
        "name": "evaluation bench",
        "config": {
            "start_date": "2026-10-01", "end_date": "2026-10-01",
            "base_model": BASE, "min_examples": 10, "max_examples": 100000,
            "train_split": 0.5, "seed": 1,
            "evaluation": {"max_examples": examples, "judge_model": BASE}
        }
    });
    let request = ApiEvent::post("/runs")
        .tenant(TENANT)
        .json(&body)
        .try_build()?;
    let response =
        finetune::http::start_run_handler(&pipeline.store, &config, &pipeline.metrics, request)
            .await;
    let created: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    let run_id = RunId::parse(created["id"].as_str().unwrap_or_default())?;
    let tenant = TenantId::parse(TENANT)?;
    println!(
        "{conversations} conversations; evaluating up to {examples} examples with a judge; chat latency {} ms; ticks of {tick_seconds} s",
        chat_latency.as_millis()
    );

    let mut evaluating = Duration::ZERO;
    let mut ticks = 0;
    loop {
        let event = finetune_tests::events::scheduled_tick(Duration::from_secs(tick_seconds))?;
        let calls_before = sandbox.chat_calls().len();
        monitor::on_prepare_schedule(&preparing, &config, &event.context).await?;
        monitor::on_schedule(&monitoring.ticks, &config, &event.context).await?;
        // The evaluate function's tick, timed alone.
        let started = Instant::now();
        monitor::on_evaluate_schedule(&evaluator, &config, &event.context).await?;
        let took = started.elapsed();
        let calls = sandbox.chat_calls().len() - calls_before;
        let run = pipeline.store.get_run(&tenant, &run_id).await?;
        if calls > 0 {
            ticks += 1;
            evaluating += took;
            println!(
                "tick {ticks}: {:.1} s, {calls} chat completions | {}",
                took.as_secs_f64(),
                run.phase.chars().take(110).collect::<String>()
            );
        }
        if run.status.is_terminal() {
            let summary = run.evaluation.as_ref().map(|e| e.figures());
            println!(
                "run {}: {}",
                run.status,
                summary.unwrap_or_else(|| run.phase.clone())
            );
            if run.status != RunStatus::Completed {
                return Err(format!("the run ended {}", run.status).into());
            }
            let stats = run.stats.unwrap_or_default();
            println!(
                "evaluating: {:.1} s over {ticks} tick(s); {} examples; estimate ${:.2} ({} tokens)",
                evaluating.as_secs_f64(),
                run.evaluation.map_or(0, |e| e.examples),
                stats.evaluation_estimated_cost_usd.unwrap_or_default(),
                stats.evaluation_estimated_tokens.unwrap_or_default()
            );
            let calls = sandbox.chat_calls_per_model();
            let total: usize = calls.values().sum();
            println!("chat completions: {total} in all, by model: {calls:?}");
            return Ok(());
        }
    }
}
