//! OpenAI's signed webhooks through the real handler (API Gateway v2
//! events, no authorizer), against moto and the sandbox; and Bedrock's
//! EventBridge job event through the same push path.

use finetune::domain::{Run, RunId, RunStatus};
use finetune::pipeline::monitor::{self, Invocation};
use finetune::webhook::signature::WebhookSecret;
use finetune::webhook::{self, Handled};
use finetune_tests::ApiEvent;
use openai_sandbox::{Progression, SandboxConfig};
use serde_json::{Value, json};

use crate::pipeline::{quick_sandbox, run_body, seed, start, world_with};
use crate::world::{World, run, tick};

/// The secret OpenAI would show in its dashboard (base64 of a random key).
const SECRET: &str = "whsec_dGVzdC13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWJjZGVm";

fn secret() -> WebhookSecret {
    WebhookSecret::parse(SECRET).unwrap()
}

/// A run in training whose job only moves when the test says so.
async fn training_run() -> (World, RunId, String) {
    let world = world_with(
        SandboxConfig {
            progression: Progression::Manual,
            ..quick_sandbox()
        },
        |p| p,
    )
    .await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;
    for _ in 0..10 {
        if run(&world, &id).await.status == RunStatus::Training {
            break;
        }
        tick(&world).await;
    }
    let training = run(&world, &id).await;
    assert_eq!(training.status, RunStatus::Training, "{training:?}");
    let job_id = training.job.unwrap().provider_job_id;
    (world, id, job_id)
}

fn body(kind: &str, job_id: &str) -> String {
    json!({
        "id": "evt_685343a1381c819085d44c354e1b330e",
        "object": "event",
        "type": kind,
        "created_at": chrono::Utc::now().timestamp(),
        "data": {"id": job_id}
    })
    .to_string()
}

/// A delivery as OpenAI sends it: signed over id, timestamp and raw body.
fn delivery(signer: &WebhookSecret, delivery_id: &str, timestamp: i64, body: &str) -> ApiEvent {
    let ts = timestamp.to_string();
    ApiEvent::post("/webhooks/openai")
        .header("webhook-id", delivery_id)
        .header("webhook-timestamp", &ts)
        .header(
            "webhook-signature",
            &signer.sign(delivery_id, &ts, body.as_bytes()),
        )
        .body(body)
}

async fn post(world: &World, event: ApiEvent) -> (u16, Value, String) {
    let secret = finetune::webhook::setup::SigningSecret::ready(SECRET);
    let response =
        finetune::http::webhook_handler(&world.pipeline.following_jobs(), &secret, event.build())
            .await;
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = serde_json::from_slice(response.body().as_ref()).unwrap();
    (response.status().as_u16(), body, content_type)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn assert_untouched(world: &World, id: &RunId, before: &Run) {
    let after = run(world, id).await;
    assert_eq!(after.status, RunStatus::Training);
    assert_eq!(after.version, before.version, "the run was written");
}

#[tokio::test]
async fn a_signed_webhook_takes_a_run_to_its_evaluation_without_any_monitor_tick() {
    // GIVEN a run in training whose job has just succeeded at OpenAI
    let (world, id, job_id) = training_run().await;
    world.sandbox().run_to_end(&job_id);

    // WHEN OpenAI delivers fine_tuning.job.succeeded (no tick follows)
    let body = body("fine_tuning.job.succeeded", &job_id);
    let (status, answer, _) = post(&world, delivery(&secret(), "msg_1", now(), &body)).await;

    // THEN the run has its model and waits for its evaluation, at once
    // (a model OpenAI serves needs no deployment)
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["action"], "reconciled");
    assert_eq!(answer["run_id"], id.as_str());
    assert_eq!(answer["status"], "evaluating");
    let trained = run(&world, &id).await;
    assert_eq!(trained.status, RunStatus::Evaluating);
    assert!(
        trained
            .job
            .unwrap()
            .fine_tuned_model
            .unwrap()
            .starts_with("ft:gpt-4o-mini")
    );

    // AND the monitor's next tick evaluates it (the webhook never answers
    // model calls: an HTTP request is not where minutes of them belong)
    tick(&world).await;
    let done = run(&world, &id).await;
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    assert!(done.evaluation.is_some());
}

