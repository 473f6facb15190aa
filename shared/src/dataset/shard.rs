//! Pass 1 over a list of export files — all of a small run's, or one
//! shard's of a large run: every line through the per-conversation rules
//! (filters, redaction, windows, the checker, token counts), each accepted
//! example written to its side's file the moment it is made, and a small
//! index of what was accepted.
//!
//! What needs the whole run — dedup across files, the `max_examples`
//! sample, `min_examples`, the validation cap — is not decided here: it
//! is [`super::merge`]'s, from the indexes, so shards never talk to each
//! other and one shard or many make the same dataset.

use std::collections::BTreeMap;
use std::time::Instant;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::check::{CheckOptions, trim_line};
use super::conversation::{Conversation, Rules, content_digest};
use super::io::{ExportSource, Next, ReadLimits, Refusal};
use super::prepare::{PrepareSettings, is_train, seeded_hash};
use super::redact::Redactions;
use super::tokens::TokenCounter;
use super::window::windows;
use super::{ExampleFormat, PrepareError};
use crate::blob::MultipartWriter;
use crate::provider::profile::{DatasetLimits, Profile};
use crate::provider::profiles;

/// The rules of one preparation, resolved once from its settings: the
/// provider's profile, its model's limits, the conversation rules.
pub struct Rulebook {
    pub profile: &'static dyn Profile,
    pub limits: DatasetLimits,
    pub options: CheckOptions,
    pub rules: Rules,
    pub seed: u64,
    pub train_split: f64,
    /// How far one export file may be read.
    pub read: ReadLimits,
}

impl Rulebook {
    pub fn new(settings: &PrepareSettings) -> Result<Self, PrepareError> {
        // The rules of the provider that trains on this format: its model's
        // limits, its example writer and checker, its epochs and price.
        let profile = settings
            .provider
            .map(profiles::profile)
            .or_else(|| profiles::for_format(settings.format))
            .ok_or_else(|| {
                PrepareError::InvalidSettings(format!(
                    "no provider trains on {}",
                    settings.format.as_str()
                ))
            })?;
        let limits = profile
            .dataset_limits(&settings.base_model)
            .map_err(|e| PrepareError::InvalidSettings(e.to_string()))?;
        let mut options = CheckOptions {
            encoding: limits.encoding,
            max_tokens_per_example: limits.max_tokens_per_example,
        };
        if let Some(max) = settings.max_tokens_per_example {
            options.max_tokens_per_example = max;
        }
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
        Ok(Self {
            profile,
            limits,
            options,
            rules,
            seed: settings.seed,
            train_split: settings.train_split.get(),
            read: ReadLimits::default(),
        })
    }

    /// The same rules, reading files within `read`.
    pub fn with_read_limits(mut self, read: ReadLimits) -> Self {
        self.read = read;
        self
    }

    fn example_format(&self) -> &'static dyn ExampleFormat {
        self.profile.example_format()
    }
}

/// What became of a conversation that passed the rules and was the first
/// of its content in its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its examples (one, or its windows) were written.
    Kept,
    /// One turn alone is over the per-example limit.
    OverLimit,
    /// A window failed the checker: `format:<categories[i]>`.
    Refused(u8),
}

/// One conversation in the index (its examples follow in
/// [`ShardIndex::examples`] when it was kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationEntry {
    /// The digest of its redacted messages: dedup across shards.
    pub digest: u128,
    pub train: bool,
    /// Windows it was split into (1 when it fit whole; 0 when over limit).
    pub windows: u32,
    pub outcome: Outcome,
}

/// One written example: its seeded sample priority, its tokens and its
/// line's length in its side's file (newline included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleEntry {
    pub priority: u64,
    pub tokens: u32,
    pub bytes: u32,
}

/// The index a merge decides with: per conversation 24 bytes, per
/// example 16, so a shard of 256 MB of exports indexes in a few MB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardIndex {
    pub conversations: Vec<ConversationEntry>,
    pub examples: Vec<ExampleEntry>,
}

