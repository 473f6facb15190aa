//! The whole pipeline through the real handlers: API Gateway v2 events into
//! start-run and cancel, EventBridge scheduled events into the prepare and
//! monitor functions, against moto and the OpenAI sandbox. The world and
//! its tick are `world.rs`'s; this file builds it on the sandbox.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use finetune::config::Config;
use finetune::domain::{ProviderKind, RunId, RunStatus, TenantId};
use finetune::pipeline::monitor;
use finetune::provider::inference::Inference;
use finetune::provider::registry::Providers;
use finetune::provider::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderError,
    ProviderEvent, ProviderFileRef, ProviderJob,
};
use finetune_tests::{ApiEvent, TestEnv};
use openai_sandbox::{Progression, SandboxConfig};
use serde_json::{Value, json};

use crate::world::{TENANT, World, drive, run, scheduled_context, tick};

pub(crate) fn quick_sandbox() -> SandboxConfig {
    SandboxConfig {
        progression: Progression::OnRead,
        epochs: 1,
        steps_per_epoch: 2,
        ..SandboxConfig::default()
    }
}

/// A world training on the OpenAI sandbox (`sandbox`), its provider
/// wrapped by `wrap` (to inject faults).
pub(crate) async fn world_with(
    sandbox: SandboxConfig,
    wrap: impl FnOnce(Arc<dyn FineTuningProvider>) -> Arc<dyn FineTuningProvider>,
) -> World {
    world_answering(sandbox, wrap, |answerer| answerer).await
}

/// [`world_with`], its models' answers also passing through
/// `wrap_answers` (to inject faults into the evaluation).
pub(crate) async fn world_answering(
    sandbox: SandboxConfig,
    wrap: impl FnOnce(Arc<dyn FineTuningProvider>) -> Arc<dyn FineTuningProvider>,
    wrap_answers: impl FnOnce(Arc<dyn Inference>) -> Arc<dyn Inference>,
) -> World {
    world_configured(sandbox, wrap, wrap_answers, &[]).await
}

/// [`world_answering`] with more of the functions' settings (`extra`).
pub(crate) async fn world_configured(
    sandbox: SandboxConfig,
    wrap: impl FnOnce(Arc<dyn FineTuningProvider>) -> Arc<dyn FineTuningProvider>,
    wrap_answers: impl FnOnce(Arc<dyn Inference>) -> Arc<dyn Inference>,
    extra: &[(&str, String)],
) -> World {
    let env = TestEnv::new().await;
    let sandbox = crate::openai::sandbox(sandbox).await;
    let openai = crate::openai::provider_with(&env, crate::openai::settings(&sandbox));
    let answerer = wrap_answers(Arc::new(openai.control().clone()));
    let openai: Arc<dyn FineTuningProvider> = Arc::new(openai);
    let mut vars = vec![
        ("OPENAI_BASE_URL", sandbox.base_url()),
        ("OPENAI_API_KEY", crate::openai::KEY.to_owned()),
    ];
    vars.extend(extra.iter().cloned());
    World::new(env, &vars, wrap(openai), answerer, Some(sandbox))
}

pub(crate) async fn world() -> World {
    world_with(quick_sandbox(), |p| p).await
}

