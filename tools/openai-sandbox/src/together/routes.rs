//! Together's paths under `/v1`, beside OpenAI's and behind the same front
//! door (auth, latency, faults, recording). Paths both APIs share
//! (`/chat/completions`, `GET /files`, `GET`/`DELETE /files/{id}`) are
//! served once, by the OpenAI handlers, whose answers carry Together's
//! members too.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::download::AdapterFile;
use super::job::{NewJob, Stage, TogetherJob};
use super::price;
use super::spec::{JobSpec, Refusal};
use super::{
    BASE_MODELS, FULL_BATCH, LORA_BATCH, MAX_EPOCHS, MAX_EVALS, MAX_LEARNING_RATE, MAX_LORA_RANK,
    MIN_LEARNING_RATE, base_model,
};
use crate::api::{ApiError, ApiResult, RequestSeq, json_body, ok, read_recorded_form};
use crate::content::Content;
use crate::state::{StoredFile, now_secs};
use crate::validate::validate_training_file;
use crate::{Progression, Shared, ids};

type AppState = Arc<Shared>;

/// Together's `FilePurpose` values.
const FILE_PURPOSES: [&str; 7] = [
    "fine-tune",
    "eval",
    "eval-sample",
    "eval-output",
    "eval-summary",
    "batch-generated",
    "batch-api",
];

/// Bytes per chunk of a streamed download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/files/upload", post(upload_file))
        .route("/fine-tunes", post(create_fine_tune).get(list_fine_tunes))
        .route("/fine-tunes/estimate-price", post(estimate_price))
        .route("/fine-tunes/models/supported", get(supported_models))
        .route("/fine-tunes/models/limits", get(model_limits))
        .route(
            "/fine-tunes/{id}",
            get(retrieve_fine_tune).delete(delete_fine_tune),
        )
        .route("/fine-tunes/{id}/cancel", post(cancel_fine_tune))
        .route("/fine-tunes/{id}/events", get(list_events))
        .route("/fine-tunes/{id}/checkpoints", get(list_checkpoints))
        .route("/fine-tunes/{id}/metrics", get(metrics))
        .route("/finetune/download", get(download))
}

fn refused((message, param): Refusal) -> ApiError {
    ApiError::invalid(message, Some(param))
}

fn no_job(id: &str) -> ApiError {
    ApiError::not_found(format!("Fine-tune job {id} not found")).code("not_found")
}

// ---- Files -------------------------------------------------------------

/// `POST /files/upload`: the multipart form streamed (large files spill
/// to disk as they arrive), then a `fine-tune` file checked line by line
/// with the pipeline's own checker (at least one example), as Together
/// checks a file before it can be trained on.
async fn upload_file(
    State(shared): State<AppState>,
    axum::Extension(seq): axum::Extension<RequestSeq>,
    multipart: Multipart,
) -> ApiResult {
    let (texts, binary) =
        read_recorded_form(&shared, seq, multipart, "file", shared.max_file_bytes).await?;
    let purpose = texts
        .get("purpose")
        .ok_or_else(|| ApiError::invalid("purpose is required", Some("purpose")))?;
    if !FILE_PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::invalid(
            format!("purpose must be one of {FILE_PURPOSES:?}, got {purpose:?}"),
            Some("purpose"),
        ));
    }
    let file_name = texts
        .get("file_name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("file_name is required", Some("file_name")))?
        .clone();
    match texts.get("file_type").map(String::as_str) {
        None | Some("jsonl") => {}
        Some(t @ ("csv" | "parquet")) => {
            return Err(ApiError::invalid(
                format!("the sandbox accepts jsonl files only, got file_type {t}"),
                Some("file_type"),
            ));
        }
        Some(t) => {
            return Err(ApiError::invalid(
                format!("file_type must be csv, jsonl or parquet, got {t:?}"),
                Some("file_type"),
            ));
        }
    }
    let (writer, _, _) =
        binary.ok_or_else(|| ApiError::invalid("file is required", Some("file")))?;
    let (segment, _sha) = writer
        .finish()
        .await
        .map_err(|e| ApiError::server(format!("sandbox storage failed: {e}")))?;
    let content = Content {
        segments: vec![segment],
    };
    if purpose == "fine-tune" {
        let to_check = content.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let reader = to_check
                .reader()
                .map_err(|e| format!("could not be read: {e}"))?;
            validate_training_file(std::io::BufReader::new(reader), "", 1)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| ApiError::server(format!("checking the file failed: {e}")))?;
        if let Err(problem) = checked {
            return Err(ApiError::invalid(
                format!("Invalid file {file_name}: {problem}"),
                Some("file"),
            ));
        }
    }
    let file = StoredFile {
        id: ids::new_id(ids::FILE),
        bytes: content.len(),
        created_at: now_secs(),
        filename: file_name,
        purpose: purpose.clone(),
        content,
    };
    let body = file.json();
    shared.lock().files.insert(file.id.clone(), file);
    ok(body)
}

