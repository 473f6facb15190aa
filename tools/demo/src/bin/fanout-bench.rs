//! The fan-out preparation's figures, on the local stack. Prints; asserts
//! nothing.
//!
//!   cargo build --release -p demo --bin fanout-bench
//!   $CARGO_TARGET_DIR/release/fanout-bench MEGABYTES [SHARD_MB=256] [WORKERS=8]
//!
//! Uploads MEGABYTES of generated exports (64 MB files) to moto's S3, then:
//! 1. the single path (one invocation's code) over the first day's files:
//!    its MB/s is what bounds a run prepared in one invocation;
//! 2. the whole run fanned out in SHARD_MB shards: the bucket notifies
//!    moto's SQS of each task, and WORKERS shard workers run at once, each a
//!    process of its own (this binary with `--worker`, the real handler on
//!    the SQS event) under `/usr/bin/time`, for its wall time, CPU time and
//!    peak RSS;
//! 3. the merge, in a process of its own (`--merge`): its time and peak RSS;
//! 4. shard 0 again at Lambda's memory sizes (512, 1024, 1769, 3008 MB),
//!    the worker under the CPU quota Lambda gives each (memory/1769 of a
//!    core, a cgroup v1 `cpu` group; skipped where none can be made): its
//!    time and MB-seconds per GB of exports.
//!
//! moto is one Python process and serves every worker's S3 reads and
//! writes: on a small machine it, not the workers, sets the pace. Each
//! shard's CPU seconds say what a worker costs where S3 is not the limit.

use std::error::Error;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use finetune::blob::Blobs;
use finetune::dataset::PrepareSettings;
use finetune::dataset::fanout::{Advance, FanOut, FanOutLimits};
use finetune::dataset::io::{DatasetSink, ExportSource};
use finetune::dataset::prepare::prepare_within;
use finetune::domain::{DatasetId, DateRange, Filters, TenantId, TrainSplit};
use finetune::metrics::Metrics;
use finetune::pipeline::shard_worker::ShardWorker;
use finetune_tests::shards::{ShardQueue, put_exports};
use finetune_tests::{PeakMemory, TestEnv};

