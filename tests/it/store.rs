//! The records store against a real DynamoDB API (moto_server).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDate, Utc};
use finetune::domain::{
    DatasetFile, DatasetId, DatasetRecord, EventLevel, Filters, Hyperparameters, IdempotencyKey,
    NewRun, ProviderKind, Run, RunConfig, RunEvent, RunId, RunStatus, TenantId, TrainSplit,
};
use finetune::store::{CreateOutcome, IdempotentRequest, StoreError};
use finetune_tests::TestEnv;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn config() -> RunConfig {
    RunConfig {
        start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
        end_date: NaiveDate::from_ymd_opt(2026, 10, 31),
        base_model: "gpt-4o-mini-2024-07-18".into(),
        min_examples: 10,
        max_examples: 1000,
        train_split: TrainSplit::DEFAULT,
        system_prompt: Some("You are helpful.".into()),
        seed: 7,
        hyperparameters: Hyperparameters::default(),
        filters: Filters::default(),
        evaluation: Default::default(),
        activation: Default::default(),
        serving: Default::default(),
    }
}

fn new_run(t: &TenantId, name: &str) -> Run {
    Run::new_queued(
        NewRun {
            tenant_id: t.clone(),
            name: name.into(),
            description: None,
            provider: ProviderKind::OpenAi,
            config: config(),
            dataset_id: None,
            prepare_only: false,
        },
        Utc::now(),
    )
}

#[tokio::test]
async fn a_created_run_reads_back_identically() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let run = new_run(&t, "first");

    let created = env.store.create_run(&run, None).await.unwrap();

    assert_eq!(created, CreateOutcome::Created(run.clone()));
    assert_eq!(env.store.get_run(&t, &run.id).await.unwrap(), run);
}

#[tokio::test]
async fn two_concurrent_updates_of_one_run_one_wins_one_conflicts() {
    // GIVEN a stored run read by two writers at the same version
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let run = new_run(&t, "contended");
    env.store.create_run(&run, None).await.unwrap();
    let mut a = env.store.get_run(&t, &run.id).await.unwrap();
    let mut b = a.clone();
    a.move_to(RunStatus::Preparing, "monitor", Utc::now())
        .unwrap();
    b.move_to(RunStatus::Cancelled, "cancel", Utc::now())
        .unwrap();

    // WHEN both write at once
    let (ra, rb) = tokio::join!(env.store.update_run(&a), env.store.update_run(&b));

    // THEN exactly one wins and the other gets the typed conflict
    let results = [ra, rb];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    let loser = results.iter().find(|r| r.is_err()).unwrap();
    assert!(matches!(
        loser,
        Err(StoreError::VersionConflict { expected: 0, .. })
    ));
    let stored = env.store.get_run(&t, &run.id).await.unwrap();
    assert_eq!(stored.version, 1);
    let winner = results.into_iter().find_map(Result::ok).unwrap();
    assert_eq!(stored, winner);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_makes_one_run() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let key = IdempotencyKey::parse("req-123").unwrap();
    let request = IdempotentRequest {
        key: key.clone(),
        request_hash: "hash-a".into(),
    };
    let first = new_run(&t, "one");
    let second = new_run(&t, "one");

    let a = env.store.create_run(&first, Some(&request)).await.unwrap();
    let b = env.store.create_run(&second, Some(&request)).await.unwrap();

    assert!(matches!(a, CreateOutcome::Created(_)));
    assert_eq!(b, CreateOutcome::Replayed(first.clone()));
    let page = env.store.list_runs(&t, None, 100, None).await.unwrap();
    assert_eq!(page.items.len(), 1);

    // The same key with another request is refused and names the first run.
    let other = IdempotentRequest {
        key,
        request_hash: "hash-b".into(),
    };
    let err = env
        .store
        .create_run(&new_run(&t, "two"), Some(&other))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::IdempotencyMismatch { run_id, .. } if *run_id == first.id.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_converge_on_one_run() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let request = IdempotentRequest {
        key: IdempotencyKey::parse("burst").unwrap(),
        request_hash: "same".into(),
    };
    let runs: Vec<Run> = (0..5).map(|_| new_run(&t, "burst")).collect();
    let outcomes =
        futures::future::join_all(runs.iter().map(|r| env.store.create_run(r, Some(&request))))
            .await;
    let ids: std::collections::HashSet<_> = outcomes
        .into_iter()
        .map(|o| o.unwrap().run().id.clone())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        env.store
            .list_runs(&t, None, 100, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_runs() {
    let env = TestEnv::new().await;
    let acme = tenant("acme");
    let globex = tenant("globex");
    let mine = new_run(&acme, "mine");
    let theirs = new_run(&globex, "theirs");
    env.store.create_run(&mine, None).await.unwrap();
    env.store.create_run(&theirs, None).await.unwrap();

    let listed = env.store.list_runs(&acme, None, 100, None).await.unwrap();
    assert_eq!(listed.items, vec![mine.clone()]);
    let err = env.store.get_run(&acme, &theirs.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: "run", .. }));

    // A cursor lifted from another tenant's listing only pages within ours.
    let cursor = finetune::store::cursor::encode(&format!("RUN#{}", theirs.id));
    let page = env
        .store
        .list_runs(&acme, None, 100, Some(&cursor))
        .await
        .unwrap();
    assert!(page.items.iter().all(|r| r.tenant_id == acme));
}

