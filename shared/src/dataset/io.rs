//! Where exports come from and where datasets go: the S3 bucket, or a
//! local folder laid out like it. The preparation code sees only these
//! two small types, so both paths run the same rules.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};

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
