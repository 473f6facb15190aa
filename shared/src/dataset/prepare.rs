//! The preparation run: exports in, train/validation/manifest out.
//!
//! Pass 1 streams every export line through the rules and writes each
//! accepted example to a spill file in /tmp, keeping in memory only a
//! 16-byte digest per conversation (dedup) and 16 bytes per example
//! (sample priority, tokens, side). Pass 2 reads the spill back and writes
//! the examples the seeded sample keeps. Memory therefore grows with the
//! number of examples by a few bytes each, never with their size.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader as StdBufReader, BufWriter as StdBufWriter, Write};

use chrono::NaiveDate;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use super::check::{CheckOptions, trim_line};
use super::conversation::{Conversation, Rules, content_digest};
use super::io::{DatasetSink, ExportSource, TempFile, Written};
use super::redact::Redactions;
use super::stats::Distribution;
use super::tokens::{Encoding, TokenCounter};
use super::window::windows;
use super::{DatasetFormat, PrepareError};
use crate::blob::DatasetObject;
use crate::domain::{DateRange, Filters, TenantId, TrainSplit};
use crate::provider::profile::estimated_cost_usd;
use crate::provider::profiles;

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

/// One accepted example, as remembered between the passes.
struct Candidate {
    priority: u64,
    tokens: u32,
    train: bool,
}

