//! What needs the whole run, decided from the shards' indexes alone (no
//! example is read again): dedup across shards, the seeded `max_examples`
//! sample, the validation cap, `min_examples`, the stats — and which byte
//! ranges of the shards' files make `train.jsonl` and `validation.jsonl`.
//!
//! Shards are contiguous runs of the run's export files in name order, and
//! each writes its examples in the order it read them; the merge keeps that
//! order. So the dataset is the one a single pass over every file makes,
//! whatever the number of shards: the same seed and input give the same
//! bytes.

use rustc_hash::FxHashSet;

use super::PrepareError;
use super::prepare::{DatasetStats, PrepareSettings};
use super::shard::{Outcome, REFUSED_LISTED, Rulebook, ShardResult};
use super::stats::Distribution;
use crate::provider::profile::estimated_cost_usd;

/// A byte range of one shard's file (train or validation, by the list it
/// is in), end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub shard: usize,
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The merge's decision: the dataset's stats and where its bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub stats: DatasetStats,
    /// `train.jsonl`, in order: adjacent kept examples of a shard are one span.
    pub train: Vec<Span>,
    pub validation: Vec<Span>,
}

/// What a merge holds per conversation (its digest in the dedup set, with
/// the set's spare room and its growth) and per example (its candidate,
/// with the vector's): measured 2026-11-30 as 108 MiB peak for 2.09M
/// conversations and 1.26M examples (`fanout-bench 4000`), these bounds
/// are above it.
pub const MERGE_BYTES_PER_CONVERSATION: u64 = 40;
pub const MERGE_BYTES_PER_EXAMPLE: u64 = 80;

/// The memory a merge of `conversations` and `examples` needs, at most.
pub fn merge_memory(conversations: u64, examples: u64) -> u64 {
    conversations * MERGE_BYTES_PER_CONVERSATION + examples * MERGE_BYTES_PER_EXAMPLE
}

/// One example that survived dedup, as the sample needs it.
struct Candidate {
    priority: u64,
    tokens: u32,
    train: bool,
    span: Span,
}

/// Merges the shards' results, in shard order.
pub fn merge(
    book: &Rulebook,
    settings: &PrepareSettings,
    shards: &[ShardResult],
) -> Result<Merged, PrepareError> {
    let mut merger = Merger::new(book, settings);
    for shard in shards {
        merger.add(shard)?;
    }
    merger.finish()
}

/// A merge fed one shard at a time, so only one shard's index is in
/// memory beside the run's dedup set and candidates (a merge of a large
/// run holds a few dozen bytes per example, not every index at once).
pub struct Merger<'a> {
    book: &'a Rulebook,
    settings: &'a PrepareSettings,
    stats: DatasetStats,
    seen: FxHashSet<u128>,
    candidates: Vec<Candidate>,
    shards: usize,
}

impl<'a> Merger<'a> {
    pub fn new(book: &'a Rulebook, settings: &'a PrepareSettings) -> Self {
        Self {
            book,
            settings,
            stats: DatasetStats {
                encoding: book.options.encoding,
                max_tokens_per_example: book.options.max_tokens_per_example,
                ..DatasetStats::default()
            },
            seen: FxHashSet::default(),
            candidates: Vec::new(),
            shards: 0,
        }
    }

    /// Examples kept so far (before the sample).
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// Adds the next shard's results.
    pub fn add(&mut self, shard: &ShardResult) -> Result<(), PrepareError> {
        let shard_no = self.shards;
        self.shards += 1;
        let stats = &mut self.stats;
        let counts = &shard.counts;
        stats.files_read += counts.files_read;
        stats.conversations_read += counts.conversations_read;
        stats.malformed_lines += counts.malformed_lines;
        for (reason, n) in &counts.malformed_reasons {
            *stats.malformed_reasons.entry(reason.clone()).or_default() += n;
        }
        stats.files_refused_total += counts.files_refused_total;
        for refused in &counts.files_refused {
            if stats.files_refused.len() < REFUSED_LISTED {
                stats.files_refused.push(refused.clone());
            }
        }
        for (reason, n) in &counts.dropped {
            *stats.dropped.entry(reason.clone()).or_default() += n;
        }
        stats.redactions.email += counts.redactions.email;
        stats.redactions.phone += counts.redactions.phone;
        stats.redactions.card += counts.redactions.card;
        stats.duplicates_removed += counts.duplicates_removed;
        // Offsets in the shard's two files: every kept conversation's
        // examples were written, duplicates of other shards' included.
        let (mut train_at, mut validation_at) = (0u64, 0u64);
        let mut examples = shard.index.examples.iter();
        for entry in &shard.index.conversations {
            let first = self.seen.insert(entry.digest);
            if !first {
                stats.duplicates_removed += 1;
            } else if entry.windows > 1 {
                stats.examples_over_limit += 1;
                stats.windows_made += u64::from(entry.windows);
            }
            match entry.outcome {
                Outcome::OverLimit => {
                    if first {
                        *stats
                            .dropped
                            .entry("turn_over_token_limit".to_owned())
                            .or_default() += 1;
                    }
                }
                Outcome::Refused(i) => {
                    if first {
                        let category = counts
                            .categories
                            .get(usize::from(i))
                            .map_or("unknown", String::as_str);
                        *stats
                            .dropped
                            .entry(format!("format:{category}"))
                            .or_default() += 1;
                    }
                }
                Outcome::Kept => {
                    for _ in 0..entry.windows {
                        let example = examples.next().ok_or_else(|| {
                            PrepareError::ShardIndex(format!(
                                "shard {shard_no} lists fewer examples than its conversations' windows"
                            ))
                        })?;
                        let at = if entry.train {
                            &mut train_at
                        } else {
                            &mut validation_at
                        };
                        let span = Span {
                            shard: shard_no,
                            start: *at,
                            end: *at + u64::from(example.bytes),
                        };
                        *at = span.end;
                        if first {
                            self.candidates.push(Candidate {
                                priority: example.priority,
                                tokens: example.tokens,
                                train: entry.train,
                                span,
                            });
                        }
                    }
                }
            }
        }
        if examples.next().is_some()
            || train_at != counts.train_bytes
            || validation_at != counts.validation_bytes
        {
            return Err(PrepareError::ShardIndex(format!(
                "shard {shard_no}'s index does not add up to its files ({train_at} of {} train \
                 bytes, {validation_at} of {} validation bytes)",
                counts.train_bytes, counts.validation_bytes
            )));
        }
        Ok(())
    }

