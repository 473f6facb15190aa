//! Arbitrary bytes, and arbitrary JSON-shaped lines, through everything an
//! export meets — reading (plain and gzip), parsing, the rules and
//! redaction, windows, each provider's example writer and checker — for
//! every provider: whatever a tenant's export holds, preparation returns
//! (a panic here would abort a function in release).

use proptest::prelude::*;
use serde_json::json;

use super::io::{ExportSource, ReadLimits};
use super::prepare::PrepareSettings;
use super::shard::{ExampleOut, Rulebook, read_exports};
use crate::domain::{DateRange, Filters, TenantId, TrainSplit};
use crate::provider::profiles;

fn settings(provider: crate::domain::ProviderKind) -> PrepareSettings {
    let profile = profiles::profile(provider);
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
    PrepareSettings {
        tenant: TenantId::parse("acme").unwrap(),
        dates: DateRange::new(day(1), day(31)).unwrap(),
        base_model: profile
            .base_models()
            .default
            .split(',')
            .next()
            .unwrap()
            .trim()
            .to_owned(),
        system_prompt: Some("Be kind.".into()),
        train_split: TrainSplit::new(0.5).unwrap(),
        min_examples: 1,
        max_examples: 1000,
        seed: 7,
        filters: Filters::default(),
        n_epochs: None,
        // Small windows, so long lines are windowed too.
        max_tokens_per_example: Some(64),
        format: profile.dataset_format(),
        provider: Some(provider),
    }
}

/// Reads `files` (name, bytes) as one day's exports for every provider;
/// any error is fine, a panic is not.
fn read_everywhere(files: &[(&str, Vec<u8>)]) {
    let root = std::env::temp_dir().join(format!("ft-hostile-{}", uuid::Uuid::new_v4().simple()));
    let dir = root.join("conversations/acme/2026/10/05");
    std::fs::create_dir_all(&dir).unwrap();
    let mut keys = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        keys.push(path.to_string_lossy().into_owned());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = ReadLimits {
        max_line_bytes: 4096,
        ..ReadLimits::default()
    };
    for provider in crate::domain::ProviderKind::ALL {
        let book = Rulebook::new(&settings(provider))
            .unwrap()
            .with_read_limits(read);
        let out = |side: &str| {
            let path = root.join(side);
            ExampleOut::File(
                std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
                path.to_string_lossy().into_owned(),
            )
        };
        let source = ExportSource::Local(root.clone());
        let _ = runtime.block_on(read_exports(
            &book,
            &source,
            &keys,
            out("train"),
            out("validation"),
            None,
        ));
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

/// Text with what hostile exports hold: digits and separators, marks,
/// bidi controls, NULs, e-mail and phone shapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[0-9 \\-+().@a-z\u{a0}\u{2009}\u{202f}\u{ff10}-\u{ff19}\u{200b}\u{ad}\u{2010}-\u{2015}\u{2212}]{0,60}",
        "[\u{0}\u{301}\u{202e}\u{200f}\r\n\t\\\\\"]{0,20}",
        Just("4111 1111 1111 1111 or +1 (555) 123-4567, a@b.co".to_owned()),
    ]
}

fn content() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        text().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        proptest::collection::vec(text(), 0..3).prop_map(|parts| json!(
            parts
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect::<Vec<_>>()
        )),
        any::<i64>().prop_map(serde_json::Value::from),
    ]
}

fn message() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![
            Just("system"),
            Just("user"),
            Just("assistant"),
            Just("tool"),
            Just("developer"),
            Just(""),
        ],
        content(),
        proptest::option::of(text()),
        any::<bool>(),
    )
        .prop_map(|(role, content, call, with_call)| {
            let mut m = json!({"role": role, "content": content});
            if let Some(id) = call {
                if with_call {
                    m["tool_calls"] = json!([{"id": id, "type": "function",
                        "function": {"name": "lookup", "arguments": "{}"}}]);
                } else {
                    m["tool_call_id"] = json!(id);
                }
            }
            m
        })
}

/// A line shaped like a conversation, or most of one.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (text(), proptest::collection::vec(message(), 0..8), proptest::option::of(0i64..7))
            .prop_map(|(id, messages, rating)| {
                json!({"id": id, "started_at": "2026-10-05T10:00:00Z", "outcome": "resolved",
                       "rating": rating, "messages": messages})
                    .to_string()
                    .into_bytes()
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => text().prop_map(|t| format!("{{\"id\": \"x\", \"messages\": [{t}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_plain_gzipped_or_named_gz_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let mut cut = gzip(&bytes);
        cut.truncate(cut.len() / 2);
        read_everywhere(&[
            ("a.jsonl", bytes.clone()),
            ("b.jsonl.gz", bytes.clone()),
            ("c.jsonl.gz", gzip(&bytes)),
            ("d.jsonl.gz", cut),
        ]);
    }

    #[test]
    fn arbitrary_conversation_shaped_lines_never_panic(
        lines in proptest::collection::vec(line(), 0..12),
        ends in prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])],
    ) {
        let mut body = Vec::new();
        for l in &lines {
            body.extend_from_slice(l);
            body.extend_from_slice(ends);
        }
        read_everywhere(&[("a.jsonl", body.clone()), ("b.jsonl.gz", gzip(&body))]);
    }
}
