//! The OpenAI adapter against the local sandbox: uploads streamed from S3
//! (moto), the job lifecycle, retries and typed errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use finetune::config::AuthStyle;
use finetune::domain::{Hyperparameters, JobStatus, RunId, TenantId};
use finetune::provider::openai::{
    ApiKey, ClientSettings, OpenAiClient, OpenAiProvider, RetryPolicy,
};
use finetune::provider::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderError,
    ProviderFileRef,
};
use finetune_tests::{MEMORY_MEASUREMENT, PeakMemory, TestEnv, resident_bytes};
use openai_sandbox::{Fault, Progression, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};

pub(crate) const KEY: &str = "sk-test-very-secret-4242";

pub(crate) fn example_line(i: u64) -> String {
    format!(
        "{{\"messages\":[{{\"role\":\"system\",\"content\":\"You are Acme's support agent.\"}},\
         {{\"role\":\"user\",\"content\":\"Where is order {i}?\"}},\
         {{\"role\":\"assistant\",\"content\":\"Order {i} ships tomorrow.\"}}]}}\n"
    )
}

pub(crate) fn training_jsonl(examples: u64) -> Vec<u8> {
    (0..examples)
        .flat_map(|i| example_line(i).into_bytes())
        .collect()
}

pub(crate) async fn sandbox(config: SandboxConfig) -> Sandbox {
    openai_sandbox::spawn(config).await.expect("sandbox starts")
}

/// Client settings for tests: fast exponential backoff (server-given waits
/// are still honoured exactly).
pub(crate) fn settings(sandbox: &Sandbox) -> ClientSettings {
    ClientSettings {
        base_url: sandbox.base_url(),
        auth_style: AuthStyle::Bearer,
        organization: None,
        project: None,
        timeout: Duration::from_secs(30),
        upload_timeout: Duration::from_secs(300),
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(120),
            max_total_wait: Duration::from_secs(300),
        },
        upload_threshold: 512 * 1000 * 1000,
        part_size: 64 * 1024 * 1024,
    }
}

pub(crate) fn provider_with(env: &TestEnv, settings: ClientSettings) -> OpenAiProvider {
    let client = OpenAiClient::new(settings, ApiKey::new(KEY)).expect("client");
    OpenAiProvider::new(client, env.blobs.clone())
}

pub(crate) async fn put_file(env: &TestEnv, name: &str, body: Vec<u8>) -> DatasetFileSource {
    let key = format!("datasets/acme/{name}");
    let sha256 = hex::encode(Sha256::digest(&body));
    let bytes = body.len() as u64;
    env.blobs
        .put_bytes(&key, body, "application/jsonl")
        .await
        .expect("put dataset file");
    DatasetFileSource {
        bucket: env.bucket.clone(),
        key,
        bytes,
        sha256,
        filename: name.to_owned(),
    }
}

pub(crate) fn tags() -> JobTags {
    JobTags {
        tenant_id: TenantId::parse("acme").unwrap(),
        run_id: RunId::generate(),
    }
}

pub(crate) fn create(tags: &JobTags, training: &ProviderFileRef) -> CreateJob {
    CreateJob {
        tags: tags.clone(),
        base_model: "gpt-4o-mini-2024-07-18".to_owned(),
        training_file: training.clone(),
        validation_file: None,
        hyperparameters: Hyperparameters::default(),
        suffix: Some("Acme Support".to_owned()),
        seed: Some(42),
    }
}

/// Polls until the job ends (the sandbox advances one step per read);
/// returns every status seen, in order.
async fn poll_to_end(p: &OpenAiProvider, job_id: &str) -> Vec<JobStatus> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        let job = p.get_job(job_id).await.unwrap();
        seen.push(job.status);
        if job.status.is_terminal() {
            return seen;
        }
    }
    panic!("job {job_id} did not finish: {seen:?}");
}

