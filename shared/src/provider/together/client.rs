//! The typed Together client: one method per endpoint the pipeline uses.
//! The transport (auth, timeouts, retries honouring `Retry-After`, the
//! error mapping) is the OpenAI adapter's [`Http`]: Together's API is
//! OpenAI-shaped in all of that, errors included (`{"error": {"message",
//! "type", "param", "code"}}`).

use futures::StreamExt;
use reqwest::Method;
use reqwest::multipart::Form;

use super::types::*;
use crate::blob::{Blobs, WrittenObject};
use crate::evaluation::EvalExample;
use crate::provider::ProviderError;
use crate::provider::inference::Reply;
use crate::provider::openai::chat::{ChatCompletion, messages, reply};
use crate::provider::openai::client::blob_part;
use crate::provider::openai::http::{Call, ClientSettings, Http, describe_reqwest};
use crate::secret::LazySecret;

/// A typed client over Together's API (or the local sandbox's Together
/// mode). Cheap to clone.
#[derive(Clone, Debug)]
pub struct TogetherClient {
    http: Http,
}

/// Together's chat completions body: OpenAI's, with `max_tokens` (Together
/// has no `max_completion_tokens`).
#[derive(Debug, serde::Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<serde_json::Value>,
    temperature: f64,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a serde_json::Value>,
}

impl TogetherClient {
    pub fn new(
        settings: ClientSettings,
        key: impl Into<LazySecret>,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            http: Http::new(settings, key.into())?,
        })
    }

    async fn bodyless<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        what: &str,
    ) -> Result<T, ProviderError> {
        let url = self.http.url(segments);
        self.http
            .json(Call::Other { what }, || async {
                self.http.request(method.clone(), url.clone())
            })
            .await
    }

    async fn post_json<T: serde::de::DeserializeOwned, B: serde::Serialize>(
        &self,
        segments: &[&str],
        body: &B,
        what: &str,
    ) -> Result<T, ProviderError> {
        let url = self.http.url(segments);
        self.http
            .json(Call::Other { what }, || async {
                Ok(self.http.request(Method::POST, url.clone())?.json(body))
            })
            .await
    }

    /// `POST /files/upload`: the S3 object streamed as the multipart `file`
    /// (re-read from S3 on a retry, never buffered).
    pub async fn upload_file_from_blob(
        &self,
        blobs: &Blobs,
        key: &str,
        bytes: u64,
        filename: &str,
    ) -> Result<FileResponse, ProviderError> {
        let url = self.http.url(&["files", "upload"]);
        self.http
            .json(
                Call::Other {
                    what: "file upload",
                },
                || async {
                    let part = blob_part(blobs, key, None, bytes, filename).await?;
                    let form = Form::new()
                        .text("purpose", "fine-tune")
                        .text("file_name", filename.to_owned())
                        .text("file_type", "jsonl")
                        .part("file", part);
                    Ok(self
                        .http
                        .request(Method::POST, url.clone())?
                        .timeout(self.http.settings.upload_timeout)
                        .multipart(form))
                },
            )
            .await
    }

    pub async fn create_fine_tune(
        &self,
        request: &CreateFineTuneRequest<'_>,
    ) -> Result<FineTune, ProviderError> {
        self.post_json(&["fine-tunes"], request, "fine-tuning job")
            .await
    }

    pub async fn estimate_price(
        &self,
        request: &EstimatePriceRequest<'_>,
    ) -> Result<PriceEstimate, ProviderError> {
        self.post_json(&["fine-tunes", "estimate-price"], request, "price estimate")
            .await
    }

    /// Every job of the account (Together's listing has no filter).
    pub async fn list_fine_tunes(&self) -> Result<FineTuneList, ProviderError> {
        self.bodyless(Method::GET, &["fine-tunes"], "fine-tuning jobs")
            .await
    }

    pub async fn get_fine_tune(&self, id: &str) -> Result<FineTune, ProviderError> {
        let what = format!("fine-tuning job {id}");
        self.bodyless(Method::GET, &["fine-tunes", id], &what).await
    }

    pub async fn cancel_fine_tune(&self, id: &str) -> Result<FineTune, ProviderError> {
        let what = format!("fine-tuning job {id}");
        self.bodyless(Method::POST, &["fine-tunes", id, "cancel"], &what)
            .await
    }

    /// `DELETE /fine-tunes/{id}`: the job and the model it made.
    pub async fn delete_fine_tune(&self, id: &str) -> Result<serde_json::Value, ProviderError> {
        let what = format!("fine-tuning job {id}");
        self.bodyless(Method::DELETE, &["fine-tunes", id], &what)
            .await
    }

    pub async fn events(&self, id: &str) -> Result<FineTuneEvents, ProviderError> {
        let what = format!("events of fine-tuning job {id}");
        self.bodyless(Method::GET, &["fine-tunes", id, "events"], &what)
            .await
    }

    pub async fn checkpoints(&self, id: &str) -> Result<FineTuneCheckpoints, ProviderError> {
        let what = format!("checkpoints of fine-tuning job {id}");
        self.bodyless(Method::GET, &["fine-tunes", id, "checkpoints"], &what)
            .await
    }

    pub async fn metrics(&self, id: &str) -> Result<FineTuneMetrics, ProviderError> {
        let what = format!("metrics of fine-tuning job {id}");
        self.bodyless(Method::GET, &["fine-tunes", id, "metrics"], &what)
            .await
    }

    /// `GET /finetune/download?ft_id=&checkpoint=adapter`, streamed into
    /// the bucket at `key` (multipart, constant memory). A failed transfer
    /// aborts the upload; calling again starts over (the object is written
    /// whole or not at all).
    pub async fn download_to(
        &self,
        job_id: &str,
        checkpoint: &str,
        blobs: &Blobs,
        key: &str,
    ) -> Result<WrittenObject, ProviderError> {
        let mut url = self.http.url(&["finetune", "download"]);
        url.query_pairs_mut()
            .append_pair("ft_id", job_id)
            .append_pair("checkpoint", checkpoint);
        let what = format!("weights of fine-tuning job {job_id}");
        let response = self
            .http
            .execute(Call::Other { what: &what }, || async {
                Ok(self
                    .http
                    .request(Method::GET, url.clone())?
                    .timeout(self.http.settings.upload_timeout))
            })
            .await?;
        let mut writer = blobs.writer(key, "application/octet-stream");
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    writer.abort().await;
                    return Err(ProviderError::Transport(describe_reqwest(&e)));
                }
            };
            writer.write(&chunk).await?;
        }
        Ok(writer.finish().await?)
    }

    /// Chat completions (OpenAI-compatible), at temperature 0.
    pub async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError> {
        let request = ChatRequest {
            model,
            messages: messages(example),
            temperature: 0.0,
            max_tokens,
            tools: example.tools.as_ref(),
        };
        let completion: ChatCompletion = self
            .post_json(&["chat", "completions"], &request, "chat completion")
            .await?;
        reply(completion)
    }
}
