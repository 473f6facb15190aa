//! The preparation end to end over a local folder laid out like the bucket.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde_json::json;

use super::io::{DatasetSink, ExportSource};
use super::prepare::{PrepareSettings, is_train, prepare};
use super::{CheckOptions, PrepareError, check_jsonl};
use crate::domain::{DateRange, Filters, TenantId, TrainSplit};

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("ft-ds-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.0.join(rel)).unwrap_or_default()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, d).unwrap()
}

fn split(share: f64) -> TrainSplit {
    TrainSplit::new(share).unwrap()
}

fn settings() -> PrepareSettings {
    PrepareSettings {
        tenant: TenantId::parse("acme").unwrap(),
        dates: DateRange::new(day(1), day(31)).unwrap(),
        base_model: "gpt-4o-mini-2024-07-18".into(),
        system_prompt: None,
        train_split: split(0.8),
        min_examples: 1,
        max_examples: 100_000,
        seed: 7,
        filters: Filters::default(),
        n_epochs: None,
        max_tokens_per_example: None,
        format: Default::default(),
        provider: None,
    }
}

/// A good conversation whose text is unique to `n`.
fn conv(n: u32) -> serde_json::Value {
    json!({"id": format!("conv-{n}"), "started_at": "2026-10-05T10:00:00Z", "outcome": "resolved",
           "rating": 5, "channel": "web",
           "messages": [{"role": "system", "content": "Be kind."},
                        {"role": "user", "content": format!("Where is order {n}?")},
                        {"role": "assistant", "content": format!("Order {n} ships tomorrow.")}]})
}

fn lines(values: &[serde_json::Value]) -> Vec<u8> {
    values
        .iter()
        .map(|v| format!("{v}\n"))
        .collect::<String>()
        .into_bytes()
}

async fn run(
    input: &Path,
    output: &Path,
    s: &PrepareSettings,
) -> Result<super::prepare::Output, PrepareError> {
    prepare(
        &ExportSource::Local(input.to_owned()),
        &DatasetSink::Local(output.to_owned()),
        s,
    )
    .await
}

fn all_lines(out: &Dir) -> Vec<String> {
    let mut v: Vec<String> = out.read("train.jsonl").lines().map(str::to_owned).collect();
    v.extend(out.read("validation.jsonl").lines().map(str::to_owned));
    v
}

