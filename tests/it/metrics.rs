//! Training curves: the step metrics the sandbox's job emits, kept by the
//! monitor and served by `GET /runs/{id}/metrics` as JSON and as SVG.

use finetune::domain::{ModelId, ProviderKind, RunId, RunStatus};
use finetune_tests::ApiEvent;
use serde_json::Value;

use crate::pipeline::{quick_sandbox, run_body, seed, start, world_with};
use crate::world::{TENANT, World, drive, run};

/// A completed run whose job reported 2 epochs of 3 steps.
async fn trained() -> (World, RunId) {
    let world = world_with(
        openai_sandbox::SandboxConfig {
            epochs: 2,
            steps_per_epoch: 3,
            ..quick_sandbox()
        },
        |p| p,
    )
    .await;
    seed(&world, 20).await;
    let id = start(&world, &run_body(10)).await;
    let done = drive(&world, &id, 30).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    (world, id)
}

async fn get(
    world: &World,
    tenant: &str,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let mut event = ApiEvent::get(path).tenant(tenant);
    if let Some(accept) = accept {
        event = event.header("accept", accept);
    }
    let response = finetune::http::job_status_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.config,
        event.build(),
    )
    .await;
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = String::from_utf8(response.body().as_ref().to_vec()).unwrap();
    (response.status().as_u16(), content_type, body)
}

/// The metrics events the sandbox emitted, read back through its API.
async fn emitted(world: &World, id: &RunId) -> Vec<Value> {
    let job = run(world, id).await.job.unwrap().provider_job_id;
    let provider = world.pipeline.providers.get(ProviderKind::OpenAi).unwrap();
    provider
        .list_events(&job, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "metrics")
        .map(|e| e.data.unwrap())
        .collect()
}

#[tokio::test]
async fn the_series_matches_what_the_job_emitted_and_the_run_shows_progress() {
    // GIVEN a run whose job reported six steps of metrics
    let (world, id) = trained().await;
    let expected = emitted(&world, &id).await;
    assert_eq!(expected.len(), 6);

    // WHEN the tenant reads the run's metrics
    let (status, content_type, body) =
        get(&world, TENANT, &format!("/runs/{id}/metrics"), None).await;

    // THEN the series is exactly what the sandbox emitted, in step order
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let series: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(series["run_id"], id.as_str());
    assert_eq!(
        (series["step"].as_u64(), series["total_steps"].as_u64()),
        (Some(6), Some(6))
    );
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), expected.len());
    for (point, sent) in points.iter().zip(&expected) {
        for field in [
            "step",
            "train_loss",
            "valid_loss",
            "train_mean_token_accuracy",
            "valid_mean_token_accuracy",
        ] {
            assert_eq!(point[field], sent[field], "{field} of {sent}");
        }
    }

    // AND the checkpoints' whole-file validation losses sit at their steps
    let job = run(&world, &id).await.job.unwrap().provider_job_id;
    let checkpoints = world
        .pipeline
        .providers
        .get(ProviderKind::OpenAi)
        .unwrap()
        .list_checkpoints(&job)
        .await
        .unwrap();
    assert!(!checkpoints.is_empty());
    for point in points {
        let at = checkpoints
            .iter()
            .find(|c| Some(c.step) == point["step"].as_u64());
        assert_eq!(
            point["full_valid_loss"].as_f64(),
            at.and_then(|c| c.full_valid_loss),
            "{point}"
        );
    }

    // AND GET /runs/{id} shows the job's progress
    let (_, _, body) = get(&world, TENANT, &format!("/runs/{id}"), None).await;
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["job"]["step"], 6);
    assert_eq!(detail["job"]["total_steps"], 6);
    assert!(detail["job"].get("estimated_finish").is_some());

    // AND the run's model carries the final losses
    let model = world
        .pipeline
        .store
        .get_model(&run(&world, &id).await.tenant_id, &ModelId::for_run(&id))
        .await
        .unwrap();
    assert_eq!(model.final_train_loss, expected[5]["train_loss"].as_f64());
    assert_eq!(model.final_valid_loss, expected[5]["valid_loss"].as_f64());
}

#[tokio::test]
async fn the_svg_chart_parses_as_xml_and_draws_both_curves() {
    // GIVEN a trained run
    let (world, id) = trained().await;

    // WHEN a product page asks for the chart
    let (status, content_type, body) = get(
        &world,
        TENANT,
        &format!("/runs/{id}/metrics"),
        Some("image/svg+xml,image/*;q=0.8"),
    )
    .await;

    // THEN it is an SVG document with both curves, one vertex per step,
    // axes and their labels
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "image/svg+xml");
    let doc = roxmltree::Document::parse(&body).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let curve = |id: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == "polyline" && n.attribute("id") == Some(id))
            .unwrap_or_else(|| panic!("no {id} curve"))
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .count()
    };
    assert_eq!(curve("train-loss"), 6);
    assert_eq!(curve("valid-loss"), 6);
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for label in ["training step", "loss", "training loss", "validation loss"] {
        assert!(texts.contains(&label), "no {label:?} label");
    }
    assert!(doc.descendants().any(|n| n.attribute("id") == Some("axes")));
}

#[tokio::test]
async fn another_tenant_gets_404_for_the_metrics_in_either_form() {
    // GIVEN acme's trained run
    let (world, id) = trained().await;

    // WHEN globex asks for its metrics, as JSON or as SVG
    for accept in [None, Some("image/svg+xml")] {
        let (status, content_type, _) =
            get(&world, "globex", &format!("/runs/{id}/metrics"), accept).await;

        // THEN it is not found, as problem+json
        assert_eq!(status, 404);
        assert_eq!(content_type, "application/problem+json");
    }
}

#[tokio::test]
async fn racing_writers_of_one_series_lose_no_point() {
    // GIVEN one run's series written by eight writers at once (the monitor
    // and webhooks following the same job), each with its own steps
    let env = finetune_tests::TestEnv::new().await;
    let tenant = finetune::domain::TenantId::parse(TENANT).unwrap();
    let run_id = RunId::generate();
    let point = |step: u64| finetune::domain::curve::MetricPoint {
        train_loss: Some(1.0 / step as f64),
        ..finetune::domain::curve::MetricPoint::at(step)
    };

    // WHEN they merge concurrently
    let writes = (1..=8u64).map(|w| {
        let (store, tenant, run_id) = (env.store.clone(), tenant.clone(), run_id.clone());
        async move {
            store
                .merge_metrics(&tenant, &run_id, &[point(w), point(w + 100)], Some(200))
                .await
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }

    // THEN every writer's points are in the series, in step order
    let series = env.store.get_metrics(&tenant, &run_id).await.unwrap();
    let steps: Vec<u64> = series.points.iter().map(|p| p.step).collect();
    let mut expected: Vec<u64> = (1..=8).chain(101..=108).collect();
    expected.sort_unstable();
    assert_eq!(steps, expected);
    assert_eq!(series.total_steps, Some(200));
}
