//! What a failing run tells its tenant: for every error a step can fail
//! with, the run's record (its `error`, its job's error, its timeline)
//! holds a stable code and a sentence for the tenant, never the ARNs of
//! our roles, secrets and resources or the account id that AWS's messages
//! carry. Run through the ledger and the local stack's table, as the
//! reconciler records a retry and a failure.
//!
//! [`variant`] names each error by a match with no wildcard, so adding a
//! variant to `PipelineError` (or to an error it wraps) does not compile
//! until it is named here, and [`every_error`] must then build one.

use std::collections::BTreeSet;

use finetune::blob::BlobError;
use finetune::dataset::PrepareError;
use finetune::dataset::dictionaries::DictionaryError;
use finetune::domain::{RunId, RunStatus, TenantId, TransitionError, tenant_text};
use finetune::pipeline::{Ledger, PipelineError};
use finetune::provider::ProviderError;
use finetune::store::StoreError;

use crate::pipeline::{run_body, start, world};
use crate::world::{TENANT, World, run};

/// What AWS says when a role may not read a secret: the role, the secret
/// and the account.
const DENIED: &str = "User: arn:aws:sts::123456789012:assumed-role/finetune-monitor/monitor-fn \
     is not authorized to perform: secretsmanager:GetSecretValue on resource: \
     arn:aws:secretsmanager:us-east-1:123456789012:secret:finetune/openai-AbCdEf because no \
     identity-based policy allows it (account 123456789012)";

fn source() -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(std::io::Error::other(DENIED))
}

fn json_error() -> serde_json::Error {
    serde_json::from_str::<serde_json::Value>("arn:aws:iam::123456789012:role/x").unwrap_err()
}

/// One blob error of each kind.
fn blob_errors() -> Vec<BlobError> {
    vec![
        BlobError::NotFound {
            key: "datasets/acme/ds_1/train.jsonl".into(),
        },
        BlobError::EmptyRange {
            start: chrono::NaiveDate::from_ymd_opt(2026, 10, 2).unwrap(),
            end: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
        },
        BlobError::BadJson {
            key: "runs/acme/run_1/evaluation/plan.json".into(),
            source: json_error(),
        },
        BlobError::S3 {
            op: "GetObject",
            key: "datasets/acme/ds_1/train.jsonl".into(),
            source: source(),
        },
    ]
}

