//! The evaluating phase end to end on the OpenAI sandbox: a fine-tune
//! against what the tenant uses, the decision, the activation policy, the
//! rows behind it, resuming after a crash, and the tenant wall.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use finetune::domain::{EvaluationStatus, ModelId, RunId, RunStatus};
use finetune::evaluation::{Decision, EvalExample, Outcome, Verdict};
use finetune::provider::ProviderError;
use finetune::provider::inference::{Inference, Reply};
use finetune_tests::ApiEvent;
use openai_sandbox::Quality;
use serde_json::{Value, json};

use crate::models::call;
use crate::pipeline::{quick_sandbox, run_body, seed, start, world, world_answering};
use crate::world::{TENANT, World, drive, run, tick};

const BASE: &str = "gpt-4o-mini-2024-07-18";

/// A run of 40 conversations, about half held out (to evaluate).
fn evaluated_run(evaluation: Value) -> Value {
    let mut body = run_body(10);
    body["config"]["train_split"] = json!(0.5);
    body["config"]["evaluation"] = evaluation;
    body
}

/// `GET /runs/{id}/evaluation…` as `tenant`.
async fn rows(world: &World, tenant: &str, path: &str) -> (u16, Value) {
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

#[tokio::test]
async fn a_fine_tune_better_than_the_base_model_is_activated_with_the_figures_on_record() {
    // GIVEN a run evaluated on its held-out conversations, with a judge
    let world = world().await;
    seed(&world, 40).await;
    let id = start(&world, &evaluated_run(json!({"judge_model": BASE}))).await;

    // WHEN the monitor ticks until the run ends
    let done = drive(&world, &id, 30).await;

    // THEN it completed as better than the base model, by chrF and by the
    // judge, with the estimate recorded and the model activated
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let evaluation = done.evaluation.clone().unwrap();
    assert_eq!(evaluation.status, EvaluationStatus::Completed);
    assert_eq!(
        evaluation.decision,
        Some(Decision::Better),
        "{}",
        done.phase
    );
    // Every held-out example (the split is per conversation, by hash: about
    // half of 40).
    let n = done.stats.clone().unwrap().validation_examples as usize;
    assert!(n >= 15, "{n}");
    assert_eq!(evaluation.examples, n as u64);
    let fine_tuned = done.job.clone().unwrap().fine_tuned_model.unwrap();
    assert_eq!(evaluation.candidate.model, fine_tuned);
    assert_eq!(evaluation.baseline.model, BASE);
    assert!(evaluation.candidate.score > evaluation.baseline.score);
    assert!(evaluation.difference.unwrap().ci_low > 0.0);
    assert!(evaluation.win_rate.unwrap() > 0.5);
    assert!(evaluation.win_rate_ci.unwrap()[0] > 0.5);
    assert!(evaluation.estimated_cost_usd > 0.0);
    let stats = done.stats.clone().unwrap();
    assert_eq!(
        stats.evaluation_estimated_cost_usd,
        Some(evaluation.estimated_cost_usd)
    );
    assert!(
        done.phase.contains("activated (activation if_better)"),
        "{}",
        done.phase
    );
    let (status, active) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(status, 200);
    assert_eq!(active["id"], ModelId::for_run(&id).as_str());
    let (_, model) = call(
        &world,
        TENANT,
        "GET",
        &format!("/models/{}", ModelId::for_run(&id)),
    )
    .await;
    assert_eq!(model["evaluation"]["decision"], "better");

    // AND each model was asked once per example, the judge twice (both
    // orders): n answers from the fine-tune, n + 2n from the base model
    let calls = world.sandbox().chat_calls_per_model();
    assert_eq!(calls.get(&fine_tuned), Some(&n), "{calls:?}");
    assert_eq!(calls.get(BASE), Some(&(3 * n)), "{calls:?}");

    // AND the metrics count the examples and the decision
    let m = &world.recorded;
    assert_eq!(
        m.sum("EvaluationExamplesScored", Some(("Provider", "openai"))),
        n as f64
    );
    assert_eq!(
        m.sum("EvaluationsDecided", Some(("Decision", "better"))),
        1.0
    );
    assert_eq!(m.sum("ModelsActivated", Some(("Decision", "better"))), 1.0);

    // AND the rows are listed in example order, page by page, with both
    // answers, their scores and the judge's verdicts in both orders
    let path = format!("/runs/{id}/evaluation");
    let (status, first) = rows(&world, TENANT, &format!("{path}?limit=15")).await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = rows(&world, TENANT, &format!("{path}?limit=15&cursor={cursor}")).await;
    assert_eq!(second["next_cursor"], Value::Null);
    let all: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|page| page["data"].as_array().unwrap().clone())
        .collect();
    assert_eq!(all.len(), n);
    let indices: Vec<u64> = all.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
    for row in &all {
        assert_eq!(row["candidate"]["model"], fine_tuned.as_str());
        assert_eq!(row["baseline"]["model"], BASE);
        assert!(row["candidate"]["score"].as_f64().unwrap() >= 0.0);
        assert!(
            row["prompt_excerpt"]
                .as_str()
                .unwrap()
                .starts_with("Where is order")
        );
        let judge = &row["judge"];
        let (a, b) = (
            serde_json::from_value::<Verdict>(judge["candidate_as_a"].clone()).unwrap(),
            serde_json::from_value::<Verdict>(judge["candidate_as_b"].clone()).unwrap(),
        );
        let outcome = serde_json::from_value::<Outcome>(judge["outcome"].clone()).unwrap();
        assert_eq!(outcome, finetune::evaluation::combine_orders(a, b), "{row}");
        if outcome == Outcome::Win {
            // Preferred in both positions: as A, and as B once swapped.
            assert_eq!((a, b), (Verdict::A, Verdict::B), "{row}");
        }
    }

    // AND another tenant learns nothing of them
    let (status, problem) = rows(&world, "globex", &path).await;
    assert_eq!(status, 404, "{problem}");
    let (status, _) = rows(&world, TENANT, &format!("{path}?cursor=Li4vLi4v")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_worse_fine_tune_leaves_the_previous_model_active_and_is_activated_only_by_force() {
    // GIVEN a tenant whose first fine-tune was better and is active
    let world = world().await;
    seed(&world, 40).await;
    let first = start(&world, &evaluated_run(json!({}))).await;
    let done = drive(&world, &first, 30).await;
    assert_eq!(done.evaluation.unwrap().decision, Some(Decision::Better));
    let first_model = done.job.unwrap().fine_tuned_model.unwrap();

    // WHEN a second fine-tune answers worse than the first
    world.sandbox().set_fine_tuned_quality(Quality::Worse);
    let second = start(&world, &evaluated_run(json!({}))).await;
    let done = drive(&world, &second, 30).await;

    // THEN it was compared with the active model, found worse, and not
    // activated, and its run says why
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let evaluation = done.evaluation.unwrap();
    assert_eq!(evaluation.baseline.model, first_model);
    assert_eq!(evaluation.decision, Some(Decision::Worse), "{}", done.phase);
    assert!(done.phase.contains("not activated"), "{}", done.phase);
    assert!(done.phase.contains("\"worse\""), "{}", done.phase);
    let (_, active) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(active["id"], ModelId::for_run(&first).as_str());

    // AND activating it is refused with the figures
    let worse = ModelId::for_run(&second);
    let path = format!("/models/{worse}/activate");
    let (status, problem) = call(&world, TENANT, "POST", &path).await;
    assert_eq!(status, 409, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("worse") && detail.contains("95% interval"),
        "{detail}"
    );
    assert!(detail.contains("\"force\": true"), "{detail}");

    // AND with force it is activated
    let (status, active) = force(&world, &path, json!({"force": true})).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["id"], worse.as_str());
    let (status, problem) = force(&world, &path, json!({"force": "yes"})).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "force");
}

