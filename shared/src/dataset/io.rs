//! Where exports come from and where datasets go: the S3 bucket, or a
//! local folder laid out like it. The preparation code sees only these
//! two small types, so both paths run the same rules.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, BufWriter, ReadBuf,
};

use crate::blob::{
    Blobs, DatasetObject, MultipartWriter, ObjectReader, conversation_day_prefix, dataset_key,
};
use crate::domain::{DatasetId, TenantId};

use super::PrepareError;

/// The tenant's export files for a date range.
pub enum ExportSource {
    S3(Blobs),
    /// A folder holding `conversations/{tenant}/{YYYY}/{MM}/{DD}/`.
    Local(PathBuf),
}

impl ExportSource {
    /// Export file keys (or paths), day by day, in name order.
    pub async fn files(
        &self,
        tenant: &TenantId,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<String>, PrepareError> {
        match self {
            ExportSource::S3(blobs) => Ok(blobs
                .list_conversation_files(tenant, start, end)
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect()),
            ExportSource::Local(root) => {
                let mut files = Vec::new();
                for day in crate::blob::keys::days(start, end) {
                    let dir = root.join(conversation_day_prefix(tenant, day));
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    let mut names: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.path().to_string_lossy().into_owned())
                        .filter(|p| p.ends_with(".jsonl") || p.ends_with(".jsonl.gz"))
                        .collect();
                    names.sort();
                    files.extend(names);
                }
                Ok(files)
            }
        }
    }

    /// The file's lines as a bounded reader ([`ExportFile`]), gunzipped
    /// for `.gz`. A file that cannot even be opened, or whose first bytes
    /// say it is no gzip though named so, is refused with its reason.
    pub async fn open_export(&self, key: &str, limits: ReadLimits) -> Result<ExportFile, Refusal> {
        let raw: Pin<Box<dyn AsyncRead + Send>> = match self {
            ExportSource::S3(blobs) => blobs.open_raw(key, None).await.map_err(|e| {
                tracing::warn!(error = %crate::telemetry::chain(&e), "an export could not be opened");
                Refusal::Unreadable
            })?,
            ExportSource::Local(_) => Box::pin(tokio::fs::File::open(key).await.map_err(|e| {
                tracing::warn!(error = %e, "an export could not be opened");
                Refusal::Unreadable
            })?),
        };
        ExportFile::new(raw, key.ends_with(".gz"), limits).await
    }

    /// The file's lines as a buffered stream, gunzipped for `.gz`.
    pub async fn open(&self, key: &str) -> Result<ObjectReader, PrepareError> {
        match self {
            ExportSource::S3(blobs) => Ok(blobs.open(key).await?),
            ExportSource::Local(_) => {
                let file = tokio::fs::File::open(key)
                    .await
                    .map_err(|e| PrepareError::io(key, e))?;
                let raw = BufReader::with_capacity(256 * 1024, file);
                if key.ends_with(".gz") {
                    let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(raw);
                    decoder.multiple_members(true);
                    Ok(Box::pin(BufReader::with_capacity(256 * 1024, decoder)))
                } else {
                    Ok(Box::pin(raw))
                }
            }
        }
    }
}

/// How far one export file may be read: a line longer than
/// `max_line_bytes` is skipped (never held), a gzip file that inflates past
/// `max_inflated_bytes`, or past `max_gzip_ratio` times the compressed
/// bytes read (once over [`RATIO_FLOOR`]), is refused. What a tenant's
/// broken or hostile export can cost a worker is then bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLimits {
    pub max_line_bytes: u64,
    pub max_inflated_bytes: u64,
    pub max_gzip_ratio: u64,
}

/// Inflated bytes below which the ratio is not looked at: a small file
/// of repetitive JSON may compress far better than exports do, and costs
/// nothing to read.
pub const RATIO_FLOOR: u64 = 64 * 1024 * 1024;

