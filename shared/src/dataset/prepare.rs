//! The preparation of a small run: exports in, train/validation/manifest
//! out, in one invocation. (A large run's shards and merge share its two
//! halves: [`super::shard`] and [`super::merge`]; see [`super::fanout`].)
//!
//! Pass 1 streams every export line through the rules and writes each
//! accepted example to a spill file in /tmp, keeping in memory only a
//! 24-byte entry per conversation (dedup) and 16 bytes per example
//! (sample priority, tokens, length). Pass 2 copies the examples the seeded
//! sample keeps from the spill. Memory therefore grows with the number of
//! examples by a few bytes each, never with their size.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::io::{DatasetSink, ExportSource, ReadLimits, TempFile, Written};
use super::merge::{Merged, Span, merge};
use super::redact::Redactions;
use super::shard::{ExampleOut, Rulebook, ShardResult, read_exports};
use super::stats::Distribution;
use super::tokens::Encoding;
use super::{DatasetFormat, PrepareError};
use crate::blob::DatasetObject;
use crate::domain::{DateRange, Filters, TenantId, TrainSplit};

/// Everything a preparation needs to know, from a `RunConfig` or the CLI.
/// The date range and the split checked themselves when built, so the
/// preparation takes them as they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrepareSettings {
    pub tenant: TenantId,
    /// Written as `start_date` and `end_date`.
    #[serde(flatten)]
    pub dates: DateRange,
    pub base_model: String,
    pub system_prompt: Option<String>,
    pub train_split: TrainSplit,
    pub min_examples: u32,
    pub max_examples: u32,
    pub seed: u64,
    pub filters: Filters,
    /// A fixed epoch count, or None for OpenAI's default heuristic.
    pub n_epochs: Option<u32>,
    /// Overrides the base model's per-example token limit (smaller
    /// windows, or tests); None uses the model's.
    #[serde(default)]
    pub max_tokens_per_example: Option<usize>,
    /// The file format to write (the run's provider decides).
    #[serde(default)]
    pub format: DatasetFormat,
    /// The provider whose rules apply (limits, checker, epochs, price):
    /// two providers can train on one format (OpenAI and Together on chat
    /// JSONL). `None`: the one provider of `format` first listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<crate::domain::ProviderKind>,
}

/// What a preparation did, exactly as written to `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub files_read: u64,
    /// Lines that held a conversation (blank lines not included).
    pub conversations_read: u64,
    /// Lines that were not a conversation: bad JSON, truncated, missing
    /// required fields.
    pub malformed_lines: u64,
    /// Those lines by reason: `not_json`, `line_too_long` (over the line
    /// ceiling, skipped unread), `truncated` (where a cut file ended).
    #[serde(default)]
    pub malformed_reasons: BTreeMap<String, u64>,
    /// Export files left out, with the reason (the first
    /// [`super::shard::REFUSED_LISTED`] in reading order).
    #[serde(default)]
    pub files_refused: Vec<super::shard::RefusedFile>,
    /// Export files left out, all told.
    #[serde(default)]
    pub files_refused_total: u64,
    /// Conversations dropped, by reason (`format:<category>` when a built
    /// example failed the checker).
    pub dropped: BTreeMap<String, u64>,
    pub redactions: Redactions,
    pub duplicates_removed: u64,
    /// Conversations over the per-example limit, split into windows.
    pub examples_over_limit: u64,
    /// Windows those conversations became.
    pub windows_made: u64,
    /// Examples left out by the `max_examples` sample.
    pub sampled_out: u64,
    pub train_examples: u64,
    pub validation_examples: u64,
    pub encoding: Encoding,
    pub max_tokens_per_example: usize,
    /// Per training example, by the checker's convention.
    pub train_tokens: Distribution,
    pub validation_tokens: Distribution,
    pub epochs: u32,
    pub billing_tokens: u64,
    pub estimated_charged_tokens: u64,
    /// USD per 1M training tokens used for the estimate (None: unknown
    /// model, cost 0). An estimate; see the provider profile's price table.
    pub price_usd_per_1m_tokens: Option<f64>,
    pub estimated_cost_usd: f64,
    /// How many shards read the exports: 1 for a run prepared in one
    /// invocation (0 in a record written before shards existed).
    #[serde(default)]
    pub shards: u64,
}

/// The files written, with their stats.
#[derive(Debug, Clone)]
pub struct Output {
    pub train: Written,
    pub validation: Option<Written>,
    pub manifest: Written,
    pub stats: DatasetStats,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'a str,
    settings: &'a PrepareSettings,
    source: Source<'a>,
    files: BTreeMap<&'static str, FileEntry>,
    stats: &'a DatasetStats,
}

#[derive(Serialize)]
struct Source<'a> {
    tenant: &'a str,
    start_date: NaiveDate,
    end_date: NaiveDate,
    files: u64,
}

