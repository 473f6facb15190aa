//! OpenAI's chat fine-tuning data checker, one implementation for the
//! pipeline, the `finetune validate` command and the OpenAI sandbox.
//!
//! It follows the cookbook notebook `Chat_finetuning_data_prep.ipynb`
//! exactly where that notebook has a rule: the format error categories and
//! their per-occurrence counting, the token-counting convention (3 per
//! message, every value encoded, +1 for `name`, +3 to prime the reply), the
//! missing system/user warnings, the epoch heuristic and billing. On a file
//! of plain system/user/assistant examples every figure equals the
//! notebook's.
//!
//! Where the current API accepts more than the notebook knows, the rules
//! are extended, each extension with its own category:
//! - `invalid_json`: a line that is not JSON (the notebook crashes);
//! - `message_data_type`: a message that is not an object (it crashes);
//! - the `tool` role, and `tool_calls` / `tool_call_id` as known keys;
//!   an assistant message with `tool_calls` needs no content;
//! - `tool_calls_invalid`: `tool_calls` not a list of
//!   `{id, type: "function", function: {name, arguments: string}}`, or on a
//!   message that is not the assistant's;
//! - `tool_call_id_unmatched`: a `tool` message whose `tool_call_id` is
//!   missing or names no call still waiting for its result;
//! - `tool_call_unanswered`: a call with no `tool` result before the next
//!   other message (a call in the example's last message needs none);
//! - `weight_invalid`: `weight` other than 0 or 1, or not on an assistant
//!   message;
//! - `tools_invalid`: example-level `tools` not a list of function tools.
//!
//! Token counting of values the notebook cannot encode (it raises on
//! non-strings): a non-string value counts as its JSON text, `null` content
//! as nothing, `weight` not at all (it is not shown to the model), and
//! example-level `tools` as their JSON text (they are billed).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::stats::{Distribution, default_epochs};
pub use super::tokens::Encoding;
use super::tokens::TokenCounter;
use crate::domain::ProviderKind;
use crate::provider::profiles::profile;

/// The notebook's limit; also the default for models not in the table.
pub const DEFAULT_MAX_TOKENS_PER_EXAMPLE: usize = 16_385;

/// How many line errors a report lists; counts stay exact beyond it.
const MAX_LINE_ERRORS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    pub encoding: Encoding,
    pub max_tokens_per_example: usize,
}

impl Default for CheckOptions {
    /// The published notebook's settings: cl100k_base and 16,385 tokens.
    fn default() -> Self {
        Self {
            encoding: Encoding::Cl100kBase,
            max_tokens_per_example: DEFAULT_MAX_TOKENS_PER_EXAMPLE,
        }
    }
}

impl CheckOptions {
    /// The encoding and per-example limit of an OpenAI base model, as
    /// OpenAI's profile states them (this checker is OpenAI's; a model
    /// OpenAI does not list gets the notebook's limit).
    pub fn for_model(model: &str) -> Self {
        match profile(ProviderKind::OpenAi).dataset_limits(model) {
            Ok(limits) => Self {
                encoding: limits.encoding,
                max_tokens_per_example: limits.max_tokens_per_example,
            },
            Err(_) => Self::default(),
        }
    }
}

/// One format error, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: u64,
    pub category: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warnings {
    pub missing_system: u64,
    pub missing_user: u64,
    pub over_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub encoding: Encoding,
    pub max_tokens_per_example: usize,
    /// Non-blank lines.
    pub examples: u64,
    /// Category -> occurrences; only categories that occurred.
    pub format_errors: BTreeMap<String, u64>,
    /// Where the errors are (the first 1,000).
    pub line_errors: Vec<LineError>,
    pub line_errors_truncated: bool,
    pub warnings: Warnings,
    pub messages: Distribution,
    pub tokens: Distribution,
    pub assistant_tokens: Distribution,
    pub epochs: u32,
    /// Sum over examples of min(limit, tokens).
    pub billing_tokens: u64,
    /// epochs x billing_tokens: what OpenAI would charge for.
    pub charged_tokens: u64,
}

impl CheckReport {
    pub fn has_format_errors(&self) -> bool {
        !self.format_errors.is_empty()
    }
}

