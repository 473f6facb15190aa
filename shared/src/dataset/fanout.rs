//! A run's preparation at any size: small runs in one invocation, large
//! ones fanned out over Lambda.
//!
//! The export objects are listed with their sizes before a byte is read.
//! A run over the hard limit fails at once with the figures; a small run
//! (and one that has not tried before) is prepared in this invocation
//! ([`super::prepare`]); a large one — or a small one whose one attempt
//! did not finish — is split into shards of contiguous export files. Each
//! shard's `task.json` is written to the bucket, which notifies the shard
//! queue; the shard worker (the `prepare-shard` function, one invocation
//! per shard, retried by SQS, dead-lettered after its attempts) reads its
//! files through every per-conversation rule and writes its examples
//! straight to S3 with its index. When every shard is done, the next tick
//! merges: dedup, the sample and the split from the indexes, and the
//! dataset's files assembled inside S3 from byte ranges of the shards'
//! files ([`Blobs::compose`]). Everything is keyed by dataset and shard, so
//! a retried shard or a repeated hand-out overwrites, never doubles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::io::{DatasetSink, ExportSource, ReadLimits, Written};
use super::merge::{Merger, Span, merge_memory};
use super::prepare::{PrepareSettings, prepare_within, write_manifest};
use super::shard::{ExampleOut, Rulebook, ShardCounts, ShardIndex, ShardResult, read_exports};
use super::{PrepareError, PreparedDataset};
use crate::blob::keys::{ShardObject, shard_key, shards_prefix, shards_record_key};
use crate::blob::{BlobError, Blobs, DatasetObject, ObjectInfo, Piece, dataset_key};
use crate::domain::{DatasetId, TenantId};

/// A gzipped export is counted as this many times its size: the spill of
/// the single path and a shard's work grow with the decompressed bytes.
/// (Conversation JSON compresses 5–10×; an estimate that errs towards
/// sharding.)
pub const GZIP_EXPANSION: u64 = 6;

const MIB: f64 = 1024.0 * 1024.0;

/// The merge's attempts (each an invocation, a killed one included)
/// before the run fails.
pub const MERGE_ATTEMPTS: u32 = 3;

/// Where the fan-out's thresholds come from (`Config`).
#[derive(Debug, Clone, PartialEq)]
pub struct FanOutLimits {
    /// Runs whose exports are at most this many (effective) bytes are
    /// prepared in one invocation.
    pub single_max_bytes: u64,
    /// About how many (effective) bytes one shard reads.
    pub shard_bytes: u64,
    /// The most (effective) bytes one run may prepare.
    pub max_export_bytes: u64,
    /// How long shards may take, all told, before the run fails.
    pub stall_after: Duration,
    /// What the merge may hold in memory (its estimate is checked before
    /// it reads an index). It is also what every preparation running at
    /// once in one process shares ([`PrepareBudget`]).
    pub merge_memory_bytes: u64,
    /// How far one export file may be read (each shard's task carries
    /// them, so every shard of a run reads by the same limits).
    pub read: ReadLimits,
    /// The function's `/tmp`, which the single path's spills of every run
    /// prepared at once in one process share ([`PrepareBudget`]).
    pub tmp_bytes: u64,
}

impl Default for FanOutLimits {
    fn default() -> Self {
        Self {
            single_max_bytes: 256 * 1024 * 1024,
            shard_bytes: 256 * 1024 * 1024,
            max_export_bytes: 64 * 1024 * 1024 * 1024,
            stall_after: Duration::from_secs(60 * 60),
            merge_memory_bytes: 768 * 1024 * 1024,
            read: ReadLimits::default(),
            tmp_bytes: 512 * 1024 * 1024,
        }
    }
}

/// The single path's spill is reserved at this many times the run's
/// (effective) export bytes: what `PREPARE_SINGLE_MAX_MB`'s default
/// always assumed (256 MB of exports in 512 MB of `/tmp`, half to spare
/// for windows and the manifest).
pub const SPILL_RESERVE_FACTOR: u64 = 2;

