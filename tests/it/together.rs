//! Together AI end to end on the sandbox's Together mode: a LoRA run from
//! `POST /runs` to an evaluated model whose adapter the tenant downloads,
//! one job per run found again by its suffix, the dataset download, and
//! deletion of the job and our copy.

use std::sync::Arc;

use finetune::domain::{ModelId, RunId, RunStatus, TenantId};
use finetune::evaluation::Decision;
use finetune::provider::openai::ApiKey;
use finetune::provider::together::{TogetherClient, TogetherControl, TogetherProvider, suffix_for};
use finetune::provider::{CreateJob, FineTuningProvider, JobTags, ProviderFileRef};
use finetune_tests::{ApiEvent, TestEnv};
use serde_json::{Value, json};
use sha2::Digest;

use crate::models::call;
use crate::pipeline::{quick_sandbox, seed};
use crate::world::{TENANT, World, drive, run};

const BASE: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference";

/// A world training on the sandbox's Together mode.
async fn world() -> (World, TogetherProvider) {
    let env = TestEnv::new().await;
    let sandbox = crate::openai::sandbox(quick_sandbox()).await;
    let client =
        TogetherClient::new(crate::openai::settings(&sandbox), ApiKey::new("tg-test")).unwrap();
    let control = TogetherControl::new(client);
    let provider = TogetherProvider::new(control.clone(), env.blobs.clone());
    let vars = [
        ("TOGETHER_BASE_URL", sandbox.base_url()),
        ("TOGETHER_API_KEY", "tg-test".to_owned()),
        // The sandbox answers as any model: its runs are judged by the
        // base model, which this deployment lists (it has a known price).
        ("TOGETHER_JUDGE_MODELS", BASE.to_owned()),
    ];
    let world = World::new(
        env,
        &vars,
        Arc::new(provider.clone()),
        Arc::new(control),
        Some(sandbox),
    );
    (world, provider)
}

fn body() -> Value {
    json!({
        "name": "llama support v1",
        "provider": "together",
        "config": {
            "start_date": "2026-10-01",
            "end_date": "2026-10-02",
            "base_model": BASE,
            "min_examples": 10,
            "train_split": 0.5,
            "seed": 3,
            "hyperparameters": {"n_epochs": 2, "lora_rank": 8, "n_checkpoints": 1},
            "evaluation": {"judge_model": BASE}
        }
    })
}

async fn start(world: &World) -> RunId {
    start_with(world, body()).await
}

