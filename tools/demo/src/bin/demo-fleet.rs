//! `make demo-fleet`: a fleet of tenants through pools of provider slots.
//!
//! 50 small tenants start 3 runs each and one large tenant starts 100 (its
//! burst first), on OpenAI (the sandbox) and Bedrock (moto) alike, with a
//! budget of 2 slots per pool. The providers enforce their own limits too:
//! the sandbox answers 429 past 2 active jobs per base model, moto's
//! Bedrock `ServiceQuotaExceededException` past 2 running jobs. A third of
//! the way in, a stretch of busy answers: 429s on OpenAI job creation and
//! polling, and the Bedrock quota cut to 1 for a while. The prepare,
//! monitor and evaluate handlers run on scheduled events, as `make demo`
//! drives them, until every run has ended; Bedrock jobs are ended at moto
//! a tick after they start (moto never ends one by itself).
//!
//! The last line is one JSON object: runs, completed, failed, the most
//! slots any pool held at once (read from the pool records after every
//! tick) against the budget, the 429 / quota answers the providers gave,
//! `first_run_admissions_rank_max` (the latest admission rank, within its
//! pool, of any small tenant's first run: fair share keeps it at most the
//! number of small tenants plus the pool's size), the ticks it took and
//! how many function invocations failed as a whole (retried by the next
//! tick, as the schedule would).
//! Exits non-zero when a run failed, a pool went over its budget or fair
//! share was broken.
//!
//! Smaller fleets for a quick look: `FLEET_TENANTS`, `FLEET_RUNS_EACH`,
//! `FLEET_BIG_RUNS`, `FLEET_POOL_BUDGET` (defaults 50, 3, 100, 2).

#[path = "../seed.rs"]
mod seed;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use finetune::config::Config;
use finetune::domain::fleet::PoolId;
use finetune::domain::{ProviderKind, Run, RunId, RunStatus, TenantId};
use finetune::pipeline::{Pipeline, monitor};
use finetune::store::ActiveRun;
use finetune_tests::ApiEvent;
use openai_sandbox::{Fault, Progression, SandboxConfig};

const OPENAI_BASE: &str = "gpt-4o-mini-2024-07-18";
const BEDROCK_BASE: &str = "amazon.nova-micro-v1:0:128k";
const BEDROCK_ROLE: &str = "arn:aws:iam::123456789012:role/finetune-bedrock-demo";
const DAYS: u32 = 2;
const PER_DAY: usize = 20;
/// The whole demo gives up after this long.
const LIMIT: Duration = Duration::from_secs(75 * 60);

fn knob(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) if v.is_empty() => Ok(default),
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| format!("{name}: {v:?} is not a whole number from 1 to 10000")),
    }
}

/// One run the demo started: whose, on which provider, and whether it is
/// a small tenant's first.
struct Started {
    key: ActiveRun,
    small_first: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let small_tenants = knob("FLEET_TENANTS", 50)?;
    let runs_each = knob("FLEET_RUNS_EACH", 3)?;
    let big_runs = knob("FLEET_BIG_RUNS", 100)?;
    let budget = knob("FLEET_POOL_BUDGET", 2)?;

    let endpoint = finetune_tests::moto_endpoint();
    let sandbox = openai_sandbox::spawn(SandboxConfig {
        progression: Progression::Every(Duration::from_millis(150)),
        epochs: 1,
        steps_per_epoch: 2,
        max_active_jobs: Some(budget),
        ..SandboxConfig::default()
    })
    .await?;
    println!(
        "local stack: moto at {endpoint}, OpenAI sandbox at {} (at most {budget} active jobs per base model)",
        sandbox.base_url()
    );

    let sdk = finetune_tests::sdk_config().await;
    let table = finetune_tests::unique_name("fleet");
    let bucket = finetune_tests::unique_name("fleet");
    let config = Config::from_lookup(|name| match name {
        "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
        // The sandbox moves its jobs on by polls: poll on every tick.
        "TRAINING_POLL_SECONDS" | "PUSHED_POLL_SECONDS" => Some("0".into()),
        "FINETUNE_TABLE" => Some(table.clone()),
        "FINETUNE_BUCKET" => Some(bucket.clone()),
        "OPENAI_BASE_URL" => Some(sandbox.base_url()),
        "OPENAI_API_KEY" => Some("sk-local-demo".to_owned()),
        "RUN_LEASE_SECONDS" => Some("60".to_owned()),
        "BEDROCK_ROLE_ARN" => Some(BEDROCK_ROLE.to_owned()),
        "POOL_BUDGETS" => Some(format!("openai={budget},bedrock={budget}")),
        // A busy provider is waited out for a second here, not a minute.
        "PROVIDER_COOL_DOWN_SECONDS" => Some("1".to_owned()),
        _ => None,
    })?;
    finetune::store::provision::create_table(&finetune::aws::dynamodb_client(&sdk), &table).await?;
    let s3 = finetune_tests::s3_client(&sdk);
    s3.create_bucket().bucket(&bucket).send().await?;
    finetune_tests::bedrock_quota(&bucket, Some(budget)).await?;

