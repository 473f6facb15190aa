//! The HTTP API end to end: real API Gateway v2 events through the library
//! handlers the functions run, against DynamoDB on moto.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{Duration, NaiveDate, Utc};
use finetune::config::Config;
use finetune::domain::{
    DatasetFile, DatasetId, DatasetRecord, JobInfo, JobStatus, ProviderKind, Run, RunId, RunStatus,
    TenantId,
};
use finetune::http::{cancel_handler, job_status_handler, start_run_handler};
use finetune::metrics::{Metrics, Recorded};
use finetune::provider::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderError,
    ProviderEvent, ProviderFileRef, ProviderJob, Providers,
};
use finetune::store::Store;
use finetune_tests::{ApiEvent, TestEnv};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

pub(crate) struct Api {
    env: TestEnv,
    config: Config,
    providers: Providers,
    /// What the handlers emitted; see `Api::recorded`.
    metrics: Metrics,
    recorded: Recorded,
}

/// The webhook signing secret the test deployment is configured with.
pub(crate) const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWJjZGVm";

impl Api {
    pub(crate) async fn new() -> Self {
        Self::with_providers(Providers::new()).await
    }

    async fn with_providers(providers: Providers) -> Self {
        let env = TestEnv::new().await;
        let table = env.table.clone();
        let bucket = env.bucket.clone();
        let config = Config::from_lookup(move |k| match k {
            // The sandbox never winds down: no test may expire with a real date.
            "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
            "FINETUNE_TABLE" => Some(table.clone()),
            "FINETUNE_BUCKET" => Some(bucket.clone()),
            _ => None,
        })
        .unwrap();
        let (metrics, recorded) = Metrics::in_memory();
        Self {
            env,
            config,
            providers,
            metrics,
            recorded,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.env.store
    }

    pub(crate) fn blobs(&self) -> &finetune::blob::Blobs {
        &self.env.blobs
    }

    /// Sends the event to whichever function API Gateway would route it to.
    pub(crate) async fn send(&self, event: ApiEvent) -> Reply {
        let raw = event.to_json();
        let method = raw["requestContext"]["http"]["method"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = raw["rawPath"].as_str().unwrap().to_owned();
        let function = if path.starts_with("/models") {
            Function::Models
        } else if path.starts_with("/webhooks") {
            Function::Webhook
        } else if method == "POST" && path.ends_with("/cancel") {
            Function::Cancel
        } else if method == "POST" && path.trim_end_matches('/').ends_with("/runs") {
            Function::StartRun
        } else {
            Function::JobStatus
        };
        Reply::from(self.handle(function, event.build()).await)
    }

    /// A whole event as JSON text, as the Lambda service hands it to
    /// `function`: deserialised the way the runtime deserialises the
    /// functions' payload (`serde_json::Value`), then through the
    /// functions' entry point (`finetune::http::gateway::answer`).
    pub(crate) async fn invoke(&self, function: Function, event: &str) -> ApiGatewayV2httpResponse {
        let payload: Value = serde_json::from_slice(event.as_bytes()).expect("JSON text");
        let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
        finetune::http::gateway::answer(event, |req| self.handle(function, req)).await
    }

    async fn handle(&self, function: Function, req: lambda_http::Request) -> Response<Body> {
        match function {
            Function::Models => {
                finetune::http::models_handler(
                    self.store(),
                    &self.env.blobs,
                    &self.providers.controls(),
                    &self.config,
                    req,
                )
                .await
            }
            Function::Webhook => {
                let pipeline = finetune::pipeline::Pipeline {
                    store: self.env.store.clone(),
                    blobs: self.env.blobs.clone(),
                    providers: self.providers.clone(),
                    answerers: finetune::provider::registry::Answerers::none(),
                    lease: std::time::Duration::from_secs(60),
                    metrics: self.metrics.clone(),
                    fleet: self.config.fleet.clone(),
                };
                let secret = finetune::webhook::setup::SigningSecret::ready(WEBHOOK_SECRET);
                // Boxed: the reconciler's future is large, and would otherwise
                // sit inline in every caller's future.
                Box::pin(finetune::http::webhook_handler(
                    &pipeline.following_jobs(),
                    &secret,
                    req,
                ))
                .await
            }
            Function::Cancel => {
                cancel_handler(
                    self.store(),
                    &self.providers.controls(),
                    &self.config,
                    &self.metrics,
                    req,
                )
                .await
            }
            Function::StartRun => {
                start_run_handler(self.store(), &self.config, &self.metrics, req).await
            }
            Function::JobStatus => {
                job_status_handler(self.store(), &self.env.blobs, &self.config, req).await
            }
        }
    }

    pub(crate) async fn start(&self, tenant: &str, body: &Value) -> Value {
        let reply = self
            .send(ApiEvent::post("/runs").tenant(tenant).json(body))
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body
    }
}

/// The five HTTP functions, each with its own handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    StartRun,
    JobStatus,
    Cancel,
    Models,
    Webhook,
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) headers: lambda_http::http::HeaderMap,
    pub(crate) body: Value,
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Self {
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        Self {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            headers: response.headers().clone(),
            body,
        }
    }
}

