//! The Bedrock adapter against moto's Bedrock, and a run taken from
//! `POST /runs` with `provider: "bedrock"` to the end through the same
//! reconciler as OpenAI's.
//!
//! moto (5.2.5) keeps a job `InProgress` until it is stopped (then straight
//! to `Stopped`) and does not deduplicate `clientRequestToken`; it refuses a
//! second job of the same name. The moto launcher
//! (`tools/local-stack/moto_serve.py`) adds one local-only endpoint to end
//! a job as Bedrock would ([`finish_job`]).

use std::sync::Arc;

use finetune::domain::{
    AutoOr, Hyperparameters, JobStatus, ProviderKind, RunId, RunStatus, TenantId,
};
use finetune::pipeline::monitor;
use finetune::provider::bedrock::{BedrockProvider, BedrockSettings, names};
use finetune::provider::{
    CreateJob, FineTuningProvider, JobControl, JobTags, ProviderError, ProviderFileRef,
};
use finetune_tests::{ApiEvent, TestEnv};
use serde_json::{Value, json};

use crate::models::call;
use crate::world::{TENANT, World, drive_to, run};

const ROLE: &str = "arn:aws:iam::123456789012:role/finetune-bedrock";
const MODEL: &str = "amazon.nova-micro-v1:0:128k";

fn provider(env: &TestEnv) -> BedrockProvider {
    BedrockProvider::new(
        aws_sdk_bedrock::Client::new(&env.sdk),
        env.blobs.clone(),
        BedrockSettings {
            role_arn: ROLE.to_owned(),
            bucket: env.bucket.clone(),
        },
    )
}

fn tags(tenant: &str) -> JobTags {
    JobTags {
        tenant_id: TenantId::parse(tenant).unwrap(),
        run_id: RunId::generate(),
    }
}

fn request(env: &TestEnv, tags: &JobTags) -> CreateJob {
    CreateJob {
        tags: tags.clone(),
        base_model: MODEL.to_owned(),
        training_file: ProviderFileRef {
            id: format!(
                "s3://{}/datasets/{}/ds/train.jsonl",
                env.bucket, tags.tenant_id
            ),
        },
        validation_file: Some(ProviderFileRef {
            id: format!(
                "s3://{}/datasets/{}/ds/validation.jsonl",
                env.bucket, tags.tenant_id
            ),
        }),
        hyperparameters: Hyperparameters {
            n_epochs: AutoOr::Value(2),
            learning_rate: AutoOr::Value(0.00001),
            ..Default::default()
        },
        suffix: None,
        seed: None,
    }
}

/// Ends a job at moto as Bedrock would (moto never does by itself).
pub(crate) async fn finish_job(name: &str, status: &str, failure: Option<&str>) {
    finetune_tests::finish_bedrock_job(name, status, failure)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_job_is_created_followed_and_stopped() {
    // GIVEN the adapter on moto
    let env = TestEnv::new().await;
    let bedrock = provider(&env);
    let tags = tags(TENANT);

    // WHEN a job is created
    let job = bedrock.create_job(&request(&env, &tags)).await.unwrap();

    // THEN it is in progress under the run's job name, with the request's
    // data, output prefix, role, hyperparameters and token
    assert_eq!(job.id, names::job_name(&tags.run_id));
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.provider_status, "InProgress");
    assert_eq!(job.fine_tuned_model, None);
    assert_eq!(job.error, None);
    let raw = aws_sdk_bedrock::Client::new(&env.sdk)
        .get_model_customization_job()
        .job_identifier(&job.id)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.role_arn(), ROLE);
    assert_eq!(
        raw.client_request_token(),
        Some(names::client_request_token(&tags.run_id).as_str())
    );
    assert_eq!(
        raw.output_data_config().unwrap().s3_uri(),
        format!(
            "s3://{}/bedrock-output/{TENANT}/{}/",
            env.bucket, tags.run_id
        )
    );
    let hp = raw.hyper_parameters().unwrap();
    assert_eq!(hp["epochCount"], "2");
    assert_eq!(hp["learningRate"], "1e-5");
    assert_eq!(raw.validation_data_config().unwrap().validators().len(), 1);

    // WHEN it is stopped, twice
    let stopped = bedrock.cancel_job(&job.id).await.unwrap();
    let again = bedrock.cancel_job(&job.id).await.unwrap();

    // THEN it is cancelled, and stopping an ended job is not an error
    assert_eq!(stopped.status, JobStatus::Cancelled);
    assert_eq!(stopped.provider_status, "Stopped");
    assert_eq!(again.status, JobStatus::Cancelled);
    assert!(stopped.finished_at.is_some());
}

