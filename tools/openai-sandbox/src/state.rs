//! What the sandbox stores (files, uploads, jobs, requests seen) and how a
//! job walks through OpenAI's statuses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::chat::Example;
use crate::content::{Content, Segment};
use crate::ids;
use crate::together::job::TogetherJob;
use crate::validate::validate_training_file;
use crate::{ChatCall, Fault, Progression, Quality, RecordedRequest};

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Settings that tests may change while the sandbox runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub progression: Progression,
    pub latency: Duration,
    pub deny_fine_tuning: bool,
    pub fail_training: bool,
    pub organization: String,
    pub epochs: u32,
    pub steps_per_epoch: u32,
    pub min_examples: u64,
    pub ignore_list_filters: bool,
    pub fine_tuned_quality: Quality,
    pub chat_latency: Duration,
    /// Size of a Together download (`GET /finetune/download`).
    pub together_download_bytes: u64,
    /// The credit limit (US dollars) Together's price estimate compares with.
    pub together_credit_limit: f64,
    /// Active jobs allowed per OpenAI base model / Together account.
    pub max_active_jobs: Option<usize>,
}

impl Settings {
    /// Seconds a job step takes, for progress estimates: the timed
    /// progression's step, else a nominal minute.
    pub fn seconds_per_step(&self) -> u64 {
        match self.progression {
            Progression::Every(step) => step.as_secs().max(1),
            Progression::Manual | Progression::OnRead => 60,
        }
    }
}

#[derive(Debug)]
pub struct StoredFile {
    pub id: String,
    pub bytes: u64,
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
    pub content: Content,
}

impl StoredFile {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            // Together's FileResponse members, so one answer serves both
            // APIs' `GET /files` and `GET /files/{id}`.
            "FileType": file_type_of(&self.filename),
            "Processed": true,
        })
    }
}

/// Together's `FileType` of a file, by its name (`jsonl` when unsure).
pub fn file_type_of(filename: &str) -> &'static str {
    if filename.ends_with(".csv") {
        "csv"
    } else if filename.ends_with(".parquet") {
        "parquet"
    } else {
        "jsonl"
    }
}

#[derive(Debug)]
pub struct UploadRec {
    pub id: String,
    pub bytes: u64,
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
    pub status: &'static str,
    pub file_id: Option<String>,
}

#[derive(Debug)]
pub struct PartRec {
    pub id: String,
    pub upload_id: String,
    pub created_at: i64,
    pub segment: Segment,
    pub sha256: String,
}

/// Where a job is. `Running(n)` has finished `n` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Validating,
    Queued,
    Running(u32),
    Paused(u32),
    Succeeded,
    Failed,
    Cancelled,
}

impl Stage {
    pub fn status(self) -> &'static str {
        match self {
            Stage::Validating => "validating_files",
            Stage::Queued => "queued",
            Stage::Running(_) => "running",
            Stage::Paused(_) => "paused",
            Stage::Succeeded => "succeeded",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Succeeded | Stage::Failed | Stage::Cancelled)
    }
}

#[derive(Debug, Clone)]
pub struct EventRec {
    pub id: String,
    pub created_at: i64,
    pub level: &'static str,
    pub kind: &'static str,
    pub message: String,
    pub data: Value,
}

impl EventRec {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "fine_tuning.job.event",
            "created_at": self.created_at,
            "level": self.level,
            "message": self.message,
            "type": self.kind,
            "data": self.data,
        })
    }
}

