//! Dataset preparation against a real S3 API (moto_server): exports in the
//! bucket in, dataset files and manifest back in the bucket.

use chrono::NaiveDate;
use finetune::blob::{DatasetObject, dataset_key};
use finetune::dataset::{CheckOptions, PrepareError, check_jsonl, prepare_from_s3};
use finetune::domain::{DatasetId, Filters, Hyperparameters, RunConfig, TenantId, TrainSplit};
use finetune_tests::{MEMORY_MEASUREMENT, TestEnv};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

fn config() -> RunConfig {
    RunConfig {
        start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
        end_date: NaiveDate::from_ymd_opt(2026, 10, 2),
        base_model: "gpt-4o-mini-2024-07-18".into(),
        min_examples: 5,
        max_examples: 1000,
        train_split: TrainSplit::new(0.8).unwrap(),
        system_prompt: Some("You are Acme's support assistant.".into()),
        seed: 42,
        hyperparameters: Hyperparameters::default(),
        filters: Filters::default(),
        evaluation: Default::default(),
        activation: Default::default(),
        serving: Default::default(),
    }
}

fn conversation(n: u32, day: u32) -> String {
    serde_json::json!({
        "id": format!("conv-{n}"), "started_at": format!("2026-10-{day:02}T09:30:00Z"),
        "outcome": "resolved", "rating": 5,
        "messages": [
            {"role": "user", "content": format!("Where is my order {n}? Mail me at user{n}@example.com")},
            {"role": "assistant", "content": format!("Order {n} ships today.")}
        ]
    })
    .to_string()
}

async fn read(env: &TestEnv, key: &str) -> Vec<u8> {
    let mut body = Vec::new();
    env.blobs
        .open(key)
        .await
        .unwrap()
        .read_to_end(&mut body)
        .await
        .unwrap();
    body
}

#[tokio::test]
async fn prepares_from_s3_exports_and_writes_the_dataset_back() {
    // Loading the tokenizer's tables grows this process by tens of MB:
    // never while another test measures its memory.
    let _quiet = MEMORY_MEASUREMENT.lock().await;
    // GIVEN two days of exports (one gzipped, with a malformed line) and a
    // file of the day after the range
    let env = TestEnv::new().await;
    let tenant = TenantId::parse("acme").unwrap();
    let day1: String = (0..30).map(|n| conversation(n, 1) + "\n").collect();
    env.blobs
        .put_bytes(
            "conversations/acme/2026/10/01/a.jsonl",
            format!("{day1}{{not json\n").into_bytes(),
            "application/x-ndjson",
        )
        .await
        .unwrap();
    let day2: String = (30..50).map(|n| conversation(n, 2) + "\r\n").collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, day2.as_bytes()).unwrap();
    env.blobs
        .put_bytes(
            "conversations/acme/2026/10/02/b.jsonl.gz",
            gz.finish().unwrap(),
            "application/gzip",
        )
        .await
        .unwrap();
    let day3: String = (50..60).map(|n| conversation(n, 3) + "\n").collect();
    env.blobs
        .put_bytes(
            "conversations/acme/2026/10/03/c.jsonl",
            day3.into_bytes(),
            "application/x-ndjson",
        )
        .await
        .unwrap();
    let dataset = DatasetId::generate();

    // WHEN the pipeline prepares the run's dataset
    let prepared = prepare_from_s3(
        &env.blobs,
        &tenant,
        &dataset,
        &config(),
        finetune::domain::ProviderKind::OpenAi,
    )
    .await
    .unwrap();

    // THEN the files are in the bucket under the dataset's keys, with the
    // recorded sizes and checksums
    let s = &prepared.stats;
    assert_eq!(s.conversations_read, 50);
    assert_eq!(s.malformed_lines, 1);
    assert_eq!(s.redactions.email, 50);
    assert_eq!(s.train_examples + s.validation_examples, 50);
    assert_eq!(
        prepared.train.key,
        dataset_key(&tenant, &dataset, DatasetObject::Train)
    );
    let train = read(&env, &prepared.train.key).await;
    assert_eq!(train.len() as u64, prepared.train.bytes);
    assert_eq!(hex::encode(Sha256::digest(&train)), prepared.train.sha256);
    assert_eq!(prepared.train.examples, s.train_examples);
    let validation = prepared.validation.clone().expect("a validation file");
    let val = read(&env, &validation.key).await;
    assert_eq!(hex::encode(Sha256::digest(&val)), validation.sha256);
    // AND the examples pass the checker, with the system prompt and no PII
    let report = check_jsonl(&train[..], &CheckOptions::for_model("gpt-4o-mini")).unwrap();
    assert!(report.format_errors.is_empty());
    assert_eq!(report.examples, s.train_examples);
    assert_eq!(report.tokens.sum, s.train_tokens.sum);
    assert_eq!(report.warnings.missing_system, 0);
    assert!(!String::from_utf8_lossy(&train).contains("@example.com"));
    // AND the manifest records the files and the stats
    let manifest: serde_json::Value = env.blobs.get_json(&prepared.manifest_key).await.unwrap();
    assert_eq!(manifest["format"], "openai-chat");
    assert_eq!(
        manifest["files"]["train"]["sha256"],
        prepared.train.sha256.as_str()
    );
    assert_eq!(manifest["stats"]["train_examples"], s.train_examples);
    assert_eq!(manifest["source"]["end_date"], "2026-10-02");
}