/// The single path's memory (its in-memory index) is reserved as a merge
/// of one conversation and one example per this many export bytes: a
/// conversation line is rarely shorter, so the estimate errs high.
pub const SINGLE_PATH_BYTES_PER_CONVERSATION: u64 = 512;

/// Reservations are counted in KiB: a `u32` of them covers any Lambda.
const BUDGET_UNIT: u64 = 1024;

/// What the runs one process prepares at once share: the merge memory
/// and `/tmp`. The prepare tick advances up to `MONITOR_CONCURRENCY` runs
/// of any tenants concurrently; each run's limit alone would let two
/// large ones together exhaust the function and kill every run in flight.
/// So a merge or a single-path preparation first reserves its estimate
/// here, without waiting: a merge that finds the memory taken waits for
/// the next tick (its attempt is not counted), a small run that finds
/// `/tmp` or the memory taken is fanned out instead (the shards use
/// neither). No run's size can then fail or kill another.
#[derive(Clone)]
pub struct PrepareBudget {
    memory: Arc<Semaphore>,
    tmp: Arc<Semaphore>,
}

impl std::fmt::Debug for PrepareBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepareBudget")
            .field("memory_kib_free", &self.memory.available_permits())
            .field("tmp_kib_free", &self.tmp.available_permits())
            .finish()
    }
}

/// What one preparation holds of the [`PrepareBudget`] while it runs;
/// given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl PrepareBudget {
    /// The budget of one process whose preparations may hold `limits`'
    /// merge memory and `/tmp` between them.
    pub fn new(limits: &FanOutLimits) -> Self {
        let units = |bytes: u64| usize::try_from(bytes / BUDGET_UNIT).unwrap_or(usize::MAX >> 4);
        Self {
            memory: Arc::new(Semaphore::new(
                units(limits.merge_memory_bytes).min(Semaphore::MAX_PERMITS),
            )),
            tmp: Arc::new(Semaphore::new(
                units(limits.tmp_bytes).min(Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// Reserves `memory` and `tmp` bytes now, or nothing when either is
    /// not free (or never could be).
    pub fn try_reserve(&self, memory: u64, tmp: u64) -> Option<Reservation> {
        let units = |bytes: u64| u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1)).ok();
        let mut permits = Vec::with_capacity(2);
        permits.push(
            self.memory
                .clone()
                .try_acquire_many_owned(units(memory)?)
                .ok()?,
        );
        if tmp > 0 {
            permits.push(self.tmp.clone().try_acquire_many_owned(units(tmp)?).ok()?);
        }
        Some(Reservation { _permits: permits })
    }
}

/// The shards of a fanned-out run, fixed once (`plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub shards: Vec<PlannedShard>,
    pub files: u64,
    pub export_bytes: u64,
    pub effective_bytes: u64,
    /// Why the run was fanned out.
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedShard {
    pub files: Vec<String>,
    pub effective_bytes: u64,
}

/// What a shard worker reads: its files and the run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardTask {
    pub tenant: TenantId,
    pub dataset: DatasetId,
    pub shard: u32,
    pub shards: u32,
    pub files: Vec<String>,
    pub effective_bytes: u64,
    pub settings: PrepareSettings,
    /// The run's read limits (a task written before they existed reads
    /// by the defaults).
    #[serde(default)]
    pub read: ReadLimits,
}

/// A shard's last error, once its attempts are spent (`failed.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFailure {
    pub code: String,
    pub message: String,
    pub attempts: u32,
    pub at: DateTime<Utc>,
}

/// Invocations started on each path (`attempts.json`): written before the
/// work, so an invocation killed at its timeout still counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Attempts {
    single: u32,
    merge: u32,
}

/// The run's export objects and their size, listed before reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Exports {
    pub files: Vec<ObjectInfo>,
    pub bytes: u64,
    pub effective_bytes: u64,
}

/// An object's bytes as the preparation will see them.
pub fn effective_size(object: &ObjectInfo) -> u64 {
    if object.is_gzip() {
        object.size.saturating_mul(GZIP_EXPANSION)
    } else {
        object.size
    }
}

