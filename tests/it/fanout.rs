//! A large run's preparation fanned out over the shard queue, against the
//! local stack: the bucket notifies moto's SQS of each shard task, the
//! real shard handler runs on the SQS events as Lambda would deliver them,
//! and the merge assembles the dataset inside S3 (UploadPartCopy).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use finetune::blob::shards_prefix;
use finetune::dataset::fanout::{Advance, FanOut, FanOutLimits, ShardTask, run_shard};
use finetune::dataset::{DatasetStats, PrepareError, PrepareSettings, PreparedDataset};
use finetune::domain::{
    DatasetId, EventLevel, Filters, Hyperparameters, ProviderKind, RunConfig, RunId, RunStatus,
    TenantId, TrainSplit,
};
use finetune::metrics::Metrics;
use finetune::pipeline::shard_worker::ShardWorker;
use finetune_tests::TestEnv;
use finetune_tests::shards::{Invocation, ShardQueue, put_exports};
use serde_json::json;

use crate::pipeline::{quick_sandbox, start, world_configured};
use crate::world::{TENANT, drive, run, tick};

const MIB: u64 = 1024 * 1024;

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

fn settings(max_examples: u32) -> PrepareSettings {
    let config = RunConfig {
        start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
        end_date: NaiveDate::from_ymd_opt(2026, 10, 31),
        base_model: "gpt-4o-mini-2024-07-18".into(),
        min_examples: 10,
        max_examples,
        train_split: TrainSplit::new(0.8).unwrap(),
        system_prompt: None,
        seed: 11,
        hyperparameters: Hyperparameters::default(),
        filters: Filters::default(),
        evaluation: Default::default(),
        activation: Default::default(),
        serving: Default::default(),
    };
    PrepareSettings::from_run_config(&tenant(), &config, ProviderKind::OpenAi).unwrap()
}

/// About `bytes` of generated exports in files of `file_bytes`, plus a
/// copy of the first file on a later day (every conversation in it a
/// duplicate of one in another shard) and a gzipped copy of the second.
async fn seed_exports(env: &TestEnv, bytes: u64, file_bytes: u64) {
    let files: Vec<(String, Vec<u8>)> = corpus::Corpus::new(TENANT, bytes, file_bytes, 5)
        .map(|f| (f.key, f.bytes))
        .collect();
    let copy = (
        format!("conversations/{TENANT}/2026/10/30/copy.jsonl"),
        files[0].1.clone(),
    );
    let gz = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&files[1].1).unwrap();
        (
            format!("conversations/{TENANT}/2026/10/31/again.jsonl.gz"),
            encoder.finish().unwrap(),
        )
    };
    put_exports(env, files.into_iter().chain([copy, gz])).await;
}

fn worker(env: &TestEnv) -> ShardWorker {
    ShardWorker {
        blobs: env.blobs.clone(),
        metrics: Metrics::discard(),
    }
}

/// Prepares `settings` as the prepare function's step would, with
/// `limits`, driving the shard queue between ticks until the dataset is
/// written.
async fn prepare(
    env: &TestEnv,
    queue: &ShardQueue,
    limits: &FanOutLimits,
    settings: &PrepareSettings,
) -> (DatasetId, PreparedDataset, Option<u32>) {
    let dataset = DatasetId::generate();
    let fan_out = FanOut::new(&env.blobs, limits, &dataset, settings);
    let mut shards = None;
    for _ in 0..4 {
        match fan_out.advance(None).await.unwrap() {
            Advance::Prepared(prepared) => {
                fan_out.clean_up().await;
                return (dataset, *prepared, shards);
            }
            Advance::Waiting { handed_out, .. } => {
                shards = shards.or(handed_out);
                queue
                    .drive(&worker(env), 4, Duration::from_secs(120), |_| {
                        Invocation::Normal
                    })
                    .await;
            }
        }
    }
    panic!("the preparation did not finish in four ticks");
}

/// The stats, but for how many shards read the exports.
fn without_shards(stats: &DatasetStats) -> DatasetStats {
    DatasetStats {
        shards: 0,
        ..stats.clone()
    }
}

async fn bytes_of(env: &TestEnv, key: &str) -> Vec<u8> {
    env.blobs.get_bytes(key).await.unwrap()
}