#[tokio::test]
async fn pagination_returns_every_run_once_newest_first() {
    let env = TestEnv::new().await;
    let t = tenant("pager");
    let mut ids = Vec::new();
    for i in 0..23 {
        let run = new_run(&t, &format!("run {i}"));
        env.store.create_run(&run, None).await.unwrap();
        ids.push(run.id);
    }
    // A run of another tenant in the same table must not appear.
    env.store
        .create_run(&new_run(&tenant("other"), "x"), None)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = env
            .store
            .list_runs(&t, None, 5, cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 5);
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every run once, newest first");
    assert_eq!(pages, 5);
}

#[tokio::test]
async fn the_status_filter_pages_through_only_matching_runs() {
    let env = TestEnv::new().await;
    let t = tenant("filter");
    let mut cancelled = Vec::new();
    for i in 0..12 {
        let mut run = new_run(&t, &format!("r{i}"));
        env.store.create_run(&run, None).await.unwrap();
        if i % 3 == 0 {
            run.move_to(RunStatus::Cancelled, "cancelled", Utc::now())
                .unwrap();
            env.store.update_run(&run).await.unwrap();
            cancelled.push(run.id);
        }
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = env
            .store
            .list_runs(&t, Some(RunStatus::Cancelled), 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.iter().all(|r| r.status == RunStatus::Cancelled));
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    cancelled.reverse();
    assert_eq!(seen, cancelled);
}

#[tokio::test]
async fn a_forged_cursor_is_a_typed_error() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    for bad in [
        "not base64 !",
        &finetune::store::cursor::encode("DATASET#x"),
    ] {
        let err = env
            .store
            .list_runs(&t, None, 10, Some(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidCursor), "{bad}");
    }
}

#[tokio::test]
async fn the_active_index_holds_runs_until_they_are_terminal() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let mut a = new_run(&t, "a");
    let b = new_run(&t, "b");
    env.store.create_run(&a, None).await.unwrap();
    env.store.create_run(&b, None).await.unwrap();

    let active: Vec<RunId> = env
        .store
        .list_active_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(active, vec![a.id.clone(), b.id.clone()]);

    a.move_to(RunStatus::Preparing, "preparing", Utc::now())
        .unwrap();
    let mut a = env.store.update_run(&a).await.unwrap();
    assert_eq!(env.store.list_active_runs().await.unwrap().len(), 2);

    a.fail("no_data", "nothing to learn from", Utc::now())
        .unwrap();
    env.store.update_run(&a).await.unwrap();
    let active = env.store.list_active_runs().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].run_id, b.id);
    assert_eq!(active[0].tenant_id, t);
}