#[derive(Debug)]
pub struct JobRec {
    pub id: String,
    pub created_at: i64,
    pub model: String,
    pub training_file: String,
    pub validation_file: Option<String>,
    pub suffix: Option<String>,
    pub seed: u64,
    pub method: Value,
    /// The hyperparameters as sent (`"auto"` or numbers).
    pub hyperparameters: Value,
    pub metadata: Option<BTreeMap<String, String>>,
    pub stage: Stage,
    /// Epochs done when paused or re-queued after a resume.
    pub resume_epoch: u32,
    pub error: Option<Value>,
    pub fine_tuned_model: Option<String>,
    pub finished_at: Option<i64>,
    pub estimated_finish: Option<i64>,
    pub trained_tokens: Option<u64>,
    pub result_files: Vec<String>,
    /// Oldest first.
    pub events: Vec<EventRec>,
    /// Oldest first.
    pub checkpoints: Vec<Value>,
    pub fail_training: bool,
    pub next_step_at: Option<Instant>,
    pub training_bytes: u64,
    /// The training file's content as the job was created with it, kept
    /// even if the file is deleted afterwards: what its model answers from.
    pub training_content: Content,
    /// How well its model answers (fixed when the job is created).
    pub quality: Quality,
    /// The training examples, parsed on the model's first chat completion.
    pub examples: Option<Arc<Vec<Example>>>,
}

impl JobRec {
    pub fn json(&self, org: &str) -> Value {
        let resolved = !matches!(self.stage, Stage::Validating);
        let hp = |name: &str, resolved_value: Value| -> Value {
            match self.hyperparameters.get(name) {
                Some(v) if v != "auto" => v.clone(),
                _ if resolved => resolved_value,
                _ => json!("auto"),
            }
        };
        let hyperparameters = json!({
            "batch_size": hp("batch_size", json!(1)),
            "learning_rate_multiplier": hp("learning_rate_multiplier", json!(1.8)),
            "n_epochs": hp("n_epochs", json!(3)),
        });
        let mut method = self.method.clone();
        if let Some(t) = method
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            method[t.as_str()]["hyperparameters"] = hyperparameters.clone();
        }
        json!({
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": hyperparameters,
            "model": self.model,
            "organization_id": format!("org-{org}"),
            "result_files": self.result_files,
            "status": self.stage.status(),
            "trained_tokens": self.trained_tokens,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "integrations": [],
            "seed": self.seed,
            "estimated_finish": self.estimated_finish,
            "method": method,
            "metadata": self.metadata,
        })
    }

    pub fn event(&mut self, level: &'static str, kind: &'static str, message: String, data: Value) {
        self.events.push(EventRec {
            id: ids::new_id(ids::EVENT),
            created_at: now_secs(),
            level,
            kind,
            message,
            data,
        });
    }
}

#[derive(Default)]
pub struct Inner {
    pub files: HashMap<String, StoredFile>,
    pub uploads: HashMap<String, UploadRec>,
    pub parts: HashMap<String, PartRec>,
    /// Oldest first.
    pub jobs: Vec<JobRec>,
    pub models_deleted: Vec<String>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Vec<Fault>,
    /// Chat completions answered, oldest first.
    pub chat_calls: Vec<ChatCall>,
    /// Per-model overrides of the jobs' [`Quality`].
    pub model_quality: HashMap<String, Quality>,
    /// Together fine-tunes, oldest first.
    pub together_jobs: Vec<TogetherJob>,
    /// Together downloads started, per job id.
    pub together_downloads: HashMap<String, u64>,
    /// Requests answered 429.
    pub rate_limited_answers: u64,
}

impl Inner {
    pub fn job_mut(&mut self, id: &str) -> Option<&mut JobRec> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    pub fn together_job_mut(&mut self, id: &str) -> Option<&mut TogetherJob> {
        self.together_jobs.iter_mut().find(|j| j.id == id)
    }

    /// The examples a fine-tuned model (OpenAI or Together job) answers
    /// from: `Ok` when already parsed, else the training content to parse.
    pub fn examples_or_content(
        &mut self,
        job_id: &str,
    ) -> Option<Result<Arc<Vec<Example>>, Content>> {
        if let Some(job) = self.job_mut(job_id) {
            return Some(
                job.examples
                    .clone()
                    .ok_or_else(|| job.training_content.clone()),
            );
        }
        let job = self.together_job_mut(job_id)?;
        Some(
            job.examples
                .clone()
                .ok_or_else(|| job.training_content.clone()),
        )
    }