async fn force(world: &World, path: &str, body: Value) -> (u16, Value) {
    let request = ApiEvent::post(path).tenant(TENANT).json(&body).build();
    let response = finetune::http::models_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.pipeline.providers.controls(),
        &world.config,
        request,
    )
    .await;
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// A process that dies after `remaining` answers: later calls never reach
/// the provider (nothing is paid for them) and fail as a lost connection
/// would, until [`CrashAfter::heal`].
struct CrashAfter {
    inner: Arc<dyn Inference>,
    remaining: AtomicUsize,
}

impl CrashAfter {
    fn heal(&self) {
        self.remaining.store(usize::MAX, Ordering::SeqCst);
    }
}

#[async_trait]
impl Inference for CrashAfter {
    async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError> {
        let left = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_err() {
            return Err(ProviderError::Transport("the process died".into()));
        }
        self.inner.answer(model, example, max_tokens).await
    }
}

#[tokio::test]
async fn an_evaluation_cut_short_resumes_without_asking_for_any_answer_twice() {
    // GIVEN a run whose evaluation dies after 9 answers
    let crash: Arc<std::sync::OnceLock<Arc<CrashAfter>>> = Arc::default();
    let slot = crash.clone();
    let world = world_answering(
        quick_sandbox(),
        |p| p,
        move |inner| {
            let wrapper = Arc::new(CrashAfter {
                inner,
                remaining: AtomicUsize::new(9),
            });
            let _ = slot.set(wrapper.clone());
            wrapper
        },
    )
    .await;
    seed(&world, 40).await;
    let id = start(&world, &evaluated_run(json!({}))).await;
    let cut = tick_until(&world, &id, |r| {
        r.status == RunStatus::Evaluating && r.retries > 0
    })
    .await;

    // THEN the answers it got are kept and the run waits to retry
    let fine_tuned = cut.job.clone().unwrap().fine_tuned_model.unwrap();
    let paid = |world: &World| {
        let calls = world.sandbox().chat_calls_per_model();
        (
            calls.get(&fine_tuned).copied().unwrap_or(0),
            calls.get(BASE).copied().unwrap_or(0),
        )
    };
    let (ft, base) = paid(&world);
    assert_eq!(ft + base, 9, "{ft} + {base}");
    assert!(
        cut.phase.starts_with("retrying evaluating"),
        "{}",
        cut.phase
    );

    // WHEN the process is healthy again and the monitor ticks on
    crash.get().unwrap().heal();
    let done = drive(&world, &id, 30).await;

    // THEN the run completes and every answer was paid for exactly once
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let n = done.stats.unwrap().validation_examples as usize;
    assert_eq!(done.evaluation.unwrap().examples, n as u64);
    assert_eq!(paid(&world), (n, n));
}

