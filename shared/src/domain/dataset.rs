//! A prepared dataset as recorded in DynamoDB: where its files are, their
//! checksums, and which provider already has a copy.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{DatasetId, RunId, TenantId};
use super::provider::ProviderKind;

/// One file of the dataset in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFile {
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
    pub examples: u64,
}

/// A provider's copy of one of our files (an OpenAI file id, say). Keyed by
/// the file's sha256, so a resumed run never pays to upload it twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFile {
    pub provider: ProviderKind,
    pub sha256: String,
    pub provider_file_id: String,
    pub uploaded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub id: DatasetId,
    pub tenant_id: TenantId,
    /// The run that prepared it.
    pub run_id: RunId,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// The data format of the files, e.g. `openai-chat`.
    pub format: String,
    pub train: DatasetFile,
    #[serde(default)]
    pub validation: Option<DatasetFile>,
    pub manifest_key: String,
    /// The preparation's statistics, exactly as written to `manifest.json`.
    pub stats: serde_json::Value,
    #[serde(default)]
    pub provider_files: Vec<ProviderFile>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

impl DatasetRecord {
    /// The provider's id for a file with this checksum, if it has one.
    pub fn provider_file(&self, provider: ProviderKind, sha256: &str) -> Option<&str> {
        self.provider_files
            .iter()
            .find(|f| f.provider == provider && f.sha256 == sha256)
            .map(|f| f.provider_file_id.as_str())
    }
}