const TENANT: &str = "bench";
const MB: u64 = 1_000_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--worker") => return worker().await,
        Some("--merge") => {
            return merge(
                args.get(1).map_or("", String::as_str),
                args.get(2).map_or("256", String::as_str),
            )
            .await;
        }
        _ => {}
    }
    let megabytes: u64 = args.first().map_or(Ok(1000), |a| a.parse())?;
    let shard_mb: u64 = args.get(1).map_or(Ok(256), |a| a.parse())?;
    let workers: usize = args.get(2).map_or(Ok(8), |a| a.parse())?;

    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    let at = Instant::now();
    put_exports(
        &env,
        corpus::Corpus::new(TENANT, megabytes * MB, 64 * MB, 1).map(|f| (f.key, f.bytes)),
    )
    .await;
    println!(
        "exports: {megabytes} MB in {} files of 64 MB, uploaded to moto in {:.1}s",
        megabytes.div_ceil(64),
        at.elapsed().as_secs_f32()
    );

    // 1. The single path over the first day's files.
    let one_day = settings(1, 1);
    let at = Instant::now();
    let peak = PeakMemory::start();
    let out = prepare_within(
        &ExportSource::S3(env.blobs.clone()),
        &DatasetSink::S3 {
            blobs: env.blobs.clone(),
            tenant: one_day.tenant.clone(),
            dataset: DatasetId::generate(),
        },
        &one_day,
        Default::default(),
        None,
    )
    .await?;
    let secs = at.elapsed().as_secs_f64();
    let day_bytes = files_of_day(megabytes, 1) * 64 * MB;
    println!(
        "single path (one invocation's code, one core): {} MB ({} files) in {secs:.1}s = {:.1} MB/s, \
         peak RSS {} MiB; its /tmp spill was about {} MB",
        day_bytes / MB,
        out.stats.files_read,
        day_bytes as f64 / secs / 1e6,
        peak.finish() / (1024 * 1024),
        (out.train.bytes + out.validation.as_ref().map_or(0, |v| v.bytes)) / MB
    );

    // 2. The run, fanned out.
    let settings = settings(1, 28);
    let limits = FanOutLimits {
        single_max_bytes: 1,
        shard_bytes: shard_mb * 1024 * 1024,
        ..FanOutLimits::default()
    };
    let dataset = DatasetId::generate();
    let fan_out = FanOut::new(&env.blobs, &limits, &dataset, &settings);
    let started = Instant::now();
    let Advance::Waiting { handed_out, .. } = fan_out.advance(None).await? else {
        return Err("the run was not fanned out".into());
    };
    let shards = handed_out.unwrap_or(0) as usize;
    println!(
        "fanned out: {shards} shards of about {shard_mb} MiB, handed out in {:.2}s",
        started.elapsed().as_secs_f32()
    );
    let this = std::env::current_exe()?;
    let mut runs: Vec<ShardRun> = Vec::new();
    let mut running: Vec<(
        std::process::Child,
        aws_lambda_events::sqs::SqsMessage,
        Instant,
    )> = Vec::new();
    while runs.len() < shards {
        while running.len() < workers {
            let Some(message) = queue.receive(1).await.pop() else {
                break;
            };
            if message
                .body
                .as_deref()
                .unwrap_or("")
                .contains("s3:TestEvent")
            {
                queue.settle(&message, &SqsBatchResponse::default()).await;
                continue;
            }
            let mut event = SqsEvent::default();
            event.records.push(message.clone());
            let mut child = Command::new("/usr/bin/time")
                .args(["-f", "%e %M %U %S"])
                .arg(&this)
                .arg("--worker")
                .env("FINETUNE_TEST_ENDPOINT", finetune_tests::moto_endpoint())
                .env("BENCH_BUCKET", &env.bucket)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(serde_json::to_string(&event)?.as_bytes())?;
            }
            running.push((child, message, Instant::now()));
        }
        if running.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut i = 0;
        while i < running.len() {
            if running[i].0.try_wait()?.is_some() {
                let (child, message, began) = running.swap_remove(i);
                let output = child.wait_with_output()?;
                let response: SqsBatchResponse =
                    serde_json::from_slice(&output.stdout).unwrap_or_default();
                queue.settle(&message, &response).await;
                let time = String::from_utf8_lossy(&output.stderr);
                let last = time.lines().last().unwrap_or_default().to_owned();
                let f: Vec<f64> = last
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                if !response.batch_item_failures.is_empty() || f.len() < 4 {
                    eprintln!("a shard failed: {time}");
                    continue;
                }
                runs.push(ShardRun {
                    wall: began.elapsed().as_secs_f64(),
                    rss_mib: f[1] / 1024.0,
                    cpu: f[2] + f[3],
                });
            } else {
                i += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shards_done = started.elapsed().as_secs_f64();

    // The first shard's files, for the memory sweep after the merge.
    let plan: finetune::dataset::fanout::Plan = env
        .blobs
        .get_json(&finetune::blob::keys::shards_record_key(
            &settings.tenant,
            &dataset,
            "plan.json",
        ))
        .await?;

    // 3. The merge, in a process of its own for its peak RSS.
    let at = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%e %M %U %S"])
        .arg(&this)
        .args(["--merge", dataset.as_str(), &shard_mb.to_string()])
        .env("FINETUNE_TEST_ENDPOINT", finetune_tests::moto_endpoint())
        .env("BENCH_BUCKET", &env.bucket)
        .output()?;
    let merge_secs = at.elapsed().as_secs_f64();
    let time = String::from_utf8_lossy(&output.stderr);
    let merge_rss = time
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    let prepared: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the merge printed no stats ({e}): {time}"))?;
    let total = started.elapsed().as_secs_f64();

    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let slowest = runs.last().map_or(0.0, |r| r.wall);
    let median = runs.get(runs.len() / 2).map_or(0.0, |r| r.wall);
    let rss = runs.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
    let cpu: f64 = runs.iter().map(|r| r.cpu).sum();
    let bytes = megabytes * MB;
    println!(
        "shards: {} done by {workers} workers in {shards_done:.1}s ({:.1} MB/s); per shard: \
         median {median:.1}s, slowest {slowest:.1}s, peak RSS {rss:.0} MiB at most; CPU \
         {cpu:.1}s in all = {:.1} MB per CPU-second",
        runs.len(),
        bytes as f64 / shards_done / 1e6,
        bytes as f64 / cpu / 1e6
    );
    let stat = |name: &str| prepared["stats"][name].as_u64().unwrap_or(0);
    let examples = stat("train_examples") + stat("validation_examples") + stat("sampled_out");
    println!(
        "merge (a process of its own): {examples} examples of {} conversations from {} shards \
         in {merge_secs:.1}s, peak RSS {merge_rss:.0} MiB; train.jsonl {} MB",
        stat("conversations_read"),
        stat("shards"),
        prepared["train_bytes"].as_u64().unwrap_or(0) / MB,
    );
    println!(
        "fan-out in all: {megabytes} MB of exports to a dataset in {total:.1}s ({:.1} MB/s)",
        bytes as f64 / total / 1e6
    );

    // 4. One shard's cost at Lambda's memory sizes: Lambda gives a function
    // CPU in proportion to its memory (1769 MB = one vCPU), so the worker is
    // run under a CPU quota of memory/1769 of a core (a cgroup), S3 not.
    if let Some(first) = plan.shards.first() {
        println!(
            "memory sweep, shard 0 ({} files, {} MB):",
            first.files.len(),
            first.effective_bytes / MB
        );
        for memory in [512u64, 1024, 1769, 3008] {
            let dataset = DatasetId::generate();
            let task = finetune::dataset::fanout::ShardTask {
                tenant: settings.tenant.clone(),
                dataset: dataset.clone(),
                shard: 0,
                shards: 1,
                files: first.files.clone(),
                effective_bytes: first.effective_bytes,
                settings: settings.clone(),
                read: Default::default(),
            };
            let key = finetune::blob::shard_key(
                &settings.tenant,
                &dataset,
                0,
                finetune::blob::ShardObject::Task,
            );
            env.blobs
                .put_bytes(&key, serde_json::to_vec(&task)?, "application/json")
                .await?;
            let event = finetune_tests::events::shard_task(&key, 1);
            let Some(run) = run_under_quota(&this, &env.bucket, memory, &event)? else {
                println!("  (no writable cgroup cpu controller here: sweep skipped)");
                break;
            };
            let gb = first.effective_bytes as f64 / 1e9;
            println!(
                "  {memory:>4} MB ({:.2} vCPU): {:.1}s, {:.0} MB-s per GB, peak RSS {:.0} MiB",
                (memory as f64 / 1769.0).min(2.0),
                run.wall,
                memory as f64 * run.wall / gb,
                run.rss_mib
            );
        }
    }
    Ok(())
}

/// Runs the worker on `event` in a cgroup whose CPU quota is what Lambda
/// gives `memory` MB (`None` when no cgroup can be made here).
fn run_under_quota(
    this: &std::path::Path,
    bucket: &str,
    memory: u64,
    event: &serde_json::Value,
) -> Result<Option<ShardRun>, Box<dyn Error>> {
    let group = format!("/sys/fs/cgroup/cpu/finetune-bench-{memory}");
    if std::fs::create_dir_all(&group).is_err() {
        return Ok(None);
    }
    let period = 100_000u64;
    let quota = period * memory / 1769;
    if std::fs::write(format!("{group}/cpu.cfs_period_us"), period.to_string()).is_err()
        || std::fs::write(format!("{group}/cpu.cfs_quota_us"), quota.to_string()).is_err()
    {
        return Ok(None);
    }
    let began = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {group}/cgroup.procs && exec /usr/bin/time -f '%e %M %U %S' \"$0\" --worker"
        ))
        .arg(this)
        .env("FINETUNE_TEST_ENDPOINT", finetune_tests::moto_endpoint())
        .env("BENCH_BUCKET", bucket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(event.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let wall = began.elapsed().as_secs_f64();
    let time = String::from_utf8_lossy(&output.stderr);
    let f: Vec<f64> = time
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let response: SqsBatchResponse = serde_json::from_slice(&output.stdout).unwrap_or_default();
    if f.len() < 4 || !response.batch_item_failures.is_empty() {
        return Err(format!("the shard failed under {memory} MB: {time}").into());
    }
    Ok(Some(ShardRun {
        wall,
        rss_mib: f[1] / 1024.0,
        cpu: f[2] + f[3],
    }))
}

struct ShardRun {
    wall: f64,
    rss_mib: f64,
    cpu: f64,
}

/// The run's settings, days `first` to `last` of October 2026.
fn settings(first: u32, last: u32) -> PrepareSettings {
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 10, d).unwrap_or_default();
    PrepareSettings {
        tenant: TenantId::parse(TENANT).unwrap_or_else(|_| unreachable!()),
        dates: DateRange::new(day(first), day(last)).unwrap_or_else(|_| unreachable!()),
        base_model: "gpt-4o-mini-2024-07-18".into(),
        system_prompt: None,
        train_split: TrainSplit::new(0.9).unwrap_or_else(|_| unreachable!()),
        min_examples: 1,
        max_examples: 100_000,
        seed: 1,
        filters: Filters::default(),
        n_epochs: None,
        max_tokens_per_example: None,
        format: Default::default(),
        provider: None,
    }
}