/// Contiguous runs of `files` (in order) of about `shard_bytes` each; a
/// file larger than that is a shard alone (a file is never split).
pub fn split(files: &[ObjectInfo], shard_bytes: u64) -> Vec<PlannedShard> {
    let mut shards: Vec<PlannedShard> = Vec::new();
    let mut current = PlannedShard {
        files: Vec::new(),
        effective_bytes: 0,
    };
    for file in files {
        let size = effective_size(file);
        if !current.files.is_empty() && current.effective_bytes + size > shard_bytes {
            shards.push(std::mem::replace(
                &mut current,
                PlannedShard {
                    files: Vec::new(),
                    effective_bytes: 0,
                },
            ));
        }
        current.files.push(file.key.clone());
        current.effective_bytes += size;
    }
    if !current.files.is_empty() || shards.is_empty() {
        shards.push(current);
    }
    shards
}

/// Where a run's preparation stands after this invocation's step.
#[derive(Debug)]
pub enum Advance {
    /// The dataset is written.
    Prepared(Box<PreparedDataset>),
    /// Shards are out; `phase` says how far they are. `handed_out` is set
    /// on the tick that handed them out.
    Waiting {
        phase: String,
        handed_out: Option<u32>,
    },
}

/// One run's preparation, as the prepare function's step drives it: its
/// dataset (the keys) and settings (the tenant among them).
pub struct FanOut<'a> {
    blobs: &'a Blobs,
    limits: &'a FanOutLimits,
    dataset: &'a DatasetId,
    settings: &'a PrepareSettings,
    /// Shared with the other runs this process prepares at once; `None`
    /// (tools, tests of one run) reserves nothing.
    budget: Option<&'a PrepareBudget>,
}

/// Time kept back from the invocation's deadline on the single path, for
/// pass 2 and the manifest after pass 1: a quarter of what is left, at
/// most a minute (240 s of reading in the prepare function's 300).
const SINGLE_MARGIN: Duration = Duration::from_secs(60);
/// The least time the merge starts with (it assembles in S3 and reads the
/// result once for its checksum); with less, it waits for the next tick.
const MERGE_MARGIN: Duration = Duration::from_secs(30);

impl<'a> FanOut<'a> {
    pub fn new(
        blobs: &'a Blobs,
        limits: &'a FanOutLimits,
        dataset: &'a DatasetId,
        settings: &'a PrepareSettings,
    ) -> Self {
        Self {
            blobs,
            limits,
            dataset,
            settings,
            budget: None,
        }
    }

    /// The same, reserving its merge memory and `/tmp` in `budget`, which
    /// every run this process prepares at once shares.
    pub fn sharing(mut self, budget: &'a PrepareBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Reserves `memory` and `tmp` in the shared budget: `None` when they
    /// are taken, `Some(None)` when there is no budget to reserve in.
    fn reserve(&self, memory: u64, tmp: u64) -> Option<Option<Reservation>> {
        match self.budget {
            None => Some(None),
            Some(budget) => budget.try_reserve(memory, tmp).map(Some),
        }
    }

    fn tenant(&self) -> &'a TenantId {
        &self.settings.tenant
    }

