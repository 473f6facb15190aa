//! Bedrock SDK errors to the port's [`ProviderError`], by error code (never
//! by message text), once for every operation.

use aws_sdk_bedrock::error::{ProvideErrorMetadata, SdkError};

use crate::provider::ProviderError;

/// Maps any Bedrock operation's error. `what` names the thing looked up,
/// for `NotFound`.
pub(super) fn map_sdk_error<E, R>(err: SdkError<E, R>, what: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let request_id = err.meta().extra("aws_request_id").map(str::to_owned);
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return ProviderError::Transport(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ));
        }
        SdkError::ResponseError(_) => {
            return ProviderError::Decode(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ));
        }
        _ => {}
    }
    let code = err.code().unwrap_or("Unknown").to_owned();
    let message = err.message().unwrap_or("no message").to_owned();
    match code.as_str() {
        "ThrottlingException" | "TooManyRequestsException" => ProviderError::RateLimited {
            retry_after: None,
            request_id,
        },
        // Bedrock limits jobs in flight per account: one ends, the next fits.
        "ServiceQuotaExceededException" => ProviderError::RateLimited {
            retry_after: None,
            request_id,
        },
        "ResourceNotFoundException" => ProviderError::NotFound {
            what: what.to_owned(),
            request_id,
        },
        "AccessDeniedException" => ProviderError::PermissionDenied {
            message,
            request_id,
        },
        "UnrecognizedClientException" | "ExpiredTokenException" | "InvalidSignatureException" => {
            ProviderError::Auth {
                message,
                request_id,
            }
        }
        "InternalServerException" | "ServiceUnavailableException" => ProviderError::Server {
            status: 500,
            message,
            request_id,
        },
        _ => ProviderError::InvalidRequest {
            message,
            param: None,
            code: Some(code),
            request_id,
        },
    }
}

/// Whether a create failed because a job of that name (or that token)
/// already exists: Bedrock's `ConflictException`, moto's
/// `ResourceInUseException`. The caller adopts the existing job.
pub(super) fn is_conflict<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(
        err.code(),
        Some("ConflictException" | "ResourceInUseException")
    )
}