/// How many of the corpus's 64 MB files fall on `day` (the corpus puts
/// file n on day 1 + n % 28).
fn files_of_day(megabytes: u64, day: u64) -> u64 {
    let files = megabytes.div_ceil(64);
    (0..files).filter(|n| 1 + n % 28 == day).count() as u64
}

/// `--merge DATASET SHARD_MB`: the merge step of the run the bench fanned
/// out; the dataset's stats on stdout.
async fn merge(dataset: &str, shard_mb: &str) -> Result<(), Box<dyn Error>> {
    let sdk = finetune_tests::sdk_config().await;
    let blobs = Blobs::new(
        finetune_tests::s3_client(&sdk),
        std::env::var("BENCH_BUCKET")?,
    );
    let settings = settings(1, 28);
    let limits = FanOutLimits {
        single_max_bytes: 1,
        shard_bytes: shard_mb.parse::<u64>()? * 1024 * 1024,
        ..FanOutLimits::default()
    };
    let dataset = DatasetId::parse(dataset)?;
    let fan_out = FanOut::new(&blobs, &limits, &dataset, &settings);
    let Advance::Prepared(prepared) = fan_out.advance(None).await? else {
        return Err("not every shard was done".into());
    };
    fan_out.clean_up().await;
    let out = serde_json::json!({"stats": prepared.stats, "train_bytes": prepared.train.bytes});
    println!("{out}");
    Ok(())
}

/// `--worker`: one invocation of the shard worker on the SQS event read
/// from stdin; its batch response on stdout.
async fn worker() -> Result<(), Box<dyn Error>> {
    let event: SqsEvent = serde_json::from_reader(std::io::stdin())?;
    let sdk = finetune_tests::sdk_config().await;
    let bucket = std::env::var("BENCH_BUCKET")?;
    let worker = ShardWorker {
        blobs: Blobs::new(finetune_tests::s3_client(&sdk), bucket),
        metrics: Metrics::discard(),
    };
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(900);
    let response = worker.on_messages(event, Some(deadline)).await;
    println!("{}", serde_json::to_string(&response)?);
    Ok(())
}