#[tokio::test]
async fn past_the_accounts_quota_a_job_creation_is_rate_limited_until_a_job_ends() {
    // GIVEN a quota of one running job, and one running
    let env = TestEnv::new().await;
    finetune_tests::bedrock_quota(&env.bucket, Some(1))
        .await
        .unwrap();
    let bedrock = provider(&env);
    let first_tags = tags(TENANT);
    let first = bedrock
        .create_job(&request(&env, &first_tags))
        .await
        .unwrap();

    // WHEN another run's job is created
    let second = tags(TENANT);
    let err = bedrock
        .create_job(&request(&env, &second))
        .await
        .unwrap_err();

    // THEN Bedrock's ServiceQuotaExceededException is a busy answer
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
    // while a repeat of the running job's own create still answers it
    let again = bedrock
        .create_job(&request(&env, &first_tags))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    // and once the running job ends, the other is taken
    finish_job(&first.id, "Completed", None).await;
    bedrock.create_job(&request(&env, &second)).await.unwrap();
    let refused = finetune_tests::bedrock_quota(&env.bucket, None)
        .await
        .unwrap();
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn a_repeated_create_with_the_same_token_leaves_one_job() {
    // GIVEN a job created for a run
    let env = TestEnv::new().await;
    let bedrock = provider(&env);
    let tags = tags(TENANT);
    let first = bedrock.create_job(&request(&env, &tags)).await.unwrap();

    // WHEN the same create is sent again (a retry after a lost answer)
    let second = bedrock.create_job(&request(&env, &tags)).await.unwrap();

    // THEN it answers the same job, and Bedrock holds exactly one
    assert_eq!(second.id, first.id);
    let listed = aws_sdk_bedrock::Client::new(&env.sdk)
        .list_model_customization_jobs()
        .name_contains(names::job_name(&tags.run_id))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.model_customization_job_summaries().len(), 1);
}