#[derive(Serialize)]
struct FileEntry {
    name: &'static str,
    sha256: String,
    bytes: u64,
    examples: u64,
}

/// The name of the default format (OpenAI chat), kept for callers that
/// compare manifests with it.
pub const FORMAT: &str = DatasetFormat::OpenAiChat.as_str();

/// A stable 64-bit hash of the seed, a purpose and a key (sha256-based,
/// so the split and the sample never change with a library's hasher).
pub(crate) fn seeded_hash(seed: u64, purpose: &str, key: &str, index: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update(index.to_le_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// Whether a conversation trains (else validates): decided by its id
/// alone, so all its windows land on the same side.
pub fn is_train(seed: u64, conversation_id: &str, train_split: f64) -> bool {
    let h = seeded_hash(seed, "split", conversation_id, 0);
    (h as f64 / (u64::MAX as f64 + 1.0)) < train_split
}

/// Runs the preparation from `source` into `sink` in one pass over every
/// file (the CLI, and the pipeline's small runs).
pub async fn prepare(
    source: &ExportSource,
    sink: &DatasetSink,
    settings: &PrepareSettings,
) -> Result<Output, PrepareError> {
    prepare_within(source, sink, settings, ReadLimits::default(), None).await
}

/// [`prepare`], stopping with [`PrepareError::OutOfTime`] when `deadline`
/// passes before every file is read.
///
/// Pass 1 ([`read_exports`]) writes every accepted example to a spill file
/// per side in /tmp, keeping in memory only its index (a few bytes per
/// example, never their text); the merge decides from the index; pass 2
/// copies the kept byte ranges of the spill files into the dataset.
pub async fn prepare_within(
    source: &ExportSource,
    sink: &DatasetSink,
    settings: &PrepareSettings,
    read: ReadLimits,
    deadline: Option<std::time::Instant>,
) -> Result<Output, PrepareError> {
    let book = Rulebook::new(settings)?.with_read_limits(read);
    let files = source
        .files(
            &settings.tenant,
            settings.dates.start(),
            settings.dates.end(),
        )
        .await?;
    let spills = [TempFile::new(), TempFile::new()];
    let [train_spill, validation_spill] = [&spills[0], &spills[1]].map(spill_writer);
    let shard = read_exports(
        &book,
        source,
        &files,
        train_spill?,
        validation_spill?,
        deadline,
    )
    .await?;
    let merged = merge(&book, settings, std::slice::from_ref(&shard))?;

    // Pass 2: the kept ranges of the spill files into the dataset's files.
    write_dataset(sink, settings, merged, &[&spills]).await
}

/// Pass 2 and the manifest: the kept spans of each shard's spill files
/// (`spills[shard] = [train, validation]`) into the dataset.
async fn write_dataset(
    sink: &DatasetSink,
    settings: &PrepareSettings,
    merged: Merged,
    spills: &[&[TempFile; 2]],
) -> Result<Output, PrepareError> {
    let paths =
        |side: usize| -> Vec<&std::path::Path> { spills.iter().map(|s| s[side].path()).collect() };
    let train = copy_spans(&paths(0), &merged.train, sink, DatasetObject::Train).await?;
    let validation = if merged.stats.validation_examples > 0 {
        Some(
            copy_spans(
                &paths(1),
                &merged.validation,
                sink,
                DatasetObject::Validation,
            )
            .await?,
        )
    } else {
        None
    };
    let manifest =
        write_manifest(sink, settings, &merged.stats, &train, validation.as_ref()).await?;
    let stats = merged.stats;
    tracing::info!(
        conversations = stats.conversations_read,
        malformed = stats.malformed_lines,
        train = stats.train_examples,
        validation = stats.validation_examples,
        "dataset prepared"
    );
    Ok(Output {
        train,
        validation,
        manifest,
        stats,
    })
}

/// [`prepare`] of a local folder on `threads` threads (the CLI), each
/// file read within `read`: the
/// files are split into contiguous shards as a large run's are, each shard
/// read on a thread of its own into its own spill files, then merged — the
/// dataset one thread makes, in about 1/threads of the time.
pub fn prepare_local_on_threads(
    input: &std::path::Path,
    output: &std::path::Path,
    settings: &PrepareSettings,
    read: ReadLimits,
    threads: usize,
) -> Result<Output, PrepareError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PrepareError::io("a tokio runtime", e))
    };
    let source = ExportSource::Local(input.to_owned());
    let files = runtime()?.block_on(source.files(
        &settings.tenant,
        settings.dates.start(),
        settings.dates.end(),
    ))?;
    let sized: Vec<crate::blob::ObjectInfo> = files
        .into_iter()
        .map(|key| crate::blob::ObjectInfo {
            size: std::fs::metadata(&key).map_or(0, |m| m.len()),
            key,
        })
        .collect();
    let total: u64 = sized.iter().map(super::fanout::effective_size).sum();
    // One shard on one thread; else four a thread (files allowing):
    // threads take the next shard when done, so one large file does not
    // leave the others idle.
    let per_shard = match threads {
        0 | 1 => total.max(1),
        n => total.div_ceil(4 * n as u64).max(1),
    };
    let shards = super::fanout::split(&sized, per_shard);
    let spills: Vec<[TempFile; 2]> = shards
        .iter()
        .map(|_| [TempFile::new(), TempFile::new()])
        .collect();
    let results: Mutex<Vec<Option<Result<ShardResult, PrepareError>>>> =
        Mutex::new(shards.iter().map(|_| None).collect());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, shards.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(shard) = shards.get(i) else {
                        break;
                    };
                    let result = runtime().and_then(|rt| {
                        rt.block_on(async {
                            let book = Rulebook::new(settings)?.with_read_limits(read);
                            let [train, validation] =
                                [&spills[i][0], &spills[i][1]].map(spill_writer);
                            read_exports(&book, &source, &shard.files, train?, validation?, None)
                                .await
                        })
                    });
                    if let Ok(mut results) = results.lock() {
                        results[i] = Some(result);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut done = Vec::with_capacity(results.len());
    for (i, result) in results.into_iter().enumerate() {
        done.push(result.ok_or_else(|| {
            PrepareError::ShardIndex(format!("shard {i} was not read (a thread panicked)"))
        })??);
    }
    let book = Rulebook::new(settings)?;
    let merged = merge(&book, settings, &done)?;
    let sink = DatasetSink::Local(output.to_owned());
    let spills: Vec<&[TempFile; 2]> = spills.iter().collect();
    runtime()?.block_on(write_dataset(&sink, settings, merged, &spills))
}