impl Reply {
    /// A problem+json answer with this status and a full problem document.
    fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.body["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(self.body[member].is_string(), "{member} in {}", self.body);
        }
        self
    }

    fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(crate) fn body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "support conversations",
        "config": {
            "start_date": "2026-10-01",
            "end_date": "2026-10-31",
            "base_model": "gpt-4o-mini-2024-07-18",
            "train_split": 0.8,
            "hyperparameters": {"n_epochs": 3},
            "filters": {"min_rating": 4}
        }
    })
}

pub(crate) fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

pub(crate) fn run_id(view: &Value) -> RunId {
    RunId::parse(view["id"].as_str().unwrap()).unwrap()
}

/// Walks a stored run through the pipeline's own transitions.
pub(crate) async fn advance(store: &Store, t: &TenantId, id: &RunId, path: &[RunStatus]) -> Run {
    let mut run = store.get_run(t, id).await.unwrap();
    for next in path {
        // Admission stands between the dataset and the provider: a walk
        // to uploading passes through waiting, as the pipeline's does.
        if *next == RunStatus::Uploading && run.status != RunStatus::Waiting {
            run.move_to(RunStatus::Waiting, "waiting", Utc::now())
                .unwrap();
            run = store.update_run(&run).await.unwrap();
        }
        run.move_to(*next, next.as_str(), Utc::now()).unwrap();
        run = store.update_run(&run).await.unwrap();
    }
    run
}

fn job(id: &str, status: JobStatus) -> JobInfo {
    JobInfo {
        provider_job_id: id.to_owned(),
        status,
        provider_status: "running".to_owned(),
        fine_tuned_model: None,
        trained_tokens: Some(1234),
        error: None,
        estimated_finish: None,
        finished_at: None,
        synced_at: Utc::now(),
        events_cursor: None,
        step: None,
        total_steps: None,
    }
}

/// A stored run in training with a provider job.
pub(crate) async fn training_run(api: &Api, t: &str, job_id: &str) -> RunId {
    let view = api.start(t, &body("training")).await;
    let id = run_id(&view);
    let mut run = advance(
        api.store(),
        &tenant(t),
        &id,
        &[RunStatus::Uploading, RunStatus::Submitting],
    )
    .await;
    run.move_to(RunStatus::Training, "running", Utc::now())
        .unwrap();
    run.job = Some(job(job_id, JobStatus::Running));
    api.store().update_run(&run).await.unwrap();
    id
}

pub(crate) fn dataset(t: &TenantId, run: &RunId) -> DatasetRecord {
    DatasetRecord {
        id: DatasetId::generate(),
        tenant_id: t.clone(),
        run_id: run.clone(),
        start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
        end_date: NaiveDate::from_ymd_opt(2026, 10, 31),
        format: "openai-chat".into(),
        train: DatasetFile {
            key: "datasets/x/train.jsonl".into(),
            sha256: "ab".repeat(32),
            bytes: 2048,
            examples: 90,
        },
        validation: None,
        manifest_key: "datasets/x/manifest.json".into(),
        stats: json!({"examples": 90, "skipped": {"too_short": 3}}),
        provider_files: vec![],
        created_at: Utc::now(),
        version: 0,
    }
}

// ---------------------------------------------------------------- start-run

