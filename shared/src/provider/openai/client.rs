//! The typed OpenAI client: one method per endpoint the pipeline uses.

use std::ops::Range;

use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method};
use tokio_util::io::ReaderStream;

use crate::blob::Blobs;
use crate::provider::ProviderError;

use super::http::{Call, ClientSettings, Http};
use super::types::*;
use crate::secret::LazySecret;

/// Read size when streaming an S3 object into a request body.
const STREAM_CHUNK: usize = 256 * 1024;

/// The MIME type OpenAI's own example uses for fine-tune JSONL uploads.
const JSONL_MIME: &str = "text/jsonl";

/// Query parameters of `GET /fine_tuning/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobs<'a> {
    pub after: Option<&'a str>,
    pub limit: Option<u32>,
    /// `metadata[k]=v` filters.
    pub metadata: Vec<(&'a str, &'a str)>,
}

/// A typed client over OpenAI's fine-tuning API (or Azure OpenAI's v1
/// endpoint, or the local sandbox). Cheap to clone.
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    http: Http,
}

impl OpenAiClient {
    /// `key` is an [`ApiKey`](super::ApiKey) in hand or a [`LazySecret`] read on the
    /// first call.
    pub fn new(
        settings: ClientSettings,
        key: impl Into<LazySecret>,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            http: Http::new(settings, key.into())?,
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.http.settings
    }

    // ---- Files -------------------------------------------------------

    /// `POST /files` with purpose `fine-tune`, the body streamed from S3.
    pub async fn upload_file_from_blob(
        &self,
        blobs: &Blobs,
        key: &str,
        bytes: u64,
        filename: &str,
    ) -> Result<FileObject, ProviderError> {
        let url = self.http.url(&["files"]);
        self.http
            .json(
                Call::Other {
                    what: "file upload",
                },
                || async {
                    let part = blob_part(blobs, key, None, bytes, filename).await?;
                    let form = Form::new().text("purpose", "fine-tune").part("file", part);
                    Ok(self
                        .http
                        .request(Method::POST, url.clone())?
                        .timeout(self.http.settings.upload_timeout)
                        .multipart(form))
                },
            )
            .await
    }

    pub async fn retrieve_file(&self, file_id: &str) -> Result<FileObject, ProviderError> {
        let url = self.http.url(&["files", file_id]);
        let what = format!("file {file_id}");
        self.bodyless(Method::GET, url, &what).await
    }

    pub async fn delete_file(&self, file_id: &str) -> Result<Deleted, ProviderError> {
        let url = self.http.url(&["files", file_id]);
        let what = format!("file {file_id}");
        self.bodyless(Method::DELETE, url, &what).await
    }

    // ---- Uploads -----------------------------------------------------

    pub async fn create_upload(
        &self,
        request: &CreateUploadRequest,
    ) -> Result<UploadObject, ProviderError> {
        let url = self.http.url(&["uploads"]);
        self.http
            .json(Call::Other { what: "upload" }, || async {
                Ok(self.http.request(Method::POST, url.clone())?.json(request))
            })
            .await
    }

    /// `POST /uploads/{id}/parts`: the byte `range` of the S3 object,
    /// streamed (re-read from S3 on a retry, never buffered).
    pub async fn add_upload_part_from_blob(
        &self,
        upload_id: &str,
        blobs: &Blobs,
        key: &str,
        range: Range<u64>,
    ) -> Result<UploadPartObject, ProviderError> {
        let url = self.http.url(&["uploads", upload_id, "parts"]);
        let what = format!("upload {upload_id}");
        let len = range.end.saturating_sub(range.start);
        self.http
            .json(Call::Other { what: &what }, || async {
                let part = blob_part(blobs, key, Some(range.clone()), len, "part").await?;
                let form = Form::new().part("data", part);
                Ok(self
                    .http
                    .request(Method::POST, url.clone())?
                    .timeout(self.http.settings.upload_timeout)
                    .multipart(form))
            })
            .await
    }