// ---- Fine-tunes --------------------------------------------------------

/// A file's size, or why it cannot be used (400, naming the parameter).
fn file_bytes(
    files: &std::collections::HashMap<String, StoredFile>,
    id: &str,
    param: &'static str,
) -> Result<(u64, Content), ApiError> {
    let file = files.get(id).ok_or_else(|| {
        ApiError::invalid(format!("File {id} not found ({param})"), Some(param))
            .code("file_not_found")
    })?;
    if file.purpose != "fine-tune" {
        return Err(ApiError::invalid(
            format!("File {id} has purpose {}, not fine-tune", file.purpose),
            Some(param),
        ));
    }
    Ok((file.bytes, file.content.clone()))
}

async fn create_fine_tune(
    State(shared): State<AppState>,
    body: Result<axum::Json<Value>, JsonRejection>,
) -> ApiResult {
    let spec = JobSpec::from_request(&json_body(body)?).map_err(refused)?;
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    if let Some(limit) = settings.max_active_jobs {
        let active = inner
            .together_jobs
            .iter()
            .filter(|j| !j.stage.is_terminal())
            .count();
        if active >= limit {
            return Err(ApiError::concurrency_limit(format!(
                "Too many concurrent fine-tuning jobs for this account ({active} of {limit}); \
                 try again once one has finished."
            )));
        }
    }
    let (training_bytes, training_content) =
        file_bytes(&inner.files, &spec.training_file, "training_file")?;
    let validation_bytes = match &spec.validation_file {
        Some(v) => file_bytes(&inner.files, v, "validation_file")?.0,
        None => 0,
    };
    let job = TogetherJob::new(NewJob {
        id: format!("ft-{}", uuid::Uuid::new_v4()),
        spec,
        organization: settings.organization.clone(),
        steps_per_epoch: settings.steps_per_epoch,
        training_bytes,
        validation_bytes,
        training_content,
        quality: settings.fine_tuned_quality,
        fail_training: settings.fail_training,
        next_step_at: match settings.progression {
            Progression::Every(step) => Some(Instant::now() + step),
            Progression::Manual | Progression::OnRead => None,
        },
    });
    let body = job.truncated_json(settings.seconds_per_step());
    tracing::info!(job = %job.id, model = %job.spec.model.name, "together fine-tune created");
    inner.together_jobs.push(job);
    ok(body)
}

async fn list_fine_tunes(State(shared): State<AppState>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let data: Vec<Value> = inner
        .together_jobs
        .iter()
        .rev()
        .map(|j| j.truncated_json(settings.seconds_per_step()))
        .collect();
    ok(json!({"data": data}))
}

async fn retrieve_fine_tune(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
    if settings.progression == Progression::OnRead {
        job.advance();
    }
    ok(job.full_json(settings.seconds_per_step()))
}

/// `DELETE /fine-tunes/{id}`: the job and the model it made are gone
/// (its model no longer answers chat completions, its download is 404).
/// A running job must be cancelled first, as on Together.
async fn delete_fine_tune(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
    if !job.stage.is_terminal() {
        return Err(ApiError::invalid(
            format!(
                "Fine-tune job {id} is {}; cancel it before deleting it",
                job.stage.status()
            ),
            None,
        ));
    }
    inner.together_jobs.retain(|j| j.id != id);
    ok(json!({"message": format!("fine-tune job {id} deleted")}))
}