impl Default for ReadLimits {
    /// 8 MiB a line (the largest example a provider takes is far under
    /// it), 16 GiB inflated a file, 100 times the compressed bytes
    /// (conversation JSON compresses 5–10 times).
    fn default() -> Self {
        Self {
            max_line_bytes: 8 * 1024 * 1024,
            max_inflated_bytes: 16 * 1024 * 1024 * 1024,
            max_gzip_ratio: 100,
        }
    }
}

/// Why an export file was left out of the preparation (stable codes, as
/// the dataset's stats list them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It could not be opened or read (gone, denied, a read that failed).
    Unreadable,
    /// A `.gz` file of no bytes at all.
    EmptyGzip,
    /// A `.gz` file that does not start as gzip does.
    NotGzip,
    /// A gzip member cut short: the lines before the cut were kept.
    TruncatedGzip,
    /// Gzip data that does not decode (bad checksum, bad block).
    CorruptGzip,
    /// It inflated past [`ReadLimits::max_inflated_bytes`].
    GzipTooLarge,
    /// It inflated past [`ReadLimits::max_gzip_ratio`] times its size.
    GzipRatio,
    /// Binary data: no line of it was a conversation, and some were not
    /// even text.
    Binary,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unreadable => "unreadable",
            Refusal::EmptyGzip => "empty_gzip",
            Refusal::NotGzip => "not_gzip",
            Refusal::TruncatedGzip => "truncated_gzip",
            Refusal::CorruptGzip => "corrupt_gzip",
            Refusal::GzipTooLarge => "gzip_too_large",
            Refusal::GzipRatio => "gzip_ratio_too_high",
            Refusal::Binary => "binary",
        }
    }
}

/// What [`ExportFile::next_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A line (newline included when there was one) is in the buffer.
    Line,
    /// A line over the ceiling was skipped: `bytes` of it were read past.
    TooLong { bytes: u64 },
    /// The end of the file.
    End,
}

/// Bytes that came from the source (compressed, for gzip), and whether
/// the source itself failed (rather than the decoder).
#[derive(Debug, Default)]
struct SourceCount {
    bytes: AtomicU64,
    failed: AtomicBool,
}

/// The source's stream, counted on the way to the decoder.
struct Counted {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    count: Arc<SourceCount>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len().saturating_sub(before) as u64;
                self.count.bytes.fetch_add(read, Ordering::Relaxed);
            }
            Poll::Ready(Err(_)) => self.count.failed.store(true, Ordering::Relaxed),
            Poll::Pending => {}
        }
        polled
    }
}

/// One export file read line by line within its [`ReadLimits`]: memory
/// stays at one line of at most `max_line_bytes` plus the buffers,
/// whatever the file holds.
pub struct ExportFile {
    reader: Pin<Box<dyn AsyncBufRead + Send>>,
    count: Arc<SourceCount>,
    gzip: bool,
    limits: ReadLimits,
    /// Bytes handed out as lines or skipped (inflated, for gzip).
    inflated: u64,
}

const READ_BUFFER: usize = 256 * 1024;

impl ExportFile {
    /// Reads `raw` as an export: gunzipped (every member) when `gzip`.
    pub async fn new(
        raw: Pin<Box<dyn AsyncRead + Send>>,
        gzip: bool,
        limits: ReadLimits,
    ) -> Result<Self, Refusal> {
        let count = Arc::new(SourceCount::default());
        let mut raw = BufReader::with_capacity(
            READ_BUFFER,
            Counted {
                inner: raw,
                count: count.clone(),
            },
        );
        let reader: Pin<Box<dyn AsyncBufRead + Send>> = if gzip {
            let head = raw.fill_buf().await.map_err(|_| Refusal::Unreadable)?;
            if head.is_empty() {
                return Err(Refusal::EmptyGzip);
            }
            // gzip's magic; a first read of one byte is given the benefit.
            if !(head.starts_with(&[0x1f, 0x8b]) || head == [0x1f]) {
                return Err(Refusal::NotGzip);
            }
            let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(raw);
            decoder.multiple_members(true);
            Box::pin(BufReader::with_capacity(READ_BUFFER, decoder))
        } else {
            Box::pin(raw)
        };
        Ok(Self {
            reader,
            count,
            gzip,
            limits,
            inflated: 0,
        })
    }