/// One error of every kind, each carrying AWS's words where it has a
/// place for them. `corrupt` is a real `StoreError::Corrupt` (its source
/// cannot be built outside the store).
fn every_error(corrupt: StoreError) -> Vec<PipelineError> {
    let mut errors: Vec<PipelineError> = vec![
        StoreError::InvalidId(TenantId::parse("arn:aws:iam::123456789012:role/x").unwrap_err())
            .into(),
        StoreError::NotFound {
            kind: "dataset",
            id: "ds_0123456789abcdef0123456789abcdef".into(),
        }
        .into(),
        StoreError::VersionConflict {
            kind: "run",
            id: "run_1".into(),
            expected: 3,
        }
        .into(),
        StoreError::ConditionFailed {
            kind: "model",
            id: "mdl_1".into(),
        }
        .into(),
        StoreError::AlreadyExists {
            kind: "run",
            id: "run_1".into(),
        }
        .into(),
        StoreError::IdempotencyMismatch {
            key: "key-1".into(),
            run_id: "run_1".into(),
        }
        .into(),
        StoreError::InvalidCursor.into(),
        corrupt.into(),
        StoreError::Unprocessed {
            op: "BatchWriteItem",
            left: 3,
        }
        .into(),
        StoreError::Dynamo {
            op: "UpdateItem",
            source: source(),
        }
        .into(),
        ProviderError::RateLimited {
            retry_after: None,
            request_id: Some("req-1".into()),
        }
        .into(),
        ProviderError::InvalidRequest {
            message: format!("Value at 'roleArn' failed to satisfy constraint: {DENIED}"),
            param: Some("roleArn".into()),
            code: None,
            request_id: None,
        }
        .into(),
        ProviderError::FineTuningNotPermitted {
            message: DENIED.into(),
            request_id: None,
        }
        .into(),
        ProviderError::PermissionDenied {
            message: DENIED.into(),
            request_id: None,
        }
        .into(),
        ProviderError::Auth {
            message: DENIED.into(),
            request_id: None,
        }
        .into(),
        ProviderError::NotFound {
            what: "custom model deployment arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdefghijkl".into(),
            request_id: None,
        }
        .into(),
        ProviderError::Server {
            status: 503,
            message: DENIED.into(),
            request_id: None,
        }
        .into(),
        ProviderError::Transport(DENIED.into()).into(),
        ProviderError::Decode(DENIED.into()).into(),
        ProviderError::NotConfigured(format!("BEDROCK_ROLE_ARN {DENIED}")).into(),
        PrepareError::TooFewExamples {
            found: 4,
            required: 10,
        }
        .into(),
        PrepareError::NoDateRange.into(),
        PrepareError::InvalidSettings(format!("train_split {DENIED}")).into(),
        PrepareError::Io {
            path: "/tmp/arn:aws:s3:::bucket/123456789012".into(),
            source: std::io::Error::other(DENIED),
        }
        .into(),
        PrepareError::Manifest(json_error()).into(),
        PrepareError::Dictionary(DictionaryError::Damaged {
            encoding: "o200k_base",
            path: "/opt/arn:aws:lambda:us-east-1:123456789012:layer:dictionaries:3".into(),
            reason: DENIED.into(),
        })
        .into(),
        PrepareError::OutOfTime {
            files_read: 3,
            files: 9,
            bytes_read: 1_000_000,
        }
        .into(),
        PrepareError::ShardIndex(DENIED.into()).into(),
        // 100 GiB and more: byte counts with an account id's 12 digits.
        PrepareError::TooLarge {
            bytes: 123_456_789_012,
            effective: 740_740_734_072,
            files: 4,
            limit: 68_719_476_736,
        }
        .into(),
        PrepareError::MergeMemory {
            conversations: 5_000_000,
            examples: 4_000_000,
            needed_mib: 520.0,
            budget_mib: 1536.0,
        }
        .into(),
        PrepareError::ShardFailed {
            shard: 3,
            shards: 40,
            attempts: 3,
            code: "dataset_io".into(),
            message: DENIED.into(),
        }
        .into(),
        PrepareError::ShardsStalled {
            missing: 2,
            shards: 40,
            first: 7,
            minutes: 30,
        }
        .into(),
        PrepareError::MergeTooLarge {
            shards: 40,
            bytes: 123_456_789_012,
            attempts: 3,
        }
        .into(),
        PrepareError::NoReadableExports {
            total: 1,
            refused: vec![finetune::dataset::shard::RefusedFile {
                key: "conversations/acme/2026/10/01/a.jsonl.gz".into(),
                reason: "truncated_gzip".into(),
            }],
        }
        .into(),
        PipelineError::Transition(TransitionError {
            run_id: "run_1".into(),
            from: RunStatus::Completed,
            to: RunStatus::Training,
        }),
        PipelineError::Inconsistent(format!("training without a job {DENIED}")),
        PipelineError::DeploymentFailed {
            deployment: "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdefghijkl"
                .into(),
            reason: format!("Insufficient capacity. {DENIED}"),
        },
        PipelineError::DeploymentStopped {
            model_id: "mdl_0123456789abcdef0123456789abcdef".into(),
        },
        PipelineError::EvaluationFailed(DENIED.into()),
        PipelineError::DatasetFormatMismatch {
            dataset_id: "ds_0123456789abcdef0123456789abcdef".into(),
            found: "openai-chat".into(),
            needed: "bedrock-conversation-2024",
            provider: "bedrock",
        },
        PipelineError::Budget(finetune::domain::fleet::BudgetExceeded::EstimateAboveCap {
            estimate: finetune::domain::fleet::Usd::from_dollars(60.0),
            cap: finetune::domain::fleet::Usd::from_dollars(50.0),
        }),
        PipelineError::Budget(finetune::domain::fleet::BudgetExceeded::PriceUnknown {
            cap: finetune::domain::fleet::Usd::from_dollars(50.0),
        }),
    ];
    for blob in blob_errors() {
        errors.push(PipelineError::EvaluationStorage(blob));
    }
    for blob in blob_errors() {
        errors.push(ProviderError::Blob(blob).into());
    }
    for blob in blob_errors() {
        errors.push(PrepareError::Blob(blob).into());
    }
    errors
}