async fn cancel_fine_tune(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
    if !job.request_cancel() {
        return Err(ApiError::invalid(
            format!(
                "Fine-tune job {id} is {} and cannot be cancelled",
                job.stage.status()
            ),
            None,
        ));
    }
    ok(job.truncated_json(settings.seconds_per_step()))
}

async fn list_events(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
    ok(json!({"data": job.events}))
}

async fn list_checkpoints(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
    let newest_first: Vec<&Value> = job.checkpoints.iter().rev().collect();
    ok(json!({"data": newest_first}))
}

/// The optional JSON body of `GET /fine-tunes/{id}/metrics`. The
/// `logged_at_*` filters are accepted and ignored: the sandbox's metrics
/// are all logged at once.
#[derive(Deserialize, Default)]
struct MetricsFilter {
    global_step_from: Option<u64>,
    global_step_to: Option<u64>,
}

async fn metrics(State(shared): State<AppState>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let filter: MetricsFilter = if body.iter().all(u8::is_ascii_whitespace) {
        MetricsFilter::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}"), None))?
    };
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
    let metrics = job.metrics(
        filter.global_step_from.unwrap_or(0),
        filter.global_step_to.unwrap_or(u64::MAX),
    );
    ok(json!({"metrics": metrics}))
}

/// `POST /fine-tunes/estimate-price`: [`job::estimate`] over the files'
/// sizes, compared with the sandbox's credit limit.
async fn estimate_price(
    State(shared): State<AppState>,
    body: Result<axum::Json<Value>, JsonRejection>,
) -> ApiResult {
    let body = json_body(body)?;
    let model_name = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(BASE_MODELS[0].name);
    let model = base_model(model_name).ok_or_else(|| {
        ApiError::invalid(
            format!("Model {model_name} is not supported for fine-tuning"),
            Some("model"),
        )
    })?;
    let count = |name: &'static str, default: u64, max: u64| -> Result<u64, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().filter(|n| *n <= max).ok_or_else(|| {
                ApiError::invalid(format!("{name} must be an integer up to {max}"), Some(name))
            }),
        }
    };
    let n_epochs = count("n_epochs", 1, MAX_EPOCHS)?.max(1);
    let n_evals = count("n_evals", 0, MAX_EVALS)?;
    let full = body
        .get("training_type")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        == Some("Full");
    let training_file = body
        .get("training_file")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("training_file is required", Some("training_file")))?;
    let (training_bytes, validation_bytes) = {
        let inner = shared.lock();
        let training = file_bytes(&inner.files, training_file, "training_file")?.0;
        let validation = match body.get("validation_file").and_then(Value::as_str) {
            Some(v) => file_bytes(&inner.files, v, "validation_file")?.0,
            None => 0,
        };
        (training, validation)
    };
    let e = price::estimate(
        model,
        full,
        training_bytes,
        validation_bytes,
        n_epochs,
        n_evals,
    );
    let limit = shared.settings().together_credit_limit;
    ok(json!({
        "estimated_total_price": e.price,
        "allowed_to_proceed": e.price <= limit,
        "user_limit": limit,
        "estimated_train_token_count": e.train_tokens,
        "estimated_eval_token_count": e.eval_tokens,
    }))
}

async fn supported_models() -> ApiResult {
    let models: Vec<&str> = BASE_MODELS.iter().map(|m| m.name).collect();
    ok(json!({"models": models}))
}

#[derive(Deserialize)]
struct LimitsQuery {
    model_name: Option<String>,
}