    // Every tenant's export: two days of conversations.
    let first_day = Utc::now().date_naive() - chrono::Duration::days(i64::from(DAYS) + 1);
    let last_day = first_day + chrono::Duration::days(i64::from(DAYS) - 1);
    let blobs = finetune::blob::Blobs::new(s3.clone(), &bucket);
    let big = "bulk-buyer".to_owned();
    let smalls: Vec<String> = (0..small_tenants).map(|i| format!("shop-{i:03}")).collect();
    for (i, tenant) in std::iter::once(&big).chain(&smalls).enumerate() {
        for file in seed::export(tenant, first_day, DAYS, PER_DAY, i as u64) {
            blobs
                .put_bytes(&file.key, file.body, "application/x-ndjson")
                .await?;
        }
    }
    println!(
        "uploaded exports for {} tenants, {first_day} to {last_day}",
        small_tenants + 1
    );

    let mut pipeline = Pipeline::from_config(&config, &sdk).await?;
    pipeline.metrics = finetune::metrics::Metrics::discard();
    let store = pipeline.store.clone();
    let (preparing, monitoring, evaluating) = (
        pipeline.preparing(config.fan_out.clone()),
        pipeline.monitor(),
        pipeline.evaluating(),
    );

    // The large tenant's burst first, then every small tenant's runs; a
    // small tenant's runs alternate between the providers, starting with
    // OpenAI for even tenants and Bedrock for odd ones.
    let mut started: Vec<Started> = Vec::new();
    let start = |tenant: String, n: usize, provider: ProviderKind| {
        let store = &store;
        let config = &config;
        async move {
            let mut body = serde_json::json!({
                "name": format!("{tenant} assistant #{n}"),
                "config": {
                    "start_date": first_day.to_string(),
                    "end_date": last_day.to_string(),
                    "base_model": OPENAI_BASE,
                    "min_examples": 10,
                    "max_examples": 1000,
                    "train_split": 0.8,
                    "seed": n,
                    "hyperparameters": {"n_epochs": 1},
                    "evaluation": {"max_examples": 3},
                    "activation": "if_better"
                }
            });
            if provider == ProviderKind::Bedrock {
                body["provider"] = "bedrock".into();
                body["config"]["base_model"] = BEDROCK_BASE.into();
            }
            let request = ApiEvent::post("/runs")
                .tenant(&tenant)
                .header("idempotency-key", &format!("fleet-{n}"))
                .json(&body)
                .try_build()?;
            let response = finetune::http::start_run_handler(
                store,
                config,
                &finetune::metrics::Metrics::discard(),
                request,
            )
            .await;
            let created: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
            let id = RunId::parse(created["id"].as_str().unwrap_or_default())
                .map_err(|e| format!("POST /runs for {tenant} -> {}: {e}", response.status()))?;
            Ok::<_, Box<dyn Error>>(ActiveRun {
                tenant_id: TenantId::parse(&tenant)?,
                run_id: id,
            })
        }
    };
    for n in 0..big_runs {
        let provider = if n % 2 == 0 {
            ProviderKind::OpenAi
        } else {
            ProviderKind::Bedrock
        };
        let key = start(big.clone(), n, provider).await?;
        started.push(Started {
            key,
            small_first: false,
        });
    }
    for (i, tenant) in smalls.iter().enumerate() {
        for n in 0..runs_each {
            let provider = if (i + n) % 2 == 0 {
                ProviderKind::OpenAi
            } else {
                ProviderKind::Bedrock
            };
            let key = start(tenant.clone(), n, provider).await?;
            started.push(Started {
                key,
                small_first: n == 0,
            });
        }
    }
    let total = started.len();
    println!(
        "POST /runs: {big_runs} runs for {big}, {runs_each} for each of {small_tenants} small tenants ({total} in all)"
    );