#[tokio::test]
async fn post_runs_answers_202_with_the_queued_run_and_stores_it() {
    let api = Api::new().await;

    let reply = api
        .send(
            ApiEvent::post("/runs")
                .tenant("acme")
                .json(&body("october")),
        )
        .await;

    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let view = &reply.body;
    for field in [
        "id",
        "name",
        "status",
        "phase",
        "provider",
        "config",
        "dataset_id",
        "job",
        "stats",
        "error",
        "created_at",
        "updated_at",
        "completed_at",
    ] {
        assert!(view.get(field).is_some(), "{field} missing from {view}");
    }
    assert_eq!(view["status"], "queued");
    assert_eq!(view["provider"], "openai");
    assert_eq!(view["job"], Value::Null);
    assert_eq!(view["config"]["train_split"], 0.8);
    assert_eq!(view["config"]["min_examples"], 10);
    assert!(view["created_at"].as_str().unwrap().ends_with('Z'));
    let id = run_id(view);
    assert_eq!(reply.headers["location"], format!("/runs/{id}"));

    let stored = api.store().get_run(&tenant("acme"), &id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Queued);
    assert_eq!(stored.name, "october");
    assert_eq!(stored.config.filters.min_rating, Some(4));
}

#[tokio::test]
async fn a_named_stage_in_the_path_still_routes() {
    let api = Api::new().await;
    let reply = api
        .send(
            ApiEvent::post("/runs")
                .stage("prod")
                .tenant("acme")
                .json(&body("staged")),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_run_with_200() {
    let api = Api::new().await;
    let first = api
        .send(
            ApiEvent::post("/runs")
                .tenant("acme")
                .header("Idempotency-Key", "order-42")
                .json(&body("once")),
        )
        .await;
    assert_eq!(first.status, 202);

    // Same content, keys in another order and other whitespace.
    let reordered = r#"{ "config": {"filters": {"min_rating": 4}, "hyperparameters": {"n_epochs": 3},
        "train_split": 0.8, "base_model": "gpt-4o-mini-2024-07-18",
        "end_date": "2026-10-31", "start_date": "2026-10-01"},
        "description": "support conversations", "name": "once" }"#;
    let again = api
        .send(
            ApiEvent::post("/runs")
                .tenant("acme")
                .header("Idempotency-Key", "order-42")
                .body(reordered),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);

    let list = api.send(ApiEvent::get("/runs").tenant("acme")).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    // One run started, counted once: a replay is not a new run.
    assert_eq!(
        api.recorded
            .sum("RunsStarted", Some(("Provider", "openai"))),
        1.0
    );
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_409() {
    let api = Api::new().await;
    let send = |name: &str| {
        ApiEvent::post("/runs")
            .tenant("acme")
            .header("Idempotency-Key", "k1")
            .json(&body(name))
    };
    assert_eq!(api.send(send("a")).await.status, 202);

    let reply = api.send(send("b")).await;

    reply.assert_problem(409);
    assert_eq!(
        reply.body["type"],
        "urn:finetune:problem:idempotency-key-reused"
    );
}

#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let api = Api::new().await;
    let send = |t: &str| {
        ApiEvent::post("/runs")
            .tenant(t)
            .header("Idempotency-Key", "shared-key")
            .json(&body("x"))
    };
    let a = api.send(send("acme")).await;
    let b = api.send(send("globex")).await;
    assert_eq!((a.status, b.status), (202, 202));
    assert_ne!(a.body["id"], b.body["id"]);
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_a_400_naming_the_header() {
    let api = Api::new().await;
    for key in ["has space", "a/b", &"k".repeat(129)] {
        let reply = api
            .send(
                ApiEvent::post("/runs")
                    .tenant("acme")
                    .header("Idempotency-Key", key)
                    .json(&body("x")),
            )
            .await;
        reply.assert_problem(400);
        assert_eq!(reply.error_fields(), vec!["Idempotency-Key"], "{key}");
    }
}

#[tokio::test]
async fn bad_bodies_are_problem_400s_never_500s() {
    let api = Api::new().await;
    let post = |raw: &str| ApiEvent::post("/runs").tenant("acme").body(raw);

    for raw in ["", "{", "not json", "{\"name\": }", "\u{0}"] {
        let reply = api.send(post(raw)).await;
        reply.assert_problem(400);
        assert_eq!(
            reply.body["type"], "urn:finetune:problem:malformed-body",
            "{raw:?}"
        );
    }
    for raw in ["[]", "42", "\"x\"", "null"] {
        let reply = api.send(post(raw)).await;
        reply.assert_problem(400);
        assert_eq!(reply.error_fields(), vec!["body"], "{raw}");
    }

    let mut unknown = body("x");
    unknown["priority"] = json!("high");
    unknown["config"]["epochs"] = json!(3);
    let reply = api.send(post(&unknown.to_string())).await;
    reply.assert_problem(400);
    assert_eq!(reply.error_fields(), vec!["priority", "config.epochs"]);
}

#[tokio::test]
async fn many_bad_fields_are_all_listed_in_one_400() {
    let api = Api::new().await;
    let tomorrow = (Utc::now() + Duration::days(1)).date_naive().to_string();
    let bad = json!({
        "name": "",
        "provider": "bedrock",
        "config": {
            "start_date": "2026-13-01",
            "end_date": tomorrow,
            "base_model": "gpt-2",
            "min_examples": 1,
            "train_split": 1.5,
            "seed": "7",
            "hyperparameters": {"n_epochs": 100, "learning_rate_multiplier": "auto"},
        }
    });
    let reply = api
        .send(
            ApiEvent::post("/runs")
                .tenant("acme")
                .header("Idempotency-Key", "bad key")
                .json(&bad),
        )
        .await;
    reply.assert_problem(400);
    assert_eq!(reply.body["type"], "urn:finetune:problem:validation");
    assert_eq!(
        reply.error_fields(),
        vec![
            "name",
            "provider",
            "config.start_date",
            "config.end_date",
            "config.base_model",
            "config.min_examples",
            "config.train_split",
            "config.seed",
            "config.hyperparameters.n_epochs",
            "Idempotency-Key",
        ]
    );
    let provider = &reply.body["errors"][1]["message"];
    assert_eq!(
        provider,
        "bedrock is not enabled in this deployment (it has no BEDROCK_ROLE_ARN)"
    );
    assert!(
        api.store()
            .list_runs(&tenant("acme"), None, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_run_can_reuse_a_dataset_of_its_own_tenant_only() {
    let api = Api::new().await;
    let first = api.start("acme", &body("prepare")).await;
    let ds = dataset(&tenant("acme"), &run_id(&first));
    api.store().put_dataset(&ds).await.unwrap();
    let reuse = json!({"name": "reuse", "dataset_id": ds.id.as_str(),
                       "config": {"base_model": "gpt-4o-mini-2024-07-18"}});

    let own = api
        .send(ApiEvent::post("/runs").tenant("acme").json(&reuse))
        .await;
    let foreign = api
        .send(ApiEvent::post("/runs").tenant("globex").json(&reuse))
        .await;

    assert_eq!(own.status, 202, "{}", own.body);
    assert_eq!(own.body["dataset_id"], ds.id.as_str());
    foreign.assert_problem(400);
    assert_eq!(foreign.error_fields(), vec!["dataset_id"]);
}

// ------------------------------------------------------------ authentication

#[tokio::test]
async fn no_tenant_is_401_on_every_route() {
    let api = Api::new().await;
    let id = run_id(&api.start("acme", &body("x")).await);
    let routes = [
        ("POST", "/runs".to_owned()),
        ("GET", "/runs".to_owned()),
        ("GET", format!("/runs/{id}")),
        ("GET", format!("/runs/{id}/events")),
        ("POST", format!("/runs/{id}/cancel")),
        ("GET", format!("/datasets/{}", DatasetId::generate())),
        ("GET", "/nowhere".to_owned()),
    ];
    for (method, path) in routes {
        for event in [
            ApiEvent::new(method, &path).json(&body("x")),
            ApiEvent::new(method, &path).claims(json!({"sub": "u1"})),
            ApiEvent::new(method, &path).claims(json!({"tenant_id": "../acme"})),
        ] {
            let reply = api.send(event).await;
            reply.assert_problem(401);
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
        }
    }
    let run = api.store().get_run(&tenant("acme"), &id).await.unwrap();
    assert_eq!(run.status, RunStatus::Queued);
}

// ---------------------------------------------------------------- isolation

#[tokio::test]
async fn another_tenants_run_dataset_events_and_cancel_are_404() {
    let api = Api::new().await;
    let acme = tenant("acme");
    let view = api.start("acme", &body("secret")).await;
    let id = run_id(&view);
    let ds = dataset(&acme, &id);
    api.store().put_dataset(&ds).await.unwrap();

    for (method, path) in [
        ("GET", format!("/runs/{id}")),
        ("GET", format!("/runs/{id}/events")),
        ("POST", format!("/runs/{id}/cancel")),
        ("GET", format!("/datasets/{}", ds.id)),
    ] {
        let reply = api
            .send(ApiEvent::new(method, &path).tenant("globex"))
            .await;
        reply.assert_problem(404);
        assert!(!reply.body.to_string().contains("secret"));
    }
    let list = api.send(ApiEvent::get("/runs").tenant("globex")).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body, json!({"data": [], "next_cursor": null}));

    // The owner still sees everything, untouched by the foreign cancel.
    let own = api
        .send(ApiEvent::get(&format!("/runs/{id}")).tenant("acme"))
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["status"], "queued");
    let own_ds = api
        .send(ApiEvent::get(&format!("/datasets/{}", ds.id)).tenant("acme"))
        .await;
    assert_eq!(own_ds.status, 200);
}

#[tokio::test]
async fn get_limits_answers_the_callers_own_limits_and_usage_never_another_tenants() {
    // GIVEN acme has an operator's cap and a reservation this month
    let api = Api::new().await;
    let acme = tenant("acme");
    let cap = finetune::domain::fleet::TenantLimits {
        max_in_flight: 2,
        monthly_cap: Some(finetune::domain::fleet::Usd::from_dollars(25.0)),
    };
    api.store().set_tenant_limits(&acme, cap).await.unwrap();

    // WHEN each tenant reads GET /limits
    let own = api.send(ApiEvent::get("/limits").tenant("acme")).await;
    let other = api.send(ApiEvent::get("/limits").tenant("globex")).await;

    // THEN acme sees its cap; globex the deployment's default, no cap
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["tenant_id"], "acme");
    assert_eq!(
        own.body["limits"],
        json!({"max_in_flight": 2, "monthly_cap_usd": 25.0})
    );
    assert_eq!(own.body["usage"]["in_flight"], 0);
    assert_eq!(own.body["usage"]["remaining_usd"], 25.0);
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(other.body["tenant_id"], "globex");
    assert_eq!(other.body["limits"]["monthly_cap_usd"], Value::Null);
    assert!(!other.body.to_string().contains("25"));
    // and no method changes limits through the API
    let put = api
        .send(ApiEvent::new("PUT", "/limits").tenant("acme"))
        .await;
    put.assert_problem(405);
}

#[tokio::test]
async fn a_cursor_from_another_tenant_shows_nothing_of_theirs() {
    let api = Api::new().await;
    for i in 0..3 {
        api.start("acme", &body(&format!("a{i}"))).await;
    }
    api.start("globex", &body("g")).await;
    let page = api
        .send(ApiEvent::get("/runs?limit=1").tenant("acme"))
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();

    let foreign = api
        .send(ApiEvent::get(&format!("/runs?cursor={cursor}")).tenant("globex"))
        .await;

    assert_eq!(foreign.status, 200);
    for run in foreign.body["data"].as_array().unwrap() {
        assert_eq!(run["name"], "g");
    }
}

// ------------------------------------------------------------ paths, methods

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_as_problems() {
    let api = Api::new().await;
    let id = RunId::generate();
    for path in [
        "/",
        "/run",
        "/runs/x/y/z",
        &format!("/runs/{id}/logs"),
        "/datasets",
    ] {
        api.send(ApiEvent::get(path).tenant("acme"))
            .await
            .assert_problem(404);
    }
    for (method, path, allow) in [
        ("DELETE", "/runs".to_owned(), "GET, POST"),
        ("PUT", format!("/runs/{id}"), "GET"),
        ("GET", format!("/runs/{id}/cancel"), "POST"),
        (
            "POST",
            format!("/datasets/{}", DatasetId::generate()),
            "GET",
        ),
    ] {
        let reply = api.send(ApiEvent::new(method, &path).tenant("acme")).await;
        reply.assert_problem(405);
        assert_eq!(reply.headers["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn malformed_ids_in_paths_are_plain_404s() {
    let api = Api::new().await;
    for path in [
        "/runs/run_123",
        "/runs/ds_0193a1b2c3d4e5f60718293a4b5c6d7e",
        "/runs/run_%2e%2e/events",
        "/runs/RUN_X/cancel",
        "/datasets/ds_nope",
    ] {
        let method = if path.ends_with("cancel") {
            "POST"
        } else {
            "GET"
        };
        let reply = api.send(ApiEvent::new(method, path).tenant("acme")).await;
        reply.assert_problem(404);
        assert!(reply.body.get("errors").is_none());
    }
}

// ----------------------------------------------------------------- listing

#[tokio::test]
async fn listing_is_newest_first_paginated_and_filtered_by_status() {
    let api = Api::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(run_id(&api.start("acme", &body(&format!("run {i}"))).await));
    }
    ids.reverse();
    let cancelled = api
        .send(ApiEvent::post(&format!("/runs/{}/cancel", ids[1])).tenant("acme"))
        .await;
    assert_eq!(cancelled.status, 200);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/runs?limit=2".to_owned(),
            Some(c) => format!("/runs?limit=2&cursor={c}"),
        };
        let page = api.send(ApiEvent::get(&path).tenant("acme")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(run_id));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let only = api
        .send(ApiEvent::get("/runs?status=cancelled").tenant("acme"))
        .await;
    let data = only.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(run_id(&data[0]), ids[1]);
    let queued = api
        .send(ApiEvent::get("/runs?status=queued&limit=100").tenant("acme"))
        .await;
    assert_eq!(queued.body["data"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn bad_listing_parameters_are_400s_naming_the_parameter() {
    let api = Api::new().await;
    let id = run_id(&api.start("acme", &body("x")).await);
    for (query, field) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("cursor=%25%25%25", "cursor"),
        ("cursor=Zm9v", "cursor"),
    ] {
        let reply = api
            .send(ApiEvent::get(&format!("/runs?{query}")).tenant("acme"))
            .await;
        reply.assert_problem(400);
        assert_eq!(reply.error_fields(), vec![field], "{query}");
    }
    let reply = api
        .send(ApiEvent::get("/runs?status=nope&limit=0").tenant("acme"))
        .await;
    assert_eq!(reply.error_fields(), vec!["status", "limit"]);
    for query in ["limit=0", "cursor=Zm9v"] {
        let reply = api
            .send(ApiEvent::get(&format!("/runs/{id}/events?{query}")).tenant("acme"))
            .await;
        reply.assert_problem(400);
    }
}

#[tokio::test]
async fn a_run_shows_its_dataset_stats() {
    let api = Api::new().await;
    let t = tenant("acme");
    let id = run_id(&api.start("acme", &body("with data")).await);
    let ds = dataset(&t, &id);
    api.store().put_dataset(&ds).await.unwrap();
    let mut run = advance(api.store(), &t, &id, &[RunStatus::Preparing]).await;
    run.dataset_id = Some(ds.id.clone());
    api.store().update_run(&run).await.unwrap();

    let reply = api
        .send(ApiEvent::get(&format!("/runs/{id}")).tenant("acme"))
        .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "preparing");
    assert_eq!(reply.body["dataset_id"], ds.id.as_str());
    assert_eq!(reply.body["dataset"]["stats"]["skipped"]["too_short"], 3);
    assert_eq!(reply.body["dataset"]["train"]["examples"], 90);
    assert!(reply.body["dataset"].get("manifest_key").is_none());

    let ds_reply = api
        .send(ApiEvent::get(&format!("/datasets/{}", ds.id)).tenant("acme"))
        .await;
    assert_eq!(ds_reply.body["id"], ds.id.as_str());
    assert_eq!(ds_reply.body["start_date"], "2026-10-01");
}

// ------------------------------------------------------------------ cancel

#[tokio::test]
async fn cancelling_a_queued_run_is_200_and_repeating_it_too() {
    let api = Api::new().await;
    let id = run_id(&api.start("acme", &body("stop me")).await);
    let cancel = || ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme");

    let first = api.send(cancel()).await;
    let second = api.send(cancel()).await;

    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["status"], "cancelled");
    assert!(first.body["completed_at"].is_string());
    assert_eq!(second.status, 200);
    assert_eq!(second.body["updated_at"], first.body["updated_at"]);
    assert_eq!(api.recorded.sum("RunsCancelled", None), 1.0, "counted once");

    let events = api
        .send(ApiEvent::get(&format!("/runs/{id}/events")).tenant("acme"))
        .await;
    let data = events.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", events.body);
    assert_eq!(data[0]["kind"], "status_changed");
    assert_eq!(
        data[0]["data"],
        json!({"from": "queued", "to": "cancelled"})
    );
    assert_eq!(events.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn completed_and_failed_runs_cannot_be_cancelled() {
    let api = Api::new().await;
    let t = tenant("acme");
    let done = run_id(&api.start("acme", &body("done")).await);
    advance(
        api.store(),
        &t,
        &done,
        &[RunStatus::Preparing, RunStatus::Completed],
    )
    .await;
    let failed = run_id(&api.start("acme", &body("failed")).await);
    let mut run = api.store().get_run(&t, &failed).await.unwrap();
    run.fail("too_few_examples", "found 3 examples", Utc::now())
        .unwrap();
    api.store().update_run(&run).await.unwrap();

    for (id, status) in [(done, "completed"), (failed, "failed")] {
        let reply = api
            .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
            .await;
        reply.assert_problem(409);
        assert!(reply.body["detail"].as_str().unwrap().contains(status));
        assert_eq!(
            api.store().get_run(&t, &id).await.unwrap().status.as_str(),
            status
        );
    }
}

/// Runs inside the provider's cancel, e.g. to write the run as the monitor would.
type CancelHook = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

/// A provider that records cancels. Test-only stand-in for the provider
/// port (an external service), not for our storage: the store is real.
struct RecordingProvider {
    cancels: AtomicUsize,
    outcome: CancelBehaviour,
    /// Runs once on the first cancel: lets a test write the run meanwhile,
    /// as the monitor would.
    on_cancel: tokio::sync::Mutex<Option<CancelHook>>,
}

#[derive(Clone, Copy)]
enum CancelBehaviour {
    Cancelled,
    AlreadySucceeded,
    RateLimited,
}

impl RecordingProvider {
    fn new(outcome: CancelBehaviour) -> Arc<Self> {
        Arc::new(Self {
            cancels: AtomicUsize::new(0),
            outcome,
            on_cancel: tokio::sync::Mutex::new(None),
        })
    }

    fn job(id: &str, status: JobStatus, word: &str) -> ProviderJob {
        ProviderJob {
            id: id.to_owned(),
            status,
            provider_status: word.to_owned(),
            base_model: "gpt-4o-mini-2024-07-18".into(),
            fine_tuned_model: None,
            trained_tokens: Some(5000),
            error: None,
            created_at: None,
            finished_at: Some(Utc::now()),
            estimated_finish: None,
            tags: None,
            estimated_cost_usd: None,
        }
    }
}

#[async_trait]
impl JobControl for RecordingProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }
    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        if let Some(hook) = self.on_cancel.lock().await.take() {
            hook().await;
        }
        match self.outcome {
            CancelBehaviour::Cancelled => Ok(Self::job(job_id, JobStatus::Cancelled, "cancelled")),
            CancelBehaviour::AlreadySucceeded => {
                let mut job = Self::job(job_id, JobStatus::Succeeded, "succeeded");
                job.fine_tuned_model = Some("ft:gpt-4o-mini:acme::abc".into());
                Ok(job)
            }
            CancelBehaviour::RateLimited => Err(ProviderError::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(7)),
                request_id: None,
            }),
        }
    }
    async fn delete_model(&self, _: &str) -> Result<(), ProviderError> {
        unimplemented!("not used by cancel")
    }
    fn serving(&self) -> Option<&dyn finetune::provider::serving::ModelServing> {
        None
    }
}