    /// Takes the run's preparation one step: prepare, hand out, wait, or
    /// merge. `deadline` is the invocation's end.
    pub async fn advance(&self, deadline: Option<DateTime<Utc>>) -> Result<Advance, PrepareError> {
        let plan: Option<Plan> = self.get_optional(&self.record_key("plan.json")).await?;
        let Some(plan) = plan else {
            return self.start(deadline).await;
        };
        let shards = plan.shards.len() as u32;
        let progress = self.progress(&plan).await?;
        if let Some((&shard, failure)) = progress.failed.iter().next() {
            return Err(PrepareError::ShardFailed {
                shard,
                shards,
                attempts: failure.attempts,
                code: failure.code.clone(),
                message: failure.message.clone(),
            });
        }
        if (progress.done.len() as u32) < shards {
            // A task a crash kept from being written is written now.
            for shard in 0..shards {
                if !progress.tasked.contains(&shard) {
                    self.hand_out_one(&plan, shard).await?;
                }
            }
            let waited = Utc::now() - plan.created_at;
            if waited.to_std().unwrap_or_default() > self.limits.stall_after {
                let first = (0..shards)
                    .find(|s| !progress.done.contains(s))
                    .unwrap_or(0);
                return Err(PrepareError::ShardsStalled {
                    missing: shards - progress.done.len() as u32,
                    shards,
                    first,
                    minutes: waited.num_minutes(),
                });
            }
            return Ok(Advance::Waiting {
                phase: format!(
                    "preparing: {} of {shards} shards done ({} bytes of exports in {} files)",
                    progress.done.len(),
                    plan.export_bytes,
                    plan.files
                ),
                handed_out: None,
            });
        }
        if let Some(deadline) = deadline
            && remaining(deadline) < MERGE_MARGIN
        {
            // Not a failure: the next invocation starts with its whole time.
            return Ok(Advance::Waiting {
                phase: format!("preparing: all {shards} shards done, merging next"),
                handed_out: None,
            });
        }
        let counts = self.shard_counts(shards).await?;
        let needed = merge_memory(
            counts.iter().map(|c| c.indexed_conversations).sum(),
            counts.iter().map(|c| c.indexed_examples).sum(),
        );
        // Over the whole budget, the run is too large by itself (the merge
        // says so with its figures); within it, the merge waits until the
        // runs merging now have given back what it needs.
        let fits = needed <= self.limits.merge_memory_bytes;
        let _reserved = match fits.then(|| self.reserve(needed, 0)) {
            None => None,
            Some(Some(reserved)) => reserved,
            Some(None) => {
                tracing::info!(
                    needed_mib = needed as f64 / MIB,
                    "the merge waits for memory other runs' preparations hold"
                );
                return Ok(Advance::Waiting {
                    phase: format!(
                        "preparing: all {shards} shards done, merging when {:.1} MiB are free (other runs' preparations hold them)",
                        needed as f64 / MIB
                    ),
                    handed_out: None,
                });
            }
        };
        let mut attempts = self.attempts().await?;
        attempts.merge += 1;
        if attempts.merge > MERGE_ATTEMPTS {
            return Err(PrepareError::MergeTooLarge {
                shards,
                bytes: plan.export_bytes,
                attempts: MERGE_ATTEMPTS,
            });
        }
        self.put_attempts(&attempts).await?;
        match self.merge(&plan, counts).await {
            Ok(prepared) => Ok(Advance::Prepared(Box::new(prepared))),
            Err(e) => {
                // Only a merge cut short (killed) counts against the run's
                // size; an error says what it is itself.
                attempts.merge -= 1;
                if let Err(put) = self.put_attempts(&attempts).await {
                    tracing::warn!(error = %crate::telemetry::chain(&put), "could not reset the merge attempt");
                }
                Err(e)
            }
        }
    }

