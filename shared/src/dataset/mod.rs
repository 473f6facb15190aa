//! Conversations to a validated, token-counted, split training set.
//!
//! The pure steps (parse, filter, redact, window, dedup, split, check,
//! count) need no AWS; [`prepare::prepare`] runs them over an
//! [`io::ExportSource`] and an [`io::DatasetSink`], so the pipeline (S3)
//! and the `finetune prepare` command (a local folder) share every rule.

pub mod check;
pub mod conversation;
pub mod dictionaries;
pub mod fanout;
pub mod format;
pub mod io;
pub mod merge;
pub mod prepare;
pub mod redact;
pub mod shard;
pub mod stats;
pub mod tokens;
mod window;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

pub use check::{
    CheckFileError, CheckOptions, CheckReport, Encoding, LineError, check_jsonl, check_jsonl_file,
};
pub use format::{DatasetFormat, ExampleFormat};
pub use prepare::{DatasetStats, FORMAT, PrepareSettings};

use crate::blob::{BlobError, Blobs, DatasetObject, dataset_key};
use crate::domain::ProviderKind;
use crate::domain::{DatasetFile, DatasetId, DateRange, RunConfig, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(
        "only {found} training examples were left after filtering, at least {required} are needed: \
         widen the date range, relax the filters or lower min_examples (the preparation's log \
         lists why conversations were dropped)"
    )]
    TooFewExamples { found: u64, required: u32 },
    #[error("preparing a dataset needs both start_date and end_date in the run's config")]
    NoDateRange,
    #[error("invalid preparation settings: {0}")]
    InvalidSettings(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("reading or writing {path} failed: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the manifest could not be serialized: {0}")]
    Manifest(#[source] serde_json::Error),
    #[error(transparent)]
    Dictionary(#[from] dictionaries::DictionaryError),
    /// The invocation's deadline came before the exports were read; what
    /// was written is abandoned (a shard is redone whole).
    #[error(
        "stopped at the invocation's deadline after reading {files_read} of {files} export \
         files ({bytes_read} bytes)"
    )]
    OutOfTime {
        files_read: u64,
        files: u64,
        bytes_read: u64,
    },
    /// Every export file of the run was refused (none could be read).
    #[error(
        "none of the run's {total} export files could be read: {}",
        list_refused(.refused, .total)
    )]
    NoReadableExports {
        total: u64,
        refused: Vec<shard::RefusedFile>,
    },
    /// A shard's index or summary that does not describe its files.
    #[error("a shard's results are inconsistent: {0}")]
    ShardIndex(String),
    /// More exports than one run may prepare, known before reading a byte.
    #[error(
        "the exports for this run's date range hold {bytes} bytes in {files} files ({effective} \
         bytes once decompressed, estimated), over the {limit}-byte limit of one preparation: \
         narrow the date range or the filters, or raise PREPARE_MAX_EXPORT_GB"
    )]
    TooLarge {
        bytes: u64,
        effective: u64,
        files: u64,
        limit: u64,
    },
    /// The merge would need more memory than the function has.
    #[error(
        "the run's exports hold {conversations} conversations and {examples} examples after \
         the rules; merging them needs about {needed_mib:.1} MiB, over the {budget_mib:.1} MiB the prepare \
         function may use: narrow the date range or the filters, or give the prepare function \
         more memory"
    )]
    MergeMemory {
        conversations: u64,
        examples: u64,
        needed_mib: f64,
        budget_mib: f64,
    },
    /// A shard failed on its every attempt (its last error is kept).
    #[error("shard {shard} of {shards} failed after {attempts} attempts: {code}: {message}")]
    ShardFailed {
        shard: u32,
        shards: u32,
        attempts: u32,
        code: String,
        message: String,
    },
    /// Shards were not all done long after they were handed out.
    #[error(
        "{missing} of {shards} shards were not done {minutes} minutes after they were handed out \
         (first missing: shard {first}); check the shard queue's dead-letter queue and the \
         prepare-shard function's logs"
    )]
    ShardsStalled {
        missing: u32,
        shards: u32,
        first: u32,
        minutes: i64,
    },
    /// The merge did not finish within its attempts (each an invocation).
    #[error(
        "the merge of {shards} shards ({bytes} bytes of exports) did not finish in {attempts} \
         invocations: narrow the date range or lower max_examples"
    )]
    MergeTooLarge {
        shards: u32,
        bytes: u64,
        attempts: u32,
    },
}

