//! Our own HTTP API against `docs/openapi.yaml`: every route the handlers
//! serve is driven with real API Gateway v2 events (success and error
//! cases) and each answer's status, content type, required headers and
//! body are validated against the document, so the document cannot drift
//! from the code. The document must name exactly the routes of
//! `finetune::http::ROUTES`, and the route table of `docs/api.md` exactly
//! the document's routes.

use std::collections::BTreeSet;

use chrono::Utc;
use finetune::domain::{JobStatus, ModelCheckpoint, ModelId, ModelRecord, ModelStatus, RunStatus};
use finetune::http::ROUTES;
use finetune::webhook::signature::WebhookSecret;
use finetune_tests::ApiEvent;
use serde_json::{Value, json};

use crate::api::{Api, Reply, advance, body, dataset, run_id, tenant, training_run};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Self {
        let path = finetune_tests::workspace_root().join("docs/openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let doc: Value = serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML");
        assert_eq!(doc["openapi"], "3.1.0");
        Self { doc }
    }

    /// Every `(METHOD, path template)` the document describes.
    fn routes(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item.get(*method).is_some() {
                    out.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// The documented path template a concrete path matches.
    fn template_of(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .find(|template| {
                let t: Vec<&str> = template.split('/').collect();
                t.len() == segments.len()
                    && t.iter()
                        .zip(&segments)
                        .all(|(t, s)| t.starts_with('{') || t == s)
            })
            .cloned()
    }

    /// Follows a local `$ref` (`#/components/...`) once, if there is one.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self
                .doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {pointer}")),
            None => value,
        }
    }

    /// Checks one answer of `method path` against the document: the status
    /// is documented for the operation, the content type is one it lists,
    /// headers marked required are there, and the body matches the schema.
    fn check(&self, method: &str, path: &str, reply: &Reply) -> (String, String, u16) {
        let template = self
            .template_of(path)
            .unwrap_or_else(|| panic!("{path} matches no documented path"));
        let operation = &self.doc["paths"][&template][method.to_ascii_lowercase()];
        let what = format!("{method} {template} -> {}", reply.status);
        // A method the document does not list never reaches a function
        // behind API Gateway (routes are declared per method: the gateway
        // answers 404 itself, as the document says). The handlers still
        // refuse it, as 405 problem+json with `Allow`, should they ever be
        // behind a catch-all route; that is checked here, not documented.
        if operation.is_null() {
            assert_eq!(reply.status, 405, "{what}: undocumented method");
            assert_eq!(reply.content_type, "application/problem+json", "{what}");
            assert!(reply.headers.contains_key("allow"), "{what}: no Allow");
            return (method.to_owned(), template, reply.status);
        }
        let response = operation["responses"]
            .get(reply.status.to_string())
            .map(|r| self.resolve(r))
            .unwrap_or_else(|| panic!("{what}: status not documented\n{}", reply.body));
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for (name, header) in headers {
                if self.resolve(header)["required"] == true {
                    assert!(
                        reply.headers.contains_key(name.as_str()),
                        "{what}: header {name} missing"
                    );
                }
            }
        }
        let media = response["content"]
            .get(&reply.content_type)
            .unwrap_or_else(|| {
                panic!("{what}: content type {} not documented", reply.content_type)
            });
        self.assert_valid(&media["schema"], &reply.body, &what);
        (method.to_owned(), template, reply.status)
    }

    /// Validates `instance` against `schema` (usually a `$ref`) with the
    /// whole document as the schema resource, so every `$ref` resolves.
    fn assert_valid(&self, schema: &Value, instance: &Value, what: &str) {
        let mut root = self.doc.clone();
        root["x-under-test"] = schema.clone();
        root["$ref"] = json!("#/x-under-test");
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: body does not match the document:\n{}\n{instance:#}",
            errors.join("\n")
        );
    }
}

/// Sends events through the handlers and checks every answer.
struct Driver {
    api: Api,
    spec: Spec,
    seen: BTreeSet<(String, String, u16)>,
}

