//! The models function through the real handler: models recorded by the
//! pipeline when runs complete, activation, deletion at the provider, and
//! the tenant wall on every route.

use finetune::domain::{ModelId, RunId, RunStatus, TenantId};
use finetune_tests::ApiEvent;
use serde_json::{Value, json};

use crate::pipeline::{run_body, seed, start, world};
use crate::world::{TENANT, World, drive};

/// A world with two runs of the tenant completed: two models.
async fn two_models() -> (World, ModelId, ModelId) {
    let world = world().await;
    seed(&world, 20).await;
    let first = start(&world, &run_body(10)).await;
    let second = start(&world, &run_body(10)).await;
    for id in [&first, &second] {
        let done = drive(&world, id, 30).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    (world, ModelId::for_run(&first), ModelId::for_run(&second))
}

/// One models-function request as the tenant; its status and JSON body.
pub(crate) async fn call(world: &World, tenant: &str, method: &str, path: &str) -> (u16, Value) {
    let request = ApiEvent::new(method, path).tenant(tenant).build();
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

fn model_name(list: &Value, id: &ModelId) -> String {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .map(|m| m["model"].as_str().unwrap().to_owned())
        .unwrap()
}

#[tokio::test]
async fn each_completed_run_is_one_model_listed_with_its_facts() {
    // GIVEN two runs that completed
    let (world, first, second) = two_models().await;

    // WHEN the tenant lists its models
    let (status, list) = call(&world, TENANT, "GET", "/models").await;

    // THEN both are there, newest first, with what a product page needs
    assert_eq!(status, 200, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], second.as_str());
    assert_eq!(data[1]["id"], first.as_str());
    let m = &data[1];
    assert_eq!(m["provider"], "openai");
    assert_eq!(m["base_model"], "gpt-4o-mini-2024-07-18");
    assert!(m["model"].as_str().unwrap().starts_with("ft:gpt-4o-mini"));
    let run_id = RunId::parse(m["run_id"].as_str().unwrap()).unwrap();
    assert_eq!(ModelId::for_run(&run_id), first);
    assert!(m["dataset_id"].as_str().unwrap().starts_with("ds_"));
    assert!(m["trained_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m["base_model_shutdown_date"], "2027-01-14");
    assert_eq!(m["status"], "ready");
    assert_eq!(m["active"], false);
    for field in ["created_at", "final_train_loss", "final_valid_loss"] {
        assert!(m.get(field).is_some(), "{field} missing");
    }
    assert_eq!(list["next_cursor"], Value::Null);
    // AND the job's checkpoint (one epoch of two steps) is listed with it
    let checkpoints = m["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 1, "{m}");
    assert_eq!(checkpoints[0]["step"], 2);
    assert!(
        checkpoints[0]["model"]
            .as_str()
            .unwrap()
            .ends_with(":ckpt-step-2")
    );
    assert!(checkpoints[0]["valid_loss"].as_f64().is_some());

    // AND recording a completed run's model again keeps one model
    let tenant = TenantId::parse(TENANT).unwrap();
    let stored = world
        .pipeline
        .store
        .get_model(&tenant, &first)
        .await
        .unwrap();
    assert!(!world.pipeline.store.put_model(&stored).await.unwrap());
}

#[tokio::test]
async fn activation_switches_the_one_active_model_and_keeps_the_previous() {
    // GIVEN two models, none active yet
    let (world, first, second) = two_models().await;
    let (status, problem) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(status, 404, "{problem}");

    // WHEN the first is activated
    let (status, active) = call(&world, TENANT, "POST", &format!("/models/{first}/activate")).await;

    // THEN GET /models/active names it, with what the chat system calls
    assert_eq!(status, 200, "{active}");
    let (_, read) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(read["id"], first.as_str());
    assert_eq!(read["provider"], "openai");
    assert!(read["model"].as_str().unwrap().starts_with("ft:"));

    // WHEN the second is activated
    let (status, _) = call(
        &world,
        TENANT,
        "POST",
        &format!("/models/{second}/activate"),
    )
    .await;
    assert_eq!(status, 200);

    // THEN it is the active one and the first is kept, ready and inactive
    let (_, read) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(read["id"], second.as_str());
    let (_, list) = call(&world, TENANT, "GET", "/models").await;
    let flags: Vec<(String, bool, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["active"].as_bool().unwrap(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            (second.to_string(), true, "ready".to_owned()),
            (first.to_string(), false, "ready".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_active_model_cannot_be_deleted_and_others_are_deleted_at_the_provider() {
    // GIVEN two models, the second active
    let (world, first, second) = two_models().await;
    let (_, list) = call(&world, TENANT, "GET", "/models").await;
    let first_name = model_name(&list, &first);
    call(
        &world,
        TENANT,
        "POST",
        &format!("/models/{second}/activate"),
    )
    .await;

    // WHEN the active one is deleted THEN 409, and nothing is deleted anywhere
    let (status, problem) = call(&world, TENANT, "DELETE", &format!("/models/{second}")).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("active"));
    assert!(world.sandbox().deleted_models().is_empty());

    // WHEN the other one is deleted
    let (status, deleted) = call(&world, TENANT, "DELETE", &format!("/models/{first}")).await;

    // THEN it is gone at the provider and marked deleted here
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    assert!(deleted["deleted_at"].is_string());
    assert_eq!(world.sandbox().deleted_models(), vec![first_name]);
    // AND it cannot be activated again; deleting it again answers it as it is
    let (status, _) = call(&world, TENANT, "POST", &format!("/models/{first}/activate")).await;
    assert_eq!(status, 409);
    let (status, again) = call(&world, TENANT, "DELETE", &format!("/models/{first}")).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("deleted")));
    assert_eq!(world.sandbox().deleted_models().len(), 1);
    // AND the active model did not change
    let (_, read) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(read["id"], second.as_str());
}

#[tokio::test]
async fn another_tenant_sees_none_of_the_models_on_any_route() {
    // GIVEN acme's two models, the first active
    let (world, first, second) = two_models().await;
    call(&world, TENANT, "POST", &format!("/models/{first}/activate")).await;

    // WHEN globex tries every route with acme's ids
    let (status, list) = call(&world, "globex", "GET", "/models").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"], json!([]));
    let (status, _) = call(&world, "globex", "GET", "/models/active").await;
    assert_eq!(status, 404);
    for (method, path) in [
        ("GET", format!("/models/{first}")),
        ("POST", format!("/models/{second}/activate")),
        ("DELETE", format!("/models/{second}")),
        ("DELETE", format!("/models/{first}")),
    ] {
        let (status, problem) = call(&world, "globex", method, &path).await;

        // THEN each is 404, the same as a model that does not exist
        assert_eq!(status, 404, "{method} {path}: {problem}");
        assert_eq!(problem["detail"], "model not found");
    }
    // AND nothing of acme's changed
    assert!(world.sandbox().deleted_models().is_empty());
    let (_, read) = call(&world, TENANT, "GET", "/models/active").await;
    assert_eq!(read["id"], first.as_str());
    // AND without a tenant there is no answer at all
    let request = ApiEvent::get("/models").build();
    let response = finetune::http::models_handler(
        &world.pipeline.store,
        &world.pipeline.blobs,
        &world.pipeline.providers.controls(),
        &world.config,
        request,
    )
    .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_listing_pages_newest_first_with_an_opaque_cursor() {
    // GIVEN three recorded models of the tenant
    let world = world().await;
    let tenant = TenantId::parse(TENANT).unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run_id = RunId::generate();
        let model = finetune::domain::ModelRecord {
            id: ModelId::for_run(&run_id),
            tenant_id: tenant.clone(),
            provider: finetune::domain::ProviderKind::OpenAi,
            base_model: "gpt-4o-mini-2024-07-18".into(),
            provider_model: format!(
                "ft:gpt-4o-mini-2024-07-18:org:acme:{}",
                &run_id.as_str()[4..12]
            ),
            deployment: None,
            run_id,
            dataset_id: None,
            created_at: chrono::Utc::now(),
            trained_tokens: None,
            final_train_loss: None,
            final_valid_loss: None,
            base_model_shutdown: None,
            status: finetune::domain::ModelStatus::Ready,
            deleted_at: None,
            evaluation: None,
            weights: None,
            checkpoints: Vec::new(),
        };
        assert!(world.pipeline.store.put_model(&model).await.unwrap());
        ids.push(model.id.to_string());
    }

    // WHEN it is read two at a time
    let (status, first) = call(&world, TENANT, "GET", "/models?limit=2").await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = call(
        &world,
        TENANT,
        "GET",
        &format!("/models?limit=2&cursor={cursor}"),
    )
    .await;

    // THEN the pages hold every model once, newest first, and end
    let seen: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["data"].as_array().unwrap().clone())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    assert_eq!(seen, ids);
    assert_eq!(second["next_cursor"], Value::Null);
    // AND a cursor that is not one, or a limit out of range, is a 400
    for query in ["cursor=bm90LWEtY3Vyc29y", "limit=0", "limit=101"] {
        let (status, problem) = call(&world, TENANT, "GET", &format!("/models?{query}")).await;
        assert_eq!(status, 400, "{query}: {problem}");
    }
}