/// What the checker found in one example.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExampleCheck {
    /// Format error categories, once per occurrence.
    pub errors: Vec<&'static str>,
    /// None when the example has no message list to count.
    pub tokens: Option<u64>,
    pub assistant_tokens: u64,
    pub messages: u64,
    pub has_system: bool,
    pub has_user: bool,
}

/// Checks a JSONL training file line by line, in constant memory apart from
/// one count per example for the percentiles. Fails only when the
/// encoding's vocabulary cannot be had.
pub fn check_jsonl<R: BufRead>(
    reader: R,
    options: &CheckOptions,
) -> Result<CheckReport, super::dictionaries::DictionaryError> {
    let mut counter = TokenCounter::new(options.encoding)?;
    let mut acc = Accumulator::new(*options);
    check_lines(reader, true, &mut counter, &mut acc);
    Ok(acc.finish())
}

/// How a run of lines ended.
struct LinesRead {
    /// Lines read, the unreadable one included.
    lines: u64,
    /// Reading failed: nothing after the last line counted was read.
    failed: bool,
}

/// Checks every line of `reader` into `acc`, numbering lines from 1.
/// `file_start` says the first line is the file's first (the only one
/// where a BOM is dropped). The one loop behind both the sequential and
/// the chunked check, so they cannot drift apart.
fn check_lines<R: BufRead>(
    mut reader: R,
    file_start: bool,
    counter: &mut TokenCounter,
    acc: &mut Accumulator,
) -> LinesRead {
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                // An unreadable rest of file (bad gzip, I/O) is one error
                // at the line where it happened, not a crash.
                line_no += 1;
                acc.examples += 1;
                acc.add_error(line_no, "invalid_json");
                return LinesRead {
                    lines: line_no,
                    failed: true,
                };
            }
        }
        line_no += 1;
        let bytes = trim_line(&buf, file_start && line_no == 1);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let check = match std::str::from_utf8(bytes) {
            Ok(line) => check_example(line, counter),
            Err(_) => ExampleCheck {
                errors: vec!["invalid_json"],
                ..ExampleCheck::default()
            },
        };
        acc.add(line_no, &check);
    }
    LinesRead {
        lines: line_no,
        failed: false,
    }
}

/// Why a file could not be checked at all. A line that cannot be read is
/// not one of these: it is a format error in the report, as in
/// [`check_jsonl`].
#[derive(Debug, thiserror::Error)]
pub enum CheckFileError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Dictionary(#[from] super::dictionaries::DictionaryError),
}

/// Read buffer of each reader of a file: large reads, few system calls.
const FILE_BUFFER: usize = 1024 * 1024;
/// A file is cut into about this many chunks per thread, handed out one at
/// a time, so a thread that drew lighter lines takes more chunks instead
/// of idling while the other finishes (the last chunk bounds the wait).
const CHUNKS_PER_THREAD: u64 = 16;
/// No chunk is cut smaller: below this, finding the boundary and setting
/// up a reader would start to count.
const MIN_CHUNK_BYTES: u64 = 1024 * 1024;

/// Checks a JSONL file on up to `threads` threads. The report is the one
/// [`check_jsonl`] gives for the same bytes, to the byte: the file is cut
/// into chunks at line starts, each chunk is checked on its own with its
/// own token counter, and the chunks are added up in file order, line
/// numbers shifted by the lines before each chunk and the error list
/// capped after the sum. Memory stays bounded as in [`check_jsonl`]:
/// each thread streams its chunks from its own handle on the file, and
/// only the per-example counts are kept.
///
/// With one thread, or anything but a regular file (a pipe cannot be
/// read from the middle), it is [`check_jsonl`] on the file.
pub fn check_jsonl_file(
    path: &Path,
    options: &CheckOptions,
    threads: NonZeroUsize,
) -> Result<CheckReport, CheckFileError> {
    let open = |source| CheckFileError::Open {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(open)?;
    let len = match file.metadata() {
        Ok(meta) if meta.is_file() && threads.get() > 1 => meta.len(),
        _ => {
            let reader = BufReader::with_capacity(FILE_BUFFER, file);
            return Ok(check_jsonl(reader, options)?);
        }
    };
    let per_thread = len / (threads.get() as u64 * CHUNKS_PER_THREAD);
    let chunk_bytes = per_thread.max(MIN_CHUNK_BYTES);
    check_file_in_chunks(path, file, len, options, threads, chunk_bytes)
}

/// One chunk of a file: from `start` (the file's start, or just after a
/// newline) for `len` bytes, or to the end of the file when None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    start: u64,
    len: Option<u64>,
}

