//! Why a reconcile step did not complete, whether the next tick should
//! simply try again, and what the tenant is told.
//!
//! A failure has two audiences. The logs get the whole error with its
//! source chain (AWS's message, the role and the resource it names). The
//! tenant's records (the run's `error`, its timeline) get a stable code
//! and [`PipelineError::tenant_message`]: a sentence written for the
//! tenant per variant, in exhaustive matches, so a new variant cannot be
//! added without one. Only what is about the tenant's own run passes
//! through (why its job or its deployment failed, a request the provider
//! refused), scrubbed of ARNs and account ids all the same.

use crate::blob::BlobError;
use crate::dataset::PrepareError;
use crate::domain::TransitionError;
use crate::domain::tenant_text::scrub;
use crate::provider::ProviderError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A record that contradicts itself (e.g. training without a job). A
    /// bug or a hand edit; the run fails with this rather than looping.
    #[error("run record is inconsistent: {0}")]
    Inconsistent(String),
    /// The provider could not make the trained model callable.
    #[error("the provider could not deploy the trained model ({deployment}): {reason}")]
    DeploymentFailed { deployment: String, reason: String },
    /// The run's model was given up (failed) while the run was still
    /// deploying it: a cancel or a failure was interrupted before it ended
    /// the run. Never deployed again.
    #[error("model {model_id} was given up before its deployment served")]
    DeploymentStopped { model_id: String },
    /// The evaluation's objects (plan, answers, rows) could not be read or
    /// written.
    #[error("evaluation storage: {0}")]
    EvaluationStorage(#[from] crate::blob::BlobError),
    /// The evaluation cannot reach a decision (e.g. no example scored).
    #[error("the evaluation cannot go on: {0}")]
    EvaluationFailed(String),
    /// A reused dataset written for another provider's format.
    #[error(
        "dataset {dataset_id} is in the {found} format but {provider} trains on {needed}: \
         prepare a new dataset for this provider (give a date range instead of dataset_id)"
    )]
    DatasetFormatMismatch {
        dataset_id: String,
        found: String,
        needed: &'static str,
        provider: &'static str,
    },
    /// The tenant's monthly cap can never hold the run.
    #[error(transparent)]
    Budget(#[from] crate::domain::fleet::BudgetExceeded),
}

impl PipelineError {
    /// Worth retrying on the next tick: the world may be different then.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Store(e) => {
                matches!(
                    e,
                    StoreError::Dynamo { .. } | StoreError::Unprocessed { .. }
                )
            }
            PipelineError::Provider(e) => e.is_transient(),
            PipelineError::Prepare(e) => prepare_is_transient(e),
            PipelineError::EvaluationStorage(e) => matches!(e, crate::blob::BlobError::S3 { .. }),
            PipelineError::EvaluationFailed(_)
            | PipelineError::Transition(_)
            | PipelineError::Inconsistent(_)
            | PipelineError::DeploymentFailed { .. }
            | PipelineError::DeploymentStopped { .. }
            | PipelineError::DatasetFormatMismatch { .. }
            | PipelineError::Budget(_) => false,
        }
    }

    /// The stable code a failed run carries.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Store(_) => "store_error",
            PipelineError::Provider(e) => e.code(),
            PipelineError::Prepare(e) => prepare_code(e),
            PipelineError::Transition(_) => "invalid_transition",
            PipelineError::Inconsistent(_) => "inconsistent_record",
            PipelineError::DeploymentFailed { .. } => "deployment_failed",
            PipelineError::DeploymentStopped { .. } => "deployment_stopped",
            PipelineError::EvaluationStorage(_) => "evaluation_io",
            PipelineError::EvaluationFailed(_) => "evaluation_failed",
            PipelineError::DatasetFormatMismatch { .. } => "dataset_format_mismatch",
            PipelineError::Budget(_) => "budget_exceeded",
        }
    }
}

impl PipelineError {
    /// The sentence the tenant reads (a run's `error.message`, its
    /// timeline): what happened to the run and, where the tenant can act,
    /// what to do. Never our side's internals; the logs have those.
    pub fn tenant_message(&self) -> String {
        scrub(&self.tenant_sentence()).into_owned()
    }