#[tokio::test]
async fn each_function_lists_only_its_own_runs_and_a_waiting_run_is_in_nobodys_list() {
    // GIVEN a queued run, one in training and one waiting for a slot
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let queued = new_run(&t, "queued");
    let mut training = new_run(&t, "training");
    training.status = RunStatus::Training;
    let mut waiting = new_run(&t, "waiting");
    waiting.status = RunStatus::Waiting;
    waiting.waiting = Some(finetune::domain::Waiting {
        pool: finetune::domain::fleet::PoolId::new(
            finetune::domain::ProviderKind::OpenAi,
            "gpt-4o-mini-2024-07-18",
        )
        .unwrap(),
        since: Utc::now(),
        reason: None,
    });
    for run in [&queued, &training, &waiting] {
        env.store.create_run(run, None).await.unwrap();
    }
    let listed = |wanted: &'static [RunStatus]| {
        let store = env.store.clone();
        async move {
            store
                .list_due_runs_in(|s| wanted.contains(&s), Utc::now())
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.run_id)
                .collect::<Vec<RunId>>()
        }
    };

    // WHEN each function's statuses are listed
    let prepare = listed(&[RunStatus::Queued, RunStatus::Preparing]).await;
    let monitor = listed(&[RunStatus::Uploading, RunStatus::Training]).await;
    let evaluate = listed(&[RunStatus::Evaluating]).await;

    // THEN each sees its own run, and nobody the waiting one
    assert_eq!(prepare, vec![queued.id.clone()]);
    assert_eq!(monitor, vec![training.id.clone()]);
    assert!(evaluate.is_empty());
    let all = env.store.list_active_runs().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|r| r.run_id != waiting.id));
    // and the waiting run is in its pool's queue instead
    let queue = env
        .store
        .list_waiting(waiting.waiting.as_ref().map(|w| &w.pool).unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
}

#[tokio::test]
async fn a_lease_excludes_other_owners_until_released_or_expired() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let run = new_run(&t, "leased");
    env.store.create_run(&run, None).await.unwrap();
    let now = Utc::now();
    let ttl = chrono::Duration::seconds(60);

    let mine = env
        .store
        .acquire_lease(&t, &run.id, "monitor-a", now, now + ttl)
        .await
        .unwrap();
    assert_eq!(mine.as_ref().map(|r| &r.id), Some(&run.id));
    let theirs = env
        .store
        .acquire_lease(&t, &run.id, "monitor-b", now, now + ttl)
        .await
        .unwrap();
    assert!(theirs.is_none());

    // Expired leases can be taken over.
    let later = now + chrono::Duration::seconds(61);
    let taken = env
        .store
        .acquire_lease(&t, &run.id, "monitor-b", later, later + ttl)
        .await
        .unwrap();
    assert!(taken.is_some());

    env.store
        .release_lease(&t, &run.id, "monitor-b")
        .await
        .unwrap();
    let again = env
        .store
        .acquire_lease(&t, &run.id, "monitor-a", now, now + ttl)
        .await
        .unwrap();
    assert!(again.is_some());
    // The lease does not bump the run's version: writers keep their version.
    assert_eq!(again.unwrap().version, 0);

    // Another tenant cannot lease it: the run is simply not there.
    let err = env
        .store
        .acquire_lease(&tenant("globex"), &run.id, "m", now, now + ttl)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
}

#[tokio::test]
async fn events_append_once_and_list_newest_first() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let run = new_run(&t, "timeline");
    let base = Utc::now();
    let mut written = Vec::new();
    for i in 0..7 {
        let e = RunEvent::pipeline(
            run.id.clone(),
            EventLevel::Info,
            "status_changed",
            format!("step {i}"),
            base + chrono::Duration::milliseconds(i * 10),
        );
        assert!(env.store.append_event(&t, &e).await.unwrap());
        written.push(e);
    }
    // The same event again is not stored twice.
    assert!(!env.store.append_event(&t, &written[0]).await.unwrap());

    let first = env.store.list_events(&t, &run.id, 4, None).await.unwrap();
    let second = env
        .store
        .list_events(&t, &run.id, 4, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert!(second.next_cursor.is_none());
    let listed: Vec<_> = first.items.into_iter().chain(second.items).collect();
    written.reverse();
    assert_eq!(listed, written);

    // Another tenant asking for the same run id sees an empty timeline.
    let theirs = env
        .store
        .list_events(&tenant("globex"), &run.id, 10, None)
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
}