/// Cuts a file of `len` bytes into chunks of at least `chunk_bytes`, each
/// starting at a line start: every line lies in exactly one chunk, and
/// within it the lines are the file's. The last chunk runs to the end of
/// the file, whatever its length was when measured. A read error while
/// looking for a boundary ends the cutting there: the last chunk then
/// covers the unreadable part, and checking it meets the error where a
/// sequential check would.
fn line_aligned_chunks(file: &File, len: u64, chunk_bytes: u64) -> Vec<Chunk> {
    let step = chunk_bytes.max(1);
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut chunks = Vec::new();
    let mut start = 0u64;
    while let Some(nominal) = start.checked_add(step).filter(|&n| n < len) {
        // The next chunk starts at the first line start at or after
        // `nominal`: just after the first newline from the byte before it.
        if reader.seek(SeekFrom::Start(nominal - 1)).is_err() {
            break;
        }
        let next = match reader.skip_until(b'\n') {
            Ok(skipped) if skipped > 0 => nominal - 1 + skipped as u64,
            _ => break,
        };
        if next >= len {
            break;
        }
        chunks.push(Chunk {
            start,
            len: Some(next - start),
        });
        start = next;
    }
    chunks.push(Chunk { start, len: None });
    chunks
}

/// What one chunk added up to, with its lines numbered from 1.
struct Part {
    index: usize,
    read: LinesRead,
    acc: Accumulator,
}

/// The chunked check behind [`check_jsonl_file`], with the chunk size
/// given so tests can put chunk boundaries anywhere.
fn check_file_in_chunks(
    path: &Path,
    file: File,
    len: u64,
    options: &CheckOptions,
    threads: NonZeroUsize,
    chunk_bytes: u64,
) -> Result<CheckReport, CheckFileError> {
    let chunks = line_aligned_chunks(&file, len, chunk_bytes);
    let workers = threads.get().min(chunks.len());
    // Each worker reads through its own handle: a shared one would share
    // its file position between threads.
    let mut files = vec![file];
    for _ in 1..workers {
        files.push(File::open(path).map_err(|source| CheckFileError::Open {
            path: path.display().to_string(),
            source,
        })?);
    }
    let next = AtomicUsize::new(0);
    let work = |file: File| -> Result<Vec<Part>, super::dictionaries::DictionaryError> {
        let mut counter = TokenCounter::new(options.encoding)?;
        let mut parts = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(index) else {
                return Ok(parts);
            };
            let mut acc = Accumulator::new(*options);
            let read = check_chunk(&file, *chunk, index == 0, &mut counter, &mut acc);
            parts.push(Part { index, read, acc });
        }
    };
    let mut parts = Vec::with_capacity(chunks.len());
    if workers <= 1 {
        for file in files {
            parts.extend(work(file)?);
        }
    } else {
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .into_iter()
                .map(|file| scope.spawn(|| work(file)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Vec<_>>()
        });
        for result in results {
            parts.extend(result?);
        }
    }
    parts.sort_unstable_by_key(|part| part.index);
    let mut total = Accumulator::new(*options);
    let mut lines_before = 0u64;
    for part in parts {
        total.append(part.acc, lines_before);
        lines_before += part.read.lines;
        // A sequential check stops at an unreadable line: so does the sum.
        if part.read.failed {
            break;
        }
    }
    Ok(total.finish())
}

