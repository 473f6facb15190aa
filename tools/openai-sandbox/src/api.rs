//! The HTTP surface: OpenAI's paths under `/v1`, its JSON shapes and its
//! error envelope, plus the recording, auth, latency and fault layer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::content::{Content, ContentWriter};
use crate::ids;
use crate::state::{JobRec, PartRec, Stage, StoredFile, UploadRec, now_secs};
use crate::{Fault, FaultKind, Progression, RecordedRequest, Shared};

type AppState = Arc<Shared>;

/// Which recorded request a handler is serving (to attach form fields).
#[derive(Clone, Copy)]
pub(crate) struct RequestSeq(u64);

pub(crate) fn router(shared: AppState) -> Router {
    let v1 = Router::new()
        .route("/files", post(create_file).get(list_files))
        .route("/files/{file_id}", get(retrieve_file).delete(delete_file))
        .route("/files/{file_id}/content", get(file_content))
        .route("/uploads", post(create_upload))
        .route("/uploads/{upload_id}/parts", post(add_part))
        .route("/uploads/{upload_id}/complete", post(complete_upload))
        .route("/uploads/{upload_id}/cancel", post(cancel_upload))
        .route("/fine_tuning/jobs", post(create_job).get(list_jobs))
        .route("/fine_tuning/jobs/{job_id}", get(retrieve_job))
        .route("/fine_tuning/jobs/{job_id}/cancel", post(cancel_job))
        .route("/fine_tuning/jobs/{job_id}/pause", post(pause_job))
        .route("/fine_tuning/jobs/{job_id}/resume", post(resume_job))
        .route("/fine_tuning/jobs/{job_id}/events", get(list_events))
        .route(
            "/fine_tuning/jobs/{job_id}/checkpoints",
            get(list_checkpoints),
        )
        .route("/models/{model}", delete(delete_model))
        .route(
            "/chat/completions",
            post(crate::chat::create_chat_completion),
        )
        .merge(crate::together::routes::router());
    Router::new()
        .nest("/v1", v1)
        .fallback(not_found_route)
        // Bodies are streamed and size-checked by the handlers themselves.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(shared.clone(), front_door))
        .with_state(shared)
}

/// An OpenAI error answer: `{"error": {message, type, param, code}}`.
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) code: Option<&'static str>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(crate) fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.map(str::to_owned),
            code: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
            code: None,
            headers: Vec::new(),
        }
    }

    /// The answer past a concurrent-jobs limit: 429 with a short
    /// `Retry-After`, as OpenAI and Together answer when a job cannot be
    /// taken yet (the request was not processed).
    pub(crate) fn concurrency_limit(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "requests",
            message: message.into(),
            param: None,
            code: Some("rate_limit_exceeded"),
            headers: vec![("retry-after", "1".to_owned())],
        }
    }

    pub(crate) fn server(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: message.into(),
            param: None,
            code: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn ok(value: Value) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

async fn not_found_route() -> ApiError {
    ApiError::not_found(
        "Invalid URL: the sandbox serves OpenAI's and Together's fine-tuning and chat completions APIs under /v1",
    )
}

/// Records the request, checks the key, adds latency, injects faults and
/// stamps `x-request-id`, in that order, around every handler.
async fn front_door(State(shared): State<AppState>, mut request: Request, next: Next) -> Response {
    let seq = shared.next_request.fetch_add(1, Ordering::Relaxed);
    let headers = request.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let bearer = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .filter(|k| !k.trim().is_empty());
    let azure = header("api-key").filter(|k| !k.trim().is_empty());
    let (auth, key) = match (bearer, azure) {
        (Some(k), _) => ("bearer", Some(k)),
        (None, Some(k)) => ("api-key", Some(k)),
        (None, None) => ("none", None),
    };
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = url_decode_pairs(request.uri());
    let content_type = header("content-type");
    // JSON bodies are small: keep them for contract tests. Multipart
    // bodies are streamed to the handler untouched.
    let mut json_body = None;
    if content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"))
    {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
            Ok(b) => b,
            Err(_) => {
                return ApiError::invalid("request body too large or unreadable", None)
                    .into_response();
            }
        };
        json_body = serde_json::from_slice::<Value>(&bytes).ok();
        request = Request::from_parts(parts, Body::from(bytes));
    }
    shared.lock().requests.push(RecordedRequest {
        id: seq,
        received_at: SystemTime::now(),
        method: method.clone(),
        path: path.clone(),
        query,
        auth,
        organization: header("openai-organization"),
        project: header("openai-project"),
        content_type,
        json: json_body,
        form: None,
        status: 0,
        response_json: None,
    });
    request.extensions_mut().insert(RequestSeq(seq));

    let settings = shared.settings();
    let extra_latency = header("x-sandbox-latency-ms")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    let latency = settings.latency + extra_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let refusal = match check_key(&shared, key.as_deref()) {
        Err(e) => Some(e),
        Ok(()) => fault_for(&shared, &method, &path, header("x-sandbox-fault")).map(fault_response),
    };
    let mut response = match refusal {
        Some(error) => {
            // Read (and drop) the body first, as a real server does: a
            // client still streaming a part then gets the answer instead
            // of a reset connection.
            drain(request.into_body()).await;
            error.into_response()
        }
        None => next.run(request).await,
    };
    if let Ok(v) = HeaderValue::from_str(&ids::new_id(ids::REQUEST)) {
        response.headers_mut().insert("x-request-id", v);
    }
    let status = response.status().as_u16();
    if status == 429 {
        shared.lock().rate_limited_answers += 1;
    }
    // JSON answers are small: keep them for contract tests too.
    let mut response_json = None;
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if is_json {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        response_json = serde_json::from_slice::<Value>(&bytes).ok();
        response = Response::from_parts(parts, Body::from(bytes));
    }
    if let Some(r) = shared
        .lock()
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.id == seq)
    {
        r.status = status;
        r.response_json = response_json;
    }
    tracing::debug!(%method, %path, status, "openai-sandbox request");
    response
}

