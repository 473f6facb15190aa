//! `make demo-large`: a large tenant's run, prepared by shards, end to end
//! on the local stack.
//!
//! Starts moto (S3, DynamoDB, SQS), makes the shard queue and its
//! dead-letter queue and points the bucket's notifications of shard tasks
//! at it, as `template.yaml` does; uploads 48 MB of generated exports;
//! starts a prepare-only run through the start-run handler; then plays the
//! schedule and Lambda's SQS event source: the prepare function's tick
//! (the scheduled event) hands the shards out, four shard workers take the
//! queue's messages (the real handler, one SQS event each), the next tick
//! merges. The thresholds are scaled down (8 MB for one invocation, 8 MB
//! shards) so the demo is quick; the deployed defaults are 256 MB each.
//!
//! At the end the same exports are prepared once more in one pass, and the
//! two datasets' checksums are compared: they must be the same bytes.

use std::error::Error;
use std::time::{Duration, Instant};

use finetune::config::Config;
use finetune::dataset::fanout::{Advance, FanOut, FanOutLimits};
use finetune::dataset::{DatasetStats, PrepareSettings};
use finetune::domain::{DatasetId, RunId, TenantId};
use finetune::metrics::Metrics;
use finetune::pipeline::shard_worker::ShardWorker;
use finetune::pipeline::{Pipeline, monitor};
use finetune_tests::shards::{Invocation, ShardQueue, put_exports};
use finetune_tests::{ApiEvent, TestEnv};

const TENANT: &str = "globex-retail";
const EXPORT_BYTES: u64 = 48_000_000;
const FILE_BYTES: u64 = 4_000_000;
const WORKERS: usize = 4;
const LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    println!("local stack: moto at {}", finetune_tests::moto_endpoint());
    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    println!(
        "bucket {} notifies shard tasks to queue {} (dead letters after 3 receives)",
        env.bucket, queue.arn
    );
    let config = Config::from_lookup(|name| match name {
        "FINETUNE_TABLE" => Some(env.table.clone()),
        "FINETUNE_BUCKET" => Some(env.bucket.clone()),
        "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
        // The sandbox moves its jobs on by polls: poll on every tick.
        "TRAINING_POLL_SECONDS" | "PUSHED_POLL_SECONDS" => Some("0".into()),
        // A prepare-only run never calls OpenAI; start-run wants it enabled.
        "OPENAI_API_KEY" => Some("sk-local-demo".into()),
        "OPENAI_BASE_URL" => Some("http://127.0.0.1:9".into()),
        "PREPARE_SINGLE_MAX_MB" => Some("8".into()),
        "PREPARE_SHARD_MB" => Some("8".into()),
        _ => None,
    })?;

    let started = Instant::now();
    put_exports(
        &env,
        corpus::Corpus::new(TENANT, EXPORT_BYTES, FILE_BYTES, 42).map(|f| (f.key, f.bytes)),
    )
    .await;
    println!(
        "uploaded {} MB of exports for tenant {TENANT} (October 2026) in {:.1}s",
        EXPORT_BYTES / 1_000_000,
        started.elapsed().as_secs_f32()
    );

    let mut pipeline = Pipeline::from_config(&config, &env.sdk).await?;
    pipeline.metrics = Metrics::discard();
    let preparing = pipeline.preparing(config.fan_out.clone());
    let worker = ShardWorker {
        blobs: env.blobs.clone(),
        metrics: Metrics::discard(),
    };

    let body = serde_json::json!({
        "name": "globex support assistant",
        "prepare_only": true,
        "config": {
            "start_date": "2026-10-01", "end_date": "2026-10-31",
            "base_model": "gpt-4o-mini-2024-07-18",
            "min_examples": 100, "max_examples": 50000, "train_split": 0.9, "seed": 7
        }
    });
    let request = ApiEvent::post("/runs")
        .tenant(TENANT)
        .json(&body)
        .try_build()?;
    let response =
        finetune::http::start_run_handler(&pipeline.store, &config, &Metrics::discard(), request)
            .await;
    let created: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    println!(
        "POST /runs -> {}: run {} is {}",
        response.status(),
        created["id"],
        created["status"]
    );
    let run_id = RunId::parse(created["id"].as_str().unwrap_or_default())?;
    let tenant = TenantId::parse(TENANT)?;

    let started = Instant::now();
    let mut last = String::new();
    let run = loop {
        let tick = finetune_tests::events::scheduled_tick(Duration::from_secs(300))?;
        monitor::on_prepare_schedule(&preparing, &config, &tick.context).await?;
        let run = pipeline.store.get_run(&tenant, &run_id).await?;
        let line = format!("{}: {}", run.status, run.phase);
        if line != last {
            println!(
                "[{:>5.1}s] prepare tick | run {line}",
                started.elapsed().as_secs_f32()
            );
            last = line;
        }
        if run.status.is_terminal() {
            break run;
        }
        let shards_at = Instant::now();
        let driven = queue
            .drive(&worker, WORKERS, Duration::from_secs(120), |_| {
                Invocation::Normal
            })
            .await;
        if driven.invocations > 0 {
            println!(
                "[{:>5.1}s] shard workers ({WORKERS} at a time): {} invocations, {} failed, in {:.1}s",
                started.elapsed().as_secs_f32(),
                driven.invocations,
                driven.failures,
                shards_at.elapsed().as_secs_f32()
            );
        }
        if started.elapsed() > LIMIT {
            return Err(format!("the run did not finish within {LIMIT:?}").into());
        }
    };
    if run.status != finetune::domain::RunStatus::Completed {
        return Err(format!("the run ended {}: {:?}", run.status, run.error).into());
    }
    let dataset_id = run.dataset_id.clone().ok_or("no dataset")?;
    let record = pipeline.store.get_dataset(&tenant, &dataset_id).await?;
    let stats: DatasetStats = serde_json::from_value(record.stats.clone())?;
    println!(
        "dataset {dataset_id}: {} shards, {} conversations read, {} training and {} validation \
         examples, {} duplicates removed, {} e-mail addresses redacted; train.jsonl {} bytes, \
         sha256 {}",
        stats.shards,
        stats.conversations_read,
        stats.train_examples,
        stats.validation_examples,
        stats.duplicates_removed,
        stats.redactions.email,
        record.train.bytes,
        record.train.sha256
    );
    let left = env
        .blobs
        .list_prefix(&finetune::blob::shards_prefix(&tenant, &dataset_id))
        .await?;
    println!("shard objects left after the merge: {}", left.len());

    // The same exports in one pass: the same bytes, whatever the shards.
    let settings = PrepareSettings::from_run_config(&tenant, &run.config, run.provider)?;
    let one_pass = DatasetId::generate();
    let limits = FanOutLimits::default();
    let at = Instant::now();
    let fan_out = FanOut::new(&env.blobs, &limits, &one_pass, &settings);
    let Advance::Prepared(single) = fan_out.advance(None).await? else {
        return Err("the one-pass preparation was fanned out".into());
    };
    fan_out.clean_up().await;
    let same = single.train.sha256 == record.train.sha256
        && single.validation.as_ref().map(|v| &v.sha256)
            == record.validation.as_ref().map(|v| &v.sha256);
    println!(
        "one-pass preparation of the same exports ({:.1}s): train sha256 {} - {}",
        at.elapsed().as_secs_f32(),
        single.train.sha256,
        if same {
            "identical to the sharded dataset"
        } else {
            "DIFFERENT"
        }
    );
    if !same {
        return Err("the sharded and the one-pass datasets differ".into());
    }
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}
