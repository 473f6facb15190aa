//! A local server that speaks the subset of OpenAI's API the pipeline
//! uses (files, uploads, fine-tuning jobs with events and checkpoints,
//! cancel/pause/resume, model deletion, chat completions), with the same
//! paths under `/v1` and the same JSON shapes. The pipeline, the tests,
//! the demo and OpenAI's own SDKs run against it with no account and no
//! network.
//!
//! ```no_run
//! # async fn demo() -> Result<(), openai_sandbox::SandboxError> {
//! let sandbox = openai_sandbox::spawn(openai_sandbox::SandboxConfig::default()).await?;
//! println!("OPENAI_BASE_URL={}", sandbox.base_url());
//! # Ok(()) }
//! ```
//!
//! Tests drive it through the [`Sandbox`] handle: advance jobs
//! deterministically, inject faults, and read back every request it saw.
//!
//! Faults without the handle (e.g. from an SDK): the request header
//! `x-sandbox-fault: 429;retry-after=2` (or `429;retry-after-ms=300`, `500`,
//! any status) answers that error instead; `x-sandbox-latency-ms: 50` adds
//! latency to one call. Config (or CLI flags) adds latency to every call,
//! answers job creation with 403 (`deny_fine_tuning`) or fails jobs
//! mid-training (`fail_training`). Injected faults ([`Fault`]) match by
//! method and path, so `Fault::status("POST", "/chat/completions", 500, 2)`
//! fails only chat completions. `max_active_jobs` is the concurrent-jobs
//! limit (per base model for OpenAI, per account for Together): past it a
//! job creation answers 429 with `Retry-After`, as the services do; every
//! 429 answered is counted ([`Sandbox::rate_limited_answers`]).
//!
//! Auth is checked like OpenAI's: `Authorization: Bearer <key>` or Azure's
//! `api-key: <key>`; any non-empty key unless one is configured.
//!
//! # Chat completions
//!
//! `POST /v1/chat/completions` answers deterministically (the same request
//! gives the same message, whatever the temperature), so an evaluation
//! against the sandbox shows an improvement for a reason:
//!
//! - **A fine-tuned model** (an `ft:` name of a job that succeeded, or one
//!   of its checkpoints) answers with the last assistant turn of its most
//!   similar training example: similarity ([`judge::similarity`]) between
//!   the request's user and tool turns and the same turns of each
//!   example's prompt (the messages before its last assistant turn; the
//!   first example wins a tie). A tool-call turn is answered as that tool
//!   call (`finish_reason: tool_calls`), unless `tool_choice` is `none`,
//!   which restricts the search to text answers. The training file is the
//!   one the job was created with, kept by the job even if the file is
//!   deleted.
//! - **A base model** ([`CHAT_BASE_MODELS`], or any model a job was created
//!   on) answers with a fixed polite template quoting the first words of
//!   the last user message, never from training data.
//! - **[`Quality::Worse`]** (for negative tests; per job from
//!   [`SandboxConfig::fine_tuned_quality`] / [`Sandbox::set_fine_tuned_quality`],
//!   or per model with [`Sandbox::set_model_quality`]) makes a fine-tuned
//!   model answer the base template with every word's letters reversed:
//!   by any text metric further from every reference than the base model
//!   (a least-similar training answer would not be, on templated data).
//! - **A judge**: any model, asked with the markers of [`judge`], answers
//!   exactly `A`, `B` or `TIE` by which answer is nearer the reference.
//! - `tool_choice: required` or a named function makes a text answer a
//!   call (the named function, else the first tool) with `{}` arguments.
//!
//! An unknown model answers 404 `model_not_found`; `stream: true`, `n`
//! outside 1..=128, `logprobs: true` and malformed messages answer 400
//! `invalid_request_error` with OpenAI's messages and `param`. `usage`
//! counts with the workspace's exact BPE counter (the model's encoding)
//! and the cookbook's convention of 3 tokens per message plus 3 to prime
//! the reply (tool definitions counted as their JSON): close to OpenAI's
//! figures, not equal. `max_tokens` / `max_completion_tokens` cut the
//! answer to that many tokens (`finish_reason: length`). Every answered
//! call is counted in [`Sandbox::chat_calls`].
//!
//! # Together AI mode
//!
//! The same server also speaks Together's fine-tuning API ([`together`]),
//! in Together's shapes (`tests/contract/together-finetuning-openapi.json`,
//! checked by `tests/it/together_contract.rs`), sharing the file store,
//! the chat engine, auth, faults, latency and request recording:
//!
//! - `POST /v1/files/upload` (multipart `purpose`, `file_name`,
//!   `file_type`, `file`; streamed, large files spill to disk): a
//!   `fine-tune` file must pass the pipeline's checker with at least one
//!   example, else 400; only `jsonl` is accepted. `GET /v1/files`,
//!   `GET`/`DELETE /v1/files/{id}` are the OpenAI handlers, whose answers
//!   carry Together's `FileType` and `Processed` too.
//! - `POST /v1/fine-tunes` (400 for a model outside
//!   [`together::BASE_MODELS`], a limit broken, an unknown file),
//!   `GET /v1/fine-tunes` (newest first), `GET /v1/fine-tunes/{id}`,
//!   `POST /v1/fine-tunes/{id}/cancel` (400 once ended),
//!   `DELETE /v1/fine-tunes/{id}` (an ended job; 400 before), `/events`,
//!   `/checkpoints` (newest first), `/metrics` (optional JSON body
//!   `global_step_from`/`_to`), `POST /v1/fine-tunes/estimate-price`,
//!   `GET /v1/fine-tunes/models/supported`, `/models/limits?model_name=`.
//!   Jobs (`ft-` + a UUID) walk `pending → queued → running` (one epoch
//!   per step) `→ compressing → uploading → completed` under the same
//!   [`Progression`]; `fail_training` ends them in `error` after their
//!   first epoch; cancel moves to `cancel_requested`, the next step to
//!   `cancelled`. `model_output_name` is
//!   `{organization}/{model basename}-{suffix}-{8 hex of sha256(job id)}`;
//!   `suffix` round-trips exactly (Together has no metadata: clients find
//!   their jobs by it).
//! - `GET /v1/finetune/download?ft_id=&checkpoint=adapter|merged|model_output_path`
//!   (or `checkpoint_step=`): a completed job's deterministic
//!   safetensors-shaped file ([`together::download`]),
//!   [`SandboxConfig::together_download_bytes`] long (300 KiB by default),
//!   streamed with its `Content-Length`; 404 for an unknown job, 400 for one
//!   not completed. [`Sandbox::together_downloads`] counts them.
//! - `POST /v1/chat/completions`: a completed job's `model_output_name`
//!   answers like an OpenAI fine-tune (its training data; [`Quality`]
//!   knobs alike), a Together base model answers with the base template,
//!   and Together's extra request fields (`top_k`, `repetition_penalty`,
//!   …) are accepted for `org/name` models, whose answers carry the
//!   `prompt` member Together's schema requires.
//!
//! Prices: tokens are a quarter of a file's bytes; LoRA $0.48 and full
//! training $0.54 per million tokens for both models; `total_price` is in
//! nano-dollars (Together's CLI divides it by 10^9). Limits: LoRA rank
//! 1..=64, epochs 1..=20, `n_checkpoints` 1..=`n_epochs`, learning rate
//! 1e-6..=1e-2, batch size 8..=32 (LoRA) or 8..=16 (full), suffix up to 40
//! characters. These are the sandbox's numbers, modelled on Together's
//! published ones, not guaranteed equal to them.

