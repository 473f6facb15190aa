//! `make bench-monitor` = `cargo run --release -p demo --bin monitor-bench [RUNS] [LATENCY_MS] [CONCURRENCY]`
//!
//! What one monitor tick costs over a fleet: RUNS runs (default 10,000), a
//! third in training (each with a job at an OpenAI sandbox that adds
//! LATENCY_MS, default 50, to every call), a third waiting for a pool
//! that is cooling down, a third evaluating (the evaluate function's),
//! reconciled with CONCURRENCY (default 16, the deployed default) at once,
//! against moto, with the deployed polling policy, in three ticks: every
//! job due (the first tick after an outage: the jobs have trained for two
//! hours, each poll copies its creation events), the tick right after
//! (nothing due), and the steady state of a fleet of long jobs, whose next
//! polls are spread over the 10-minute interval (the bench spreads them
//! with the store's own `defer_run`): a tenth of them due, nothing new.
//! Per tick it prints the wall time, the DynamoDB requests and items read
//! by operation with the read units they would cost (eventually
//! consistent index Queries 0.5 per 4 KB, strongly consistent Get and
//! BatchGet 1 per 4 KB of each item), and the provider calls. Asserts
//! nothing (benchmarks are not tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::Utc;
use finetune::domain::fleet::PoolId;
use finetune::domain::{
    Filters, Hyperparameters, JobInfo, NewRun, ProviderKind, Run, RunConfig, RunStatus, TenantId,
    TrainSplit, Waiting,
};
use finetune::pipeline::{Pipeline, monitor};
use finetune::provider::openai::{ApiKey, ClientSettings, OpenAiClient, OpenAiProvider};
use finetune::provider::registry::Providers;
use finetune::provider::{CreateJob, DatasetFileSource, FineTuningProvider, JobTags};
use finetune::store::Store;
use futures::StreamExt;
use openai_sandbox::{Progression, SandboxConfig};
use sha2::{Digest, Sha256};

const MODEL: &str = "gpt-4o-mini-2024-07-18";

/// Requests, items read and read units, by DynamoDB operation.
#[derive(Debug, Default)]
struct Reads(Mutex<BTreeMap<String, (u64, u64, f64)>>);

impl Reads {
    fn take(&self) -> BTreeMap<String, (u64, u64, f64)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Counts every DynamoDB call of the store's client as it completes.
#[derive(Debug)]
struct CountReads(Arc<Reads>);

impl Intercept for CountReads {
    fn name(&self) -> &'static str {
        "CountReads"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let (items, units) = match context.output_or_error() {
            Some(Ok(output)) => {
                if let Some(q) = output.downcast_ref::<QueryOutput>() {
                    let bytes: usize = q.items().iter().map(item_bytes).sum();
                    (
                        q.items().len(),
                        0.5 * (bytes as f64 / 4096.0).ceil().max(1.0),
                    )
                } else if let Some(b) = output.downcast_ref::<BatchGetItemOutput>() {
                    let items: Vec<_> = b
                        .responses()
                        .into_iter()
                        .flat_map(|tables| tables.values())
                        .flatten()
                        .collect();
                    let units = items.iter().map(|i| read_units(i)).sum();
                    (items.len(), units)
                } else if let Some(g) = output.downcast_ref::<GetItemOutput>() {
                    (
                        usize::from(g.item().is_some()),
                        g.item().map_or(1.0, read_units),
                    )
                } else {
                    (0, 0.0)
                }
            }
            _ => (0, 0.0),
        };
        let mut by_op = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = by_op.entry(op).or_default();
        entry.0 += 1;
        entry.1 += items as u64;
        entry.2 += units;
        Ok(())
    }
}

/// A strongly consistent read of one item: 1 unit per 4 KB.
fn read_units(item: &std::collections::HashMap<String, AttributeValue>) -> f64 {
    (item_bytes(item) as f64 / 4096.0).ceil().max(1.0)
}

/// DynamoDB's item size: attribute names plus values.
fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.iter().map(String::len).sum(),
        AttributeValue::M(m) => 3 + item_bytes(m),
        AttributeValue::L(l) => 3 + l.iter().map(value_bytes).sum::<usize>(),
        _ => 1,
    }
}

