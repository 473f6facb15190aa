//! Each operation's error enum, mapped to an [`ApiError`] here and only
//! here. The conversions are pure: a store failure becomes a generic 500
//! carrying its cause, which is logged when the response is made
//! ([`ApiError::into_response`]) and never shown (it can name tables and
//! AWS request ids).

use std::time::Duration;

use super::problem::{ApiError, InternalCause};
use crate::api::cancel::CancelError;
use crate::api::download::{DownloadDatasetError, DownloadModelError};
use crate::api::evaluation::ListEvaluationError;
use crate::api::input::FieldError;
use crate::api::job_status::{
    GetDatasetError, GetMetricsError, GetRunError, ListEventsError, ListRunsError,
};
use crate::api::limits::GetLimitsError;
use crate::api::models::{
    ActivateModelError, DeleteModelError, GetActiveModelError, GetModelError, ListModelsError,
};
use crate::api::start_run::StartRunError;
use crate::provider::ProviderError;
use crate::store::StoreError;
use crate::webhook::WebhookError;

fn internal(error: &StoreError) -> ApiError {
    ApiError::internal("store failure", error)
}

fn run_not_found() -> ApiError {
    ApiError::NotFound("run not found".to_owned())
}

impl From<StartRunError> for ApiError {
    fn from(e: StartRunError) -> Self {
        match e {
            StartRunError::MalformedJson(detail) => ApiError::MalformedBody(detail),
            StartRunError::Invalid(errors) => ApiError::Validation(errors),
            StartRunError::IdempotencyKeyReused { .. } => ApiError::IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body; \
                 use a new key for a new request"
                    .to_owned(),
            ),
            StartRunError::Store(e) => internal(&e),
        }
    }
}

impl From<ListRunsError> for ApiError {
    fn from(e: ListRunsError) -> Self {
        match e {
            ListRunsError::InvalidQuery(errors) => ApiError::Validation(errors),
            ListRunsError::Store(e) => internal(&e),
        }
    }
}

impl From<GetRunError> for ApiError {
    fn from(e: GetRunError) -> Self {
        match e {
            GetRunError::NotFound => run_not_found(),
            GetRunError::Store(e) => internal(&e),
        }
    }
}

impl From<ListEventsError> for ApiError {
    fn from(e: ListEventsError) -> Self {
        match e {
            ListEventsError::NotFound => run_not_found(),
            ListEventsError::InvalidQuery(errors) => ApiError::Validation(errors),
            ListEventsError::Store(e) => internal(&e),
        }
    }
}

impl From<GetMetricsError> for ApiError {
    fn from(e: GetMetricsError) -> Self {
        match e {
            GetMetricsError::NotFound => run_not_found(),
            GetMetricsError::Store(e) => internal(&e),
        }
    }
}

impl From<GetDatasetError> for ApiError {
    fn from(e: GetDatasetError) -> Self {
        match e {
            GetDatasetError::NotFound => ApiError::NotFound("dataset not found".to_owned()),
            GetDatasetError::Store(e) => internal(&e),
        }
    }
}

impl From<GetLimitsError> for ApiError {
    fn from(e: GetLimitsError) -> Self {
        match e {
            GetLimitsError::Store(e) => internal(&e),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound => run_not_found(),
            e @ (CancelError::Finished { .. } | CancelError::JobAlreadyFinished { .. }) => {
                ApiError::Conflict(e.to_string())
            }
            CancelError::ProviderUnavailable(p) => {
                let retry_after = match &p {
                    ProviderError::RateLimited { retry_after, .. } => {
                        Some(retry_after.unwrap_or(Duration::from_secs(5)))
                    }
                    ProviderError::NotConfigured(_) => None,
                    _ => Some(Duration::from_secs(5)),
                };
                ApiError::Unavailable {
                    detail: format!(
                        "could not cancel the provider's job right now ({}); the run was not \
                         cancelled, try again",
                        p.code()
                    ),
                    retry_after,
                }
            }
            CancelError::ProviderRefused(p) => ApiError::BadGateway(format!(
                "the provider refused to cancel the job ({}); the run was not cancelled",
                p.code()
            )),
            CancelError::Contended => ApiError::Unavailable {
                detail: e.to_string(),
                retry_after: Some(Duration::from_secs(1)),
            },
            CancelError::Store(e) => internal(&e),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Validation(vec![e])
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Signature(e) => ApiError::InvalidSignature(e.to_string()),
            WebhookError::MalformedBody(detail) => ApiError::MalformedBody(detail),
            WebhookError::Store(e) => internal(&e),
            WebhookError::Secret(e) => ApiError::internal("webhook secret unavailable", &e),
            // A 5xx makes the provider retry the delivery, which was left
            // unclaimed; the monitor is the safety net. (The webhook
            // handler logs its code.)
            WebhookError::Transient { .. } => ApiError::Unavailable {
                detail: "the delivery could not be processed for now; retry it".to_owned(),
                retry_after: None,
            },
            // A 5xx makes the provider retry; the monitor is the safety net.
            WebhookError::Pipeline(e) => ApiError::Internal(InternalCause {
                what: "webhook reconcile failed",
                error: crate::telemetry::chain(&e).to_string(),
                code: Some(e.code()),
            }),
        }
    }
}

