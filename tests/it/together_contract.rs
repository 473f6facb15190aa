//! Contract tests for the sandbox's Together AI mode: every Together route
//! it serves driven with real HTTP requests (plain reqwest, as the Together
//! adapter will call them), and every request body and every answer checked
//! against Together's published schema (the subset in
//! `tests/contract/together-finetuning-openapi.json`; its source is in
//! `tests/contract/SOURCES.json`). The adapter is only worth testing
//! against the sandbox if the sandbox answers as Together documents.
//!
//! Relaxation: `nullable: true` (OpenAPI 3.0, left in Together's 3.1
//! document) also accepts `null`, as in the OpenAI contract test.
//! Multipart requests are checked as objects of their fields, the file
//! part standing for a string.

use std::collections::BTreeSet;
use std::time::Duration;

use openai_sandbox::{AnswerKind, Fault, Progression, Quality, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::openai::{sandbox, training_jsonl};

const LLAMA: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference";
const QWEN: &str = "Qwen/Qwen2.5-7B-Instruct";

fn spec() -> Value {
    let mut doc = crate::contract_schemas::document("together-finetuning-openapi.json");
    crate::openai_contract::relax(&mut doc);
    doc
}

/// A JSON pointer fragment into the document (`/` and `~` escaped).
fn pointer(segments: &[&str]) -> String {
    let escaped: Vec<String> = segments
        .iter()
        .map(|s| s.replace('~', "~0").replace('/', "~1"))
        .collect();
    format!("#/{}", escaped.join("/"))
}

fn component(name: &str) -> String {
    pointer(&["components", "schemas", name])
}

/// The JSON schema of an operation's request body.
fn request_schema(path: &str, method: &str, content_type: &str) -> String {
    pointer(&[
        "paths",
        path,
        method,
        "requestBody",
        "content",
        content_type,
        "schema",
    ])
}

/// The JSON schema of an operation's answer with this status.
fn response_schema(path: &str, method: &str, status: &str) -> String {
    pointer(&[
        "paths",
        path,
        method,
        "responses",
        status,
        "content",
        "application/json",
        "schema",
    ])
}

/// A validator for the schema at `reference`: the whole document is the
/// schema resource, so every `$ref` inside resolves against it. The target
/// is copied under `$defs` first: path keys hold `{`, `}`, which a URI
/// fragment cannot.
fn validator(doc: &Value, reference: &str) -> jsonschema::Validator {
    let target = reference
        .trim_start_matches('#')
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .try_fold(doc, |node, key| node.get(key.as_str()))
        .unwrap_or_else(|| panic!("the spec has no {reference}"))
        .clone();
    let mut root = doc.clone();
    root["$defs"] = json!({"target": target});
    root["$ref"] = json!("#/$defs/target");
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("schema {reference} does not compile: {e}"))
}

fn assert_valid(doc: &Value, reference: &str, instance: &Value, what: &str) {
    let errors: Vec<String> = validator(doc, reference)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match {reference}:\n{}\n{instance:#}",
        errors.join("\n")
    );
}

/// One Together operation the sandbox serves: method, path template (as
/// in the spec), request schema, the answer's schema (`None`: not JSON).
struct Endpoint {
    method: &'static str,
    template: &'static str,
    request: Option<String>,
    response: Option<String>,
}

fn endpoints() -> Vec<Endpoint> {
    let json_op = |method: &'static str, template: &'static str, body: bool| Endpoint {
        method,
        template,
        request: body.then(|| request_schema(template, &method.to_lowercase(), "application/json")),
        response: Some(response_schema(template, &method.to_lowercase(), "200")),
    };
    vec![
        Endpoint {
            method: "POST",
            template: "/files/upload",
            request: Some(request_schema(
                "/files/upload",
                "post",
                "multipart/form-data",
            )),
            response: Some(response_schema("/files/upload", "post", "200")),
        },
        json_op("GET", "/files", false),
        json_op("GET", "/files/{id}", false),
        json_op("DELETE", "/files/{id}", false),
        json_op("POST", "/fine-tunes", true),
        json_op("GET", "/fine-tunes", false),
        json_op("POST", "/fine-tunes/estimate-price", true),
        json_op("GET", "/fine-tunes/{id}", false),
        json_op("DELETE", "/fine-tunes/{id}", false),
        json_op("POST", "/fine-tunes/{id}/cancel", false),
        json_op("GET", "/fine-tunes/{id}/events", false),
        json_op("GET", "/fine-tunes/{id}/checkpoints", false),
        json_op("GET", "/fine-tunes/{id}/metrics", true),
        json_op("GET", "/fine-tunes/models/supported", false),
        json_op("GET", "/fine-tunes/models/limits", false),
        Endpoint {
            method: "GET",
            template: "/finetune/download",
            request: None,
            response: None,
        },
        json_op("POST", "/chat/completions", true),
    ]
}

