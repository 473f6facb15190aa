//! `make bench-redact`: the redactor's throughput and accuracy, before
//! and after it read text as a person does, on the same corpus in the
//! same run.
//!
//! The corpus is every free-text field of the demo tenant's export and of
//! a synthetic export (the large-run demo's), and the same texts with
//! their numbers and addresses rewritten the way hostile exports write
//! them (no-break and thin spaces, fullwidth digits, a fullwidth '@').
//! The PII in both generators is known, so every redaction that is not of
//! a planted item is a false positive, and every planted item left is a
//! miss. Prints one table and, last, one JSON line.

#[path = "redact_bench/legacy.rs"]
mod legacy;
#[path = "../seed.rs"]
mod seed;

use std::time::Instant;

use chrono::NaiveDate;
use finetune::dataset::redact::{self, Kind, Redactions};
use serde_json::Value;

/// Every string of a conversation line: contents, names, ids, arguments.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if !matches!(k.as_str(), "started_at" | "id" | "outcome" | "channel") {
                    strings(v, out);
                }
            }
        }
        _ => {}
    }
}

fn texts_of(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            strings(&v, &mut out);
        }
    }
    out
}

/// The same text as a hostile export writes it: separators between
/// digits become no-break or thin spaces, digits fullwidth, '@' fullwidth.
fn hostile(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let mut out = String::with_capacity(text.len() * 2);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            ' ' if i > 0 && digit(i - 1) && digit(i + 1) => {
                out.push(if i % 2 == 0 { '\u{a0}' } else { '\u{2009}' })
            }
            '0'..='9' if i % 3 == 0 => {
                out.push(char::from_u32(0xFF10 + (c as u32 - 0x30)).unwrap_or(c))
            }
            '@' => out.push('＠'),
            _ => out.push(c),
        }
    }
    out
}

/// A text with the hostile rewrite undone, for matching the planted items.
fn unhostile(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{a0}' | '\u{2009}' => ' ',
            '＠' => '@',
            c if ('\u{ff10}'..='\u{ff19}').contains(&c) => {
                char::from_u32(c as u32 - 0xFF10 + 0x30).unwrap_or(c)
            }
            c => c,
        })
        .collect()
}

/// Whether a redacted span is one of the items the generators plant.
fn planted(span: &str, kind: Kind) -> bool {
    let plain = unhostile(span);
    match kind {
        // (the synthetic corpus runs two sentences together, so an
        // address may take the next word with it: `….com.the`)
        Kind::Email => plain.contains("@example.com"),
        Kind::Phone => plain.starts_with("+34 612 ") || plain.starts_with("(555) "),
        Kind::Card => plain == "4111 1111 1111 1111",
    }
}

/// Planted items in a text, counted from the generators' shapes.
fn planted_in(text: &str) -> u64 {
    let plain = unhostile(text);
    (plain.matches("@example.com").count()
        + plain.matches("+34 612 ").count()
        + plain.matches("(555) ").count()
        + plain.matches("4111 1111 1111 1111").count()) as u64
}

struct Figures {
    mb_per_s: f64,
    redactions: u64,
}

fn time(texts: &[String], passes: u32, f: impl Fn(&str) -> (usize, u64)) -> Figures {
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut redactions = 0;
    let started = Instant::now();
    let mut sink = 0usize;
    for _ in 0..passes {
        redactions = 0;
        for t in texts {
            let (len, n) = f(t);
            sink = sink.wrapping_add(len);
            redactions += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    Figures {
        mb_per_s: (bytes as f64 * f64::from(passes)) / 1e6 / secs,
        redactions,
    }
}

fn main() {
    let first_day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default();
    let demo = seed::export("acme", first_day, 14, 400, 7);
    let mut lines: Vec<String> = Vec::new();
    for file in &demo {
        let body = if file.key.ends_with(".gz") {
            use std::io::Read;
            let mut s = String::new();
            let _ = flate2::read::GzDecoder::new(&file.body[..]).read_to_string(&mut s);
            s
        } else {
            String::from_utf8_lossy(&file.body).into_owned()
        };
        lines.extend(body.lines().map(str::to_owned));
    }
    for file in corpus::Corpus::new("acme", 24_000_000, 8_000_000, 11) {
        lines.extend(
            String::from_utf8_lossy(&file.bytes)
                .lines()
                .map(str::to_owned),
        );
    }
    let plain = texts_of(lines.into_iter());
    let rewritten: Vec<String> = plain.iter().map(|t| hostile(t)).collect();

    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>12} {:>10} {:>10}",
        "corpus", "redactor", "MB/s", "redactions", "planted", "missed", "false+"
    );
    let mut json = serde_json::Map::new();
    for (name, texts) in [("plain", &plain), ("hostile", &rewritten)] {
        let mb: f64 = texts.iter().map(String::len).sum::<usize>() as f64 / 1e6;
        let planted_total: u64 = texts.iter().map(|t| planted_in(t)).sum();
        let passes = 3;
        let old = time(texts, passes, |t| {
            let mut c = legacy::Redactions::default();
            let len = legacy::redact(t, &mut c).len();
            (len, c.email + c.phone + c.card)
        });
        let new = time(texts, passes, |t| {
            let mut c = Redactions::default();
            let len = redact::redact(t, &mut c).len();
            (len, c.email + c.phone + c.card)
        });
        // Accuracy of the new redactor, span by span.
        let (mut new_fp, mut new_tp) = (0u64, 0u64);
        let mut examples = Vec::new();
        for t in texts.iter() {
            for s in redact::spans(t) {
                let text = &t[s.start..s.end];
                if planted(text, s.kind) {
                    new_tp += 1;
                } else {
                    new_fp += 1;
                    if examples.len() < 5 {
                        examples.push(format!("{:?} {text:?}", s.kind));
                    }
                }
            }
        }
        // The old one gives no spans: what it left of the planted items
        // is read from its output.
        let old_left: u64 = texts
            .iter()
            .map(|t| planted_in(&legacy::redact(t, &mut legacy::Redactions::default())))
            .sum();
        let mut missed = Vec::new();
        let new_left: u64 = texts
            .iter()
            .map(|t| {
                let left = planted_in(&redact::redact(t, &mut Redactions::default()));
                if left > 0 && missed.len() < 3 {
                    missed.push(t.chars().take(160).collect::<String>());
                }
                left
            })
            .sum();
        println!(
            "{name:<10} {:>10} {:>10.1} {:>12} {:>12} {:>10} {:>10}",
            "before", old.mb_per_s, old.redactions, planted_total, old_left, "-"
        );
        println!(
            "{name:<10} {:>10} {:>10.1} {:>12} {:>12} {:>10} {:>10}",
            "after", new.mb_per_s, new.redactions, planted_total, new_left, new_fp
        );
        for e in &examples {
            println!("  false positive: {e}");
        }
        for m in &missed {
            println!("  left in: {m:?}");
        }
        json.insert(
            name.to_owned(),
            serde_json::json!({
                "mb": (mb * 10.0).round() / 10.0,
                "texts": texts.len(),
                "planted": planted_total,
                "before": {"mb_per_s": (old.mb_per_s * 10.0).round() / 10.0, "redactions": old.redactions, "missed": old_left},
                "after": {"mb_per_s": (new.mb_per_s * 10.0).round() / 10.0, "redactions": new.redactions, "missed": new_left,
                          "true_positives": new_tp, "false_positives": new_fp,
                          "false_positive_rate": if new_tp + new_fp == 0 { 0.0 } else { new_fp as f64 / (new_tp + new_fp) as f64 }},
            }),
        );
    }
    println!("{}", Value::Object(json));
}