#[tokio::test]
async fn a_job_runs_its_whole_lifecycle_and_its_model_can_be_deleted() {
    // GIVEN a sandbox that advances a job each time it is read, and a
    // valid training file in S3
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    let source = put_file(&env, "ds-train.jsonl", training_jsonl(20)).await;
    let tags = tags();

    // WHEN the file is prepared and a job created and polled to the end
    let file = p.prepare_file(&source).await.unwrap();
    assert!(file.id.starts_with("file-"), "{}", file.id);
    assert_eq!(sb.file_digest(&file.id).unwrap().1, source.sha256);
    let created = p.create_job(&create(&tags, &file)).await.unwrap();
    assert!(created.id.starts_with("ftjob-"), "{}", created.id);
    assert_eq!(created.status, JobStatus::ValidatingFiles);
    assert_eq!(created.tags.as_ref(), Some(&tags));
    let seen = poll_to_end(&p, &created.id).await;

    // THEN it went through OpenAI's statuses in order and succeeded
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded]
    );
    let done = p.get_job(&created.id).await.unwrap();
    let model = done.fine_tuned_model.clone().unwrap();
    let short: String = created.id["ftjob-".len()..].chars().take(8).collect();
    assert_eq!(
        model,
        format!("ft:gpt-4o-mini-2024-07-18:sandbox-org:acme-support:{short}")
    );
    assert!(done.trained_tokens.unwrap() > 0);
    assert!(done.finished_at.is_some());
    assert_eq!(done.error, None);

    // AND its events read oldest first, from creation to completion
    let events = p.list_events(&created.id, None, 1000).await.unwrap();
    assert!(
        events
            .first()
            .unwrap()
            .message
            .starts_with("Created fine-tuning job")
    );
    assert_eq!(
        events.last().unwrap().message,
        "The job has successfully completed"
    );
    let metrics: Vec<_> = events.iter().filter(|e| e.kind == "metrics").collect();
    assert_eq!(metrics.len(), 15);
    let data = metrics.last().unwrap().data.as_ref().unwrap();
    assert_eq!(data["step"], 15);
    assert!(data["train_loss"].is_number() && data["valid_loss"].is_number());

    // AND its checkpoints carry metrics
    let checkpoints = p
        .client()
        .list_checkpoints(&created.id, None, 10)
        .await
        .unwrap();
    assert_eq!(checkpoints.data.len(), 3);
    assert!(checkpoints.data[0].id.starts_with("ftckpt_"));
    assert_eq!(checkpoints.data[0].step_number, 15);
    assert!(checkpoints.data[0].metrics.contains_key("train_loss"));

    // AND the job is found again by its tags, and only it
    let found = p.find_jobs(&tags).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created.id);
    assert!(p.find_jobs(&self::tags()).await.unwrap().is_empty());

    // AND the model can be deleted
    p.delete_model(&model).await.unwrap();
    assert_eq!(sb.deleted_models(), std::slice::from_ref(&model));
    let again = p.delete_model(&model).await.unwrap_err();
    assert!(matches!(again, ProviderError::NotFound { .. }), "{again:?}");
}

#[tokio::test]
async fn a_bad_training_file_fails_the_job_at_validation_naming_the_line() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    let mut body = training_jsonl(12);
    body.extend_from_slice(b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n");
    let source = put_file(&env, "bad.jsonl", body).await;
    let file = p.prepare_file(&source).await.unwrap();
    let job = p.create_job(&create(&tags(), &file)).await.unwrap();

    let seen = poll_to_end(&p, &job.id).await;

    assert_eq!(seen, [JobStatus::Failed]);
    let failed = p.get_job(&job.id).await.unwrap();
    let error = failed.error.unwrap();
    assert_eq!(error.code.as_deref(), Some("invalid_training_file"));
    assert_eq!(error.param.as_deref(), Some("training_file"));
    assert!(error.message.contains("line 13"), "{}", error.message);
    assert!(error.message.contains("assistant"), "{}", error.message);
}