    /// Bytes of the file read so far (decompressed).
    pub fn bytes_read(&self) -> u64 {
        self.inflated
    }

    /// The next line into `buf` (cleared first). A line over the ceiling
    /// is read past without being kept. On a refusal, `buf` holds the
    /// part of the line read before it (the cut line).
    pub async fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Next, Refusal> {
        buf.clear();
        let ceiling = self.limits.max_line_bytes.saturating_add(1);
        let mut skipped: Option<u64> = None;
        loop {
            let (take, ends) = match self.reader.fill_buf().await {
                Ok([]) => {
                    return Ok(match skipped {
                        Some(bytes) => Next::TooLong { bytes },
                        None if buf.is_empty() => Next::End,
                        None => Next::Line,
                    });
                }
                Ok(chunk) => {
                    let (take, ends) = match memchr::memchr(b'\n', chunk) {
                        Some(i) => (i + 1, true),
                        None => (chunk.len(), false),
                    };
                    let part = chunk.get(..take).unwrap_or(chunk);
                    match &mut skipped {
                        Some(bytes) => *bytes += take as u64,
                        None if (buf.len() + take) as u64 > ceiling => {
                            skipped = Some((buf.len() + take) as u64);
                            // The held part goes: the line is never whole in memory.
                            buf.clear();
                            buf.shrink_to(64 * 1024);
                        }
                        None => buf.extend_from_slice(part),
                    }
                    (take, ends)
                }
                Err(e) => return Err(self.refusal(&e)),
            };
            self.reader.as_mut().consume(take);
            self.inflated += take as u64;
            if self.gzip {
                self.check_inflation()?;
            }
            if ends {
                return Ok(match skipped {
                    Some(bytes) => Next::TooLong { bytes },
                    None => Next::Line,
                });
            }
        }
    }

    fn check_inflation(&self) -> Result<(), Refusal> {
        if self.inflated > self.limits.max_inflated_bytes {
            return Err(Refusal::GzipTooLarge);
        }
        let compressed = self.count.bytes.load(Ordering::Relaxed);
        if self.inflated > RATIO_FLOOR
            && self.inflated > compressed.saturating_mul(self.limits.max_gzip_ratio)
        {
            return Err(Refusal::GzipRatio);
        }
        Ok(())
    }

    /// Why a read failed: the source's failure, or the decoder's.
    fn refusal(&self, error: &std::io::Error) -> Refusal {
        if self.count.failed.load(Ordering::Relaxed) || !self.gzip {
            tracing::warn!(error = %error, "an export could not be read to its end");
            Refusal::Unreadable
        } else if error.kind() == std::io::ErrorKind::UnexpectedEof {
            Refusal::TruncatedGzip
        } else {
            Refusal::CorruptGzip
        }
    }
}

/// Where the dataset's files are written.
pub enum DatasetSink {
    S3 {
        blobs: Blobs,
        tenant: TenantId,
        dataset: DatasetId,
    },
    Local(PathBuf),
}

impl DatasetSink {
    pub fn key(&self, object: DatasetObject) -> String {
        match self {
            DatasetSink::S3 {
                tenant, dataset, ..
            } => dataset_key(tenant, dataset, object),
            DatasetSink::Local(dir) => dir.join(object.file_name()).to_string_lossy().into_owned(),
        }
    }

    pub async fn create(&self, object: DatasetObject) -> Result<SinkWriter, PrepareError> {
        let key = self.key(object);
        let content_type = if object == DatasetObject::Manifest {
            "application/json"
        } else {
            "application/x-ndjson"
        };
        match self {
            DatasetSink::S3 { blobs, .. } => Ok(SinkWriter::S3(blobs.writer(key, content_type))),
            DatasetSink::Local(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| PrepareError::io(&dir.to_string_lossy(), e))?;
                let file = tokio::fs::File::create(&key)
                    .await
                    .map_err(|e| PrepareError::io(&key, e))?;
                Ok(SinkWriter::Local {
                    file: BufWriter::with_capacity(1024 * 1024, file),
                    hasher: Sha256::new(),
                    bytes: 0,
                    key,
                })
            }
        }
    }
}