#[tokio::test]
async fn a_bad_signature_or_an_old_timestamp_is_401_and_changes_nothing() {
    // GIVEN a run whose job has ended at OpenAI
    let (world, id, job_id) = training_run().await;
    world.sandbox().run_to_end(&job_id);
    let before = run(&world, &id).await;
    let body = body("fine_tuning.job.succeeded", &job_id);
    let forger = WebhookSecret::parse("whsec_Zm9yZ2VkLWtleQ==").unwrap();

    // WHEN deliveries arrive signed with another secret, signed over
    // another body, six minutes old, or without a signature
    let mut tampered = delivery(&secret(), "msg_2", now(), &body);
    tampered = tampered.body(body.replace("succeeded", "cancelled"));
    let cases = [
        ("other secret", delivery(&forger, "msg_2", now(), &body)),
        ("other body", tampered),
        ("old", delivery(&secret(), "msg_2", now() - 360, &body)),
        ("future", delivery(&secret(), "msg_2", now() + 360, &body)),
        (
            "unsigned",
            ApiEvent::post("/webhooks/openai")
                .header("webhook-id", "msg_2")
                .header("webhook-timestamp", &now().to_string())
                .body(body.clone()),
        ),
    ];
    for (case, event) in cases {
        let (status, problem, content_type) = post(&world, event).await;

        // THEN each is 401 problem+json and the run is untouched
        assert_eq!(status, 401, "{case}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{case}");
        assert_eq!(problem["type"], "urn:finetune:problem:invalid-signature");
        assert_untouched(&world, &id, &before).await;
    }

    // AND the refused deliveries left no trace: the genuine one with the
    // same id is handled
    let (status, answer, _) = post(&world, delivery(&secret(), "msg_2", now(), &body)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "evaluating");
}

#[tokio::test]
async fn a_replayed_delivery_is_200_and_changes_nothing() {
    // GIVEN a delivery handled while the job was still running
    let (world, id, job_id) = training_run().await;
    let body = body("fine_tuning.job.succeeded", &job_id);
    let first = delivery(&secret(), "msg_3", now(), &body);
    let (status, answer, _) = post(&world, first.clone()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("training")));
    // AND the job has since ended
    world.sandbox().run_to_end(&job_id);
    let before = run(&world, &id).await;

    // WHEN the very same delivery comes again
    let (status, answer, _) = post(&world, first).await;

    // THEN it is acknowledged and ignored: the run is not even reconciled
    assert_eq!(status, 200);
    assert_eq!(answer["action"], "ignored");
    assert_eq!(answer["reason"], "delivery already handled");
    assert_untouched(&world, &id, &before).await;
}

#[tokio::test]
async fn a_delivery_that_meets_a_provider_failure_is_503_and_its_retry_is_processed() {
    // GIVEN a run in training whose job has succeeded at OpenAI, and an
    // OpenAI that answers 500 to every read of the job (and its events)
    let (world, id, job_id) = training_run().await;
    world.sandbox().run_to_end(&job_id);
    world
        .sandbox()
        .inject(openai_sandbox::Fault::status("GET", &job_id, 500, 1000));
    let body = body("fine_tuning.job.succeeded", &job_id);
    let first = delivery(&secret(), "msg_transient", now(), &body);

    // WHEN the signed delivery arrives
    let (status, problem, content_type) = post(&world, first.clone()).await;

    // THEN it is a 5xx problem, so OpenAI retries it; the run is still in
    // training with the retry counted
    assert_eq!(status, 503, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["type"], "urn:finetune:problem:unavailable");
    let waiting = run(&world, &id).await;
    assert_eq!(waiting.status, RunStatus::Training);
    assert_eq!(waiting.retries, 1, "{}", waiting.phase);

    // WHEN OpenAI retries the same delivery after the fault has cleared
    world.sandbox().clear_faults();
    let (status, answer, _) = post(&world, first).await;

    // THEN it is processed, not ignored as a replay: the run moves on to
    // its evaluation
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["action"], "reconciled");
    assert_eq!(answer["status"], "evaluating");
    assert_eq!(run(&world, &id).await.status, RunStatus::Evaluating);
}