impl Driver {
    async fn send(&mut self, event: ApiEvent, expected: u16) -> Value {
        let raw = event.to_json();
        let method = raw["requestContext"]["http"]["method"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = raw["rawPath"].as_str().unwrap().to_owned();
        let reply = self.api.send(event).await;
        assert_eq!(reply.status, expected, "{method} {path}: {}", reply.body);
        self.seen.insert(self.spec.check(&method, &path, &reply));
        reply.body
    }
}

#[test]
fn the_document_names_exactly_the_routes_the_handlers_serve() {
    let spec = Spec::load();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let documented = spec.routes();
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served by the handlers but missing from docs/openapi.yaml"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
}

#[test]
fn the_api_guides_route_table_lists_the_documented_routes() {
    let guide = std::fs::read_to_string(finetune_tests::workspace_root().join("docs/api.md"))
        .expect("docs/api.md");
    let section = guide
        .split("\n## Routes\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/api.md has a '## Routes' section");
    // Rows look like: | `GET /runs?status=&limit=&cursor=` | job-status | ... |
    let listed: BTreeSet<(String, String)> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter_map(|route| route.split_once(' '))
        .map(|(m, p)| (m.to_owned(), p.split('?').next().unwrap_or(p).to_owned()))
        .collect();
    assert_eq!(listed, Spec::load().routes());
}

#[test]
fn every_example_in_the_document_matches_its_schema() {
    let spec = Spec::load();
    let mut checked = 0;
    for (path, item) in spec.doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let request = op["requestBody"]["content"]["application/json"].clone();
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            let media = std::iter::once(("request".to_owned(), request)).chain(
                responses.iter().flat_map(|(status, r)| {
                    let r = spec.resolve(r);
                    r["content"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |(_, m)| (status.clone(), m))
                }),
            );
            for (what, media) in media {
                for (name, example) in media["examples"].as_object().into_iter().flatten() {
                    let value = &spec.resolve(example)["value"];
                    let label = format!("{method} {path} {what} example {name}");
                    spec.assert_valid(&media["schema"], value, &label);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 5, "only {checked} examples checked");
}

#[tokio::test]
async fn every_route_answers_as_the_document_says() {
    let mut d = Driver {
        api: Api::new().await,
        spec: Spec::load(),
        seen: BTreeSet::new(),
    };
    let acme = tenant("acme");

    // POST /runs: 202, replay 200, reused key 409, invalid 400, malformed 400, 401, 405.
    let keyed = || {
        ApiEvent::post("/runs")
            .tenant("acme")
            .header("Idempotency-Key", "spec-1")
    };
    let run = d.send(keyed().json(&body("spec")), 202).await;
    let id = run_id(&run);
    d.send(keyed().json(&body("spec")), 200).await;
    d.send(keyed().json(&body("another")), 409).await;
    d.send(
        ApiEvent::post("/runs")
            .tenant("acme")
            .json(&json!({"name": "", "config": {"train_split": 2}, "extra": 1})),
        400,
    )
    .await;
    d.send(
        ApiEvent::post("/runs").tenant("acme").body("{not json"),
        400,
    )
    .await;
    d.send(ApiEvent::post("/runs").json(&body("anon")), 401)
        .await;
    d.send(ApiEvent::new("DELETE", "/runs").tenant("acme"), 405)
        .await;

    // A run with a dataset, for GET /runs/{id} and GET /datasets/{id}.
    let ds = dataset(&acme, &id);
    d.api.store().put_dataset(&ds).await.unwrap();
    let mut stored = advance(d.api.store(), &acme, &id, &[RunStatus::Preparing]).await;
    stored.dataset_id = Some(ds.id.clone());
    d.api.store().update_run(&stored).await.unwrap();

    // GET /runs: 200, bad parameters 400, 401.
    let page = d
        .send(ApiEvent::get("/runs?limit=1").tenant("acme"), 200)
        .await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    // Empty parameters are left-out ones: every run, the default page.
    let all = d
        .send(
            ApiEvent::get("/runs?status=&limit=&cursor=").tenant("acme"),
            200,
        )
        .await;
    let plain = d.send(ApiEvent::get("/runs").tenant("acme"), 200).await;
    assert_eq!(all["data"], plain["data"]);
    assert!(!plain["data"].as_array().unwrap().is_empty());
    d.send(
        ApiEvent::get("/runs?limit=0&status=nope").tenant("acme"),
        400,
    )
    .await;
    d.send(ApiEvent::get("/runs"), 401).await;

    // GET /runs/{id}: 200 with its dataset, 404 for another tenant, 405.
    let detail = d
        .send(ApiEvent::get(&format!("/runs/{id}")).tenant("acme"), 200)
        .await;
    assert_eq!(detail["dataset"]["id"], ds.id.as_str());
    d.send(ApiEvent::get(&format!("/runs/{id}")).tenant("globex"), 404)
        .await;
    d.send(ApiEvent::post(&format!("/runs/{id}")).tenant("acme"), 405)
        .await;
    d.send(ApiEvent::get(&format!("/runs/{id}")), 401).await;

    // GET /datasets/{id}: 200, 404, 401.
    d.send(
        ApiEvent::get(&format!("/datasets/{}", ds.id)).tenant("acme"),
        200,
    )
    .await;
    d.send(
        ApiEvent::get(&format!("/datasets/{}", ds.id)).tenant("globex"),
        404,
    )
    .await;
    d.send(ApiEvent::get(&format!("/datasets/{}", ds.id)), 401)
        .await;

    // GET /datasets/{id}/download: 200 (train), 400 for another file, 404
    // for another tenant, 401.
    let download = |query: &str| format!("/datasets/{}/download{query}", ds.id);
    let url = d
        .send(ApiEvent::get(&download("?file=train")).tenant("acme"), 200)
        .await;
    assert!(
        url["url"].as_str().unwrap().contains(&ds.train.key),
        "{url}"
    );
    d.send(
        ApiEvent::get(&download("?file=weights")).tenant("acme"),
        400,
    )
    .await;
    d.send(ApiEvent::get(&download("")).tenant("globex"), 404)
        .await;
    d.send(ApiEvent::get(&download("")), 401).await;

    // POST /runs/{id}/cancel: 200 (twice), 409 once completed, 404, 503
    // without the provider's adapter, 405, 401.
    let to_cancel = run_id(&d.api.start("acme", &body("cancel me")).await);
    let cancel =
        |id: &finetune::domain::RunId| ApiEvent::post(&format!("/runs/{id}/cancel")).tenant("acme");
    d.send(cancel(&to_cancel), 200).await;
    d.send(cancel(&to_cancel), 200).await;
    let done = run_id(&d.api.start("acme", &body("done")).await);
    advance(
        d.api.store(),
        &acme,
        &done,
        &[RunStatus::Preparing, RunStatus::Completed],
    )
    .await;
    d.send(cancel(&done), 409).await;
    d.send(
        ApiEvent::post(&format!("/runs/{to_cancel}/cancel")).tenant("globex"),
        404,
    )
    .await;
    let training = training_run(&d.api, "acme", "ftjob-spec").await;
    d.send(cancel(&training), 503).await;
    d.send(
        ApiEvent::get(&format!("/runs/{to_cancel}/cancel")).tenant("acme"),
        405,
    )
    .await;
    d.send(ApiEvent::post(&format!("/runs/{to_cancel}/cancel")), 401)
        .await;

    // GET /runs/{id}/events: 200 with the cancel on the timeline, 400, 404, 401.
    let events = d
        .send(
            ApiEvent::get(&format!("/runs/{to_cancel}/events")).tenant("acme"),
            200,
        )
        .await;
    assert!(!events["data"].as_array().unwrap().is_empty());
    d.send(
        ApiEvent::get(&format!("/runs/{to_cancel}/events?limit=500")).tenant("acme"),
        400,
    )
    .await;
    d.send(
        ApiEvent::get(&format!("/runs/{to_cancel}/events")).tenant("globex"),
        404,
    )
    .await;
    d.send(ApiEvent::get(&format!("/runs/{to_cancel}/events")), 401)
        .await;

    // A run with a finished job shows every member of `job` and `stats`.
    let mut finished = d.api.store().get_run(&acme, &training).await.unwrap();
    if let Some(job) = finished.job.as_mut() {
        job.status = JobStatus::Succeeded;
        job.fine_tuned_model = Some("ft:gpt-4o-mini-2024-07-18:org:acme:abc".into());
        job.finished_at = Some(Utc::now());
    }
    for (status, phase) in [
        (RunStatus::Deploying, "fine-tuned model trained"),
        (RunStatus::Evaluating, "fine-tuned model ready"),
        (RunStatus::Completed, "evaluated"),
    ] {
        finished.move_to(status, phase, Utc::now()).unwrap();
    }
    finished.evaluation = Some(evaluation_record());
    d.api.store().update_run(&finished).await.unwrap();
    let shown = d
        .send(
            ApiEvent::get(&format!("/runs/{training}")).tenant("acme"),
            200,
        )
        .await;
    assert_eq!(shown["job"]["status"], "succeeded");
    assert_eq!(shown["evaluation"]["decision"], "better");

    // GET /runs/{id}/evaluation: 200 with its rows (one judged, one not),
    // 400 for a forged cursor, 404 for another tenant, 401.
    for (index, judged) in [(3, true), (8, false)] {
        let key = finetune::blob::keys::evaluation_row_key(&acme, &training, index);
        let row = serde_json::to_vec(&evaluation_row(index, judged)).unwrap();
        d.api
            .blobs()
            .put_bytes(&key, row, "application/json")
            .await
            .unwrap();
    }
    let evaluation = |tenant: &str, query: &str| {
        ApiEvent::get(&format!("/runs/{training}/evaluation{query}")).tenant(tenant)
    };
    let page = d.send(evaluation("acme", "?limit=1"), 200).await;
    assert_eq!(page["data"][0]["index"], 3);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = d
        .send(evaluation("acme", &format!("?cursor={cursor}")), 200)
        .await;
    assert_eq!(rest["data"][0]["index"], 8);
    d.send(evaluation("acme", "?cursor=Zm9yZ2Vk"), 400).await;
    d.send(evaluation("globex", ""), 404).await;
    d.send(ApiEvent::get(&format!("/runs/{training}/evaluation")), 401)
        .await;

    // GET /limits: the deployment's default, then an operator's cap; 401.
    let limits = d.send(ApiEvent::get("/limits").tenant("acme"), 200).await;
    assert_eq!(limits["limits"]["monthly_cap_usd"], Value::Null);
    d.api
        .store()
        .set_tenant_limits(
            &acme,
            finetune::domain::fleet::TenantLimits {
                max_in_flight: 2,
                monthly_cap: Some(finetune::domain::fleet::Usd::from_dollars(40.0)),
            },
        )
        .await
        .unwrap();
    let limits = d.send(ApiEvent::get("/limits").tenant("acme"), 200).await;
    assert_eq!(limits["limits"]["max_in_flight"], 2);
    assert_eq!(limits["usage"]["remaining_usd"], 40.0);
    d.send(ApiEvent::get("/limits"), 401).await;

    Box::pin(models_metrics_and_webhooks(&mut d, &acme, &training, &done)).await;

    // Every served route was exercised with a success and an error.
    for (method, template) in ROUTES {
        let statuses: Vec<u16> = d
            .seen
            .iter()
            .filter(|(m, t, _)| m == method && t == template)
            .map(|(_, _, s)| *s)
            .collect();
        assert!(
            statuses.iter().any(|s| (200..300).contains(s))
                && statuses.iter().any(|s| (400..600).contains(s)),
            "{method} {template} not exercised with a success and an error: {statuses:?}"
        );
    }
}

/// An evaluation that found the fine-tune better, with a judge.
fn evaluation_record() -> finetune::domain::EvaluationRecord {
    serde_json::from_value(json!({
        "status": "completed",
        "examples": 40,
        "candidate": {"model": "ft:gpt-4o-mini-2024-07-18:org:acme:abc", "score": 0.61},
        "baseline": {"model": "gpt-4o-mini-2024-07-18", "score": 0.32},
        "difference": {"mean": 0.29, "ci_low": 0.21, "ci_high": 0.36},
        "win_rate": 0.8,
        "win_rate_ci": [0.65, 0.9],
        "judge_model": "gpt-4o-mini-2024-07-18",
        "decision": "better",
        "estimated_cost_usd": 0.05,
        "reason": null,
        "activation": "activated"
    }))
    .unwrap()
}

/// One evaluated example: a text answer pair, and with `judged` the
/// judge's verdicts; without, a tool-call reference and answer.
fn evaluation_row(index: usize, judged: bool) -> finetune::evaluation::row::EvaluationRow {
    let mut row = json!({
        "index": index,
        "prompt_excerpt": "Where is order 7?",
        "reference": {"kind": "text", "text": "It ships tomorrow."},
        "candidate": {"model": "ft:gpt-4o-mini-2024-07-18:org:acme:abc",
                      "answer": {"kind": "text", "text": "It ships tomorrow."},
                      "score": 1.0, "truncated": false},
        "baseline": {"model": "gpt-4o-mini-2024-07-18",
                     "answer": {"kind": "text", "text": "Thanks for reaching out."},
                     "score": 0.1, "truncated": false}
    });
    if judged {
        row["judge"] = json!({"model": "gpt-4o-mini-2024-07-18", "candidate_as_a": "A",
                              "candidate_as_b": null, "outcome": "win"});
    } else {
        row["reference"] = json!({"kind": "tool_call", "name": "track", "arguments": {"order": 7}});
        row["candidate"]["answer"] =
            json!({"kind": "tool_call", "name": "track", "arguments": {"order": 7}});
    }
    serde_json::from_value(row).unwrap()
}

/// The routes of the models, webhook and metrics features, driven on runs
/// the main test set up (a training run and a completed one).
async fn models_metrics_and_webhooks(
    d: &mut Driver,
    acme: &finetune::domain::TenantId,
    training: &finetune::domain::RunId,
    done: &finetune::domain::RunId,
) {
    // GET /runs/{id}/metrics: 200 (no points yet), 404 for another tenant, 401.
    let curve = d
        .send(
            ApiEvent::get(&format!("/runs/{training}/metrics")).tenant("acme"),
            200,
        )
        .await;
    assert_eq!(curve["run_id"], training.as_str());
    d.send(
        ApiEvent::get(&format!("/runs/{training}/metrics")).tenant("globex"),
        404,
    )
    .await;
    d.send(ApiEvent::get(&format!("/runs/{training}/metrics")), 401)
        .await;

    // The models of two completed runs, for the /models routes.
    let model = |run: &finetune::domain::RunId, status: ModelStatus| ModelRecord {
        id: ModelId::for_run(run),
        tenant_id: acme.clone(),
        provider: finetune::domain::ProviderKind::OpenAi,
        base_model: "gpt-4o-mini-2024-07-18".into(),
        provider_model: format!("ft:gpt-4o-mini-2024-07-18:org:acme:{}", run.as_str()),
        deployment: None,
        run_id: run.clone(),
        dataset_id: None,
        created_at: Utc::now(),
        trained_tokens: Some(1234),
        final_train_loss: Some(0.4),
        final_valid_loss: None,
        base_model_shutdown: chrono::NaiveDate::from_ymd_opt(2027, 1, 14),
        status,
        deleted_at: None,
        evaluation: None,
        weights: None,
        checkpoints: vec![ModelCheckpoint {
            step: 10,
            model: "ft:gpt-4o-mini-2024-07-18:org:acme:ckpt-step-10".into(),
            train_loss: Some(0.5),
            valid_loss: None,
        }],
    };
    let mut ready = model(training, ModelStatus::Ready);
    ready.weights = Some(finetune::domain::WeightsFile {
        key: format!("models/acme/{}/adapter.tar.zst", ready.id),
        bytes: 4096,
        sha256: "ab".repeat(32),
        checkpoint: "adapter".into(),
    });
    let gone = model(done, ModelStatus::Deleted);
    d.api.store().put_model(&ready).await.unwrap();
    d.api.store().put_model(&gone).await.unwrap();

    // GET /models/active before any activation: 404; the rest need a JWT.
    d.send(ApiEvent::get("/models/active").tenant("acme"), 404)
        .await;
    // POST /models/{id}/activate: 200, 409 for a deleted model, 404, 401.
    let activate = |id: &ModelId| format!("/models/{id}/activate");
    d.send(ApiEvent::post(&activate(&ready.id)).tenant("acme"), 200)
        .await;
    d.send(ApiEvent::post(&activate(&gone.id)).tenant("acme"), 409)
        .await;
    d.send(ApiEvent::post(&activate(&ready.id)).tenant("globex"), 404)
        .await;
    d.send(ApiEvent::post(&activate(&ready.id)), 401).await;

    // GET /models/{id}/download: 200 for weights, 409 for a deleted model,
    // 404 for another tenant, 401.
    let download = |id: &ModelId| format!("/models/{id}/download");
    let url = d
        .send(ApiEvent::get(&download(&ready.id)).tenant("acme"), 200)
        .await;
    assert_eq!(url["bytes"], 4096);
    d.send(ApiEvent::get(&download(&gone.id)).tenant("acme"), 409)
        .await;
    d.send(ApiEvent::get(&download(&ready.id)).tenant("globex"), 404)
        .await;
    d.send(ApiEvent::get(&download(&ready.id)), 401).await;
    // With a body: force is a boolean; anything else is 400.
    d.send(
        ApiEvent::post(&activate(&ready.id))
            .tenant("acme")
            .json(&json!({"force": true})),
        200,
    )
    .await;
    d.send(
        ApiEvent::post(&activate(&ready.id))
            .tenant("acme")
            .json(&json!({"force": 1})),
        400,
    )
    .await;
    // GET /models/active: 200 now.
    let active = d
        .send(ApiEvent::get("/models/active").tenant("acme"), 200)
        .await;
    assert_eq!(active["id"], ready.id.to_string());
    // GET /models: 200, 400 for a bad limit, 401.
    let models = d.send(ApiEvent::get("/models").tenant("acme"), 200).await;
    assert_eq!(models["data"].as_array().map(Vec::len), Some(2));
    d.send(ApiEvent::get("/models?limit=0").tenant("acme"), 400)
        .await;
    d.send(ApiEvent::get("/models"), 401).await;
    // GET /models/{id}: 200, 404 for another tenant.
    d.send(
        ApiEvent::get(&format!("/models/{}", ready.id)).tenant("acme"),
        200,
    )
    .await;
    d.send(
        ApiEvent::get(&format!("/models/{}", ready.id)).tenant("globex"),
        404,
    )
    .await;
    // DELETE /models/{id}: 200 for one already deleted, 409 for the active one.
    d.send(
        ApiEvent::new("DELETE", &format!("/models/{}", gone.id)).tenant("acme"),
        200,
    )
    .await;
    d.send(
        ApiEvent::new("DELETE", &format!("/models/{}", ready.id)).tenant("acme"),
        409,
    )
    .await;

    // POST /webhooks/openai: 200 (signed, for a job we do not know), 401
    // for a bad signature, 405.
    let signer = WebhookSecret::parse(crate::api::WEBHOOK_SECRET).unwrap();
    let event = json!({"id": "evt_spec", "object": "event", "type": "fine_tuning.job.succeeded",
                       "created_at": Utc::now().timestamp(), "data": {"id": "ftjob-unknown"}})
    .to_string();
    let ts = Utc::now().timestamp().to_string();
    let delivery = |signature: String| {
        ApiEvent::post("/webhooks/openai")
            .header("webhook-id", "msg_spec")
            .header("webhook-timestamp", &ts)
            .header("webhook-signature", &signature)
            .body(&event)
    };
    let answer = d
        .send(
            delivery(signer.sign("msg_spec", &ts, event.as_bytes())),
            200,
        )
        .await;
    assert_eq!(answer["action"], "ignored");
    d.send(delivery("v1,AAAA".into()), 401).await;
    d.send(ApiEvent::get("/webhooks/openai"), 405).await;
}