    let keys: Vec<ActiveRun> = started.iter().map(|s| s.key.clone()).collect();
    let small_first: HashSet<RunId> = started
        .iter()
        .filter(|s| s.small_first)
        .map(|s| s.key.run_id.clone())
        .collect();
    let mut admitted: HashMap<RunId, (PoolId, DateTime<Utc>)> = HashMap::new();
    let mut max_held: BTreeMap<String, usize> = BTreeMap::new();
    let mut bedrock_seen: HashSet<String> = HashSet::new();
    let mut stretch: Option<usize> = None;
    let began = Instant::now();
    let mut ticks = 0usize;
    let mut failed_ticks = 0usize;
    let mut last_report = Instant::now();
    let runs = loop {
        ticks += 1;
        let tick = finetune_tests::events::scheduled_tick(Duration::from_secs(60))?;
        // A tick that fails as a whole (the table did not answer in time)
        // is what Lambda would report as a failed invocation: the next
        // scheduled event tries again, and so does the demo.
        let outcomes = [
            monitor::on_prepare_schedule(&preparing, &config, &tick.context)
                .await
                .map(|_| ()),
            monitor::on_schedule(&monitoring.ticks, &config, &tick.context)
                .await
                .map(|_| ()),
            monitor::on_evaluate_schedule(&evaluating, &config, &tick.context)
                .await
                .map(|_| ()),
        ];
        for error in outcomes.into_iter().filter_map(Result::err) {
            failed_ticks += 1;
            eprintln!(
                "tick {ticks} failed (the next one retries): {}",
                finetune::telemetry::chain(&error)
            );
        }

        for pool in store.list_pools().await? {
            let held = store.get_pool(&pool).await?.holders.len();
            let max = max_held.entry(pool.to_string()).or_default();
            *max = (*max).max(held);
        }
        let runs = store.get_runs(&keys).await?;
        for run in &runs {
            if let Some(a) = &run.admission {
                admitted
                    .entry(run.id.clone())
                    .or_insert_with(|| (a.pool.clone(), a.admitted_at));
            }
            end_bedrock_job(run, &mut bedrock_seen).await?;
        }
        let ended = runs.iter().filter(|r| r.status.is_terminal()).count();

        // A third of the way in: the providers get busy for a while.
        if stretch.is_none() && ended * 3 >= total {
            stretch = Some(ticks);
            sandbox.inject(Fault::rate_limited("POST", "/fine_tuning/jobs", "0", 24));
            sandbox.inject(Fault::rate_limited("GET", "/fine_tuning/jobs/", "0", 24));
            finetune_tests::bedrock_quota(&bucket, Some(1)).await?;
            println!(
                "[{:>6.1}s] tick {ticks}: providers busy (OpenAI 429s, Bedrock quota 1)",
                began.elapsed().as_secs_f32()
            );
        }
        if stretch.is_some_and(|at| ticks == at + 15) {
            finetune_tests::bedrock_quota(&bucket, Some(budget)).await?;
            println!(
                "[{:>6.1}s] tick {ticks}: Bedrock quota back to {budget}",
                began.elapsed().as_secs_f32()
            );
        }
        if last_report.elapsed() >= Duration::from_secs(10) || ended == total {
            last_report = Instant::now();
            let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
            for run in &runs {
                *by_status.entry(run.status.as_str()).or_default() += 1;
            }
            println!(
                "[{:>6.1}s] tick {ticks}: {by_status:?}",
                began.elapsed().as_secs_f32()
            );
        }
        if ended == total {
            break runs;
        }
        if began.elapsed() > LIMIT {
            return Err(format!("the fleet did not finish within {LIMIT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let completed = runs
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .count();
    let failed: Vec<&Run> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .collect();
    for run in &failed {
        eprintln!("failed: {}/{}: {:?}", run.tenant_id, run.id, run.error);
    }
    let rank_max = first_run_rank_max(&admitted, &small_first);
    let rate_limited =
        sandbox.rate_limited_answers() + finetune_tests::bedrock_quota_refusals(&bucket).await?;
    let summary = serde_json::json!({
        "runs": total,
        "completed": completed,
        "failed": failed.len(),
        "max_in_flight_per_pool": max_held,
        "pool_budget": budget,
        "rate_limited_answers": rate_limited,
        "first_run_admissions_rank_max": rank_max,
        "ticks": ticks,
        "failed_ticks": failed_ticks,
    });
    let over = max_held.values().any(|&held| held > budget);
    let unfair = rank_max > small_tenants + budget;
    println!("{summary}");
    if !failed.is_empty() || completed != total || over || unfair {
        return Err("the fleet did not end as it should (see the line above)".into());
    }
    Ok(())
}

/// The latest rank, within its pool's admission order, of any small
/// tenant's first run. Runs admitted in the same pass share the pass's
/// time; a tie counts at its worst (every run admitted at or before it).
fn first_run_rank_max(
    admitted: &HashMap<RunId, (PoolId, DateTime<Utc>)>,
    small_first: &HashSet<RunId>,
) -> usize {
    admitted
        .iter()
        .filter(|(id, _)| small_first.contains(*id))
        .map(|(_, (pool, at))| {
            admitted
                .values()
                .filter(|(p, t)| p == pool && t <= at)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Ends a Bedrock run's job at moto on the tick after the demo first saw
/// it running, as Bedrock would when training ends.
async fn end_bedrock_job(run: &Run, seen: &mut HashSet<String>) -> Result<(), Box<dyn Error>> {
    let Some(job) = &run.job else {
        return Ok(());
    };
    if run.provider != ProviderKind::Bedrock
        || run.status != RunStatus::Training
        || job.status.is_terminal()
    {
        return Ok(());
    }
    if !seen.insert(job.provider_job_id.clone()) {
        finetune_tests::finish_bedrock_job(&job.provider_job_id, "Completed", None).await?;
    }
    Ok(())
}
