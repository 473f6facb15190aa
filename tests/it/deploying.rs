//! A Bedrock run that ends while its model is being deployed, on every
//! path out of `deploying` (cancelled, retries run out, a permanent
//! provider error, a failed deployment, an end interrupted by a crash):
//! its model ends `failed`, the local stack's Bedrock holds no deployment
//! of it any more (a deployment bills for as long as it exists), and
//! `DELETE /models/{id}` retires the model.
//!
//! Faults are injected at the provider port ([`Faulty`]) over the real
//! adapter and the local stack: the deployment is really created before
//! the injected error, as when Bedrock answers a later call badly.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use finetune::domain::{
    ModelId, ModelStatus, RunId, RunStatus, TenantId, curve::MetricPoint, tenant_text,
};
use finetune::provider::bedrock::names;
use finetune::provider::serving::{Deployment, ModelServing};
use finetune::provider::weights::ModelWeights;
use finetune::provider::{
    CreateJob, DatasetFileSource, FineTuningProvider, JobControl, JobTags, ProviderCheckpoint,
    ProviderError, ProviderEvent, ProviderFileRef, ProviderJob,
};
use finetune_tests::ApiEvent;
use serde_json::json;

use crate::bedrock::{finish_job, get_model, seed, start, world_wrapped};
use crate::models::call;
use crate::world::{TENANT, World, drive_to, run, tick};

/// What the AWS SDK says when a role may not call Bedrock: the role's
/// ARN, the resource's, and the account id in both.
const DENIED: &str = "User: arn:aws:sts::123456789012:assumed-role/finetune-monitor/monitor-fn \
     is not authorized to perform: bedrock:GetCustomModelDeployment on resource: \
     arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdefghijkl because no \
     identity-based policy allows the bedrock:GetCustomModelDeployment action";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    /// A 503 naming our resources (retried).
    Unavailable,
    /// Access denied naming our role (never retried).
    Denied,
}

/// The real Bedrock adapter whose `deploy` answers [`Fault`] after doing
/// its real work; every other call passes straight through.
struct Faulty {
    inner: Arc<dyn FineTuningProvider>,
    fault: Mutex<Fault>,
}

impl Faulty {
    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    fn serving_inner(&self) -> &dyn ModelServing {
        self.inner.serving().unwrap()
    }
}

#[async_trait]
impl ModelServing for Faulty {
    async fn deploy(&self, model: &str, tags: &JobTags) -> Result<Deployment, ProviderError> {
        let deployment = self.serving_inner().deploy(model, tags).await?;
        let fault = *self.fault.lock().unwrap();
        match fault {
            Fault::None => Ok(deployment),
            Fault::Unavailable => Err(ProviderError::Server {
                status: 503,
                message: format!("service unavailable for {}", deployment.id),
                request_id: None,
            }),
            Fault::Denied => Err(ProviderError::PermissionDenied {
                message: DENIED.into(),
                request_id: None,
            }),
        }
    }
    async fn deployment(&self, id: &str) -> Result<Deployment, ProviderError> {
        self.serving_inner().deployment(id).await
    }
    async fn delete_deployment(&self, id: &str) -> Result<(), ProviderError> {
        self.serving_inner().delete_deployment(id).await
    }
    async fn delete_run_deployment(&self, run: &RunId) -> Result<(), ProviderError> {
        self.serving_inner().delete_run_deployment(run).await
    }
}

#[async_trait]
impl JobControl for Faulty {
    fn kind(&self) -> finetune::domain::ProviderKind {
        self.inner.kind()
    }
    async fn cancel_job(&self, job_id: &str) -> Result<ProviderJob, ProviderError> {
        self.inner.cancel_job(job_id).await
    }
    async fn delete_model(&self, model: &str) -> Result<(), ProviderError> {
        self.inner.delete_model(model).await
    }
    fn serving(&self) -> Option<&dyn ModelServing> {
        Some(self)
    }
}

#[async_trait]
impl FineTuningProvider for Faulty {
    async fn prepare_file(
        &self,
        file: &DatasetFileSource,
    ) -> Result<ProviderFileRef, ProviderError> {
        self.inner.prepare_file(file).await
    }
    async fn create_job(&self, job: &CreateJob) -> Result<ProviderJob, ProviderError> {
        self.inner.create_job(job).await
    }
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
    ) -> Result<Vec<ProviderCheckpoint>, ProviderError> {
        self.inner.list_checkpoints(job_id).await
    }
    async fn step_metrics(
        &self,
        job_id: &str,
        owner: &JobTags,
    ) -> Result<Vec<MetricPoint>, ProviderError> {
        self.inner.step_metrics(job_id, owner).await
    }
    fn weights(&self) -> Option<&dyn ModelWeights> {
        self.inner.weights()
    }
}