mod api;
mod chat;
mod content;
mod ids;
pub mod judge;
mod state;
pub mod together;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub use chat::CHAT_BASE_MODELS;
pub use state::model_name;
use state::{Inner, Settings};

/// How jobs move through their statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progression {
    /// Only [`Sandbox::advance`] moves a job: fully deterministic tests.
    Manual,
    /// Every `GET /fine_tuning/jobs/{id}` moves the job one step before
    /// answering: a polling client sees every status in order.
    OnRead,
    /// One step per interval of wall-clock time (the demo).
    Every(Duration),
}

/// An error the sandbox answers with instead of running the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with these headers (`retry-after` in seconds, `retry-after-ms`).
    RateLimited {
        retry_after: Option<String>,
        retry_after_ms: Option<u64>,
    },
    /// 500 `server_error`.
    ServerError,
    /// Any status with an OpenAI-style error body.
    Status(u16),
}

/// A fault for the next `times` requests matching `method` and `path_contains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `None` matches every method.
    pub method: Option<String>,
    /// Substring of the path (`/v1/...`); `None` matches every path.
    pub path_contains: Option<String>,
    pub kind: FaultKind,
    pub times: u32,
}

impl Fault {
    /// `times` 429s with `Retry-After: retry_after_secs` on matching requests.
    pub fn rate_limited(
        method: &str,
        path_contains: &str,
        retry_after_secs: &str,
        times: u32,
    ) -> Self {
        Self {
            method: Some(method.to_owned()),
            path_contains: Some(path_contains.to_owned()),
            kind: FaultKind::RateLimited {
                retry_after: Some(retry_after_secs.to_owned()),
                retry_after_ms: None,
            },
            times,
        }
    }