async fn start_with(world: &World, body: Value) -> RunId {
    let request = ApiEvent::post("/runs").tenant(TENANT).json(&body).build();
    let response = finetune::http::start_run_handler(
        &world.pipeline.store,
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let run: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(run["provider"], "together");
    RunId::parse(run["id"].as_str().unwrap()).unwrap()
}

/// `GET` `path` of the job-status function as `tenant`.
async fn job_status(world: &World, tenant: &str, path: &str) -> (u16, Value) {
    let request = ApiEvent::get(path).tenant(tenant).build();
    let response = finetune::http::job_status_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.config,
        request,
    )
    .await;
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// What a presigned URL serves.
async fn fetch(url: &str) -> Vec<u8> {
    finetune::tls::install_crypto_provider();
    reqwest::get(url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_together_run_ends_evaluated_with_an_adapter_the_tenant_downloads() {
    // GIVEN a tenant's exports and a LoRA run on Together
    let (world, _) = world().await;
    seed(&world, 40).await;
    let id = start(&world).await;

    // WHEN the functions tick until it ends
    let done = drive(&world, &id, 30).await;

    // THEN it trained one LoRA job named after the run, with the run's
    // hyperparameters
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let jobs = world.sandbox().together_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job["suffix"], suffix_for(&id));
    assert_eq!(job["model"], BASE);
    assert_eq!(job["n_epochs"], 2);
    assert_eq!(job["training_type"]["type"], "Lora");
    assert_eq!(job["training_type"]["lora_r"], 8);
    assert_eq!(job["training_type"]["lora_alpha"], 16);
    let job_id = job["id"].as_str().unwrap();
    let trained = done.job.clone().unwrap();
    assert_eq!(trained.provider_job_id, job_id);
    let fine_tuned = trained.fine_tuned_model.unwrap();
    assert_eq!(job["model_output_name"], fine_tuned.as_str());

    // AND it was evaluated through Together's chat completions against the
    // base model, found better and activated
    let evaluation = done.evaluation.clone().unwrap();
    assert_eq!(evaluation.candidate.model, fine_tuned);
    assert_eq!(evaluation.baseline.model, BASE);
    assert_eq!(
        evaluation.decision,
        Some(Decision::Better),
        "{}",
        done.phase
    );
    let n = done.stats.clone().unwrap().validation_examples as usize;
    assert_eq!(
        world.sandbox().chat_calls_per_model().get(&fine_tuned),
        Some(&n)
    );

    // AND the adapter was copied once into the tenant's prefix, and GET
    // /models/{id}/download hands out a URL to exactly those bytes
    assert_eq!(world.sandbox().together_downloads(job_id), 1);
    let model_id = ModelId::for_run(&id);
    let (status, model) = call(&world, TENANT, "GET", &format!("/models/{model_id}")).await;
    assert_eq!(status, 200, "{model}");
    assert_eq!(model["active"], true);
    assert_eq!(model["weights"]["checkpoint"], "adapter");
    let path = format!("/models/{model_id}/download");
    let (status, download) = call(&world, TENANT, "GET", &path).await;
    assert_eq!(status, 200, "{download}");
    let bytes = fetch(download["url"].as_str().unwrap()).await;
    assert_eq!(bytes.len() as u64, download["bytes"].as_u64().unwrap());
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        download["sha256"].as_str().unwrap()
    );
    assert_eq!(model["weights"]["sha256"], download["sha256"]);

    // AND another tenant can neither see nor download it
    let (status, _) = call(&world, "globex", "GET", &path).await;
    assert_eq!(status, 404);

    // AND the dataset sent to Together is downloadable as it was sent
    let dataset = done.dataset_id.clone().unwrap();
    let (status, file) = job_status(
        &world,
        TENANT,
        &format!("/datasets/{dataset}/download?file=validation"),
    )
    .await;
    assert_eq!(status, 200, "{file}");
    let sent = fetch(file["url"].as_str().unwrap()).await;
    let record = world
        .pipeline
        .store
        .get_dataset(&TenantId::parse(TENANT).unwrap(), &dataset)
        .await
        .unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&sent)),
        record.validation.unwrap().sha256
    );
    let (status, _) = job_status(&world, "globex", &format!("/datasets/{dataset}/download")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_together_job_created_before_a_crash_is_found_again_by_the_runs_suffix() {
    // GIVEN a run whose job was created at Together just before a crash
    // (the run never recorded it)
    let (world, provider) = world().await;
    seed(&world, 40).await;
    let id = start(&world).await;
    let tenant = TenantId::parse(TENANT).unwrap();
    // (the prepare function alone: the run waits at uploading)
    world
        .pipeline
        .preparing(world.config.fan_out.clone())
        .reconcile(&tenant, &id, "test-prepare")
        .await
        .unwrap();
    // (prepared, it waits for the monitor's admission)
    let uploading = run(&world, &id).await;
    assert_eq!(uploading.status, RunStatus::Waiting);
    let dataset = world
        .pipeline
        .store
        .get_dataset(&tenant, uploading.dataset_id.as_ref().unwrap())
        .await
        .unwrap();
    let file = provider
        .prepare_file(&finetune::provider::DatasetFileSource {
            bucket: world.env.bucket.clone(),
            key: dataset.train.key.clone(),
            bytes: dataset.train.bytes,
            sha256: dataset.train.sha256.clone(),
            filename: "train.jsonl".into(),
        })
        .await
        .unwrap();
    let tags = JobTags {
        tenant_id: tenant.clone(),
        run_id: id.clone(),
    };
    let lost = provider
        .create_job(&CreateJob {
            tags: tags.clone(),
            base_model: BASE.into(),
            training_file: ProviderFileRef { id: file.id },
            validation_file: None,
            hyperparameters: Default::default(),
            suffix: None,
            seed: None,
        })
        .await
        .unwrap();

    // WHEN the monitor ticks on
    let done = drive(&world, &id, 30).await;

    // THEN the run adopted that job: Together holds one job for the run
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    assert_eq!(done.job.unwrap().provider_job_id, lost.id);
    assert_eq!(world.sandbox().together_jobs().len(), 1);
    // AND another run's tags find nothing of it
    let other = JobTags {
        tenant_id: tenant,
        run_id: RunId::generate(),
    };
    assert!(provider.find_jobs(&other).await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_together_model_deletes_its_job_there_then_our_copy_of_the_adapter() {
    // GIVEN a completed Together run whose model was not activated
    let (world, _) = world().await;
    seed(&world, 40).await;
    let mut manual = body();
    manual["config"]["activation"] = json!("manual");
    let id = start_with(&world, manual).await;
    let done = drive(&world, &id, 30).await;
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let model_id = ModelId::for_run(&id);
    let tenant = TenantId::parse(TENANT).unwrap();
    let key = world
        .pipeline
        .store
        .get_model(&tenant, &model_id)
        .await
        .unwrap()
        .weights
        .unwrap()
        .key;

    // WHEN the tenant deletes it
    let (status, deleted) = call(&world, TENANT, "DELETE", &format!("/models/{model_id}")).await;

    // THEN the job is gone at Together, and our copy with it
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    let job_id = done.job.unwrap().provider_job_id;
    assert!(
        world
            .sandbox()
            .together_jobs()
            .iter()
            .all(|j| j["id"] != job_id.as_str()),
        "the job is still listed"
    );
    let gone = world.pipeline.blobs.size(&key).await;
    assert!(gone.is_err(), "the adapter is still in the bucket");
    let (status, _) = call(
        &world,
        TENANT,
        "GET",
        &format!("/models/{model_id}/download"),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(run(&world, &id).await.status, RunStatus::Completed);
}