#[tokio::test]
async fn the_monitor_reads_many_runs_in_batches_and_skips_vanished_ones() {
    // GIVEN 230 active runs of two tenants (three BatchGetItem pages)
    let env = TestEnv::new().await;
    let mut stored = Vec::new();
    for i in 0..230 {
        let t = tenant(if i % 2 == 0 { "acme" } else { "globex" });
        let run = new_run(&t, &format!("run {i}"));
        env.store.create_run(&run, None).await.unwrap();
        stored.push(run);
    }
    let mut keys = env.store.list_active_runs().await.unwrap();
    // and one key whose run does not exist
    keys.push(finetune::store::ActiveRun {
        tenant_id: tenant("acme"),
        run_id: RunId::generate(),
    });

    // WHEN they are read in one call
    let mut read = env.store.get_runs(&keys).await.unwrap();

    // THEN every stored run comes back exactly as stored, and nothing else
    read.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    stored.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(read, stored);
}

#[tokio::test]
async fn provider_events_written_twice_are_stored_once() {
    // GIVEN 30 provider events (two BatchWriteItem requests)
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let run = new_run(&t, "timeline");
    let base = Utc::now();
    let events: Vec<RunEvent> = (0..30)
        .map(|i| RunEvent {
            id: RunEvent::id_for_provider_event("openai", &format!("ftevent-{i}")),
            run_id: run.id.clone(),
            at: base + chrono::Duration::milliseconds(i),
            source: finetune::domain::EventSource::Provider,
            level: EventLevel::Info,
            kind: "message".into(),
            message: format!("Step {i}/30"),
            data: None,
        })
        .collect();

    // WHEN they are written, and written again (a poll that crashed before
    // recording its cursor)
    env.store.put_events(&t, &events).await.unwrap();
    env.store.put_events(&t, &events[20..]).await.unwrap();

    // THEN the timeline holds each once
    let listed = env.store.list_events(&t, &run.id, 100, None).await.unwrap();
    assert_eq!(listed.items.len(), 30);
    let mut expected = events.clone();
    expected.reverse();
    assert_eq!(listed.items, expected);
}

