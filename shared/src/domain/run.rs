//! A training run: what the caller asked for, where the pipeline is, and what
//! the provider did. Pure data and transition rules; no I/O.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::evaluation::{ActivationPolicy, EvaluationConfig, EvaluationRecord, ServingChoice};
use super::fleet::{Admission, PoolId, WaitReason};
use super::ids::{DatasetId, RunId, TenantId};
use super::job::JobInfo;
use super::provider::ProviderKind;
use super::split::TrainSplit;

/// Where a run is in the pipeline. The order is the happy path; the last
/// three are terminal and take the run out of the active-runs index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Preparing,
    /// Prepared, with its cost estimate, and waiting for admission: a slot
    /// of its provider's pool, its tenant's in-flight limit, its budget
    /// ([`Run::waiting`] says which). Nothing is uploaded before.
    Waiting,
    Uploading,
    Submitting,
    Training,
    /// The trained model is being made callable (Bedrock: an on-demand
    /// custom model deployment; OpenAI: nothing to wait for).
    Deploying,
    /// The trained model and the baseline answer a sample of the run's
    /// validation examples; the decision gates activation.
    Evaluating,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 11] = [
        RunStatus::Queued,
        RunStatus::Preparing,
        RunStatus::Waiting,
        RunStatus::Uploading,
        RunStatus::Submitting,
        RunStatus::Training,
        RunStatus::Deploying,
        RunStatus::Evaluating,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Preparing => "preparing",
            RunStatus::Waiting => "waiting",
            RunStatus::Uploading => "uploading",
            RunStatus::Submitting => "submitting",
            RunStatus::Training => "training",
            RunStatus::Deploying => "deploying",
            RunStatus::Evaluating => "evaluating",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The moves the pipeline may make. Anything else is a bug, and the
    /// reconciler refuses it rather than corrupting a record.
    pub fn can_move_to(self, next: RunStatus) -> bool {
        use RunStatus::*;
        if self.is_terminal() {
            return false;
        }
        match next {
            Failed | Cancelled => true,
            Preparing => self == Queued,
            // From queued when the run reuses an existing dataset; back
            // from uploading or submitting when the provider was busy.
            RunStatus::Waiting => matches!(self, Queued | Preparing | Uploading | Submitting),
            // Only by admission.
            Uploading => self == RunStatus::Waiting,
            Submitting => self == Uploading,
            Training => self == Submitting,
            Deploying => self == Training,
            Evaluating => self == Deploying,
            // prepare_only runs complete straight after preparation.
            Completed => matches!(self, Preparing | Evaluating),
            Queued => false,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hyperparameter the provider may choose (`"auto"`) or the caller fixes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum AutoOr<T> {
    #[default]
    #[serde(with = "auto_literal")]
    Auto,
    Value(T),
}

mod auto_literal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("auto")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let value = String::deserialize(d)?;
        if value == "auto" {
            Ok(())
        } else {
            Err(D::Error::custom("expected \"auto\" or a number"))
        }
    }
}

impl<T> AutoOr<T> {
    pub fn is_auto(&self) -> bool {
        matches!(self, AutoOr::Auto)
    }
}

impl<T: Copy> AutoOr<T> {
    pub fn value(self) -> Option<T> {
        match self {
            AutoOr::Auto => None,
            AutoOr::Value(v) => Some(v),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    #[serde(default)]
    pub n_epochs: AutoOr<u32>,
    #[serde(default)]
    pub batch_size: AutoOr<u32>,
    /// OpenAI only: a multiple of OpenAI's own learning rate.
    #[serde(default)]
    pub learning_rate_multiplier: AutoOr<f64>,
    /// Bedrock only (`learningRate`): an absolute rate, e.g. 1e-5.
    #[serde(default, skip_serializing_if = "AutoOr::is_auto")]
    pub learning_rate: AutoOr<f64>,
    /// Bedrock only (`learningRateWarmupSteps`).
    #[serde(default, skip_serializing_if = "AutoOr::is_auto")]
    pub learning_rate_warmup_steps: AutoOr<u32>,
    /// Together only: `false` trains every weight (`Full`); LoRA otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<bool>,
    /// Together only: the LoRA rank (`lora_r`).
    #[serde(default, skip_serializing_if = "AutoOr::is_auto")]
    pub lora_rank: AutoOr<u32>,
    /// Together only: the LoRA alpha (`lora_alpha`).
    #[serde(default, skip_serializing_if = "AutoOr::is_auto")]
    pub lora_alpha: AutoOr<u32>,
    /// Together only: intermediate models saved while training.
    #[serde(default, skip_serializing_if = "AutoOr::is_auto")]
    pub n_checkpoints: AutoOr<u32>,
}

/// Which conversations are good enough to learn from. Defaults keep only
/// conversations that ended well: escalated and abandoned ones teach the
/// model to fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default = "Filters::default_excluded_outcomes")]
    pub exclude_outcomes: Vec<String>,
    /// Conversations rated below this are dropped; unrated ones are kept.
    #[serde(default)]
    pub min_rating: Option<i64>,
    #[serde(default = "Filters::default_min_assistant_turns")]
    pub min_assistant_turns: u32,
    #[serde(default = "Filters::default_redact_pii")]
    pub redact_pii: bool,
}

impl Filters {
    fn default_excluded_outcomes() -> Vec<String> {
        vec!["escalated".to_owned(), "abandoned".to_owned()]
    }
    fn default_min_assistant_turns() -> u32 {
        1
    }
    fn default_redact_pii() -> bool {
        true
    }
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            exclude_outcomes: Self::default_excluded_outcomes(),
            min_rating: None,
            min_assistant_turns: Self::default_min_assistant_turns(),
            redact_pii: Self::default_redact_pii(),
        }
    }
}