    pub async fn complete_upload(
        &self,
        upload_id: &str,
        request: &CompleteUploadRequest,
    ) -> Result<UploadObject, ProviderError> {
        let url = self.http.url(&["uploads", upload_id, "complete"]);
        let what = format!("upload {upload_id}");
        self.http
            .json(Call::Other { what: &what }, || async {
                Ok(self.http.request(Method::POST, url.clone())?.json(request))
            })
            .await
    }

    pub async fn cancel_upload(&self, upload_id: &str) -> Result<UploadObject, ProviderError> {
        let url = self.http.url(&["uploads", upload_id, "cancel"]);
        let what = format!("upload {upload_id}");
        self.bodyless(Method::POST, url, &what).await
    }

    /// The whole Uploads flow in constant memory: create, one ranged S3
    /// read streamed per part (sequentially, like openai-python), complete.
    /// Any failure after creation cancels the upload (best effort) so no
    /// half upload lingers for its hour.
    pub async fn upload_large_from_blob(
        &self,
        blobs: &Blobs,
        key: &str,
        bytes: u64,
        filename: &str,
    ) -> Result<FileObject, ProviderError> {
        let upload = self
            .create_upload(&CreateUploadRequest {
                filename: filename.to_owned(),
                purpose: "fine-tune".to_owned(),
                bytes,
                mime_type: JSONL_MIME.to_owned(),
            })
            .await?;
        let result = self
            .send_parts_and_complete(&upload.id, blobs, key, bytes)
            .await;
        if result.is_err()
            && let Err(e) = self.cancel_upload(&upload.id).await
        {
            tracing::warn!(upload_id = %upload.id, error = %crate::telemetry::chain(&e), "could not cancel a failed upload");
        }
        result
    }

    async fn send_parts_and_complete(
        &self,
        upload_id: &str,
        blobs: &Blobs,
        key: &str,
        bytes: u64,
    ) -> Result<FileObject, ProviderError> {
        let part_size = self.http.settings.part_size.max(1);
        let mut part_ids = Vec::with_capacity(bytes.div_ceil(part_size) as usize);
        let mut start = 0;
        while start < bytes {
            let end = (start + part_size).min(bytes);
            let part = self
                .add_upload_part_from_blob(upload_id, blobs, key, start..end)
                .await?;
            tracing::debug!(upload_id, part = %part.id, start, end, "upload part sent");
            part_ids.push(part.id);
            start = end;
        }
        let completed = self
            .complete_upload(
                upload_id,
                &CompleteUploadRequest {
                    part_ids,
                    md5: None,
                },
            )
            .await?;
        completed.file.ok_or_else(|| {
            ProviderError::Decode(format!(
                "upload {upload_id} completed with status {:?} but no file",
                completed.status
            ))
        })
    }

    /// Files API up to the threshold, Uploads API above it.
    pub async fn upload_from_blob(
        &self,
        blobs: &Blobs,
        key: &str,
        bytes: u64,
        filename: &str,
    ) -> Result<FileObject, ProviderError> {
        if bytes > self.http.settings.upload_threshold {
            self.upload_large_from_blob(blobs, key, bytes, filename)
                .await
        } else {
            self.upload_file_from_blob(blobs, key, bytes, filename)
                .await
        }
    }

    // ---- Chat completions -------------------------------------------

    /// `POST /chat/completions`: one answer (the evaluation's inference).
    pub async fn chat_completion(
        &self,
        request: &super::chat::ChatRequest<'_>,
    ) -> Result<super::chat::ChatCompletion, ProviderError> {
        let url = self.http.url(&["chat", "completions"]);
        let what = format!("model {}", request.model);
        self.http
            .json(Call::Other { what: &what }, || async {
                Ok(self.http.request(Method::POST, url.clone())?.json(request))
            })
            .await
    }

    // ---- Fine-tuning jobs -------------------------------------------

    pub async fn create_job(
        &self,
        request: &CreateFineTuningJobRequest,
    ) -> Result<FineTuningJobObject, ProviderError> {
        let url = self.http.url(&["fine_tuning", "jobs"]);
        self.http
            .json(Call::CreateJob, || async {
                Ok(self.http.request(Method::POST, url.clone())?.json(request))
            })
            .await
    }