/// `n` good conversations on 2026-10-01 and 2026-10-02.
pub(crate) async fn seed(world: &World, n: usize) {
    for day in [1, 2] {
        let lines: String = (0..n)
            .filter(|i| i % 2 == day - 1)
            .map(|i| {
                json!({
                    "id": format!("conv-{i}"),
                    "started_at": format!("2026-10-0{day}T10:00:00Z"),
                    "outcome": "resolved",
                    "messages": [
                        {"role": "user", "content": format!("Where is order A{i}?")},
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
                &format!("conversations/{TENANT}/2026/10/0{day}/export.jsonl"),
                lines.into_bytes(),
                "application/x-ndjson",
            )
            .await
            .unwrap();
    }
}

pub(crate) fn run_body(min_examples: u32) -> Value {
    json!({
        "name": "support v1",
        "config": {
            "start_date": "2026-10-01",
            "end_date": "2026-10-02",
            "base_model": "gpt-4o-mini-2024-07-18",
            "min_examples": min_examples,
            "max_examples": 1000,
            "train_split": 0.8,
            "seed": 3
        }
    })
}

pub(crate) async fn start(world: &World, body: &Value) -> RunId {
    let request = ApiEvent::post("/runs").tenant(TENANT).json(body).build();
    let response = finetune::http::start_run_handler(
        &world.pipeline.store,
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let run: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    RunId::parse(run["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_run_goes_from_post_to_a_fine_tuned_model() {
    // GIVEN a tenant's exports and a run accepted by POST /runs
    let world = world().await;
    seed(&world, 40).await;
    let id = start(&world, &run_body(10)).await;

    // WHEN the monitor ticks until the run ends
    let done = drive(&world, &id, 30).await;

    // THEN it completed with a fine-tuned model and one job at the provider
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let job = done.job.clone().unwrap();
    assert!(
        job.fine_tuned_model
            .as_deref()
            .unwrap_or("")
            .starts_with("ft:gpt-4o-mini")
    );
    assert_eq!(world.sandbox().jobs().len(), 1);
    let stats = done.stats.clone().unwrap();
    assert_eq!(stats.train_examples + stats.validation_examples, 40);
    assert!(done.completed_at.is_some());

    // AND the metrics say so: one run started and completed, its dataset
    // and billed tokens, and every monitor tick
    let openai = Some(("Provider", "openai"));
    let m = &world.recorded;
    assert_eq!(m.sum("RunsStarted", openai), 1.0);
    assert_eq!(m.sum("RunsCompleted", openai), 1.0);
    assert_eq!(m.sum("RunsFailed", None), 0.0);
    assert_eq!(m.sum("DatasetExamples", openai), 40.0);
    assert_eq!(m.sum("DatasetTokens", openai), stats.train_tokens as f64);
    assert_eq!(
        m.sum("BilledTokens", openai),
        job.trained_tokens.unwrap() as f64
    );
    let ticks: Vec<_> = m
        .lines()
        .into_iter()
        .filter(|l| l.get("MonitorRunsChecked").is_some())
        .collect();
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(ticks.iter().all(|t| t["MonitorDuration"].is_number()));
    assert!(m.sum("MonitorRunsAdvanced", None) >= 1.0);

    // AND GET /runs/{id} shows it with its dataset, and the timeline holds
    // our transitions and the provider's events
    let request = ApiEvent::get(&format!("/runs/{id}")).tenant(TENANT).build();
    let response = finetune::http::job_status_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.config,
        request,
    )
    .await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["provider"], "openai");
    assert!(body["dataset"]["stats"]["train_examples"].as_u64().unwrap() > 0);
    let events = world
        .pipeline
        .store
        .list_events(&TenantId::parse(TENANT).unwrap(), &id, 100, None)
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.kind == "status_changed" && e.message.starts_with("queued -> preparing"))
    );
    assert!(
        events
            .iter()
            .any(|e| e.source == finetune::domain::EventSource::Provider)
    );
    // The active index no longer holds it.
    assert!(
        world
            .pipeline
            .store
            .list_active_runs()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn too_few_examples_fails_the_run_with_the_count() {
    let world = world().await;
    seed(&world, 4).await;
    let id = start(&world, &run_body(10)).await;

    let done = drive(&world, &id, 5).await;

    assert_eq!(done.status, RunStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.code, "too_few_examples");
    assert!(
        error.message.contains("only 4 training examples"),
        "{}",
        error.message
    );
    assert!(
        world.sandbox().jobs().is_empty(),
        "no job for a failed preparation"
    );
}

#[tokio::test]
async fn a_job_failing_at_the_provider_fails_the_run_with_its_message() {
    // The sandbox fails a job after its first epoch: give it two.
    let world = world_with(
        SandboxConfig {
            epochs: 2,
            ..quick_sandbox()
        },
        |p| p,
    )
    .await;
    world.sandbox().set_fail_training(true);
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;

    let done = drive(&world, &id, 30).await;

    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    let error = done.error.unwrap();
    assert_eq!(error.code, "provider_job_failed");
    let provider_message = done.job.unwrap().error.unwrap();
    assert!(
        error.message.contains(&provider_message),
        "{} / {provider_message}",
        error.message
    );
    assert_eq!(
        world
            .recorded
            .sum("RunsFailed", Some(("Provider", "openai"))),
        1.0
    );
    assert_eq!(world.recorded.sum("RunsCompleted", None), 0.0);
}

#[tokio::test]
async fn openai_refusing_new_fine_tuning_fails_the_run_saying_why() {
    let world = world().await;
    world.sandbox().set_deny_fine_tuning(true);
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;

    let done = drive(&world, &id, 5).await;

    assert_eq!(done.status, RunStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.code, "provider_fine_tuning_not_permitted");
    assert!(
        error.message.contains("another provider"),
        "{}",
        error.message
    );
    // The provider error is counted by its kind, and the run as failed.
    let kind = Some(("Kind", "provider_fine_tuning_not_permitted"));
    assert_eq!(world.recorded.sum("ProviderErrors", kind), 1.0);
    assert_eq!(world.recorded.sum("RunsFailed", None), 1.0);
}

/// The port's calls a fault-injecting wrapper passes straight to the real
/// adapter it wraps (`self.inner`): `kind` and every call but the ones the
/// wrapper writes itself (upload and create).
macro_rules! provider_wrapper {
    ($wrapper:ty, { $($own:tt)* }) => {
        #[async_trait]
        impl JobControl for $wrapper {
            fn kind(&self) -> ProviderKind {
                self.inner.kind()
            }
            async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
                self.inner.cancel_job(job_id).await
            }
            async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
                self.inner.delete_model(model).await
            }
            fn serving(&self) -> Option<&dyn finetune::provider::serving::ModelServing> {
                self.inner.serving()
            }
        }
        #[async_trait]
        impl FineTuningProvider for $wrapper {
            $($own)*
            async fn find_jobs(&self, tags: &JobTags) -> Result<Vec<ProviderJob>, ProviderError> {
                self.inner.find_jobs(tags).await
            }
            async fn get_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
                self.inner.get_job(job_id).await
            }
            async fn list_events(
                &self,
                job_id: &str,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<ProviderEvent>, ProviderError> {
                self.inner.list_events(job_id, after, limit).await
            }
            async fn list_checkpoints(
                &self,
                job_id: &str,
            ) -> Result<Vec<finetune::provider::ProviderCheckpoint>, ProviderError> {
                self.inner.list_checkpoints(job_id).await
            }
            async fn step_metrics(
                &self,
                job_id: &str,
                owner: &JobTags,
            ) -> Result<Vec<finetune::domain::curve::MetricPoint>, ProviderError> {
                self.inner.step_metrics(job_id, owner).await
            }
            fn weights(&self) -> Option<&dyn finetune::provider::weights::ModelWeights> {
                self.inner.weights()
            }
        }
    };
}

/// Creates the job at the provider, then loses the answer (as a timeout
/// or a crash between "created" and "recorded" would): the port's real
/// adapter underneath, nothing of ours mocked.
struct LosesFirstCreateAnswer {
    inner: Arc<dyn FineTuningProvider>,
    lost: std::sync::atomic::AtomicBool,
}

provider_wrapper!(LosesFirstCreateAnswer, {
    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError> {
        self.inner.prepare_file(file).await
    }
    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError> {
        let created = self.inner.create_job(job).await?;
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(ProviderError::Transport(
                "connection reset after sending (injected)".into(),
            ));
        }
        Ok(created)
    }
});

/// A Lambda context with a minute left, as a scheduled invocation gets.
#[tokio::test]
async fn the_prepare_function_prepares_and_the_monitor_takes_over_from_uploading() {
    // GIVEN a queued run
    let world = world().await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;

    // WHEN only the monitor ticks
    let monitor_only = monitor::on_schedule(
        &world.pipeline.monitor().ticks,
        &world.config,
        &scheduled_context(),
    )
    .await
    .unwrap();
    // THEN it leaves the queued run alone and does not count it
    assert_eq!(monitor_only.checked, 0, "{monitor_only:?}");
    assert_eq!(run(&world, &id).await.status, RunStatus::Queued);

    // WHEN the prepare function ticks
    let prepared = monitor::on_prepare_schedule(
        &world.pipeline.preparing(world.config.fan_out.clone()),
        &world.config,
        &scheduled_context(),
    )
    .await
    .unwrap();
    // THEN the dataset is ready and nothing was sent to the provider
    assert_eq!(
        (prepared.checked, prepared.advanced),
        (1, 1),
        "{prepared:?}"
    );
    // (prepared, it waits for the monitor's admission)
    let ready = run(&world, &id).await;
    assert_eq!(ready.status, RunStatus::Waiting, "{ready:?}");
    assert!(ready.dataset_id.is_some());
    assert!(world.sandbox().jobs().is_empty());
    // AND its next tick has nothing of the run's left to do
    let again = monitor::on_prepare_schedule(
        &world.pipeline.preparing(world.config.fan_out.clone()),
        &world.config,
        &scheduled_context(),
    )
    .await
    .unwrap();
    assert_eq!(again.checked, 0, "{again:?}");

    // WHEN the monitor ticks
    monitor::on_schedule(
        &world.pipeline.monitor().ticks,
        &world.config,
        &scheduled_context(),
    )
    .await
    .unwrap();
    // THEN the run trains on one job
    assert_eq!(run(&world, &id).await.status, RunStatus::Training);
    assert_eq!(world.sandbox().jobs().len(), 1);
}

#[tokio::test]
async fn a_crash_between_job_creation_and_recording_still_makes_one_job() {
    let world = world_with(quick_sandbox(), |inner| {
        Arc::new(LosesFirstCreateAnswer {
            inner,
            lost: std::sync::atomic::AtomicBool::new(false),
        })
    })
    .await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;

    // The first tick creates the job but never learns of it.
    tick(&world).await;
    let after_crash = run(&world, &id).await;
    assert_eq!(after_crash.status, RunStatus::Submitting);
    assert_eq!(after_crash.retries, 1);
    assert_eq!(world.sandbox().jobs().len(), 1);

    let done = drive(&world, &id, 30).await;

    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(
        world.sandbox().jobs().len(),
        1,
        "exactly one job was ever created"
    );
    assert_eq!(
        done.job.unwrap().provider_job_id,
        world.sandbox().jobs()[0]["id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn concurrent_monitors_never_make_two_jobs() {
    let world = world().await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;

    for _ in 0..10 {
        let (a, b) = tokio::join!(tick(&world), tick(&world));
        assert!(a.skipped + b.skipped <= 1);
        if run(&world, &id).await.status.is_terminal() {
            break;
        }
    }

    assert_eq!(run(&world, &id).await.status, RunStatus::Completed);
    assert_eq!(world.sandbox().jobs().len(), 1);
}

async fn cancel(world: &World, id: &RunId) -> (u16, Value) {
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
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

#[tokio::test]
async fn cancel_while_queued_stops_the_run_before_any_work() {
    let world = world().await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;

    let (status, body) = cancel(&world, &id).await;
    tick(&world).await;

    assert_eq!(status, 200);
    assert_eq!(body["status"], "cancelled");
    let r = run(&world, &id).await;
    assert_eq!(r.status, RunStatus::Cancelled);
    assert!(r.dataset_id.is_none(), "nothing was prepared");
    assert!(world.sandbox().jobs().is_empty());
}

#[tokio::test]
async fn cancel_while_training_cancels_the_job_at_the_provider() {
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
    tick(&world).await;
    let training = run(&world, &id).await;
    assert_eq!(training.status, RunStatus::Training);
    let job_id = training.job.unwrap().provider_job_id;

    let (status, body) = cancel(&world, &id).await;
    let summary = tick(&world).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(
        world.sandbox().job_status(&job_id).as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        summary.checked, 0,
        "a cancelled run leaves the active index"
    );
    // Cancelling again is fine; the provider is not asked twice, and the
    // run is counted as cancelled once.
    let (again, _) = cancel(&world, &id).await;
    assert_eq!(again, 200);
    assert_eq!(
        world
            .recorded
            .sum("RunsCancelled", Some(("Provider", "openai"))),
        1.0
    );
}

#[tokio::test]
async fn a_prepare_only_run_completes_with_stats_and_no_job() {
    let world = world().await;
    seed(&world, 20).await;
    let mut body = run_body(10);
    body["prepare_only"] = json!(true);
    let id = start(&world, &body).await;

    let done = drive(&world, &id, 5).await;

    assert_eq!(done.status, RunStatus::Completed);
    assert!(done.job.is_none());
    let stats = done.stats.unwrap();
    assert!(stats.estimated_cost_usd >= 0.0 && stats.train_examples > 0);
    assert!(world.sandbox().jobs().is_empty());

    // Its dataset can then train another run without being prepared again.
    let retrain = json!({
        "name": "retrain",
        "dataset_id": done.dataset_id.unwrap().to_string(),
        "config": {"base_model": "gpt-4.1-mini-2025-04-14", "min_examples": 10, "max_examples": 1000}
    });
    let second = start(&world, &retrain).await;
    let finished = drive(&world, &second, 30).await;
    assert_eq!(finished.status, RunStatus::Completed, "{finished:?}");
    assert_eq!(world.sandbox().jobs().len(), 1);
}

#[tokio::test]
async fn a_tick_that_sees_nothing_new_writes_nothing() {
    // GIVEN a run in training whose job only moves when the test says so
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
    tick(&world).await;
    tick(&world).await;
    let before = run(&world, &id).await;
    assert_eq!(before.status, RunStatus::Training);

    // WHEN the monitor ticks again and the provider reports nothing new
    let summary = tick(&world).await;

    // THEN the run is looked at but its record is not rewritten
    assert_eq!((summary.checked, summary.unchanged), (1, 1));
    let after = run(&world, &id).await;
    assert_eq!(after.version, before.version, "no write for no news");

    // WHEN the job moves at the provider
    let job_id = after.job.unwrap().provider_job_id;
    world.sandbox().advance(&job_id);
    tick(&world).await;

    // THEN the next tick records it
    let moved = run(&world, &id).await;
    assert!(moved.version > before.version);
    assert_ne!(
        moved.job.unwrap().provider_status,
        before.job.unwrap().provider_status
    );
}

#[tokio::test]
async fn a_job_in_training_is_polled_again_only_when_its_next_poll_is_due() {
    // GIVEN the deployed polling policy and a run whose job trains on
    let world = world_configured(
        SandboxConfig {
            progression: Progression::Manual,
            ..quick_sandbox()
        },
        |p| p,
        |a| a,
        &[("TRAINING_POLL_SECONDS", "600".to_owned())],
    )
    .await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;
    for _ in 0..3 {
        if run(&world, &id).await.status == RunStatus::Training {
            break;
        }
        tick(&world).await;
    }
    let training = run(&world, &id).await;
    assert_eq!(training.status, RunStatus::Training, "{training:?}");
    let job_id = training.job.clone().unwrap().provider_job_id;
    let polls = |world: &World| {
        world
            .sandbox()
            .requests()
            .iter()
            .filter(|r| r.path.contains(&job_id))
            .count()
    };
    let before = polls(&world);

    // WHEN the monitor ticks again within the minute a young job waits
    let summary = tick(&world).await;

    // THEN it does not even read the run, and the provider hears nothing
    assert_eq!(summary.checked, 0, "{summary:?}");
    assert_eq!(polls(&world), before);
    // and the run is due once its wait is over
    let due_later = world
        .pipeline
        .store
        .list_due_runs_in(
            |s| s == RunStatus::Training,
            chrono::Utc::now() + chrono::Duration::seconds(61),
        )
        .await
        .unwrap();
    assert_eq!(due_later.len(), 1);

    // WHEN the tenant cancels it meanwhile
    let (status, _) = cancel(&world, &id).await;
    assert_eq!(status, 200);

    // THEN the cancel does not wait for the next poll: the job is
    // cancelled at the provider at once and the run leaves the index
    assert!(polls(&world) > before, "the cancel reached the job");
    assert_eq!(run(&world, &id).await.status, RunStatus::Cancelled);
    let due_later = world
        .pipeline
        .store
        .list_due_runs_in(|_| true, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(due_later.is_empty(), "{due_later:?}");
}

/// Where [`CancelsDuring`] lets a cancel request land.
#[derive(Clone, Copy, PartialEq)]
enum Hook {
    /// After the training file reached the provider, before it is recorded.
    Upload,
    /// After the job was created at the provider, before it is recorded.
    Create,
}

/// What the cancel request needs, set once the world exists.
type CancelContext = Arc<std::sync::Mutex<Option<(finetune::store::Store, Config, RunId)>>>;

/// The real adapter, with a `POST /runs/{id}/cancel` (through the real
/// handler) landing in the middle of one of its calls, as a user's click
/// would land in the middle of a monitor's step.
struct CancelsDuring {
    inner: Arc<dyn FineTuningProvider>,
    hook: Hook,
    context: CancelContext,
}

impl CancelsDuring {
    async fn cancel_now(&self, hook: Hook) {
        let Some((store, config, id)) = self.context.lock().unwrap().clone() else {
            return;
        };
        if hook != self.hook {
            return;
        }
        let providers = Providers::new().with(self.inner.clone());
        let request = ApiEvent::post(&format!("/runs/{id}/cancel"))
            .tenant(TENANT)
            .build();
        let response = finetune::http::cancel_handler(
            &store,
            &providers.controls(),
            &config,
            &finetune::metrics::Metrics::discard(),
            request,
        )
        .await;
        assert_eq!(response.status(), 200, "{:?}", response.body());
    }
}

provider_wrapper!(CancelsDuring, {
    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError> {
        let uploaded = self.inner.prepare_file(file).await?;
        self.cancel_now(Hook::Upload).await;
        Ok(uploaded)
    }
    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError> {
        let created = self.inner.create_job(job).await?;
        self.cancel_now(Hook::Create).await;
        Ok(created)
    }
});

/// A world whose provider lets a cancel land at `hook`, and a started run.
async fn cancelling_world(hook: Hook) -> (World, RunId) {
    let context = CancelContext::default();
    let shared = context.clone();
    let world = world_with(quick_sandbox(), move |inner| {
        Arc::new(CancelsDuring {
            inner,
            hook,
            context: shared,
        })
    })
    .await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;
    *context.lock().unwrap() = Some((
        world.pipeline.store.clone(),
        world.config.clone(),
        id.clone(),
    ));
    (world, id)
}

#[tokio::test]
async fn cancel_while_preparing_stops_the_run_before_upload() {
    // GIVEN a run left in `preparing` (a tick crashed while preparing)
    let world = world().await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;
    let mut r = run(&world, &id).await;
    r.move_to(
        RunStatus::Preparing,
        "preparing (crashed)",
        chrono::Utc::now(),
    )
    .unwrap();
    world.pipeline.store.update_run(&r).await.unwrap();

    // WHEN it is cancelled and the monitor comes round
    let (status, _) = cancel(&world, &id).await;
    tick(&world).await;

    // THEN it stays cancelled and nothing reached the provider
    assert_eq!(status, 200);
    assert_eq!(run(&world, &id).await.status, RunStatus::Cancelled);
    assert!(world.sandbox().jobs().is_empty());
    assert!(
        world
            .sandbox()
            .requests()
            .iter()
            .all(|r| !r.path.contains("/files") && !r.path.contains("/uploads")),
        "no upload after a cancel"
    );
}

#[tokio::test]
async fn cancel_while_uploading_wins_and_no_job_is_created() {
    // GIVEN a cancel that lands while the training file is being uploaded
    let (world, id) = cancelling_world(Hook::Upload).await;

    // WHEN the monitor ticks through the upload
    tick(&world).await;
    tick(&world).await;

    // THEN the cancel stands and no job was ever created
    let r = run(&world, &id).await;
    assert_eq!(r.status, RunStatus::Cancelled, "{r:?}");
    assert!(world.sandbox().jobs().is_empty());
}

#[tokio::test]
async fn cancel_while_the_job_is_being_created_cancels_that_job() {
    // GIVEN a cancel that lands after the job was created at the provider
    // but before the monitor recorded it
    let (world, id) = cancelling_world(Hook::Create).await;

    // WHEN the monitor finishes its step
    tick(&world).await;
    tick(&world).await;

    // THEN the run is cancelled and so is the one job it made
    let r = run(&world, &id).await;
    assert_eq!(r.status, RunStatus::Cancelled, "{r:?}");
    let jobs = world.sandbox().jobs();
    assert_eq!(jobs.len(), 1);
    let job_id = jobs[0]["id"].as_str().unwrap();
    assert_eq!(
        world.sandbox().job_status(job_id).as_deref(),
        Some("cancelled")
    );
}

#[tokio::test]
async fn a_run_held_by_a_crashed_tick_is_resumed_by_the_first_tick_after_its_deadline() {
    // GIVEN a queued run whose lease a prepare tick took and never gave
    // back (its process died), with the lease that tick's deadline sets
    let world = world().await;
    seed(&world, 20).await;
    let run_id = start(&world, &run_body(10)).await;
    let tenant = TenantId::parse(TENANT).unwrap();
    let crashed_deadline = chrono::Utc::now() + chrono::Duration::seconds(30);
    let now = chrono::Utc::now();
    let until =
        finetune::pipeline::lease_until(now, Some(crashed_deadline), Duration::from_secs(360));
    let taken = world
        .pipeline
        .store
        .acquire_lease(&tenant, &run_id, "prepare-crashed", now, until)
        .await
        .unwrap();
    assert!(taken.is_some());

    // WHEN a tick runs before the crashed invocation's deadline
    let blocked = monitor::on_prepare_schedule(
        &world.pipeline.preparing(world.config.fan_out.clone()),
        &world.config,
        &scheduled_context(),
    )
    .await
    .unwrap();
    // THEN it leaves the run alone (the crashed one might still be alive)
    assert_eq!((blocked.skipped, blocked.advanced), (1, 0), "{blocked:?}");

    // WHEN a tick comes after that deadline and its margin (the next
    // minute's tick: here the store is asked at that time)
    let later = crashed_deadline
        + chrono::Duration::from_std(finetune::pipeline::LEASE_MARGIN).unwrap()
        + chrono::Duration::seconds(1);
    let retaken = world
        .pipeline
        .store
        .acquire_lease(
            &tenant,
            &run_id,
            "prepare-next",
            later,
            later + chrono::Duration::seconds(60),
        )
        .await
        .unwrap();
    // THEN the lease is free for it: 45 s after the crash, where a fixed
    // 360 s lease would have held the run for six minutes
    assert!(retaken.is_some());
    assert!(until < now + chrono::Duration::seconds(360));
}