/// `GET /fine-tunes/models/limits`: the sandbox's limits; an unknown
/// model answers 404 `{"message"}`, the shape the schema gives that case.
async fn model_limits(Query(q): Query<LimitsQuery>) -> ApiResult {
    let Some(name) = q.model_name else {
        return Err(ApiError::invalid(
            "model_name is required",
            Some("model_name"),
        ));
    };
    let Some(model) = base_model(&name) else {
        let body = json!({"message": format!("Model {name} is not available for fine-tuning")});
        return Ok((StatusCode::NOT_FOUND, axum::Json(body)).into_response());
    };
    ok(json!({
        "model_name": model.name,
        "full_training": {
            "max_batch_size": FULL_BATCH.max,
            "max_batch_size_dpo": FULL_BATCH.max_dpo,
            "min_batch_size": FULL_BATCH.min,
        },
        "lora_training": {
            "max_batch_size": LORA_BATCH.max,
            "max_batch_size_dpo": LORA_BATCH.max_dpo,
            "min_batch_size": LORA_BATCH.min,
            "max_rank": MAX_LORA_RANK,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        },
        "max_num_epochs": MAX_EPOCHS,
        "max_num_evals": MAX_EVALS,
        "max_learning_rate": MAX_LEARNING_RATE,
        "min_learning_rate": MIN_LEARNING_RATE,
        "supports_vision": false,
        "supports_tools": true,
        "supports_reasoning": false,
        "merge_output_lora": false,
    }))
}

// ---- Download ----------------------------------------------------------

#[derive(Deserialize)]
struct DownloadQuery {
    ft_id: Option<String>,
    checkpoint: Option<String>,
    checkpoint_step: Option<u64>,
}

/// `GET /finetune/download`: a completed job's file ([`AdapterFile`]),
/// streamed with its `Content-Length`. `checkpoint_step` picks a saved
/// checkpoint (and wins over `checkpoint`); otherwise `checkpoint` is
/// `adapter` (LoRA jobs only), `merged` or `model_output_path`. Each
/// download answered is counted ([`crate::Sandbox::together_downloads`]).
async fn download(
    State(shared): State<AppState>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let id = q
        .ft_id
        .ok_or_else(|| ApiError::invalid("ft_id is required", Some("ft_id")))?;
    let settings = shared.settings();
    let file = {
        let mut inner = shared.lock();
        inner.catch_up(&settings);
        let job = inner.together_job_mut(&id).ok_or_else(|| no_job(&id))?;
        if job.stage != Stage::Completed {
            return Err(ApiError::invalid(
                format!(
                    "Fine-tune job {id} is {}: only a completed job can be downloaded",
                    job.stage.status()
                ),
                Some("ft_id"),
            ));
        }
        let (variant, step) = match (q.checkpoint_step, q.checkpoint.as_deref()) {
            (Some(step), _) => {
                let saved = job
                    .checkpoints
                    .iter()
                    .any(|c| c["step"].as_u64() == Some(step));
                if !saved {
                    return Err(ApiError::invalid(
                        format!("Fine-tune job {id} has no checkpoint at step {step}"),
                        Some("checkpoint_step"),
                    ));
                }
                ("checkpoint", step)
            }
            (None, Some("adapter")) if job.spec.is_full() => {
                return Err(ApiError::invalid(
                    "A full fine-tune has no adapter: download merged or model_output_path",
                    Some("checkpoint"),
                ));
            }
            (None, Some(v @ ("adapter" | "merged" | "model_output_path"))) => {
                (v, job.total_steps())
            }
            (None, other) => {
                return Err(ApiError::invalid(
                    format!(
                        "checkpoint must be adapter, merged or model_output_path, got {other:?}"
                    ),
                    Some("checkpoint"),
                ));
            }
        };
        let file = AdapterFile::new(&id, variant, step, settings.together_download_bytes);
        *inner.together_downloads.entry(id.clone()).or_insert(0) += 1;
        file
    };
    let len = file.len();
    let stream = futures::stream::unfold(0u64, move |offset| {
        let file = file.clone();
        async move {
            let chunk = file.chunk(offset, DOWNLOAD_CHUNK);
            if chunk.is_empty() {
                None
            } else {
                let next = offset + chunk.len() as u64;
                Some((Ok::<Bytes, std::convert::Infallible>(chunk), next))
            }
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.safetensors\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