    pub async fn retrieve_job(&self, job_id: &str) -> Result<FineTuningJobObject, ProviderError> {
        self.job_call(Method::GET, job_id, None).await
    }

    pub async fn cancel_job(&self, job_id: &str) -> Result<FineTuningJobObject, ProviderError> {
        self.job_call(Method::POST, job_id, Some("cancel")).await
    }

    pub async fn pause_job(&self, job_id: &str) -> Result<FineTuningJobObject, ProviderError> {
        self.job_call(Method::POST, job_id, Some("pause")).await
    }

    pub async fn resume_job(&self, job_id: &str) -> Result<FineTuningJobObject, ProviderError> {
        self.job_call(Method::POST, job_id, Some("resume")).await
    }

    async fn job_call(
        &self,
        method: Method,
        job_id: &str,
        action: Option<&str>,
    ) -> Result<FineTuningJobObject, ProviderError> {
        let mut segments = vec!["fine_tuning", "jobs", job_id];
        segments.extend(action);
        let url = self.http.url(&segments);
        let what = format!("fine-tuning job {job_id}");
        self.http
            .json(Call::Other { what: &what }, || async {
                self.http.request(method.clone(), url.clone())
            })
            .await
    }

    pub async fn list_jobs(
        &self,
        query: &ListJobs<'_>,
    ) -> Result<ListPage<FineTuningJobObject>, ProviderError> {
        let mut url = self.http.url(&["fine_tuning", "jobs"]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(after) = query.after {
                pairs.append_pair("after", after);
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
            for (k, v) in &query.metadata {
                pairs.append_pair(&format!("metadata[{k}]"), v);
            }
        }
        self.http
            .json(
                Call::Other {
                    what: "fine-tuning jobs",
                },
                || async { self.http.request(Method::GET, url.clone()) },
            )
            .await
    }

    /// One page of a job's events, newest first (OpenAI's order).
    pub async fn list_events_page(
        &self,
        job_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ListPage<JobEventObject>, ProviderError> {
        self.job_list(job_id, "events", after, limit).await
    }

    pub async fn list_checkpoints(
        &self,
        job_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ListPage<CheckpointObject>, ProviderError> {
        self.job_list(job_id, "checkpoints", after, limit).await
    }

    async fn job_list<T: serde::de::DeserializeOwned>(
        &self,
        job_id: &str,
        list: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ListPage<T>, ProviderError> {
        let mut url = self.http.url(&["fine_tuning", "jobs", job_id, list]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(after) = after {
                pairs.append_pair("after", after);
            }
            pairs.append_pair("limit", &limit.to_string());
        }
        let what = format!("fine-tuning job {job_id}");
        self.bodyless(Method::GET, url, &what).await
    }

    /// The shape most endpoints share: no body, a JSON answer, retried as
    /// `Call::Other` (never a job creation).
    async fn bodyless<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: reqwest::Url,
        what: &str,
    ) -> Result<T, ProviderError> {
        self.http
            .json(Call::Other { what }, || async {
                self.http.request(method.clone(), url.clone())
            })
            .await
    }

    // ---- Models ------------------------------------------------------

    pub async fn delete_model(&self, model: &str) -> Result<Deleted, ProviderError> {
        let url = self.http.url(&["models", model]);
        let what = format!("model {model}");
        self.bodyless(Method::DELETE, url, &what).await
    }
}

/// A multipart part whose body is the S3 object (or one byte range of it),
/// streamed with a known length so the request has a Content-Length and
/// memory stays at one read buffer.
pub(crate) async fn blob_part(
    blobs: &Blobs,
    key: &str,
    range: Option<Range<u64>>,
    len: u64,
    filename: &str,
) -> Result<Part, ProviderError> {
    let reader = blobs.open_raw(key, range).await?;
    let stream = ReaderStream::with_capacity(reader, STREAM_CHUNK);
    Part::stream_with_length(Body::wrap_stream(stream), len)
        .file_name(filename.to_owned())
        .mime_str(JSONL_MIME)
        .map_err(|e| ProviderError::NotConfigured(format!("multipart MIME type: {e}")))
}
