//! The upload step, the monitor's first: give the provider the dataset's
//! files. Needs the table, the bucket (to name the files) and the providers.

use chrono::Utc;

use super::{Ledger, PipelineError, Step, Steps};
use crate::blob::Blobs;
use crate::domain::EventLevel;
use crate::domain::{ProviderFile, Run, RunStatus};
use crate::provider::{DatasetFileSource, Providers};

/// The statuses these steps take a run out of.
pub(super) const COVERS: [RunStatus; 1] = [RunStatus::Uploading];

/// Uploading.
pub struct UploadSteps {
    pub blobs: Blobs,
    pub providers: Providers,
}

impl Steps for UploadSteps {
    fn covers(&self, status: RunStatus) -> bool {
        COVERS.contains(&status)
    }

    async fn step(
        &self,
        ledger: &Ledger,
        run: &Run,
        _deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Step, PipelineError> {
        match run.status {
            RunStatus::Uploading => self.upload(ledger, run).await,
            _ => Ok(Step::Wait(run.clone())),
        }
    }
}

impl UploadSteps {
    /// uploading: give the provider each dataset file it does not have
    /// yet, recording each against its sha256 as soon as it is there.
    async fn upload(&self, ledger: &Ledger, run: &Run) -> Result<Step, PipelineError> {
        let provider = self.providers.get(run.provider)?;
        let dataset_id = run
            .dataset_id
            .clone()
            .ok_or_else(|| PipelineError::Inconsistent("uploading without a dataset".into()))?;
        let mut record = ledger
            .store
            .get_dataset(&run.tenant_id, &dataset_id)
            .await?;
        let files: Vec<(&str, crate::domain::DatasetFile)> =
            std::iter::once(("train", record.train.clone()))
                .chain(record.validation.clone().map(|v| ("validation", v)))
                .collect();
        for (role, file) in files {
            if record.provider_file(run.provider, &file.sha256).is_some() {
                continue;
            }
            let source = DatasetFileSource {
                bucket: self.blobs.bucket().to_owned(),
                key: file.key.clone(),
                bytes: file.bytes,
                sha256: file.sha256.clone(),
                filename: format!("{dataset_id}-{role}.jsonl"),
            };
            let uploaded = provider.prepare_file(&source).await?;
            record.provider_files.push(ProviderFile {
                provider: run.provider,
                sha256: file.sha256.clone(),
                provider_file_id: uploaded.id.clone(),
                uploaded_at: Utc::now(),
            });
            record = ledger.store.update_dataset(&record).await?;
            ledger
                .event(
                    run,
                    EventLevel::Info,
                    "file_uploaded",
                    format!(
                        "{role} file ready at {}: {}",
                        run.provider.as_str(),
                        uploaded.id
                    ),
                )
                .await;
        }
        let run = ledger
            .transition(
                run.clone(),
                RunStatus::Submitting,
                "creating the fine-tuning job",
            )
            .await?;
        Ok(Step::Continue(run))
    }
}