async fn drain(body: Body) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    while let Some(Ok(_)) = stream.next().await {}
}

fn url_decode_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
}

fn check_key(shared: &Shared, key: Option<&str>) -> Result<(), ApiError> {
    let Some(key) = key else {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            message: "You didn't provide an API key. You need to provide your API key in an \
                      Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                .to_owned(),
            param: None,
            code: None,
            headers: Vec::new(),
        });
    };
    match &shared.api_key {
        Some(expected) if expected != key => {
            let tail: String = key
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                kind: "invalid_request_error",
                message: format!("Incorrect API key provided: ****{tail}."),
                param: None,
                code: Some("invalid_api_key"),
                headers: Vec::new(),
            })
        }
        _ => Ok(()),
    }
}

/// A fault from the `x-sandbox-fault` header (`429`, `429;retry-after=2`,
/// `429;retry-after-ms=300`, `500`, `503`), else the first injected one
/// that matches (which is then used up once).
fn fault_for(
    shared: &Shared,
    method: &str,
    path: &str,
    header: Option<String>,
) -> Option<FaultKind> {
    if let Some(spec) = header {
        let mut pieces = spec.split(';').map(str::trim);
        let status: u16 = pieces.next()?.parse().ok()?;
        let mut retry_after = None;
        let mut retry_after_ms = None;
        for piece in pieces {
            if let Some(v) = piece.strip_prefix("retry-after-ms=") {
                retry_after_ms = v.parse().ok();
            } else if let Some(v) = piece.strip_prefix("retry-after=") {
                retry_after = Some(v.to_owned());
            }
        }
        return Some(match status {
            429 => FaultKind::RateLimited {
                retry_after,
                retry_after_ms,
            },
            500 => FaultKind::ServerError,
            s => FaultKind::Status(s),
        });
    }
    let mut inner = shared.lock();
    let index = inner.faults.iter().position(|f: &Fault| {
        f.times > 0
            && f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
    })?;
    let fault = &mut inner.faults[index];
    fault.times -= 1;
    let kind = fault.kind.clone();
    if fault.times == 0 {
        inner.faults.remove(index);
    }
    Some(kind)
}