async fn tick_until(
    world: &World,
    id: &RunId,
    until: impl Fn(&finetune::domain::Run) -> bool,
) -> finetune::domain::Run {
    for _ in 0..30 {
        let r = run(world, id).await;
        if until(&r) || r.status.is_terminal() {
            return r;
        }
        tick(world).await;
    }
    panic!("the run never got there: {:?}", run(world, id).await);
}

/// A model that refuses (400) every prompt that mentions `refused`, and
/// answers the rest.
struct RefusesOne {
    inner: Arc<dyn Inference>,
    refused: String,
}

#[async_trait]
impl Inference for RefusesOne {
    async fn answer(
        &self,
        model: &str,
        example: &EvalExample,
        max_tokens: u32,
    ) -> Result<Reply, ProviderError> {
        if example.turns.iter().any(|t| t.text.contains(&self.refused)) {
            return Err(ProviderError::InvalidRequest {
                message: "This model's maximum context length is 128000 tokens".into(),
                param: Some("messages".into()),
                code: Some("context_length_exceeded".into()),
                request_id: None,
            });
        }
        self.inner.answer(model, example, max_tokens).await
    }
}

#[tokio::test]
async fn an_example_a_model_refuses_is_left_out_on_record_and_the_run_still_completes() {
    // GIVEN a model that refuses outright (400) the prompts about orders
    // ending in 7 (A7, A17, A27, A37: some held out, by the run's seed)
    let world = world_answering(
        quick_sandbox(),
        |p| p,
        |inner| {
            Arc::new(RefusesOne {
                inner,
                refused: "7?".into(),
            })
        },
    )
    .await;
    seed(&world, 40).await;
    let id = start(&world, &evaluated_run(json!({}))).await;

    // WHEN the run is driven to its end
    let done = drive(&world, &id, 30).await;

    // THEN it completed, evaluated on the other examples, and says which
    // were left out and why
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let evaluation = done.evaluation.clone().unwrap();
    assert_eq!(evaluation.status, EvaluationStatus::Completed);
    let n = done.stats.unwrap().validation_examples;
    let (_, rows) = rows(&world, TENANT, &format!("/runs/{id}/evaluation?limit=100")).await;
    let listed = rows["data"].as_array().unwrap();
    assert_eq!(listed.len() as u64, evaluation.examples);
    let left_out = n - evaluation.examples;
    let keys: Vec<String> = world
        .pipeline
        .blobs
        .list_prefix(&format!("runs/{TENANT}/{id}/evaluation/answers/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with("refused.json"))
        .collect();
    assert!(left_out > 0, "no held-out example was refused");
    // AND each left-out example's refusal is kept with the provider's words
    assert_eq!(keys.len() as u64, left_out, "{keys:?}");
    assert!(
        listed
            .iter()
            .all(|r| !r["prompt_excerpt"].as_str().unwrap().contains("7?")),
        "a refused example was scored: {listed:#?}"
    );
    let events = world
        .pipeline
        .store
        .list_events(
            &finetune::domain::TenantId::parse(TENANT).unwrap(),
            &id,
            100,
            None,
        )
        .await
        .unwrap()
        .items;
    let note = events
        .iter()
        .find(|e| e.kind == "examples_left_out")
        .map(|e| e.message.clone());
    if left_out > 0 {
        let note = note.expect("an event says examples were left out");
        assert!(
            note.starts_with(&format!("{left_out} of {n} sampled examples")),
            "{note}"
        );
    } else {
        // The refused conversation went to training, not validation.
        assert!(note.is_none());
    }
}

#[tokio::test]
async fn a_run_without_an_evaluation_is_activated_by_policy_alone() {
    // GIVEN a run that skips its evaluation and activates whatever it gets
    let world = world().await;
    seed(&world, 40).await;
    let body = evaluated_run(json!({"enabled": false}));
    let mut body = body;
    body["config"]["activation"] = json!("always");
    let id = start(&world, &body).await;

    // WHEN it ends
    let done = drive(&world, &id, 30).await;

    // THEN no model was asked anything, the skip is on record, and the
    // model is active
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let evaluation = done.evaluation.unwrap();
    assert_eq!(evaluation.status, EvaluationStatus::Skipped);
    assert_eq!(
        evaluation.reason.as_deref(),
        Some("disabled by the run's config")
    );
    assert!(world.sandbox().chat_calls().is_empty());
    let (_, active) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(active["id"], ModelId::for_run(&id).as_str());
}

#[tokio::test]
async fn a_model_activated_by_hand_while_an_evaluation_runs_stays_active() {
    // GIVEN a tenant with a ready model it has not activated (its run's
    // policy was manual), and no active model
    let crash: Arc<std::sync::OnceLock<Arc<CrashAfter>>> = Arc::default();
    let slot = crash.clone();
    let world = world_answering(
        quick_sandbox(),
        |p| p,
        move |inner| {
            let wrapper = Arc::new(CrashAfter {
                inner,
                remaining: AtomicUsize::new(usize::MAX),
            });
            let _ = slot.set(wrapper.clone());
            wrapper
        },
    )
    .await;
    seed(&world, 40).await;
    let mut body = evaluated_run(json!({}));
    body["config"]["activation"] = json!("manual");
    let first = start(&world, &body).await;
    let done = drive(&world, &first, 30).await;
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let chosen = ModelId::for_run(&first);

    // AND a second run whose evaluation has begun against the base model
    // (no active model) and is cut short after a few answers
    crash.get().unwrap().remaining.store(5, Ordering::SeqCst);
    let second = start(&world, &evaluated_run(json!({}))).await;
    let cut = tick_until(&world, &second, |r| {
        r.status == RunStatus::Evaluating && r.retries > 0
    })
    .await;
    assert_eq!(cut.evaluation.unwrap().baseline.model, BASE);

    // WHEN the tenant activates the first model by hand meanwhile, and the
    // evaluation then finishes, finding its model better
    let (status, active) = call(
        &world,
        TENANT,
        "POST",
        &format!("/models/{chosen}/activate"),
    )
    .await;
    assert_eq!(status, 200, "{active}");
    crash.get().unwrap().heal();
    let done = drive(&world, &second, 30).await;

    // THEN the hand-made choice is still the active model
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let (_, active) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(active["id"], chosen.as_str(), "{active}");

    // AND the evaluation says it was better but not activated because its
    // baseline changed, on the run, on its model and in the API
    let evaluation = done.evaluation.clone().unwrap();
    assert_eq!(
        evaluation.decision,
        Some(Decision::Better),
        "{}",
        done.phase
    );
    assert_eq!(
        evaluation.activation,
        Some(finetune::domain::ActivationDecision::BaselineChanged)
    );
    assert!(
        done.phase.contains("baseline changed, not activated"),
        "{}",
        done.phase
    );
    let (_, model) = call(
        &world,
        TENANT,
        "GET",
        &format!("/models/{}", ModelId::for_run(&second)),
    )
    .await;
    assert_eq!(model["active"], false, "{model}");
    assert_eq!(model["evaluation"]["decision"], "better");
    assert_eq!(model["evaluation"]["activation"], "baseline_changed");
    let (_, shown) = rows(&world, TENANT, &format!("/runs/{second}")).await;
    assert_eq!(shown["evaluation"]["activation"], "baseline_changed");
}

#[tokio::test]
async fn a_judge_outside_the_deployments_list_is_refused_at_post_with_the_field_and_the_rule() {
    // GIVEN a deployment with its default judges
    let world = world().await;

    // WHEN a tenant asks for a premium model as its run's judge
    let body = evaluated_run(json!({"judge_model": "o1-pro"}));
    let request = ApiEvent::post("/runs").tenant(TENANT).json(&body).build();
    let response = finetune::http::start_run_handler(
        &world.pipeline.store,
        &world.config,
        &world.pipeline.metrics,
        request,
    )
    .await;

    // THEN the request is refused as problem+json naming the field and the rule
    assert_eq!(response.status(), 400, "{:?}", response.body());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["field"], "config.evaluation.judge_model");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("is not an allowed judge for openai") && message.contains(BASE),
        "{message}"
    );
}