/// The counts a shard adds up by itself (no other shard can change them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardCounts {
    pub files_read: u64,
    pub conversations_read: u64,
    pub malformed_lines: u64,
    /// Dropped by a rule before dedup (filters, empty, no reply...).
    pub dropped: BTreeMap<String, u64>,
    pub redactions: Redactions,
    /// Repeats of a conversation earlier in the same shard.
    pub duplicates_removed: u64,
    /// Bytes read (decompressed lines).
    pub bytes_read: u64,
    pub train_bytes: u64,
    pub validation_bytes: u64,
    /// The checker categories [`Outcome::Refused`] indexes.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Entries of its index: what the merge will hold in memory for it.
    #[serde(default)]
    pub indexed_conversations: u64,
    #[serde(default)]
    pub indexed_examples: u64,
    /// Malformed lines by reason: `not_json`, `line_too_long` (skipped
    /// unread past the ceiling), `truncated` (the line a cut file ended in).
    #[serde(default)]
    pub malformed_reasons: BTreeMap<String, u64>,
    /// Files left out, in reading order (at most [`REFUSED_LISTED`]).
    #[serde(default)]
    pub files_refused: Vec<RefusedFile>,
    /// Files left out, all told.
    #[serde(default)]
    pub files_refused_total: u64,
}

/// An export file left out of the preparation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedFile {
    pub key: String,
    /// A stable code: see [`Refusal::as_str`].
    pub reason: String,
}

/// How many refused files the stats name (the total counts them all).
pub const REFUSED_LISTED: usize = 50;

impl ShardCounts {
    fn malformed(&mut self, reason: &str) {
        self.malformed_lines += 1;
        *self.malformed_reasons.entry(reason.to_owned()).or_default() += 1;
    }

    fn refuse(&mut self, key: &str, reason: Refusal) {
        tracing::warn!(key, reason = reason.as_str(), "an export file was refused");
        self.files_refused_total += 1;
        if self.files_refused.len() < REFUSED_LISTED {
            self.files_refused.push(RefusedFile {
                key: key.to_owned(),
                reason: reason.as_str().to_owned(),
            });
        }
    }
}

/// A shard's (or a small run's) pass 1, whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardResult {
    pub counts: ShardCounts,
    pub index: ShardIndex,
}

/// Where one side's accepted examples go: a spill file (small runs, the
/// CLI) or an S3 object written part by part (a shard).
pub enum ExampleOut {
    File(std::io::BufWriter<std::fs::File>, String),
    S3(Box<MultipartWriter>),
}

impl ExampleOut {
    async fn write(&mut self, line: &[u8]) -> Result<(), PrepareError> {
        match self {
            ExampleOut::File(file, path) => std::io::Write::write_all(file, line)
                .and_then(|_| std::io::Write::write_all(file, b"\n"))
                .map_err(|e| PrepareError::io(path, e)),
            ExampleOut::S3(writer) => {
                writer.write(line).await?;
                Ok(writer.write(b"\n").await?)
            }
        }
    }

    /// Completes the file (the S3 object is created, possibly empty).
    pub async fn finish(self) -> Result<(), PrepareError> {
        match self {
            ExampleOut::File(mut file, path) => {
                std::io::Write::flush(&mut file).map_err(|e| PrepareError::io(&path, e))
            }
            ExampleOut::S3(writer) => writer.finish().await.map(|_| ()).map_err(Into::into),
        }
    }

    /// Gives up the file: an S3 upload in progress is aborted.
    pub async fn abandon(self) {
        if let ExampleOut::S3(mut writer) = self {
            writer.abort().await;
        }
    }
}

/// Lines between two looks at the clock.
const DEADLINE_EVERY: u64 = 256;

/// Reads `files` in order through the rules, writing accepted examples to
/// `train` and `validation`. Stops with [`PrepareError::OutOfTime`] when
/// `deadline` passes, the outputs abandoned: a shard is redone whole, never
/// resumed from a half-written file.
pub async fn read_exports(
    book: &Rulebook,
    source: &ExportSource,
    files: &[String],
    mut train: ExampleOut,
    mut validation: ExampleOut,
    deadline: Option<Instant>,
) -> Result<ShardResult, PrepareError> {
    let result = read_into(book, source, files, &mut train, &mut validation, deadline).await;
    match result {
        Ok(result) => {
            train.finish().await?;
            validation.finish().await?;
            Ok(result)
        }
        Err(e) => {
            train.abandon().await;
            validation.abandon().await;
            Err(e)
        }
    }
}