fn fault_response(kind: FaultKind) -> ApiError {
    match kind {
        FaultKind::RateLimited {
            retry_after,
            retry_after_ms,
        } => {
            let mut headers = Vec::new();
            if let Some(v) = retry_after {
                headers.push(("retry-after", v));
            }
            if let Some(ms) = retry_after_ms {
                headers.push(("retry-after-ms", ms.to_string()));
            }
            ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "requests",
                message: "Rate limit reached for requests (injected by the sandbox).".to_owned(),
                param: None,
                code: Some("rate_limit_exceeded"),
                headers,
            }
        }
        FaultKind::ServerError => ApiError::server(
            "The server had an error while processing your request (injected by the sandbox).",
        ),
        FaultKind::Status(s) => ApiError {
            status: StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind: if s >= 500 {
                "server_error"
            } else {
                "invalid_request_error"
            },
            message: format!("Injected {s} from the sandbox."),
            param: None,
            code: None,
            headers: Vec::new(),
        },
    }
}

pub(crate) fn record_form(shared: &Shared, seq: RequestSeq, form: Value) {
    if let Some(r) = shared
        .lock()
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.id == seq.0)
    {
        r.form = Some(form);
    }
}

pub(crate) fn json_body<T>(body: Result<axum::Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|axum::Json(v)| v)
        .map_err(|e| ApiError::invalid(format!("Invalid request body: {}", e.body_text()), None))
}

// ---- Files -------------------------------------------------------------

const FILE_PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

/// A read form's text fields and its binary field, if any.
pub(crate) type Form = (
    BTreeMap<String, String>,
    Option<(ContentWriter, String, Value)>,
);

/// [`read_form`], and the form recorded on the request (texts, and the
/// binary field's name, size and type) for the tests to inspect.
pub(crate) async fn read_recorded_form(
    shared: &Shared,
    seq: RequestSeq,
    multipart: Multipart,
    binary_name: &str,
    limit: u64,
) -> Result<Form, ApiError> {
    let (texts, binary) = read_form(shared, multipart, binary_name, limit).await?;
    let mut form: serde_json::Map<String, Value> =
        texts.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if let Some((_, _, meta)) = &binary {
        form.insert(binary_name.to_owned(), meta.clone());
    }
    record_form(shared, seq, Value::Object(form));
    Ok((texts, binary))
}

/// Streams a multipart body: text fields into the map, the binary field
/// `binary_name` into a [`ContentWriter`] (spilled to disk when large).
pub(crate) async fn read_form(
    shared: &Shared,
    mut multipart: Multipart,
    binary_name: &str,
    limit: u64,
) -> Result<
    (
        BTreeMap<String, String>,
        Option<(ContentWriter, String, Value)>,
    ),
    ApiError,
> {
    let mut texts = BTreeMap::new();
    let mut binary = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::invalid(format!("Invalid multipart body: {e}"), None))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == binary_name {
            let filename = field.file_name().unwrap_or("upload").to_owned();
            let content_type = field.content_type().map(str::to_owned);
            let mut writer = ContentWriter::new(&shared.data_dir, shared.spill_threshold);
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| ApiError::invalid(format!("Invalid multipart body: {e}"), None))?
            {
                writer
                    .write(&chunk)
                    .await
                    .map_err(|e| ApiError::server(format!("sandbox storage failed: {e}")))?;
                if writer.len() > limit {
                    return Err(ApiError::invalid(
                        format!("{binary_name} exceeds the maximum of {limit} bytes"),
                        Some(leak_name(binary_name)),
                    ));
                }
            }
            let meta =
                json!({"filename": filename, "content_type": content_type, "bytes": writer.len()});
            binary = Some((writer, filename, meta));
        } else {
            let text = field
                .text()
                .await
                .map_err(|e| ApiError::invalid(format!("Invalid multipart body: {e}"), None))?;
            texts.insert(name, text);
        }
    }
    Ok((texts, binary))
}

fn leak_name(name: &str) -> &'static str {
    match name {
        "file" => "file",
        "data" => "data",
        _ => "body",
    }
}

