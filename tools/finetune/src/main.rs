//! `finetune`: check an OpenAI training file, or prepare a dataset from a
//! local folder laid out like the bucket, with the pipeline's own code;
//! an operator's `limits show|set` of a tenant's fleet limits.

mod limits;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use finetune::dataset::prepare::prepare_local_on_threads;
use finetune::dataset::{CheckOptions, Encoding, PrepareSettings, check_jsonl_file};
use finetune::domain::{DateRange, Filters, TenantId, TrainSplit};

#[derive(Parser)]
#[command(name = "finetune", about = "Fine-tuning dataset tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check an OpenAI chat-format training file; prints a JSON report and
    /// exits 1 when any format error was found.
    Validate {
        file: PathBuf,
        /// The base model: picks the encoding and the per-example limit.
        #[arg(long)]
        model: Option<String>,
        /// cl100k_base or o200k_base (default: the model's, else cl100k_base).
        #[arg(long)]
        encoding: Option<String>,
        /// Threads checking the file (default: the machine's cores). The
        /// report is the same whatever the number.
        #[arg(long)]
        threads: Option<NonZeroUsize>,
    },
    /// Prepare train/validation/manifest from exports under
    /// INPUT/conversations/{tenant}/{YYYY}/{MM}/{DD}/; prints the stats.
    Prepare {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        start_date: NaiveDate,
        #[arg(long)]
        end_date: NaiveDate,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        system_prompt: Option<String>,
        #[arg(long, default_value_t = 0.9)]
        train_split: f64,
        #[arg(long, default_value_t = 10)]
        min_examples: u32,
        #[arg(long, default_value_t = 50_000)]
        max_examples: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "gpt-4o-mini-2024-07-18")]
        model: String,
        /// Threads reading the exports (default: the machine's cores); the
        /// dataset is the same whatever the number.
        #[arg(long)]
        threads: Option<NonZeroUsize>,
    },
    /// A tenant's fleet limits (operators only: see `limits.rs`).
    Limits {
        #[command(subcommand)]
        command: limits::LimitsCommand,
    },
    /// Write a synthetic export corpus (for benchmarks).
    #[command(hide = true)]
    Generate {
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value = "acme")]
        tenant: String,
        #[arg(long)]
        megabytes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    // Every command counts tokens at once: the prebuilt dictionaries (47 MB
    // of binary, no build time) suit a tool; the functions build theirs.
    finetune::dataset::dictionaries::use_prebuilt();
    match Cli::parse().command {
        Command::Limits { command } => limits::exit(limits::run(command)),
        Command::Validate {
            file,
            model,
            encoding,
            threads,
        } => validate(file, model, encoding, threads),
        Command::Prepare {
            input,
            tenant,
            start_date,
            end_date,
            output,
            system_prompt,
            train_split,
            min_examples,
            max_examples,
            seed,
            model,
            threads,
        } => {
            let tenant = match TenantId::parse(tenant) {
                Ok(t) => t,
                Err(e) => return fail(&e.to_string()),
            };
            let dates = match DateRange::new(start_date, end_date) {
                Ok(d) => d,
                Err(e) => return fail(&format!("invalid preparation settings: {e}")),
            };
            let train_split = match TrainSplit::new(train_split) {
                Ok(s) => s,
                Err(_) => {
                    return fail(&format!(
                        "invalid preparation settings: train_split must be in (0, 1], got {train_split}"
                    ));
                }
            };
            let settings = PrepareSettings {
                tenant,
                dates,
                base_model: model,
                system_prompt,
                train_split,
                min_examples,
                max_examples,
                seed,
                filters: Filters::default(),
                n_epochs: None,
                max_tokens_per_example: None,
                format: Default::default(),
                provider: None,
            };
            run_prepare(
                input,
                output,
                settings,
                threads.map_or_else(cores, NonZeroUsize::get),
            )
        }
        Command::Generate {
            output,
            tenant,
            megabytes,
            seed,
        } => match corpus::corpus(&output, &tenant, megabytes * 1_000_000, seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        },
    }
}

/// The machine's cores (1 when it cannot say).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("finetune: {message}");
    ExitCode::from(2)
}

fn validate(
    file: PathBuf,
    model: Option<String>,
    encoding: Option<String>,
    threads: Option<NonZeroUsize>,
) -> ExitCode {
    let mut options = model
        .as_deref()
        .map_or_else(CheckOptions::default, CheckOptions::for_model);
    if let Some(name) = encoding {
        match Encoding::parse(&name) {
            Some(e) => options.encoding = e,
            None => {
                return fail(&format!(
                    "unknown encoding {name}: use cl100k_base or o200k_base"
                ));
            }
        }
    }
    // Checking is CPU-bound (parsing and token counting): one thread per
    // core. Unknown core count: one thread, as before.
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN);
    let report = match check_jsonl_file(&file, &options, threads) {
        Ok(report) => report,
        Err(e) => return fail(&e.to_string()),
    };
    match serde_json::to_string_pretty(&report) {
        Ok(json) => println!("{json}"),
        Err(e) => return fail(&e.to_string()),
    }
    if report.has_format_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_prepare(
    input: PathBuf,
    output: PathBuf,
    settings: PrepareSettings,
    threads: usize,
) -> ExitCode {
    let read = match finetune::config::read_limits(|name| std::env::var(name).ok()) {
        Ok(read) => read,
        Err(e) => return fail(&e.to_string()),
    };
    let result = prepare_local_on_threads(&input, &output, &settings, read, threads);
    match result {
        Ok(out) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&out.stats).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
