//! A Together fine-tune: the record ([`TogetherJob`]), how it walks through Together's statuses
//! (`pending → queued → running → compressing → uploading → completed`,
//! `error`, `cancel_requested → cancelled`) one [`TogetherJob::advance`]
//! at a time, and how it is shown (`FinetuneResponseTruncated`,
//! `FinetuneResponse`, events, checkpoints, metrics). Everything here is
//! pure over the record, so the unit tests cover the walk without a server.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::price::{estimate, nano_dollars, tokens_of};
use super::spec::JobSpec;
use crate::Quality;
use crate::chat::Example;
use crate::content::Content;

/// Where a job is. `Running(n)` has finished `n` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pending,
    Queued,
    Running(u32),
    Compressing,
    Uploading,
    Completed,
    CancelRequested,
    Cancelled,
    Error,
}

impl Stage {
    /// The `FinetuneJobStatus` word.
    pub fn status(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Queued => "queued",
            Stage::Running(_) => "running",
            Stage::Compressing => "compressing",
            Stage::Uploading => "uploading",
            Stage::Completed => "completed",
            Stage::CancelRequested => "cancel_requested",
            Stage::Cancelled => "cancelled",
            Stage::Error => "error",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Completed | Stage::Cancelled | Stage::Error)
    }
}

/// The first 8 hex digits of the job id's sha256: the tail of its model's
/// name, as Together's names end in a short hash.
pub fn short_hash(job_id: &str) -> String {
    hex::encode(Sha256::digest(job_id.as_bytes()))[..8].to_owned()
}