/// Checks one chunk, its lines numbered from 1. A chunk that cannot be
/// reached counts as unreadable from its first line on.
fn check_chunk(
    file: &File,
    chunk: Chunk,
    file_start: bool,
    counter: &mut TokenCounter,
    acc: &mut Accumulator,
) -> LinesRead {
    let mut handle = file;
    if handle.seek(SeekFrom::Start(chunk.start)).is_err() {
        acc.examples += 1;
        acc.add_error(1, "invalid_json");
        return LinesRead {
            lines: 1,
            failed: true,
        };
    }
    match chunk.len {
        Some(len) => check_lines(
            BufReader::with_capacity(FILE_BUFFER, handle.take(len)),
            file_start,
            counter,
            acc,
        ),
        None => check_lines(
            BufReader::with_capacity(FILE_BUFFER, handle),
            file_start,
            counter,
            acc,
        ),
    }
}

/// Drops the line end (LF or CRLF) and, on the first line, a UTF-8 BOM.
pub(crate) fn trim_line(buf: &[u8], first: bool) -> &[u8] {
    let mut b = buf;
    if let Some(rest) = b.strip_suffix(b"\n") {
        b = rest;
    }
    if let Some(rest) = b.strip_suffix(b"\r") {
        b = rest;
    }
    if first && let Some(rest) = b.strip_prefix(b"\xef\xbb\xbf") {
        b = rest;
    }
    b
}

/// Adds examples up into a report.
pub(crate) struct Accumulator {
    options: CheckOptions,
    examples: u64,
    format_errors: BTreeMap<String, u64>,
    line_errors: Vec<LineError>,
    line_errors_truncated: bool,
    warnings: Warnings,
    messages: Vec<u32>,
    tokens: Vec<u32>,
    assistant_tokens: Vec<u32>,
}

impl Accumulator {
    pub(crate) fn new(options: CheckOptions) -> Self {
        Self {
            options,
            examples: 0,
            format_errors: BTreeMap::new(),
            line_errors: Vec::new(),
            line_errors_truncated: false,
            warnings: Warnings::default(),
            messages: Vec::new(),
            tokens: Vec::new(),
            assistant_tokens: Vec::new(),
        }
    }

    fn add_error(&mut self, line: u64, category: &str) {
        *self.format_errors.entry(category.to_owned()).or_default() += 1;
        if self.line_errors.len() < MAX_LINE_ERRORS {
            self.line_errors.push(LineError {
                line,
                category: category.to_owned(),
            });
        } else {
            self.line_errors_truncated = true;
        }
    }

    /// Adds the next chunk's sum, whose lines are numbered from 1, after
    /// `lines_before` lines: as if its examples had been added here one by
    /// one. Each chunk listed its own first [`MAX_LINE_ERRORS`] errors, so
    /// the first that many of the concatenation are the file's first; the
    /// list is truncated exactly when the occurrences exceed the cap.
    fn append(&mut self, other: Accumulator, lines_before: u64) {
        self.examples += other.examples;
        for (category, count) in other.format_errors {
            *self.format_errors.entry(category).or_default() += count;
        }
        for error in other.line_errors {
            if self.line_errors.len() < MAX_LINE_ERRORS {
                self.line_errors.push(LineError {
                    line: error.line + lines_before,
                    category: error.category,
                });
            } else {
                self.line_errors_truncated = true;
                break;
            }
        }
        self.line_errors_truncated |= other.line_errors_truncated;
        self.warnings.missing_system += other.warnings.missing_system;
        self.warnings.missing_user += other.warnings.missing_user;
        self.warnings.over_limit += other.warnings.over_limit;
        // In file order, so the distributions see the sequential vectors.
        self.messages.extend(other.messages);
        self.tokens.extend(other.tokens);
        self.assistant_tokens.extend(other.assistant_tokens);
    }

    pub(crate) fn add(&mut self, line: u64, check: &ExampleCheck) {
        self.examples += 1;
        for category in &check.errors {
            self.add_error(line, category);
        }
        if let Some(tokens) = check.tokens {
            if !check.has_system {
                self.warnings.missing_system += 1;
            }
            if !check.has_user {
                self.warnings.missing_user += 1;
            }
            if tokens > self.options.max_tokens_per_example as u64 {
                self.warnings.over_limit += 1;
            }
            self.messages.push(saturate(check.messages));
            self.tokens.push(saturate(tokens));
            self.assistant_tokens.push(saturate(check.assistant_tokens));
        }
    }