/// `key (reason), ...`, and how many more the list leaves out.
fn list_refused(refused: &[shard::RefusedFile], total: &u64) -> String {
    let mut out = refused
        .iter()
        .map(|f| format!("{} ({})", f.key, f.reason))
        .collect::<Vec<_>>()
        .join(", ");
    let more = total.saturating_sub(refused.len() as u64);
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

impl PrepareError {
    pub(crate) fn io(path: &str, source: std::io::Error) -> Self {
        PrepareError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A dataset written to S3, ready to record.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    pub train: DatasetFile,
    pub validation: Option<DatasetFile>,
    pub manifest_key: String,
    pub stats: DatasetStats,
    pub format: DatasetFormat,
}

impl PrepareSettings {
    /// The settings of a run's config; the run must name a date range.
    pub fn from_run_config(
        tenant: &TenantId,
        config: &RunConfig,
        provider: ProviderKind,
    ) -> Result<Self, PrepareError> {
        let (Some(start_date), Some(end_date)) = (config.start_date, config.end_date) else {
            return Err(PrepareError::NoDateRange);
        };
        // The start-run checker refused a reversed range; a stored run
        // that holds one anyway is refused here with the range's words.
        let dates = DateRange::new(start_date, end_date)
            .map_err(|e| PrepareError::InvalidSettings(e.to_string()))?;
        Ok(Self {
            tenant: tenant.clone(),
            dates,
            base_model: config.base_model.clone(),
            system_prompt: config.system_prompt.clone(),
            train_split: config.train_split,
            min_examples: config.min_examples,
            max_examples: config.max_examples,
            seed: config.seed,
            filters: config.filters.clone(),
            n_epochs: config.hyperparameters.n_epochs.value(),
            max_tokens_per_example: None,
            format: crate::provider::profiles::profile(provider).dataset_format(),
            provider: Some(provider),
        })
    }
}

/// The pipeline's preparation step: the tenant's exports for the run's
/// date range in, `datasets/{tenant}/{dataset_id}/` out.
pub async fn prepare_from_s3(
    blobs: &Blobs,
    tenant: &TenantId,
    dataset_id: &DatasetId,
    config: &RunConfig,
    provider: ProviderKind,
) -> Result<PreparedDataset, PrepareError> {
    let settings = PrepareSettings::from_run_config(tenant, config, provider)?;
    let source = io::ExportSource::S3(blobs.clone());
    let sink = io::DatasetSink::S3 {
        blobs: blobs.clone(),
        tenant: tenant.clone(),
        dataset: dataset_id.clone(),
    };
    let out = prepare::prepare(&source, &sink, &settings).await?;
    Ok(PreparedDataset::written(
        tenant,
        dataset_id,
        settings.format,
        out.train,
        out.validation,
        out.stats,
    ))
}

impl PreparedDataset {
    /// The dataset whose files were just written, ready to record.
    pub fn written(
        tenant: &TenantId,
        dataset_id: &DatasetId,
        format: DatasetFormat,
        train: io::Written,
        validation: Option<io::Written>,
        stats: DatasetStats,
    ) -> Self {
        PreparedDataset {
            train: DatasetFile {
                key: train.key,
                sha256: train.sha256,
                bytes: train.bytes,
                examples: stats.train_examples,
            },
            validation: validation.map(|v| DatasetFile {
                key: v.key,
                sha256: v.sha256,
                bytes: v.bytes,
                examples: stats.validation_examples,
            }),
            manifest_key: dataset_key(tenant, dataset_id, DatasetObject::Manifest),
            stats,
            format,
        }
    }
}