    /// [`Self::tenant_message`] before the scrubber: what each variant's
    /// author wrote.
    pub fn tenant_sentence(&self) -> String {
        match self {
            PipelineError::Store(e) => store_sentence(e),
            PipelineError::Provider(e) => provider_sentence(e),
            PipelineError::Prepare(e) => prepare_sentence(e),
            // Our run ids and status names only.
            PipelineError::Transition(e) => e.to_string(),
            PipelineError::Inconsistent(_) => {
                "the run's record contradicts itself and it cannot go on; start a new run".into()
            }
            PipelineError::DeploymentFailed { reason, .. } => {
                format!("the provider could not deploy the trained model: {reason}")
            }
            PipelineError::DeploymentStopped { model_id } => format!(
                "the deployment of model {model_id} was stopped before it served (the run was \
                 cancelled or failed meanwhile); it was deleted"
            ),
            PipelineError::EvaluationStorage(e) => format!(
                "the evaluation's stored answers could not be read or written ({})",
                blob_sentence(e)
            ),
            PipelineError::EvaluationFailed(_) => {
                "the evaluation could not reach a decision (no example could be scored)".into()
            }
            // Our dataset id and format names only.
            PipelineError::DatasetFormatMismatch { .. } => self.to_string(),
            // Our amounts and the tenant's own cap only.
            PipelineError::Budget(e) => e.to_string(),
        }
    }
}

fn store_sentence(error: &StoreError) -> String {
    match error {
        StoreError::InvalidId(e) => format!("a stored {} is not a valid id", e.field),
        StoreError::NotFound { kind, id } => format!("{kind} {id} was not found"),
        StoreError::VersionConflict { kind, id, .. } => {
            format!("{kind} {id} was changed by another writer")
        }
        StoreError::ConditionFailed { kind, id } => {
            format!("{kind} {id} is not in a state that allows this")
        }
        StoreError::AlreadyExists { kind, id } => format!("{kind} {id} already exists"),
        StoreError::IdempotencyMismatch { key, .. } => {
            format!("idempotency key {key} was already used with a different request")
        }
        StoreError::InvalidCursor => "a pagination cursor was not valid".into(),
        StoreError::Corrupt { kind, .. } => format!("a stored {kind} record could not be read"),
        StoreError::Unprocessed { .. } | StoreError::Dynamo { .. } => {
            "the run's records could not be read or written for now".into()
        }
    }
}

fn blob_sentence(error: &BlobError) -> String {
    match error {
        // Keys are the tenant's own objects, built from validated ids.
        BlobError::NotFound { key } => format!("object {key} was not found"),
        BlobError::EmptyRange { .. } => error.to_string(),
        BlobError::BadJson { key, .. } => format!("object {key} is not valid JSON"),
        BlobError::S3 { key, .. } => format!("object {key} could not be read or written for now"),
    }
}

fn provider_sentence(error: &ProviderError) -> String {
    match error {
        ProviderError::RateLimited { .. } => "the provider is rate limiting us".into(),
        // About the run's own request (a file, a hyperparameter): the
        // provider's words, scrubbed.
        ProviderError::InvalidRequest { message, param, .. } => format!(
            "the provider refused the request: {message}{}",
            param
                .as_ref()
                .map(|p| format!(" (parameter: {p})"))
                .unwrap_or_default()
        ),
        ProviderError::FineTuningNotPermitted { .. } => {
            "the provider does not allow this service to create fine-tuning jobs (OpenAI \
             stopped new fine-tuning for most organisations; train this run on another \
             provider such as Bedrock)"
                .into()
        }
        ProviderError::PermissionDenied { .. } => {
            "the provider denied this service access; the operators have the details".into()
        }
        ProviderError::Auth { .. } => {
            "the provider rejected this service's credentials; the operators have the details"
                .into()
        }
        ProviderError::NotFound { .. } => {
            "something the run needs was not found at the provider".into()
        }
        ProviderError::Server { status, .. } => format!("the provider failed (HTTP {status})"),
        ProviderError::Transport(_) => "could not reach the provider".into(),
        ProviderError::Decode(_) => "the provider answered something we could not read".into(),
        ProviderError::NotConfigured(_) => {
            "this provider is not configured in this deployment".into()
        }
        ProviderError::Blob(e) => blob_sentence(e),
    }
}