#[tokio::test]
async fn a_job_that_fails_mid_training_reports_the_failure() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        fail_training: true,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let file = p
        .prepare_file(&put_file(&env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    let job = p.create_job(&create(&tags(), &file)).await.unwrap();
    let seen = poll_to_end(&p, &job.id).await;
    assert_eq!(
        seen,
        [JobStatus::Queued, JobStatus::Running, JobStatus::Failed]
    );
    let failed = p.get_job(&job.id).await.unwrap();
    assert_eq!(failed.fine_tuned_model, None);
    assert!(failed.error.unwrap().message.contains("internal error"));
}

async fn manual_job(env: &TestEnv, sb: &Sandbox, p: &OpenAiProvider) -> String {
    let file = p
        .prepare_file(&put_file(env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    let job = p.create_job(&create(&tags(), &file)).await.unwrap();
    assert_eq!(sb.advance(&job.id).as_deref(), Some("queued"));
    assert_eq!(sb.advance(&job.id).as_deref(), Some("running"));
    job.id
}

#[tokio::test]
async fn cancelling_stops_a_job_and_cancelling_again_is_not_an_error() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        progression: Progression::Manual,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let job_id = manual_job(&env, &sb, &p).await;

    let cancelled = p.cancel_job(&job_id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert_eq!(sb.advance(&job_id).as_deref(), Some("cancelled"));

    // OpenAI answers 400 to cancelling an ended job; the port shrugs.
    let again = p.cancel_job(&job_id).await.unwrap();
    assert_eq!(again.status, JobStatus::Cancelled);
}

#[tokio::test]
async fn a_paused_job_stays_paused_until_resumed_then_finishes() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        progression: Progression::Manual,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let job_id = manual_job(&env, &sb, &p).await;
    assert_eq!(sb.advance(&job_id).as_deref(), Some("running"));

    let paused = p.client().pause_job(&job_id).await.unwrap();
    assert_eq!(paused.status, "paused");
    assert_eq!(p.get_job(&job_id).await.unwrap().status, JobStatus::Paused);
    assert_eq!(sb.advance(&job_id).as_deref(), Some("paused"));
    // Pausing twice is refused (only a running job can be paused).
    let twice = p.client().pause_job(&job_id).await.unwrap_err();
    assert!(
        matches!(twice, ProviderError::InvalidRequest { .. }),
        "{twice:?}"
    );

    let resumed = p.client().resume_job(&job_id).await.unwrap();
    assert_eq!(resumed.status, "queued");
    assert_eq!(sb.run_to_end(&job_id).as_deref(), Some("succeeded"));
    let done = p.get_job(&job_id).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    // Training resumed where it stopped: 3 checkpoints, not 4.
    let checkpoints = p
        .client()
        .list_checkpoints(&job_id, None, 10)
        .await
        .unwrap();
    assert_eq!(checkpoints.data.len(), 3);
    let events = p.list_events(&job_id, None, 1000).await.unwrap();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert!(messages.contains(&"Fine-tuning job paused"));
    assert!(messages.contains(&"Fine-tuning job resumed"));
}

#[tokio::test]
async fn events_are_paged_newest_first_by_openai_and_returned_oldest_first_after_a_cursor() {
    // GIVEN a job with more events than one OpenAI page (100)
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        progression: Progression::Manual,
        steps_per_epoch: 50,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let job_id = manual_job(&env, &sb, &p).await;
    sb.run_to_end(&job_id);

    // WHEN all events are read in one call, and again 30 at a time with
    // the last id as the cursor
    let all = p.list_events(&job_id, None, 10_000).await.unwrap();
    let mut chunked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let batch = p.list_events(&job_id, cursor.as_deref(), 30).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 30);
        cursor = Some(batch.last().unwrap().id.clone());
        chunked.extend(batch);
    }

    // THEN both give every event once, oldest first
    assert!(all.len() > 150, "{}", all.len());
    let ids = |v: &[finetune::provider::ProviderEvent]| -> Vec<String> {
        v.iter().map(|e| e.id.clone()).collect()
    };
    assert_eq!(ids(&chunked), ids(&all));
    assert!(all[0].message.starts_with("Created fine-tuning job"));
    assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    let mut unique = ids(&all);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len());
    // AND the client followed OpenAI's `after` cursor across pages
    let paged = sb
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/events") && r.query.iter().any(|(k, _)| k == "after"))
        .count();
    assert!(paged >= 1);
}

#[tokio::test]
async fn a_rate_limited_call_is_retried_after_the_servers_retry_after() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        progression: Progression::Manual,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let job_id = manual_job(&env, &sb, &p).await;
    sb.clear_requests();

    // GIVEN two 429s with `Retry-After: 1` on the job, then success
    sb.inject(Fault::rate_limited("GET", &job_id, "1", 2));
    let job = p.get_job(&job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Running);

    // THEN the sandbox saw three calls, each at least a second apart
    let calls: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&job_id))
        .collect();
    assert_eq!(
        calls.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 200]
    );
    for pair in calls.windows(2) {
        let gap = pair[1]
            .received_at
            .duration_since(pair[0].received_at)
            .unwrap();
        assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    }

    // AND `retry-after-ms` is preferred when present
    sb.clear_requests();
    sb.inject(openai_sandbox::Fault {
        method: Some("GET".to_owned()),
        path_contains: Some(job_id.clone()),
        kind: openai_sandbox::FaultKind::RateLimited {
            retry_after: Some("30".to_owned()),
            retry_after_ms: Some(300),
        },
        times: 1,
    });
    p.get_job(&job_id).await.unwrap();
    let calls = sb.requests();
    assert_eq!(calls.len(), 2);
    let gap = calls[1]
        .received_at
        .duration_since(calls[0].received_at)
        .unwrap();
    assert!(gap >= Duration::from_millis(300), "{gap:?}");
    assert!(gap < Duration::from_secs(30), "{gap:?}");
}