    /// No plan yet: list and size the exports, then prepare in this
    /// invocation or hand the shards out.
    async fn start(&self, deadline: Option<DateTime<Utc>>) -> Result<Advance, PrepareError> {
        let exports = self.exports().await?;
        if exports.effective_bytes > self.limits.max_export_bytes {
            return Err(PrepareError::TooLarge {
                bytes: exports.bytes,
                effective: exports.effective_bytes,
                files: exports.files.len() as u64,
                limit: self.limits.max_export_bytes,
            });
        }
        let mut attempts = self.attempts().await?;
        let reason = if exports.effective_bytes > self.limits.single_max_bytes {
            format!(
                "{} bytes of exports (estimated decompressed) are over the {}-byte threshold of \
                 one invocation",
                exports.effective_bytes, self.limits.single_max_bytes
            )
        } else if attempts.single > 0 {
            "an earlier attempt to prepare the run in one invocation did not finish".to_owned()
        } else if let Some(_reserved) = self.reserve(
            merge_memory(
                exports.effective_bytes / SINGLE_PATH_BYTES_PER_CONVERSATION,
                exports.effective_bytes / SINGLE_PATH_BYTES_PER_CONVERSATION,
            ),
            exports.effective_bytes.saturating_mul(SPILL_RESERVE_FACTOR),
        ) {
            attempts.single += 1;
            self.put_attempts(&attempts).await?;
            let reading_until =
                deadline.map(|d| instant_before(d, SINGLE_MARGIN.min(remaining(d) / 4)));
            match self.prepare_here(reading_until).await {
                Ok(prepared) => return Ok(Advance::Prepared(Box::new(prepared))),
                Err(e @ PrepareError::OutOfTime { .. }) => {
                    tracing::warn!(error = %e, "one invocation was not enough; fanning out");
                    format!("one invocation was not enough ({e})")
                }
                Err(e) => {
                    // Not a matter of size: the next tick may try again here.
                    attempts.single -= 1;
                    if let Err(put) = self.put_attempts(&attempts).await {
                        tracing::warn!(error = %crate::telemetry::chain(&put), "could not reset the single-path attempt");
                    }
                    return Err(e);
                }
            }
        } else {
            // The shards use neither this process's memory nor its /tmp.
            "the /tmp or memory this process's preparations share is taken by other runs".to_owned()
        };
        let plan = Plan {
            shards: split(&exports.files, self.limits.shard_bytes),
            files: exports.files.len() as u64,
            export_bytes: exports.bytes,
            effective_bytes: exports.effective_bytes,
            reason,
            created_at: Utc::now(),
        };
        put_json(self.blobs, &self.record_key("plan.json"), &plan).await?;
        for shard in 0..plan.shards.len() as u32 {
            self.hand_out_one(&plan, shard).await?;
        }
        let shards = plan.shards.len() as u32;
        tracing::info!(shards, bytes = plan.export_bytes, files = plan.files, reason = %plan.reason, "preparation fanned out");
        Ok(Advance::Waiting {
            phase: format!(
                "preparing: 0 of {shards} shards done ({} bytes of exports in {} files)",
                plan.export_bytes, plan.files
            ),
            handed_out: Some(shards),
        })
    }

    /// The small path: the whole run in this invocation.
    async fn prepare_here(
        &self,
        deadline: Option<Instant>,
    ) -> Result<PreparedDataset, PrepareError> {
        let source = ExportSource::S3(self.blobs.clone());
        let sink = self.sink();
        let out = prepare_within(&source, &sink, self.settings, self.limits.read, deadline).await?;
        Ok(self.prepared(out.train, out.validation, out.stats))
    }

    async fn exports(&self) -> Result<Exports, PrepareError> {
        let files = self
            .blobs
            .list_conversation_files(
                self.tenant(),
                self.settings.dates.start(),
                self.settings.dates.end(),
            )
            .await?;
        Ok(Exports {
            bytes: files.iter().map(|f| f.size).sum(),
            effective_bytes: files.iter().map(effective_size).sum(),
            files,
        })
    }

    async fn hand_out_one(&self, plan: &Plan, shard: u32) -> Result<(), PrepareError> {
        let planned = plan
            .shards
            .get(shard as usize)
            .ok_or_else(|| PrepareError::ShardIndex(format!("shard {shard} is not in the plan")))?;
        let task = ShardTask {
            tenant: self.tenant().clone(),
            dataset: self.dataset.clone(),
            shard,
            shards: plan.shards.len() as u32,
            files: planned.files.clone(),
            effective_bytes: planned.effective_bytes,
            settings: self.settings.clone(),
            read: self.limits.read,
        };
        put_json(self.blobs, &self.shard_key(shard, ShardObject::Task), &task).await
    }