#[tokio::test]
async fn preparation_needs_a_date_range_and_enough_examples() {
    let _quiet = MEMORY_MEASUREMENT.lock().await;
    let env = TestEnv::new().await;
    let tenant = TenantId::parse("acme").unwrap();
    let dataset = DatasetId::generate();
    let mut no_range = config();
    no_range.end_date = None;
    let err = prepare_from_s3(
        &env.blobs,
        &tenant,
        &dataset,
        &no_range,
        finetune::domain::ProviderKind::OpenAi,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PrepareError::NoDateRange), "{err}");

    env.blobs
        .put_bytes(
            "conversations/acme/2026/10/01/a.jsonl",
            (0..3)
                .map(|n| conversation(n, 1) + "\n")
                .collect::<String>()
                .into_bytes(),
            "application/x-ndjson",
        )
        .await
        .unwrap();
    let mut cfg = config();
    cfg.train_split = TrainSplit::new(1.0).unwrap();
    let err = prepare_from_s3(
        &env.blobs,
        &tenant,
        &dataset,
        &cfg,
        finetune::domain::ProviderKind::OpenAi,
    )
    .await
    .unwrap_err();
    match err {
        PrepareError::TooFewExamples { found, required } => {
            assert_eq!((found, required), (3, 5));
        }
        other => panic!("{other}"),
    }
}

/// Bytes no export job writes: a seeded stream, the same every run.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, data).unwrap();
    gz.finish().unwrap()
}

/// The four files an export bucket should never hold, but does: an empty
/// gzip (an export job with nothing to write), one cut short, a plain file
/// named `.gz`, and random bytes. Returns their keys and expected reasons.
async fn put_broken_exports(env: &TestEnv) -> Vec<(String, &'static str)> {
    let mut cut = gzip(
        (100..140)
            .map(|n| conversation(n, 1) + "\n")
            .collect::<String>()
            .as_bytes(),
    );
    cut.truncate(cut.len() * 2 / 3);
    let files = [
        ("b-empty.jsonl.gz", Vec::new(), "empty_gzip"),
        ("c-cut.jsonl.gz", cut, "truncated_gzip"),
        (
            "d-plain.jsonl.gz",
            (200..210)
                .map(|n| conversation(n, 1) + "\n")
                .collect::<String>()
                .into_bytes(),
            "not_gzip",
        ),
        ("e-random.jsonl", random_bytes(64 * 1024), "binary"),
    ];
    let mut expected = Vec::new();
    for (name, bytes, reason) in files {
        let key = format!("conversations/acme/2026/10/01/{name}");
        env.blobs
            .put_bytes(&key, bytes, "application/octet-stream")
            .await
            .unwrap();
        expected.push((key, reason));
    }
    expected
}

