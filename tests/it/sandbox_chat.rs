//! The sandbox's `POST /v1/chat/completions`: every request and answer
//! checked against OpenAI's published schema (`tests/contract/
//! openai-chat-completions-openapi.json`, the team's extract of
//! openai/openai-openapi), and the deterministic behaviour the evaluation
//! relies on: a fine-tuned model answers from what it was trained on, a
//! base model generically, a judge by which answer is nearer the
//! reference, a `Worse` fine-tune worse than its base.
//!
//! Schema relaxation, as in `openai_contract.rs`: `nullable: true` (an
//! OpenAPI 3.0 keyword left in this 3.1 document) also accepts `null`.

use std::time::{Duration, Instant};

use openai_sandbox::judge::{self, VERDICT_A, VERDICT_B, VERDICT_TIE, judge_prompt, similarity};
use openai_sandbox::{AnswerKind, Fault, Progression, Quality, Sandbox, SandboxConfig};
use serde_json::{Value, json};

pub(crate) const BASE: &str = "gpt-4o-mini-2024-07-18";
pub(crate) const SYSTEM: &str = "You are Acme's support agent.";

/// (question, answer) pairs; the order question is answered by a tool call.
pub(crate) const TRAINING: &[(&str, &str)] = &[
    (
        "How do I reset my password?",
        "Open Settings > Security and choose Reset password; we email you a link.",
    ),
    ("Where is order 1042?", ""),
    (
        "Can I change my delivery address?",
        "Yes, until the parcel ships: edit it under Orders > Delivery.",
    ),
    (
        "Do you ship to Canada?",
        "We ship to Canada in 5-7 business days; duties are paid at delivery.",
    ),
    (
        "How do I cancel my subscription?",
        "Go to Account > Plan and press Cancel; you keep access until the period ends.",
    ),
    (
        "What payment methods do you accept?",
        "Visa, Mastercard, PayPal and bank transfer.",
    ),
    (
        "My parcel arrived damaged.",
        "Sorry about that! Send us a photo within 14 days and we replace it free of charge.",
    ),
    (
        "How long do refunds take?",
        "Refunds reach your account 3-5 business days after we receive the return.",
    ),
    (
        "Is there a student discount?",
        "Students get 15% off with a verified university email.",
    ),
    (
        "How can I contact support by phone?",
        "Call +1 555 0100, Monday to Friday, 9am to 5pm.",
    ),
];

pub(crate) const ORDER_ARGUMENTS: &str = r#"{"order_id":"1042"}"#;

pub(crate) fn tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "lookup_order",
        "description": "Finds an order's status.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]},
    }}])
}

pub(crate) fn training_jsonl() -> Vec<u8> {
    let mut out = String::new();
    for (question, answer) in TRAINING {
        let assistant = if answer.is_empty() {
            json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                   "function": {"name": "lookup_order", "arguments": ORDER_ARGUMENTS}}]})
        } else {
            json!({"role": "assistant", "content": answer})
        };
        let line = json!({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            assistant,
        ], "tools": tools()});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// The chat-completions subset the repository carries, relaxed as the
/// fine-tuning contract tests relax theirs (`nullable: true`).
fn spec() -> Value {
    let mut doc = crate::contract_schemas::document("openai-chat-completions-openapi.json");
    crate::openai_contract::relax(&mut doc);
    doc
}

