//! Conversation exports and dataset files in one S3 bucket.
//!
//! Everything streams: exports are read line by line (gunzipped on the fly
//! for `.gz`) and datasets are written by multipart upload from a fixed
//! buffer, so memory does not grow with object size.

mod compose;
pub mod keys;
mod writer;

use std::error::Error as StdError;
use std::pin::Pin;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use chrono::NaiveDate;
use tokio::io::{AsyncBufRead, AsyncRead, BufReader};

use crate::domain::TenantId;

pub use compose::{Composed, Part, Piece, plan_parts};
pub use keys::{
    DatasetObject, ShardObject, conversation_day_prefix, dataset_key, shard_key, shards_prefix,
};
pub use writer::{MultipartWriter, WrittenObject};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("date range {start}..{end} is empty: the start is after the end")]
    EmptyRange { start: NaiveDate, end: NaiveDate },
    #[error("object {key} is not valid JSON: {source}")]
    BadJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("S3 {op} on {key} failed: {source}")]
    S3 {
        op: &'static str,
        key: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl BlobError {
    fn s3(op: &'static str, key: &str, source: impl StdError + Send + Sync + 'static) -> Self {
        BlobError::S3 {
            op,
            key: key.to_owned(),
            source: Box::new(source),
        }
    }
}

/// One object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

impl ObjectInfo {
    pub fn is_gzip(&self) -> bool {
        self.key.ends_with(".gz")
    }
}

/// A streaming reader over an object's bytes, already decompressed.
pub type ObjectReader = Pin<Box<dyn AsyncBufRead + Send>>;

/// The bucket. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Blobs {
    client: crate::aws::LazyClient<Client>,
    bucket: String,
}

impl Blobs {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client: crate::aws::LazyClient::ready(client),
            bucket: bucket.into(),
        }
    }

    /// The client made on the first call (see [`crate::aws::LazyClient`]).
    pub fn lazy(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Self {
            client: crate::aws::LazyClient::new(sdk, crate::aws::s3_client),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &Client {
        self.client.get()
    }

    /// The tenant's export files (`.jsonl`, `.jsonl.gz`) for the days from
    /// `start` to `end`, both included. Lists only those days' prefixes, so
    /// a file of the day before the range is never seen, let alone read.
    /// Objects of other types are skipped (and logged by count).
    pub async fn list_conversation_files(
        &self,
        tenant: &TenantId,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<ObjectInfo>, BlobError> {
        if start > end {
            return Err(BlobError::EmptyRange { start, end });
        }
        let mut files = Vec::new();
        let mut skipped = 0usize;
        for day in keys::days(start, end) {
            let prefix = conversation_day_prefix(tenant, day);
            for object in self.list_prefix(&prefix).await? {
                if object.key.ends_with(".jsonl") || object.key.ends_with(".jsonl.gz") {
                    files.push(object);
                } else {
                    skipped += 1;
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "export objects that are not .jsonl or .jsonl.gz were skipped"
            );
        }
        Ok(files)
    }

    /// Every object under `prefix`, in key order.
    pub async fn list_prefix(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError> {
        let mut objects = Vec::new();
        let mut pages = self
            .client()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| BlobError::s3("ListObjectsV2", prefix, e))?;
            for object in page.contents.unwrap_or_default() {
                if let Some(key) = object.key {
                    objects.push(ObjectInfo {
                        key,
                        size: object.size.unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        Ok(objects)
    }

    /// Streams an object, gunzipping it when its key ends in `.gz`
    /// (multi-member gzip too, as `cat a.gz b.gz` produces).
    pub async fn open(&self, key: &str) -> Result<ObjectReader, BlobError> {
        let body = self.get_body(key, None).await?;
        let raw = BufReader::with_capacity(256 * 1024, body.into_async_read());
        if key.ends_with(".gz") {
            let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(raw);
            decoder.multiple_members(true);
            Ok(Box::pin(BufReader::with_capacity(256 * 1024, decoder)))
        } else {
            Ok(Box::pin(raw))
        }
    }

    /// The object's raw bytes as a stream, optionally one byte range
    /// (`start..end`, end exclusive) for part-by-part uploads elsewhere.
    pub async fn open_raw(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Pin<Box<dyn AsyncRead + Send>>, BlobError> {
        let body = self.get_body(key, range).await?;
        Ok(Box::pin(body.into_async_read()))
    }

    /// The object's size in bytes.
    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        let head = self
            .client()
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|se| se.is_not_found()) {
                    BlobError::NotFound {
                        key: key.to_owned(),
                    }
                } else {
                    BlobError::s3("HeadObject", key, e)
                }
            })?;
        Ok(head.content_length.unwrap_or(0).max(0) as u64)
    }

    async fn get_body(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream, BlobError> {
        let mut request = self.client().get_object().bucket(&self.bucket).key(key);
        if let Some(r) = range {
            if r.end <= r.start {
                return Ok(ByteStream::from_static(b""));
            }
            request = request.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = request.send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|se| se.is_no_such_key()) {
                BlobError::NotFound {
                    key: key.to_owned(),
                }
            } else {
                BlobError::s3("GetObject", key, e)
            }
        })?;
        Ok(out.body)
    }

    /// Reads a small JSON object (a manifest) whole.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<T, BlobError> {
        let body = self.get_body(key, None).await?;
        let bytes = body
            .collect()
            .await
            .map_err(|e| BlobError::s3("GetObject", key, e))?
            .into_bytes();
        serde_json::from_slice(&bytes).map_err(|source| BlobError::BadJson {
            key: key.to_owned(),
            source,
        })
    }

    /// Reads a small object whole (a shard's index).
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let body = self.get_body(key, None).await?;
        Ok(body
            .collect()
            .await
            .map_err(|e| BlobError::s3("GetObject", key, e))?
            .into_bytes()
            .to_vec())
    }

    /// Writes a small object whole.
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        self.client()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| BlobError::s3("PutObject", key, e))?;
        Ok(())
    }

    /// A URL that GETs the object for `expires_in`, signed with this
    /// function's credentials (no request to S3 is made); the download is
    /// saved as `filename`.
    pub async fn presigned_get(
        &self,
        key: &str,
        expires_in: std::time::Duration,
        filename: &str,
    ) -> Result<String, BlobError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| BlobError::s3("presign", key, e))?;
        let request = self
            .client()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(format!("attachment; filename=\"{filename}\""))
            .presigned(config)
            .await
            .map_err(|e| BlobError::s3("presign GetObject", key, e))?;
        Ok(request.uri().to_owned())
    }

    /// Deletes the object (deleting one that is gone is not an error).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.client()
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| BlobError::s3("DeleteObject", key, e))?;
        Ok(())
    }

    /// Starts a streaming upload of a large object; see [`MultipartWriter`].
    pub fn writer(&self, key: impl Into<String>, content_type: &str) -> MultipartWriter {
        MultipartWriter::new(
            self.client().clone(),
            self.bucket.clone(),
            key.into(),
            content_type,
        )
    }
}
