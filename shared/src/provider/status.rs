//! Each provider's job statuses mapped to our [`JobStatus`], one function
//! per provider, side by side, so the whole vocabulary is reviewed in one
//! place.

use crate::domain::JobStatus;

/// OpenAI's `fine_tuning.job` status. Covers the spec's enum
/// (`validating_files`, `queued`, `running`, `succeeded`, `failed`,
/// `cancelled`) plus `paused`, which the spec's own pause example returns
/// but its enum omits. Anything else is a status OpenAI added after this
/// was written: it maps to `Unknown` (not terminal, so the run keeps being
/// watched) and is logged, never a panic or a decode error.
pub fn openai_job_status(status: &str) -> JobStatus {
    match status {
        "validating_files" => JobStatus::ValidatingFiles,
        "queued" => JobStatus::Queued,
        "running" => JobStatus::Running,
        "paused" => JobStatus::Paused,
        "succeeded" => JobStatus::Succeeded,
        "failed" => JobStatus::Failed,
        "cancelled" => JobStatus::Cancelled,
        other => {
            tracing::warn!(
                status = other,
                "OpenAI reported a fine-tuning job status this service does not know"
            );
            JobStatus::Unknown
        }
    }
}

/// Together's `FinetuneJobStatus`: `pending` and `queued` wait for a GPU
/// (`Queued`); `running`, `compressing` and `uploading` are the job still
/// at work (the model is not ready until `completed`); `cancel_requested`
/// is `Stopping`; `error` is `Failed`. Anything newer is `Unknown` and
/// logged, as for the others.
pub fn together_job_status(status: &str) -> JobStatus {
    match status {
        "pending" | "queued" => JobStatus::Queued,
        "running" | "compressing" | "uploading" => JobStatus::Running,
        "cancel_requested" => JobStatus::Stopping,
        "cancelled" => JobStatus::Cancelled,
        "error" => JobStatus::Failed,
        "completed" => JobStatus::Succeeded,
        other => {
            tracing::warn!(
                status = other,
                "Together reported a fine-tuning job status this service does not know"
            );
            JobStatus::Unknown
        }
    }
}

/// Bedrock's `ModelCustomizationJobStatus`: `InProgress`, `Completed`,
/// `Failed`, `Stopping`, `Stopped`. Bedrock does not say whether an
/// in-progress job is still validating or already training, so
/// `InProgress` is `Running`. `Stopped` is our `Cancelled`: only a stop
/// request (ours, or someone's in the console) ends a job that way.
/// Anything newer is `Unknown` and logged, as for OpenAI.
pub fn bedrock_job_status(status: &str) -> JobStatus {
    match status {
        "InProgress" => JobStatus::Running,
        "Completed" => JobStatus::Succeeded,
        "Failed" => JobStatus::Failed,
        "Stopping" => JobStatus::Stopping,
        "Stopped" => JobStatus::Cancelled,
        other => {
            tracing::warn!(
                status = other,
                "Bedrock reported a model customization job status this service does not know"
            );
            JobStatus::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_bedrock_status_has_its_own_mapping() {
        let cases = [
            ("InProgress", JobStatus::Running),
            ("Completed", JobStatus::Succeeded),
            ("Failed", JobStatus::Failed),
            ("Stopping", JobStatus::Stopping),
            ("Stopped", JobStatus::Cancelled),
        ];
        for (wire, ours) in cases {
            assert_eq!(bedrock_job_status(wire), ours, "{wire}");
        }
        assert_eq!(bedrock_job_status("Paused"), JobStatus::Unknown);
        assert!(!bedrock_job_status("Stopping").is_terminal());
    }

    #[test]
    fn every_documented_together_status_has_its_own_mapping() {
        // The schema's FinetuneJobStatus enum, in its order.
        let cases = [
            ("pending", JobStatus::Queued),
            ("queued", JobStatus::Queued),
            ("running", JobStatus::Running),
            ("compressing", JobStatus::Running),
            ("uploading", JobStatus::Running),
            ("cancel_requested", JobStatus::Stopping),
            ("cancelled", JobStatus::Cancelled),
            ("error", JobStatus::Failed),
            ("completed", JobStatus::Succeeded),
        ];
        for (wire, ours) in cases {
            assert_eq!(together_job_status(wire), ours, "{wire}");
        }
        assert_eq!(together_job_status("paused"), JobStatus::Unknown);
        assert!(!together_job_status("uploading").is_terminal());
    }

    #[test]
    fn every_documented_openai_status_has_its_own_mapping() {
        let cases = [
            ("validating_files", JobStatus::ValidatingFiles),
            ("queued", JobStatus::Queued),
            ("running", JobStatus::Running),
            ("paused", JobStatus::Paused),
            ("succeeded", JobStatus::Succeeded),
            ("failed", JobStatus::Failed),
            ("cancelled", JobStatus::Cancelled),
        ];
        for (wire, ours) in cases {
            assert_eq!(openai_job_status(wire), ours, "{wire}");
        }
    }

    #[test]
    fn an_unknown_openai_status_is_unknown_and_not_terminal() {
        let status = openai_job_status("pending_review");
        assert_eq!(status, JobStatus::Unknown);
        assert!(!status.is_terminal());
    }

    #[test]
    fn exactly_the_three_final_openai_statuses_are_terminal() {
        let terminal: Vec<&str> = [
            "validating_files",
            "queued",
            "running",
            "paused",
            "succeeded",
            "failed",
            "cancelled",
        ]
        .into_iter()
        .filter(|s| openai_job_status(s).is_terminal())
        .collect();
        assert_eq!(terminal, ["succeeded", "failed", "cancelled"]);
    }
}