fn schema_errors(doc: &Value, name: &str, instance: &Value) -> Vec<String> {
    assert!(
        doc["components"]["schemas"].get(name).is_some(),
        "the spec has no schema {name}"
    );
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn assert_valid(doc: &Value, name: &str, instance: &Value) {
    let errors = schema_errors(doc, name, instance);
    assert!(
        errors.is_empty(),
        "does not match {name}:\n{}\n{instance:#}",
        errors.join("\n")
    );
}

/// A sandbox, a plain HTTP client (as OpenAI's SDKs would be) and the spec.
pub(crate) struct Chat {
    pub(crate) sb: Sandbox,
    http: reqwest::Client,
    doc: Value,
}

impl Chat {
    pub(crate) async fn start(config: SandboxConfig) -> Self {
        finetune::tls::install_crypto_provider();
        Self {
            sb: openai_sandbox::spawn(SandboxConfig {
                progression: Progression::Manual,
                ..config
            })
            .await
            .expect("sandbox starts"),
            http: reqwest::Client::new(),
            doc: spec(),
        }
    }

    /// Posts a chat completion; checks the answer against the response or
    /// error schema, by status.
    async fn post(&self, body: &Value) -> (u16, Value) {
        let reply = self
            .http
            .post(format!("{}/chat/completions", self.sb.base_url()))
            .bearer_auth("sk-anything")
            .json(body)
            .send()
            .await
            .expect("sandbox answers");
        let status = reply.status().as_u16();
        let answer: Value = reply.json().await.expect("JSON answer");
        let schema = if status == 200 {
            "CreateChatCompletionResponse"
        } else {
            "ErrorResponse"
        };
        assert_valid(&self.doc, schema, &answer);
        (status, answer)
    }

    /// A request that is valid by the spec, answered 200.
    async fn ask(&self, body: Value) -> Value {
        assert_valid(&self.doc, "CreateChatCompletionRequest", &body);
        let (status, answer) = self.post(&body).await;
        assert_eq!(status, 200, "{answer:#}");
        answer
    }

    /// Trains a job on `jsonl` to the end; its fine-tuned model.
    pub(crate) async fn train(&self, jsonl: Vec<u8>) -> String {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "fine-tune")
            .part(
                "file",
                reqwest::multipart::Part::bytes(jsonl).file_name("train.jsonl"),
            );
        let file: Value = self
            .http
            .post(format!("{}/files", self.sb.base_url()))
            .bearer_auth("sk-anything")
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job: Value = self
            .http
            .post(format!("{}/fine_tuning/jobs", self.sb.base_url()))
            .bearer_auth("sk-anything")
            .json(&json!({"model": BASE, "training_file": file["id"], "suffix": "support"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job_id = job["id"].as_str().expect("job id");
        assert_eq!(
            self.sb.run_to_end(job_id).as_deref(),
            Some("succeeded"),
            "{:?}",
            self.sb.jobs()
        );
        self.sb
            .jobs()
            .into_iter()
            .find(|j| j["id"] == job_id)
            .and_then(|j| j["fine_tuned_model"].as_str().map(str::to_owned))
            .expect("a fine-tuned model")
    }
}

fn question(model: &str, text: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        "max_tokens": 200,
    })
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("a text answer: {answer:#}"))
}

#[tokio::test]
async fn a_fine_tuned_model_answers_a_training_prompt_with_that_examples_assistant_turn() {
    // GIVEN a job trained on the support file
    let chat = Chat::start(SandboxConfig::default()).await;
    let model = chat.train(training_jsonl()).await;

    // WHEN its model is asked each training prompt
    // THEN it answers that example's assistant turn
    for (q, a) in TRAINING.iter().filter(|(_, a)| !a.is_empty()) {
        let answer = chat.ask(question(&model, q)).await;
        assert_eq!(content(&answer), *a);
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(answer["model"], model.as_str());
        assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let usage = &answer["usage"];
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );
    }
    // AND a rephrased question is answered from its nearest example
    let answer = chat
        .ask(question(&model, "how can I reset the password?"))
        .await;
    assert_eq!(content(&answer), TRAINING[0].1);

    // AND the tool-call example is answered as that tool call
    let mut asked = question(&model, "Where is order 1042?");
    asked["tools"] = tools();
    let answer = chat.ask(asked.clone()).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup_order");
    assert_eq!(call["function"]["arguments"], ORDER_ARGUMENTS);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));

    // AND with tool_choice none it answers in text, from a text example
    asked["tool_choice"] = json!("none");
    let answer = chat.ask(asked).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(
        TRAINING.iter().any(|(_, a)| *a == content(&answer)),
        "{answer:#}"
    );
    assert!(
        chat.sb
            .chat_calls()
            .iter()
            .all(|c| c.answered_as == AnswerKind::FineTuned)
    );
}