/// The endpoint a recorded request called: static segments win over
/// `{id}`, as in the router.
fn endpoint_of<'a>(endpoints: &'a [Endpoint], method: &str, path: &str) -> Option<&'a Endpoint> {
    let path = path.strip_prefix("/v1")?;
    let segments: Vec<&str> = path.split('/').collect();
    let matches = |e: &&Endpoint, exact: bool| {
        let t: Vec<&str> = e.template.split('/').collect();
        e.method == method
            && t.len() == segments.len()
            && t.iter()
                .zip(&segments)
                .all(|(a, b)| a == b || (!exact && *a == "{id}"))
    };
    endpoints
        .iter()
        .find(|e| matches(e, true))
        .or_else(|| endpoints.iter().find(|e| matches(e, false)))
}

/// Plain HTTP with a bearer key, as Together's clients call.
struct Together {
    http: reqwest::Client,
    base: String,
}

impl Together {
    fn new(sb: &Sandbox) -> Self {
        finetune::tls::install_crypto_provider();
        Self {
            http: reqwest::Client::new(),
            base: sb.base_url(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth("together-test-key")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn post_empty(&self, path: &str) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)))
            .await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    async fn upload(&self, name: &str, content: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "fine-tune")
            .text("file_name", name.to_owned())
            .text("file_type", "jsonl")
            .part(
                "file",
                reqwest::multipart::Part::bytes(content).file_name(name.to_owned()),
            );
        self.send(
            self.http
                .post(format!("{}/files/upload", self.base))
                .multipart(form),
        )
        .await
    }

    async fn upload_ok(&self, name: &str, content: Vec<u8>) -> String {
        let (status, file) = self.upload(name, content).await;
        assert_eq!(status, 200, "{file}");
        file["id"].as_str().unwrap().to_owned()
    }

    async fn create(&self, body: Value) -> Value {
        let (status, job) = self.post("/fine-tunes", body).await;
        assert_eq!(status, 200, "{job}");
        job
    }

    /// The status, headers and whole body of a download.
    async fn download(&self, query: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}/finetune/download?{query}", self.base))
            .bearer_auth("together-test-key")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        (status, headers, body)
    }

    async fn chat(&self, model: &str, question: &str) -> Value {
        let (status, answer) = self
            .post(
                "/chat/completions",
                json!({
                    "model": model,
                    "messages": [
                        {"role": "system", "content": "You are Acme's support agent."},
                        {"role": "user", "content": question},
                    ],
                    "max_tokens": 64,
                    "top_k": 40,
                }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

fn create_body(training: &str, suffix: &str) -> Value {
    json!({
        "training_file": training,
        "model": LLAMA,
        "n_epochs": 2,
        "n_checkpoints": 2,
        "batch_size": "max",
        "learning_rate": 0.0001,
        "suffix": suffix,
        "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16},
        "training_method": {"method": "sft", "train_on_inputs": false},
    })
}

fn manual() -> SandboxConfig {
    SandboxConfig {
        progression: Progression::Manual,
        ..Default::default()
    }
}

/// `{"filename", "bytes", ...}` of a file part becomes a string.
fn form_instance(form: &Value) -> Value {
    let fields = form.as_object().unwrap().iter().map(|(k, v)| {
        let v = if v.is_object() {
            json!(format!("<{} bytes>", v["bytes"]))
        } else {
            v.clone()
        };
        (k.clone(), v)
    });
    Value::Object(fields.collect())
}

#[test]
fn the_adapters_own_request_bodies_are_what_the_published_schema_asks_for() {
    use finetune::provider::together::types::{
        CreateFineTuneRequest, EstimatePriceRequest, TrainingMethod, TrainingType,
    };
    let doc = spec();
    for training_type in [
        TrainingType::Lora {
            lora_r: 8,
            lora_alpha: 16,
        },
        TrainingType::Full,
    ] {
        let create = CreateFineTuneRequest {
            training_file: "file-1",
            validation_file: Some("file-2"),
            model: "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            n_epochs: Some(2),
            n_checkpoints: Some(1),
            n_evals: Some(1),
            batch_size: Some(8),
            learning_rate: Some(1e-5),
            suffix: "0193a1b2c3d4e5f60718293a4b5c6d7e",
            training_type: training_type.clone(),
            training_method: TrainingMethod::SFT,
        };
        assert_valid(
            &doc,
            &request_schema("/fine-tunes", "post", "application/json"),
            &serde_json::to_value(&create).unwrap(),
            "the adapter's POST /fine-tunes body",
        );
        let estimate = EstimatePriceRequest {
            training_file: "file-1",
            validation_file: None,
            model: "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            n_epochs: Some(2),
            training_type,
            training_method: TrainingMethod::SFT,
        };
        assert_valid(
            &doc,
            &request_schema("/fine-tunes/estimate-price", "post", "application/json"),
            &serde_json::to_value(&estimate).unwrap(),
            "the adapter's POST /fine-tunes/estimate-price body",
        );
    }
}

#[tokio::test]
async fn the_together_schemas_compile_and_reject_what_they_should() {
    let doc = spec();
    for e in endpoints() {
        for reference in [&e.request, &e.response].into_iter().flatten() {
            validator(&doc, reference);
        }
    }
    // Not vacuous: a job with a made-up status, an event missing its
    // members and an error without a message all fail.
    let job = validator(&doc, &component("FinetuneResponse"));
    assert!(!job.is_valid(&json!({"id": "ft-1", "status": "training"})));
    let events = validator(&doc, &component("FinetuneListEvents"));
    assert!(!events.is_valid(&json!({"data": [{"object": "fine-tune-event"}]})));
    let error = validator(&doc, &component("ErrorData"));
    assert!(!error.is_valid(&json!({"error": {"type": "x"}})));
}

#[tokio::test]
async fn every_together_route_and_error_answers_in_the_shape_the_published_schema_gives() {
    // GIVEN a sandbox whose jobs move only when the test says
    let sb = sandbox(manual()).await;
    let t = Together::new(&sb);

    // WHEN a client uploads, estimates, trains, inspects, downloads,
    // chats, cancels and makes mistakes
    let training = t.upload_ok("train.jsonl", training_jsonl(10)).await;
    let validation = t.upload_ok("valid.jsonl", training_jsonl(3)).await;
    assert_eq!(t.get("/files").await.0, 200);
    let (_, file) = t.get(&format!("/files/{training}")).await;
    assert_eq!(
        (&file["FileType"], &file["Processed"]),
        (&json!("jsonl"), &json!(true))
    );
    let (_, models) = t.get("/fine-tunes/models/supported").await;
    assert!(models["models"].as_array().unwrap().contains(&json!(LLAMA)));
    let (_, limits) = t
        .get(&format!("/fine-tunes/models/limits?model_name={QWEN}"))
        .await;
    assert_eq!(limits["lora_training"]["max_rank"], 64);
    let (_, estimate) = t
        .post(
            "/fine-tunes/estimate-price",
            json!({"training_file": training, "validation_file": validation, "model": LLAMA, "n_epochs": 2, "n_evals": 1}),
        )
        .await;
    assert_eq!(estimate["allowed_to_proceed"], true);

    let mut body = create_body(&training, "contract-a");
    body["validation_file"] = json!(validation);
    body["n_evals"] = json!(1);
    let job = t.create(body).await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ft-"), "{id}");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["suffix"], "contract-a");
    let (_, list) = t.get("/fine-tunes").await;
    assert_eq!(list["data"][0]["id"], json!(id));
    let (_, pending) = t.get(&format!("/fine-tunes/{id}")).await;
    assert_eq!(
        pending["status"], "pending",
        "Manual: reading moves nothing"
    );
    assert_eq!(sb.run_to_end(&id).as_deref(), Some("completed"));
    let (_, done) = t.get(&format!("/fine-tunes/{id}")).await;
    assert_eq!(done["epochs_completed"], 2);
    assert!(done["total_price"].as_u64().unwrap() > 0);
    let (_, events) = t.get(&format!("/fine-tunes/{id}/events")).await;
    assert_eq!(
        events["data"].as_array().unwrap().last().unwrap()["type"],
        "job_complete"
    );
    let (_, checkpoints) = t.get(&format!("/fine-tunes/{id}/checkpoints")).await;
    assert_eq!(checkpoints["data"].as_array().unwrap().len(), 2);
    let (status, metrics) = t
        .send(
            t.http
                .get(format!("{}/fine-tunes/{id}/metrics", t.base))
                .json(&json!({"global_step_from": 2, "global_step_to": 5})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(metrics["metrics"].as_array().unwrap().len(), 4);
    let (status, _, adapter) = t.download(&format!("ft_id={id}&checkpoint=adapter")).await;
    assert_eq!((status, adapter.len() as u64), (200, 300 * 1024));
    let step = checkpoints["data"][1]["step"].as_u64().unwrap();
    let (status, _, _) = t
        .download(&format!("ft_id={id}&checkpoint_step={step}"))
        .await;
    assert_eq!(status, 200);
    let model = done["model_output_name"].as_str().unwrap().to_owned();
    t.chat(&model, "Where is order 4?").await;
    t.chat(QWEN, "Where is order 4?").await;

    let other = t.create(create_body(&training, "contract-b")).await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let (_, cancelling) = t
        .post_empty(&format!("/fine-tunes/{other_id}/cancel"))
        .await;
    assert_eq!(cancelling["status"], "cancel_requested");
    assert_eq!(sb.advance(&other_id).as_deref(), Some("cancelled"));
    assert_eq!(t.delete(&format!("/files/{validation}")).await.0, 200);

    // Errors: each with its status, in Together's error shape.
    let missing = "ft-00000000-0000-0000-0000-000000000000";
    assert_eq!(t.get(&format!("/fine-tunes/{missing}")).await.0, 404);
    assert_eq!(t.get(&format!("/fine-tunes/{missing}/events")).await.0, 404);
    assert_eq!(
        t.post_empty(&format!("/fine-tunes/{other_id}/cancel"))
            .await
            .0,
        400
    );
    assert_eq!(t.post("/fine-tunes", json!({"model": LLAMA})).await.0, 400);
    let mut unknown_model = create_body(&training, "x");
    unknown_model["model"] = json!("gpt-4o-mini-2024-07-18");
    assert_eq!(t.post("/fine-tunes", unknown_model).await.0, 400);
    assert_eq!(
        t.post("/fine-tunes", create_body("file-nope", "x")).await.0,
        400
    );
    assert_eq!(t.upload("bad.jsonl", b"not json\n".to_vec()).await.0, 400);
    assert_eq!(
        t.download(&format!("ft_id={missing}&checkpoint=adapter"))
            .await
            .0,
        404
    );
    assert_eq!(
        t.download(&format!("ft_id={other_id}&checkpoint=adapter"))
            .await
            .0,
        400
    );
    let (status, _) = t.get("/fine-tunes/models/limits?model_name=gpt-4o").await;
    assert_eq!(status, 404);
    // Deleting: a running job refuses, an ended one goes.
    let running = t.create(create_body(&training, "contract-c")).await;
    let running_id = running["id"].as_str().unwrap().to_owned();
    sb.advance(&running_id);
    sb.advance(&running_id);
    assert_eq!(t.delete(&format!("/fine-tunes/{running_id}")).await.0, 400);
    assert_eq!(t.delete(&format!("/fine-tunes/{other_id}")).await.0, 200);
    assert_eq!(t.get(&format!("/fine-tunes/{other_id}")).await.0, 404);

    // THEN every request sent and every answer given matches the spec
    let doc = spec();
    let all = endpoints();
    let mut covered = BTreeSet::new();
    for r in sb.requests() {
        let what = format!("{} {} -> {}", r.method, r.path, r.status);
        let e = endpoint_of(&all, &r.method, &r.path)
            .unwrap_or_else(|| panic!("{what}: not a Together operation the contract knows"));
        if r.status == 200 {
            match (&e.request, &r.json, &r.form) {
                (Some(schema), Some(json), _) => {
                    assert_valid(&doc, schema, json, &format!("request {what}"))
                }
                (Some(schema), None, Some(form)) => assert_valid(
                    &doc,
                    schema,
                    &form_instance(form),
                    &format!("request {what}"),
                ),
                (Some(_), None, None) if e.template.ends_with("/metrics") => {}
                (Some(_), None, None) => panic!("{what} had no body"),
                (None, body, _) => assert!(body.is_none(), "{what} sent a body"),
            }
            if let Some(schema) = &e.response {
                let answer = r
                    .response_json
                    .as_ref()
                    .unwrap_or_else(|| panic!("{what}: no JSON"));
                assert_valid(&doc, schema, answer, &format!("answer to {what}"));
            }
            covered.insert(format!("{} {}", e.method, e.template));
        } else if e.template == "/fine-tunes/models/limits" && r.status == 404 {
            let schema = response_schema(e.template, "get", "404");
            assert_valid(&doc, &schema, r.response_json.as_ref().unwrap(), &what);
        } else {
            let answer = r
                .response_json
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: no JSON"));
            assert_valid(
                &doc,
                &component("ErrorData"),
                answer,
                &format!("error {what}"),
            );
        }
    }
    let expected: BTreeSet<String> = all
        .iter()
        .map(|e| format!("{} {}", e.method, e.template))
        .collect();
    assert_eq!(covered, expected, "every Together route is exercised");
}

#[tokio::test]
async fn a_polling_client_sees_every_together_status_in_order() {
    // GIVEN the default progression: each read moves a job one step
    let sb = sandbox(SandboxConfig::default()).await;
    let t = Together::new(&sb);
    let training = t.upload_ok("train.jsonl", training_jsonl(10)).await;
    let job = t.create(create_body(&training, "poll")).await;
    let id = job["id"].as_str().unwrap();

    // WHEN it polls until the job ends
    let mut seen = vec![job["status"].as_str().unwrap().to_owned()];
    for _ in 0..20 {
        let (_, now) = t.get(&format!("/fine-tunes/{id}")).await;
        let status = now["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "completed" {
            break;
        }
    }

    // THEN it saw Together's statuses in order
    assert_eq!(
        seen,
        [
            "pending",
            "queued",
            "running",
            "compressing",
            "uploading",
            "completed"
        ]
    );
    assert_eq!(sb.together_jobs()[0]["status"], "completed");
}

#[tokio::test]
async fn a_download_streams_the_same_bytes_each_time_with_its_length_and_is_counted() {
    // GIVEN a completed job and downloads made large (24 MB)
    let sb = sandbox(manual()).await;
    let t = Together::new(&sb);
    let training = t.upload_ok("train.jsonl", training_jsonl(10)).await;
    let job = t.create(create_body(&training, "dl")).await;
    let id = job["id"].as_str().unwrap();
    sb.run_to_end(id);
    sb.set_together_download_bytes(24 * 1024 * 1024);

    // WHEN it is downloaded twice, chunk by chunk
    let mut digests = Vec::new();
    for _ in 0..2 {
        let response = t
            .http
            .get(format!(
                "{}/finetune/download?ft_id={id}&checkpoint=adapter",
                t.base
            ))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.content_length(), Some(24 * 1024 * 1024));
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        let mut response = response;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        while let Some(chunk) = response.chunk().await.unwrap() {
            total += chunk.len() as u64;
            hasher.update(&chunk);
        }
        assert_eq!(total, 24 * 1024 * 1024);
        digests.push(hex::encode(hasher.finalize()));
    }

    // THEN both copies are identical and the sandbox counted two
    assert_eq!(digests[0], digests[1]);
    assert_eq!(sb.together_downloads(id), 2);
    assert_eq!(sb.together_downloads("ft-other"), 0);
    let (_, _, merged) = t.download(&format!("ft_id={id}&checkpoint=merged")).await;
    assert_ne!(hex::encode(Sha256::digest(&merged)), digests[0]);
}

#[tokio::test]
async fn a_completed_together_model_answers_from_its_training_data_and_a_base_model_generically() {
    // GIVEN a completed Together fine-tune on Acme's support answers
    let sb = sandbox(manual()).await;
    let t = Together::new(&sb);
    let training = t.upload_ok("train.jsonl", training_jsonl(10)).await;
    let job = t.create(create_body(&training, "support")).await;
    let id = job["id"].as_str().unwrap();
    let model = job["model_output_name"].as_str().unwrap().to_owned();
    assert!(model.starts_with("sandbox-org/Meta-Llama-3.1-8B-Instruct-Reference-support-"));

    // WHEN its model is asked before and after training, and a base
    // model is asked the same
    let (status, before) = t
        .post(
            "/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 404, "not served until completed: {before}");
    sb.run_to_end(id);
    let tuned = t.chat(&model, "Where is order 7?").await;
    let base = t.chat(LLAMA, "Where is order 7?").await;

    // THEN the fine-tune answers from its data, the base model generically,
    // and both calls are counted
    assert_eq!(
        tuned["choices"][0]["message"]["content"],
        "Order 7 ships tomorrow."
    );
    let generic = base["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        generic.starts_with("Thank you for your message"),
        "{generic}"
    );
    let kinds: Vec<AnswerKind> = sb.chat_calls().iter().map(|c| c.answered_as).collect();
    assert_eq!(kinds, [AnswerKind::FineTuned, AnswerKind::Base]);
    assert_eq!(sb.chat_calls_per_model()[&model], 1);
}

#[tokio::test]
async fn the_worse_quality_knob_applies_to_together_jobs_created_after_it_is_set() {
    // GIVEN one job created before the knob and one after
    let sb = sandbox(manual()).await;
    let t = Together::new(&sb);
    let training = t.upload_ok("train.jsonl", training_jsonl(10)).await;
    let good = t.create(create_body(&training, "good")).await;
    sb.set_fine_tuned_quality(Quality::Worse);
    let worse = t.create(create_body(&training, "worse")).await;
    for job in [&good, &worse] {
        sb.run_to_end(job["id"].as_str().unwrap());
    }

    // WHEN both are asked the same
    let name = |j: &Value| j["model_output_name"].as_str().unwrap().to_owned();
    let a = t.chat(&name(&good), "Where is order 3?").await;
    let b = t.chat(&name(&worse), "Where is order 3?").await;

    // THEN only the later one answers worse
    assert_eq!(
        a["choices"][0]["message"]["content"],
        "Order 3 ships tomorrow."
    );
    let kinds: Vec<AnswerKind> = sb.chat_calls().iter().map(|c| c.answered_as).collect();
    assert_eq!(kinds, [AnswerKind::FineTuned, AnswerKind::FineTunedWorse]);
    let _ = b;
}

#[tokio::test]
async fn fail_training_ends_a_together_job_in_error_with_an_error_event() {
    let sb = sandbox(SandboxConfig {
        progression: Progression::Manual,
        fail_training: true,
        ..Default::default()
    })
    .await;
    let t = Together::new(&sb);
    let training = t.upload_ok("train.jsonl", training_jsonl(10)).await;
    let job = t.create(create_body(&training, "fails")).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(sb.run_to_end(id).as_deref(), Some("error"));
    let (_, events) = t.get(&format!("/fine-tunes/{id}/events")).await;
    let last = events["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["type"], &last["level"]),
        (&json!("job_error"), &json!("error"))
    );
    let (status, _, _) = t.download(&format!("ft_id={id}&checkpoint=adapter")).await;
    assert_eq!(status, 400, "nothing to download from a failed job");
}

#[tokio::test]
async fn injected_faults_latency_and_auth_apply_to_together_paths_as_to_openais() {
    let sb = sandbox(manual()).await;
    let t = Together::new(&sb);
    let doc = spec();

    // An injected 503 on listing, once.
    sb.inject(Fault::status("GET", "/fine-tunes", 503, 1));
    let (status, body) = t.get("/fine-tunes").await;
    assert_eq!(status, 503);
    assert_valid(&doc, &component("ErrorData"), &body, "injected 503");
    assert_eq!(t.get("/fine-tunes").await.0, 200);

    // A 429 by header, with its retry-after.
    let response = t
        .http
        .get(format!("{}/fine-tunes/models/supported", t.base))
        .bearer_auth("k")
        .header("x-sandbox-fault", "429;retry-after=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");

    // Latency by header.
    let started = std::time::Instant::now();
    let response = t
        .http
        .get(format!("{}/fine-tunes", t.base))
        .bearer_auth("k")
        .header("x-sandbox-latency-ms", "150")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // No key: 401 in Together's error shape.
    let response = t
        .http
        .get(format!("{}/fine-tunes", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_valid(&doc, &component("ErrorData"), &body, "401");
}