fn prepare_sentence(error: &PrepareError) -> String {
    match error {
        // Our own figures and advice.
        PrepareError::TooFewExamples { .. }
        | PrepareError::NoDateRange
        | PrepareError::OutOfTime { .. }
        | PrepareError::MergeMemory { .. }
        | PrepareError::ShardsStalled { .. }
        // The tenant's own export keys, each with why it was refused.
        | PrepareError::NoReadableExports { .. } => error.to_string(),
        // Our validation's own rule.
        PrepareError::InvalidSettings(rule) => format!("invalid preparation settings: {rule}"),
        PrepareError::Blob(e) => blob_sentence(e),
        PrepareError::Io { .. } => {
            "the preparation's local storage failed; it is retried on the next tick".into()
        }
        PrepareError::Manifest(_) => "the dataset's manifest could not be written".into(),
        PrepareError::Dictionary(_) => {
            "the token vocabulary is not available in this deployment; the operators have the \
             details"
                .into()
        }
        PrepareError::ShardIndex(_) => {
            "the dataset's shards did not agree with each other; start a new run".into()
        }
        // Our own figures, but a byte count of 100 GB and more has an
        // account id's 12 digits: then in GiB.
        PrepareError::TooLarge {
            bytes,
            effective,
            files,
            limit,
        } => in_bytes_or_gib(error, || {
            format!(
                "the exports for this run's date range hold {} in {files} files ({} once \
                 decompressed, estimated), over the {} limit of one preparation: narrow the \
                 date range or the filters, or raise PREPARE_MAX_EXPORT_GB",
                gib(*bytes),
                gib(*effective),
                gib(*limit)
            )
        }),
        PrepareError::ShardFailed {
            shard,
            shards,
            attempts,
            code,
            ..
        } => format!("shard {shard} of {shards} failed after {attempts} attempts ({code})"),
        PrepareError::MergeTooLarge {
            shards,
            bytes,
            attempts,
        } => in_bytes_or_gib(error, || {
            format!(
                "the merge of {shards} shards ({} of exports) did not finish in {attempts} \
                 invocations: narrow the date range or lower max_examples",
                gib(*bytes)
            )
        }),
    }
}

/// The error's own sentence (exact bytes), or `in_gib` when one of its
/// figures would read as an account id.
fn in_bytes_or_gib(error: &PrepareError, in_gib: impl FnOnce() -> String) -> String {
    let exact = error.to_string();
    if crate::domain::tenant_text::needs_scrubbing(&exact) {
        in_gib()
    } else {
        exact
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// S3 and local I/O can heal; a rule the data or the config breaks cannot.
fn prepare_is_transient(error: &PrepareError) -> bool {
    match error {
        PrepareError::Blob(e) => matches!(e, crate::blob::BlobError::S3 { .. }),
        // A missing or damaged vocabulary is a deployment to fix, not a
        // property of the run: it is retried until someone does.
        PrepareError::Io { .. } | PrepareError::Dictionary(_) => true,
        // A step out of time retries on the next tick (the step decides
        // when attempts are spent).
        PrepareError::OutOfTime { .. } => true,
        PrepareError::TooFewExamples { .. }
        | PrepareError::ShardIndex(_)
        | PrepareError::TooLarge { .. }
        | PrepareError::ShardFailed { .. }
        | PrepareError::ShardsStalled { .. }
        | PrepareError::MergeTooLarge { .. }
        | PrepareError::MergeMemory { .. }
        | PrepareError::NoDateRange
        | PrepareError::NoReadableExports { .. }
        | PrepareError::InvalidSettings(_)
        | PrepareError::Manifest(_) => false,
    }
}

fn prepare_code(error: &PrepareError) -> &'static str {
    match error {
        PrepareError::TooFewExamples { .. } => "too_few_examples",
        PrepareError::NoDateRange => "no_date_range",
        PrepareError::InvalidSettings(_) => "invalid_settings",
        PrepareError::Blob(_) | PrepareError::Io { .. } => "dataset_io",
        PrepareError::Manifest(_) => "dataset_manifest",
        PrepareError::Dictionary(_) => "tokenizer_unavailable",
        PrepareError::OutOfTime { .. } => "preparation_out_of_time",
        PrepareError::ShardIndex(_) => "dataset_shard_inconsistent",
        PrepareError::TooLarge { .. }
        | PrepareError::MergeTooLarge { .. }
        | PrepareError::MergeMemory { .. } => "dataset_too_large",
        PrepareError::ShardFailed { .. } => "dataset_shard_failed",
        PrepareError::ShardsStalled { .. } => "dataset_shards_stalled",
        PrepareError::NoReadableExports { .. } => "exports_unreadable",
    }
}
