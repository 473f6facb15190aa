//! The API functions' request handlers: tenant, route, operation,
//! response, all inside one request wrapper ([`wrap`], which the webhook
//! uses too). Each takes its clients (built once at init) and never
//! fails: every error is already a problem+json response here.

use std::time::Instant;

use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tracing::Instrument;

use super::problem::ApiError;
use super::request;
use super::routes::{Route, not_found, route};
use crate::api::cancel::{CancelOutcome, cancel_run};
use crate::api::input::IDEMPOTENCY_KEY_HEADER;
use crate::api::job_status::{self, ListRunsQuery};
use crate::api::models;
use crate::api::start_run::start_run;
use crate::api::view::{
    ActiveModelView, DatasetView, DownloadView, EventView, LimitsView, ListView, MetricsView,
    ModelView, RunDetailView, RunView,
};
use crate::api::{download, evaluation};
use crate::blob::Blobs;
use crate::config::Config;
use crate::domain::TenantId;
use crate::metrics::Metrics;
use crate::provider::Controls;
use crate::store::{CreateOutcome, Store};

/// `POST /runs`. A new run counts in `RunsStarted`; a replayed one does not.
pub async fn start_run_handler(
    store: &Store,
    config: &Config,
    metrics: &Metrics,
    req: Request,
) -> Response<Body> {
    serve(&req, config, async |tenant, route| match route {
        Route::StartRun => {
            let key = request::header(&req, IDEMPOTENCY_KEY_HEADER);
            let outcome = start_run(
                store,
                config,
                &tenant,
                req.body().as_ref(),
                key.as_deref(),
                Utc::now(),
            )
            .await?;
            let (status, run) = match &outcome {
                CreateOutcome::Created(run) => {
                    metrics.run_started(run.provider);
                    tracing::info!(run_id = %run.id, provider = run.provider.as_str(), "run queued");
                    (StatusCode::ACCEPTED, run)
                }
                CreateOutcome::Replayed(run) => (StatusCode::OK, run),
            };
            let mut response = json(status, &RunView::from(run))?;
            if let Ok(location) = HeaderValue::from_str(&format!("/runs/{}", run.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        _ => Err(not_found()),
    })
    .await
}

/// `GET /runs`, `GET /runs/{id}`, `GET /runs/{id}/events`,
/// `GET /runs/{id}/metrics`, `GET /datasets/{id}`.
pub async fn job_status_handler(
    store: &Store,
    blobs: &Blobs,
    config: &Config,
    req: Request,
) -> Response<Body> {
    serve(&req, config, async |tenant, route| match route {
        Route::GetRunEvaluation(id) => {
            let page = evaluation::list_run_evaluation(
                store,
                blobs,
                &tenant,
                &id,
                request::query(&req, "limit").as_deref(),
                request::query(&req, "cursor").as_deref(),
            )
            .await?;
            json(StatusCode::OK, &ListView::from_page(&page, |r| r.clone()))
        }
        Route::ListRuns => {
            let query = ListRunsQuery {
                status: request::query(&req, "status"),
                limit: request::query(&req, "limit"),
                cursor: request::query(&req, "cursor"),
            };
            let page = job_status::list_runs(store, &tenant, &query).await?;
            json(
                StatusCode::OK,
                &ListView::from_page(&page, |r| RunView::from(r)),
            )
        }
        Route::GetRun(id) => {
            let detail = job_status::get_run(store, &tenant, &id).await?;
            json(
                StatusCode::OK,
                &RunDetailView {
                    run: RunView::from(&detail.run),
                    dataset: detail.dataset.as_ref().map(DatasetView::from),
                },
            )
        }
        Route::ListRunEvents(id) => {
            let page = job_status::list_run_events(
                store,
                &tenant,
                &id,
                request::query(&req, "limit").as_deref(),
                request::query(&req, "cursor").as_deref(),
            )
            .await?;
            json(
                StatusCode::OK,
                &ListView::from_page(&page, |e| EventView::from(e)),
            )
        }
        Route::GetRunMetrics(id) => {
            let (run, metrics) = job_status::get_run_metrics(store, &tenant, &id).await?;
            if wants_svg(&req) {
                let title = format!("{}: loss", run.name);
                Ok(svg(crate::chart::loss_curve_svg(&metrics, &title)))
            } else {
                json(StatusCode::OK, &MetricsView::new(&run, &metrics))
            }
        }
        Route::GetLimits => {
            let fleet = crate::api::get_limits(store, &config.fleet, &tenant, Utc::now()).await?;
            json(StatusCode::OK, &LimitsView::new(&tenant, &fleet))
        }
        Route::GetDataset(id) => {
            let dataset = job_status::get_dataset(store, &tenant, &id).await?;
            json(StatusCode::OK, &DatasetView::from(&dataset))
        }
        Route::DownloadDataset(id) => {
            let file = request::query(&req, "file");
            let download =
                download::download_dataset(store, blobs, &tenant, &id, file.as_deref(), Utc::now())
                    .await?;
            json(StatusCode::OK, &DownloadView::from(&download))
        }
        _ => Err(not_found()),
    })
    .await
}

/// `POST /runs/{id}/cancel`. A run this request cancelled counts in
/// `RunsCancelled`; one already cancelled does not.
pub async fn cancel_handler(
    store: &Store,
    providers: &Controls,
    config: &Config,
    metrics: &Metrics,
    req: Request,
) -> Response<Body> {
    serve(&req, config, async |tenant, route| match route {
        Route::CancelRun(id) => {
            let outcome = cancel_run(store, providers, &tenant, &id, Utc::now()).await?;
            let run = match &outcome {
                CancelOutcome::Cancelled(run) => {
                    metrics.run_ended(run.provider, run.status);
                    tracing::info!(run_id = %run.id, provider = run.provider.as_str(), "run cancelled");
                    run
                }
                CancelOutcome::AlreadyCancelled(run) => run,
            };
            json(StatusCode::OK, &RunView::from(run))
        }
        _ => Err(not_found()),
    })
    .await
}

/// `GET /models`, `GET /models/active`, `GET /models/{id}`,
/// `POST /models/{id}/activate`, `DELETE /models/{id}`.
pub async fn models_handler(
    store: &Store,
    blobs: &Blobs,
    providers: &Controls,
    config: &Config,
    req: Request,
) -> Response<Body> {
    serve(&req, config, async |tenant, route| match route {
        Route::ListModels => {
            let listing = models::list_models(
                store,
                &tenant,
                request::query(&req, "limit").as_deref(),
                request::query(&req, "cursor").as_deref(),
            )
            .await?;
            let active = listing.active.as_ref().map(|a| &a.model_id);
            json(
                StatusCode::OK,
                &ListView::from_page(&listing.page, |m| ModelView::new(m, active == Some(&m.id))),
            )
        }
        Route::GetActiveModel => {
            let active = models::get_active_model(store, &tenant).await?;
            json(StatusCode::OK, &ActiveModelView::from(&active))
        }
        Route::GetModel(id) => {
            let (model, active) = models::get_model(store, &tenant, &id).await?;
            json(StatusCode::OK, &ModelView::new(&model, active))
        }
        Route::ActivateModel(id) => {
            let force = models::activation_force(req.body().as_ref())?;
            let active = models::activate_model(store, &tenant, &id, force, Utc::now()).await?;
            json(StatusCode::OK, &ActiveModelView::from(&active))
        }
        Route::DownloadModel(id) => {
            let download = download::download_model(store, blobs, &tenant, &id, Utc::now()).await?;
            json(StatusCode::OK, &DownloadView::from(&download))
        }
        Route::DeleteModel(id) => {
            let model =
                models::delete_model(store, blobs, providers, &tenant, &id, Utc::now()).await?;
            json(StatusCode::OK, &ModelView::new(&model, false))
        }
        _ => Err(not_found()),
    })
    .await
}

/// The tenant's routes: tenant first (an unauthenticated caller learns
/// nothing about routes), then the route, then the operation.
async fn serve(
    req: &Request,
    config: &Config,
    operation: impl AsyncFnOnce(TenantId, Route) -> Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let tenant = request::tenant(req, &config.tenant_claim);
    let tenant_name = tenant.as_ref().map(|t| t.to_string()).unwrap_or_default();
    wrap(req, tenant, &tenant_name, operation).await
}

/// The one request wrapper every route goes through, the webhook's too:
/// the caller's check first (`caller`: the tenant, or nothing to check
/// for a signed route), then the route, then the operation; one log line
/// per request with its `status` and `duration_ms`, without the body (it
/// can hold prompts). Every line logged meanwhile, a 500's cause
/// included, carries the request id, the tenant and the path (the
/// `request` span).
pub(super) async fn wrap<C>(
    req: &Request,
    caller: Result<C, ApiError>,
    tenant_name: &str,
    operation: impl AsyncFnOnce(C, Route) -> Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = request::path(req);
    let span = tracing::info_span!(
        "request",
        request_id = request::request_id(req).unwrap_or_default(),
        tenant = tenant_name,
        %method,
        path,
    );
    let result = match caller {
        Ok(caller) => match route(&method, &path) {
            Ok(route) => operation(caller, route).instrument(span.clone()).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    span.in_scope(|| {
        let response = result.unwrap_or_else(ApiError::into_response);
        tracing::info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    })
}

/// Whether the caller asked for the SVG chart (`Accept: image/svg+xml`,
/// as an `<img>` or a product page's fetch would); JSON otherwise.
fn wants_svg(req: &Request) -> bool {
    request::header(req, "accept").is_some_and(|accept| {
        accept
            .split(',')
            .any(|range| range.trim().starts_with("image/svg+xml"))
    })
}

/// An SVG success response; the same URL answers JSON too, so caches
/// must key on `Accept`.
fn svg(body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// A JSON success response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_string(value)
        .map_err(|e| ApiError::internal("response did not serialise", &e))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
