//! `cargo run --release -p demo --bin monitor-bench [RUNS] [LATENCY_MS] [CONCURRENCY]`
//!
//! How long one monitor tick takes over many active runs: RUNS runs (default
//! 1,000) in training, each with a job at an OpenAI sandbox that adds
//! LATENCY_MS (default 50) to every call, reconciled with CONCURRENCY
//! (default 16, the deployed default) at once, against moto, twice: once
//! with news from every job, once with none. Prints figures;
//! asserts nothing (benchmarks are not tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use finetune::domain::{
    Filters, Hyperparameters, JobInfo, NewRun, ProviderKind, Run, RunConfig, RunStatus, TenantId,
    TrainSplit,
};
use finetune::pipeline::{Pipeline, monitor};
use finetune::provider::openai::{ApiKey, ClientSettings, OpenAiClient, OpenAiProvider};
use finetune::provider::registry::Providers;
use finetune::provider::{CreateJob, DatasetFileSource, FineTuningProvider, JobTags};
use futures::StreamExt;
use openai_sandbox::{Progression, SandboxConfig};
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(1000) as usize;
    let latency = Duration::from_millis(args.get(1).copied().unwrap_or(50));
    let concurrency = args.get(2).copied().unwrap_or(16) as usize;

    let env = finetune_tests::TestEnv::new().await;
    let sandbox = openai_sandbox::spawn(SandboxConfig {
        progression: Progression::Manual,
        ..SandboxConfig::default()
    })
    .await?;
    let config = finetune::config::Config::from_lookup(|name| match name {
        // The sandbox never winds down: no test may expire with a real date.
        "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
        "FINETUNE_TABLE" => Some(env.table.clone()),
        "FINETUNE_BUCKET" => Some(env.bucket.clone()),
        "OPENAI_BASE_URL" => Some(sandbox.base_url()),
        "OPENAI_API_KEY" => Some("sk-bench".into()),
        _ => None,
    })?;
    let client = OpenAiClient::new(
        ClientSettings::from_config(&config.openai),
        ApiKey::new("sk-bench"),
    )?;
    let openai = Arc::new(OpenAiProvider::new(client, env.blobs.clone()));

    // One training file, then RUNS jobs and runs in training (set-up, not timed).
    let body: String = (0..10)
        .map(|i| format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"q{i}\"}},{{\"role\":\"assistant\",\"content\":\"a{i}\"}}]}}\n"))
        .collect();
    let sha = hex::encode(Sha256::digest(body.as_bytes()));
    env.blobs
        .put_bytes(
            "datasets/bench/train.jsonl",
            body.clone().into_bytes(),
            "application/jsonl",
        )
        .await?;
    let file = openai
        .prepare_file(&DatasetFileSource {
            bucket: env.bucket.clone(),
            key: "datasets/bench/train.jsonl".into(),
            bytes: body.len() as u64,
            sha256: sha,
            filename: "train.jsonl".into(),
        })
        .await?;
    let tenant = TenantId::parse("bench")?;
    let setup = Instant::now();
    let results: Vec<Result<(), Box<dyn std::error::Error>>> = futures::stream::iter(0..runs)
        .map(|i| {
            let (openai, env, tenant, file) = (openai.clone(), &env, tenant.clone(), file.clone());
            async move {
                let mut run = Run::new_queued(
                    NewRun {
                        tenant_id: tenant.clone(),
                        name: format!("bench {i}"),
                        description: None,
                        provider: ProviderKind::OpenAi,
                        config: RunConfig {
                            start_date: None,
                            end_date: None,
                            base_model: "gpt-4o-mini-2024-07-18".into(),
                            min_examples: 10,
                            max_examples: 100,
                            train_split: TrainSplit::new(1.0).unwrap_or(TrainSplit::DEFAULT),
                            system_prompt: None,
                            seed: 1,
                            hyperparameters: Hyperparameters::default(),
                            filters: Filters::default(),
                            evaluation: Default::default(),
                            activation: Default::default(),
                            serving: Default::default(),
                        },
                        dataset_id: None,
                        prepare_only: false,
                    },
                    Utc::now(),
                );
                let job = openai
                    .create_job(&CreateJob {
                        tags: JobTags {
                            tenant_id: tenant,
                            run_id: run.id.clone(),
                        },
                        base_model: run.config.base_model.clone(),
                        training_file: file,
                        validation_file: None,
                        hyperparameters: Hyperparameters::default(),
                        suffix: None,
                        seed: None,
                    })
                    .await?;
                run.status = RunStatus::Training;
                run.phase = "training".into();
                run.job = Some(JobInfo {
                    provider_job_id: job.id,
                    status: job.status,
                    provider_status: job.provider_status,
                    fine_tuned_model: None,
                    trained_tokens: None,
                    error: None,
                    estimated_finish: None,
                    finished_at: None,
                    synced_at: Utc::now(),
                    events_cursor: None,
                    step: None,
                    total_steps: None,
                });
                env.store.create_run(&run, None).await?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!(
        "set-up: {runs} runs in training with a sandbox job each ({failed} failed) in {:.1}s",
        setup.elapsed().as_secs_f32()
    );

    sandbox.set_latency(latency);
    let pipeline = Pipeline {
        store: env.store.clone(),
        blobs: env.blobs.clone(),
        providers: Providers::new().with(openai),
        answerers: finetune::provider::registry::Answerers::none(),
        lease: Duration::from_secs(360),
        metrics: finetune::metrics::Metrics::discard(),
        fleet: Default::default(),
    };
    let monitoring = pipeline.monitor();
    // Where a tick's time goes: the same number of bare reads of each kind.
    let ids: Vec<_> = pipeline.store.list_active_runs().await?;
    let started = Instant::now();
    futures::stream::iter(ids.iter())
        .map(|a| pipeline.store.get_run(&a.tenant_id, &a.run_id))
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    println!(
        "{} GetItem of a run at concurrency {concurrency} (moto): {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f32()
    );
    let started = Instant::now();
    let runs_now: Vec<Run> = pipeline.store.get_runs(&ids).await?;
    println!(
        "the same {} runs by BatchGetItem (moto): {:.1} s",
        runs_now.len(),
        started.elapsed().as_secs_f32()
    );
    let provider = pipeline.providers.get(ProviderKind::OpenAi)?;
    let started = Instant::now();
    futures::stream::iter(runs_now.iter().filter_map(|r| r.job.as_ref()))
        .map(|job| provider.get_job(&job.provider_job_id))
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    println!(
        "{} GET /fine_tuning/jobs/{{id}} at concurrency {concurrency} (sandbox): {:.1} s",
        runs_now.len(),
        started.elapsed().as_secs_f32()
    );

    // The first tick copies each job's creation events (a write per run);
    // the second is the steady state of long jobs (nothing new).
    for label in ["first tick (new events)", "next tick (nothing new)"] {
        let started = Instant::now();
        let summary = monitor::run_once(
            &monitoring.ticks,
            "bench",
            concurrency,
            started + Duration::from_secs(300),
            Duration::from_secs(20),
            None,
        )
        .await?;
        let took = started.elapsed();
        println!(
            "{label}: {} runs, {} ms provider latency per call, concurrency {concurrency}: {:.1} s \
             (checked {}, unchanged {}, advanced {}, failed {}, skipped {})",
            runs,
            latency.as_millis(),
            took.as_secs_f32(),
            summary.checked,
            summary.unchanged,
            summary.advanced,
            summary.failed,
            summary.skipped
        );
    }
    Ok(())
}
