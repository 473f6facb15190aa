//! Handing the trained weights to the tenant: the capability of providers
//! that let a model's weights go (Together: the LoRA adapter, or the
//! merged model). The copy lives in our bucket, under the tenant's prefix,
//! and is downloaded through a short-lived presigned URL.

use async_trait::async_trait;

use super::ProviderError;
use crate::blob::WrittenObject;

/// What a copy holds: the LoRA adapter, or the merged model of a full
/// fine-tune.
pub fn checkpoint_name(full: bool) -> &'static str {
    if full { "merged" } else { "adapter" }
}

/// Weights a provider lets go.
#[async_trait]
pub trait ModelWeights: Send + Sync {
    /// Streams the weights the job `job_id` trained into our bucket at
    /// `key` (constant memory); `full` for a full fine-tune's merged
    /// model. Written whole or not at all: calling again starts over.
    async fn copy_weights(
        &self,
        job_id: &str,
        full: bool,
        key: &str,
    ) -> Result<WrittenObject, ProviderError>;
}