async fn create_file(
    State(shared): State<AppState>,
    axum::Extension(seq): axum::Extension<RequestSeq>,
    multipart: Multipart,
) -> ApiResult {
    let (texts, binary) =
        read_recorded_form(&shared, seq, multipart, "file", shared.max_file_bytes).await?;
    let purpose = texts.get("purpose").ok_or_else(|| {
        ApiError::invalid("Missing required parameter: 'purpose'.", Some("purpose"))
    })?;
    if !FILE_PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::invalid(
            format!("'{purpose}' is not one of {FILE_PURPOSES:?} - 'purpose'"),
            Some("purpose"),
        ));
    }
    let (writer, filename, _) = binary
        .ok_or_else(|| ApiError::invalid("Missing required parameter: 'file'.", Some("file")))?;
    if purpose == "fine-tune" && !filename.ends_with(".jsonl") {
        return Err(ApiError::invalid(
            format!("Invalid file format for Fine-Tuning API. Must be .jsonl, got {filename}"),
            Some("file"),
        ));
    }
    let (segment, _sha) = writer
        .finish()
        .await
        .map_err(|e| ApiError::server(format!("sandbox storage failed: {e}")))?;
    let file = StoredFile {
        id: ids::new_id(ids::FILE),
        bytes: segment.len(),
        created_at: now_secs(),
        filename,
        purpose: purpose.clone(),
        content: Content {
            segments: vec![segment],
        },
    };
    let body = file.json();
    shared.lock().files.insert(file.id.clone(), file);
    ok(body)
}

async fn list_files(State(shared): State<AppState>) -> ApiResult {
    let inner = shared.lock();
    let mut files: Vec<&StoredFile> = inner.files.values().collect();
    files.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let data: Vec<Value> = files.iter().map(|f| f.json()).collect();
    ok(json!({
        "object": "list",
        "data": data,
        "first_id": files.first().map(|f| f.id.clone()).unwrap_or_default(),
        "last_id": files.last().map(|f| f.id.clone()).unwrap_or_default(),
        "has_more": false,
    }))
}

fn no_file(id: &str) -> ApiError {
    ApiError::not_found(format!("No such File object: {id}"))
}

async fn retrieve_file(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let inner = shared.lock();
    let file = inner.files.get(&id).ok_or_else(|| no_file(&id))?;
    ok(file.json())
}

async fn delete_file(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let removed = shared.lock().files.remove(&id);
    removed.ok_or_else(|| no_file(&id))?;
    ok(json!({"id": id, "object": "file", "deleted": true}))
}

async fn file_content(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let content = {
        let inner = shared.lock();
        inner
            .files
            .get(&id)
            .ok_or_else(|| no_file(&id))?
            .content
            .clone()
    };
    let bytes = tokio::task::spawn_blocking(move || content.to_vec())
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(|e| ApiError::server(e.to_string()))?;
    Ok(bytes.into_response())
}

// ---- Uploads -----------------------------------------------------------

#[derive(Deserialize)]
struct CreateUpload {
    filename: String,
    purpose: String,
    bytes: u64,
    mime_type: String,
}

const UPLOAD_PURPOSES: [&str; 4] = ["assistants", "batch", "fine-tune", "vision"];
const UPLOAD_MAX_BYTES: u64 = 8 * 1024 * 1024 * 1024;

fn upload_json(upload: &UploadRec, file: Option<Value>) -> Value {
    json!({
        "id": upload.id,
        "object": "upload",
        "bytes": upload.bytes,
        "created_at": upload.created_at,
        "filename": upload.filename,
        "purpose": upload.purpose,
        "status": upload.status,
        "expires_at": upload.created_at + 3600,
        "file": file,
    })
}

async fn create_upload(
    State(shared): State<AppState>,
    body: Result<axum::Json<CreateUpload>, JsonRejection>,
) -> ApiResult {
    let req = json_body(body)?;
    if !UPLOAD_PURPOSES.contains(&req.purpose.as_str()) {
        return Err(ApiError::invalid(
            format!(
                "'{}' is not one of {UPLOAD_PURPOSES:?} - 'purpose'",
                req.purpose
            ),
            Some("purpose"),
        ));
    }
    if req.bytes > UPLOAD_MAX_BYTES {
        return Err(ApiError::invalid(
            "An upload may be at most 8 GB.",
            Some("bytes"),
        ));
    }
    if req.mime_type.trim().is_empty() {
        return Err(ApiError::invalid(
            "mime_type is required.",
            Some("mime_type"),
        ));
    }
    let upload = UploadRec {
        id: ids::new_id(ids::UPLOAD),
        bytes: req.bytes,
        created_at: now_secs(),
        filename: req.filename,
        purpose: req.purpose,
        status: "pending",
        file_id: None,
    };
    let body = upload_json(&upload, None);
    shared.lock().uploads.insert(upload.id.clone(), upload);
    ok(body)
}

