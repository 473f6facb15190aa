//! The Bedrock adapter's deployments ([`ModelServing`] on `BedrockJobs`)
//! against the local stack's custom model deployments: one per run, found
//! again after a crash, a failure reported with Bedrock's reason, and a
//! delete that lets the custom model go after it.

use finetune::domain::{RunId, TenantId};
use finetune::provider::bedrock::BedrockJobs;
use finetune::provider::serving::{DeploymentStatus, ModelServing};
use finetune::provider::{JobControl, JobTags};
use finetune_tests::bedrock_model_knobs;
use serde_json::json;

use crate::bedrock_serving::trained;

fn tags() -> JobTags {
    JobTags {
        tenant_id: TenantId::parse("acme").unwrap(),
        run_id: RunId::generate(),
    }
}

#[tokio::test]
async fn a_runs_deployment_is_created_once_and_found_again_after_a_crash() {
    // GIVEN a custom model whose job completed, and the adapter
    let trained = trained(true).await;
    let adapter = BedrockJobs::new(trained.bedrock.clone());
    let run = tags();

    // WHEN the run deploys it, crashes before recording the answer, and
    // deploys again
    let first = adapter.deploy(&trained.model_arn, &run).await.unwrap();
    let again = adapter.deploy(&trained.model_arn, &run).await.unwrap();

    // THEN both name the same deployment, an ARN as AWS writes it, and the
    // account holds exactly one
    assert_eq!(first.id, again.id);
    assert!(
        first
            .id
            .starts_with("arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/"),
        "{}",
        first.id
    );
    let listed = trained
        .bedrock
        .list_custom_model_deployments()
        .name_contains(run.run_id.as_str().replace('_', "-"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.model_deployment_summaries().len(), 1);

    // AND it carries the tenant and the run as tags
    let tags = trained
        .bedrock
        .list_tags_for_resource()
        .resource_arn(&first.id)
        .send()
        .await
        .unwrap();
    let tag = |key: &str| {
        tags.tags()
            .iter()
            .find(|t| t.key() == key)
            .map(|t| t.value().to_owned())
    };
    assert_eq!(tag("tenant_id").as_deref(), Some("acme"));
    assert_eq!(tag("run_id").as_deref(), Some(run.run_id.as_str()));

    // AND it is followed until it serves
    let mut status = first.status;
    for _ in 0..5 {
        if status == DeploymentStatus::Active {
            break;
        }
        assert_eq!(status, DeploymentStatus::Creating);
        status = adapter.deployment(&first.id).await.unwrap().status;
    }
    assert_eq!(status, DeploymentStatus::Active);
}

#[tokio::test]
async fn a_failed_deployment_reports_bedrocks_reason() {
    // GIVEN a custom model Bedrock will fail to deploy
    let trained = trained(true).await;
    bedrock_model_knobs(
        &trained.model_arn,
        json!({"failNextDeployment": "Insufficient capacity for on-demand deployment."}),
    )
    .await
    .unwrap();
    let adapter = BedrockJobs::new(trained.bedrock.clone());

    // WHEN it is deployed and followed
    let deployment = adapter.deploy(&trained.model_arn, &tags()).await.unwrap();
    let mut now = deployment.clone();
    for _ in 0..5 {
        if now.status != DeploymentStatus::Creating {
            break;
        }
        now = adapter.deployment(&deployment.id).await.unwrap();
    }

    // THEN it ends Failed, in Bedrock's words
    assert_eq!(now.status, DeploymentStatus::Failed);
    assert_eq!(now.provider_status, "Failed");
    assert_eq!(
        now.failure.as_deref(),
        Some("Insufficient capacity for on-demand deployment.")
    );
}

#[tokio::test]
async fn deleting_the_deployment_lets_the_custom_model_be_deleted() {
    // GIVEN a deployed custom model
    let trained = trained(true).await;
    let adapter = BedrockJobs::new(trained.bedrock.clone());
    let deployment = adapter.deploy(&trained.model_arn, &tags()).await.unwrap();

    // WHEN the model is deleted while deployed, Bedrock refuses
    let refused = adapter.delete_model(&trained.model_arn).await.unwrap_err();
    assert_eq!(refused.code(), "provider_invalid_request", "{refused}");

    // AND once the deployment is deleted (twice: a retry is not an error),
    // the model can be
    adapter.delete_deployment(&deployment.id).await.unwrap();
    adapter.delete_deployment(&deployment.id).await.unwrap();
    let gone = adapter.deployment(&deployment.id).await.unwrap_err();
    assert_eq!(gone.code(), "provider_not_found", "{gone}");
    adapter.delete_model(&trained.model_arn).await.unwrap();
}