    /// Keeps a job's parsed examples for its next chat completions.
    pub fn keep_examples(&mut self, job_id: &str, examples: Arc<Vec<Example>>) {
        if let Some(job) = self.job_mut(job_id) {
            job.examples = Some(examples);
        } else if let Some(job) = self.together_job_mut(job_id) {
            job.examples = Some(examples);
        }
    }

    /// Advances timed jobs whose next step is due.
    pub fn catch_up(&mut self, settings: &Settings) {
        let Progression::Every(step) = settings.progression else {
            return;
        };
        let now = Instant::now();
        let ids: Vec<String> = self.jobs.iter().map(|j| j.id.clone()).collect();
        for id in ids {
            loop {
                let due = self
                    .job_mut(&id)
                    .and_then(|j| j.next_step_at)
                    .is_some_and(|at| at <= now);
                if !due {
                    break;
                }
                self.advance(&id, settings);
                if let Some(job) = self.job_mut(&id) {
                    job.next_step_at = match (job.stage.is_terminal(), job.next_step_at) {
                        (false, Some(at)) if !matches!(job.stage, Stage::Paused(_)) => {
                            Some(at + step)
                        }
                        _ => None,
                    };
                }
            }
        }
        for job in &mut self.together_jobs {
            while let Some(at) = job.next_step_at.filter(|at| *at <= now) {
                job.advance();
                job.next_step_at = (!job.stage.is_terminal()).then_some(at + step);
            }
        }
    }

    /// Moves a job one step along `validating_files -> queued -> running
    /// (one epoch per step) -> succeeded`. Paused and finished jobs stay.
    pub fn advance(&mut self, id: &str, settings: &Settings) {
        let Some(index) = self.jobs.iter().position(|j| j.id == id) else {
            return;
        };
        let stage = self.jobs[index].stage;
        match stage {
            Stage::Validating => {
                let checked = self.check_files(index, settings);
                let job = &mut self.jobs[index];
                match checked {
                    Ok(()) => {
                        job.stage = Stage::Queued;
                        job.event(
                            "info",
                            "message",
                            "Files validated, moving job to queued state".to_owned(),
                            json!({}),
                        );
                    }
                    Err((param, message)) => {
                        job.stage = Stage::Failed;
                        job.finished_at = Some(now_secs());
                        job.error = Some(json!({
                            "code": "invalid_training_file",
                            "message": message,
                            "param": param,
                        }));
                        job.event("error", "message", message, json!({}));
                    }
                }
            }
            Stage::Queued => {
                let job = &mut self.jobs[index];
                let epoch = job.resume_epoch;
                job.stage = Stage::Running(epoch);
                let remaining = settings.epochs.saturating_sub(epoch) as i64;
                job.estimated_finish = Some(now_secs() + 60 * remaining.max(1));
                job.event(
                    "info",
                    "message",
                    "Fine-tuning job started".to_owned(),
                    json!({}),
                );
            }
            Stage::Running(done) => self.train_epoch(index, done, settings),
            Stage::Paused(_) | Stage::Succeeded | Stage::Failed | Stage::Cancelled => {}
        }
    }

    fn check_files(&self, index: usize, settings: &Settings) -> Result<(), (&'static str, String)> {
        let job = &self.jobs[index];
        let files = [
            (
                "training_file",
                Some(&job.training_file),
                settings.min_examples,
            ),
            ("validation_file", job.validation_file.as_ref(), 1),
        ];
        for (param, id, min) in files {
            let Some(id) = id else { continue };
            let Some(file) = self.files.get(id) else {
                return Err((param, format!("The {param} {id} no longer exists.")));
            };
            let result = file
                .content
                .reader()
                .map_err(|e| format!("could not be read: {e}"))
                .and_then(|r| {
                    validate_training_file(std::io::BufReader::new(r), &job.model, min)
                        .map_err(|e| e.to_string())
                });
            if let Err(problem) = result {
                let what = param.replace('_', " ");
                return Err((
                    param,
                    format!("The job failed due to an invalid {what}. {id}: {problem}"),
                ));
            }
        }
        Ok(())
    }