fn no_upload(id: &str) -> ApiError {
    ApiError::not_found(format!("No such Upload object: {id}"))
}

async fn add_part(
    State(shared): State<AppState>,
    axum::Extension(seq): axum::Extension<RequestSeq>,
    Path(upload_id): Path<String>,
    multipart: Multipart,
) -> ApiResult {
    {
        let inner = shared.lock();
        let upload = inner
            .uploads
            .get(&upload_id)
            .ok_or_else(|| no_upload(&upload_id))?;
        if upload.status != "pending" {
            return Err(ApiError::invalid(
                format!(
                    "Upload {upload_id} is {} and takes no more parts.",
                    upload.status
                ),
                None,
            ));
        }
    }
    let (_, binary) =
        read_recorded_form(&shared, seq, multipart, "data", shared.max_part_bytes).await?;
    let (writer, _, _) = binary
        .ok_or_else(|| ApiError::invalid("Missing required parameter: 'data'.", Some("data")))?;
    let (segment, sha256) = writer
        .finish()
        .await
        .map_err(|e| ApiError::server(format!("sandbox storage failed: {e}")))?;
    let part = PartRec {
        id: ids::new_id(ids::PART),
        upload_id: upload_id.clone(),
        created_at: now_secs(),
        segment,
        sha256,
    };
    let body = json!({
        "id": part.id,
        "object": "upload.part",
        "created_at": part.created_at,
        "upload_id": upload_id,
    });
    let mut inner = shared.lock();
    // Cancelled while the part streamed in: drop it.
    if inner
        .uploads
        .get(&upload_id)
        .is_none_or(|u| u.status != "pending")
    {
        return Err(ApiError::invalid(
            format!("Upload {upload_id} takes no more parts."),
            None,
        ));
    }
    inner.parts.insert(part.id.clone(), part);
    drop(inner);
    ok(body)
}

#[derive(Deserialize)]
struct CompleteUpload {
    part_ids: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    md5: Option<String>,
}

async fn complete_upload(
    State(shared): State<AppState>,
    Path(upload_id): Path<String>,
    body: Result<axum::Json<CompleteUpload>, JsonRejection>,
) -> ApiResult {
    let req = json_body(body)?;
    let mut inner = shared.lock();
    let upload = inner
        .uploads
        .get(&upload_id)
        .ok_or_else(|| no_upload(&upload_id))?;
    if upload.status != "pending" {
        return Err(ApiError::invalid(
            format!("Upload {upload_id} is already {}.", upload.status),
            None,
        ));
    }
    let mut segments = Vec::with_capacity(req.part_ids.len());
    for part_id in &req.part_ids {
        let part = inner
            .parts
            .get(part_id)
            .filter(|p| p.upload_id == upload_id)
            .ok_or_else(|| {
                ApiError::invalid(
                    format!("Part {part_id} does not belong to upload {upload_id}."),
                    Some("part_ids"),
                )
            })?;
        tracing::trace!(part = %part.id, sha256 = %part.sha256, "joining part");
        segments.push(part.segment.clone());
    }
    let content = Content { segments };
    let received = content.len();
    if received != upload.bytes {
        return Err(ApiError::invalid(
            format!(
                "The parts add up to {received} bytes, but the upload was created with bytes={}.",
                upload.bytes
            ),
            Some("part_ids"),
        ));
    }
    let file = StoredFile {
        id: ids::new_id(ids::FILE),
        bytes: received,
        created_at: now_secs(),
        filename: upload.filename.clone(),
        purpose: upload.purpose.clone(),
        content,
    };
    let file_json = file.json();
    let file_id = file.id.clone();
    inner.files.insert(file_id.clone(), file);
    inner.parts.retain(|_, p| p.upload_id != upload_id);
    let upload = inner
        .uploads
        .get_mut(&upload_id)
        .ok_or_else(|| no_upload(&upload_id))?;
    upload.status = "completed";
    upload.file_id = Some(file_id);
    ok(upload_json(upload, Some(file_json)))
}

