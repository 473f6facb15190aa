//! The world the end-to-end tests run in, whatever the provider: a table
//! and bucket of their own, the functions' configuration, a pipeline over
//! one provider, and the scheduled tick that drives it, sent as the sample
//! EventBridge event (`finetune_tests::events`). `pipeline.rs` builds it on
//! the OpenAI sandbox, `bedrock.rs` on moto's Bedrock; both tick and drive
//! runs with the helpers here.

use std::sync::Arc;
use std::time::Duration;

use finetune::config::Config;
use finetune::domain::{Run, RunId, RunStatus, TenantId};
use finetune::metrics::{Metrics, Recorded};
use finetune::pipeline::Pipeline;
use finetune::pipeline::monitor::{self, Summary};
use finetune::provider::FineTuningProvider;
use finetune::provider::inference::Inference;
use finetune::provider::registry::{Answerers, Providers};
use finetune_tests::TestEnv;
use openai_sandbox::Sandbox;

/// The tenant every end-to-end test's runs belong to.
pub(crate) const TENANT: &str = "acme";

pub(crate) struct World {
    pub(crate) env: TestEnv,
    pub(crate) config: Config,
    pub(crate) pipeline: Pipeline,
    /// The EMF lines the handlers and the monitor emitted.
    pub(crate) recorded: Recorded,
    /// The OpenAI sandbox, in a world that trains there.
    sandbox: Option<Sandbox>,
}

impl World {
    /// A world on `env` whose configuration is its table and bucket plus
    /// `vars` (the provider's settings), with a pipeline over `provider`
    /// whose models answer through `answerer`.
    pub(crate) fn new(
        env: TestEnv,
        vars: &[(&str, String)],
        provider: Arc<dyn FineTuningProvider>,
        answerer: Arc<dyn Inference>,
        sandbox: Option<Sandbox>,
    ) -> World {
        let (table, bucket) = (env.table.clone(), env.bucket.clone());
        let config = Config::from_lookup(|name| match name {
            // The sandbox never winds down: no test may expire with a real date.
            "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
            // Every tick polls every job in training unless a test says
            // otherwise: the sandbox's jobs move on each poll.
            "TRAINING_POLL_SECONDS" | "PUSHED_POLL_SECONDS"
                if !vars.iter().any(|(var, _)| *var == name) =>
            {
                Some("0".into())
            }
            "FINETUNE_TABLE" => Some(table.clone()),
            "FINETUNE_BUCKET" => Some(bucket.clone()),
            _ => vars
                .iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.clone()),
        })
        .unwrap();
        let (metrics, recorded) = Metrics::in_memory();
        let pipeline = Pipeline {
            store: env.store.clone(),
            blobs: env.blobs.clone(),
            answerers: Answerers::none().with_kind(provider.kind(), answerer),
            providers: Providers::new().with(provider),
            lease: Duration::from_secs(60),
            metrics,
            fleet: config.fleet.clone(),
        };
        World {
            env,
            config,
            pipeline,
            recorded,
            sandbox,
        }
    }

    /// The OpenAI sandbox this world trains on.
    pub(crate) fn sandbox(&self) -> &Sandbox {
        self.sandbox
            .as_ref()
            .expect("this world trains on the OpenAI sandbox")
    }
}

/// The context of a scheduled invocation: its own request id, a minute to
/// its deadline.
pub(crate) fn scheduled_context() -> lambda_runtime::Context {
    finetune_tests::events::invocation_context(Duration::from_secs(60))
}

/// One tick of the three scheduled functions, as deployed, with
/// EventBridge's scheduled event as Lambda delivers it: the prepare
/// function's, the monitor function's own dispatch (a scheduled event is a
/// tick), then the evaluate function's. The monitor's summary is returned.
pub(crate) async fn tick(world: &World) -> Summary {
    let event = finetune_tests::events::scheduled_tick(Duration::from_secs(60)).unwrap();
    monitor::on_prepare_schedule(
        &world.pipeline.preparing(world.config.fan_out.clone()),
        &world.config,
        &event.context,
    )
    .await
    .unwrap();
    let invocation = monitor::on_event(
        &world.pipeline.monitor(),
        &world.config,
        &event.payload.source,
        &event.payload.detail_type,
        &event.payload.detail,
        &event.context,
    )
    .await
    .unwrap();
    monitor::on_evaluate_schedule(&world.pipeline.evaluating(), &world.config, &event.context)
        .await
        .unwrap();
    match invocation {
        monitor::Invocation::Tick(summary) => summary,
        other => panic!("a scheduled event was not handled as a tick: {other:?}"),
    }
}

pub(crate) async fn run(world: &World, id: &RunId) -> Run {
    world
        .pipeline
        .store
        .get_run(&TenantId::parse(TENANT).unwrap(), id)
        .await
        .unwrap()
}

/// Ticks until the run is terminal (or gives up after `max` ticks).
pub(crate) async fn drive(world: &World, id: &RunId, max: usize) -> Run {
    for _ in 0..max {
        let r = run(world, id).await;
        if r.status.is_terminal() {
            return r;
        }
        tick(world).await;
    }
    run(world, id).await
}

/// Ticks until the run reaches `status` or ends (or gives up after `max`
/// ticks).
pub(crate) async fn drive_to(world: &World, id: &RunId, status: RunStatus, max: usize) -> Run {
    for _ in 0..max {
        let r = run(world, id).await;
        if r.status == status || r.status.is_terminal() {
            return r;
        }
        tick(world).await;
    }
    run(world, id).await
}