    pub(crate) fn finish(self) -> CheckReport {
        let limit = self.options.max_tokens_per_example as u64;
        let billing_tokens: u64 = self.tokens.iter().map(|&t| u64::from(t).min(limit)).sum();
        let epochs = default_epochs(self.tokens.len() as u64);
        CheckReport {
            encoding: self.options.encoding,
            max_tokens_per_example: self.options.max_tokens_per_example,
            examples: self.examples,
            format_errors: self.format_errors,
            line_errors: self.line_errors,
            line_errors_truncated: self.line_errors_truncated,
            warnings: self.warnings,
            messages: Distribution::of(&self.messages),
            tokens: Distribution::of(&self.tokens),
            assistant_tokens: Distribution::of(&self.assistant_tokens),
            epochs,
            billing_tokens,
            charged_tokens: u64::from(epochs) * billing_tokens,
        }
    }
}

fn saturate(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A JSON value parsed only as far as the checker needs, in one pass over
/// the line: an object's keys with their values (the ones the rules read
/// as text decoded in place, the rest kept raw), or "something else".
enum Obj<'a> {
    Map(Vec<(Cow<'a, str>, Field<'a>)>),
    NotMap,
}

enum Field<'a> {
    Val(Value<'a>),
    Raw(&'a RawValue),
    /// A `messages` value: the list's elements, or None if not a list.
    Messages(Option<Vec<Obj<'a>>>),
}

impl<'a> Field<'a> {
    fn value(&self) -> Option<Value<'a>> {
        match self {
            Field::Val(v) => Some(v.clone()),
            Field::Raw(raw) => Some(Value::of(raw)),
            Field::Messages(_) => None,
        }
    }

    fn raw(&self) -> Option<&'a RawValue> {
        match self {
            Field::Raw(raw) => Some(raw),
            _ => None,
        }
    }
}

struct MessageList<'a>(Option<Vec<Obj<'a>>>);

impl<'de> Deserialize<'de> for MessageList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MessageListVisitor)
    }
}

struct MessageListVisitor;

macro_rules! not_list {
    ($($name:ident: $t:ty),*) => {$(
        fn $name<E: de::Error>(self, _: $t) -> Result<Self::Value, E> { Ok(MessageList(None)) }
    )*};
}

impl<'de> Visitor<'de> for MessageListVisitor {
    type Value = MessageList<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(8);
        while let Some(item) = seq.next_element::<Obj>()? {
            items.push(item);
        }
        Ok(MessageList(Some(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(MessageList(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MessageList(None))
    }
    not_list!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
}

/// A value decoded directly: strings borrowed from the line when they have
/// no escapes.
struct Direct<'a>(Value<'a>);

impl<'de> Deserialize<'de> for Direct<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DirectVisitor)
    }
}

struct DirectVisitor;