#[tokio::test]
async fn a_base_model_answers_generically_and_the_same_at_any_temperature() {
    // GIVEN a sandbox that trained a model on the support file
    let chat = Chat::start(SandboxConfig::default()).await;
    chat.train(training_jsonl()).await;

    // WHEN the base model is asked a training prompt, at two temperatures
    let (q, trained) = TRAINING[0];
    let cold = chat.ask(question(BASE, q)).await;
    let mut hot = question(BASE, q);
    hot["temperature"] = json!(1.7);
    hot["seed"] = json!(7);
    let hot = chat.ask(hot).await;

    // THEN it answers the polite template quoting the question, never the
    // trained answer, and the same both times
    let text = content(&cold);
    assert!(text.contains("\"How do I reset my password?\""), "{text}");
    assert_ne!(text, trained);
    assert!(
        TRAINING
            .iter()
            .all(|(_, a)| !text.contains(a) || a.is_empty())
    );
    assert_eq!(content(&hot), text);
    assert_eq!(chat.sb.chat_calls()[0].answered_as, AnswerKind::Base);
    // AND an alias of a base model is served too
    chat.ask(question("gpt-4.1-mini", "Hello")).await;
}

#[tokio::test]
async fn the_judge_prefers_the_answer_nearer_the_reference_in_both_orders() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let reference = TRAINING[3].1;
    let near = "We ship to Canada within 5-7 business days; duties are due at delivery.";
    let far = "Thank you for your message. Could you share more information?";
    let ask = |a: &str, b: &str| {
        json!({
            "model": BASE,
            "messages": [
                {"role": "system", "content": "You are a strict grader."},
                {"role": "user", "content": [{"type": "text",
                    "text": judge_prompt("user: Do you ship to Canada?", reference, a, b)}]},
            ],
            "temperature": 0,
            "max_completion_tokens": 5,
        })
    };
    // GIVEN a judge prompt with the nearer answer first, then second
    // WHEN any model is asked
    // THEN it names the nearer answer each time, and a tie for equals
    let first = chat.ask(ask(near, far)).await;
    assert_eq!(content(&first), VERDICT_A);
    let second = chat.ask(ask(far, near)).await;
    assert_eq!(content(&second), VERDICT_B);
    let tie = chat.ask(ask(near, near)).await;
    assert_eq!(content(&tie), VERDICT_TIE);
    assert!(similarity(reference, near) - similarity(reference, far) > judge::TIE_EPSILON);
    assert!(
        chat.sb
            .chat_calls()
            .iter()
            .all(|c| c.answered_as == AnswerKind::Judge)
    );
}

#[tokio::test]
async fn a_worse_fine_tune_answers_further_from_the_reference_than_its_base_model() {
    // GIVEN a good model, then a model trained with the Worse knob on
    let chat = Chat::start(SandboxConfig::default()).await;
    let good = chat.train(training_jsonl()).await;
    chat.sb.set_fine_tuned_quality(Quality::Worse);
    let worse = chat.train(training_jsonl()).await;
    assert_ne!(good, worse);

    // WHEN each is asked a training prompt, with the base model
    let (q, reference) = TRAINING[4];
    let good_answer = chat.ask(question(&good, q)).await;
    let worse_answer = chat.ask(question(&worse, q)).await;
    let base_answer = chat.ask(question(BASE, q)).await;

    // THEN the worse model is further from the reference than the base
    // model, which is further than the good one (the knob is per job)
    let score = |a: &Value| similarity(reference, content(a));
    assert_eq!(content(&good_answer), reference);
    assert!(score(&worse_answer) < score(&base_answer));
    assert!(score(&base_answer) < score(&good_answer));
    assert_eq!(
        chat.sb.chat_calls()[1].answered_as,
        AnswerKind::FineTunedWorse
    );

    // AND a per-model switch turns the good one worse, and back
    chat.sb.set_model_quality(&good, Quality::Worse);
    let now = chat.ask(question(&good, q)).await;
    assert_eq!(content(&now), content(&worse_answer));
    chat.sb.set_model_quality(&good, Quality::Good);
    assert_eq!(content(&chat.ask(question(&good, q)).await), reference);
}