#[tokio::test]
async fn unknown_jobs_and_other_event_types_are_200_and_change_nothing() {
    // GIVEN a run in training
    let (world, id, job_id) = training_run().await;
    world.sandbox().run_to_end(&job_id);
    let before = run(&world, &id).await;

    // WHEN a genuine delivery names a job this deployment never made, or
    // is not about fine-tuning jobs
    let unknown = body("fine_tuning.job.succeeded", "ftjob-someone-elses");
    let (status, answer, _) = post(&world, delivery(&secret(), "msg_4", now(), &unknown)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["reason"], "unknown job");
    let batch = body("batch.completed", &job_id);
    let (status, answer, _) = post(&world, delivery(&secret(), "msg_5", now(), &batch)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["reason"], "not a fine-tuning job event");

    // THEN our run was not touched
    assert_untouched(&world, &id, &before).await;
}

#[tokio::test]
async fn a_bedrock_job_event_from_eventbridge_takes_the_push_path_in_the_monitor() {
    // GIVEN a run in training, and Bedrock's EventBridge event exactly as
    // the rule delivers it to the monitor, for a job this deployment does
    // not know
    let (world, id, _) = training_run().await;
    let before = run(&world, &id).await;
    let event = finetune_tests::events::bedrock_job_state_change(
        "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/abc",
        "run_x",
    )
    .unwrap();
    let mut context = lambda_runtime::Context::default();
    context.request_id = "req-bedrock".into();
    context.deadline = (chrono::Utc::now().timestamp_millis() + 60_000) as u64;

    // WHEN the monitor handles it
    let answer = monitor::on_event(
        &world.pipeline.monitor(),
        &world.config,
        &event.source,
        &event.detail_type,
        &event.detail,
        &context,
    )
    .await
    .unwrap();

    // THEN it went to the job lookup, not to a tick, and changed nothing
    assert_eq!(
        answer,
        Invocation::Push(Handled::Ignored {
            reason: "unknown job"
        })
    );
    assert_untouched(&world, &id, &before).await;

    // AND a Bedrock event of another type is ignored; one without a job
    // ARN is refused as malformed
    let other = webhook::receive_bedrock(
        &world.pipeline.following_jobs(),
        "aws.bedrock",
        "Batch Inference Job State Change",
        &json!({}),
        "x",
    )
    .await
    .unwrap();
    assert!(matches!(other, Handled::Ignored { .. }));
    let no_arn = webhook::receive_bedrock(
        &world.pipeline.following_jobs(),
        "aws.bedrock",
        "Model Customization Job State Change",
        &json!({"jobStatus": "Completed"}),
        "x",
    )
    .await;
    assert!(matches!(
        no_arn,
        Err(webhook::WebhookError::MalformedBody(_))
    ));
}