/// A stable 64-bit hash of the seed, a purpose and a key (sha256-based,
/// so the split and the sample never change with a library's hasher).
fn seeded_hash(seed: u64, purpose: &str, key: &str, index: u64) -> u64 {
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

/// Runs the preparation from `source` into `sink`.
pub async fn prepare(
    source: &ExportSource,
    sink: &DatasetSink,
    settings: &PrepareSettings,
) -> Result<Output, PrepareError> {
    // The rules of the provider that trains on this format: its model's
    // limits, its example writer and checker, its epochs and price.
    let profile = settings
        .provider
        .map(profiles::profile)
        .or_else(|| profiles::for_format(settings.format));
    let profile = profile.ok_or_else(|| {
        PrepareError::InvalidSettings(format!(
            "no provider trains on {}",
            settings.format.as_str()
        ))
    })?;
    let limits = profile
        .dataset_limits(&settings.base_model)
        .map_err(|e| PrepareError::InvalidSettings(e.to_string()))?;
    let example_format = profile.example_format();
    let mut options = CheckOptions {
        encoding: limits.encoding,
        max_tokens_per_example: limits.max_tokens_per_example,
    };
    if let Some(max) = settings.max_tokens_per_example {
        options.max_tokens_per_example = max;
    }
    let limit = options.max_tokens_per_example as u64;
    let rules = Rules {
        tenant: settings.tenant.as_str().to_owned(),
        start: settings.dates.start(),
        end: settings.dates.end(),
        filters: settings.filters.clone(),
        system_prompt: settings
            .system_prompt
            .clone()
            .filter(|p| !p.trim().is_empty()),
    };
    let mut counter = TokenCounter::new(options.encoding)?;
    let mut stats = DatasetStats {
        encoding: options.encoding,
        max_tokens_per_example: options.max_tokens_per_example,
        ..DatasetStats::default()
    };
    let spill = TempFile::new();
    let spill_file = std::fs::File::create(spill.path())
        .map_err(|e| PrepareError::io(&spill.path().to_string_lossy(), e))?;
    let mut spill_out = StdBufWriter::with_capacity(1024 * 1024, spill_file);
    let mut seen: FxHashSet<u128> = FxHashSet::default();
    let mut candidates: Vec<Candidate> = Vec::new();

    // Pass 1: every export line through the rules, into the spill file.
    let files = source
        .files(
            &settings.tenant,
            settings.dates.start(),
            settings.dates.end(),
        )
        .await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut example_line = Vec::with_capacity(64 * 1024);
    for key in &files {
        stats.files_read += 1;
        let mut reader = source.open(key).await?;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|e| PrepareError::io(key, e))?;
            if n == 0 {
                break;
            }
            // A BOM can start any line when exports are concatenated.
            let line = trim_line(&buf, true);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let conv: Conversation = match serde_json::from_slice(line) {
                Ok(c) => c,
                Err(_) => {
                    stats.malformed_lines += 1;
                    continue;
                }
            };
            stats.conversations_read += 1;
            let id = conv.id.clone();
            let messages = match rules.apply(conv, &mut stats.redactions) {
                Ok(m) => m,
                Err(reason) => {
                    *stats.dropped.entry(reason.as_str().to_owned()).or_default() += 1;
                    continue;
                }
            };
            if !seen.insert(content_digest(&messages)) {
                stats.duplicates_removed += 1;
                continue;
            }
            let Some(parts) = windows(messages, &mut counter, limit) else {
                *stats
                    .dropped
                    .entry("turn_over_token_limit".to_owned())
                    .or_default() += 1;
                continue;
            };
            if parts.len() > 1 {
                stats.examples_over_limit += 1;
                stats.windows_made += parts.len() as u64;
            }
            let train = is_train(settings.seed, &id, settings.train_split.get());
            // Check every window before keeping any, so a conversation
            // is used whole or not at all.
            let mut lines = Vec::with_capacity(parts.len());
            let mut failed = None;
            for part in &parts {
                example_line.clear();
                let checked = example_format.write_checked(
                    &mut example_line,
                    part,
                    &mut counter,
                    limit as usize,
                );
                match checked {
                    Ok(tokens) => lines.push((example_line.clone(), tokens)),
                    Err(category) => {
                        failed = Some(category);
                        break;
                    }
                }
            }
            if let Some(category) = failed {
                *stats
                    .dropped
                    .entry(format!("format:{category}"))
                    .or_default() += 1;
                continue;
            }
            for (index, (text, tokens)) in lines.into_iter().enumerate() {
                spill_out
                    .write_all(&text)
                    .and_then(|_| spill_out.write_all(b"\n"))
                    .map_err(|e| PrepareError::io(&spill.path().to_string_lossy(), e))?;
                candidates.push(Candidate {
                    priority: seeded_hash(settings.seed, "sample", &id, index as u64),
                    tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
                    train,
                });
            }
        }
    }
    drop(seen);
    spill_out
        .flush()
        .map_err(|e| PrepareError::io(&spill.path().to_string_lossy(), e))?;
    drop(spill_out);

    // The seeded sample: the max_examples lowest priorities.
    let mut keep = sample(&candidates, settings.max_examples as usize);
    if let Some(max) = limits.max_validation_records {
        cap_validation(&candidates, &mut keep, max);
    }
    stats.sampled_out = (candidates.len() - keep.iter().filter(|&&k| k).count()) as u64;
    let mut train_tokens = Vec::new();
    let mut validation_tokens = Vec::new();
    for (c, _) in candidates.iter().zip(&keep).filter(|(_, k)| **k) {
        if c.train {
            train_tokens.push(c.tokens);
        } else {
            validation_tokens.push(c.tokens);
        }
    }
    stats.train_examples = train_tokens.len() as u64;
    stats.validation_examples = validation_tokens.len() as u64;
    if stats.train_examples < u64::from(settings.min_examples) {
        // Counts only: enough to see which rule removed the data.
        tracing::warn!(
            stats = %serde_json::to_string(&stats).unwrap_or_default(),
            "too few training examples"
        );
        return Err(PrepareError::TooFewExamples {
            found: stats.train_examples,
            required: settings.min_examples,
        });
    }
    stats.train_tokens = Distribution::of(&train_tokens);
    stats.validation_tokens = Distribution::of(&validation_tokens);
    stats.epochs = settings
        .n_epochs
        .unwrap_or_else(|| profile.default_epochs(&settings.base_model, stats.train_examples));
    stats.billing_tokens = train_tokens.iter().map(|&t| u64::from(t).min(limit)).sum();
    stats.estimated_charged_tokens = u64::from(stats.epochs) * stats.billing_tokens;
    stats.price_usd_per_1m_tokens = profile.training_price_per_million(&settings.base_model);
    stats.estimated_cost_usd = estimated_cost_usd(
        stats.price_usd_per_1m_tokens,
        stats.estimated_charged_tokens,
    );

    // Pass 2: the kept examples from the spill into their files.
    let mut train_out = sink.create(DatasetObject::Train).await?;
    let mut validation_out = if stats.validation_examples > 0 {
        Some(sink.create(DatasetObject::Validation).await?)
    } else {
        None
    };
    let spill_in = std::fs::File::open(spill.path())
        .map_err(|e| PrepareError::io(&spill.path().to_string_lossy(), e))?;
    let mut spill_in = StdBufReader::with_capacity(1024 * 1024, spill_in);
    let mut line = Vec::with_capacity(64 * 1024);
    let mut chunk: Vec<u8> = Vec::with_capacity(1024 * 1024);
    let mut chunk_validation: Vec<u8> = Vec::with_capacity(1024 * 1024);
    for (c, kept) in candidates.iter().zip(&keep) {
        line.clear();
        spill_in
            .read_until(b'\n', &mut line)
            .map_err(|e| PrepareError::io(&spill.path().to_string_lossy(), e))?;
        if !kept {
            continue;
        }
        let target = if c.train {
            &mut chunk
        } else {
            &mut chunk_validation
        };
        target.extend_from_slice(&line);
        if chunk.len() >= 1024 * 1024 {
            train_out.write(&chunk).await?;
            chunk.clear();
        }
        if chunk_validation.len() >= 1024 * 1024 {
            if let Some(v) = validation_out.as_mut() {
                v.write(&chunk_validation).await?;
            }
            chunk_validation.clear();
        }
    }
    train_out.write(&chunk).await?;
    let train = train_out.finish().await?;
    let validation = match validation_out {
        Some(mut v) => {
            v.write(&chunk_validation).await?;
            Some(v.finish().await?)
        }
        None => None,
    };

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
    if let Some(v) = &validation {
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
        stats: &stats,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(PrepareError::Manifest)?;
    let mut manifest_out = sink.create(DatasetObject::Manifest).await?;
    manifest_out.write(&manifest_bytes).await?;
    let manifest = manifest_out.finish().await?;
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

/// Some providers (Bedrock) take a limited number of validation records: keep the
/// `max` kept validation examples of lowest priority (the same seeded
/// order as the sample), leave the rest out.
fn cap_validation(candidates: &[Candidate], keep: &mut [bool], max: u64) {
    let mut validation: Vec<(u64, usize)> = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| !c.train && keep[*i])
        .map(|(i, c)| (c.priority, i))
        .collect();
    if validation.len() as u64 <= max {
        return;
    }
    validation.sort_unstable();
    for &(_, i) in &validation[max as usize..] {
        keep[i] = false;
    }
}

/// Which candidates the seeded sample keeps: all when there are at most
/// `max` of them, else the `max` lowest (priority, position) pairs.
fn sample(candidates: &[Candidate], max: usize) -> Vec<bool> {
    if candidates.len() <= max {
        return vec![true; candidates.len()];
    }
    let mut order: Vec<(u64, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.priority, i))
        .collect();
    order.select_nth_unstable(max);
    let mut keep = vec![false; candidates.len()];
    for &(_, i) in &order[..max] {
        keep[i] = true;
    }
    keep
}