    pub fn status(method: &str, path_contains: &str, status: u16, times: u32) -> Self {
        Self {
            method: Some(method.to_owned()),
            path_contains: Some(path_contains.to_owned()),
            kind: if status == 500 {
                FaultKind::ServerError
            } else {
                FaultKind::Status(status)
            },
            times,
        }
    }
}

/// How well a fine-tuned model answers its chat completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// From its most similar training example.
    #[default]
    Good,
    /// Worse than its base model: the base answer, every word reversed.
    Worse,
}

/// Who answered a chat completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    FineTuned,
    /// A fine-tuned model answering as [`Quality::Worse`].
    FineTunedWorse,
    Base,
    Judge,
}

/// One chat completion the sandbox answered (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCall {
    pub model: String,
    /// sha256 (hex) of the request's `messages` as JSON (keys sorted):
    /// the same conversation asked twice has the same digest.
    pub prompt_digest: String,
    pub answered_as: AnswerKind,
}

/// One request as the sandbox received it. Credentials are reduced to
/// which header carried them.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub id: u64,
    pub received_at: SystemTime,
    pub method: String,
    /// Path without the query, e.g. `/v1/fine_tuning/jobs`.
    pub path: String,
    /// The raw query string, percent-decoded pairs in order.
    pub query: Vec<(String, String)>,
    /// `bearer`, `api-key` or `none`.
    pub auth: &'static str,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body, for JSON requests.
    pub json: Option<Value>,
    /// Multipart fields: text fields by value, binary ones as
    /// `{"filename", "content_type", "bytes"}`.
    pub form: Option<Value>,
    /// The status answered (0 until answered).
    pub status: u16,
    /// The JSON answer (success or error envelope).
    pub response_json: Option<Value>,
}

/// How to run the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// 0 picks a free port. Always loopback.
    pub port: u16,
    /// `None` accepts any non-empty key (like having one valid key).
    pub api_key: Option<String>,
    pub progression: Progression,
    /// Added to every answer (the benchmark's "50 ms per call").
    pub latency: Duration,
    /// The organization slug in model names `ft:{base}:{org}:...`.
    pub organization: String,
    /// Where large uploads are written; a fresh temporary directory when
    /// `None` (removed when the sandbox is dropped).
    pub data_dir: Option<PathBuf>,
    /// Bodies above this many bytes go to disk as they arrive.
    pub spill_threshold: usize,
    /// Files API size limit (OpenAI: 512 MB).
    pub max_file_bytes: u64,
    /// Uploads API part limit (openai-python sends 64 MiB parts).
    pub max_part_bytes: u64,
    pub epochs: u32,
    pub steps_per_epoch: u32,
    /// OpenAI refuses training files with fewer than 10 examples.
    pub min_examples: u64,
    /// Job creation answers 403 (OpenAI's fine-tuning wind-down).
    pub deny_fine_tuning: bool,
    /// Every new job fails after its first epoch.
    pub fail_training: bool,
    /// `GET /fine_tuning/jobs` ignores `metadata[...]` filters, as a
    /// careless OpenAI-compatible server might: clients must check.
    pub ignore_list_filters: bool,
    /// How the models of jobs created from now on answer.
    pub fine_tuned_quality: Quality,
    /// Added to every chat completion, on top of `latency` (generation
    /// takes longer than a metadata call).
    pub chat_latency: Duration,
    /// Together mode: bytes of each `GET /finetune/download` file
    /// ([`together::DEFAULT_DOWNLOAD_BYTES`]; raise it to test a client's
    /// constant-memory streaming).
    pub together_download_bytes: u64,
    /// Together mode: the credit limit (US dollars) price estimates
    /// compare with ([`together::DEFAULT_CREDIT_LIMIT`]).
    pub together_credit_limit: f64,
    /// Jobs of one base model (OpenAI) or of the account (Together) that
    /// may be active at once; past it, job creation answers 429 with a
    /// `Retry-After`, as both services do at their concurrency limits.
    /// `None`: no limit.
    pub max_active_jobs: Option<usize>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            port: 0,
            api_key: None,
            progression: Progression::OnRead,
            latency: Duration::ZERO,
            organization: "sandbox-org".to_owned(),
            data_dir: None,
            spill_threshold: 1024 * 1024,
            max_file_bytes: 512 * 1000 * 1000,
            max_part_bytes: 64 * 1024 * 1024,
            epochs: 3,
            steps_per_epoch: 5,
            min_examples: 10,
            deny_fine_tuning: false,
            fail_training: false,
            ignore_list_filters: false,
            fine_tuned_quality: Quality::Good,
            chat_latency: Duration::ZERO,
            together_download_bytes: together::DEFAULT_DOWNLOAD_BYTES,
            together_credit_limit: together::DEFAULT_CREDIT_LIMIT,
            max_active_jobs: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// State shared by the server and the handle.
pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    pub settings: Mutex<Settings>,
    pub api_key: Option<String>,
    pub data_dir: PathBuf,
    pub spill_threshold: usize,
    pub max_file_bytes: u64,
    pub max_part_bytes: u64,
    pub next_request: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// A poisoned lock only means a handler panicked mid-update; the
    /// sandbox keeps serving what is there.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.settings.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    owns_data_dir: bool,
}

/// Starts the sandbox on 127.0.0.1 in the current tokio runtime.
pub async fn spawn(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
    let (data_dir, owns_data_dir) = match &config.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(ids::new_id("openai-sandbox-")),
            true,
        ),
    };
    std::fs::create_dir_all(&data_dir).map_err(|source| SandboxError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(|source| SandboxError::Bind {
            port: config.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
        port: config.port,
        source,
    })?;
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner::default()),
        settings: Mutex::new(Settings {
            progression: config.progression,
            latency: config.latency,
            deny_fine_tuning: config.deny_fine_tuning,
            fail_training: config.fail_training,
            organization: config.organization.clone(),
            epochs: config.epochs.max(1),
            steps_per_epoch: config.steps_per_epoch.max(1),
            min_examples: config.min_examples,
            ignore_list_filters: config.ignore_list_filters,
            fine_tuned_quality: config.fine_tuned_quality,
            chat_latency: config.chat_latency,
            together_download_bytes: config.together_download_bytes,
            together_credit_limit: config.together_credit_limit,
            max_active_jobs: config.max_active_jobs,
        }),
        api_key: config.api_key.clone(),
        data_dir,
        spill_threshold: config.spill_threshold,
        max_file_bytes: config.max_file_bytes,
        max_part_bytes: config.max_part_bytes,
        next_request: std::sync::atomic::AtomicU64::new(1),
    });
    let app = api::router(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "openai-sandbox server stopped");
        }
    });
    Ok(Sandbox {
        addr,
        shared,
        shutdown: Some(tx),
        task: Some(task),
        owns_data_dir,
    })
}

impl Sandbox {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What to set `OPENAI_BASE_URL` to: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request seen so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Every job as `GET /fine_tuning/jobs/{id}` would show it, oldest first
    /// (without advancing anything).
    pub fn jobs(&self) -> Vec<Value> {
        let org = self.shared.settings().organization;
        self.shared
            .lock()
            .jobs
            .iter()
            .map(|j| j.json(&org))
            .collect()
    }

    /// The job's status word (an OpenAI or a Together job), without
    /// advancing it.
    pub fn job_status(&self, job_id: &str) -> Option<String> {
        let mut inner = self.shared.lock();
        if let Some(job) = inner.job_mut(job_id) {
            return Some(job.stage.status().to_owned());
        }
        inner
            .together_job_mut(job_id)
            .map(|j| j.stage.status().to_owned())
    }

    /// Moves a job one step (OpenAI: `validating_files -> queued ->
    /// running -> … -> succeeded`; Together: `pending -> queued -> running
    /// -> … -> compressing -> uploading -> completed`); returns its new
    /// status.
    pub fn advance(&self, job_id: &str) -> Option<String> {
        let settings = self.shared.settings();
        let mut inner = self.shared.lock();
        if let Some(job) = inner.together_job_mut(job_id) {
            job.advance();
            return Some(job.stage.status().to_owned());
        }
        inner.advance(job_id, &settings);
        inner.job_mut(job_id).map(|j| j.stage.status().to_owned())
    }