/// `{organization}/{model basename}-{suffix}-{short hash}` (no suffix part
/// without a suffix): deterministic, so a test can predict it.
pub fn model_output_name(org: &str, model: &str, suffix: Option<&str>, job_id: &str) -> String {
    let base = model.rsplit('/').next().unwrap_or(model);
    let hash = short_hash(job_id);
    match suffix {
        Some(s) => format!("{org}/{base}-{s}-{hash}"),
        None => format!("{org}/{base}-{hash}"),
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What makes a job's record beside its spec.
pub struct NewJob {
    pub id: String,
    pub spec: JobSpec,
    pub organization: String,
    pub steps_per_epoch: u32,
    pub training_bytes: u64,
    pub validation_bytes: u64,
    pub training_content: Content,
    pub quality: Quality,
    pub fail_training: bool,
    pub next_step_at: Option<Instant>,
}

#[derive(Debug)]
pub struct TogetherJob {
    pub id: String,
    pub spec: JobSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub stage: Stage,
    pub epochs_done: u32,
    pub model_output_name: String,
    pub steps_per_epoch: u32,
    pub training_bytes: u64,
    pub validation_bytes: u64,
    /// `FineTuneEvent`s, oldest first.
    pub events: Vec<Value>,
    /// `FineTuneCheckpoint`s, oldest first.
    pub checkpoints: Vec<Value>,
    pub fail_training: bool,
    pub next_step_at: Option<Instant>,
    /// The training file as the job was created with it: what its model
    /// answers from, even if the file is deleted afterwards.
    pub training_content: Content,
    pub quality: Quality,
    /// Parsed on the model's first chat completion.
    pub examples: Option<Arc<Vec<Example>>>,
}

impl TogetherJob {
    pub fn new(new: NewJob) -> Self {
        let now = Utc::now();
        let model_output_name = model_output_name(
            &new.organization,
            new.spec.model.name,
            new.spec.suffix.as_deref(),
            &new.id,
        );
        let mut job = Self {
            id: new.id,
            spec: new.spec,
            created_at: now,
            updated_at: now,
            started_at: None,
            stage: Stage::Pending,
            epochs_done: 0,
            model_output_name,
            steps_per_epoch: new.steps_per_epoch.max(1),
            training_bytes: new.training_bytes,
            validation_bytes: new.validation_bytes,
            events: Vec::new(),
            checkpoints: Vec::new(),
            fail_training: new.fail_training,
            next_step_at: new.next_step_at,
            training_content: new.training_content,
            quality: new.quality,
            examples: None,
        };
        job.event(
            "job_pending",
            "info",
            "Fine tune request created",
            Extra::default(),
        );
        job
    }

    pub fn total_steps(&self) -> u64 {
        u64::from(self.spec.n_epochs) * u64::from(self.steps_per_epoch)
    }

    pub fn steps_done(&self) -> u64 {
        u64::from(self.epochs_done) * u64::from(self.steps_per_epoch)
    }

    /// Tokens trained so far (a quarter of the training bytes per epoch).
    pub fn token_count(&self) -> u64 {
        tokens_of(self.training_bytes) * u64::from(self.epochs_done)
    }

    /// The price of the whole job, in nano-dollars.
    pub fn total_price(&self) -> u64 {
        let e = estimate(
            self.spec.model,
            self.spec.is_full(),
            self.training_bytes,
            self.validation_bytes,
            u64::from(self.spec.n_epochs),
            u64::from(self.spec.n_evals),
        );
        nano_dollars(e.price)
    }

    /// The steps checkpoints are saved at: `n_checkpoints` of them spread
    /// evenly, the last at the end of training (`final`).
    pub fn checkpoint_steps(&self) -> Vec<u64> {
        let n = u64::from(self.spec.n_checkpoints.max(1));
        let total = self.total_steps();
        (1..=n).map(|k| (k * total).div_ceil(n)).collect()
    }

    /// Where the trained model lives (shown once completed).
    pub fn model_output_path(&self) -> String {
        format!(
            "s3://together-sandbox/finetune/{}/{}",
            self.id, self.model_output_name
        )
    }

    fn event(&mut self, kind: &'static str, level: &'static str, message: &str, extra: Extra) {
        self.events.push(json!({
            "object": "fine-tune-event",
            "created_at": rfc3339(Utc::now()),
            "level": level,
            "message": message,
            "type": kind,
            "param_count": self.spec.model.param_count,
            "token_count": self.token_count(),
            "total_steps": self.total_steps(),
            "wandb_url": "",
            "step": extra.step.unwrap_or_else(|| self.steps_done()),
            "checkpoint_path": extra.checkpoint_path,
            "model_path": extra.model_path,
            "training_offset": 0,
            "hash": extra.hash,
        }));
    }

    /// One step along the walk; finished jobs stay.
    pub fn advance(&mut self) {
        let before = self.stage;
        match self.stage {
            Stage::Pending => {
                self.stage = Stage::Queued;
                self.event(
                    "job_pending",
                    "info",
                    "Job is queued, position in queue: 1",
                    Extra::default(),
                );
            }
            Stage::Queued => {
                self.stage = Stage::Running(0);
                self.started_at = Some(Utc::now());
                self.event("job_start", "info", "Job started", Extra::default());
                for (kind, message) in [
                    ("model_downloading", "Downloading model"),
                    ("model_download_complete", "Model downloaded"),
                    ("training_data_downloading", "Downloading training data"),
                    (
                        "training_data_download_complete",
                        "Training data downloaded",
                    ),
                ] {
                    self.event(kind, "info", message, Extra::default());
                }
                if self.spec.validation_file.is_some() {
                    self.event(
                        "validation_data_downloading",
                        "info",
                        "Downloading validation data",
                        Extra::default(),
                    );
                    self.event(
                        "validation_data_download_complete",
                        "info",
                        "Validation data downloaded",
                        Extra::default(),
                    );
                }
                self.event(
                    "training_start",
                    "info",
                    "Training started",
                    Extra::default(),
                );
            }
            Stage::Running(done) => self.train_epoch(done),
            Stage::Compressing => {
                self.stage = Stage::Uploading;
                self.event(
                    "model_compression_complete",
                    "info",
                    "Model compressed",
                    Extra::default(),
                );
                self.event(
                    "model_uploading",
                    "info",
                    "Uploading model",
                    Extra::default(),
                );
            }
            Stage::Uploading => {
                self.stage = Stage::Completed;
                let path = self.model_output_path();
                self.event(
                    "model_upload_complete",
                    "info",
                    &format!("Model uploaded to {path}"),
                    Extra {
                        model_path: path.clone(),
                        ..Extra::default()
                    },
                );
                let name = self.model_output_name.clone();
                self.event(
                    "job_complete",
                    "info",
                    &format!("Job finished: {name}"),
                    Extra {
                        model_path: path,
                        ..Extra::default()
                    },
                );
            }
            Stage::CancelRequested => {
                self.stage = Stage::Cancelled;
                self.event("job_stopped", "info", "Job cancelled", Extra::default());
            }
            Stage::Completed | Stage::Cancelled | Stage::Error => {}
        }
        if self.stage != before || matches!(before, Stage::Running(_)) {
            self.updated_at = Utc::now();
        }
    }

    fn train_epoch(&mut self, done: u32) {
        let epoch = done + 1;
        let first_step = self.steps_done() + 1;
        self.epochs_done = epoch;
        let last_step = self.steps_done();
        self.event(
            "epoch_complete",
            "info",
            &format!("Epoch completed, at step {last_step}"),
            Extra::default(),
        );
        let training_ends = epoch >= self.spec.n_epochs;
        let steps = self.checkpoint_steps();
        for (k, step) in steps.iter().enumerate() {
            if !(first_step..=last_step).contains(step) {
                continue;
            }
            let is_final = k + 1 == steps.len();
            let path = format!(
                "s3://together-sandbox/finetune/{}/checkpoint-{step}",
                self.id
            );
            self.checkpoints.push(json!({
                "step": step,
                "created_at": rfc3339(Utc::now()),
                "path": path,
                "checkpoint_type": if is_final { "final" } else { "intermediate" },
            }));
            self.event(
                "checkpoint_save",
                "info",
                &format!("New checkpoint saved at step {step}"),
                Extra {
                    step: Some(*step),
                    checkpoint_path: path,
                    hash: short_hash(&format!("{}:{step}", self.id)),
                    ..Extra::default()
                },
            );
        }
        if self.fail_training {
            self.stage = Stage::Error;
            self.event(
                "job_error",
                "error",
                "Training failed: an internal error occurred (injected by the sandbox)",
                Extra::default(),
            );
            return;
        }
        if training_ends {
            self.stage = Stage::Compressing;
            self.event(
                "training_complete",
                "info",
                "Training completed",
                Extra::default(),
            );
            self.event(
                "model_compressing",
                "info",
                "Compressing model",
                Extra::default(),
            );
        } else {
            self.stage = Stage::Running(epoch);
        }
    }

    /// Moves a job that has not ended to `cancel_requested`; `false` for a
    /// job that has ended (Together refuses those).
    pub fn request_cancel(&mut self) -> bool {
        match self.stage {
            Stage::Completed | Stage::Cancelled | Stage::Error => false,
            Stage::CancelRequested => true,
            _ => {
                self.stage = Stage::CancelRequested;
                self.updated_at = Utc::now();
                self.event(
                    "cancel_requested",
                    "info",
                    "Cancel requested",
                    Extra::default(),
                );
                true
            }
        }
    }

    fn progress(&self, seconds_per_step: u64) -> Value {
        let remaining = match self.stage {
            Stage::Pending => 2 + u64::from(self.spec.n_epochs) + 2,
            Stage::Queued => 1 + u64::from(self.spec.n_epochs) + 2,
            Stage::Running(done) => {
                u64::from(self.spec.n_epochs - done.min(self.spec.n_epochs)) + 2
            }
            Stage::Compressing => 2,
            Stage::Uploading | Stage::CancelRequested => 1,
            Stage::Completed | Stage::Cancelled | Stage::Error => 0,
        };
        json!({
            "estimate_available": remaining > 0,
            "seconds_remaining": remaining * seconds_per_step,
        })
    }

    /// `FinetuneResponseTruncated`: what creation, listing and cancelling
    /// answer. Optional members are left out rather than `null` (the
    /// schema does not allow `null` for them).
    pub fn truncated_json(&self, seconds_per_step: u64) -> Value {
        let s = &self.spec;
        let mut out = json!({
            "id": self.id,
            "status": self.stage.status(),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "user_id": "user-sandbox",
            "owner_address": "sandbox@example.com",
            "total_price": if self.stage == Stage::Completed { self.total_price() } else { 0 },
            "token_count": self.token_count(),
            "training_file": s.training_file,
            "packing": s.packing,
            "model": s.model.name,
            "model_output_name": self.model_output_name,
            "n_epochs": s.n_epochs,
            "n_evals": s.n_evals,
            "n_checkpoints": s.n_checkpoints,
            "batch_size": s.batch_size,
            "training_type": s.training_type,
            "training_method": s.training_method,
            "learning_rate": s.learning_rate,
            "lr_scheduler": s.lr_scheduler,
            "warmup_ratio": s.warmup_ratio,
            "max_grad_norm": s.max_grad_norm,
            "weight_decay": s.weight_decay,
            "random_seed": s.random_seed,
            "progress": self.progress(seconds_per_step),
        });
        let optional = [
            ("started_at", self.started_at.map(|t| json!(rfc3339(t)))),
            (
                "validation_file",
                s.validation_file.as_ref().map(|v| json!(v)),
            ),
            ("suffix", s.suffix.as_ref().map(|v| json!(v))),
            ("max_seq_length", s.max_seq_length.map(|v| json!(v))),
            (
                "from_checkpoint",
                s.from_checkpoint.as_ref().map(|v| json!(v)),
            ),
            (
                "wandb_project_name",
                s.wandb_project_name.as_ref().map(|v| json!(v)),
            ),
            ("wandb_name", s.wandb_name.as_ref().map(|v| json!(v))),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                out[key] = v;
            }
        }
        out
    }

    /// `FinetuneResponse`: what `GET /fine-tunes/{id}` answers, the
    /// truncated form plus events and progress counters.
    pub fn full_json(&self, seconds_per_step: u64) -> Value {
        let mut out = self.truncated_json(seconds_per_step);
        out["job_id"] = json!(self.id);
        out["trainingfile_size"] = json!(self.training_bytes);
        out["epochs_completed"] = json!(self.epochs_done);
        out["param_count"] = json!(self.spec.model.param_count);
        out["queue_depth"] = json!(if self.stage == Stage::Queued { 1 } else { 0 });
        out["eval_steps"] = json!(if self.spec.n_evals > 0 {
            self.total_steps().div_ceil(u64::from(self.spec.n_evals))
        } else {
            0
        });
        out["events"] = json!(self.events);
        if self.stage == Stage::Completed {
            out["model_output_path"] = json!(self.model_output_path());
        }
        out
    }

    /// `train/*` metrics for every step trained so far (and `eval/loss` at
    /// each epoch's end when there is a validation file), within
    /// `from..=to`: a loss falling linearly from 2.2 to 0.2, the learning
    /// rate decaying linearly from the job's.
    pub fn metrics(&self, from: u64, to: u64) -> Vec<Value> {
        let total = self.total_steps().max(1);
        let per = u64::from(self.steps_per_epoch);
        (1..=self.steps_done())
            .filter(|s| (from..=to).contains(s))
            .map(|step| {
                let progress = step as f64 / total as f64;
                let loss = round4(2.0 * (1.0 - progress) + 0.2);
                let lr = self.spec.learning_rate * (1.0 - (step - 1) as f64 / total as f64);
                let mut m = json!({
                    "train/loss": loss,
                    "train/learning_rate": lr,
                    "train/global_step": step,
                    "train/epoch": round4(step as f64 / per as f64),
                });
                if self.spec.validation_file.is_some() && step % per == 0 {
                    m["eval/loss"] = json!(round4(loss + 0.05));
                }
                m
            })
            .collect()
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// An event's optional members (empty strings and the current step when
/// not given: every member is required by `FineTuneEvent`).
#[derive(Default)]
struct Extra {
    step: Option<u64>,
    checkpoint_path: String,
    model_path: String,
    hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference";

    fn spec(extra: Value) -> JobSpec {
        let mut body = json!({"model": LLAMA, "training_file": "file-1"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        JobSpec::from_request(&body).unwrap()
    }

    fn job(spec: JobSpec, fail: bool) -> TogetherJob {
        TogetherJob::new(NewJob {
            id: "ft-00000000-0000-0000-0000-000000000001".to_owned(),
            spec,
            organization: "sandbox-org".to_owned(),
            steps_per_epoch: 5,
            training_bytes: 4000,
            validation_bytes: 400,
            training_content: Content::default(),
            quality: Quality::Good,
            fail_training: fail,
            next_step_at: None,
        })
    }

    fn walk(job: &mut TogetherJob) -> Vec<&'static str> {
        let mut seen = vec![job.stage.status()];
        for _ in 0..100 {
            if job.stage.is_terminal() {
                break;
            }
            job.advance();
            seen.push(job.stage.status());
        }
        seen
    }

    #[test]
    fn a_job_walks_pending_queued_running_compressing_uploading_completed() {
        let mut j = job(spec(json!({"n_epochs": 2, "n_checkpoints": 2})), false);
        assert_eq!(
            walk(&mut j),
            [
                "pending",
                "queued",
                "running",
                "running",
                "compressing",
                "uploading",
                "completed"
            ]
        );
        assert_eq!(j.epochs_done, 2);
        let types: Vec<&str> = j
            .checkpoints
            .iter()
            .map(|c| c["checkpoint_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["intermediate", "final"]);
        assert_eq!(j.events.last().unwrap()["type"], "job_complete");
        j.advance();
        assert_eq!(j.stage, Stage::Completed, "a finished job stays");
    }

    #[test]
    fn a_failing_job_ends_in_error_after_its_first_epoch_with_an_error_event() {
        let mut j = job(spec(json!({"n_epochs": 3})), true);
        assert_eq!(walk(&mut j), ["pending", "queued", "running", "error"]);
        let last = j.events.last().unwrap();
        assert_eq!(
            (&last["type"], &last["level"]),
            (&json!("job_error"), &json!("error"))
        );
    }

    #[test]
    fn cancelling_requests_then_cancels_and_a_finished_job_refuses() {
        let mut j = job(spec(json!({})), false);
        j.advance();
        assert!(j.request_cancel());
        assert_eq!(j.stage.status(), "cancel_requested");
        j.advance();
        assert_eq!(j.stage.status(), "cancelled");
        assert!(!j.request_cancel());
    }

    #[test]
    fn the_model_output_name_is_org_basename_suffix_and_a_hash_of_the_id() {
        let name = model_output_name("acme", LLAMA, Some("support-v1"), "ft-abc");
        assert_eq!(
            name,
            format!(
                "acme/Meta-Llama-3.1-8B-Instruct-Reference-support-v1-{}",
                short_hash("ft-abc")
            )
        );
        assert_eq!(
            name,
            model_output_name("acme", LLAMA, Some("support-v1"), "ft-abc")
        );
        assert_ne!(
            name,
            model_output_name("acme", LLAMA, Some("support-v1"), "ft-abd")
        );
        assert!(!model_output_name("acme", LLAMA, None, "ft-abc").contains("--"));
    }

    #[test]
    fn metrics_fall_step_by_step_and_evaluate_at_epoch_ends_with_a_validation_file() {
        let mut j = job(
            spec(json!({"n_epochs": 2, "validation_file": "file-2"})),
            false,
        );
        assert!(j.metrics(0, u64::MAX).is_empty());
        while !j.stage.is_terminal() {
            j.advance();
        }
        let m = j.metrics(0, u64::MAX);
        assert_eq!(m.len(), 10);
        let losses: Vec<f64> = m
            .iter()
            .map(|x| x["train/loss"].as_f64().unwrap())
            .collect();
        assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
        assert_eq!(m.iter().filter(|x| x.get("eval/loss").is_some()).count(), 2);
        assert_eq!(j.metrics(3, 4).len(), 2);
    }
}
