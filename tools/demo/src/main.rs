//! `make demo`: the main job end to end on the local stack.
//!
//! Starts moto (S3, DynamoDB) and the OpenAI sandbox on loopback, uploads a
//! generated multi-day export of an example tenant's conversations, starts
//! a run through the start-run handler with the API Gateway HTTP API event
//! Lambda would deliver, drives the prepare, monitor and evaluate handlers
//! with EventBridge scheduled events until the run ends, writes the run's
//! loss curve (SVG) and prints its path, and prints the run, its model, its
//! evaluation rows and the active model. The last line is the evaluation's
//! decision and the active model. (A large run's shards, the prepare-shard
//! function's work, are `make demo-large`'s: `bin/demo-large.rs`.)
//!
//! `PROVIDER=bedrock` trains on the Bedrock adapter instead (moto's Bedrock):
//! the dataset is written in Nova's format and handed over by S3 URI. moto
//! never ends a job by itself, so the demo ends it a few seconds after it
//! starts, as Bedrock would after training.
//!
//! `PROVIDER=together` trains on Together AI's adapter against the
//! sandbox's Together mode: a LoRA adapter of an open-weight model, which
//! the deploying step copies into the tenant's prefix; the demo then
//! downloads it through `GET /models/{id}/download`'s presigned URL and
//! prints its size and sha256.
//!
//! The events are the tests' samples (`finetune_tests::events`, JSON files
//! in `tests/fixtures/events`).

mod seed;

use std::error::Error;
use std::time::{Duration, Instant};

use chrono::Utc;
use finetune::config::Config;
use finetune::domain::{ProviderKind, RunId, TenantId};
use finetune::pipeline::{Pipeline, monitor};
use finetune_tests::ApiEvent;
use openai_sandbox::{Progression, SandboxConfig};