/// One file being written; sha256 and size are taken on the way.
pub enum SinkWriter {
    S3(MultipartWriter),
    Local {
        file: BufWriter<tokio::fs::File>,
        hasher: Sha256,
        bytes: u64,
        key: String,
    },
}

/// A written file: its key (or path), size and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
}

impl SinkWriter {
    pub async fn write(&mut self, data: &[u8]) -> Result<(), PrepareError> {
        match self {
            SinkWriter::S3(w) => Ok(w.write(data).await?),
            SinkWriter::Local {
                file,
                hasher,
                bytes,
                key,
            } => {
                hasher.update(data);
                *bytes += data.len() as u64;
                file.write_all(data)
                    .await
                    .map_err(|e| PrepareError::io(key, e))
            }
        }
    }

    pub async fn finish(self) -> Result<Written, PrepareError> {
        match self {
            SinkWriter::S3(w) => {
                let o = w.finish().await?;
                Ok(Written {
                    key: o.key,
                    bytes: o.bytes,
                    sha256: o.sha256,
                })
            }
            SinkWriter::Local {
                mut file,
                hasher,
                bytes,
                key,
            } => {
                file.flush().await.map_err(|e| PrepareError::io(&key, e))?;
                Ok(Written {
                    sha256: hex::encode(hasher.finalize()),
                    bytes,
                    key,
                })
            }
        }
    }
}

/// A temporary file removed when dropped, whatever happens.
pub(crate) struct TempFile(pub PathBuf);