/// The variant's name, through every wrapped error: no wildcard, so a new
/// variant is a compile error here until it is named (and built above).
fn variant(error: &PipelineError) -> String {
    fn blob(e: &BlobError) -> &'static str {
        match e {
            BlobError::NotFound { .. } => "NotFound",
            BlobError::EmptyRange { .. } => "EmptyRange",
            BlobError::BadJson { .. } => "BadJson",
            BlobError::S3 { .. } => "S3",
        }
    }
    match error {
        PipelineError::Store(e) => format!(
            "Store::{}",
            match e {
                StoreError::InvalidId(_) => "InvalidId",
                StoreError::NotFound { .. } => "NotFound",
                StoreError::VersionConflict { .. } => "VersionConflict",
                StoreError::ConditionFailed { .. } => "ConditionFailed",
                StoreError::AlreadyExists { .. } => "AlreadyExists",
                StoreError::IdempotencyMismatch { .. } => "IdempotencyMismatch",
                StoreError::InvalidCursor => "InvalidCursor",
                StoreError::Corrupt { .. } => "Corrupt",
                StoreError::Unprocessed { .. } => "Unprocessed",
                StoreError::Dynamo { .. } => "Dynamo",
            }
        ),
        PipelineError::Provider(e) => match e {
            ProviderError::RateLimited { .. } => "Provider::RateLimited".into(),
            ProviderError::InvalidRequest { .. } => "Provider::InvalidRequest".into(),
            ProviderError::FineTuningNotPermitted { .. } => {
                "Provider::FineTuningNotPermitted".into()
            }
            ProviderError::PermissionDenied { .. } => "Provider::PermissionDenied".into(),
            ProviderError::Auth { .. } => "Provider::Auth".into(),
            ProviderError::NotFound { .. } => "Provider::NotFound".into(),
            ProviderError::Server { .. } => "Provider::Server".into(),
            ProviderError::Transport(_) => "Provider::Transport".into(),
            ProviderError::Decode(_) => "Provider::Decode".into(),
            ProviderError::NotConfigured(_) => "Provider::NotConfigured".into(),
            ProviderError::Blob(b) => format!("Provider::Blob::{}", blob(b)),
        },
        PipelineError::Prepare(e) => match e {
            PrepareError::TooFewExamples { .. } => "Prepare::TooFewExamples".into(),
            PrepareError::NoDateRange => "Prepare::NoDateRange".into(),
            PrepareError::InvalidSettings(_) => "Prepare::InvalidSettings".into(),
            PrepareError::Blob(b) => format!("Prepare::Blob::{}", blob(b)),
            PrepareError::Io { .. } => "Prepare::Io".into(),
            PrepareError::Manifest(_) => "Prepare::Manifest".into(),
            PrepareError::Dictionary(_) => "Prepare::Dictionary".into(),
            PrepareError::OutOfTime { .. } => "Prepare::OutOfTime".into(),
            PrepareError::ShardIndex(_) => "Prepare::ShardIndex".into(),
            PrepareError::TooLarge { .. } => "Prepare::TooLarge".into(),
            PrepareError::MergeMemory { .. } => "Prepare::MergeMemory".into(),
            PrepareError::ShardFailed { .. } => "Prepare::ShardFailed".into(),
            PrepareError::ShardsStalled { .. } => "Prepare::ShardsStalled".into(),
            PrepareError::MergeTooLarge { .. } => "Prepare::MergeTooLarge".into(),
            PrepareError::NoReadableExports { .. } => "Prepare::NoReadableExports".into(),
        },
        PipelineError::Transition(_) => "Transition".into(),
        PipelineError::Inconsistent(_) => "Inconsistent".into(),
        PipelineError::DeploymentFailed { .. } => "DeploymentFailed".into(),
        PipelineError::DeploymentStopped { .. } => "DeploymentStopped".into(),
        PipelineError::EvaluationStorage(b) => format!("EvaluationStorage::{}", blob(b)),
        PipelineError::EvaluationFailed(_) => "EvaluationFailed".into(),
        PipelineError::DatasetFormatMismatch { .. } => "DatasetFormatMismatch".into(),
        PipelineError::Budget(e) => match e {
            finetune::domain::fleet::BudgetExceeded::EstimateAboveCap { .. } => {
                "Budget::EstimateAboveCap".into()
            }
            finetune::domain::fleet::BudgetExceeded::PriceUnknown { .. } => {
                "Budget::PriceUnknown".into()
            }
        },
    }
}

/// Variants whose sentence passes on words about the tenant's own run
/// (a request the provider refused, why its deployment failed, our own
/// validation's rule): the store's scrubber is their wall. Every other
/// sentence names nothing of ours even before it.
const PASSES_WORDS_ON: [&str; 3] = [
    "Provider::InvalidRequest",
    "DeploymentFailed",
    "Prepare::InvalidSettings",
];

