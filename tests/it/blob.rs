//! The blob store against a real S3 API (moto_server).

use std::io::Write;

use chrono::NaiveDate;
use finetune::blob::{BlobError, DatasetObject, dataset_key};
use finetune::domain::{DatasetId, TenantId};
use finetune_tests::{MEMORY_MEASUREMENT, PeakMemory, TestEnv, resident_bytes};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, d).unwrap()
}

async fn put(env: &TestEnv, key: &str, body: Vec<u8>) {
    env.blobs
        .put_bytes(key, body, "application/x-ndjson")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_date_range_lists_only_its_own_day_prefixes() {
    // GIVEN exports on the day before, inside, and after the range, and
    // another tenant's exports inside it
    let env = TestEnv::new().await;
    let t = TenantId::parse("acme").unwrap();
    put(
        &env,
        "conversations/acme/2026/09/30/late.jsonl",
        b"{}\n".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/acme/2026/10/01/a.jsonl",
        b"{}\n".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/acme/2026/10/01/b.jsonl.gz",
        b"".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/acme/2026/10/01/readme.txt",
        b"x".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/acme/2026/10/02/c.jsonl",
        b"{}\n".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/acme/2026/10/03/d.jsonl",
        b"{}\n".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/acme-2/2026/10/01/x.jsonl",
        b"{}\n".to_vec(),
    )
    .await;
    put(
        &env,
        "conversations/globex/2026/10/01/y.jsonl",
        b"{}\n".to_vec(),
    )
    .await;

    // WHEN listing 2026-10-01..=2026-10-02
    let files = env
        .blobs
        .list_conversation_files(&t, day(1), day(2))
        .await
        .unwrap();

    // THEN only those days' export files of this tenant come back
    let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "conversations/acme/2026/10/01/a.jsonl",
            "conversations/acme/2026/10/01/b.jsonl.gz",
            "conversations/acme/2026/10/02/c.jsonl",
        ]
    );
    assert!(files[1].is_gzip());

    let err = env
        .blobs
        .list_conversation_files(&t, day(2), day(1))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::EmptyRange { .. }));
}

#[tokio::test]
async fn gzip_exports_read_as_plain_lines_even_multi_member() {
    let env = TestEnv::new().await;
    let mut gz = Vec::new();
    for part in ["{\"id\":\"1\"}\n", "{\"id\":\"2\"}\n"] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(part.as_bytes()).unwrap();
        gz.extend(enc.finish().unwrap());
    }
    put(&env, "conversations/acme/2026/10/01/x.jsonl.gz", gz).await;

    let reader = env
        .blobs
        .open("conversations/acme/2026/10/01/x.jsonl.gz")
        .await
        .unwrap();
    let mut lines = reader.lines();
    let mut got = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        got.push(line);
    }
    assert_eq!(got, ["{\"id\":\"1\"}", "{\"id\":\"2\"}"]);
}

#[tokio::test]
async fn small_json_objects_and_missing_keys() {
    let env = TestEnv::new().await;
    let t = TenantId::parse("acme").unwrap();
    let key = dataset_key(&t, &DatasetId::generate(), DatasetObject::Manifest);
    put(&env, &key, br#"{"examples": 3}"#.to_vec()).await;
    let v: serde_json::Value = env.blobs.get_json(&key).await.unwrap();
    assert_eq!(v["examples"], 3);

    let missing = env.blobs.open("datasets/acme/nope/train.jsonl").await;
    assert!(matches!(missing, Err(BlobError::NotFound { .. })));
    put(&env, "bad.json", b"{not json".to_vec()).await;
    let err = env
        .blobs
        .get_json::<serde_json::Value>("bad.json")
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::BadJson { .. }));
}

#[tokio::test]
async fn a_range_read_returns_exactly_those_bytes() {
    let env = TestEnv::new().await;
    put(&env, "r.bin", (0u8..=255).collect()).await;
    let mut reader = env.blobs.open_raw("r.bin", Some(10..20)).await.unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, (10u8..20).collect::<Vec<_>>());
    assert_eq!(env.blobs.size("r.bin").await.unwrap(), 256);
}

/// Deterministic, incompressible-looking bytes: a tiny xorshift stream.
fn fill(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

#[tokio::test]
async fn a_200_mb_object_streams_up_and_back_in_constant_memory() {
    const SIZE: usize = 200 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let _only_me = MEMORY_MEASUREMENT.lock().await;
    let env = TestEnv::new().await;
    let baseline = resident_bytes();
    let sampler = PeakMemory::start();

    // WHEN 200 MB are written through the streaming writer, 64 KiB at a time
    let mut writer = env
        .blobs
        .writer("big/object.bin", "application/octet-stream");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; CHUNK];
    let mut expected = Sha256::new();
    for _ in 0..SIZE / CHUNK {
        fill(&mut state, &mut chunk);
        expected.update(&chunk);
        writer.write(&chunk).await.unwrap();
    }
    let written = writer.finish().await.unwrap();
    let expected = hex::encode(expected.finalize());

    // THEN it reads back byte for byte, streamed
    assert_eq!(written.bytes, SIZE as u64);
    assert_eq!(written.sha256, expected);
    let mut reader = env.blobs.open("big/object.bin").await.unwrap();
    let mut got = Sha256::new();
    let mut total = 0usize;
    loop {
        let n = reader.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        got.update(&chunk[..n]);
        total += n;
    }
    assert_eq!(total, SIZE);
    assert_eq!(hex::encode(got.finalize()), expected);

    // AND the process never held more than a few parts of it
    let peak = sampler.finish();
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "200 MB stream: baseline {} MiB, peak {} MiB, growth {} MiB",
        baseline >> 20,
        peak >> 20,
        grew >> 20
    );
    assert!(
        grew < 64 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grew >> 20
    );
}