impl TempFile {
    pub(crate) fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "finetune-spill-{}.jsonl",
            uuid::Uuid::new_v4().simple()
        )))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    async fn open(bytes: Vec<u8>, gzip: bool, limits: ReadLimits) -> Result<ExportFile, Refusal> {
        ExportFile::new(Box::pin(std::io::Cursor::new(bytes)), gzip, limits).await
    }

    /// Every line the file gives, then how it ended.
    async fn lines(mut file: ExportFile) -> (Vec<Result<String, u64>>, Option<Refusal>, Vec<u8>) {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match file.next_line(&mut buf).await {
                Ok(Next::Line) => out.push(Ok(String::from_utf8_lossy(&buf).into_owned())),
                Ok(Next::TooLong { bytes }) => out.push(Err(bytes)),
                Ok(Next::End) => return (out, None, buf),
                Err(r) => return (out, Some(r), buf),
            }
        }
    }

    fn small_lines() -> ReadLimits {
        ReadLimits {
            max_line_bytes: 10,
            ..ReadLimits::default()
        }
    }

    #[tokio::test]
    async fn a_line_over_the_ceiling_is_skipped_and_reading_goes_on() {
        let file = open(
            b"short\n0123456789abcdef\nnext\nlast".to_vec(),
            false,
            small_lines(),
        )
        .await
        .unwrap();
        let (got, refused, _) = lines(file).await;
        assert_eq!(
            got,
            vec![
                Ok("short\n".into()),
                Err(17),
                Ok("next\n".into()),
                Ok("last".into())
            ]
        );
        assert_eq!(refused, None);
    }

    #[tokio::test]
    async fn a_line_exactly_at_the_ceiling_is_kept() {
        let file = open(b"0123456789\n0123456789".to_vec(), false, small_lines())
            .await
            .unwrap();
        let (got, _, _) = lines(file).await;
        assert_eq!(
            got,
            vec![Ok("0123456789\n".into()), Ok("0123456789".into())]
        );
    }

    #[tokio::test]
    async fn a_line_longer_than_the_read_buffer_is_never_held_whole() {
        // GIVEN one line of 3 MB, over a 1 MiB ceiling
        let mut data = vec![b' '; 3_000_000];
        data.extend_from_slice(b"\n{}\n");
        let limits = ReadLimits {
            max_line_bytes: 1024 * 1024,
            ..ReadLimits::default()
        };
        let mut file = open(gzip(&data), true, limits).await.unwrap();
        let mut buf = Vec::new();
        // WHEN it is read THEN it is skipped, the buffer never past the ceiling
        assert_eq!(
            file.next_line(&mut buf).await,
            Ok(Next::TooLong { bytes: 3_000_001 })
        );
        assert!(buf.capacity() <= 2 * 1024 * 1024, "{}", buf.capacity());
        assert_eq!(file.next_line(&mut buf).await, Ok(Next::Line));
        assert_eq!(buf, b"{}\n");
    }

    #[tokio::test]
    async fn broken_gzip_files_are_refused_by_name() {
        let d = ReadLimits::default();
        assert_eq!(
            open(Vec::new(), true, d).await.err(),
            Some(Refusal::EmptyGzip)
        );
        assert_eq!(
            open(b"{\"id\": 1}\n".to_vec(), true, d).await.err(),
            Some(Refusal::NotGzip)
        );
        // An empty .jsonl is no refusal: it just holds nothing.
        let (got, refused, _) = lines(open(Vec::new(), false, d).await.unwrap()).await;
        assert_eq!((got.len(), refused), (0, None));
        let mut corrupt = gzip(b"{\"a\": 1}\n");
        let n = corrupt.len();
        corrupt[n - 8] ^= 0xff; // the CRC
        let (_, refused, _) = lines(open(corrupt, true, d).await.unwrap()).await;
        assert_eq!(refused, Some(Refusal::CorruptGzip));
    }

    #[tokio::test]
    async fn a_truncated_gzip_gives_the_lines_before_the_cut_and_the_cut_line() {
        let mut data = Vec::new();
        for i in 0..2000 {
            data.extend_from_slice(
                format!("{{\"line\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(i % 97)).as_bytes(),
            );
        }
        let mut z = gzip(&data);
        z.truncate(z.len() / 2);
        let (got, refused, cut) = lines(open(z, true, ReadLimits::default()).await.unwrap()).await;
        assert_eq!(refused, Some(Refusal::TruncatedGzip));
        assert!(got.len() > 100, "{} lines before the cut", got.len());
        for (i, line) in got.iter().enumerate() {
            assert!(
                line.as_ref()
                    .unwrap()
                    .starts_with(&format!("{{\"line\": {i},"))
            );
        }
        assert!(!cut.is_empty() || got.len() < 2000);
    }

    #[tokio::test]
    async fn a_gzip_that_inflates_past_its_ratio_or_size_is_refused() {
        // GIVEN 80 MiB of spaces in a gzip of about 80 KB (ratio ~1000)
        let bomb = gzip(&vec![b' '; 80 * 1024 * 1024]);
        let (_, refused, _) = lines(
            open(bomb.clone(), true, ReadLimits::default())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(refused, Some(Refusal::GzipRatio));
        let capped = ReadLimits {
            max_inflated_bytes: 1024 * 1024,
            ..ReadLimits::default()
        };
        let (_, refused, _) = lines(open(bomb, true, capped).await.unwrap()).await;
        assert_eq!(refused, Some(Refusal::GzipTooLarge));
        // A small file of good compression is read whole.
        let small = gzip(&vec![b'\n'; 1024 * 1024]);
        let (got, refused, _) =
            lines(open(small, true, ReadLimits::default()).await.unwrap()).await;
        assert_eq!((got.len(), refused), (1024 * 1024, None));
    }

    #[tokio::test]
    async fn concatenated_gzip_members_read_as_one_file() {
        let mut z = gzip(b"a\n");
        z.extend(gzip(b"b\n"));
        let (got, refused, _) = lines(open(z, true, ReadLimits::default()).await.unwrap()).await;
        assert_eq!(
            (got, refused),
            (vec![Ok("a\n".into()), Ok("b\n".into())], None)
        );
    }
}