/// A Bedrock world whose deployments can be made to fail, and a run in
/// it whose model is `deploying` with its deployment created (and kept
/// `Creating` for several reads).
async fn deploying_run() -> (World, Arc<Faulty>, RunId) {
    let faulty: Arc<std::sync::OnceLock<Arc<Faulty>>> = Arc::default();
    let slot = faulty.clone();
    let world = world_wrapped(move |inner| {
        let wrapper = Arc::new(Faulty {
            inner,
            fault: Mutex::new(Fault::None),
        });
        let _ = slot.set(wrapper.clone());
        wrapper
    })
    .await;
    seed(&world, 30).await;
    let id = start(&world).await;
    let training = drive_to(&world, &id, RunStatus::Training, 10).await;
    assert_eq!(training.status, RunStatus::Training, "{training:?}");
    finetune_tests::bedrock_model_knobs(
        &names::custom_model_name(&id),
        json!({"getsWhileCreating": 20}),
    )
    .await
    .unwrap();
    finish_job(&training.job.unwrap().provider_job_id, "Completed", None).await;
    let deploying = drive_to(&world, &id, RunStatus::Deploying, 5).await;
    assert_eq!(deploying.status, RunStatus::Deploying, "{deploying:?}");
    assert_eq!(model_status(&world, &id).await, ModelStatus::Deploying);
    assert!(deployment_exists(&world, &id).await);
    let faulty = faulty.get().unwrap().clone();
    (world, faulty, id)
}

async fn model_status(world: &World, id: &RunId) -> ModelStatus {
    world
        .pipeline
        .store
        .get_model(&TenantId::parse(TENANT).unwrap(), &ModelId::for_run(id))
        .await
        .unwrap()
        .status
}

/// Whether Bedrock holds the run's deployment, by the name it was made
/// under.
async fn deployment_exists(world: &World, id: &RunId) -> bool {
    let found = aws_sdk_bedrock::Client::new(&world.env.sdk)
        .get_custom_model_deployment()
        .custom_model_deployment_identifier(names::deployment_name(id))
        .send()
        .await;
    match found {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => panic!("{e:?}"),
    }
}