#[async_trait]
impl FineTuningProvider for RecordingProvider {
    async fn prepare_file(&self, _: &DatasetFileSource) -> Result<ProviderFileRef, ProviderError> {
        unimplemented!("not used by cancel")
    }
    async fn create_job(&self, _: &CreateJob) -> Result<ProviderJob, ProviderError> {
        unimplemented!("not used by cancel")
    }
    async fn find_jobs(&self, _: &JobTags) -> Result<Vec<ProviderJob>, ProviderError> {
        unimplemented!("not used by cancel")
    }
    async fn get_job(&self, _: &str) -> Result<ProviderJob, ProviderError> {
        unimplemented!("not used by cancel")
    }
    async fn list_events(
        &self,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        unimplemented!("not used by cancel")
    }
    async fn list_checkpoints(
        &self,
        _: &str,
    ) -> Result<Vec<finetune::provider::ProviderCheckpoint>, ProviderError> {
        unimplemented!("not used by cancel")
    }
    async fn step_metrics(
        &self,
        _: &str,
        _: &JobTags,
    ) -> Result<Vec<finetune::domain::curve::MetricPoint>, ProviderError> {
        unimplemented!("not used by cancel")
    }
    fn weights(&self) -> Option<&dyn finetune::provider::weights::ModelWeights> {
        None
    }
}