#[tokio::test]
async fn datasets_round_trip_and_update_conditionally() {
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let id = DatasetId::generate();
    let record = DatasetRecord {
        id: id.clone(),
        tenant_id: t.clone(),
        run_id: RunId::generate(),
        start_date: NaiveDate::from_ymd_opt(2026, 10, 1),
        end_date: NaiveDate::from_ymd_opt(2026, 10, 2),
        format: "openai-chat".into(),
        train: DatasetFile {
            key: format!("datasets/acme/{id}/train.jsonl"),
            sha256: "ab".repeat(32),
            bytes: 1234,
            examples: 10,
        },
        validation: None,
        manifest_key: format!("datasets/acme/{id}/manifest.json"),
        stats: serde_json::json!({"examples": 10, "tokens": {"mean": 12.5}}),
        provider_files: vec![],
        created_at: Utc::now(),
        version: 0,
    };
    env.store.put_dataset(&record).await.unwrap();
    assert!(matches!(
        env.store.put_dataset(&record).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(env.store.get_dataset(&t, &id).await.unwrap(), record);

    let mut changed = record.clone();
    changed.provider_files.push(finetune::domain::ProviderFile {
        provider: ProviderKind::OpenAi,
        sha256: record.train.sha256.clone(),
        provider_file_id: "file-abc".into(),
        uploaded_at: Utc::now(),
    });
    let stored = env.store.update_dataset(&changed).await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(
        stored.provider_file(ProviderKind::OpenAi, &record.train.sha256),
        Some("file-abc")
    );
    // A writer holding the old version is refused.
    assert!(matches!(
        env.store.update_dataset(&changed).await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert!(matches!(
        env.store.get_dataset(&tenant("globex"), &id).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn bad_ids_are_typed_errors_before_any_key_is_built() {
    // Keys can only be built from these types, so a bad id never reaches
    // DynamoDB or S3: it cannot even be constructed.
    for bad in ["a/b", "..", &"x".repeat(300), ""] {
        assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        assert!(RunId::parse(bad).is_err(), "{bad:?}");
        assert!(DatasetId::parse(bad).is_err(), "{bad:?}");
    }
    let err = TenantId::parse("").unwrap_err();
    assert_eq!(err.to_string(), "tenant_id: must not be empty");
    let err: StoreError = RunId::parse("run_../x").unwrap_err().into();
    assert!(matches!(err, StoreError::InvalidId(_)));
}

#[tokio::test]
async fn a_run_put_off_is_not_listed_until_it_is_due_and_a_write_makes_it_due_at_once() {
    // GIVEN two runs in training
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let mut early = new_run(&t, "early");
    early.status = RunStatus::Training;
    let mut later = new_run(&t, "later");
    later.status = RunStatus::Training;
    for run in [&early, &later] {
        env.store.create_run(run, None).await.unwrap();
    }
    let training = |run: &RunStatus| *run == RunStatus::Training;
    let due = |at: chrono::DateTime<Utc>| {
        let store = env.store.clone();
        async move {
            store
                .list_due_runs_in(|s| training(&s), at)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.run_id)
                .collect::<Vec<RunId>>()
        }
    };
    let now = Utc::now();
    assert_eq!(due(now).await.len(), 2);

    // WHEN one is put off ten minutes and the other five
    let later = env.store.get_run(&t, &later.id).await.unwrap();
    env.store
        .defer_run(&later, now + chrono::Duration::minutes(10))
        .await
        .unwrap();
    let early = env.store.get_run(&t, &early.id).await.unwrap();
    env.store
        .defer_run(&early, now + chrono::Duration::minutes(5))
        .await
        .unwrap();

    // THEN neither is due now, the earlier one first comes due, then both
    // in the order they fall due
    assert!(due(now).await.is_empty());
    assert_eq!(
        due(now + chrono::Duration::minutes(6)).await,
        vec![early.id.clone()]
    );
    assert_eq!(
        due(now + chrono::Duration::minutes(11)).await,
        vec![early.id.clone(), later.id.clone()]
    );
    // and putting off changed nothing of the run
    let stored = env.store.get_run(&t, &later.id).await.unwrap();
    assert_eq!(stored, later);

    // WHEN the later one is written (its job moved on)
    let mut moved = stored.clone();
    moved.phase = "training: step 10 of 100".into();
    moved.updated_at = Utc::now();
    let moved = env.store.update_run(&moved).await.unwrap();

    // THEN it is due at once
    assert_eq!(due(Utc::now()).await, vec![later.id.clone()]);

    // AND a deferral from a stale read does not put it off again
    env.store
        .defer_run(&stored, Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(due(Utc::now()).await, vec![moved.id.clone()]);
}

#[tokio::test]
async fn runs_indexed_before_due_times_are_still_listed_and_move_on_their_next_write() {
    // GIVEN a run in training indexed as the previous release did: under
    // its function's partition with the run id as the sort key
    let env = TestEnv::new().await;
    let t = tenant("acme");
    let mut training = new_run(&t, "from before");
    training.status = RunStatus::Training;
    env.store.create_run(&training, None).await.unwrap();
    env.dynamodb
        .update_item()
        .table_name(&env.table)
        .key("PK", AttributeValue::S(format!("TENANT#{t}")))
        .key("SK", AttributeValue::S(format!("RUN#{}", training.id)))
        .update_expression("SET active_sk = :old")
        .expression_attribute_values(":old", AttributeValue::S(training.id.to_string()))
        .send()
        .await
        .unwrap();

    let due_now = || async {
        env.store
            .list_due_runs_in(|s| s == RunStatus::Training, Utc::now())
            .await
            .unwrap()
    };

    // WHEN the monitor lists its due runs
    let due = due_now().await;

    // THEN the run is there, and once put off it is on the due key
    assert_eq!(due.len(), 1);
    let stored = env.store.get_run(&t, &training.id).await.unwrap();
    env.store
        .defer_run(&stored, Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    let due = due_now().await;
    assert!(due.is_empty(), "{due:?}");
}