#[tokio::test]
async fn a_signed_failure_webhook_fails_the_run_with_the_providers_reason() {
    // GIVEN a run whose two-epoch job fails at OpenAI after its first epoch
    let world = world_with(
        SandboxConfig {
            progression: Progression::Manual,
            epochs: 2,
            ..quick_sandbox()
        },
        |p| p,
    )
    .await;
    world.sandbox().set_fail_training(true);
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;
    for _ in 0..10 {
        if run(&world, &id).await.status == RunStatus::Training {
            break;
        }
        tick(&world).await;
    }
    let job_id = run(&world, &id).await.job.unwrap().provider_job_id;
    world.sandbox().run_to_end(&job_id);

    // WHEN OpenAI delivers fine_tuning.job.failed
    let body = body("fine_tuning.job.failed", &job_id);
    let (status, answer, _) = post(&world, delivery(&secret(), "msg_6", now(), &body)).await;

    // THEN the run failed at once with the provider's reason
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "failed");
    let failed = run(&world, &id).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.unwrap().code, "provider_job_failed");
    // AND a failed run records no model
    let models = world
        .pipeline
        .store
        .list_models(&failed.tenant_id, 10, None)
        .await
        .unwrap();
    assert!(models.items.is_empty());
}

#[tokio::test]
async fn the_signing_secret_is_read_from_secrets_manager_by_the_first_delivery() {
    // GIVEN the webhook function configured with a secret that does not
    // exist yet (a deploy that forgot to set it; Secrets Manager takes a
    // secret's name wherever it takes its ARN)
    let (world, id, job_id) = training_run().await;
    world.sandbox().run_to_end(&job_id);
    let before = run(&world, &id).await;
    let sdk = finetune_tests::sdk_config().await;
    let name = finetune_tests::unique_name("webhook-secret");
    let config = finetune::config::Config::from_lookup(|var| match var {
        "FINETUNE_TABLE" | "FINETUNE_BUCKET" => Some("unused".into()),
        "OPENAI_WEBHOOK_SECRET_ARN" => Some(name.clone()),
        _ => None,
    })
    .unwrap();
    // Starting makes no call, so it succeeds without the secret.
    let signing = finetune::webhook::setup::openai_secret(&config, &sdk).unwrap();
    let body = body("fine_tuning.job.succeeded", &job_id);
    let send = || async {
        let event = delivery(&secret(), "msg_sm", now(), &body);
        finetune::http::webhook_handler(&world.pipeline.following_jobs(), &signing, event.build())
            .await
            .status()
            .as_u16()
    };

    // WHEN a genuine delivery arrives
    // THEN it is 500 (OpenAI retries it) and nothing changed
    assert_eq!(send().await, 500);
    assert_untouched(&world, &id, &before).await;

    // WHEN the secret is created and OpenAI retries the delivery
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&name)
        .secret_string(SECRET)
        .send()
        .await
        .unwrap();

    // THEN the same function reads it, verifies the delivery and moves
    // the run on to its evaluation
    assert_eq!(send().await, 200);
    assert_eq!(run(&world, &id).await.status, RunStatus::Evaluating);
}