#[tokio::test]
async fn cancelling_a_run_with_a_job_cancels_the_job_exactly_once() {
    let provider = RecordingProvider::new(CancelBehaviour::Cancelled);
    let api = Api::with_providers(Providers::new().with(provider.clone())).await;
    let id = training_run(&api, "acme", "ftjob-abc").await;

    let reply = api
        .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
        .await;
    let again = api
        .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
        .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "cancelled");
    assert_eq!(reply.body["job"]["id"], "ftjob-abc");
    assert_eq!(reply.body["job"]["status"], "cancelled");
    assert_eq!(reply.body["job"]["trained_tokens"], 5000);
    assert_eq!(again.status, 200);
    assert_eq!(provider.cancels.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_concurrent_monitor_write_is_not_lost_and_the_job_is_cancelled_once() {
    let provider = RecordingProvider::new(CancelBehaviour::Cancelled);
    let api = Api::with_providers(Providers::new().with(provider.clone())).await;
    let id = training_run(&api, "acme", "ftjob-race").await;
    // While the provider is cancelling, the monitor syncs the run.
    let (store, t, rid) = (api.store().clone(), tenant("acme"), id.clone());
    *provider.on_cancel.lock().await = Some(Box::new(move || {
        Box::pin(async move {
            let mut run = store.get_run(&t, &rid).await.unwrap();
            run.phase = "monitor synced".into();
            store.update_run(&run).await.unwrap();
        })
    }));

    let reply = api
        .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
        .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(provider.cancels.load(Ordering::SeqCst), 1);
    let run = api.store().get_run(&tenant("acme"), &id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    // training_run wrote versions 1..=4 (through waiting), the monitor
    // 5, cancel 6.
    assert_eq!(run.version, 6);
}

#[tokio::test]
async fn a_transient_provider_error_is_503_and_the_run_stays_as_it_was() {
    let provider = RecordingProvider::new(CancelBehaviour::RateLimited);
    let api = Api::with_providers(Providers::new().with(provider.clone())).await;
    let id = training_run(&api, "acme", "ftjob-busy").await;

    let reply = api
        .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
        .await;

    reply.assert_problem(503);
    assert_eq!(reply.headers["retry-after"], "7");
    let run = api.store().get_run(&tenant("acme"), &id).await.unwrap();
    assert_eq!(run.status, RunStatus::Training);
}

#[tokio::test]
async fn a_job_that_already_succeeded_is_recorded_and_the_cancel_is_409() {
    let provider = RecordingProvider::new(CancelBehaviour::AlreadySucceeded);
    let api = Api::with_providers(Providers::new().with(provider.clone())).await;
    let id = training_run(&api, "acme", "ftjob-done").await;

    let reply = api
        .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
        .await;

    reply.assert_problem(409);
    let run = api.store().get_run(&tenant("acme"), &id).await.unwrap();
    assert_eq!(run.status, RunStatus::Training);
    let job = run.job.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(
        job.fine_tuned_model.as_deref(),
        Some("ft:gpt-4o-mini:acme::abc")
    );
}

#[tokio::test]
async fn without_a_provider_adapter_a_run_with_a_job_is_503_not_cancelled() {
    let api = Api::new().await;
    let id = training_run(&api, "acme", "ftjob-x").await;

    let reply = api
        .send(ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme"))
        .await;

    reply.assert_problem(503);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("provider_not_configured")
    );
    let run = api.store().get_run(&tenant("acme"), &id).await.unwrap();
    assert_eq!(run.status, RunStatus::Training);
}