fn spill_writer(spill: &TempFile) -> Result<ExampleOut, PrepareError> {
    let path = spill.path().to_string_lossy().into_owned();
    let file = std::fs::File::create(spill.path()).map_err(|e| PrepareError::io(&path, e))?;
    Ok(ExampleOut::File(
        std::io::BufWriter::with_capacity(1024 * 1024, file),
        path,
    ))
}

/// Copies `spans` of the shards' spill files (`spills[span.shard]`), in
/// order, into the dataset's `object`.
async fn copy_spans(
    spills: &[&std::path::Path],
    spans: &[Span],
    sink: &DatasetSink,
    object: DatasetObject,
) -> Result<Written, PrepareError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut files = Vec::with_capacity(spills.len());
    for spill in spills {
        let path = spill.to_string_lossy().into_owned();
        let file = std::fs::File::open(spill).map_err(|e| PrepareError::io(&path, e))?;
        files.push((file, path));
    }
    let mut out = sink.create(object).await?;
    let mut chunk = vec![0u8; 1024 * 1024];
    for span in spans {
        let (file, path) = files.get_mut(span.shard).ok_or_else(|| {
            PrepareError::ShardIndex(format!(
                "a span names shard {} of {}",
                span.shard,
                spills.len()
            ))
        })?;
        let path = &*path;
        file.seek(SeekFrom::Start(span.start))
            .map_err(|e| PrepareError::io(path, e))?;
        let mut left = span.len();
        while left > 0 {
            let n = (left as usize).min(chunk.len());
            file.read_exact(&mut chunk[..n])
                .map_err(|e| PrepareError::io(path, e))?;
            out.write(&chunk[..n]).await?;
            left -= n as u64;
        }
    }
    out.finish().await
}

/// Writes `manifest.json`: the settings, the source, the files and the stats.
pub(crate) async fn write_manifest(
    sink: &DatasetSink,
    settings: &PrepareSettings,
    stats: &DatasetStats,
    train: &Written,
    validation: Option<&Written>,
) -> Result<Written, PrepareError> {
    let mut entries = BTreeMap::new();
    entries.insert(
        "train",
        FileEntry {
            name: DatasetObject::Train.file_name(),
            sha256: train.sha256.clone(),
            bytes: train.bytes,
            examples: stats.train_examples,
        },
    );
    if let Some(v) = validation {
        entries.insert(
            "validation",
            FileEntry {
                name: DatasetObject::Validation.file_name(),
                sha256: v.sha256.clone(),
                bytes: v.bytes,
                examples: stats.validation_examples,
            },
        );
    }
    let manifest = Manifest {
        format: settings.format.as_str(),
        settings,
        source: Source {
            tenant: settings.tenant.as_str(),
            start_date: settings.dates.start(),
            end_date: settings.dates.end(),
            files: stats.files_read,
        },
        files: entries,
        stats,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(PrepareError::Manifest)?;
    let mut manifest_out = sink.create(DatasetObject::Manifest).await?;
    manifest_out.write(&manifest_bytes).await?;
    manifest_out.finish().await
}