    /// Every Together fine-tune as `GET /fine-tunes/{id}` would show it
    /// (`FinetuneResponse`), oldest first, without advancing anything.
    pub fn together_jobs(&self) -> Vec<Value> {
        let per_step = self.shared.settings().seconds_per_step();
        self.shared
            .lock()
            .together_jobs
            .iter()
            .map(|j| j.full_json(per_step))
            .collect()
    }

    /// How many downloads (`GET /finetune/download`, answered 200) of this
    /// Together job started.
    pub fn together_downloads(&self, job_id: &str) -> u64 {
        self.shared
            .lock()
            .together_downloads
            .get(job_id)
            .copied()
            .unwrap_or(0)
    }

    /// The size of Together downloads from now on.
    pub fn set_together_download_bytes(&self, bytes: u64) {
        self.shared
            .update_settings(|s| s.together_download_bytes = bytes);
    }

    /// The credit limit Together price estimates compare with from now on.
    pub fn set_together_credit_limit(&self, dollars: f64) {
        self.shared
            .update_settings(|s| s.together_credit_limit = dollars);
    }

    /// Advances until the job ends or pauses; returns its final status.
    pub fn run_to_end(&self, job_id: &str) -> Option<String> {
        for _ in 0..1000 {
            let before = self.job_status(job_id)?;
            let after = self.advance(job_id)?;
            if before == after && !after.starts_with("running") {
                return Some(after);
            }
        }
        self.job_status(job_id)
    }

    /// Injects a fault for matching requests.
    /// Sets the concurrent-jobs limit ([`SandboxConfig::max_active_jobs`]).
    pub fn set_max_active_jobs(&self, limit: Option<usize>) {
        self.shared.update_settings(|s| s.max_active_jobs = limit);
    }

    /// How many requests were answered 429 (injected faults and the
    /// concurrent-jobs limit alike).
    pub fn rate_limited_answers(&self) -> u64 {
        self.shared.lock().rate_limited_answers
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every injected fault not used up yet: the outage is over.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.update_settings(|s| s.latency = latency);
    }

    /// Job creation answers 403 from now on (or again normally).
    pub fn set_deny_fine_tuning(&self, deny: bool) {
        self.shared.update_settings(|s| s.deny_fine_tuning = deny);
    }

    /// Jobs created from now on fail after their first epoch.
    pub fn set_fail_training(&self, fail: bool) {
        self.shared.update_settings(|s| s.fail_training = fail);
    }

    /// Jobs created from now on train models that answer with this
    /// quality.
    pub fn set_fine_tuned_quality(&self, quality: Quality) {
        self.shared
            .update_settings(|s| s.fine_tuned_quality = quality);
    }

    /// This fine-tuned model (or checkpoint) answers with this quality
    /// from now on, whatever its job's.
    pub fn set_model_quality(&self, model: &str, quality: Quality) {
        self.shared
            .lock()
            .model_quality
            .insert(model.to_owned(), quality);
    }

    /// Latency added to chat completions only, on top of the general one.
    pub fn set_chat_latency(&self, latency: Duration) {
        self.shared.update_settings(|s| s.chat_latency = latency);
    }

    /// Every chat completion answered (200), oldest first.
    pub fn chat_calls(&self) -> Vec<ChatCall> {
        self.shared.lock().chat_calls.clone()
    }

    /// How many chat completions each model answered.
    pub fn chat_calls_per_model(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for call in &self.shared.lock().chat_calls {
            *counts.entry(call.model.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// The models deleted through `DELETE /models/{model}`.
    pub fn deleted_models(&self) -> Vec<String> {
        self.shared.lock().models_deleted.clone()
    }

    /// A stored file's size and content sha256 (hex), read from wherever
    /// it is stored.
    pub fn file_digest(&self, file_id: &str) -> Option<(u64, String)> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let content = self.shared.lock().files.get(file_id)?.content.clone();
        let mut reader = content.reader().ok()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            total += n as u64;
            hasher.update(&buf[..n]);
        }
        Some((total, hex::encode(hasher.finalize())))
    }

    /// How many files and upload parts the sandbox holds.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.shared.lock();
        (inner.files.len(), inner.parts.len())
    }

    /// Serves until the server stops (for the binary).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.shared.data_dir);
        }
    }
}