/// A real `Corrupt`: a model record the store cannot read, holding an
/// ARN where its status belongs.
async fn corrupt(world: &World) -> StoreError {
    let model = format!("mdl_{}", &RunId::generate().as_str()[4..]);
    world
        .env
        .dynamodb
        .put_item()
        .table_name(&world.env.table)
        .item("PK", attr(&format!("TENANT#{TENANT}")))
        .item("SK", attr(&format!("MODEL#{model}")))
        .item(
            "status",
            attr("arn:aws:iam::123456789012:role/finetune-monitor"),
        )
        .send()
        .await
        .unwrap();
    let id = finetune::domain::ModelId::parse(&model).unwrap();
    world
        .pipeline
        .store
        .get_model(&TenantId::parse(TENANT).unwrap(), &id)
        .await
        .unwrap_err()
}

fn attr(value: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(value.to_owned())
}

#[tokio::test]
async fn no_error_a_run_fails_with_puts_an_arn_or_an_account_id_on_its_record() {
    // GIVEN one error of every kind, each carrying AWS's words about our
    // roles, secrets and account where it has room for them
    let world = world().await;
    let corrupt = corrupt(&world).await;
    assert!(matches!(corrupt, StoreError::Corrupt { .. }), "{corrupt:?}");
    let errors = every_error(corrupt);
    let named: BTreeSet<String> = errors.iter().map(variant).collect();
    assert_eq!(
        named.len(),
        errors.len(),
        "one error per variant: {named:?}"
    );
    let ledger = Ledger::new(world.pipeline.store.clone(), world.pipeline.metrics.clone());

    for error in &errors {
        let name = variant(error);
        // WHEN a run records it as a retry, and then as its failure
        let id = start(&world, &run_body(10)).await;
        let queued = run(&world, &id).await;
        let retried = ledger.record_retry(queued, error).await.unwrap();
        let failed = ledger.record_failure(retried, error).await.unwrap();

        // THEN the run carries the error's code and a sentence, and
        // neither the run nor its timeline names an ARN or an account id
        let stored = run(&world, &id).await;
        assert_eq!(stored.status, RunStatus::Failed, "{name}");
        let recorded = stored.error.clone().unwrap();
        assert_eq!(recorded, failed.error.unwrap(), "{name}");
        assert_eq!(recorded.code, error.code(), "{name}");
        assert!(!recorded.message.is_empty(), "{name}");
        let events = world
            .pipeline
            .store
            .list_events(&TenantId::parse(TENANT).unwrap(), &id, 100, None)
            .await
            .unwrap()
            .items;
        assert!(events.len() >= 2, "{name}: {events:?}");
        let json = serde_json::to_string(&stored).unwrap();
        for text in std::iter::once(json).chain(events.into_iter().map(|e| e.message)) {
            assert!(
                !tenant_text::needs_scrubbing(&text),
                "{name} put an ARN or an account id on the record: {text}"
            );
        }

        // AND the sentence was written for the tenant before any scrubbing,
        // but for the variants that pass the provider's words on
        if !PASSES_WORDS_ON.contains(&name.as_str()) {
            let sentence = error.tenant_sentence();
            assert!(
                !tenant_text::needs_scrubbing(&sentence),
                "{name}'s sentence names our internals: {sentence}"
            );
        }
    }
}

#[tokio::test]
async fn a_provider_jobs_error_is_scrubbed_before_it_reaches_the_run() {
    // GIVEN a run whose provider job failed with AWS's words
    let world = world().await;
    let id = start(&world, &run_body(10)).await;
    let mut failing = run(&world, &id).await;
    failing.job = Some(finetune::domain::JobInfo {
        provider_job_id: "ft-run-1".into(),
        status: finetune::domain::JobStatus::Failed,
        provider_status: "Failed".into(),
        fine_tuned_model: None,
        trained_tokens: None,
        error: Some(DENIED.into()),
        estimated_finish: None,
        finished_at: None,
        synced_at: chrono::Utc::now(),
        events_cursor: None,
        step: None,
        total_steps: None,
    });
    failing
        .fail(
            "provider_job_failed",
            format!("job ft-run-1 failed: {DENIED}"),
            chrono::Utc::now(),
        )
        .unwrap();

    // WHEN it is recorded
    world.pipeline.store.update_run(&failing).await.unwrap();

    // THEN neither the job's error nor the run's names the role, the
    // secret or the account, and the sentence around them is kept
    let stored = run(&world, &id).await;
    let job_error = stored.job.unwrap().error.unwrap();
    let message = stored.error.unwrap().message;
    for text in [&job_error, &message] {
        assert!(!tenant_text::needs_scrubbing(text), "{text}");
        assert!(text.contains("is not authorized to perform"), "{text}");
    }
}