fn new_run(tenant: &TenantId, i: usize) -> Run {
    Run::new_queued(
        NewRun {
            tenant_id: tenant.clone(),
            name: format!("bench {i}"),
            description: None,
            provider: ProviderKind::OpenAi,
            config: RunConfig {
                start_date: None,
                end_date: None,
                base_model: MODEL.into(),
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
        // Two hours in training: polled at the policy's longest interval.
        Utc::now() - chrono::Duration::hours(2),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(10_000) as usize;
    let latency = Duration::from_millis(args.get(1).copied().unwrap_or(50));
    let concurrency = args.get(2).copied().unwrap_or(16) as usize;

    let env = finetune_tests::TestEnv::new().await;
    let reads = Arc::new(Reads::default());
    let counted = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(CountReads(reads.clone()))
            .build(),
    );
    let store = Store::new(counted, &env.table);
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

    // One training file, then the mix (set-up, not timed): training runs
    // with a sandbox job each, waiting runs behind a pool that is cooling
    // down (a busy provider), evaluating runs (the evaluate function's).
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
    let pool = PoolId::new(ProviderKind::OpenAi, MODEL)?;
    env.store.register_pool(&pool).await?;
    env.store
        .cool_down(&pool, Utc::now() + chrono::Duration::hours(1))
        .await?;
    let (training, waiting) = (runs / 3, runs / 3);
    let evaluating = runs - training - waiting;
    let setup = Instant::now();
    let results: Vec<Result<(), Box<dyn std::error::Error>>> = futures::stream::iter(0..runs)
        .map(|i| {
            let (openai, env, file, pool) = (openai.clone(), &env, file.clone(), pool.clone());
            // A hundred tenants, so the runs are spread as a fleet's are.
            let tenant = TenantId::parse(format!("tenant-{:03}", i % 100));
            async move {
                let tenant = tenant?;
                let mut run = new_run(&tenant, i);
                if i < training {
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
                } else if i < training + waiting {
                    run.status = RunStatus::Waiting;
                    run.phase = "waiting: the provider was busy".into();
                    run.waiting = Some(Waiting {
                        pool,
                        since: Utc::now(),
                        reason: None,
                    });
                } else {
                    run.status = RunStatus::Evaluating;
                    run.phase = "evaluating".into();
                }
                env.store.create_run(&run, None).await?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!(
        "set-up: {runs} runs ({training} training with a sandbox job each, {waiting} waiting \
         behind a cooling pool, {evaluating} evaluating; {failed} failed) in {:.1}s",
        setup.elapsed().as_secs_f32()
    );

    sandbox.set_latency(latency);
    let pipeline = Pipeline {
        store,
        blobs: env.blobs.clone(),
        providers: Providers::new().with(openai),
        answerers: finetune::provider::registry::Answerers::none(),
        lease: Duration::from_secs(360),
        metrics: finetune::metrics::Metrics::discard(),
        fleet: config.fleet.clone(),
    };
    let monitoring = pipeline.monitor();

    let ticks = [
        "every job due (new events)",
        "the next tick (nothing due)",
        "steady state (a tenth due, nothing new)",
    ];
    for label in ticks {
        if label.starts_with("steady") {
            spread_next_polls(&env.store).await?;
        }
        reads.take();
        sandbox.clear_requests();
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
        let provider_calls = sandbox.requests().len();
        println!(
            "{label}: {runs} runs, {} ms provider latency per call, concurrency {concurrency}: \
             {:.1} s (checked {}, unchanged {}, advanced {}, failed {}, skipped {}); \
             {provider_calls} provider calls",
            latency.as_millis(),
            took.as_secs_f32(),
            summary.checked,
            summary.unchanged,
            summary.advanced,
            summary.failed,
            summary.skipped
        );
        let by_op = reads.take();
        let mut units = 0.0;
        for (op, (requests, items, read_units)) in &by_op {
            units += read_units;
            println!(
                "  DynamoDB {op}: {requests} requests, {items} items read, {read_units:.1} read units"
            );
        }
        println!("  read units in all: {units:.1}");
    }
    Ok(())
}

/// The steady state of long jobs polled every ten minutes: each training
/// run's next poll somewhere in the coming ten minutes (evenly, by its
/// place in the list), so a tenth of them fall due in any one minute —
/// what many ticks of the policy leave behind, without waiting for them.
async fn spread_next_polls(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    let keys = store.list_active_runs().await?;
    let runs: Vec<Run> = store
        .get_runs(&keys)
        .await?
        .into_iter()
        .filter(|run| run.status == RunStatus::Training)
        .collect();
    let count = runs.len().max(1) as i64;
    let now = Utc::now();
    let results: Vec<_> = futures::stream::iter(runs.iter().enumerate())
        .map(|(i, run)| {
            // from one minute ago to nine minutes ahead
            let offset = -60_000 + 600_000 * i as i64 / count;
            store.defer_run(run, now + chrono::Duration::milliseconds(offset))
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok(())
}