async fn cancel_upload(State(shared): State<AppState>, Path(upload_id): Path<String>) -> ApiResult {
    let mut inner = shared.lock();
    let upload = inner
        .uploads
        .get_mut(&upload_id)
        .ok_or_else(|| no_upload(&upload_id))?;
    if upload.status == "completed" {
        return Err(ApiError::invalid(
            format!("Upload {upload_id} is already completed and cannot be cancelled."),
            None,
        ));
    }
    upload.status = "cancelled";
    let body = upload_json(upload, None);
    inner.parts.retain(|_, p| p.upload_id != upload_id);
    ok(body)
}

// ---- Fine-tuning jobs --------------------------------------------------

#[derive(Deserialize)]
struct CreateJob {
    model: String,
    training_file: String,
    #[serde(default)]
    validation_file: Option<String>,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    hyperparameters: Option<Value>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

fn check_hyperparameters(hp: &Value) -> Result<(), ApiError> {
    let ranges: [(&str, f64, f64, &'static str); 4] = [
        ("n_epochs", 1.0, 50.0, "n_epochs"),
        ("batch_size", 1.0, 256.0, "batch_size"),
        (
            "learning_rate_multiplier",
            f64::MIN_POSITIVE,
            f64::MAX,
            "learning_rate_multiplier",
        ),
        ("beta", f64::MIN_POSITIVE, 2.0, "beta"),
    ];
    for (name, min, max, param) in ranges {
        match hp.get(name) {
            None => {}
            Some(v) if v == "auto" => {}
            Some(v) => {
                let ok = v.as_f64().is_some_and(|x| x >= min && x <= max);
                if !ok {
                    return Err(ApiError::invalid(
                        format!("Invalid value for hyperparameter {name}: {v}"),
                        Some(param),
                    )
                    .code("invalid_hyperparameters"));
                }
            }
        }
    }
    Ok(())
}

async fn create_job(
    State(shared): State<AppState>,
    body: Result<axum::Json<CreateJob>, JsonRejection>,
) -> ApiResult {
    let req = json_body(body)?;
    let settings = shared.settings();
    if settings.deny_fine_tuning {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "invalid_request_error",
            message:
                "You do not have permission to create fine-tuning jobs for this organization: \
                      fine-tuning is no longer available to it."
                    .to_owned(),
            param: None,
            code: Some("permission_denied"),
            headers: Vec::new(),
        });
    }
    if let Some(suffix) = &req.suffix
        && (suffix.is_empty() || suffix.chars().count() > 64)
    {
        return Err(ApiError::invalid(
            "suffix must be 1 to 64 characters.",
            Some("suffix"),
        ));
    }
    if let Some(seed) = req.seed
        && !(0..=2_147_483_647).contains(&seed)
    {
        return Err(ApiError::invalid(
            "seed must be between 0 and 2147483647.",
            Some("seed"),
        ));
    }
    if let Some(metadata) = &req.metadata
        && (metadata.len() > 16
            || metadata
                .iter()
                .any(|(k, v)| k.chars().count() > 64 || v.chars().count() > 512))
    {
        return Err(ApiError::invalid(
            "metadata takes at most 16 pairs, keys up to 64 and values up to 512 characters.",
            Some("metadata"),
        ));
    }
    let method = match &req.method {
        Some(m) => {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
            if !["supervised", "dpo", "reinforcement"].contains(&kind) {
                return Err(ApiError::invalid(
                    format!("method.type must be supervised, dpo or reinforcement, got {kind:?}"),
                    Some("method"),
                ));
            }
            m.clone()
        }
        None => json!({"type": "supervised", "supervised": {}}),
    };
    let kind = method["type"].as_str().unwrap_or("supervised").to_owned();
    let hyperparameters = method
        .get(&kind)
        .and_then(|m| m.get("hyperparameters"))
        .cloned()
        .or_else(|| req.hyperparameters.clone())
        .unwrap_or_else(|| json!({}));
    check_hyperparameters(&hyperparameters)?;

