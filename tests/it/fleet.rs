//! The fleet against the local stack: admission into pools of provider
//! slots, fair share, spend caps, the release on every terminal path, the
//! reaper, and a busy provider waited out rather than counted out.

use chrono::{DateTime, NaiveDate, Utc};
use finetune::domain::fleet::{FleetSettings, PoolId, TenantLimits, Usd};
use finetune::domain::{
    Filters, Hyperparameters, NewRun, ProviderKind, Run, RunConfig, RunStats, RunStatus, TenantId,
    TrainSplit, Waiting,
};
use finetune::metrics::Metrics;
use finetune::pipeline::Ledger;
use finetune_tests::TestEnv;
use openai_sandbox::Fault;

use crate::pipeline::{run_body, seed, start, world_configured};
use crate::world::{run, tick};

const MODEL: &str = "gpt-4o-mini-2024-07-18";

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn pool() -> PoolId {
    PoolId::new(ProviderKind::OpenAi, MODEL).unwrap()
}

fn ledger(env: &TestEnv, budget: u32, limits: TenantLimits) -> Ledger {
    let mut fleet = FleetSettings::default();
    fleet.pool_budgets.insert("openai".into(), budget);
    fleet.tenant_default = limits;
    fleet.polling = finetune::domain::fleet::PollPolicy::every_tick();
    Ledger::new(env.store.clone(), Metrics::discard()).with_fleet(fleet)
}

fn unlimited() -> TenantLimits {
    TenantLimits {
        max_in_flight: 100,
        monthly_cap: None,
    }
}

/// A prepared run of `tenant` waiting in the gpt-4o-mini pool since
/// `minute` minutes past a fixed hour, estimated at `cost` dollars.
async fn waiting_run(env: &TestEnv, tenant: &TenantId, minute: i64, cost: f64) -> Run {
    let since = DateTime::from_timestamp(1_796_000_000 + minute * 60, 0).unwrap();
    let mut run = Run::new_queued(
        NewRun {
            tenant_id: tenant.clone(),
            name: format!("run {minute}"),
            description: None,
            provider: ProviderKind::OpenAi,
            config: RunConfig {
                start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
                end_date: NaiveDate::from_ymd_opt(2026, 10, 31),
                base_model: MODEL.into(),
                min_examples: 10,
                max_examples: 1000,
                train_split: TrainSplit::DEFAULT,
                system_prompt: None,
                seed: 7,
                hyperparameters: Hyperparameters::default(),
                filters: Filters::default(),
                evaluation: Default::default(),
                activation: Default::default(),
                serving: Default::default(),
            },
            dataset_id: None,
            prepare_only: false,
        },
        since,
    );
    run.status = RunStatus::Waiting;
    run.waiting = Some(Waiting {
        pool: pool(),
        since,
        reason: None,
    });
    run.stats = Some(RunStats {
        train_tokens: 1000,
        estimated_cost_usd: cost,
        ..Default::default()
    });
    env.store.create_run(&run, None).await.unwrap();
    env.store.register_pool(&pool()).await.unwrap();
    run
}