#[tokio::test]
async fn a_judge_whose_price_is_not_known_is_never_estimated_as_free() {
    // GIVEN a run accepted with an allowed judge, whose record names a
    // model of unknown price by the time it is evaluated (accepted before
    // the judges were listed)
    let world = world().await;
    seed(&world, 40).await;
    let id = start(&world, &evaluated_run(json!({"judge_model": BASE}))).await;
    let mut accepted = run(&world, &id).await;
    accepted.config.evaluation.judge_model = Some("o1-pro".into());
    world.pipeline.store.update_run(&accepted).await.unwrap();

    // WHEN the run is driven to its end
    let done = drive(&world, &id, 30).await;

    // THEN the evaluation is not run (no $0 estimate, no judge call): its
    // skip says which model has no known price
    assert_eq!(done.status, RunStatus::Completed, "{}", done.phase);
    let evaluation = done.evaluation.unwrap();
    assert_eq!(
        evaluation.status,
        EvaluationStatus::Skipped,
        "{evaluation:?}"
    );
    let reason = evaluation.reason.unwrap();
    assert!(reason.contains("no price is known for o1-pro"), "{reason}");
    assert_eq!(done.stats.unwrap().evaluation_estimated_cost_usd, None);
    assert!(
        !world
            .sandbox()
            .chat_calls_per_model()
            .contains_key("o1-pro"),
        "{:?}",
        world.sandbox().chat_calls_per_model()
    );
}