#[tokio::test]
async fn messy_exports_are_counted_not_fatal() {
    // GIVEN one file with every kind of mess real exports have
    let input = Dir::new();
    let mut text = Vec::new();
    text.extend_from_slice(b"\xef\xbb\xbf");
    text.extend_from_slice(conv(1).to_string().as_bytes());
    text.extend_from_slice(b"\r\n\n   \n");
    text.extend_from_slice(b"{\"id\": \"truncated\", \"messages\": [\n");
    let mut dup = conv(1);
    dup["id"] = json!("conv-1-copy");
    let mut other_tenant = conv(2);
    other_tenant["tenant_id"] = json!("globex");
    let mut same_tenant = conv(3);
    same_tenant["tenant_id"] = json!("acme");
    let mut late = conv(4);
    late["started_at"] = json!("2026-11-02T00:00:00Z");
    let mut unknown_role = conv(5);
    unknown_role["messages"][1]["role"] = json!("moderator");
    let mut no_reply = conv(6);
    no_reply["messages"].as_array_mut().unwrap().pop();
    let escalated = {
        let mut c = conv(7);
        c["outcome"] = json!("escalated");
        c
    };
    let tools = json!({"id": "conv-8", "started_at": "2026-10-05T10:00:00Z", "messages": [
        {"role": "user", "content": "Status of order 8?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"order\":8}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "assistant", "content": "Order 8 has shipped."}]});
    let broken_tools = json!({"id": "conv-9", "started_at": "2026-10-05T10:00:00Z", "messages": [
        {"role": "user", "content": "Status of order 9?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "assistant", "content": "Order 9 has shipped."}]});
    text.extend(lines(&[
        dup,
        other_tenant,
        same_tenant,
        late,
        unknown_role,
        no_reply,
        escalated,
        tools,
        broken_tools,
    ]));
    text.extend_from_slice(b"not json at all\r\n");
    // (filed under October 1st: the timestamp, not the folder, decides)
    input.write("conversations/acme/2026/10/01/export.jsonl", &text);
    let out = Dir::new();

    // WHEN prepared
    let mut s = settings();
    s.train_split = split(1.0);
    let r = run(&input.0, &out.0, &s).await.unwrap();

    // THEN each problem has its own counter and the good ones are kept
    let s = &r.stats;
    assert_eq!(s.malformed_lines, 2);
    assert_eq!(s.conversations_read, 10);
    assert_eq!(s.duplicates_removed, 1);
    for (reason, n) in [
        ("other_tenant", 1),
        ("outside_date_range", 1),
        ("unknown_role", 1),
        ("no_assistant_reply", 1),
        ("excluded_outcome", 1),
        ("broken_tool_calls", 1),
    ] {
        assert_eq!(s.dropped.get(reason), Some(&n), "{reason}: {:?}", s.dropped);
    }
    assert_eq!(s.train_examples + s.validation_examples, 3);
    let kept = all_lines(&out);
    assert_eq!(kept.len(), 3);
    assert!(
        kept.iter()
            .any(|l| l.contains("tool_calls") && l.contains("\"tool_call_id\":\"c1\""))
    );
    // AND every written example passes the checker
    let report = check_jsonl(
        out.read("train.jsonl").as_bytes(),
        &CheckOptions::for_model("gpt-4o-mini"),
    )
    .unwrap();
    assert!(
        report.format_errors.is_empty(),
        "{:?}",
        report.format_errors
    );
}

#[tokio::test]
async fn gzip_exports_are_read_like_plain_ones() {
    use std::io::Write;
    let input = Dir::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&lines(&[conv(1), conv(2)])).unwrap();
    input.write(
        "conversations/acme/2026/10/05/a.jsonl.gz",
        &gz.finish().unwrap(),
    );
    let out = Dir::new();
    let r = run(&input.0, &out.0, &settings()).await.unwrap();
    assert_eq!(r.stats.conversations_read, 2);
    assert_eq!(r.stats.train_examples + r.stats.validation_examples, 2);
}

#[tokio::test]
async fn the_configured_system_prompt_replaces_or_is_added() {
    let input = Dir::new();
    let mut without = conv(2);
    without["messages"].as_array_mut().unwrap().remove(0);
    input.write(
        "conversations/acme/2026/10/05/a.jsonl",
        &lines(&[conv(1), without]),
    );
    let out = Dir::new();
    let mut s = settings();
    s.system_prompt = Some("You are Acme's assistant.".into());
    s.train_split = split(1.0);
    run(&input.0, &out.0, &s).await.unwrap();
    let train = out.read("train.jsonl");
    assert_eq!(train.lines().count(), 2);
    for line in train.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let msgs = v["messages"].as_array().unwrap();
        assert_eq!(
            msgs[0],
            json!({"role": "system", "content": "You are Acme's assistant."})
        );
        assert_eq!(msgs.iter().filter(|m| m["role"] == "system").count(), 1);
    }
    assert!(!train.contains("Be kind."));
}

#[tokio::test]
async fn pii_is_redacted_and_counted_by_kind() {
    let input = Dir::new();
    let mut c = conv(1);
    c["messages"][1]["content"] =
        json!("I'm ana@example.com, call +34 612 345 678, card 4111 1111 1111 1111");
    input.write("conversations/acme/2026/10/05/a.jsonl", &lines(&[c]));
    let out = Dir::new();
    let mut s = settings();
    s.train_split = split(1.0);
    let r = run(&input.0, &out.0, &s).await.unwrap();
    let train = out.read("train.jsonl");
    assert!(
        train.contains("I'm [EMAIL], call [PHONE], card [CARD]"),
        "{train}"
    );
    assert_eq!(
        (
            r.stats.redactions.email,
            r.stats.redactions.phone,
            r.stats.redactions.card
        ),
        (1, 1, 1)
    );
    assert!(!out.read("manifest.json").contains("ana@"));
}

#[tokio::test]
async fn a_card_email_or_phone_ending_a_sentence_never_reaches_the_dataset() {
    // GIVEN an export whose customer ends sentences with a card number,
    // an address and a phone number
    let input = Dir::new();
    let mut c = conv(1);
    c["messages"][1]["content"] = json!("Mi tarjeta es 4111111111111111.");
    let mut d = conv(2);
    d["messages"][1]["content"] =
        json!("Escribe a ana.lopez@example.com. O llama al +52 55 1234 5678.");
    input.write("conversations/acme/2026/10/05/a.jsonl", &lines(&[c, d]));
    let out = Dir::new();
    let mut s = settings();
    s.train_split = split(1.0);
    // WHEN the dataset is prepared
    let r = run(&input.0, &out.0, &s).await.unwrap();
    // THEN no run of their digits and no address is in any file written
    let train = out.read("train.jsonl");
    assert!(train.contains("Mi tarjeta es [CARD]."), "{train}");
    assert!(
        train.contains("Escribe a [EMAIL]. O llama al [PHONE]."),
        "{train}"
    );
    // (the manifest's digests are hex: a digit window there means nothing)
    let card = "4111111111111111";
    for file in ["train.jsonl", "validation.jsonl"] {
        let text = out.read(file);
        for w in 0..=card.len() - 4 {
            assert!(!text.contains(&card[w..w + 4]), "{file}: {text}");
        }
    }
    for file in ["train.jsonl", "validation.jsonl", "manifest.json"] {
        let text = out.read(file);
        for leak in [card, "ana.lopez", "example.com", "1234 5678", "+52"] {
            assert!(!text.contains(leak), "{file}: {text}");
        }
    }
    // AND the stats count one of each
    let counted = r.stats.redactions;
    assert_eq!((counted.card, counted.email, counted.phone), (1, 1, 1));
}

#[tokio::test]
async fn filters_drop_by_outcome_rating_and_turns() {
    let input = Dir::new();
    let mut low = conv(1);
    low["rating"] = json!(2);
    let mut abandoned = conv(2);
    abandoned["outcome"] = json!("abandoned");
    input.write(
        "conversations/acme/2026/10/05/a.jsonl",
        &lines(&[low, abandoned, conv(3)]),
    );
    let out = Dir::new();
    let mut s = settings();
    s.filters.min_rating = Some(4);
    s.filters.min_assistant_turns = 2;
    s.min_examples = 0;
    let stats = run(&input.0, &out.0, &s).await.unwrap().stats;
    assert_eq!(stats.train_examples + stats.validation_examples, 0);
    assert_eq!(stats.dropped.get("below_min_rating"), Some(&1));
    assert_eq!(stats.dropped.get("excluded_outcome"), Some(&1));
    assert_eq!(stats.dropped.get("too_few_assistant_turns"), Some(&1));
}

#[tokio::test]
async fn too_few_examples_says_how_many_there_were() {
    let input = Dir::new();
    input.write(
        "conversations/acme/2026/10/05/a.jsonl",
        &lines(&[conv(1), conv(2), conv(3)]),
    );
    let out = Dir::new();
    let mut s = settings();
    s.train_split = split(1.0);
    s.min_examples = 10;
    let err = run(&input.0, &out.0, &s).await.unwrap_err();
    assert!(
        err.to_string().contains("only 3 training examples"),
        "{err}"
    );
    assert!(err.to_string().contains("at least 10"), "{err}");
}

fn long_conversation(turns: u32) -> serde_json::Value {
    let mut messages = vec![json!({"role": "system", "content": "Be kind."})];
    for t in 0..turns {
        messages.push(json!({"role": "user", "content": format!("Question number {t} about my long order history please")}));
        messages.push(json!({"role": "assistant", "content": format!("Answer number {t}: everything is fine with that order")}));
    }
    json!({"id": "long-1", "started_at": "2026-10-05T10:00:00Z", "messages": messages})
}

#[tokio::test]
async fn long_conversations_become_windows_ending_on_replies() {
    // GIVEN a 30-turn conversation and a 120-token limit
    let input = Dir::new();
    let mut huge_turn = conv(2);
    huge_turn["messages"][1]["content"] = json!("word ".repeat(500));
    input.write(
        "conversations/acme/2026/10/05/a.jsonl",
        &lines(&[long_conversation(30), huge_turn]),
    );
    let out = Dir::new();
    let mut s = settings();
    s.max_tokens_per_example = Some(120);
    // WHEN prepared
    let r = run(&input.0, &out.0, &s).await.unwrap();
    // THEN it becomes several windows, each under the limit, each with the
    // system prompt and ending on the assistant, all on one side
    assert_eq!(r.stats.examples_over_limit, 1);
    assert!(r.stats.windows_made > 3);
    let lines = all_lines(&out);
    assert_eq!(lines.len() as u64, r.stats.windows_made);
    assert!(r.stats.train_examples == 0 || r.stats.validation_examples == 0);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0]["content"], "Be kind.");
        assert_eq!(m.last().unwrap()["role"], "assistant");
    }
    let report = check_jsonl(
        all_lines(&out).join("\n").as_bytes(),
        &super::CheckOptions {
            max_tokens_per_example: 120,
            ..CheckOptions::for_model("gpt-4o-mini")
        },
    )
    .unwrap();
    assert_eq!(report.warnings.over_limit, 0);
    assert!(report.tokens.max <= 120);
    // AND a single turn over the limit drops with its reason
    assert_eq!(r.stats.dropped.get("turn_over_token_limit"), Some(&1));
}

fn many(n: u32) -> Vec<u8> {
    lines(&(0..n).map(conv).collect::<Vec<_>>())
}

#[tokio::test]
async fn same_input_and_seed_give_byte_identical_output() {
    let input = Dir::new();
    input.write("conversations/acme/2026/10/05/a.jsonl", &many(60));
    input.write("conversations/acme/2026/10/06/b.jsonl", &many(90)[..]);
    let (a, b) = (Dir::new(), Dir::new());
    let mut s = settings();
    s.max_examples = 50;
    run(&input.0, &a.0, &s).await.unwrap();
    run(&input.0, &b.0, &s).await.unwrap();
    for f in ["train.jsonl", "validation.jsonl", "manifest.json"] {
        assert_eq!(a.read(f), b.read(f), "{f}");
        assert!(!a.read(f).is_empty(), "{f}");
    }
}

#[tokio::test]
async fn no_conversation_lands_in_both_train_and_validation() {
    let input = Dir::new();
    input.write("conversations/acme/2026/10/05/a.jsonl", &many(300));
    let out = Dir::new();
    let mut s = settings();
    s.train_split = split(0.5);
    let r = run(&input.0, &out.0, &s).await.unwrap();
    let (train, validation) = (out.read("train.jsonl"), out.read("validation.jsonl"));
    assert!(r.stats.train_examples > 100 && r.stats.validation_examples > 100);
    for n in 0..300 {
        let marker = format!("Where is order {n}?");
        let in_train = train.contains(&marker);
        assert_ne!(in_train, validation.contains(&marker), "conv-{n}");
        assert_eq!(in_train, is_train(7, &format!("conv-{n}"), 0.5), "conv-{n}");
    }
}

#[tokio::test]
async fn the_cap_is_a_seeded_sample_not_the_first_n() {
    let input = Dir::new();
    input.write("conversations/acme/2026/10/05/a.jsonl", &many(200));
    let mut s = settings();
    s.max_examples = 20;
    s.train_split = split(1.0);
    let (a, b) = (Dir::new(), Dir::new());
    let r = run(&input.0, &a.0, &s).await.unwrap();
    assert_eq!(r.stats.train_examples, 20);
    assert_eq!(r.stats.sampled_out, 180);
    let first_n: String = (0..20).map(|n| format!("Where is order {n}?")).collect();
    let kept = a.read("train.jsonl");
    let from_first_20 = (0..20)
        .filter(|n| kept.contains(&format!("Where is order {n}?")))
        .count();
    assert!(from_first_20 < 20, "{first_n}");
    s.seed = 8;
    run(&input.0, &b.0, &s).await.unwrap();
    assert_ne!(a.read("train.jsonl"), b.read("train.jsonl"));
}

#[tokio::test]
async fn manifest_records_files_config_and_stats() {
    let input = Dir::new();
    input.write("conversations/acme/2026/10/05/a.jsonl", &many(40));
    let out = Dir::new();
    let r = run(&input.0, &out.0, &settings()).await.unwrap();
    let m: serde_json::Value = serde_json::from_str(&out.read("manifest.json")).unwrap();
    assert_eq!(m["format"], "openai-chat");
    assert_eq!(m["files"]["train"]["sha256"], r.train.sha256.as_str());
    assert_eq!(m["files"]["train"]["bytes"], r.train.bytes);
    assert_eq!(m["settings"]["seed"], 7);
    assert_eq!(m["source"]["start_date"], "2026-10-01");
    assert_eq!(m["stats"]["train_examples"], r.stats.train_examples);
    assert_eq!(
        r.stats.epochs,
        super::stats::default_epochs(r.stats.train_examples)
    );
    assert_eq!(
        r.stats.estimated_charged_tokens,
        r.stats.billing_tokens * u64::from(r.stats.epochs)
    );
    assert!(r.stats.estimated_cost_usd >= 0.0);
}

#[test]
fn a_folder_prepared_on_several_threads_makes_the_dataset_one_thread_makes() {
    // GIVEN 3 MB of generated exports in 300 kB files, one of them repeated
    // later (its conversations duplicates across shards) and one gzipped
    let input = Dir::new();
    let files: Vec<corpus::ExportFile> =
        corpus::Corpus::new("acme", 3_000_000, 300_000, 9).collect();
    for file in &files {
        input.write(&file.key, &file.bytes);
    }
    input.write("conversations/acme/2026/10/30/copy.jsonl", &files[0].bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &files[1].bytes).unwrap();
    input.write(
        "conversations/acme/2026/10/31/again.jsonl.gz",
        &gz.finish().unwrap(),
    );
    let mut s = settings();
    s.max_examples = 600;

    // WHEN it is prepared on one thread and on three
    let (one, three) = (Dir::new(), Dir::new());
    let a = super::prepare::prepare_local_on_threads(&input.0, &one.0, &s, Default::default(), 1)
        .unwrap();
    let b = super::prepare::prepare_local_on_threads(&input.0, &three.0, &s, Default::default(), 3)
        .unwrap();

    // THEN the files are the same bytes and the figures the same, but for
    // how many shards read the exports
    assert_eq!(a.stats.shards, 1);
    assert!(b.stats.shards >= 3, "{:?}", b.stats);
    for file in ["train.jsonl", "validation.jsonl"] {
        assert_eq!(one.read(file), three.read(file), "{file}");
    }
    assert_eq!(a.train.sha256, b.train.sha256);
    let mut same = b.stats.clone();
    same.shards = 1;
    assert_eq!(a.stats, same);
    assert!(
        a.stats.duplicates_removed > 100 && a.stats.sampled_out > 0,
        "{:?}",
        a.stats
    );
}

#[tokio::test]
async fn pii_in_unicode_forms_and_in_every_field_reaches_no_providers_file() {
    // GIVEN a conversation with a card in no-break spaces, one in
    // fullwidth digits, an address with a fullwidth at-sign, a phone with
    // thin spaces, a phone in a message's name, a card in a tool call's
    // id (and its result's), an address in a function name, a phone as a
    // JSON number in the arguments, and an address in the system prompt
    let card_nbsp = "4111\u{a0}1111\u{a0}1111\u{a0}1111";
    let card_wide = "４１１１１１１１１１１１１１１１";
    let text = json!({"id": "conv-text", "started_at": "2026-10-05T09:00:00Z", "outcome": "resolved",
        "messages": [
            {"role": "user",
             "content": format!("tarjeta {card_nbsp} o {card_wide}, correo ana＠example.com, tel 612\u{2009}345\u{2009}678")},
            {"role": "assistant", "content": "Gracias."}]});
    // (Nova takes no tool calls: its format drops this one, after
    // redaction has counted it)
    let tools = json!({"id": "conv-tools", "started_at": "2026-10-05T10:00:00Z", "outcome": "resolved",
        "messages": [
            {"role": "user", "name": "maria_0612345678", "content": "¿Me avisas?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_4111111111111111", "type": "function",
                "function": {"name": "notify_ana@example.com", "arguments": "{\"phone\":612345678,\"note\":\"ok\"}"}}]},
            {"role": "tool", "tool_call_id": "call_4111111111111111", "content": "{\"sent\":true}"},
            {"role": "assistant", "content": "Hecho."}]});
    let input = Dir::new();
    input.write(
        "conversations/acme/2026/10/05/a.jsonl",
        &lines(&[text, tools]),
    );
    for (base_model, format) in [
        (
            "gpt-4o-mini-2024-07-18",
            super::format::DatasetFormat::OpenAiChat,
        ),
        (
            "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            super::format::DatasetFormat::OpenAiChat,
        ),
        (
            "amazon.nova-micro-v1:0:128k",
            super::format::DatasetFormat::BedrockConversation,
        ),
    ] {
        let out = Dir::new();
        let mut s = settings();
        s.train_split = split(1.0);
        s.base_model = base_model.into();
        s.format = format;
        s.system_prompt = Some("Eres el asistente; escala a soporte@acme.example.com.".into());
        // WHEN it is prepared for each provider's format
        let r = run(&input.0, &out.0, &s).await.unwrap();
        // THEN nothing a reader would read as a digit of the card or the
        // phones, and no address, is in the file
        let train = out.read("train.jsonl");
        let read = super::redact::normalise::Normalised::new(&train)
            .text
            .into_owned();
        for leak in [
            "4111",
            "1111",
            "0612345678",
            "612345678",
            "345",
            "ana@",
            "example.com",
            "soporte",
        ] {
            assert!(!read.contains(leak), "{base_model}: {leak} in {train}");
        }
        // (the call's id is counted where it is sent: in the call and in
        // its result; the prompt in each conversation)
        let counted = r.stats.redactions;
        assert_eq!(
            (counted.card, counted.email, counted.phone),
            (4, 4, 3),
            "{base_model}"
        );
        if format != super::format::DatasetFormat::OpenAiChat {
            continue;
        }
        // AND the example is still well-formed: its tool call still pairs
        // with its result, and the arguments are still JSON
        let line: serde_json::Value = train
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l.to_string().contains("tool_calls"))
            .unwrap();
        let text = line.to_string();
        let token = text
            .split("card_")
            .nth(1)
            .map(|t| &t[..6])
            .unwrap_or_else(|| panic!("{base_model}: no card token in {text}"));
        assert_eq!(
            text.matches(&format!("call_card_{token}")).count(),
            2,
            "{text}"
        );
        let args = line["messages"][2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let args: serde_json::Value = serde_json::from_str(args).unwrap();
        assert_eq!(args["phone"], "[PHONE]");
    }
}