#[tokio::test]
async fn tags_carry_the_tenant_and_find_the_job_again() {
    // GIVEN a job created for acme's run
    let env = TestEnv::new().await;
    let bedrock = provider(&env);
    let tags = tags(TENANT);
    let job = bedrock.create_job(&request(&env, &tags)).await.unwrap();

    // THEN the job and its custom model carry tenant and run
    let client = aws_sdk_bedrock::Client::new(&env.sdk);
    let raw = client
        .get_model_customization_job()
        .job_identifier(&job.id)
        .send()
        .await
        .unwrap();
    let job_tags = client
        .list_tags_for_resource()
        .resource_arn(raw.job_arn())
        .send()
        .await
        .unwrap();
    let tag = |key: &str| {
        job_tags
            .tags()
            .iter()
            .find(|t| t.key() == key)
            .map(|t| t.value().to_owned())
    };
    assert_eq!(tag("tenant_id").as_deref(), Some(TENANT));
    assert_eq!(tag("run_id").as_deref(), Some(tags.run_id.as_str()));
    // moto files the custom model under the requested name.
    let model = client
        .get_custom_model()
        .model_identifier(names::custom_model_name(&tags.run_id))
        .send()
        .await
        .unwrap();
    let model_tags = client
        .list_tags_for_resource()
        .resource_arn(model.model_arn())
        .send()
        .await
        .unwrap();
    assert!(
        model_tags
            .tags()
            .iter()
            .any(|t| t.key() == "tenant_id" && t.value() == TENANT)
    );

    // AND find_jobs finds it by the run's tags, and nothing for another
    // run, or for this run under another tenant
    let found = bedrock.find_jobs(&tags).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, job.id);
    assert_eq!(found[0].tags.as_ref(), Some(&tags));
    assert!(
        bedrock
            .find_jobs(&self::tags(TENANT))
            .await
            .unwrap()
            .is_empty()
    );
    let other_tenant = JobTags {
        tenant_id: TenantId::parse("globex").unwrap(),
        run_id: tags.run_id.clone(),
    };
    assert!(bedrock.find_jobs(&other_tenant).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_finished_job_reports_its_model_losses_or_failure() {
    // GIVEN two jobs, one that completes and one that fails
    let env = TestEnv::new().await;
    let bedrock = provider(&env);
    let (ok, bad) = (tags(TENANT), tags(TENANT));
    let done = bedrock.create_job(&request(&env, &ok)).await.unwrap();
    let broken = bedrock.create_job(&request(&env, &bad)).await.unwrap();
    finish_job(&done.id, "Completed", None).await;
    finish_job(&broken.id, "Failed", Some("training data has 3 records")).await;

    // WHEN they are read
    let done = bedrock.get_job(&done.id).await.unwrap();
    let broken = bedrock.get_job(&broken.id).await.unwrap();

    // THEN the completed one names its custom model and has a final event
    // with its losses; the failed one says why
    assert_eq!(done.status, JobStatus::Succeeded);
    let model = done.fine_tuned_model.clone().unwrap();
    assert!(model.contains(":custom-model/"), "{model}");
    let events = bedrock.list_events(&done.id, None, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["created", "ended-Completed"]
    );
    assert_eq!(
        events[1].data.as_ref().unwrap()["training_loss"],
        json!(0.0)
    );
    let newer = bedrock
        .list_events(&done.id, Some("created"), 10)
        .await
        .unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(broken.status, JobStatus::Failed);
    assert_eq!(broken.error.unwrap().message, "training data has 3 records");

    // AND the custom model can be deleted (by name: moto does not decode an
    // ARN in the request path, Bedrock takes either)
    bedrock
        .delete_model(&names::custom_model_name(&ok.run_id))
        .await
        .unwrap();
    let gone = aws_sdk_bedrock::Client::new(&env.sdk)
        .get_custom_model()
        .model_identifier(names::custom_model_name(&ok.run_id))
        .send()
        .await;
    assert!(gone.is_err());
}

#[tokio::test]
async fn a_missing_job_is_not_found() {
    let env = TestEnv::new().await;
    let err = provider(&env).get_job("ft-run-nothing").await.unwrap_err();
    assert_eq!(err.code(), "provider_not_found");
    assert!(!err.is_transient());
}

// ---- end to end ------------------------------------------------------------

/// A world training on moto's Bedrock.
async fn world() -> World {
    world_wrapped(|p| p).await
}

/// [`world`], its provider wrapped by `wrap` (to inject faults).
pub(crate) async fn world_wrapped(
    wrap: impl FnOnce(Arc<dyn FineTuningProvider>) -> Arc<dyn FineTuningProvider>,
) -> World {
    let env = TestEnv::new().await;
    let bedrock: Arc<dyn FineTuningProvider> = wrap(Arc::new(provider(&env)));
    let runtime = Arc::new(finetune::provider::bedrock::BedrockRuntime::new(
        aws_sdk_bedrockruntime::Client::new(&env.sdk),
    ));
    World::new(
        env,
        &[("BEDROCK_ROLE_ARN", ROLE.to_owned())],
        bedrock,
        runtime,
        None,
    )
}

/// `n` conversations, each opening with an assistant greeting (Bedrock
/// records must open with the user) and with two user lines in a row.
pub(crate) async fn seed(world: &World, n: usize) {
    let lines: String = (0..n)
        .map(|i| {
            json!({
                "id": format!("conv-{i}"),
                "started_at": "2026-10-01T10:00:00Z",
                "outcome": "resolved",
                "messages": [
                    {"role": "system", "content": "You are Acme's support agent."},
                    {"role": "assistant", "content": "Hi, how can I help?"},
                    {"role": "user", "content": format!("Where is order A{i}?")},
                    {"role": "user", "content": "It is late."},
                    {"role": "assistant", "content": format!("Order A{i} ships on day {}.", i % 7)}
                ]
            })
            .to_string()
                + "\n"
        })
        .collect();
    world
        .env
        .blobs
        .put_bytes(
            &format!("conversations/{TENANT}/2026/10/01/export.jsonl"),
            lines.into_bytes(),
            "application/x-ndjson",
        )
        .await
        .unwrap();
}

fn body() -> Value {
    json!({
        "name": "nova support v1",
        "provider": "bedrock",
        "config": {
            "start_date": "2026-10-01",
            "end_date": "2026-10-01",
            "base_model": MODEL,
            "min_examples": 10,
            "train_split": 0.8,
            "hyperparameters": {"n_epochs": 2}
        }
    })
}

pub(crate) async fn start(world: &World) -> RunId {
    let request = ApiEvent::post("/runs").tenant(TENANT).json(&body()).build();
    let response = finetune::http::start_run_handler(
        &world.pipeline.store,
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let run: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(run["provider"], "bedrock");
    RunId::parse(run["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_bedrock_run_goes_from_post_to_a_custom_model() {
    // GIVEN exports and a run accepted by POST /runs with provider bedrock
    let world = world().await;
    seed(&world, 30).await;
    let id = start(&world).await;

    // WHEN the monitor ticks until the run trains
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;

    // THEN the dataset was written in Bedrock's format and handed over by
    // S3 URI (no upload), and one job trains on exactly those objects
    assert_eq!(training.status, RunStatus::Training, "{training:?}");
    assert_eq!(training.provider, ProviderKind::Bedrock);
    let tenant = TenantId::parse(TENANT).unwrap();
    let dataset = world
        .pipeline
        .store
        .get_dataset(&tenant, training.dataset_id.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(dataset.format, "bedrock-conversation-2024");
    let train_uri = format!("s3://{}/{}", world.env.bucket, dataset.train.key);
    assert_eq!(
        dataset.provider_file(ProviderKind::Bedrock, &dataset.train.sha256),
        Some(train_uri.as_str())
    );
    let train = world
        .env
        .s3
        .get_object()
        .bucket(&world.env.bucket)
        .key(&dataset.train.key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let first: Value =
        serde_json::from_slice(train.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["schemaVersion"], "bedrock-conversation-2024");
    assert_eq!(first["system"][0]["text"], "You are Acme's support agent.");
    assert_eq!(first["messages"][0]["role"], "user");
    assert_eq!(first["messages"][0]["content"].as_array().unwrap().len(), 2);
    assert_eq!(first["messages"][1]["role"], "assistant");
    let job = training.job.clone().unwrap();
    assert_eq!(job.provider_job_id, names::job_name(&id));
    let raw = aws_sdk_bedrock::Client::new(&world.env.sdk)
        .get_model_customization_job()
        .job_identifier(&job.provider_job_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.training_data_config().unwrap().s3_uri(),
        Some(train_uri.as_str())
    );

    // WHEN Bedrock finishes the job and the monitor ticks again
    finish_job(&job.provider_job_id, "Completed", None).await;
    let done = drive_to(&world, &id, RunStatus::Completed, 5).await;

    // THEN the run completed with the custom model, and GET /runs/{id}
    // says which provider trained it
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let model = done.job.clone().unwrap().fine_tuned_model.unwrap();
    assert!(model.contains(":custom-model/"), "{model}");
    let request = ApiEvent::get(&format!("/runs/{id}")).tenant(TENANT).build();
    let response = finetune::http::job_status_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.config,
        request,
    )
    .await;
    let shown: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(shown["provider"], "bedrock");
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["job"]["provider_status"], "Completed");

    // AND GET /models/{id} gives the chat system a custom model deployment
    // to call, the custom model itself beside it
    let model_id = finetune::domain::ModelId::for_run(&id);
    let shown = get_model(&world, &model_id).await;
    assert_eq!(shown["status"], "ready", "{shown}");
    let endpoint = shown["model"].as_str().unwrap();
    assert!(endpoint.contains(":custom-model-deployment/"), "{shown}");
    assert_eq!(shown["deployment"], endpoint);
    assert_eq!(shown["trained_model"], model.as_str());
}

#[tokio::test]
async fn a_bedrock_model_is_evaluated_through_its_deployment_and_activated_when_better() {
    // GIVEN a Bedrock run with about 30 held-out conversations and a judge
    let world = world().await;
    seed(&world, 60).await;
    let mut body = body();
    body["config"]["train_split"] = json!(0.5);
    body["config"]["evaluation"] = json!({"judge_model": "amazon.nova-lite-v1:0"});
    let request = ApiEvent::post("/runs").tenant(TENANT).json(&body).build();
    let response = finetune::http::start_run_handler(
        &world.pipeline.store,
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;
    assert_eq!(response.status(), 202);
    let created: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let id = RunId::parse(created["id"].as_str().unwrap()).unwrap();

    // WHEN its job completes and the monitor ticks until the run ends
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    finish_job(&training.job.unwrap().provider_job_id, "Completed", None).await;
    let done = drive_to(&world, &id, RunStatus::Completed, 10).await;

    // THEN the deployment (Converse's modelId) was compared with the base
    // model as Converse names it, judged in both orders, found better and
    // activated; each held-out example asked of the deployment once
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let evaluation = done.evaluation.clone().unwrap();
    let model = get_model(&world, &finetune::domain::ModelId::for_run(&id)).await;
    let deployment = model["deployment"].as_str().unwrap();
    assert_eq!(evaluation.candidate.model, deployment);
    assert_eq!(evaluation.baseline.model, "amazon.nova-micro-v1:0");
    assert_eq!(
        evaluation.judge_model.as_deref(),
        Some("amazon.nova-lite-v1:0")
    );
    assert_eq!(
        evaluation.decision,
        Some(finetune::evaluation::Decision::Better),
        "{}",
        done.phase
    );
    let n = done.stats.unwrap().validation_examples;
    assert_eq!(evaluation.examples, n);
    assert_eq!(finetune_tests::converse_calls(deployment).await.unwrap(), n);
    assert_eq!(model["active"], true, "{model}");
    assert_eq!(model["evaluation"]["decision"], "better");
}

pub(crate) async fn get_model(world: &World, model_id: &finetune::domain::ModelId) -> Value {
    let (status, model) = call(world, TENANT, "GET", &format!("/models/{model_id}")).await;
    assert_eq!(status, 200, "{model}");
    model
}

#[tokio::test]
async fn a_failed_deployment_fails_the_run_with_bedrocks_reason_and_its_model_cannot_be_activated()
{
    // GIVEN a Bedrock run whose job has just completed, and a model Bedrock
    // will not be able to deploy
    let world = world().await;
    seed(&world, 30).await;
    let id = start(&world).await;
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    finish_job(&training.job.unwrap().provider_job_id, "Completed", None).await;
    finetune_tests::bedrock_model_knobs(
        &names::custom_model_name(&id),
        json!({"failNextDeployment": "Insufficient capacity for on-demand deployment."}),
    )
    .await
    .unwrap();

    // WHEN the monitor follows the run
    let failed = drive_to(&world, &id, RunStatus::Failed, 5).await;

    // THEN the run failed with Bedrock's reason and a stable code
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.clone().unwrap();
    assert_eq!(error.code, "deployment_failed");
    assert!(
        error
            .message
            .contains("Insufficient capacity for on-demand deployment."),
        "{}",
        error.message
    );

    // AND its model is on record as failed, and activating it is refused
    let model_id = finetune::domain::ModelId::for_run(&id);
    assert_eq!(get_model(&world, &model_id).await["status"], "failed");
    let (status, refusal) = call(
        &world,
        TENANT,
        "POST",
        &format!("/models/{model_id}/activate"),
    )
    .await;
    assert_eq!(status, 409, "{refusal}");

    // AND the failed deployment was deleted at Bedrock
    let gone = aws_sdk_bedrock::Client::new(&world.env.sdk)
        .get_custom_model_deployment()
        .custom_model_deployment_identifier(names::deployment_name(&id))
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{gone:?}"
    );
}

#[tokio::test]
async fn deleting_a_deployed_model_removes_its_deployment_then_the_model() {
    // GIVEN a completed Bedrock run whose model is served by a deployment
    let world = world().await;
    seed(&world, 30).await;
    let id = start(&world).await;
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    finish_job(&training.job.unwrap().provider_job_id, "Completed", None).await;
    let done = drive_to(&world, &id, RunStatus::Completed, 5).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let model_id = finetune::domain::ModelId::for_run(&id);
    let deployment = get_model(&world, &model_id).await["deployment"]
        .as_str()
        .unwrap()
        .to_owned();

    // WHEN the tenant deletes the model
    let (status, deleted) = call(&world, TENANT, "DELETE", &format!("/models/{model_id}")).await;

    // THEN it is deleted, and Bedrock has neither the deployment nor the
    // custom model any more (the model could not go while deployed)
    assert_eq!(status, 200, "{deleted}");
    let bedrock = aws_sdk_bedrock::Client::new(&world.env.sdk);
    let gone = bedrock
        .get_custom_model_deployment()
        .custom_model_deployment_identifier(&deployment)
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{gone:?}"
    );
    let model = bedrock
        .get_custom_model()
        .model_identifier(names::custom_model_name(&id))
        .send()
        .await
        .unwrap_err();
    assert!(
        model
            .as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{model:?}"
    );
}

#[tokio::test]
async fn the_metrics_files_bedrock_writes_become_the_runs_curve() {
    // GIVEN a Bedrock run in training
    let world = world().await;
    seed(&world, 30).await;
    let id = start(&world).await;
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    let job = training.job.clone().unwrap();
    let tenant = TenantId::parse(TENANT).unwrap();

    // WHEN Bedrock ends the job, having written its step metrics where it
    // writes them (under the job's output URI; one bad row)
    let folder = format!(
        "{}model-customization-job-{}",
        names::output_prefix(&tenant, &id),
        "abc123def456"
    );
    let put = |key: String, body: &'static str| {
        let s3 = world.env.s3.clone();
        let bucket = world.env.bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
    };
    put(
        format!("{folder}/training_artifacts/step_wise_training_metrics.csv"),
        "step_number,epoch_number,training_loss,perplexity\n\
         0,0,2.40,11.0\n1,0,2.10,8.2\n2,1,oops,1\n3,1,1.60,4.9\n",
    )
    .await;
    put(
        format!(
            "{folder}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"
        ),
        "step_number,epoch_number,validation_loss,perplexity\n3,1,1.75,5.8\n",
    )
    .await;
    finish_job(&job.provider_job_id, "Completed", None).await;
    let done = drive_to(&world, &id, RunStatus::Completed, 5).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");

    // THEN GET /runs/{id}/metrics has the files' points, step by step
    let request = ApiEvent::get(&format!("/runs/{id}/metrics"))
        .tenant(TENANT)
        .build();
    let response = finetune::http::job_status_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.config,
        request,
    )
    .await;
    assert_eq!(response.status(), 200);
    let curve: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let points: Vec<(u64, Value, Value)> = curve["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["step"].as_u64().unwrap(),
                p["train_loss"].clone(),
                p["full_valid_loss"].clone(),
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![
            (0, json!(2.4), Value::Null),
            (1, json!(2.1), Value::Null),
            (3, json!(1.6), json!(1.75)),
        ]
    );
    assert_eq!(curve["step"], 3);

    // AND the model record carries the final losses from them
    let model = world
        .pipeline
        .store
        .get_model(&tenant, &finetune::domain::ModelId::for_run(&id))
        .await
        .unwrap();
    assert_eq!(model.final_train_loss, Some(1.6));
    assert_eq!(model.final_valid_loss, Some(1.75));

    // AND the SVG has both curves
    let request = ApiEvent::get(&format!("/runs/{id}/metrics"))
        .tenant(TENANT)
        .header("accept", "image/svg+xml")
        .build();
    let response = finetune::http::job_status_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.config,
        request,
    )
    .await;
    let svg = String::from_utf8(response.body().to_vec()).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
        .count();
    assert!(lines >= 2, "{svg}");
}