#[tokio::test]
async fn retries_give_up_after_max_retries_with_a_typed_rate_limit_error() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let mut s = settings(&sb);
    s.retry.max_retries = 2;
    let p = provider_with(&env, s);
    sb.inject(Fault {
        method: None,
        path_contains: Some("/fine_tuning/jobs/ftjob-nope".to_owned()),
        kind: openai_sandbox::FaultKind::RateLimited {
            retry_after: None,
            retry_after_ms: Some(20),
        },
        times: 10,
    });
    let err = p.get_job("ftjob-nope").await.unwrap_err();
    match &err {
        ProviderError::RateLimited {
            retry_after,
            request_id,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_millis(20)));
            assert!(request_id.as_deref().unwrap().starts_with("req_"));
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(sb.requests().len(), 3, "one call and two retries");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_then_succeed() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    let source = put_file(&env, "t.jsonl", training_jsonl(10)).await;
    sb.inject(Fault::status("POST", "/files", 500, 2));
    let file = p.prepare_file(&source).await.unwrap();
    let posts: Vec<u16> = sb
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/files")
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [500, 500, 200]);
    // The body was streamed from S3 again for the retry, whole.
    assert_eq!(sb.file_digest(&file.id).unwrap().1, source.sha256);
}

#[tokio::test]
async fn a_server_error_on_job_creation_is_not_resent() {
    // A 5xx may come after the job was made; resending could pay for two.
    // The reconciler finds such a job by its tags on the next tick instead.
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    let source = put_file(&env, "t.jsonl", training_jsonl(10)).await;
    let file = p.prepare_file(&source).await.unwrap();
    sb.inject(Fault::status("POST", "/fine_tuning/jobs", 500, 1));
    let tags = tags();

    let err = p.create_job(&create(&tags, &file)).await.unwrap_err();

    assert!(
        matches!(err, ProviderError::Server { status: 500, .. }),
        "{err:?}"
    );
    let creates = sb
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/fine_tuning/jobs")
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn a_bad_request_is_not_retried_and_carries_openais_message_and_param() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    let missing = ProviderFileRef {
        id: "file-doesnotexist".to_owned(),
    };
    let err = p.create_job(&create(&tags(), &missing)).await.unwrap_err();
    match &err {
        ProviderError::InvalidRequest {
            message,
            param,
            request_id,
            ..
        } => {
            assert!(message.contains("file-doesnotexist"), "{message}");
            assert_eq!(param.as_deref(), Some("training_file"));
            assert!(request_id.is_some());
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(sb.requests().len(), 1, "a 400 is never retried");
}

#[tokio::test]
async fn past_the_sandboxs_concurrent_jobs_limit_a_creation_is_rate_limited_until_one_ends() {
    // GIVEN a sandbox that allows one active job per base model
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        max_active_jobs: Some(1),
        progression: openai_sandbox::Progression::Manual,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let file = p
        .prepare_file(&put_file(&env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    let first = p.create_job(&create(&tags(), &file)).await.unwrap();

    // WHEN a second job of the same model is created
    let err = p.create_job(&create(&tags(), &file)).await.unwrap_err();

    // THEN it is a rate limit with the server's wait, never a failure
    assert!(
        matches!(
            err,
            ProviderError::RateLimited {
                retry_after: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    // (the call and the client's three retries, each answered 429)
    assert_eq!(sb.rate_limited_answers(), 4);
    // and once the first job ends, the next one is taken
    sb.run_to_end(&first.id);
    p.create_job(&create(&tags(), &file)).await.unwrap();
    assert_eq!(sb.jobs().len(), 2);
}

#[tokio::test]
async fn typed_errors_for_not_found_auth_and_the_fine_tuning_wind_down() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        api_key: Some(KEY.to_owned()),
        deny_fine_tuning: true,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));

    let err = p.get_job("ftjob-unknown").await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::NotFound { what, .. } if what.contains("ftjob-unknown")),
        "{err:?}"
    );

    let file = p
        .prepare_file(&put_file(&env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    sb.clear_requests();
    let err = p.create_job(&create(&tags(), &file)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::FineTuningNotPermitted { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "provider_fine_tuning_not_permitted");
    let text = err.to_string();
    assert!(
        text.contains("does not allow this account to create fine-tuning jobs"),
        "{text}"
    );
    assert!(
        text.contains("permission"),
        "OpenAI's own words are kept: {text}"
    );
    assert_eq!(sb.requests().len(), 1, "a 403 is never retried");

    let wrong = OpenAiProvider::new(
        OpenAiClient::new(settings(&sb), ApiKey::new("sk-wrong")).unwrap(),
        env.blobs.clone(),
    );
    let err = wrong.get_job("ftjob-x").await.unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
}

#[tokio::test]
async fn find_jobs_ignores_jobs_of_other_runs_when_the_server_ignores_the_filter() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        ignore_list_filters: true,
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let file = p
        .prepare_file(&put_file(&env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    let ours = tags();
    let theirs = JobTags {
        tenant_id: TenantId::parse("globex").unwrap(),
        run_id: RunId::generate(),
    };
    let mine = p.create_job(&create(&ours, &file)).await.unwrap();
    p.create_job(&create(&theirs, &file)).await.unwrap();
    let same_tenant_other_run = JobTags {
        tenant_id: ours.tenant_id.clone(),
        run_id: RunId::generate(),
    };
    p.create_job(&create(&same_tenant_other_run, &file))
        .await
        .unwrap();

    let found = p.find_jobs(&ours).await.unwrap();

    assert_eq!(found.iter().map(|j| &j.id).collect::<Vec<_>>(), [&mine.id]);
    let list = sb
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/v1/fine_tuning/jobs")
        .unwrap();
    assert!(
        list.query
            .contains(&("metadata[run_id]".to_owned(), ours.run_id.to_string()))
    );
    assert!(
        list.query
            .contains(&("metadata[tenant_id]".to_owned(), "acme".to_owned()))
    );
}

#[tokio::test]
async fn azure_style_auth_and_organization_headers_are_sent() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let mut s = settings(&sb);
    s.auth_style = AuthStyle::AzureApiKey;
    s.organization = Some("org-acme".to_owned());
    s.project = Some("proj_ft".to_owned());
    let p = provider_with(&env, s);
    let _ = p.get_job("ftjob-x").await;
    let r = &sb.requests()[0];
    assert_eq!(r.auth, "api-key");
    assert_eq!(r.organization.as_deref(), Some("org-acme"));
    assert_eq!(r.project.as_deref(), Some("proj_ft"));
}

#[tokio::test]
async fn the_uploads_api_sends_ranged_parts_and_a_failed_upload_is_cancelled() {
    // GIVEN a low threshold so a 2.5 MB file goes through the Uploads API
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let mut s = settings(&sb);
    s.upload_threshold = 1024 * 1024;
    s.part_size = 1024 * 1024;
    let p = provider_with(&env, s.clone());
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() < 2_500_000 {
        body.extend_from_slice(example_line(i).as_bytes());
        i += 1;
    }
    let source = put_file(&env, "big.jsonl", body).await;

    // WHEN it is prepared
    let file = p.prepare_file(&source).await.unwrap();

    // THEN three parts went up and the joined file is byte-identical
    let parts: Vec<u64> = sb
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/parts"))
        .map(|r| r.form.as_ref().unwrap()["data"]["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(parts, [1_048_576, 1_048_576, source.bytes - 2_097_152]);
    assert_eq!(
        sb.file_digest(&file.id).unwrap(),
        (source.bytes, source.sha256.clone())
    );

    // AND when parts keep failing, the upload is cancelled
    sb.clear_requests();
    s.retry.max_retries = 0;
    let p = provider_with(&env, s);
    sb.inject(Fault::status("POST", "/parts", 500, 1));
    let err = p.prepare_file(&source).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Server { status: 500, .. }),
        "{err:?}"
    );
    let paths: Vec<String> = sb
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths[2].ends_with("/cancel"), "{paths:?}");
}

/// Collects everything logged while it is the default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_api_key_never_appears_in_logs_debug_output_or_errors() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    // Calls that log: retries (warn), errors, an upload, a job.
    sb.inject(Fault::status("POST", "/files", 500, 1));
    let file = p
        .prepare_file(&put_file(&env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    let job = p.create_job(&create(&tags(), &file)).await.unwrap();
    let _ = p.get_job(&job.id).await.unwrap();
    let errors = [
        p.get_job("ftjob-missing").await.unwrap_err(),
        p.create_job(&create(
            &tags(),
            &ProviderFileRef {
                id: "file-x".to_owned(),
            },
        ))
        .await
        .unwrap_err(),
    ];

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs");
    assert!(!logs.contains("very-secret"), "part of the key leaked");
    assert!(!format!("{p:?}").contains(KEY));
    assert!(!format!("{:?}", p.client().settings()).contains(KEY));
    for e in errors {
        assert!(!format!("{e} {e:?}").contains(KEY));
    }
    // The sandbox saw the key in the header the client was told to use.
    assert!(sb.requests().iter().all(|r| r.auth == "bearer"));
}

#[tokio::test]
async fn a_600_mb_file_is_uploaded_through_the_uploads_api_in_constant_memory() {
    let _only_me = MEMORY_MEASUREMENT.lock().await;
    // GIVEN a 600 MB training file in S3, written with the streaming writer
    let env = TestEnv::new().await;
    let total: u64 = 600 * 1000 * 1000;
    let key = "datasets/acme/ds_big/train.jsonl";
    let mut writer = env.blobs.writer(key, "application/jsonl");
    let mut chunk = Vec::with_capacity(1024 * 1024 + 1024);
    let mut i = 0u64;
    while writer.len() < total {
        chunk.clear();
        while chunk.len() < 1024 * 1024 {
            chunk.extend_from_slice(example_line(i).as_bytes());
            i += 1;
        }
        writer.write(&chunk).await.unwrap();
    }
    let written = writer.finish().await.unwrap();
    let total = written.bytes;

    let sb = sandbox(SandboxConfig::default()).await;
    let p = provider_with(&env, settings(&sb));
    let source = DatasetFileSource {
        bucket: env.bucket.clone(),
        key: key.to_owned(),
        bytes: written.bytes,
        sha256: written.sha256.clone(),
        filename: "ds_big-train.jsonl".to_owned(),
    };

    // WHEN it is prepared for OpenAI (default threshold 512 MB, 64 MiB parts)
    let baseline = resident_bytes();
    let sampler = PeakMemory::start();
    let file = p.prepare_file(&source).await.unwrap();
    let peak = sampler.finish();

    // THEN it went up in 64 MiB parts, arrived whole, and memory stayed flat
    let parts = sb
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/parts"))
        .count() as u64;
    assert_eq!(parts, total.div_ceil(64 * 1024 * 1024));
    assert_eq!(sb.file_digest(&file.id).unwrap(), (total, written.sha256));
    let grew = peak.saturating_sub(baseline);
    println!(
        "600 MB upload via the Uploads API: resident baseline {} MiB, peak {} MiB, growth {} MiB",
        baseline >> 20,
        peak >> 20,
        grew >> 20
    );
    assert!(
        grew < 64 * 1024 * 1024,
        "resident memory grew by {} MiB while uploading 600 MB",
        grew >> 20
    );
}

#[tokio::test]
async fn on_a_clock_a_job_finishes_by_itself_and_added_latency_slows_but_does_not_break_calls() {
    let env = TestEnv::new().await;
    let sb = sandbox(SandboxConfig {
        progression: Progression::Every(Duration::from_millis(5)),
        latency: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let p = provider_with(&env, settings(&sb));
    let file = p
        .prepare_file(&put_file(&env, "t.jsonl", training_jsonl(10)).await)
        .await
        .unwrap();
    let job = p.create_job(&create(&tags(), &file)).await.unwrap();
    // No advance calls: the clock alone moves it (polling is bounded,
    // not timed: each poll takes at least the added latency).
    let mut status = job.status;
    for _ in 0..500 {
        status = p.get_job(&job.id).await.unwrap().status;
        if status.is_terminal() {
            break;
        }
    }
    assert_eq!(status, JobStatus::Succeeded);
}
