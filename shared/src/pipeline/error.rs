//! Why a reconcile step did not complete, and whether the next tick should
//! simply try again.

use crate::dataset::PrepareError;
use crate::domain::TransitionError;
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
            | PipelineError::DatasetFormatMismatch { .. } => false,
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
            PipelineError::EvaluationStorage(_) => "evaluation_io",
            PipelineError::EvaluationFailed(_) => "evaluation_failed",
            PipelineError::DatasetFormatMismatch { .. } => "dataset_format_mismatch",
        }
    }
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
