//! `cargo run -p openai-sandbox -- --port 8089`: OpenAI's (and Together
//! AI's) fine-tuning and chat completions APIs on loopback, for the demo
//! and for the providers' own SDKs
//! (`OPENAI_BASE_URL=http://127.0.0.1:8089/v1`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use openai_sandbox::{Progression, Quality, SandboxConfig};

#[derive(Parser, Debug)]
#[command(about = "A local server that speaks OpenAI's fine-tuning and chat completions APIs")]
struct Args {
    /// Loopback port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    port: u16,
    /// Seconds per job step (validating, queued, each epoch); 0 advances a
    /// job one step each time it is fetched.
    #[arg(long, default_value_t = 5.0)]
    step_seconds: f64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Accept only this API key (default: any non-empty key).
    #[arg(long)]
    api_key: Option<String>,
    /// Directory for large uploads (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Epochs every job trains for.
    #[arg(long, default_value_t = 3)]
    epochs: u32,
    /// Answer job creation with 403, like an organisation OpenAI no longer
    /// lets fine-tune.
    #[arg(long)]
    deny_fine_tuning: bool,
    /// Fail every job after its first epoch.
    #[arg(long)]
    fail_training: bool,
    /// Latency added to every chat completion, in milliseconds (on top of
    /// --latency-ms).
    #[arg(long, default_value_t = 0)]
    chat_latency_ms: u64,
    /// Fine-tuned models answer worse than their base model (for negative
    /// demos).
    #[arg(long)]
    worse_fine_tunes: bool,
    /// Bytes of each Together download (`GET /v1/finetune/download`).
    #[arg(long, default_value_t = openai_sandbox::together::DEFAULT_DOWNLOAD_BYTES)]
    together_download_bytes: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let progression = if args.step_seconds > 0.0 && args.step_seconds.is_finite() {
        Progression::Every(Duration::from_secs_f64(args.step_seconds))
    } else {
        Progression::OnRead
    };
    let config = SandboxConfig {
        port: args.port,
        api_key: args.api_key,
        progression,
        latency: Duration::from_millis(args.latency_ms),
        data_dir: args.data_dir,
        epochs: args.epochs,
        deny_fine_tuning: args.deny_fine_tuning,
        fail_training: args.fail_training,
        chat_latency: Duration::from_millis(args.chat_latency_ms),
        together_download_bytes: args.together_download_bytes,
        fine_tuned_quality: if args.worse_fine_tunes {
            Quality::Worse
        } else {
            Quality::Good
        },
        ..SandboxConfig::default()
    };
    match openai_sandbox::spawn(config).await {
        Ok(sandbox) => {
            println!("openai-sandbox listening on {}", sandbox.base_url());
            sandbox.wait().await;
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("openai-sandbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