fn december() -> DateTime<Utc> {
    "2026-12-07T10:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn given_twelve_waiting_runs_when_eight_admission_passes_overlap_then_the_pool_never_holds_more_than_its_budget()
 {
    let env = TestEnv::new().await;
    for i in 0..12 {
        waiting_run(&env, &tenant(&format!("t{}", i % 4)), i, 1.0).await;
    }
    let ledger = ledger(&env, 2, unlimited());

    let passes = (0..8).map(|_| ledger.admit_waiting(december()));
    let summaries = futures::future::join_all(passes).await;

    let admitted: usize = summaries.into_iter().map(|s| s.unwrap().admitted).sum();
    let state = env.store.get_pool(&pool()).await.unwrap();
    assert_eq!(admitted, 2, "admissions over all passes");
    assert_eq!(state.holders.len(), 2);
    // Two different tenants got the two slots (fair share).
    assert_ne!(state.holders[0].0, state.holders[1].0);
}

#[tokio::test]
async fn every_way_a_run_ends_gives_its_slot_and_its_tenants_place_back_once() {
    let env = TestEnv::new().await;
    let ledger = ledger(&env, 3, unlimited());
    let t = tenant("acme");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(waiting_run(&env, &t, i, 2.0).await.id);
    }
    assert_eq!(ledger.admit_waiting(december()).await.unwrap().admitted, 3);
    assert_eq!(
        env.store
            .tenant_usage(&t, finetune::domain::fleet::Month::of(december()))
            .await
            .unwrap()
            .in_flight,
        3
    );

    // WHEN one fails, one is cancelled and one is back to waiting
    for (id, end) in ids
        .iter()
        .zip([RunStatus::Failed, RunStatus::Cancelled, RunStatus::Waiting])
    {
        let mut r = env.store.get_run(&t, id).await.unwrap();
        if end == RunStatus::Waiting {
            r.waiting = Some(Waiting {
                pool: pool(),
                since: r.created_at,
                reason: None,
            });
        }
        r.move_to(end, end.as_str(), Utc::now()).unwrap();
        let stored = env.store.update_run(&r).await.unwrap();
        let admission = stored.admission.unwrap();
        assert!(!admission.slot_held && !admission.tenant_held, "{end}");
        // A stale repeat of the same write is refused, never released twice.
        assert!(env.store.update_run(&r).await.is_err());
    }

    // THEN nothing is held and nothing was spent (no job was created)
    let state = env.store.get_pool(&pool()).await.unwrap();
    assert!(state.holders.is_empty(), "{state:?}");
    let usage = env
        .store
        .tenant_usage(&t, finetune::domain::fleet::Month::of(december()))
        .await
        .unwrap();
    assert_eq!(usage.in_flight, 0);
    assert_eq!(usage.spent(), Usd::ZERO);
}

#[tokio::test]
async fn given_a_cap_that_holds_one_of_two_runs_then_one_is_admitted_and_the_other_waits_for_the_next_month()
 {
    let env = TestEnv::new().await;
    let ledger = ledger(
        &env,
        5,
        TenantLimits {
            max_in_flight: 5,
            monthly_cap: Some(Usd::from_dollars(50.0)),
        },
    );
    let t = tenant("acme");
    let first = waiting_run(&env, &t, 0, 30.0).await;
    let second = waiting_run(&env, &t, 1, 30.0).await;

    let summary = ledger.admit_waiting(december()).await.unwrap();

    assert_eq!(summary.admitted, 1);
    let first = env.store.get_run(&t, &first.id).await.unwrap();
    let waiting = env.store.get_run(&t, &second.id).await.unwrap();
    assert_eq!(first.status, RunStatus::Uploading);
    assert_eq!(waiting.status, RunStatus::Waiting);
    assert!(
        waiting
            .phase
            .starts_with("waiting for budget (needs $30.00, $20.00 left this month"),
        "{}",
        waiting.phase
    );
    // WHEN the month turns THEN the second is admitted.
    let january: DateTime<Utc> = "2027-01-01T00:05:00Z".parse().unwrap();
    assert_eq!(ledger.admit_waiting(january).await.unwrap().admitted, 1);
    let second = env.store.get_run(&t, &second.id).await.unwrap();
    assert_eq!(second.status, RunStatus::Uploading);
    assert_eq!(second.admission.unwrap().month.to_string(), "2027-01");
}

#[tokio::test]
async fn a_run_whose_estimate_alone_is_above_the_cap_fails_with_budget_exceeded() {
    let env = TestEnv::new().await;
    let ledger = ledger(
        &env,
        5,
        TenantLimits {
            max_in_flight: 5,
            monthly_cap: Some(Usd::from_dollars(10.0)),
        },
    );
    let t = tenant("acme");
    let run = waiting_run(&env, &t, 0, 30.0).await;

    let summary = ledger.admit_waiting(december()).await.unwrap();

    assert_eq!(summary.refused, 1);
    let run = env.store.get_run(&t, &run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().code, "budget_exceeded");
}

#[tokio::test]
async fn the_reaper_reclaims_the_slot_of_a_run_failed_by_hand() {
    let env = TestEnv::new().await;
    let ledger = ledger(&env, 1, unlimited());
    let t = tenant("acme");
    let held = waiting_run(&env, &t, 0, 1.0).await;
    let next = waiting_run(&env, &t, 1, 1.0).await;
    assert_eq!(ledger.admit_waiting(december()).await.unwrap().admitted, 1);

    // GIVEN an operator failed the holder by writing its record directly
    env.dynamodb
        .update_item()
        .table_name(&env.table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{t}")),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("RUN#{}", held.id)),
        )
        .update_expression("SET #s = :failed")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(
            ":failed",
            aws_sdk_dynamodb::types::AttributeValue::S("failed".into()),
        )
        .send()
        .await
        .unwrap();
    // (its admission record still says it holds the slot: the reaper
    // goes by the status too)
    let summary = ledger.admit_waiting(december()).await.unwrap();

    assert_eq!(summary.reclaimed, 1, "{summary:?}");
    assert_eq!(summary.admitted, 1);
    let next = env.store.get_run(&t, &next.id).await.unwrap();
    assert_eq!(next.status, RunStatus::Uploading);
}

