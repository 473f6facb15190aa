//! `GET /models/{id}/download` (models) and `GET /datasets/{id}/download`
//! (job-status): a short-lived presigned URL to an object of the tenant's
//! in our bucket — a model's weights (Together's adapter), or exactly the
//! dataset file that was sent to the provider. The URL is signed with the
//! function's credentials for one object; nothing is proxied. Another
//! tenant's model or dataset is not found, as everywhere.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::input::FieldError;
use crate::blob::{BlobError, Blobs};
use crate::domain::{DatasetId, ModelId, ModelStatus, TenantId};
use crate::store::{Store, StoreError};

/// How long a download URL works: long enough to start a large download,
/// short enough that a leaked URL soon stops working.
pub const URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A download: where, until when, and what to expect.
#[derive(Debug, Clone, PartialEq)]
pub struct Download {
    pub url: String,
    pub expires_at: DateTime<Utc>,
    /// The file name the download is saved as.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadModelError {
    #[error("model not found")]
    NotFound,
    #[error(
        "model {0} has no weights here: OpenAI and Bedrock keep the weights they train; Together's are copied when the job completes"
    )]
    NoWeights(String),
    #[error("model {0} is deleted, and its weights with it")]
    Deleted(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("the download URL could not be made: {0}")]
    Presign(#[source] BlobError),
}

/// A URL to the model's weights.
pub async fn download_model(
    store: &Store,
    blobs: &Blobs,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Download, DownloadModelError> {
    let model_id = ModelId::parse(id).map_err(|_| DownloadModelError::NotFound)?;
    let model = match store.get_model(tenant, &model_id).await {
        Ok(model) => model,
        Err(StoreError::NotFound { .. }) => return Err(DownloadModelError::NotFound),
        Err(e) => return Err(DownloadModelError::Store(e)),
    };
    if matches!(model.status, ModelStatus::Deleting | ModelStatus::Deleted) {
        return Err(DownloadModelError::Deleted(model.id.to_string()));
    }
    let Some(weights) = model.weights else {
        return Err(DownloadModelError::NoWeights(model.id.to_string()));
    };
    let file = format!("{}-{}.tar.zst", model.id, weights.checkpoint);
    let url = blobs
        .presigned_get(&weights.key, URL_LIFETIME, &file)
        .await
        .map_err(DownloadModelError::Presign)?;
    Ok(Download {
        url,
        expires_at: now + chrono::Duration::seconds(URL_LIFETIME.as_secs() as i64),
        file,
        bytes: weights.bytes,
        sha256: weights.sha256,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadDatasetError {
    #[error("dataset not found")]
    NotFound,
    #[error("invalid query parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error("dataset {0} has no validation file (every example went to training)")]
    NoValidation(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("the download URL could not be made: {0}")]
    Presign(#[source] BlobError),
}

/// A URL to the dataset's `train` (default) or `validation` file.
pub async fn download_dataset(
    store: &Store,
    blobs: &Blobs,
    tenant: &TenantId,
    id: &str,
    file: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Download, DownloadDatasetError> {
    let validation = match file.filter(|f| !f.is_empty()) {
        None | Some("train") => false,
        Some("validation") => true,
        Some(_) => {
            return Err(DownloadDatasetError::InvalidQuery(vec![FieldError::new(
                "file",
                "must be train or validation",
            )]));
        }
    };
    let dataset_id = DatasetId::parse(id).map_err(|_| DownloadDatasetError::NotFound)?;
    let dataset = match store.get_dataset(tenant, &dataset_id).await {
        Ok(d) => d,
        Err(StoreError::NotFound { .. }) => return Err(DownloadDatasetError::NotFound),
        Err(e) => return Err(DownloadDatasetError::Store(e)),
    };
    let (object, name) = if validation {
        match dataset.validation {
            Some(v) => (v, "validation"),
            None => return Err(DownloadDatasetError::NoValidation(dataset.id.to_string())),
        }
    } else {
        (dataset.train, "train")
    };
    let file = format!("{}-{name}.jsonl", dataset.id);
    let url = blobs
        .presigned_get(&object.key, URL_LIFETIME, &file)
        .await
        .map_err(DownloadDatasetError::Presign)?;
    Ok(Download {
        url,
        expires_at: now + chrono::Duration::seconds(URL_LIFETIME.as_secs() as i64),
        file,
        bytes: object.bytes,
        sha256: object.sha256,
    })
}