/// The validated training request. Either a date range of conversations to
/// prepare, or (with the run's `dataset_id`) a dataset prepared before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub base_model: String,
    pub min_examples: u32,
    pub max_examples: u32,
    pub train_split: TrainSplit,
    pub system_prompt: Option<String>,
    pub seed: u64,
    pub hyperparameters: Hyperparameters,
    pub filters: Filters,
    /// How the trained model is compared with what the tenant uses.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// Whether the trained model becomes the tenant's active one.
    #[serde(default)]
    pub activation: ActivationPolicy,
    /// Who serves the trained model.
    #[serde(default)]
    pub serving: ServingChoice,
}

/// A machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

/// The headline figures of the run's dataset, copied onto the run so a
/// listing shows them without reading every dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunStats {
    pub train_examples: u64,
    pub validation_examples: u64,
    pub train_tokens: u64,
    pub epochs: u32,
    pub estimated_billed_tokens: u64,
    pub estimated_cost_usd: f64,
    /// The evaluation's calls at most, recorded before the first one.
    #[serde(default)]
    pub evaluation_estimated_cost_usd: Option<f64>,
    #[serde(default)]
    pub evaluation_estimated_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub status: RunStatus,
    /// Finer than `status`: what the run is doing right now, in words
    /// (e.g. the provider's own job status while training).
    pub phase: String,
    pub provider: ProviderKind,
    pub config: RunConfig,
    #[serde(default)]
    pub prepare_only: bool,
    #[serde(default)]
    pub dataset_id: Option<DatasetId>,
    #[serde(default)]
    pub job: Option<JobInfo>,
    #[serde(default)]
    pub stats: Option<RunStats>,
    #[serde(default)]
    pub error: Option<RunError>,
    /// The trained model against the baseline (the evaluating phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationRecord>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// While waiting: for which pool, since when, and why (none yet: the
    /// admission pass has not looked at it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// From admission until the run gives back its slot and its tenant's
    /// reservation (the store releases both in the write that ends them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Admission>,
    /// Since when the current phase has had only transient provider
    /// answers (none: its last call succeeded). A phase after admission
    /// fails on this growing past the fleet's patience, never on a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_since: Option<DateTime<Utc>>,
    /// Consecutive transient failures of the current step; reset by every
    /// transition. The reconciler fails the run when it runs out.
    #[serde(default)]
    pub retries: u32,
    /// Optimistic-concurrency counter: every stored update must name the
    /// version it read, so the monitor, cancel and reads never lose a write.
    pub version: u64,
}

/// A run in the admission queue of `pool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub pool: PoolId,
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<WaitReason>,
}

/// What a caller decides about a new run; the rest is the pipeline's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub provider: ProviderKind,
    pub config: RunConfig,
    /// Train on this existing dataset instead of preparing one.
    pub dataset_id: Option<DatasetId>,
    /// Stop after preparation: a dry run for stats and the cost estimate.
    pub prepare_only: bool,
}