#[tokio::test]
async fn one_pass_or_many_shards_make_byte_identical_datasets() {
    // GIVEN 36 MB of exports in 4 MB files, a day's copy of one (every
    // conversation in it a duplicate from another shard) and a gzipped one
    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    seed_exports(&env, 36_000_000, 4_000_000).await;
    let settings = settings(1_000_000);

    // WHEN the run is prepared in one pass, and again fanned out in shards
    // of 12 MiB (three files: each shard's training file is over S3's
    // 5 MiB part size, so the merge copies it inside S3)
    let (_, one, none) = prepare(&env, &queue, &FanOutLimits::default(), &settings).await;
    let sharded = FanOutLimits {
        single_max_bytes: MIB,
        shard_bytes: 12 * MIB,
        ..FanOutLimits::default()
    };
    let (dataset, many, shards) = prepare(&env, &queue, &sharded, &settings).await;

    // THEN the one pass handed nothing out, the fan-out several shards
    assert_eq!(none, None);
    let shards = shards.expect("the run was fanned out");
    assert!(shards >= 4, "{shards} shards");
    assert_eq!(one.stats.shards, 1);
    assert_eq!(many.stats.shards, u64::from(shards));
    // AND both wrote the same files, byte for byte, with the same stats
    assert_eq!(one.train.sha256, many.train.sha256);
    assert_eq!(one.train.bytes, many.train.bytes);
    let (v1, v2) = (one.validation.unwrap(), many.validation.unwrap());
    assert_eq!((v1.sha256, v1.bytes), (v2.sha256.clone(), v2.bytes));
    assert_eq!(without_shards(&one.stats), without_shards(&many.stats));
    assert!(one.stats.duplicates_removed > 1000, "{:?}", one.stats);
    assert!(one.stats.redactions.email > 0);
    assert!(one.train.bytes > 3 * 5 * MIB, "{}", one.train.bytes);
    // AND the record's checksum is the object's
    let train = bytes_of(&env, &many.train.key).await;
    assert_eq!(train.len() as u64, many.train.bytes);
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&train)),
        many.train.sha256
    );
    // AND the shards' objects are gone once the dataset is written
    let left = env
        .blobs
        .list_prefix(&shards_prefix(&tenant(), &dataset))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_sample_that_keeps_a_few_examples_merges_to_the_same_dataset_as_one_pass() {
    // GIVEN exports holding far more examples than max_examples keeps, so
    // the kept examples are scattered through every shard's files
    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    seed_exports(&env, 6_000_000, 1_000_000).await;
    let settings = settings(700);

    // WHEN prepared in one pass and in 1 MiB shards
    let (_, one, _) = prepare(&env, &queue, &FanOutLimits::default(), &settings).await;
    let sharded = FanOutLimits {
        single_max_bytes: MIB,
        shard_bytes: MIB,
        ..FanOutLimits::default()
    };
    let (_, many, shards) = prepare(&env, &queue, &sharded, &settings).await;

    // THEN the sample is the same: same files, same figures
    assert!(shards.unwrap() >= 6);
    assert_eq!(
        one.stats.train_examples + one.stats.validation_examples,
        700
    );
    assert!(one.stats.sampled_out > 1000, "{:?}", one.stats);
    assert_eq!(one.train.sha256, many.train.sha256);
    assert_eq!(
        one.validation.map(|v| v.sha256),
        many.validation.map(|v| v.sha256)
    );
    assert_eq!(without_shards(&one.stats), without_shards(&many.stats));
}

fn large_run_body() -> serde_json::Value {
    json!({
        "name": "support at scale",
        "config": {
            "start_date": "2026-10-01",
            "end_date": "2026-10-31",
            "base_model": "gpt-4o-mini-2024-07-18",
            "min_examples": 10,
            "max_examples": 400,
            "train_split": 0.8,
            "seed": 3
        }
    })
}

