//! `POST /webhooks/openai`: no authorizer (OpenAI holds no JWT), so the
//! signature is the only credential; the tenant comes from the job's
//! owner record, never from the request. It goes through the same
//! request wrapper as every route (span, closing line, `duration_ms`).

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::handlers::{json, wrap};
use super::request;
use super::routes::{Route, not_found};
use crate::pipeline::{PushSteps, Reconciler};
use crate::webhook::setup::SigningSecret;
use crate::webhook::signature::{ID_HEADER, SIGNATURE_HEADER, SignedHeaders, TIMESTAMP_HEADER};
use crate::webhook::{WebhookError, receive_openai};

/// Verifies and handles one delivery. A bad signature is 401 and changes
/// nothing; a replay or an unknown job is 200 and changes nothing; a
/// delivery that could not be processed is a 5xx problem and its
/// `webhook-id` is not marked handled, so OpenAI's retry is processed:
/// 503 for a transient failure while reconciling (the provider's
/// 429/5xx/timeout, DynamoDB; the retry is also counted on the run), 500
/// for any other failure on our side.
pub async fn webhook_handler(
    pipeline: &Reconciler<PushSteps>,
    secret: &SigningSecret,
    req: Request,
) -> Response<Body> {
    // No tenant to check: the signature is the credential, checked by the
    // operation; the request's span names no tenant.
    wrap(&req, Ok(()), "", async |(), route| match route {
        Route::OpenAiWebhook => {
            let id = request::header(&req, ID_HEADER);
            let timestamp = request::header(&req, TIMESTAMP_HEADER);
            let signature = request::header(&req, SIGNATURE_HEADER);
            // The delivery id only: the body names jobs, never conversation
            // text, but it is not ours to log.
            tracing::info!(delivery = id.as_deref().unwrap_or(""), "webhook delivery");
            let headers = SignedHeaders {
                id: id.as_deref(),
                timestamp: timestamp.as_deref(),
                signature: signature.as_deref(),
            };
            let received = match secret.get().await {
                Ok(secret) => {
                    receive_openai(pipeline, secret, headers, req.body().as_ref(), Utc::now()).await
                }
                Err(e) => Err(WebhookError::Secret(e)),
            };
            match received {
                Ok(handled) => json(StatusCode::OK, &handled),
                Err(e) => {
                    if let WebhookError::Transient { code, .. } = &e {
                        tracing::warn!(code, "webhook delivery not processed: transient failure");
                    }
                    Err(e.into())
                }
            }
        }
        _ => Err(not_found()),
    })
    .await
}