#[tokio::test]
async fn cancelling_a_bedrock_run_stops_its_job() {
    // GIVEN a Bedrock run in training
    let world = world().await;
    seed(&world, 20).await;
    let id = start(&world).await;
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    assert_eq!(training.status, RunStatus::Training, "{training:?}");

    // WHEN the tenant cancels it
    let request = ApiEvent::post(&format!("/runs/{id}/cancel"))
        .tenant(TENANT)
        .build();
    let response = finetune::http::cancel_handler(
        &world.pipeline.store,
        &world.pipeline.providers.controls(),
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;

    // THEN the run is cancelled and Bedrock's job stopped
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert_eq!(run(&world, &id).await.status, RunStatus::Cancelled);
    let raw = aws_sdk_bedrock::Client::new(&world.env.sdk)
        .get_model_customization_job()
        .job_identifier(names::job_name(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().map(|s| s.as_str()), Some("Stopped"));
}

#[tokio::test]
async fn bedrocks_eventbridge_job_event_moves_the_run_on_without_a_tick() {
    // GIVEN a Bedrock run in training whose job Bedrock has just finished
    let world = world().await;
    seed(&world, 30).await;
    let id = start(&world).await;
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    assert_eq!(training.status, RunStatus::Training, "{training:?}");
    let job_name = training.job.unwrap().provider_job_id;
    finish_job(&job_name, "Completed", None).await;
    let raw = aws_sdk_bedrock::Client::new(&world.env.sdk)
        .get_model_customization_job()
        .job_identifier(&job_name)
        .send()
        .await
        .unwrap();

    // WHEN EventBridge delivers Bedrock's state change to the monitor
    let event = finetune_tests::events::bedrock_job_state_change(raw.job_arn(), &job_name).unwrap();
    let mut context = lambda_runtime::Context::default();
    context.request_id = "req-bedrock-push".into();
    context.deadline = (chrono::Utc::now().timestamp_millis() + 60_000) as u64;
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

    // THEN that run moved on at once: its model is on record and its
    // on-demand deployment was asked for (a Nova custom model answers only
    // through one), without waiting for a tick
    let answer = serde_json::to_value(&answer).unwrap();
    assert_eq!(answer["action"], "reconciled", "{answer}");
    assert_eq!(answer["status"], "deploying");
    let deploying = run(&world, &id).await;
    assert_eq!(deploying.status, RunStatus::Deploying);
    assert!(
        deploying.phase.contains(":custom-model-deployment/"),
        "{}",
        deploying.phase
    );
    let model_id = finetune::domain::ModelId::for_run(&id);
    let model = world
        .pipeline
        .store
        .get_model(&deploying.tenant_id, &model_id)
        .await
        .unwrap();
    assert_eq!(model.provider, ProviderKind::Bedrock);
    assert!(model.provider_model.contains(":custom-model/"));
    assert_eq!(model.status, finetune::domain::ModelStatus::Deploying);

    // AND the next tick finds the deployment serving and completes the run
    // with the deployment as the model's endpoint
    let done = drive_to(&world, &id, RunStatus::Completed, 3).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let model = world
        .pipeline
        .store
        .get_model(&done.tenant_id, &model_id)
        .await
        .unwrap();
    assert_eq!(model.status, finetune::domain::ModelStatus::Ready);
    let deployment = model.deployment.clone().unwrap();
    assert!(
        deployment.contains(":custom-model-deployment/"),
        "{deployment}"
    );
    assert_eq!(model.endpoint(), deployment);
}