    /// Which shards have a task, are done, or failed: one listing.
    async fn progress(&self, plan: &Plan) -> Result<Progress, PrepareError> {
        let prefix = shards_prefix(self.tenant(), self.dataset);
        let mut progress = Progress::default();
        let mut failed = Vec::new();
        for object in self.blobs.list_prefix(&prefix).await? {
            let Some(rest) = object.key.strip_prefix(&prefix) else {
                continue;
            };
            let Some((shard, file)) = rest.split_once('/') else {
                continue;
            };
            let Ok(shard) = shard.parse::<u32>() else {
                continue;
            };
            if shard as usize >= plan.shards.len() {
                continue;
            }
            match file {
                f if f == ShardObject::Task.file_name() => {
                    progress.tasked.insert(shard);
                }
                f if f == ShardObject::Done.file_name() => {
                    progress.done.insert(shard);
                }
                f if f == ShardObject::Failed.file_name() => failed.push(shard),
                _ => {}
            }
        }
        for shard in failed {
            // A shard done after all (a late success) is not failed.
            if progress.done.contains(&shard) {
                continue;
            }
            let failure = self
                .blobs
                .get_json(&self.shard_key(shard, ShardObject::Failed))
                .await?;
            progress.failed.insert(shard, failure);
        }
        Ok(progress)
    }

    /// Every shard is done: merge from the indexes, assemble in S3.
    async fn merge(
        &self,
        plan: &Plan,
        all_counts: Vec<ShardCounts>,
    ) -> Result<PreparedDataset, PrepareError> {
        let book = Rulebook::new(self.settings)?;
        let mut merger = Merger::new(&book, self.settings);
        let shards = plan.shards.len() as u32;
        // A merge too large for this function fails with the figures
        // instead of being killed three times.
        let conversations: u64 = all_counts.iter().map(|c| c.indexed_conversations).sum();
        let examples: u64 = all_counts.iter().map(|c| c.indexed_examples).sum();
        let needed = merge_memory(conversations, examples);
        if needed > self.limits.merge_memory_bytes {
            return Err(PrepareError::MergeMemory {
                conversations,
                examples,
                needed_mib: needed as f64 / MIB,
                budget_mib: self.limits.merge_memory_bytes as f64 / MIB,
            });
        }
        for (shard, counts) in (0..shards).zip(all_counts) {
            let index_key = self.shard_key(shard, ShardObject::Index);
            let bytes = self.blobs.get_bytes(&index_key).await?;
            let index = ShardIndex::decode(&bytes).ok_or_else(|| {
                PrepareError::ShardIndex(format!("{index_key} is not a shard index"))
            })?;
            merger.add(&ShardResult { counts, index })?;
        }
        let merged = merger.finish()?;
        let train = self
            .assemble(
                DatasetObject::Train,
                ShardObject::Train,
                shards,
                &merged.train,
            )
            .await?;
        let validation = if merged.stats.validation_examples > 0 {
            Some(
                self.assemble(
                    DatasetObject::Validation,
                    ShardObject::Validation,
                    shards,
                    &merged.validation,
                )
                .await?,
            )
        } else {
            None
        };
        write_manifest(
            &self.sink(),
            self.settings,
            &merged.stats,
            &train,
            validation.as_ref(),
        )
        .await?;
        tracing::info!(
            shards,
            train = merged.stats.train_examples,
            validation = merged.stats.validation_examples,
            "dataset merged"
        );
        Ok(self.prepared(train, validation, merged.stats))
    }

    /// Every shard's counts (`done.json`): what the merge's memory
    /// estimate is made of, read before an index.
    async fn shard_counts(&self, shards: u32) -> Result<Vec<ShardCounts>, PrepareError> {
        let mut all_counts = Vec::with_capacity(shards as usize);
        for shard in 0..shards {
            let counts: ShardCounts = self
                .blobs
                .get_json(&self.shard_key(shard, ShardObject::Done))
                .await?;
            all_counts.push(counts);
        }
        Ok(all_counts)
    }