    let mut inner = shared.lock();
    inner.catch_up(&settings);
    if let Some(limit) = settings.max_active_jobs {
        let active = inner
            .jobs
            .iter()
            .filter(|j| j.model == req.model && !j.stage.is_terminal())
            .count();
        if active >= limit {
            return Err(ApiError::concurrency_limit(format!(
                "You have reached the maximum number of active fine-tuning jobs for {} \
                 ({active} of {limit}). Try again once one of them has finished.",
                req.model
            )));
        }
    }
    let (training_bytes, training_content) = {
        let file = inner.files.get(&req.training_file).ok_or_else(|| {
            ApiError::invalid(
                format!("invalid training_file: {}", req.training_file),
                Some("training_file"),
            )
        })?;
        if file.purpose != "fine-tune" {
            return Err(ApiError::invalid(
                format!(
                    "File {} has purpose {}, not fine-tune.",
                    file.id, file.purpose
                ),
                Some("training_file"),
            ));
        }
        (file.bytes, file.content.clone())
    };
    if let Some(v) = &req.validation_file
        && !inner.files.contains_key(v)
    {
        return Err(ApiError::invalid(
            format!("invalid validation_file: {v}"),
            Some("validation_file"),
        ));
    }
    let mut job = JobRec {
        id: ids::new_id(ids::JOB),
        created_at: now_secs(),
        model: req.model,
        training_file: req.training_file,
        validation_file: req.validation_file,
        suffix: req.suffix,
        seed: req
            .seed
            .map(|s| s as u64)
            .unwrap_or_else(|| rand::random_range(0..2_147_483_647)),
        method,
        hyperparameters,
        metadata: req.metadata,
        stage: Stage::Validating,
        resume_epoch: 0,
        error: None,
        fine_tuned_model: None,
        finished_at: None,
        estimated_finish: None,
        trained_tokens: None,
        result_files: Vec::new(),
        events: Vec::new(),
        checkpoints: Vec::new(),
        fail_training: settings.fail_training,
        next_step_at: match settings.progression {
            Progression::Every(step) => Some(Instant::now() + step),
            _ => None,
        },
        training_bytes,
        training_content,
        quality: settings.fine_tuned_quality,
        examples: None,
    };
    let model = job.model.clone();
    job.event(
        "info",
        "message",
        format!("Created fine-tuning job: {}", job.id),
        json!({}),
    );
    let file = job.training_file.clone();
    job.event(
        "info",
        "message",
        format!("Validating training file: {file}"),
        json!({}),
    );
    let body = job.json(&settings.organization);
    tracing::info!(job = %job.id, %model, "fine-tuning job created");
    inner.jobs.push(job);
    ok(body)
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// One page of a newest-first list, after the item with id `after`.
fn page<'a, T>(
    items: &[&'a T],
    id: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
) -> (Vec<&'a T>, bool) {
    let start = match after {
        Some(a) => items
            .iter()
            .position(|i| id(i) == a)
            .map(|p| p + 1)
            .unwrap_or(items.len()),
        None => 0,
    };
    let rest = &items[start.min(items.len())..];
    let limit = limit.clamp(1, 100);
    (
        rest.iter().take(limit).copied().collect(),
        rest.len() > limit,
    )
}

async fn list_jobs(
    State(shared): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult {
    let settings = shared.settings();
    let mut after = None;
    let mut limit = 20usize;
    let mut filter: BTreeMap<String, String> = BTreeMap::new();
    let mut only_without_metadata = false;
    for (k, v) in raw {
        match k.as_str() {
            "after" => after = Some(v),
            "limit" => {
                limit = v
                    .parse()
                    .map_err(|_| ApiError::invalid("limit must be an integer", Some("limit")))?
            }
            "metadata" if v == "null" => only_without_metadata = true,
            _ => {
                if let Some(key) = k
                    .strip_prefix("metadata[")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    filter.insert(key.to_owned(), v);
                }
            }
        }
    }
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let newest_first: Vec<&JobRec> = inner
        .jobs
        .iter()
        .rev()
        .filter(|j| {
            if only_without_metadata {
                return j.metadata.as_ref().is_none_or(|m| m.is_empty());
            }
            settings.ignore_list_filters
                || filter
                    .iter()
                    .all(|(k, v)| j.metadata.as_ref().and_then(|m| m.get(k)) == Some(v))
        })
        .collect();
    let (data, has_more) = page(&newest_first, |j| j.id.as_str(), after.as_deref(), limit);
    let data: Vec<Value> = data
        .iter()
        .map(|j| j.json(&settings.organization))
        .collect();
    ok(json!({"object": "list", "data": data, "has_more": has_more}))
}

fn no_job(id: &str) -> ApiError {
    ApiError::not_found(format!("Could not find fine-tune: {id}")).code("fine_tune_not_found")
}

async fn retrieve_job(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    if inner.job_mut(&id).is_none() {
        return Err(no_job(&id));
    }
    if settings.progression == Progression::OnRead {
        inner.advance(&id, &settings);
    }
    let job = inner.job_mut(&id).ok_or_else(|| no_job(&id))?;
    ok(job.json(&settings.organization))
}

async fn cancel_job(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.job_mut(&id).ok_or_else(|| no_job(&id))?;
    if job.stage.is_terminal() {
        return Err(ApiError::invalid(
            format!(
                "Job {id} has already {}: it cannot be cancelled.",
                job.stage.status()
            ),
            None,
        ));
    }
    job.stage = Stage::Cancelled;
    job.finished_at = Some(now_secs());
    job.estimated_finish = None;
    job.next_step_at = None;
    job.event(
        "info",
        "message",
        "Fine-tuning job cancelled".to_owned(),
        json!({}),
    );
    ok(job.json(&settings.organization))
}

async fn pause_job(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.job_mut(&id).ok_or_else(|| no_job(&id))?;
    let Stage::Running(done) = job.stage else {
        return Err(ApiError::invalid(
            format!(
                "Job {id} is {} and only a running job can be paused.",
                job.stage.status()
            ),
            None,
        ));
    };
    job.stage = Stage::Paused(done);
    job.resume_epoch = done;
    job.estimated_finish = None;
    job.next_step_at = None;
    job.event(
        "info",
        "message",
        "Fine-tuning job paused".to_owned(),
        json!({}),
    );
    ok(job.json(&settings.organization))
}

async fn resume_job(State(shared): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.job_mut(&id).ok_or_else(|| no_job(&id))?;
    let Stage::Paused(done) = job.stage else {
        return Err(ApiError::invalid(
            format!(
                "Job {id} is {} and only a paused job can be resumed.",
                job.stage.status()
            ),
            None,
        ));
    };
    job.stage = Stage::Queued;
    job.resume_epoch = done;
    job.next_step_at = match settings.progression {
        Progression::Every(step) => Some(Instant::now() + step),
        _ => None,
    };
    job.event(
        "info",
        "message",
        "Fine-tuning job resumed".to_owned(),
        json!({}),
    );
    ok(job.json(&settings.organization))
}

async fn list_events(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.job_mut(&id).ok_or_else(|| no_job(&id))?;
    let newest_first: Vec<&crate::state::EventRec> = job.events.iter().rev().collect();
    let (data, has_more) = page(
        &newest_first,
        |e| e.id.as_str(),
        q.after.as_deref(),
        q.limit.unwrap_or(20),
    );
    let data: Vec<Value> = data.iter().map(|e| e.json()).collect();
    ok(json!({"object": "list", "data": data, "has_more": has_more}))
}

async fn list_checkpoints(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult {
    let settings = shared.settings();
    let mut inner = shared.lock();
    inner.catch_up(&settings);
    let job = inner.job_mut(&id).ok_or_else(|| no_job(&id))?;
    let newest_first: Vec<&Value> = job.checkpoints.iter().rev().collect();
    let (data, has_more) = page(
        &newest_first,
        |c| c["id"].as_str().unwrap_or_default(),
        q.after.as_deref(),
        q.limit.unwrap_or(10),
    );
    let first = data
        .first()
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned);
    let last = data
        .last()
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned);
    let data: Vec<Value> = data.into_iter().cloned().collect();
    ok(
        json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}),
    )
}

// ---- Models ------------------------------------------------------------

async fn delete_model(State(shared): State<AppState>, Path(model): Path<String>) -> ApiResult {
    let mut inner = shared.lock();
    let exists = inner
        .jobs
        .iter()
        .any(|j| j.fine_tuned_model.as_deref() == Some(model.as_str()));
    if !exists || inner.models_deleted.contains(&model) {
        return Err(
            ApiError::not_found(format!("The model '{model}' does not exist"))
                .code("model_not_found"),
        );
    }
    inner.models_deleted.push(model.clone());
    ok(json!({"id": model, "object": "model", "deleted": true}))
}