const TENANT: &str = "acme-outfitters";
const DAYS: u32 = 5;
const PER_DAY: usize = 60;
/// The whole demo gives up after this long (the sandbox needs ~30 s).
const LIMIT: Duration = Duration::from_secs(300);
/// The service role a Bedrock job would run as (moto does not check it).
const BEDROCK_ROLE: &str = "arn:aws:iam::123456789012:role/finetune-bedrock-demo";
/// How long the demo lets a Bedrock job "train" at moto.
const BEDROCK_TRAINING: Duration = Duration::from_secs(3);
/// The open-weight model the Together demo trains a LoRA adapter of.
const TOGETHER_BASE: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Quiet by default: the demo prints its own story.
    let provider = match std::env::var("PROVIDER").as_deref() {
        Err(_) | Ok("") | Ok("openai") => ProviderKind::OpenAi,
        Ok(name) => ProviderKind::parse(name).map_err(|e| format!("PROVIDER: {e}"))?,
    };
    let bedrock = provider == ProviderKind::Bedrock;
    let endpoint = finetune_tests::moto_endpoint();
    println!("local stack: moto at {endpoint}");
    let sandbox = openai_sandbox::spawn(SandboxConfig {
        progression: Progression::Every(Duration::from_millis(1500)),
        ..SandboxConfig::default()
    })
    .await?;
    println!("OpenAI sandbox at {}", sandbox.base_url());

    let sdk = finetune_tests::sdk_config().await;
    let table = finetune_tests::unique_name("demo");
    let bucket = finetune_tests::unique_name("demo");
    let config = Config::from_lookup(|name| match name {
        // The sandbox never winds down: no test may expire with a real date.
        "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
        // The sandbox moves its jobs on by polls: poll on every tick.
        "TRAINING_POLL_SECONDS" | "PUSHED_POLL_SECONDS" => Some("0".into()),
        "FINETUNE_TABLE" => Some(table.clone()),
        "FINETUNE_BUCKET" => Some(bucket.clone()),
        "OPENAI_BASE_URL" => Some(sandbox.base_url()),
        "OPENAI_API_KEY" => Some("sk-local-demo".to_owned()),
        "RUN_LEASE_SECONDS" => Some("60".to_owned()),
        "BEDROCK_ROLE_ARN" => Some(BEDROCK_ROLE.to_owned()),
        // The sandbox's Together mode, on the same server.
        "TOGETHER_BASE_URL" => Some(sandbox.base_url()),
        "TOGETHER_API_KEY" => Some("together-local-demo".to_owned()),
        // The local sandbox answers as any model: the demo's Together run
        // is judged by its base model, which this deployment lists.
        "TOGETHER_JUDGE_MODELS" => Some(TOGETHER_BASE.to_owned()),
        _ => None,
    })?;
    finetune::store::provision::create_table(&finetune::aws::dynamodb_client(&sdk), &table).await?;
    let s3 = finetune_tests::s3_client(&sdk);
    s3.create_bucket().bucket(&bucket).send().await?;

    // The example tenant's export: five days, plain and gzipped, messy.
    let first_day = Utc::now().date_naive() - chrono::Duration::days(i64::from(DAYS) + 1);
    let last_day = first_day + chrono::Duration::days(i64::from(DAYS) - 1);
    let blobs = finetune::blob::Blobs::new(s3.clone(), &bucket);
    let files = seed::export(TENANT, first_day, DAYS, PER_DAY, 7);
    let mut bytes = 0;
    for file in &files {
        bytes += file.body.len();
        blobs
            .put_bytes(&file.key, file.body.clone(), "application/x-ndjson")
            .await?;
    }
    println!(
        "uploaded {} export files ({} KiB) for tenant {TENANT}, {first_day} to {last_day}",
        files.len(),
        bytes / 1024
    );

    // The functions' state, built as their main.rs builds it.
    let mut pipeline = Pipeline::from_config(&config, &sdk).await?;
    // The demo prints its own story; in Lambda these lines feed CloudWatch.
    pipeline.metrics = finetune::metrics::Metrics::discard();
    let store = pipeline.store.clone();
    let (preparing, monitoring, evaluating) = (
        pipeline.preparing(config.fan_out.clone()),
        pipeline.monitor(),
        pipeline.evaluating(),
    );

    // POST /runs, as API Gateway delivers it to start-run.
    let mut body = serde_json::json!({
        "name": "acme support assistant v1",
        "description": "Support conversations, last week",
        "config": {
            "start_date": first_day.to_string(),
            "end_date": last_day.to_string(),
            "base_model": "gpt-4o-mini-2024-07-18",
            "min_examples": 10,
            "max_examples": 1000,
            "train_split": 0.9,
            "system_prompt": "You are Acme Outfitters' friendly support assistant.",
            "seed": 7,
            "hyperparameters": {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": "auto"},
            // Compared with what the tenant uses today on 50 held-out
            // conversations, by chrF and by a judge in both orders; the
            // model is activated only if it is better.
            "evaluation": {"max_examples": 50, "judge_model": "gpt-4o-mini-2024-07-18"},
            "activation": "if_better"
        }
    });
    if bedrock {
        body["provider"] = "bedrock".into();
        body["config"]["base_model"] = "amazon.nova-micro-v1:0:128k".into();
        body["config"]["hyperparameters"] = serde_json::json!({"n_epochs": 2});
        body["config"]["evaluation"]["judge_model"] = "amazon.nova-lite-v1:0".into();
    }
    if provider == ProviderKind::Together {
        body["provider"] = "together".into();
        body["config"]["base_model"] = TOGETHER_BASE.into();
        body["config"]["hyperparameters"] =
            serde_json::json!({"n_epochs": 2, "lora_rank": 8, "n_checkpoints": 1});
        body["config"]["evaluation"]["judge_model"] = TOGETHER_BASE.into();
    }
    let request = ApiEvent::post("/runs")
        .tenant(TENANT)
        .header("idempotency-key", "demo-run-1")
        .json(&body)
        .try_build()?;
    let response = finetune::http::start_run_handler(
        &store,
        &config,
        &finetune::metrics::Metrics::discard(),
        request,
    )
    .await;
    let status = response.status();
    let created: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    println!(
        "POST /runs -> {status}: run {} is {}",
        created["id"], created["status"]
    );
    let run_id = RunId::parse(created["id"].as_str().unwrap_or_default())?;
    let tenant = TenantId::parse(TENANT)?;

    // The prepare, monitor and evaluate functions on their schedules, until
    // the run ends.
    let started = Instant::now();
    let mut last = String::new();
    let mut training_since: Option<Instant> = None;
    loop {
        let tick = finetune_tests::events::scheduled_tick(Duration::from_secs(60))?;
        let prepared = monitor::on_prepare_schedule(&preparing, &config, &tick.context).await?;
        let summary = monitor::on_schedule(&monitoring.ticks, &config, &tick.context).await?;
        let evaluated = monitor::on_evaluate_schedule(&evaluating, &config, &tick.context).await?;
        let run = store.get_run(&tenant, &run_id).await?;
        let line = format!("{}: {}", run.status, run.phase);
        if line != last {
            println!(
                "[{:>5.1}s] prepare advanced {}, monitor advanced {}, evaluate advanced {} | run {line}",
                started.elapsed().as_secs_f32(),
                prepared.advanced,
                summary.advanced,
                evaluated.advanced
            );
            last = line;
        }
        if run.status.is_terminal() {
            break;
        }
        if bedrock && let Some(job) = &run.job {
            let since = *training_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= BEDROCK_TRAINING && !job.status.is_terminal() {
                write_bedrock_metrics(&blobs, &tenant, &run_id).await?;
                finetune_tests::finish_bedrock_job(&job.provider_job_id, "Completed", None).await?;
                println!(
                    "[{:>5.1}s] (local stack) Bedrock job {} ends: Completed",
                    started.elapsed().as_secs_f32(),
                    job.provider_job_id
                );
            }
        }
        if started.elapsed() > LIMIT {
            return Err(format!("the run did not finish within {LIMIT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // GET /runs/{id}/metrics, as a product page's <img> fetches it.
    let request = ApiEvent::get(&format!("/runs/{run_id}/metrics"))
        .tenant(TENANT)
        .header("accept", "image/svg+xml")
        .try_build()?;
    let response = finetune::http::job_status_handler(&store, &blobs, &config, request).await;
    let dir = std::env::temp_dir().join("finetune-demo");
    std::fs::create_dir_all(&dir)?;
    let curve = dir.join(format!("{run_id}-loss.svg"));
    std::fs::write(&curve, response.body().as_ref())?;
    println!(
        "GET /runs/{run_id}/metrics (Accept: image/svg+xml) -> {}: loss curve written to {}",
        response.status(),
        curve.display()
    );

    // GET /runs/{id}, as the product would read it.
    let request = ApiEvent::get(&format!("/runs/{run_id}"))
        .tenant(TENANT)
        .try_build()?;
    let response = finetune::http::job_status_handler(&store, &blobs, &config, request).await;
    let run: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    println!("\nGET /runs/{run_id} -> {}", response.status());
    println!("{}", serde_json::to_string_pretty(&run)?);
    println!("{}", serde_json::to_string(&run)?);

    // GET /models/{id}: what the tenant's chat system would call (on
    // Bedrock, the custom model deployment's ARN).
    if run["status"] == "completed" && run["job"].is_object() {
        let model_id = finetune::domain::ModelId::for_run(&run_id);
        let request = ApiEvent::get(&format!("/models/{model_id}"))
            .tenant(TENANT)
            .try_build()?;
        let controls = pipeline.providers.controls();
        let response =
            finetune::http::models_handler(&store, &blobs, &controls, &config, request).await;
        let model: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
        println!("\nGET /models/{model_id} -> {}", response.status());
        println!("{}", serde_json::to_string_pretty(&model)?);

        // GET /runs/{id}/evaluation: the rows behind the decision.
        let request = ApiEvent::get(&format!("/runs/{run_id}/evaluation?limit=2"))
            .tenant(TENANT)
            .try_build()?;
        let response = finetune::http::job_status_handler(&store, &blobs, &config, request).await;
        let rows: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
        println!(
            "\nGET /runs/{run_id}/evaluation?limit=2 -> {}",
            response.status()
        );
        println!("{}", serde_json::to_string_pretty(&rows)?);

        // GET /models/active: what the chat system calls from now on.
        let request = ApiEvent::get("/models/active").tenant(TENANT).try_build()?;
        let response =
            finetune::http::models_handler(&store, &blobs, &controls, &config, request).await;
        let active: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
        println!("\nGET /models/active -> {}", response.status());
        println!("{}", serde_json::to_string_pretty(&active)?);
        println!(
            "\ndecision: {}; active model: {}",
            run["evaluation"]["decision"], active["id"]
        );

        // GET /models/{id}/download: the tenant's copy of the weights
        // (Together's LoRA adapter), fetched through the presigned URL.
        if provider == ProviderKind::Together {
            download_weights(&store, &blobs, &controls, &config, &model_id).await?;
        }
    }
    Ok(())
}

/// `GET /models/{id}/download`, then the URL it answers, as a tenant's
/// script would: prints the size and sha256 of what arrived and checks
/// them against the model's record.
async fn download_weights(
    store: &finetune::store::Store,
    blobs: &finetune::blob::Blobs,
    controls: &finetune::provider::Controls,
    config: &Config,
    model_id: &finetune::domain::ModelId,
) -> Result<(), Box<dyn Error>> {
    use sha2::Digest;
    let request = ApiEvent::get(&format!("/models/{model_id}/download"))
        .tenant(TENANT)
        .try_build()?;
    let response = finetune::http::models_handler(store, blobs, controls, config, request).await;
    let status = response.status();
    let download: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    println!("\nGET /models/{model_id}/download -> {status}");
    println!("{}", serde_json::to_string_pretty(&download)?);
    let url = download["url"].as_str().ok_or("no download URL")?;
    finetune::tls::install_crypto_provider();
    let bytes = reqwest::get(url).await?.error_for_status()?.bytes().await?;
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    println!(
        "downloaded {} ({} bytes, sha256 {sha256}) through the presigned URL",
        download["file"].as_str().unwrap_or_default(),
        bytes.len()
    );
    if download["sha256"] != sha256.as_str() || download["bytes"] != bytes.len() {
        return Err("the downloaded adapter is not the one the model records".into());
    }
    Ok(())
}

/// What Bedrock writes under a job's output URI when it ends, and moto does
/// not: a falling training loss per step and a validation loss per epoch,
/// so the Bedrock run's curve has something to draw.
async fn write_bedrock_metrics(
    blobs: &finetune::blob::Blobs,
    tenant: &TenantId,
    run: &RunId,
) -> Result<(), Box<dyn Error>> {
    let folder = format!(
        "{}model-customization-job-local",
        finetune::provider::bedrock::names::output_prefix(tenant, run)
    );
    let mut training = String::from("step_number,epoch_number,training_loss,perplexity\n");
    let mut validation = String::from("step_number,epoch_number,validation_loss,perplexity\n");
    for step in 0..40u32 {
        let epoch = step / 20;
        let loss = 0.45 + 1.9 * (-(f64::from(step)) / 12.0).exp();
        training.push_str(&format!("{step},{epoch},{loss:.4},{:.4}\n", loss.exp()));
        if step % 20 == 19 {
            let valid = loss + 0.08;
            validation.push_str(&format!("{step},{epoch},{valid:.4},{:.4}\n", valid.exp()));
        }
    }
    for (key, body) in [
        (
            format!("{folder}/training_artifacts/step_wise_training_metrics.csv"),
            training,
        ),
        (
            format!(
                "{folder}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"
            ),
            validation,
        ),
    ] {
        blobs.put_bytes(&key, body.into_bytes(), "text/csv").await?;
    }
    Ok(())
}