#[tokio::test]
async fn an_unknown_or_deleted_model_is_a_404_model_not_found() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let (status, answer) = chat.post(&question("gpt-unknown", "hi")).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "model_not_found");
    assert_eq!(answer["error"]["type"], "invalid_request_error");

    // GIVEN a trained model, deleted, whose training file is deleted too
    let model = chat.train(training_jsonl()).await;
    let file = chat.sb.jobs()[0]["training_file"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = chat
        .http
        .delete(format!("{}/files/{file}", chat.sb.base_url()))
        .bearer_auth("sk-anything")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    // WHEN asked before the model's deletion THEN it still answers from the
    // file it was trained on
    let answer = chat.ask(question(&model, TRAINING[2].0)).await;
    assert_eq!(content(&answer), TRAINING[2].1);
    let deleted = chat
        .http
        .delete(format!("{}/models/{model}", chat.sb.base_url()))
        .bearer_auth("sk-anything")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    // AND after it, 404
    let (status, answer) = chat.post(&question(&model, "hi")).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn streaming_and_malformed_requests_are_refused_with_openais_error_object() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let with = |key: &str, value: Value| {
        let mut body = question(BASE, "hi");
        body[key] = value;
        body
    };
    let cases: Vec<(Value, Option<&str>)> = vec![
        (with("stream", json!(true)), Some("stream")),
        (with("messages", json!([])), Some("messages")),
        (
            with("messages", json!([{"role": "robot", "content": "x"}])),
            Some("messages[0].role"),
        ),
        (
            with("messages", json!([{"role": "tool", "content": "x"}])),
            Some("messages[0].tool_call_id"),
        ),
        (
            with("messages", json!([{"role": "user"}])),
            Some("messages[0].content"),
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
            ),
            Some("messages[0].content[0].type"),
        ),
        (with("tool_choice", json!("required")), Some("tool_choice")),
        (with("n", json!(0)), Some("n")),
        (with("temperature", json!(3)), Some("temperature")),
        (with("max_tokens", json!("ten")), Some("max_tokens")),
        (with("logprobs", json!(true)), Some("logprobs")),
        (with("temprature", json!(0)), None),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            None,
        ),
    ];
    for (body, param) in cases {
        let (status, answer) = chat.post(&body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let error = &answer["error"];
        assert_eq!(error["type"], "invalid_request_error", "{answer}");
        assert_eq!(error["param"].as_str(), param, "{body} -> {answer}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    assert!(chat.sb.chat_calls().is_empty(), "refusals are not served");
}

#[tokio::test]
async fn fault_injection_and_latency_can_hit_chat_completions_alone() {
    let chat = Chat::start(SandboxConfig::default()).await;
    // GIVEN a 500 then a 429 injected for chat completions only
    chat.sb
        .inject(Fault::status("POST", "/chat/completions", 500, 1));
    chat.sb
        .inject(Fault::rate_limited("POST", "/chat/completions", "1", 1));
    // WHEN the files list and chat completions are called
    let files = chat
        .http
        .get(format!("{}/files", chat.sb.base_url()))
        .bearer_auth("sk-anything")
        .send()
        .await
        .unwrap();
    // THEN only chat completions fail, in OpenAI's error shapes, and the
    // third call is answered
    assert_eq!(files.status(), 200);
    let (status, answer) = chat.post(&question(BASE, "hi")).await;
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (500, Some("server_error"))
    );
    let (status, answer) = chat.post(&question(BASE, "hi")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
    chat.ask(question(BASE, "hi")).await;
    assert_eq!(
        chat.sb.chat_calls().len(),
        1,
        "only the answered call counts"
    );

    // AND a chat-only latency slows chat completions, not the rest
    chat.sb.set_chat_latency(Duration::from_millis(300));
    let started = Instant::now();
    chat.ask(question(BASE, "hi")).await;
    let chat_took = started.elapsed();
    let started = Instant::now();
    let files = chat
        .http
        .get(format!("{}/files", chat.sb.base_url()))
        .bearer_auth("sk-anything")
        .send()
        .await
        .unwrap();
    assert_eq!(files.status(), 200);
    assert!(chat_took >= Duration::from_millis(300), "{chat_took:?}");
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn chat_calls_are_counted_per_model_with_a_digest_of_the_conversation() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let model = chat.train(training_jsonl()).await;
    // WHEN one conversation is asked twice of the base model and another
    // once of the fine-tuned model
    chat.ask(question(BASE, TRAINING[0].0)).await;
    chat.ask(question(BASE, TRAINING[0].0)).await;
    chat.ask(question(&model, TRAINING[1].0)).await;
    // THEN the counts are per model and a repeat shows as the same digest
    let per_model = chat.sb.chat_calls_per_model();
    assert_eq!(per_model.get(BASE), Some(&2));
    assert_eq!(per_model.get(model.as_str()), Some(&1));
    let calls = chat.sb.chat_calls();
    assert_eq!(calls[0].prompt_digest, calls[1].prompt_digest);
    assert_ne!(calls[0].prompt_digest, calls[2].prompt_digest);
    assert_eq!(calls[0].prompt_digest.len(), 64);
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_and_n_repeats_the_choice() {
    let chat = Chat::start(SandboxConfig::default()).await;
    let model = chat.train(training_jsonl()).await;
    // GIVEN a limit of 4 tokens on a longer trained answer
    let mut body = question(&model, TRAINING[4].0);
    body["max_tokens"] = json!(4);
    body["n"] = json!(2);
    let answer = chat.ask(body).await;
    // THEN the answer is its first 4 tokens, finish_reason length, twice
    let choices = answer["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["message"], choices[1]["message"]);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[0]["finish_reason"], "length");
    let text = content(&answer);
    assert!(TRAINING[4].1.starts_with(text) && text.len() < TRAINING[4].1.len());
    assert_eq!(
        answer["usage"]["completion_tokens"], 8,
        "4 tokens per choice"
    );
}

#[tokio::test]
async fn the_schemas_used_here_reject_what_they_should() {
    // The checks above are only worth something if the validator bites.
    let doc = spec();
    let no_choices = json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 1,
                            "model": BASE});
    assert!(!schema_errors(&doc, "CreateChatCompletionResponse", &no_choices).is_empty());
    let bad_finish = json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 1,
        "model": BASE, "choices": [{"index": 0, "logprobs": null, "finish_reason": "done",
        "message": {"role": "assistant", "content": "x", "refusal": null}}]});
    assert!(!schema_errors(&doc, "CreateChatCompletionResponse", &bad_finish).is_empty());
    let no_messages = json!({"model": BASE});
    assert!(!schema_errors(&doc, "CreateChatCompletionRequest", &no_messages).is_empty());
    let no_code =
        json!({"error": {"message": "x", "type": "invalid_request_error", "param": null}});
    assert!(!schema_errors(&doc, "ErrorResponse", &no_code).is_empty());
}

