//! A realistic, messy export of one tenant's support conversations, as the
//! product's chat system would write it: several days, plain and gzipped
//! files, and the usual faults (BOM, CRLF, blank and truncated lines,
//! unknown roles, other tenants' lines, duplicates, out-of-range times,
//! PII, tool calls, one conversation far over any token limit).

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// One export file: its key under the bucket and its bytes (gzipped when
/// the key ends in `.gz`).
pub struct ExportFile {
    pub key: String,
    pub body: Vec<u8>,
}

const PRODUCTS: &[&str] = &[
    "trail running shoes",
    "rain jacket",
    "40 L backpack",
    "down sleeping bag",
    "camping stove",
    "merino base layer",
];

const ISSUES: &[(&str, &str)] = &[
    (
        "Where is my order {order}? It was supposed to arrive yesterday.",
        "I'm sorry for the wait. Order {order} left our warehouse on Monday and the carrier shows it out for delivery today. You'll get a text when it's at your door.",
    ),
    (
        "I want to return the {product} I bought, it's too small.",
        "Of course. You can return the {product} within 30 days. I've emailed you a prepaid label; drop the parcel at any post office and we'll refund you within 5 days of receiving it.",
    ),
    (
        "Can I change the delivery address for order {order}?",
        "Yes, as long as it hasn't shipped. Order {order} is still being packed, so I've updated the address. You'll see the change in your confirmation email.",
    ),
    (
        "Do you have the {product} in size 44?",
        "We do: the {product} in size 44 is in stock in both colours. Would you like me to reserve one for you?",
    ),
    (
        "My {product} arrived damaged.",
        "I'm sorry about that. Please send a photo of the damage and I'll ship a replacement {product} today at no cost.",
    ),
];

fn order_id(rng: &mut StdRng) -> String {
    format!("A{}", rng.random_range(100_000..999_999))
}

fn pii_sentence(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => format!(
            "My email is jane.doe{}@example.com.",
            rng.random_range(1..99)
        ),
        1 => format!(
            "Call me on +34 612 {} {}.",
            rng.random_range(100..999),
            rng.random_range(100..999)
        ),
        // A Luhn-valid test card number.
        2 => "I paid with card 4111 1111 1111 1111.".to_owned(),
        _ => format!(
            "My number is (555) {}-{}.",
            rng.random_range(200..999),
            rng.random_range(1000..9999)
        ),
    }
}

fn conversation(rng: &mut StdRng, tenant: &str, id: usize, day: NaiveDate) -> Value {
    let (question, answer) = ISSUES[rng.random_range(0..ISSUES.len())];
    let order = order_id(rng);
    let product = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
    let fill = |s: &str| s.replace("{order}", &order).replace("{product}", product);
    let mut user = fill(question);
    if rng.random_bool(0.3) {
        user = format!("{user} {}", pii_sentence(rng));
    }
    let mut messages = vec![
        json!({"role": "system", "content": "You are Acme Outfitters' support assistant."}),
        json!({"role": "user", "content": user}),
    ];
    if rng.random_bool(0.15) {
        // A well-formed tool call: the assistant looks the order up first.
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": format!("call_{id}"), "type": "function",
            "function": {"name": "lookup_order", "arguments": format!("{{\"order_id\":\"{order}\"}}")}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("call_{id}"),
            "content": format!("{{\"order_id\":\"{order}\",\"status\":\"in_transit\"}}")}));
    }
    messages.push(json!({"role": "assistant", "content": fill(answer)}));
    if rng.random_bool(0.4) {
        messages.push(json!({"role": "user", "content": "Thanks, that helps!"}));
        messages.push(json!({"role": "assistant", "content": "You're welcome! Anything else I can do for you?"}));
    }
    let outcome = match rng.random_range(0..10) {
        0 => "escalated",
        1 => "abandoned",
        _ => "resolved",
    };
    let started = Utc.from_utc_datetime(&day.and_hms_opt(8, 0, 0).unwrap_or_default())
        + Duration::minutes(rng.random_range(0..600));
    json!({
        "id": format!("conv-{id}"),
        "started_at": started.to_rfc3339(),
        "tenant_id": tenant,
        "channel": if rng.random_bool(0.5) { "whatsapp" } else { "web" },
        "outcome": outcome,
        "rating": rng.random_range(1..=5),
        "messages": messages,
    })
}

/// `days` days of exports for `tenant` starting at `first_day`, about
/// `per_day` conversations a day.
pub fn export(
    tenant: &str,
    first_day: NaiveDate,
    days: u32,
    per_day: usize,
    seed: u64,
) -> Vec<ExportFile> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut files = Vec::new();
    let mut next_id = 1;
    for d in 0..days {
        let day = first_day + Duration::days(i64::from(d));
        let mut lines: Vec<String> = Vec::new();
        for _ in 0..per_day {
            lines.push(conversation(&mut rng, tenant, next_id, day).to_string());
            next_id += 1;
        }
        // The usual mess, a little of each every day.
        let dup = lines[0].replacen("\"id\":\"conv-", "\"id\":\"dup-conv-", 1);
        lines.push(dup);
        lines.push(String::new());
        lines.push(r#"{"id": "conv-broken", "started_at": "2026-10-0"#.to_owned());
        lines.push(
            json!({"id": format!("odd-{d}"), "started_at": format!("{day}T10:00:00Z"), "outcome": "resolved",
                "messages": [{"role": "customer", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
            .to_string(),
        );
        lines.push(
            json!({"id": format!("other-{d}"), "started_at": format!("{day}T11:00:00Z"), "tenant_id": "globex",
                "outcome": "resolved",
                "messages": [{"role": "user", "content": "not yours"}, {"role": "assistant", "content": "indeed"}]})
            .to_string(),
        );
        lines.push(
            json!({"id": format!("noreply-{d}"), "started_at": format!("{day}T12:00:00Z"), "outcome": "resolved",
                "messages": [{"role": "user", "content": "hello?"}]})
            .to_string(),
        );
        if d == 0 {
            // Exported late: the folder says today, the timestamp the day before.
            lines.push(
                json!({"id": "early-bird", "started_at": (day - Duration::days(1)).to_string() + "T23:59:00Z",
                    "outcome": "resolved",
                    "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})
                .to_string(),
            );
            // A marathon: far longer than any model's per-example limit.
            let mut long = vec![
                json!({"role": "system", "content": "You are Acme Outfitters' support assistant."}),
            ];
            for i in 0..400 {
                long.push(json!({"role": "user", "content": format!("Question {i}: {}", "tell me more about tents and weather and fabrics ".repeat(20))}));
                long.push(json!({"role": "assistant", "content": format!("Answer {i}: {}", "our tents use ripstop nylon with a waterproof coating ".repeat(20))}));
            }
            lines.push(json!({"id": "marathon", "started_at": format!("{day}T13:00:00Z"), "outcome": "resolved", "messages": long}).to_string());
        }
        let gzip = d % 2 == 1;
        let mut body = if d == 0 {
            "\u{feff}".to_owned()
        } else {
            String::new()
        };
        let eol = if d == 2 { "\r\n" } else { "\n" };
        body.push_str(&lines.join(eol));
        body.push_str(eol);
        let date = day.format("%Y/%m/%d");
        let key = format!(
            "conversations/{tenant}/{date}/export-{}.jsonl{}",
            day.format("%Y%m%d"),
            if gzip { ".gz" } else { "" }
        );
        let body = if gzip {
            gzip_bytes(body.as_bytes())
        } else {
            body.into_bytes()
        };
        files.push(ExportFile { key, body });
    }
    files
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}