    fn train_epoch(&mut self, index: usize, done: u32, settings: &Settings) {
        let org = settings.organization.clone();
        let job = &mut self.jobs[index];
        let epoch = done + 1;
        let per = settings.steps_per_epoch.max(1);
        let total = per * settings.epochs.max(1);
        let mut last_metrics = json!({});
        for s in 1..=per {
            let step = done * per + s;
            let progress = step as f64 / total as f64;
            let train_loss = 2.0 * (1.0 - progress) + 0.2;
            let valid_loss = train_loss + 0.05;
            let accuracy = 0.5 + 0.45 * progress;
            last_metrics = json!({
                "step": step,
                "train_loss": round(train_loss),
                "train_mean_token_accuracy": round(accuracy),
                "valid_loss": round(valid_loss),
                "valid_mean_token_accuracy": round(accuracy - 0.02),
            });
            let mut data = last_metrics.clone();
            data["total_steps"] = json!(total);
            job.event(
                "info",
                "metrics",
                format!(
                    "Step {step}/{total}: training loss={:.4}, validation loss={:.4}",
                    round(train_loss),
                    round(valid_loss)
                ),
                data,
            );
        }
        if job.fail_training && epoch < settings.epochs.max(1) {
            job.stage = Stage::Failed;
            job.finished_at = Some(now_secs());
            job.estimated_finish = None;
            let message = "Fine-tuning job failed due to an internal error.".to_owned();
            job.error = Some(json!({"code": "internal_error", "message": message, "param": null}));
            job.event("error", "message", message, json!({}));
            return;
        }
        let step_number = epoch * per;
        let model = model_name(&job.model, &org, job.suffix.as_deref(), &job.id);
        let mut metrics = last_metrics;
        metrics["full_valid_loss"] = metrics["valid_loss"].clone();
        metrics["full_valid_mean_token_accuracy"] = metrics["valid_mean_token_accuracy"].clone();
        let checkpoint = json!({
            "id": ids::new_id(ids::CHECKPOINT),
            "object": "fine_tuning.job.checkpoint",
            "created_at": now_secs(),
            "fine_tuned_model_checkpoint": format!("{model}:ckpt-step-{step_number}"),
            "fine_tuning_job_id": job.id,
            "step_number": step_number,
            "metrics": metrics,
        });
        job.checkpoints.push(checkpoint);
        job.event(
            "info",
            "message",
            format!("Checkpoint created at step {step_number}"),
            json!({}),
        );
        if epoch < settings.epochs.max(1) {
            job.stage = Stage::Running(epoch);
            return;
        }
        // Done: the model, tokens billed, a results file.
        let tokens = (job.training_bytes / 4).max(1) * u64::from(settings.epochs.max(1));
        job.stage = Stage::Succeeded;
        job.fine_tuned_model = Some(model.clone());
        job.trained_tokens = Some(tokens);
        job.finished_at = Some(now_secs());
        job.estimated_finish = None;
        job.event(
            "info",
            "message",
            format!("New fine-tuned model created: {model}"),
            json!({}),
        );
        job.event(
            "info",
            "message",
            "The job has successfully completed".to_owned(),
            json!({}),
        );
        let csv = format!("step,train_loss\n{total},0.2\n");
        let results = StoredFile {
            id: ids::new_id(ids::FILE),
            bytes: csv.len() as u64,
            created_at: now_secs(),
            filename: "step_metrics.csv".to_owned(),
            purpose: "fine-tune-results".to_owned(),
            content: Content {
                segments: vec![Segment::Memory(Bytes::from(csv))],
            },
        };
        job.result_files.push(results.id.clone());
        self.files.insert(results.id.clone(), results);
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// OpenAI's `ft:{base}:{org}:{suffix}:{id}` (empty suffix when none).
pub fn model_name(base: &str, org: &str, suffix: Option<&str>, job_id: &str) -> String {
    let short: String = job_id
        .trim_start_matches(ids::JOB)
        .chars()
        .take(8)
        .collect();
    format!("ft:{base}:{org}:{}:{short}", suffix.unwrap_or(""))
}
