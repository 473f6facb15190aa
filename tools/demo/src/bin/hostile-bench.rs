//! `make bench-hostile`: peak memory of `finetune prepare`'s reading path
//! on the exports that used to exhaust a worker — a 1 MB gzip file that
//! inflates to 1 GiB of spaces with no newline, and a file of one 64 MiB
//! line — each beside a file of good conversations.
//!
//! `hostile-bench <baseline|gzip|gzip-unbounded|line>` writes the case's exports to
//! a temporary folder, prepares them with
//! [`finetune::dataset::prepare::prepare_local_on_threads`] (what the CLI
//! runs) and prints the process's peak resident memory (`VmHWM`). One
//! case per process, so one case's peak is not another's. `gzip-unbounded`
//! lifts the inflation limits: the line ceiling alone must hold memory as
//! the whole gigabyte streams through; `baseline` is the good file alone
//! (the tokenizer and the runtime), for comparison.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::NaiveDate;
use finetune::dataset::PrepareSettings;
use finetune::dataset::io::ReadLimits;
use finetune::dataset::prepare::prepare_local_on_threads;
use finetune::domain::{DateRange, Filters, TenantId, TrainSplit};

const MIB: u64 = 1024 * 1024;

fn day_dir(root: &Path) -> PathBuf {
    root.join("conversations/bench/2026/10/01")
}

fn good_conversations() -> String {
    (0..50)
        .map(|n| {
            serde_json::json!({
                "id": format!("conv-{n}"), "started_at": "2026-10-01T10:00:00Z",
                "outcome": "resolved", "rating": 5,
                "messages": [
                    {"role": "user", "content": format!("Where is order {n}?")},
                    {"role": "assistant", "content": format!("Order {n} ships tomorrow.")}
                ]
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// 1 GiB of spaces, no newline, gzipped at the best level (about 1 MB).
fn write_gzip_bomb(path: &Path) -> std::io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let chunk = vec![b' '; MIB as usize];
    for _ in 0..1024 {
        gz.write_all(&chunk)?;
    }
    gz.finish()?.sync_all()?;
    Ok(std::fs::metadata(path)?.len())
}

/// One JSON line of 64 MiB (a conversation whose one message is huge).
fn write_long_line(path: &Path) -> std::io::Result<u64> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(br#"{"id": "huge", "started_at": "2026-10-01T10:00:00Z", "messages": [{"role": "user", "content": ""#)?;
    let chunk = vec![b'x'; MIB as usize];
    for _ in 0..64 {
        file.write_all(&chunk)?;
    }
    file.write_all(b"\"}]}\n")?;
    file.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// `VmHWM` of /proc/self/status, in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() -> ExitCode {
    // The tokenizer built as the prepare function builds it (from the
    // vocabularies; here the ones compiled in, there its layer's).
    finetune::dataset::dictionaries::use_embedded();
    let case = std::env::args().nth(1).unwrap_or_default();
    let root = std::env::temp_dir().join(format!("hostile-bench-{}", std::process::id()));
    let result = run(&case, &root);
    let _ = std::fs::remove_dir_all(&root);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(case: &str, root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = day_dir(root);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("a-good.jsonl"), good_conversations())?;
    let mut read = ReadLimits::default();
    let (what, bytes) = match case {
        "gzip" | "gzip-unbounded" => {
            if case == "gzip-unbounded" {
                read.max_gzip_ratio = u64::MAX;
                read.max_inflated_bytes = u64::MAX;
            }
            let n = write_gzip_bomb(&dir.join("b-bomb.jsonl.gz"))?;
            ("1 GiB of spaces, no newline, gzipped", n)
        }
        "line" => {
            let n = write_long_line(&dir.join("b-line.jsonl"))?;
            ("one 64 MiB line", n)
        }
        // The good file alone: what the tokenizer and the runtime take.
        "baseline" => ("the good file alone", 0),
        other => {
            return Err(
                format!("unknown case {other:?}: baseline, gzip, gzip-unbounded or line").into(),
            );
        }
    };
    let before = peak_rss();
    let day = NaiveDate::from_ymd_opt(2026, 10, 1).ok_or("no date")?;
    let settings = PrepareSettings {
        tenant: TenantId::parse("bench")?,
        dates: DateRange::new(day, day)?,
        base_model: "gpt-4o-mini-2024-07-18".into(),
        system_prompt: None,
        train_split: TrainSplit::new(0.8)?,
        min_examples: 1,
        max_examples: 100_000,
        seed: 7,
        filters: Filters::default(),
        n_epochs: None,
        max_tokens_per_example: None,
        format: Default::default(),
        provider: None,
    };
    let out_dir = root.join("out");
    let at = Instant::now();
    let out = prepare_local_on_threads(root, &out_dir, &settings, read, 1)?;
    let secs = at.elapsed().as_secs_f64();
    let peak = peak_rss();
    let s = &out.stats;
    println!(
        "{case:>15}: {what} ({bytes} bytes on disk): peak RSS {:.1} MiB (before reading {:.1} MiB), \
         {secs:.1} s; {} conversations, malformed {:?}, refused {:?}",
        peak as f64 / MIB as f64,
        before as f64 / MIB as f64,
        s.conversations_read,
        s.malformed_reasons,
        s.files_refused
            .iter()
            .map(|f| f.reason.as_str())
            .collect::<Vec<_>>(),
    );
    if peak > 150 * MIB {
        return Err(format!("peak RSS {} MiB is over 150 MiB", peak / MIB).into());
    }
    Ok(())
}