impl<'de> Visitor<'de> for DirectVisitor {
    type Value = Direct<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Direct(Value::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Direct(Value::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Direct(Value::Str(Cow::Owned(v))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Direct(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Direct(Value::Null))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Direct(Value::Other {
            truthy: v,
            raw: Cow::Borrowed(if v { "true" } else { "false" }),
        }))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Direct(Value::Other {
            truthy: v != 0,
            raw: Cow::Owned(v.to_string()),
        }))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Direct(Value::Other {
            truthy: v != 0,
            raw: Cow::Owned(v.to_string()),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Direct(Value::Other {
            truthy: v != 0.0,
            raw: Cow::Owned(v.to_string()),
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        let truthy = v.as_array().is_some_and(|a| !a.is_empty());
        Ok(Direct(Value::Other {
            truthy,
            raw: Cow::Owned(v.to_string()),
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let truthy = v.as_object().is_some_and(|o| !o.is_empty());
        Ok(Direct(Value::Other {
            truthy,
            raw: Cow::Owned(v.to_string()),
        }))
    }
}

#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor)
    }
}

struct ObjVisitor;

macro_rules! not_map {
    ($($name:ident: $t:ty),*) => {$(
        fn $name<E: de::Error>(self, _: $t) -> Result<Self::Value, E> { Ok(Obj::NotMap) }
    )*};
}

impl<'de> Visitor<'de> for ObjVisitor {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(4);
        while let Some(Text(key)) = map.next_key()? {
            let value = match key.as_ref() {
                "messages" => Field::Messages(map.next_value::<MessageList>()?.0),
                "role" | "content" | "name" | "tool_call_id" => {
                    Field::Val(map.next_value::<Direct>()?.0)
                }
                _ => Field::Raw(map.next_value()?),
            };
            pairs.push((key, value));
        }
        Ok(Obj::Map(pairs))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Obj::NotMap)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Obj::NotMap)
    }
    not_map!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
}

/// What a JSON value is, as far as Python's truthiness and `isinstance`
/// go, with its JSON text when it is not a string.
#[derive(Clone)]
enum Value<'a> {
    Str(Cow<'a, str>),
    Null,
    Other { truthy: bool, raw: Cow<'a, str> },
}

impl<'a> Value<'a> {
    fn of(raw: &'a RawValue) -> Value<'a> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') => match serde_json::from_str::<Text>(text) {
                Ok(Text(s)) => Value::Str(s),
                Err(_) => Value::Other {
                    truthy: true,
                    raw: Cow::Borrowed(text),
                },
            },
            Some(b'n') => Value::Null,
            // In bounds: a RawValue is valid JSON, so one that starts with
            // `[` or `{` is at least two ASCII bytes (`[]`, `{}`).
            Some(b'[') | Some(b'{') => Value::Other {
                truthy: text[1..text.len().saturating_sub(1)]
                    .bytes()
                    .any(|b| !b.is_ascii_whitespace()),
                raw: Cow::Borrowed(text),
            },
            Some(b'f') => Value::Other {
                truthy: false,
                raw: Cow::Borrowed(text),
            },
            Some(b't') => Value::Other {
                truthy: true,
                raw: Cow::Borrowed(text),
            },
            _ => Value::Other {
                truthy: !text.parse::<f64>().is_ok_and(|n| n == 0.0),
                raw: Cow::Borrowed(text),
            },
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Null => false,
            Value::Other { truthy, .. } => *truthy,
        }
    }

    fn tokens(&self, counter: &mut TokenCounter) -> u64 {
        match self {
            Value::Str(s) => counter.count(s) as u64,
            Value::Null => 0,
            Value::Other { raw, .. } => counter.count(raw) as u64,
        }
    }
}

const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_NAME: u64 = 1;
const TOKENS_REPLY_PRIMER: u64 = 3;

/// Checks and counts one example (one line's JSON text).
pub fn check_example(line: &str, counter: &mut TokenCounter) -> ExampleCheck {
    let mut out = ExampleCheck::default();
    let top = match serde_json::from_str::<Obj>(line) {
        Ok(Obj::Map(pairs)) => pairs,
        Ok(Obj::NotMap) => {
            out.errors.push("data_type");
            return out;
        }
        Err(_) => {
            out.errors.push("invalid_json");
            return out;
        }
    };
    let field = |name: &str| top.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
    let messages: &[Obj] = match field("messages") {
        Some(Field::Messages(Some(list))) => list,
        _ => &[],
    };
    if messages.is_empty() {
        out.errors.push("missing_messages_list");
        return out;
    }
    let mut tokens = TOKENS_REPLY_PRIMER;
    if let Some(tools) = field("tools").and_then(Field::raw) {
        if !tools_valid(tools) {
            out.errors.push("tools_invalid");
        }
        tokens += counter.count(tools.get()) as u64;
    }
    let mut has_assistant = false;
    let mut pending_calls: Vec<String> = Vec::new();
    let last = messages.len() - 1;
    for (index, message) in messages.iter().enumerate() {
        out.messages += 1;
        let Obj::Map(pairs) = message else {
            out.errors.push("message_data_type");
            continue;
        };
        let get = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
        let role = get("role").and_then(Field::value);
        let role_str = match &role {
            Some(Value::Str(s)) => Some(s.as_ref()),
            _ => None,
        };
        let content = get("content").and_then(Field::value);
        let tool_calls = get("tool_calls").and_then(Field::raw);
        let calls = tool_calls.map(parse_tool_calls);
        let has_calls = matches!(&calls, Some(Some(ids)) if !ids.is_empty());
        let is_assistant = role_str == Some("assistant");

        // A result still owed for a call, before any other message.
        if role_str != Some("tool") && !pending_calls.is_empty() {
            out.errors.push("tool_call_unanswered");
            pending_calls.clear();
        }

        let calls_excuse_content = is_assistant && has_calls;
        if role.is_none() || (content.is_none() && !calls_excuse_content) {
            out.errors.push("message_missing_key");
        }
        if pairs.iter().any(|(k, _)| {
            !matches!(
                k.as_ref(),
                "role"
                    | "content"
                    | "name"
                    | "function_call"
                    | "weight"
                    | "tool_calls"
                    | "tool_call_id"
            )
        }) {
            out.errors.push("message_unrecognized_key");
        }
        if !matches!(
            role_str,
            Some("system" | "user" | "assistant" | "function" | "tool")
        ) {
            out.errors.push("unrecognized_role");
        }
        let function_call = get("function_call").and_then(Field::value);
        let content_ok = match &content {
            Some(Value::Str(s)) => {
                !s.is_empty() || function_call.as_ref().is_some_and(Value::truthy)
            }
            None | Some(Value::Null) => calls_excuse_content,
            Some(Value::Other { .. }) => false,
        };
        if !content_ok {
            out.errors.push("missing_content");
        }
        match &calls {
            Some(None) => out.errors.push("tool_calls_invalid"),
            Some(Some(ids)) if !ids.is_empty() => {
                if is_assistant {
                    if index != last {
                        pending_calls = ids.clone();
                    }
                } else {
                    out.errors.push("tool_calls_invalid");
                }
            }
            _ => {}
        }
        let call_id = get("tool_call_id").and_then(Field::value);
        if role_str == Some("tool") {
            match &call_id {
                Some(Value::Str(id)) if pending_calls.iter().any(|p| p == id) => {
                    pending_calls.retain(|p| p != id);
                }
                _ => out.errors.push("tool_call_id_unmatched"),
            }
        } else if call_id.is_some() {
            out.errors.push("tool_call_id_unmatched");
        }
        if let Some(weight) = get("weight").and_then(Field::raw)
            && (!is_assistant || !matches!(weight.get(), "0" | "1"))
        {
            out.errors.push("weight_invalid");
        }

        match role_str {
            Some("assistant") => has_assistant = true,
            Some("system") => out.has_system = true,
            Some("user") => out.has_user = true,
            _ => {}
        }

        // The notebook's convention: every value of the message encoded.
        tokens += TOKENS_PER_MESSAGE;
        let content_tokens = content.as_ref().map_or(0, |c| c.tokens(counter));
        for (key, field) in pairs {
            match key.as_ref() {
                "weight" => {}
                "role" => tokens += role.as_ref().map_or(0, |r| r.tokens(counter)),
                "content" => tokens += content_tokens,
                "name" => {
                    tokens += field.value().map_or(0, |v| v.tokens(counter)) + TOKENS_PER_NAME
                }
                _ => tokens += field.value().map_or(0, |v| v.tokens(counter)),
            }
        }
        if is_assistant {
            out.assistant_tokens += content_tokens;
        }
    }
    if !has_assistant {
        out.errors.push("example_missing_assistant_message");
    }
    out.tokens = Some(tokens);
    out
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    function: FunctionCall<'a>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    arguments: Cow<'a, str>,
}

/// The call ids of a well-formed `tool_calls` list, or None.
fn parse_tool_calls(raw: &RawValue) -> Option<Vec<String>> {
    let calls: Vec<ToolCall> = serde_json::from_str(raw.get()).ok()?;
    let mut ids = Vec::with_capacity(calls.len());
    for call in &calls {
        if call.id.is_empty() || call.kind != "function" || call.function.name.is_empty() {
            return None;
        }
        let _ = &call.function.arguments;
        ids.push(call.id.to_string());
    }
    Some(ids)
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    function: ToolFunction<'a>,
}

#[derive(Deserialize)]
struct ToolFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

fn tools_valid(raw: &RawValue) -> bool {
    match serde_json::from_str::<Vec<Tool>>(raw.get()) {
        Ok(tools) => tools
            .iter()
            .all(|t| t.kind == "function" && !t.function.name.is_empty()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