    /// Applies what needs every shard: the sample, the validation cap,
    /// `min_examples`, the token figures and the estimate.
    pub fn finish(self) -> Result<Merged, PrepareError> {
        let Merger {
            book,
            settings,
            mut stats,
            seen,
            candidates,
            shards,
        } = self;
        drop(seen);
        stats.shards = shards as u64;
        // Every file was refused and none gave a line: nothing to say
        // about the conversations, everything about the files.
        if stats.files_read == 0 && stats.files_refused_total > 0 && stats.conversations_read == 0 {
            return Err(PrepareError::NoReadableExports {
                total: stats.files_refused_total,
                refused: stats.files_refused,
            });
        }
        let limit = book.options.max_tokens_per_example as u64;
        // The seeded sample: the max_examples lowest priorities.
        let mut keep = sample(&candidates, settings.max_examples as usize);
        if let Some(max) = book.limits.max_validation_records {
            cap_validation(&candidates, &mut keep, max);
        }
        stats.sampled_out = (candidates.len() - keep.iter().filter(|&&k| k).count()) as u64;
        let mut train_tokens = Vec::new();
        let mut validation_tokens = Vec::new();
        let mut train = Vec::new();
        let mut validation = Vec::new();
        for (c, _) in candidates.iter().zip(&keep).filter(|(_, k)| **k) {
            if c.train {
                train_tokens.push(c.tokens);
                push_span(&mut train, c.span);
            } else {
                validation_tokens.push(c.tokens);
                push_span(&mut validation, c.span);
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
        stats.epochs = settings.n_epochs.unwrap_or_else(|| {
            book.profile
                .default_epochs(&settings.base_model, stats.train_examples)
        });
        stats.billing_tokens = train_tokens.iter().map(|&t| u64::from(t).min(limit)).sum();
        stats.estimated_charged_tokens = u64::from(stats.epochs) * stats.billing_tokens;
        stats.price_usd_per_1m_tokens = book
            .profile
            .training_price_per_million(&settings.base_model);
        stats.estimated_cost_usd = estimated_cost_usd(
            stats.price_usd_per_1m_tokens,
            stats.estimated_charged_tokens,
        );
        Ok(Merged {
            stats,
            train,
            validation,
        })
    }
}

/// Appends `span`, joined to the last one when it follows it directly.
fn push_span(spans: &mut Vec<Span>, span: Span) {
    match spans.last_mut() {
        Some(last) if last.shard == span.shard && last.end == span.start => last.end = span.end,
        _ => spans.push(span),
    }
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
    // In bounds: `max` is under `validation.len()` (just checked), and
    // every `i` is a candidate's position, `keep` having one per candidate.
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
    // In bounds: `max` is under `candidates.len()` (checked above), and
    // `keep` has one entry per candidate.
    order.select_nth_unstable(max);
    let mut keep = vec![false; candidates.len()];
    for &(_, i) in &order[..max] {
        keep[i] = true;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_examples_of_one_shard_become_one_span_and_a_gap_or_a_new_shard_starts_another() {
        let mut spans = Vec::new();
        for span in [
            Span {
                shard: 0,
                start: 0,
                end: 10,
            },
            Span {
                shard: 0,
                start: 10,
                end: 25,
            },
            Span {
                shard: 0,
                start: 40,
                end: 50,
            },
            Span {
                shard: 1,
                start: 50,
                end: 60,
            },
            Span {
                shard: 1,
                start: 60,
                end: 61,
            },
        ] {
            push_span(&mut spans, span);
        }
        assert_eq!(
            spans,
            vec![
                Span {
                    shard: 0,
                    start: 0,
                    end: 25
                },
                Span {
                    shard: 0,
                    start: 40,
                    end: 50
                },
                Span {
                    shard: 1,
                    start: 50,
                    end: 61
                },
            ]
        );
    }
}