/// The run's model is failed, Bedrock holds no deployment of it, and
/// `DELETE /models/{id}` deletes it (the custom model too).
async fn assert_given_up_and_deletable(world: &World, id: &RunId) {
    let model_id = ModelId::for_run(id);
    assert_eq!(get_model(world, &model_id).await["status"], "failed");
    assert!(
        !deployment_exists(world, id).await,
        "the deployment still bills"
    );
    let (status, deleted) = call(world, TENANT, "DELETE", &format!("/models/{model_id}")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    let custom = aws_sdk_bedrock::Client::new(&world.env.sdk)
        .get_custom_model()
        .model_identifier(names::custom_model_name(id))
        .send()
        .await
        .unwrap_err();
    assert!(
        custom
            .as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{custom:?}"
    );
}

/// No ARN and no account id on the run's error or its timeline.
async fn assert_nothing_internal_on_record(world: &World, id: &RunId) {
    let done = run(world, id).await;
    let texts: Vec<String> = done
        .error
        .iter()
        .map(|e| e.message.clone())
        .chain(events(world, id).await)
        .collect();
    for text in texts {
        assert!(!tenant_text::needs_scrubbing(&text), "{text}");
    }
}

async fn events(world: &World, id: &RunId) -> Vec<String> {
    let page = world
        .pipeline
        .store
        .list_events(&TenantId::parse(TENANT).unwrap(), id, 100, None)
        .await
        .unwrap();
    page.items.into_iter().map(|e| e.message).collect()
}

#[tokio::test]
async fn cancelling_a_run_while_its_model_deploys_deletes_the_deployment_and_fails_the_model() {
    // GIVEN a Bedrock run whose model is being deployed
    let (world, _, id) = deploying_run().await;

    // WHEN the tenant cancels the run
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

    // THEN the run is cancelled, its model failed, its deployment gone,
    // and the model can be deleted
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert_eq!(run(&world, &id).await.status, RunStatus::Cancelled);
    assert_given_up_and_deletable(&world, &id).await;
}

#[tokio::test]
async fn a_run_out_of_patience_while_its_model_deploys_deletes_the_deployment_and_fails_the_model()
{
    // GIVEN a deploying run whose provider has answered only 503s for
    // longer than the fleet's patience, and still does
    let (world, faulty, id) = deploying_run().await;
    let mut tired = run(&world, &id).await;
    tired.retries = finetune::pipeline::MAX_RETRIES;
    tired.busy_since = Some(chrono::Utc::now() - chrono::Duration::hours(25));
    world.pipeline.store.update_run(&tired).await.unwrap();
    faulty.set(Fault::Unavailable);

    // WHEN the monitor ticks
    tick(&world).await;

    // THEN the run failed with the error's code, its model failed, its
    // deployment is gone, and the model can be deleted
    let failed = run(&world, &id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(failed.error.unwrap().code, "provider_server_error");
    assert_nothing_internal_on_record(&world, &id).await;
    assert_given_up_and_deletable(&world, &id).await;
}

#[tokio::test]
async fn a_permanent_provider_error_while_the_model_deploys_deletes_the_deployment() {
    // GIVEN a deploying run, and Bedrock denying the monitor's role
    let (world, faulty, id) = deploying_run().await;
    faulty.set(Fault::Denied);

    // WHEN the monitor ticks
    tick(&world).await;

    // THEN the run failed at once (no retry) with the code and a sentence
    // for the tenant that names neither the role nor the account
    let failed = run(&world, &id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(error.code, "provider_permission_denied");
    assert!(
        !error.message.contains("finetune-monitor"),
        "{}",
        error.message
    );
    assert_nothing_internal_on_record(&world, &id).await;

    // AND its model failed, its deployment is gone, and it can be deleted
    assert_given_up_and_deletable(&world, &id).await;
}

#[tokio::test]
async fn a_run_whose_end_was_interrupted_never_deploys_its_given_up_model_again() {
    // GIVEN a deploying run whose model was given up and its deployment
    // deleted, by a cancel that crashed before it cancelled the run
    let (world, _, id) = deploying_run().await;
    let deploying = run(&world, &id).await;
    let serving = world.pipeline.providers.controls();
    let provider = serving.get(deploying.provider).unwrap();
    finetune::pipeline::release_deployment(
        &world.pipeline.store,
        provider.serving().unwrap(),
        &deploying,
    )
    .await
    .unwrap();
    assert!(!deployment_exists(&world, &id).await);

    // WHEN the monitor ticks
    tick(&world).await;

    // THEN the run is failed, and no deployment was made again
    let failed = run(&world, &id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(failed.error.unwrap().code, "deployment_stopped");
    assert_given_up_and_deletable(&world, &id).await;
}

#[tokio::test]
async fn the_model_of_a_run_that_ended_while_it_deployed_can_be_deleted() {
    // GIVEN a model left `deploying` with its deployment by a run that
    // ended without giving it up (as runs did before they did)
    let (world, _, id) = deploying_run().await;
    let mut ended = run(&world, &id).await;
    ended
        .fail("deployment_failed", "ended elsewhere", chrono::Utc::now())
        .unwrap();
    world.pipeline.store.update_run(&ended).await.unwrap();
    assert_eq!(model_status(&world, &id).await, ModelStatus::Deploying);

    // WHEN the tenant deletes the model
    let model_id = ModelId::for_run(&id);
    let (status, deleted) = call(&world, TENANT, "DELETE", &format!("/models/{model_id}")).await;

    // THEN it is deleted, and so is the deployment nothing had recorded
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    assert!(!deployment_exists(&world, &id).await);
}

#[tokio::test]
async fn a_model_whose_run_still_deploys_it_cannot_be_deleted() {
    // GIVEN a run deploying its model
    let (world, _, id) = deploying_run().await;

    // WHEN the tenant deletes the model
    let model_id = ModelId::for_run(&id);
    let (status, refused) = call(&world, TENANT, "DELETE", &format!("/models/{model_id}")).await;

    // THEN it is refused, and the deployment goes on
    assert_eq!(status, 409, "{refused}");
    assert!(deployment_exists(&world, &id).await);
}
