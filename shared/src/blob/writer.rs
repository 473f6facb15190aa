//! Streaming upload of a large object in constant memory.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};

use super::BlobError;

/// S3 takes parts of 5 MiB and up (but the last); 8 MiB keeps memory small
/// and allows objects up to 80 GB within the 10,000-part limit.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// What was written: enough for a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenObject {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Buffers one part at a time and uploads it when full, so memory stays at
/// one part whatever the object's size. An object smaller than one part
/// is sent with a single PutObject. A failed upload is aborted; one
/// abandoned by a crash is cleaned up by the bucket's lifecycle rule.
pub struct MultipartWriter {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    hasher: Sha256,
    bytes: u64,
}

impl MultipartWriter {
    pub(super) fn new(client: Client, bucket: String, key: String, content_type: &str) -> Self {
        Self {
            client,
            bucket,
            key,
            content_type: content_type.to_owned(),
            buffer: Vec::with_capacity(PART_SIZE),
            upload_id: None,
            parts: Vec::new(),
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let room = PART_SIZE - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == PART_SIZE
                && let Err(e) = self.flush_part().await
            {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Uploads what is left and completes the object.
    pub async fn finish(mut self) -> Result<WrittenObject, BlobError> {
        let result = self.finish_inner().await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn finish_inner(&mut self) -> Result<WrittenObject, BlobError> {
        let sha256 = hex::encode(self.hasher.clone().finalize());
        match self.upload_id.clone() {
            None => {
                let body = std::mem::take(&mut self.buffer);
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| BlobError::s3("PutObject", &self.key, e))?;
            }
            Some(upload_id) => {
                if !self.buffer.is_empty() {
                    self.flush_part().await?;
                }
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(std::mem::take(&mut self.parts)))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| BlobError::s3("CompleteMultipartUpload", &self.key, e))?;
                self.upload_id = None;
            }
        }
        Ok(WrittenObject {
            key: self.key.clone(),
            bytes: self.bytes,
            sha256,
        })
    }

    async fn flush_part(&mut self) -> Result<(), BlobError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .send()
                    .await
                    .map_err(|e| BlobError::s3("CreateMultipartUpload", &self.key, e))?;
                let id = created.upload_id.unwrap_or_default();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let part_number = self.parts.len() as i32 + 1;
        // Hand the full buffer to the SDK and start a fresh one: at most one
        // part is in memory while it is sent.
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE));
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| BlobError::s3("UploadPart", &self.key, e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(uploaded.e_tag)
                .build(),
        );
        Ok(())
    }

    /// Best effort: the upload is already failing; the lifecycle rule
    /// catches what this misses.
    pub async fn abort(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            let result = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await;
            if let Err(e) = result {
                tracing::warn!(key = %self.key, error = %crate::telemetry::chain(&e), "could not abort a failed multipart upload");
            }
        }
    }
}