async fn read_into(
    book: &Rulebook,
    source: &ExportSource,
    files: &[String],
    train_out: &mut ExampleOut,
    validation_out: &mut ExampleOut,
    deadline: Option<Instant>,
) -> Result<ShardResult, PrepareError> {
    let limit = book.options.max_tokens_per_example as u64;
    let example_format = book.example_format();
    let mut counter = TokenCounter::new(book.options.encoding)?;
    let mut result = ShardResult::default();
    let counts = &mut result.counts;
    let index = &mut result.index;
    let mut seen: FxHashSet<u128> = FxHashSet::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut example_line = Vec::with_capacity(64 * 1024);
    let mut lines_read = 0u64;
    for key in files {
        let mut reader = match source.open_export(key, book.read).await {
            Ok(reader) => reader,
            Err(refusal) => {
                counts.refuse(key, refusal);
                continue;
            }
        };
        // A file of binary data is refused whole, its lines uncounted:
        // what the counts were before it, and what it held.
        let (malformed_before, malformed_lines_before) =
            (counts.malformed_reasons.clone(), counts.malformed_lines);
        let mut conversations_in_file = 0u64;
        let mut binary = false;
        let mut refused = None;
        loop {
            lines_read += 1;
            if lines_read.is_multiple_of(DEADLINE_EVERY)
                && let Some(deadline) = deadline
                && Instant::now() >= deadline
            {
                return Err(PrepareError::OutOfTime {
                    files_read: counts.files_read,
                    files: files.len() as u64,
                    bytes_read: counts.bytes_read,
                });
            }
            let before = reader.bytes_read();
            let next = reader.next_line(&mut buf).await;
            counts.bytes_read += reader.bytes_read() - before;
            match next {
                Ok(Next::End) => break,
                Ok(Next::TooLong { .. }) => {
                    counts.malformed("line_too_long");
                    continue;
                }
                Ok(Next::Line) => {}
                Err(refusal) => {
                    // The lines before the cut stay; the cut one is malformed.
                    if !buf.iter().all(u8::is_ascii_whitespace) {
                        counts.malformed("truncated");
                    }
                    refused = Some(refusal);
                    break;
                }
            }
            // A BOM can start any line when exports are concatenated.
            let line = trim_line(&buf, true);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let conv: Conversation = match serde_json::from_slice(line) {
                Ok(c) => c,
                Err(_) => {
                    binary = binary
                        || memchr::memchr(0, line).is_some()
                        || std::str::from_utf8(line).is_err();
                    counts.malformed("not_json");
                    continue;
                }
            };
            conversations_in_file += 1;
            counts.conversations_read += 1;
            let id = conv.id.clone();
            let messages = match book.rules.apply(conv, &mut counts.redactions) {
                Ok(m) => m,
                Err(reason) => {
                    *counts
                        .dropped
                        .entry(reason.as_str().to_owned())
                        .or_default() += 1;
                    continue;
                }
            };
            let digest = content_digest(&messages);
            if !seen.insert(digest) {
                counts.duplicates_removed += 1;
                continue;
            }
            let train = is_train(book.seed, &id, book.train_split);
            let mut entry = ConversationEntry {
                digest,
                train,
                windows: 0,
                outcome: Outcome::OverLimit,
            };
            let Some(parts) = windows(messages, &mut counter, limit) else {
                index.conversations.push(entry);
                continue;
            };
            entry.windows = parts.len() as u32;
            // Check every window before keeping any, so a conversation
            // is used whole or not at all.
            let mut lines = Vec::with_capacity(parts.len());
            let mut failed = None;
            for part in &parts {
                example_line.clear();
                match example_format.write_checked(
                    &mut example_line,
                    part,
                    &mut counter,
                    limit as usize,
                ) {
                    Ok(tokens) => lines.push((example_line.clone(), tokens)),
                    Err(category) => {
                        failed = Some(category);
                        break;
                    }
                }
            }
            if let Some(category) = failed {
                entry.outcome = Outcome::Refused(category_index(&mut counts.categories, category));
                index.conversations.push(entry);
                continue;
            }
            entry.outcome = Outcome::Kept;
            index.conversations.push(entry);
            let out = if train {
                &mut *train_out
            } else {
                &mut *validation_out
            };
            for (i, (text, tokens)) in lines.into_iter().enumerate() {
                out.write(&text).await?;
                let bytes = text.len() as u64 + 1;
                if train {
                    counts.train_bytes += bytes;
                } else {
                    counts.validation_bytes += bytes;
                }
                index.examples.push(ExampleEntry {
                    priority: seeded_hash(book.seed, "sample", &id, i as u64),
                    tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
                    bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
                });
            }
        }
        if refused.is_none() && binary && conversations_in_file == 0 {
            counts.malformed_reasons = malformed_before;
            counts.malformed_lines = malformed_lines_before;
            refused = Some(Refusal::Binary);
        }
        match refused {
            Some(refusal) => counts.refuse(key, refusal),
            None => counts.files_read += 1,
        }
    }
    counts.indexed_conversations = index.conversations.len() as u64;
    counts.indexed_examples = index.examples.len() as u64;
    Ok(result)
}