    async fn assemble(
        &self,
        object: DatasetObject,
        side: ShardObject,
        shards: u32,
        spans: &[Span],
    ) -> Result<Written, PrepareError> {
        let sources: Vec<String> = (0..shards).map(|s| self.shard_key(s, side)).collect();
        let pieces: Vec<Piece> = spans
            .iter()
            .map(|s| Piece {
                source: s.shard,
                start: s.start,
                end: s.end,
            })
            .collect();
        let key = dataset_key(self.tenant(), self.dataset, object);
        let composed = self
            .blobs
            .compose(&key, "application/x-ndjson", &sources, &pieces)
            .await?;
        Ok(Written {
            key: composed.key,
            bytes: composed.bytes,
            sha256: composed.sha256,
        })
    }

    /// Removes the fan-out's objects once the dataset is recorded (best
    /// effort: the bucket's lifecycle rule catches what this misses).
    pub async fn clean_up(&self) {
        let prefix = shards_prefix(self.tenant(), self.dataset);
        match self.blobs.list_prefix(&prefix).await {
            Ok(objects) => {
                for object in objects {
                    if let Err(e) = self.blobs.delete(&object.key).await {
                        tracing::warn!(error = %crate::telemetry::chain(&e), "could not remove a shard object");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "could not list the shard objects")
            }
        }
    }

    fn prepared(
        &self,
        train: Written,
        validation: Option<Written>,
        stats: super::DatasetStats,
    ) -> PreparedDataset {
        PreparedDataset::written(
            self.tenant(),
            self.dataset,
            self.settings.format,
            train,
            validation,
            stats,
        )
    }

    fn sink(&self) -> DatasetSink {
        DatasetSink::S3 {
            blobs: self.blobs.clone(),
            tenant: self.tenant().clone(),
            dataset: self.dataset.clone(),
        }
    }

    fn shard_key(&self, shard: u32, object: ShardObject) -> String {
        shard_key(self.tenant(), self.dataset, shard, object)
    }

    fn record_key(&self, name: &str) -> String {
        shards_record_key(self.tenant(), self.dataset, name)
    }

    async fn attempts(&self) -> Result<Attempts, PrepareError> {
        Ok(self
            .get_optional(&self.record_key("attempts.json"))
            .await?
            .unwrap_or_default())
    }

    async fn put_attempts(&self, attempts: &Attempts) -> Result<(), PrepareError> {
        put_json(self.blobs, &self.record_key("attempts.json"), attempts).await
    }

    async fn get_optional<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, PrepareError> {
        match self.blobs.get_json(key).await {
            Ok(value) => Ok(Some(value)),
            Err(BlobError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

async fn put_json<T: Serialize>(blobs: &Blobs, key: &str, value: &T) -> Result<(), PrepareError> {
    let bytes = serde_json::to_vec(value).map_err(PrepareError::Manifest)?;
    Ok(blobs.put_bytes(key, bytes, "application/json").await?)
}

#[derive(Debug, Default)]
struct Progress {
    tasked: BTreeSet<u32>,
    done: BTreeSet<u32>,
    failed: BTreeMap<u32, ShardFailure>,
}

/// The shard worker's part: read the task's files, write the shard's
/// examples, index and counts. `done.json` is written last, so a shard
/// killed half-way is simply not done; a retry overwrites every object.
pub async fn run_shard(
    blobs: &Blobs,
    task: &ShardTask,
    deadline: Option<Instant>,
) -> Result<ShardCounts, PrepareError> {
    // The task names its tenant's exports only: a task that reaches
    // elsewhere is refused, whatever wrote it.
    let own = format!("conversations/{}/", task.tenant);
    let stray = task.files.iter().find(|f| !f.starts_with(&own));
    if task.settings.tenant != task.tenant || stray.is_some() {
        return Err(PrepareError::InvalidSettings(format!(
            "shard {} of dataset {} names {} outside the tenant's exports",
            task.shard,
            task.dataset,
            stray.map_or("another tenant's settings", String::as_str)
        )));
    }
    let book = Rulebook::new(&task.settings)?.with_read_limits(task.read);
    let key = |object| shard_key(&task.tenant, &task.dataset, task.shard, object);
    let train = ExampleOut::S3(Box::new(
        blobs.writer(key(ShardObject::Train), "application/x-ndjson"),
    ));
    let validation = ExampleOut::S3(Box::new(
        blobs.writer(key(ShardObject::Validation), "application/x-ndjson"),
    ));
    let source = ExportSource::S3(blobs.clone());
    let result = read_exports(&book, &source, &task.files, train, validation, deadline).await?;
    blobs
        .put_bytes(
            &key(ShardObject::Index),
            result.index.encode(),
            "application/octet-stream",
        )
        .await?;
    put_json(blobs, &key(ShardObject::Done), &result.counts).await?;
    Ok(result.counts)
}

/// Records a shard's last error, for the run to fail with.
pub async fn record_shard_failure(
    blobs: &Blobs,
    task: &ShardTask,
    failure: &ShardFailure,
) -> Result<(), PrepareError> {
    put_json(
        blobs,
        &shard_key(&task.tenant, &task.dataset, task.shard, ShardObject::Failed),
        failure,
    )
    .await
}

/// How long until `deadline`.
pub fn remaining(deadline: DateTime<Utc>) -> Duration {
    (deadline - Utc::now()).to_std().unwrap_or_default()
}

/// The instant `margin` before `deadline`.
pub fn instant_before(deadline: DateTime<Utc>, margin: Duration) -> Instant {
    Instant::now() + remaining(deadline).saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_runs_reserve_together_never_exceeds_the_budget_and_is_given_back_when_dropped() {
        // GIVEN a process whose preparations share 10 MiB of memory and 4 MiB of /tmp
        let budget = PrepareBudget::new(&FanOutLimits {
            merge_memory_bytes: 10 * 1024 * 1024,
            tmp_bytes: 4 * 1024 * 1024,
            ..FanOutLimits::default()
        });
        // WHEN one run holds 6 MiB of memory
        let first = budget.try_reserve(6 * 1024 * 1024, 0).unwrap();
        // THEN another's 6 MiB does not fit beside it, 4 MiB does
        assert!(budget.try_reserve(6 * 1024 * 1024, 0).is_none());
        let second = budget.try_reserve(4 * 1024 * 1024, 0).unwrap();
        // AND /tmp is its own budget, refused whole when memory is not free
        assert!(budget.try_reserve(1, 1024).is_none());
        drop(second);
        assert!(budget.try_reserve(1, 5 * 1024 * 1024).is_none());
        let spill = budget.try_reserve(1, 3 * 1024 * 1024).unwrap();
        assert!(budget.try_reserve(1, 2 * 1024 * 1024).is_none());
        // AND what is dropped is free again
        drop((first, spill));
        assert!(
            budget
                .try_reserve(10 * 1024 * 1024, 4 * 1024 * 1024)
                .is_some()
        );
        // AND more than the whole budget never fits
        assert!(budget.try_reserve(11 * 1024 * 1024, 0).is_none());
    }

    fn object(key: &str, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size,
        }
    }

    #[test]
    fn files_are_split_into_contiguous_shards_of_about_the_shard_size() {
        let files = [
            object("a.jsonl", 60),
            object("b.jsonl", 60),
            object("c.jsonl", 60),
            object("d.jsonl.gz", 20),
            object("e.jsonl", 500),
            object("f.jsonl", 1),
        ];
        let shards = split(&files, 128);
        let names: Vec<Vec<&str>> = shards
            .iter()
            .map(|s| s.files.iter().map(String::as_str).collect())
            .collect();
        // A gzipped file counts six times its size; a file over the shard
        // size is a shard alone, never split.
        assert_eq!(
            names,
            vec![
                vec!["a.jsonl", "b.jsonl"],
                vec!["c.jsonl"],
                vec!["d.jsonl.gz"],
                vec!["e.jsonl"],
                vec!["f.jsonl"],
            ]
        );
        assert_eq!(shards[2].effective_bytes, 120);
    }

    #[test]
    fn a_run_with_no_exports_is_one_empty_shard() {
        let shards = split(&[], 128);
        assert_eq!(shards.len(), 1);
        assert!(shards[0].files.is_empty());
    }
}