fn model_not_found() -> ApiError {
    ApiError::NotFound("model not found".to_owned())
}

impl From<ListEvaluationError> for ApiError {
    fn from(e: ListEvaluationError) -> Self {
        match e {
            ListEvaluationError::NotFound => run_not_found(),
            ListEvaluationError::InvalidQuery(errors) => ApiError::Validation(errors),
            ListEvaluationError::Store(e) => internal(&e),
            e @ ListEvaluationError::Rows(_) => {
                ApiError::internal("evaluation rows unreadable", &e)
            }
        }
    }
}

impl From<DownloadModelError> for ApiError {
    fn from(e: DownloadModelError) -> Self {
        match e {
            DownloadModelError::NotFound => model_not_found(),
            e @ (DownloadModelError::NoWeights(_) | DownloadModelError::Deleted(_)) => {
                ApiError::Conflict(e.to_string())
            }
            DownloadModelError::Store(e) => internal(&e),
            e @ DownloadModelError::Presign(_) => ApiError::internal("presign failed", &e),
        }
    }
}

impl From<DownloadDatasetError> for ApiError {
    fn from(e: DownloadDatasetError) -> Self {
        match e {
            DownloadDatasetError::NotFound => ApiError::NotFound("dataset not found".to_owned()),
            DownloadDatasetError::InvalidQuery(errors) => ApiError::Validation(errors),
            e @ DownloadDatasetError::NoValidation(_) => ApiError::Conflict(e.to_string()),
            DownloadDatasetError::Store(e) => internal(&e),
            e @ DownloadDatasetError::Presign(_) => ApiError::internal("presign failed", &e),
        }
    }
}

impl From<ListModelsError> for ApiError {
    fn from(e: ListModelsError) -> Self {
        match e {
            ListModelsError::InvalidQuery(errors) => ApiError::Validation(errors),
            ListModelsError::Store(e) => internal(&e),
        }
    }
}

impl From<GetModelError> for ApiError {
    fn from(e: GetModelError) -> Self {
        match e {
            GetModelError::NotFound => model_not_found(),
            GetModelError::Store(e) => internal(&e),
        }
    }
}

impl From<GetActiveModelError> for ApiError {
    fn from(e: GetActiveModelError) -> Self {
        match e {
            e @ GetActiveModelError::NoneActive => ApiError::NotFound(e.to_string()),
            GetActiveModelError::Store(e) => internal(&e),
        }
    }
}

impl From<ActivateModelError> for ApiError {
    fn from(e: ActivateModelError) -> Self {
        match e {
            ActivateModelError::InvalidBody(errors) => ApiError::Validation(errors),
            ActivateModelError::NotFound => model_not_found(),
            e @ (ActivateModelError::NotReady { .. } | ActivateModelError::Worse { .. }) => {
                ApiError::Conflict(e.to_string())
            }
            ActivateModelError::Store(e) => internal(&e),
        }
    }
}

impl From<DeleteModelError> for ApiError {
    fn from(e: DeleteModelError) -> Self {
        match e {
            DeleteModelError::NotFound => model_not_found(),
            e @ (DeleteModelError::Active(_) | DeleteModelError::Deploying(_)) => {
                ApiError::Conflict(e.to_string())
            }
            DeleteModelError::ProviderUnavailable(p) => ApiError::Unavailable {
                detail: format!(
                    "could not delete the model at the provider right now ({}); it is marked \
                     deleting, repeat the DELETE to finish",
                    p.code()
                ),
                retry_after: Some(Duration::from_secs(5)),
            },
            DeleteModelError::ProviderRefused(p) => ApiError::BadGateway(format!(
                "the provider refused to delete the model ({})",
                p.code()
            )),
            DeleteModelError::Weights(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "the model's weights could not be deleted");
                ApiError::Unavailable {
                    detail: "the model is deleted at the provider, but our copy of its weights \
                             could not be deleted right now; it is marked deleting, repeat the \
                             DELETE to finish"
                        .to_owned(),
                    retry_after: Some(Duration::from_secs(5)),
                }
            }
            DeleteModelError::Store(e) => internal(&e),
        }
    }
}