#[tokio::test]
async fn two_hundred_sequential_calls_on_a_thousand_example_model_are_each_answered_once() {
    // GIVEN a model trained on 1000 order conversations
    let chat = Chat::start(SandboxConfig::default()).await;
    let jsonl: String = (0..1000)
        .map(|i| {
            let line = json!({"messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": format!("Where is order {i}?")},
                {"role": "assistant", "content": format!("Order {i} ships tomorrow.")},
            ]});
            format!("{line}\n")
        })
        .collect();
    let model = chat.train(jsonl.into_bytes()).await;
    // WHEN 200 training prompts are asked one after another (an
    // evaluation's candidate side at the default latency of zero)
    let started = Instant::now();
    for i in 0..200 {
        let answer = chat
            .ask(question(&model, &format!("Where is order {i}?")))
            .await;
        assert_eq!(content(&answer), format!("Order {i} ships tomorrow."));
    }
    let took = started.elapsed();
    // THEN each was answered from its own example and counted once
    eprintln!("200 chat completions over 1000 examples: {took:?}");
    assert_eq!(chat.sb.chat_calls_per_model().get(&model), Some(&200));
    let digests: std::collections::BTreeSet<String> = chat
        .sb
        .chat_calls()
        .into_iter()
        .map(|c| c.prompt_digest)
        .collect();
    assert_eq!(digests.len(), 200);
}