#[tokio::test]
async fn given_thirty_ticks_of_429_on_job_creation_the_run_waits_and_then_completes() {
    let world = world_configured(crate::pipeline::quick_sandbox(), |p| p, |a| a, &[]).await;
    seed(&world, 40).await;
    let id = start(&world, &run_body(10)).await;
    // Four answers a tick: the client's own three retries and the call.
    world
        .sandbox()
        .inject(Fault::rate_limited("POST", "/fine_tuning/jobs", "0", 120));

    let mut seen_waiting = 0;
    for _ in 0..30 {
        tick(&world).await;
        let r = run(&world, &id).await;
        assert_ne!(r.status, RunStatus::Failed, "{:?}", r.error);
        if r.status == RunStatus::Waiting {
            seen_waiting += 1;
        }
    }
    assert!(
        seen_waiting >= 25,
        "back to waiting on {seen_waiting} of 30 ticks"
    );
    let done = crate::world::drive(&world, &id, 30).await;

    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(
        world.sandbox().jobs().len(),
        1,
        "one job, whatever the 429s"
    );
    let state = world.pipeline.store.get_pool(&pool()).await.unwrap();
    assert!(state.holders.is_empty());
}

#[tokio::test]
async fn given_twenty_five_ticks_of_429_while_training_the_run_still_completes() {
    let world = world_configured(crate::pipeline::quick_sandbox(), |p| p, |a| a, &[]).await;
    seed(&world, 40).await;
    let id = start(&world, &run_body(10)).await;
    let mut r = run(&world, &id).await;
    for _ in 0..20 {
        if r.status == RunStatus::Training {
            break;
        }
        tick(&world).await;
        r = run(&world, &id).await;
    }
    assert_eq!(r.status, RunStatus::Training, "{r:?}");
    let job = r.job.unwrap().provider_job_id;
    world
        .sandbox()
        .inject(Fault::rate_limited("GET", &job, "0", 100));

    for _ in 0..25 {
        tick(&world).await;
        assert_ne!(run(&world, &id).await.status, RunStatus::Failed);
    }
    world.sandbox().clear_faults();
    let done = crate::world::drive(&world, &id, 30).await;

    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
}

#[tokio::test]
async fn a_completed_run_settles_what_its_job_billed_in_place_of_its_estimate() {
    // GIVEN a run that goes all the way through
    let world = world_configured(crate::pipeline::quick_sandbox(), |p| p, |a| a, &[]).await;
    seed(&world, 40).await;
    let id = start(&world, &run_body(10)).await;

    // WHEN it completes
    let done = crate::world::drive(&world, &id, 40).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);

    // THEN the month's spend is the billed tokens at gpt-4o-mini's
    // training price plus what the evaluation's calls billed (not its
    // estimate, an upper bound), nothing held
    let tokens = done.job.as_ref().and_then(|j| j.trained_tokens).unwrap();
    let estimate = done
        .stats
        .as_ref()
        .and_then(|s| s.evaluation_estimated_cost_usd)
        .unwrap();
    let evaluation = done
        .evaluation
        .as_ref()
        .and_then(|e| e.cost_usd)
        .expect("a completed evaluation's cost");
    assert!(
        evaluation > 0.0 && evaluation <= estimate,
        "{evaluation} against the estimate {estimate}"
    );
    let admission = done.admission.clone().unwrap();
    let billed = admission.cost.expect("the training's billed cost");
    let training = Usd::from_dollars(tokens as f64 * 3.0 / 1_000_000.0);
    assert!(
        billed.micros().abs_diff(training.micros()) <= 1,
        "{} against {}",
        billed.micros(),
        training.micros()
    );
    let usage = world
        .pipeline
        .store
        .tenant_usage(&done.tenant_id, admission.month)
        .await
        .unwrap();
    assert_eq!(
        usage.settled,
        billed.saturating_add(Usd::from_dollars(evaluation))
    );
    assert_eq!(usage.reserved, Usd::ZERO);
    assert_eq!(usage.in_flight, 0);
}