/// The position of `category` in the shard's list, added when new (the
/// checker has a few dozen categories, far under 256).
fn category_index(categories: &mut Vec<String>, category: &str) -> u8 {
    if let Some(i) = categories.iter().position(|c| c == category) {
        return i as u8;
    }
    categories.push(category.to_owned());
    (categories.len() - 1).min(u8::MAX as usize) as u8
}

const MAGIC: &[u8; 8] = b"FTSHIDX1";
const CONVERSATION_BYTES: usize = 24;
const EXAMPLE_BYTES: usize = 16;

/// The index as stored beside a shard's files (`index.bin`): fixed-width
/// little-endian records, so a merge of millions of conversations reads
/// in one pass without a parser.
impl ShardIndex {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            24 + self.conversations.len() * CONVERSATION_BYTES
                + self.examples.len() * EXAMPLE_BYTES,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.conversations.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.examples.len() as u64).to_le_bytes());
        for c in &self.conversations {
            out.extend_from_slice(&c.digest.to_le_bytes());
            out.push(u8::from(c.train));
            let (kind, category) = match c.outcome {
                Outcome::Kept => (0, 0),
                Outcome::OverLimit => (1, 0),
                Outcome::Refused(i) => (2, i),
            };
            out.push(kind);
            out.push(category);
            out.push(0);
            out.extend_from_slice(&c.windows.to_le_bytes());
        }
        for e in &self.examples {
            out.extend_from_slice(&e.priority.to_le_bytes());
            out.extend_from_slice(&e.tokens.to_le_bytes());
            out.extend_from_slice(&e.bytes.to_le_bytes());
        }
        out
    }

    /// The index `encode` wrote; `None` for anything else (a truncated
    /// or foreign object), which the merge reports by key.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (conversations, rest) = rest.split_at_checked(8)?;
        let (examples, rest) = rest.split_at_checked(8)?;
        let conversations = u64::from_le_bytes(conversations.try_into().ok()?) as usize;
        let examples = u64::from_le_bytes(examples.try_into().ok()?) as usize;
        let (c_bytes, e_bytes) =
            rest.split_at_checked(conversations.checked_mul(CONVERSATION_BYTES)?)?;
        if e_bytes.len() != examples.checked_mul(EXAMPLE_BYTES)? {
            return None;
        }
        let mut index = ShardIndex {
            conversations: Vec::with_capacity(conversations),
            examples: Vec::with_capacity(examples),
        };
        for c in c_bytes.chunks_exact(CONVERSATION_BYTES) {
            let outcome = match (c[17], c[18]) {
                (0, _) => Outcome::Kept,
                (1, _) => Outcome::OverLimit,
                (2, i) => Outcome::Refused(i),
                _ => return None,
            };
            index.conversations.push(ConversationEntry {
                digest: u128::from_le_bytes(c[..16].try_into().ok()?),
                train: c[16] == 1,
                windows: u32::from_le_bytes(c[20..24].try_into().ok()?),
                outcome,
            });
        }
        for e in e_bytes.chunks_exact(EXAMPLE_BYTES) {
            index.examples.push(ExampleEntry {
                priority: u64::from_le_bytes(e[..8].try_into().ok()?),
                tokens: u32::from_le_bytes(e[8..12].try_into().ok()?),
                bytes: u32::from_le_bytes(e[12..16].try_into().ok()?),
            });
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Kept),
            Just(Outcome::OverLimit),
            any::<u8>().prop_map(Outcome::Refused),
        ]
    }

    proptest! {
        #[test]
        fn an_index_reads_back_exactly_as_it_was_written(
            conversations in proptest::collection::vec(
                (any::<u128>(), any::<bool>(), any::<u32>(), outcome()), 0..40),
            examples in proptest::collection::vec(
                (any::<u64>(), any::<u32>(), any::<u32>()), 0..40),
        ) {
            let index = ShardIndex {
                conversations: conversations
                    .into_iter()
                    .map(|(digest, train, windows, outcome)| ConversationEntry { digest, train, windows, outcome })
                    .collect(),
                examples: examples
                    .into_iter()
                    .map(|(priority, tokens, bytes)| ExampleEntry { priority, tokens, bytes })
                    .collect(),
            };
            let bytes = index.encode();
            prop_assert_eq!(ShardIndex::decode(&bytes), Some(index));
            // Any truncation is refused, never misread.
            if !bytes.is_empty() {
                prop_assert_eq!(ShardIndex::decode(&bytes[..bytes.len() - 1]), None);
            }
        }
    }

    #[test]
    fn an_object_that_is_not_an_index_is_refused() {
        assert_eq!(ShardIndex::decode(b""), None);
        assert_eq!(ShardIndex::decode(b"{\"json\": true}"), None);
    }
}