/// Every DynamoDB call a client makes, as `(IAM action, partition key)`:
/// what a function's role must grant, observed on the wire (an SDK
/// interceptor reads each request's JSON before it is sent). Queries of an
/// index are left out: their grant is a statement of its own.
#[derive(Debug, Clone, Default)]
struct KeyRecorder(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl KeyRecorder {
    fn calls(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }
}

impl aws_sdk_dynamodb::config::Intercept for KeyRecorder {
    fn name(&self) -> &'static str {
        "KeyRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let Some(op) = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').nth(1))
            .map(str::to_owned)
        else {
            return Ok(());
        };
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let pk = |v: &Value| v["PK"]["S"].as_str().map(str::to_owned);
        let mut calls: Vec<(String, Option<String>)> = Vec::new();
        match op.as_str() {
            "GetItem" | "DeleteItem" | "UpdateItem" => calls.push((op.clone(), pk(&body["Key"]))),
            "PutItem" => calls.push((op.clone(), pk(&body["Item"]))),
            "BatchWriteItem" | "BatchGetItem" => {
                for requests in body["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    let items: Vec<&Value> = match requests.as_array() {
                        Some(writes) => writes
                            .iter()
                            .map(|w| match &w["PutRequest"]["Item"] {
                                Value::Null => &w["DeleteRequest"]["Key"],
                                item => item,
                            })
                            .collect(),
                        None => requests["Keys"].as_array().into_iter().flatten().collect(),
                    };
                    calls.extend(items.into_iter().map(|i| (op.clone(), pk(i))));
                }
            }
            "TransactWriteItems" | "TransactGetItems" => {
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    for (kind, action, at) in [
                        ("Put", "PutItem", "Item"),
                        ("Update", "UpdateItem", "Key"),
                        ("Delete", "DeleteItem", "Key"),
                        ("ConditionCheck", "ConditionCheckItem", "Key"),
                        ("Get", "GetItem", "Key"),
                    ] {
                        if !item[kind].is_null() {
                            calls.push((action.to_owned(), pk(&item[kind][at])));
                        }
                    }
                }
            }
            "Query" if body["IndexName"].is_null() => {
                // The partition key's value: the placeholder after `=` in
                // the key condition.
                let condition = body["KeyConditionExpression"].as_str().unwrap_or("");
                let placeholder = condition
                    .split('=')
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or("");
                calls.push((
                    op.clone(),
                    body["ExpressionAttributeValues"][placeholder]["S"]
                        .as_str()
                        .map(str::to_owned),
                ));
            }
            _ => {}
        }
        let mut recorded = self.0.lock().unwrap();
        for (action, key) in calls {
            recorded.push((format!("dynamodb:{action}"), key.unwrap_or_default()));
        }
        Ok(())
    }
}

#[tokio::test]
async fn every_table_call_the_webhook_makes_is_granted_by_its_roles_key_conditions() {
    // GIVEN a run in training whose job succeeded, and the webhook's
    // store recording every call it makes on the wire
    let (mut world, id, job_id) = training_run().await;
    world.sandbox().run_to_end(&job_id);
    let recorder = KeyRecorder::default();
    let conf = aws_sdk_dynamodb::config::Builder::from(&world.env.sdk)
        .interceptor(recorder.clone())
        .build();
    world.pipeline.store = finetune::store::Store::new(
        aws_sdk_dynamodb::Client::from_conf(conf),
        world.env.table.clone(),
    );

    // WHEN a delivery meets a provider failure (its claim is released), is
    // retried and processed, and is replayed
    world
        .sandbox()
        .inject(openai_sandbox::Fault::status("GET", &job_id, 500, 1000));
    let body = body("fine_tuning.job.succeeded", &job_id);
    let first = delivery(&secret(), "msg_audited", now(), &body);
    assert_eq!(post(&world, first.clone()).await.0, 503);
    world.sandbox().clear_faults();
    assert_eq!(post(&world, first.clone()).await.0, 200);
    assert_eq!(post(&world, first).await.0, 200);
    assert_eq!(run(&world, &id).await.status, RunStatus::Evaluating);

    // THEN every call it made is allowed by a statement of the webhook's
    // role: its action, on a key its LeadingKeys condition admits
    let calls = recorder.calls();
    let grants = crate::template::table_statements("WebhookFunction");
    for (action, key) in &calls {
        assert!(
            grants
                .iter()
                .any(|(actions, leading)| actions.contains(action)
                    && leading.as_ref().is_none_or(|patterns| patterns
                        .iter()
                        .any(|p| crate::template::string_like(p, key)))),
            "{action} on {key:?} is not granted: {grants:?}"
        );
    }
    // AND the audit saw each kind: the job owner read, the delivery claim
    // put and released, the run and its events written
    for (action, prefix) in [
        ("dynamodb:GetItem", "JOB#"),
        ("dynamodb:PutItem", "WEBHOOK#"),
        ("dynamodb:DeleteItem", "WEBHOOK#"),
        ("dynamodb:UpdateItem", "TENANT#"),
    ] {
        assert!(
            calls
                .iter()
                .any(|(a, k)| a == action && k.starts_with(prefix)),
            "no {action} on {prefix}… in {calls:?}"
        );
    }
}