#[tokio::test]
async fn a_prepare_over_broken_files_completes_and_names_each_file_it_refused() {
    let _quiet = MEMORY_MEASUREMENT.lock().await;
    // GIVEN a day of good exports beside an empty gzip, a truncated gzip,
    // a plain file named .gz and a file of random bytes
    let env = TestEnv::new().await;
    let tenant = TenantId::parse("acme").unwrap();
    env.blobs
        .put_bytes(
            "conversations/acme/2026/10/01/a-good.jsonl",
            (0..30)
                .map(|n| conversation(n, 1) + "\n")
                .collect::<String>()
                .into_bytes(),
            "application/x-ndjson",
        )
        .await
        .unwrap();
    let broken = put_broken_exports(&env).await;

    // WHEN the run's dataset is prepared
    let prepared = prepare_from_s3(
        &env.blobs,
        &tenant,
        &DatasetId::generate(),
        &config(),
        finetune::domain::ProviderKind::OpenAi,
    )
    .await
    .unwrap();

    // THEN it completes, the four files refused by name and reason
    let s = &prepared.stats;
    let refused: Vec<(String, &str)> = s
        .files_refused
        .iter()
        .map(|f| (f.key.clone(), f.reason.as_str()))
        .collect();
    assert_eq!(refused, broken);
    assert_eq!(s.files_refused_total, 4);
    assert_eq!(s.files_read, 1);
    // AND the truncated file's lines before the cut were kept, the cut line
    // malformed; the random file's lines are not counted at all
    assert!(s.conversations_read > 30, "{s:?}");
    assert!(s.conversations_read < 70, "{s:?}");
    assert_eq!(s.malformed_reasons.get("truncated"), Some(&1), "{s:?}");
    assert_eq!(s.malformed_lines, 1, "{s:?}");
    // AND the manifest says the same
    let manifest: serde_json::Value = env.blobs.get_json(&prepared.manifest_key).await.unwrap();
    assert_eq!(
        manifest["stats"]["files_refused"][0]["reason"],
        "empty_gzip"
    );
    assert_eq!(manifest["stats"]["files_refused_total"], 4);
}

#[tokio::test]
async fn a_run_whose_every_file_is_refused_fails_naming_the_files_and_reasons() {
    let _quiet = MEMORY_MEASUREMENT.lock().await;
    // GIVEN exports that are all broken, the truncated one cut before its
    // first line ends
    let env = TestEnv::new().await;
    let tenant = TenantId::parse("acme").unwrap();
    for (name, bytes) in [
        ("a-empty.jsonl.gz", Vec::new()),
        ("b-random.jsonl", random_bytes(8 * 1024)),
    ] {
        env.blobs
            .put_bytes(
                &format!("conversations/acme/2026/10/01/{name}"),
                bytes,
                "application/octet-stream",
            )
            .await
            .unwrap();
    }

    // WHEN the run's dataset is prepared
    let err = prepare_from_s3(
        &env.blobs,
        &tenant,
        &DatasetId::generate(),
        &config(),
        finetune::domain::ProviderKind::OpenAi,
    )
    .await
    .unwrap_err();

    // THEN it fails with the files and their reasons, not "too few examples"
    assert!(
        matches!(err, PrepareError::NoReadableExports { total: 2, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("a-empty.jsonl.gz (empty_gzip)")
            && message.contains("b-random.jsonl (binary)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_line_over_the_ceiling_is_a_malformed_line_and_the_rest_is_read() {
    let _quiet = MEMORY_MEASUREMENT.lock().await;
    // GIVEN a file whose third line is 9 MiB of one JSON string
    let env = TestEnv::new().await;
    let tenant = TenantId::parse("acme").unwrap();
    let mut body: String = (0..2).map(|n| conversation(n, 1) + "\n").collect();
    body.push_str(&format!(
        "{{\"id\": \"big\", \"pad\": \"{}\"}}\n",
        "x".repeat(9 << 20)
    ));
    body.extend((2..20).map(|n| conversation(n, 1) + "\n"));
    env.blobs
        .put_bytes(
            "conversations/acme/2026/10/01/a.jsonl.gz",
            gzip(body.as_bytes()),
            "application/gzip",
        )
        .await
        .unwrap();

    // WHEN it is prepared
    let prepared = prepare_from_s3(
        &env.blobs,
        &tenant,
        &DatasetId::generate(),
        &config(),
        finetune::domain::ProviderKind::OpenAi,
    )
    .await
    .unwrap();

    // THEN the long line is malformed by its own reason, the others read
    let s = &prepared.stats;
    assert_eq!(s.conversations_read, 20);
    assert_eq!(s.malformed_lines, 1);
    assert_eq!(s.malformed_reasons.get("line_too_long"), Some(&1));
    assert_eq!(s.files_refused_total, 0);
}