/// A deployment that fans out runs over 1 MB of exports, in 1 MB shards,
/// with its shard queue; `export_bytes` of a tenant's exports; a run of
/// them accepted by POST /runs.
async fn sharding_world(export_bytes: u64) -> (crate::world::World, ShardQueue, RunId) {
    let world = world_configured(
        quick_sandbox(),
        |p| p,
        |a| a,
        &[
            ("PREPARE_SINGLE_MAX_MB", "1".to_owned()),
            ("PREPARE_SHARD_MB", "1".to_owned()),
        ],
    )
    .await;
    let queue = ShardQueue::create(&world.env).await;
    seed_exports(&world.env, export_bytes, 1_000_000).await;
    let id = start(&world, &large_run_body()).await;
    (world, queue, id)
}

#[tokio::test]
async fn a_shard_killed_once_and_out_of_time_once_is_retried_and_the_run_completes() {
    // GIVEN a deployment that fans out runs over 1 MB of exports, in 1 MB
    // shards, and a tenant with 5 MB of exports
    let (world, queue, id) = sharding_world(5_000_000).await;

    // WHEN the prepare function ticks, it hands the shards out and waits
    tick(&world).await;
    let waiting = run(&world, &id).await;
    assert_eq!(waiting.status, RunStatus::Preparing);
    assert!(
        waiting.phase.starts_with("preparing: 0 of "),
        "{}",
        waiting.phase
    );
    // AND the shard worker's first delivery of shard 0 is killed, its
    // second runs out of time; every other shard runs normally
    let mut deliveries: BTreeMap<String, u32> = BTreeMap::new();
    let driven = queue
        .drive(
            &worker(&world.env),
            4,
            Duration::from_secs(120),
            |message| {
                // S3 URL-encodes the key in its notification.
                let body = message.body.clone().unwrap_or_default();
                if !body.contains("%2F00000%2Ftask.json") {
                    return Invocation::Normal;
                }
                let n = deliveries.entry(body).or_default();
                *n += 1;
                match n {
                    1 => Invocation::KilledAfter(Duration::from_millis(30)),
                    2 => Invocation::Deadline(Duration::ZERO),
                    _ => Invocation::Normal,
                }
            },
        )
        .await;

    // THEN shard 0 was delivered three times and nothing was dead-lettered
    assert_eq!(deliveries.values().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(driven.failures, 2, "{driven:?}");
    assert_eq!(queue.dead_letters().await, 0);
    // AND the run goes on to a trained model, its dataset made by the shards
    let done = drive(&world, &id, 30).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let dataset = world
        .pipeline
        .store
        .get_dataset(&tenant(), done.dataset_id.as_ref().unwrap())
        .await
        .unwrap();
    let shards = dataset.stats["shards"].as_u64().unwrap();
    assert!(shards >= 5, "{}", dataset.stats);
    assert_eq!(
        world.recorded.sum("PreparationShardsStarted", None),
        shards as f64
    );
    let events = world
        .pipeline
        .store
        .list_events(&tenant(), &id, 100, None)
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.kind == "preparation_fanned_out" && e.level == EventLevel::Info),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_shard_failing_on_every_attempt_fails_the_run_with_its_error() {
    // GIVEN a run fanned out in shards
    let (world, queue, id) = sharding_world(3_000_000).await;
    tick(&world).await;

    // WHEN shard 1 runs out of time on every delivery
    queue
        .drive(
            &worker(&world.env),
            4,
            Duration::from_secs(120),
            |message| {
                if message
                    .body
                    .as_deref()
                    .unwrap_or("")
                    .contains("%2F00001%2Ftask.json")
                {
                    Invocation::Deadline(Duration::ZERO)
                } else {
                    Invocation::Normal
                }
            },
        )
        .await;
    tick(&world).await;

    // THEN its message went to the dead-letter queue and the run failed
    // with the shard's error, naming it
    assert_eq!(queue.dead_letters().await, 1);
    let failed = run(&world, &id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(error.code, "dataset_shard_failed");
    assert!(
        error.message.contains("shard 1 of") && error.message.contains("shard_out_of_time"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_run_over_the_hard_limit_fails_with_dataset_too_large_and_its_figures() {
    // GIVEN a deployment that prepares at most 100 kB per run, and a
    // tenant with 300 kB of exports
    let world = crate::pipeline::world().await;
    put_exports(
        &world.env,
        corpus::Corpus::new(TENANT, 300_000, 100_000, 1).map(|f| (f.key, f.bytes)),
    )
    .await;
    let id = start(&world, &large_run_body()).await;
    let limits = FanOutLimits {
        max_export_bytes: 100_000,
        ..FanOutLimits::default()
    };

    // WHEN the prepare step takes the run (queued, then preparing)
    let reconciler = world.pipeline.preparing(limits);
    for _ in 0..2 {
        reconciler.reconcile(&tenant(), &id, "test").await.unwrap();
    }

    // THEN it failed before reading a byte, with the figures to act on
    let failed = run(&world, &id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(error.code, "dataset_too_large");
    assert!(
        error.message.contains("in 3 files") && error.message.contains("100000-byte limit"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_shard_task_naming_another_tenants_exports_is_refused() {
    // GIVEN a task (however it was written) whose files are another tenant's
    let env = TestEnv::new().await;
    let task = ShardTask {
        tenant: tenant(),
        dataset: DatasetId::generate(),
        shard: 0,
        shards: 1,
        files: vec!["conversations/globex/2026/10/01/export.jsonl".into()],
        effective_bytes: 10,
        settings: settings(100),
        read: Default::default(),
    };

    // WHEN the shard worker runs it
    let error = run_shard(&env.blobs, &task, None).await.unwrap_err();

    // THEN it refuses before reading, naming the file
    assert!(matches!(error, PrepareError::InvalidSettings(_)), "{error}");
    assert!(error.to_string().contains("globex"), "{error}");
}

#[tokio::test]
async fn a_small_run_whose_one_invocation_was_killed_or_ran_out_of_time_is_fanned_out_next() {
    for how in ["killed", "out of time"] {
        // GIVEN a small run (5 MB, under the one-invocation threshold)
        let env = TestEnv::new().await;
        let queue = ShardQueue::create(&env).await;
        seed_exports(&env, 5_000_000, 1_000_000).await;
        let settings = settings(1_000_000);
        let dataset = DatasetId::generate();
        let limits = FanOutLimits {
            shard_bytes: 2 * MIB,
            ..FanOutLimits::default()
        };
        let fan_out = FanOut::new(&env.blobs, &limits, &dataset, &settings);

        // WHEN its one-invocation preparation is killed part-way (the
        // process dies: nothing is recorded after the start), or stops at
        // a deadline a moment away
        match how {
            "killed" => {
                // The process dies once its attempt is on record: waiting
                // for the record, not a fixed time, keeps a loaded machine
                // from killing it before it has started.
                let record = format!("{}attempts.json", shards_prefix(&settings.tenant, &dataset));
                let recorded = async {
                    while env.blobs.get_bytes(&record).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                tokio::select! {
                    _ = fan_out.advance(None) => panic!("the preparation finished before its attempt was seen"),
                    () = recorded => {}
                }
            }
            _ => {
                let soon = chrono::Utc::now() + chrono::Duration::milliseconds(400);
                match fan_out.advance(Some(soon)).await.unwrap() {
                    Advance::Waiting { handed_out, .. } => assert!(handed_out.is_some()),
                    Advance::Prepared(_) => panic!("prepared within 400 ms"),
                }
            }
        }

        // THEN the next step hands shards out instead of trying again
        // (the killed attempt counted), and the shards make the dataset
        let next = fan_out.advance(None).await.unwrap();
        if how == "killed" {
            assert!(
                matches!(next, Advance::Waiting { handed_out: Some(n), .. } if n >= 2),
                "{how}: {next:?}"
            );
        }
        queue
            .drive(&worker(&env), 4, Duration::from_secs(120), |_| {
                Invocation::Normal
            })
            .await;
        let Advance::Prepared(prepared) = fan_out.advance(None).await.unwrap() else {
            panic!("{how}: not merged after the shards ran");
        };
        assert!(prepared.stats.shards >= 2, "{how}: {:?}", prepared.stats);
        assert!(prepared.stats.train_examples > 100);
    }
}

#[tokio::test]
async fn a_merge_too_large_for_the_functions_memory_fails_with_its_figures_before_reading_an_index()
{
    // GIVEN a run fanned out by a prepare function whose merge may hold 64 KiB
    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    seed_exports(&env, 3_000_000, 1_000_000).await;
    let settings = settings(1_000_000);
    let limits = FanOutLimits {
        single_max_bytes: MIB,
        shard_bytes: MIB,
        merge_memory_bytes: 64 * 1024,
        ..FanOutLimits::default()
    };
    let dataset = DatasetId::generate();
    let fan_out = FanOut::new(&env.blobs, &limits, &dataset, &settings);
    assert!(matches!(
        fan_out.advance(None).await.unwrap(),
        Advance::Waiting { .. }
    ));
    queue
        .drive(&worker(&env), 4, Duration::from_secs(120), |_| {
            Invocation::Normal
        })
        .await;

    // WHEN every shard is done and the merge would start
    let error = fan_out.advance(None).await.unwrap_err();

    // THEN it refuses with the counts and the memory it would need
    assert!(matches!(error, PrepareError::MergeMemory { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("1548 conversations") && message.contains("over the 0.1 MiB"),
        "{message}"
    );
    assert_eq!(
        finetune::pipeline::PipelineError::from(error).code(),
        "dataset_too_large"
    );
}

#[tokio::test]
async fn a_refused_file_does_not_fail_its_shard_and_the_merge_names_it() {
    // GIVEN exports sharded two files a shard, one shard holding an empty
    // gzip and a plain file named .gz beside a good file
    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    let good = |from: u32| -> Vec<u8> {
        (from..from + 20)
            .map(|n| {
                json!({"id": format!("c{n}"), "started_at": "2026-10-02T10:00:00Z",
                       "messages": [{"role": "user", "content": format!("Where is order {n}?")},
                                    {"role": "assistant", "content": format!("Order {n} ships today.")}]})
                .to_string()
                    + "\n"
            })
            .collect::<String>()
            .into_bytes()
    };
    let day = format!("conversations/{TENANT}/2026/10/02");
    put_exports(
        &env,
        [
            (format!("{day}/a.jsonl"), good(0)),
            (format!("{day}/b-empty.jsonl.gz"), Vec::new()),
            (format!("{day}/c-plain.jsonl.gz"), good(100)),
            (format!("{day}/d.jsonl"), good(200)),
        ],
    )
    .await;
    let sharded = FanOutLimits {
        single_max_bytes: 1,
        shard_bytes: 1,
        ..FanOutLimits::default()
    };

    // WHEN the run is prepared by shards
    let (_, prepared, shards) = prepare(&env, &queue, &sharded, &settings(1000)).await;

    // THEN every shard was done, and the merged stats name the two files
    assert_eq!(shards, Some(4));
    let s = &prepared.stats;
    let refused: Vec<(&str, &str)> = s
        .files_refused
        .iter()
        .map(|f| (f.key.rsplit('/').next().unwrap(), f.reason.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            ("b-empty.jsonl.gz", "empty_gzip"),
            ("c-plain.jsonl.gz", "not_gzip")
        ]
    );
    assert_eq!((s.files_refused_total, s.files_read), (2, 2));
    assert_eq!(s.conversations_read, 40);
}

/// `POST /runs` of the large run's body as `tenant`.
async fn start_as(world: &crate::world::World, tenant: &str) -> RunId {
    let request = finetune_tests::ApiEvent::post("/runs")
        .tenant(tenant)
        .json(&large_run_body())
        .build();
    let response = finetune::http::start_run_handler(
        &world.pipeline.store,
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let run: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    RunId::parse(run["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn two_tenants_runs_in_one_tick_share_its_tmp_and_both_complete_without_one_failing_the_other()
 {
    // GIVEN a prepare function with 3 MiB of /tmp, and two tenants each
    // with a run small enough for one invocation (1.2 MB of exports, whose
    // spill is reserved at twice that): either fits, not both at once
    let world = world_configured(
        quick_sandbox(),
        |p| p,
        |a| a,
        &[
            ("PREPARE_TMP_MB", "3".to_owned()),
            ("PREPARE_SHARD_MB", "1".to_owned()),
        ],
    )
    .await;
    let queue = ShardQueue::create(&world.env).await;
    let tenants = [TENANT, "globex"];
    for (seed, tenant) in (7..).zip(tenants) {
        put_exports(
            &world.env,
            corpus::Corpus::new(tenant, 1_200_000, 400_000, seed).map(|f| (f.key, f.bytes)),
        )
        .await;
    }
    let mut ids = Vec::new();
    for tenant in tenants {
        ids.push((
            TenantId::parse(tenant).unwrap(),
            start_as(&world, tenant).await,
        ));
    }
    let get = |tenant: TenantId, id: RunId| {
        let store = world.pipeline.store.clone();
        async move { store.get_run(&tenant, &id).await.unwrap() }
    };

    // WHEN one prepare tick takes both at once
    tick(&world).await;

    // THEN one was prepared in the invocation and the other, finding /tmp
    // taken, was handed to the shards (it did not spill beside the first)
    let mut fanned_out = 0;
    for (tenant, id) in &ids {
        let r = get(tenant.clone(), id.clone()).await;
        assert_ne!(r.status, RunStatus::Failed, "{r:?}");
        let events = world
            .pipeline
            .store
            .list_events(tenant, id, 100, None)
            .await
            .unwrap();
        if events
            .items
            .iter()
            .any(|e| e.kind == "preparation_fanned_out")
        {
            fanned_out += 1;
            assert_eq!(r.status, RunStatus::Preparing, "{r:?}");
        } else {
            assert!(
                r.dataset_id.is_some() && r.status != RunStatus::Preparing,
                "{r:?}"
            );
        }
    }
    assert_eq!(fanned_out, 1, "exactly one run waited for the other's /tmp");

    // AND once its shards ran, both runs end with trained models
    queue
        .drive(&worker(&world.env), 4, Duration::from_secs(120), |_| {
            Invocation::Normal
        })
        .await;
    for _ in 0..30 {
        let mut all_done = true;
        for (tenant, id) in &ids {
            all_done &= get(tenant.clone(), id.clone()).await.status.is_terminal();
        }
        if all_done {
            break;
        }
        tick(&world).await;
    }
    for (tenant, id) in &ids {
        let done = get(tenant.clone(), id.clone()).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
}

#[tokio::test]
async fn a_merge_that_finds_the_memory_taken_waits_for_the_next_tick_without_counting_an_attempt() {
    use finetune::dataset::fanout::PrepareBudget;
    // GIVEN a run fanned out and all its shards done, in a process whose
    // preparations share the merge's memory
    let env = TestEnv::new().await;
    let queue = ShardQueue::create(&env).await;
    seed_exports(&env, 3_000_000, 1_000_000).await;
    let settings = settings(1_000_000);
    let limits = FanOutLimits {
        single_max_bytes: MIB,
        shard_bytes: MIB,
        merge_memory_bytes: 4 * MIB,
        ..FanOutLimits::default()
    };
    let budget = PrepareBudget::new(&limits);
    let dataset = DatasetId::generate();
    let fan_out = FanOut::new(&env.blobs, &limits, &dataset, &settings).sharing(&budget);
    assert!(matches!(
        fan_out.advance(None).await.unwrap(),
        Advance::Waiting { .. }
    ));
    queue
        .drive(&worker(&env), 4, Duration::from_secs(120), |_| {
            Invocation::Normal
        })
        .await;

    // WHEN another run's merge holds all but 64 KiB of the memory, on
    // this tick and the three after it
    let held = budget.try_reserve(4 * MIB - 64 * 1024, 0).unwrap();
    for _ in 0..(finetune::dataset::fanout::MERGE_ATTEMPTS + 1) {
        // THEN the merge waits, saying why, instead of running beside it
        match fan_out.advance(None).await.unwrap() {
            Advance::Waiting { phase, .. } => {
                assert!(phase.contains("other runs' preparations hold"), "{phase}")
            }
            Advance::Prepared(_) => panic!("merged beside another run's merge"),
        }
    }

    // AND once that memory is given back, it merges: the waits counted no attempt
    drop(held);
    let Advance::Prepared(prepared) = fan_out.advance(None).await.unwrap() else {
        panic!("not merged once the memory was free");
    };
    assert!(prepared.stats.shards >= 3, "{:?}", prepared.stats);
}