/// A transition the rules in [`RunStatus::can_move_to`] forbid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id} cannot move from {from} to {to}")]
pub struct TransitionError {
    pub run_id: String,
    pub from: RunStatus,
    pub to: RunStatus,
}

impl Run {
    /// A run as `POST /runs` accepts it: queued, nothing done yet.
    pub fn new_queued(request: NewRun, now: DateTime<Utc>) -> Self {
        Self {
            id: RunId::generate(),
            tenant_id: request.tenant_id,
            name: request.name,
            description: request.description,
            status: RunStatus::Queued,
            phase: "waiting for the monitor".to_owned(),
            provider: request.provider,
            config: request.config,
            prepare_only: request.prepare_only,
            dataset_id: request.dataset_id,
            job: None,
            stats: None,
            error: None,
            evaluation: None,
            waiting: None,
            admission: None,
            busy_since: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            retries: 0,
            version: 0,
        }
    }

    /// Moves the run to `next` if the rules allow it, stamping the times.
    pub fn move_to(
        &mut self,
        next: RunStatus,
        phase: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if !self.status.can_move_to(next) {
            return Err(TransitionError {
                run_id: self.id.to_string(),
                from: self.status,
                to: next,
            });
        }
        self.status = next;
        self.phase = phase.into();
        self.updated_at = now;
        if next.is_terminal() {
            self.completed_at = Some(now);
        }
        Ok(())
    }

    /// Fails the run with a reason the tenant can act on.
    pub fn fail(
        &mut self,
        code: impl Into<String>,
        message: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.move_to(RunStatus::Failed, "failed", now)?;
        self.error = Some(RunError {
            code: code.into(),
            message: message.into(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        RunConfig {
            start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
            end_date: NaiveDate::from_ymd_opt(2026, 10, 31),
            base_model: "gpt-4o-mini-2024-07-18".into(),
            min_examples: 10,
            max_examples: 1000,
            train_split: TrainSplit::DEFAULT,
            system_prompt: None,
            seed: 42,
            hyperparameters: Hyperparameters::default(),
            filters: Filters::default(),
            evaluation: Default::default(),
            activation: Default::default(),
            serving: Default::default(),
        }
    }

    fn run() -> Run {
        Run::new_queued(
            NewRun {
                tenant_id: TenantId::parse("acme").unwrap(),
                name: "first".into(),
                description: None,
                provider: ProviderKind::OpenAi,
                config: config(),
                dataset_id: None,
                prepare_only: false,
            },
            Utc::now(),
        )
    }

    #[test]
    fn happy_path_is_allowed_in_order() {
        let mut r = run();
        for next in [
            RunStatus::Preparing,
            RunStatus::Waiting,
            RunStatus::Uploading,
            RunStatus::Submitting,
            RunStatus::Training,
            RunStatus::Deploying,
            RunStatus::Evaluating,
            RunStatus::Completed,
        ] {
            r.move_to(next, next.as_str(), Utc::now()).unwrap();
        }
        assert!(r.completed_at.is_some());
    }

    #[test]
    fn terminal_runs_never_move_again() {
        let mut r = run();
        r.move_to(RunStatus::Cancelled, "cancelled", Utc::now())
            .unwrap();
        for next in RunStatus::ALL {
            assert!(r.clone().move_to(next, "x", Utc::now()).is_err(), "{next}");
        }
    }

    #[test]
    fn skipping_steps_is_refused() {
        let mut r = run();
        let err = r.move_to(RunStatus::Training, "x", Utc::now()).unwrap_err();
        assert_eq!(err.from, RunStatus::Queued);
        assert_eq!(r.status, RunStatus::Queued);
    }

    #[test]
    fn hyperparameters_accept_auto_or_numbers_only() {
        let h: Hyperparameters = serde_json::from_str(
            r#"{"n_epochs":"auto","batch_size":8,"learning_rate_multiplier":0.5}"#,
        )
        .unwrap();
        assert_eq!(h.n_epochs, AutoOr::Auto);
        assert_eq!(h.batch_size, AutoOr::Value(8));
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"n_epochs":"auto","batch_size":8,"learning_rate_multiplier":0.5}"#
        );
        assert!(serde_json::from_str::<Hyperparameters>(r#"{"n_epochs":"many"}"#).is_err());
    }

    #[test]
    fn status_round_trips_through_its_name() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RunStatus::parse("done"), None);
    }
}
