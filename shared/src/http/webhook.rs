//! `POST /webhooks/openai`: no authorizer (OpenAI holds no JWT), so the
//! signature is the only credential; the tenant comes from the job's
//! owner record, never from the request.

use std::time::Instant;

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::handlers::json;
use super::problem::ApiError;
use super::request;
use super::routes::{Route, not_found, route};
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
    let started = Instant::now();
    let path = request::path(&req);
    let id = request::header(&req, ID_HEADER);
    let timestamp = request::header(&req, TIMESTAMP_HEADER);
    let signature = request::header(&req, SIGNATURE_HEADER);
    let result: Result<Response<Body>, ApiError> = match route(req.method(), &path) {
        Ok(Route::OpenAiWebhook) => {
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
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) => Err(not_found()),
        Err(e) => Err(e),
    };
    let response = result.unwrap_or_else(ApiError::into_response);
    // The delivery id only: the body names jobs, never conversation text,
    // but it is not ours to log.
    tracing::info!(
        path,
        delivery = id.as_deref().unwrap_or(""),
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "webhook"
    );
    response
}
