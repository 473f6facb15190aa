//! The models function: `GET /models`, `GET /models/active`,
//! `GET /models/{id}`, `POST /models/{id}/activate`, `DELETE /models/{id}`.
//! Every read and write is keyed by the caller's tenant, so another
//! tenant's model is simply not found.

use chrono::{DateTime, Utc};

use crate::api::input::{FieldError, PageParams};
use crate::blob::Blobs;
use crate::domain::{ActiveModel, ModelId, ModelRecord, ModelStatus, TenantId};
use crate::evaluation::Decision;
use crate::provider::{Controls, ProviderError};
use crate::store::{Page, Store, StoreError};

/// A page of models and the active one (to mark it in the listing).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsPage {
    pub page: Page<ModelRecord>,
    pub active: Option<ActiveModel>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListModelsError {
    #[error("invalid query parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error(transparent)]
    Store(StoreError),
}

pub async fn list_models(
    store: &Store,
    tenant: &TenantId,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<ModelsPage, ListModelsError> {
    let params =
        PageParams::parse(limit, cursor).map_err(|e| ListModelsError::InvalidQuery(vec![e]))?;
    let (page, active) = futures::join!(
        store.list_models(tenant, params.limit, params.cursor.as_deref()),
        store.get_active_model(tenant),
    );
    let page = page.map_err(|e| match e {
        StoreError::InvalidCursor => ListModelsError::InvalidQuery(vec![FieldError::new(
            "cursor",
            "is not a cursor from this listing",
        )]),
        other => ListModelsError::Store(other),
    })?;
    let active = active.map_err(ListModelsError::Store)?;
    Ok(ModelsPage { page, active })
}

#[derive(Debug, thiserror::Error)]
pub enum GetModelError {
    /// Missing, another tenant's, or not a well-formed id: one answer.
    #[error("model not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

/// A model and whether it is the tenant's active one.
pub async fn get_model(
    store: &Store,
    tenant: &TenantId,
    id: &str,
) -> Result<(ModelRecord, bool), GetModelError> {
    let model = read_model(store, tenant, id).await?;
    let active = store
        .get_active_model(tenant)
        .await
        .map_err(GetModelError::Store)?;
    let is_active = active.is_some_and(|a| a.model_id == model.id);
    Ok((model, is_active))
}

async fn read_model(
    store: &Store,
    tenant: &TenantId,
    id: &str,
) -> Result<ModelRecord, GetModelError> {
    let id = ModelId::parse(id).map_err(|_| GetModelError::NotFound)?;
    match store.get_model(tenant, &id).await {
        Ok(model) => Ok(model),
        Err(StoreError::NotFound { .. }) => Err(GetModelError::NotFound),
        Err(e) => Err(GetModelError::Store(e)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GetActiveModelError {
    #[error("no model is active for this tenant; activate one with POST /models/{{id}}/activate")]
    NoneActive,
    #[error(transparent)]
    Store(StoreError),
}

/// What the chat system should call: one GetItem.
pub async fn get_active_model(
    store: &Store,
    tenant: &TenantId,
) -> Result<ActiveModel, GetActiveModelError> {
    store
        .get_active_model(tenant)
        .await
        .map_err(GetActiveModelError::Store)?
        .ok_or(GetActiveModelError::NoneActive)
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateModelError {
    #[error("invalid body")]
    InvalidBody(Vec<FieldError>),
    #[error("model not found")]
    NotFound,
    #[error("model {id} is {status} and cannot be activated")]
    NotReady { id: String, status: &'static str },
    /// Its run's evaluation found it worse than the model the tenant had.
    #[error(
        "model {id} answered worse than the tenant's model when its run evaluated it ({figures}); send {{\"force\": true}} to activate it anyway"
    )]
    Worse { id: String, figures: String },
    #[error(transparent)]
    Store(StoreError),
}

/// The body of `POST /models/{id}/activate`: empty, or `{"force": bool}`.
pub fn activation_force(body: &[u8]) -> Result<bool, ActivateModelError> {
    let invalid = |message: &str| {
        ActivateModelError::InvalidBody(vec![FieldError::new("force", message.to_owned())])
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| invalid("the body must be a JSON object such as {\"force\": true}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(invalid(
            "the body must be a JSON object such as {\"force\": true}",
        ));
    };
    if let Some(key) = map.keys().find(|k| k.as_str() != "force") {
        return Err(ActivateModelError::InvalidBody(vec![FieldError::new(
            key.clone(),
            "is not a field of this request (only force is)",
        )]));
    }
    match map.get("force") {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(force)) => Ok(*force),
        Some(_) => Err(invalid("must be true or false")),
    }
}

/// Makes the model the tenant's active one (activating the active model
/// again is fine); the previous one stays as it was. A model its run's
/// evaluation found `worse` needs `force`.
pub async fn activate_model(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Result<ActiveModel, ActivateModelError> {
    let model = read_model(store, tenant, id).await.map_err(|e| match e {
        GetModelError::NotFound => ActivateModelError::NotFound,
        GetModelError::Store(e) => ActivateModelError::Store(e),
    })?;
    let not_ready = |status: ModelStatus| ActivateModelError::NotReady {
        id: model.id.to_string(),
        status: status.as_str(),
    };
    if model.status != ModelStatus::Ready {
        return Err(not_ready(model.status));
    }
    if let Some(evaluation) = &model.evaluation
        && evaluation.decision == Some(Decision::Worse)
        && !force
    {
        return Err(ActivateModelError::Worse {
            id: model.id.to_string(),
            figures: evaluation.figures(),
        });
    }
    match store.activate_model(&model, now).await {
        Ok(active) => Ok(active),
        // Deleted between our read and the switch.
        Err(StoreError::ConditionFailed { .. }) => Err(not_ready(ModelStatus::Deleting)),
        Err(e) => Err(ActivateModelError::Store(e)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteModelError {
    #[error("model not found")]
    NotFound,
    #[error("model {0} is the tenant's active model; activate another one before deleting it")]
    Active(String),
    /// Its run is still deploying it: deleting now could leave a
    /// deployment behind that nothing records. Once the run has ended
    /// (completed, failed, cancelled) the model can be deleted.
    #[error("model {0} is still being deployed; delete it once its run has ended")]
    Deploying(String),
    /// The provider could not be reached or asked us to wait; the model
    /// stays `deleting` and the same DELETE finishes the job later.
    #[error("could not delete the model at the provider right now: {0}")]
    ProviderUnavailable(ProviderError),
    #[error("the provider refused to delete the model: {0}")]
    ProviderRefused(ProviderError),
    /// Our copy of its weights could not be deleted; the same DELETE
    /// finishes it.
    #[error("could not delete the model's weights from the bucket right now: {0}")]
    Weights(crate::blob::BlobError),
    #[error(transparent)]
    Store(StoreError),
}

/// Deletes the model at its provider and marks it deleted here. Marked
/// `deleting` first (refused for the active model, in one transaction
/// with the pointer), so it can never be activated half-deleted; deleting
/// a deleted model again answers it as it is.
pub async fn delete_model(
    store: &Store,
    blobs: &Blobs,
    providers: &Controls,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ModelRecord, DeleteModelError> {
    let model = read_model(store, tenant, id).await.map_err(|e| match e {
        GetModelError::NotFound => DeleteModelError::NotFound,
        GetModelError::Store(e) => DeleteModelError::Store(e),
    })?;
    if model.status == ModelStatus::Deleted {
        return Ok(model);
    }
    if model.status == ModelStatus::Deploying {
        // Only its run may still deploy it. A run that ended leaves it
        // `deploying` only if it ended before its deployment was given up
        // (records from before runs did that): it is given up now.
        let ended = match store.get_run(tenant, &model.run_id).await {
            Ok(run) => run.status.is_terminal(),
            // No run any more: nothing deploys it.
            Err(StoreError::NotFound { .. }) => true,
            Err(e) => return Err(DeleteModelError::Store(e)),
        };
        if !ended {
            return Err(DeleteModelError::Deploying(model.id.to_string()));
        }
        store
            .give_up_deploying_model(tenant, &model.id)
            .await
            .map_err(DeleteModelError::Store)?;
    }
    match store.mark_model_deleting(tenant, &model.id).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) => {
            return Err(DeleteModelError::Active(model.id.to_string()));
        }
        Err(e) => return Err(DeleteModelError::Store(e)),
    }
    let provider = providers
        .get(model.provider)
        .map_err(DeleteModelError::ProviderUnavailable)?;
    // The deployment first: a provider refuses to delete a model that is
    // still served (Bedrock's ConflictException).
    // One never recorded (its run ended while it was being created) is
    // found by the run's name for it.
    if let Some(serving) = provider.serving() {
        let deleted = match &model.deployment {
            Some(deployment) => serving.delete_deployment(deployment).await,
            None => serving.delete_run_deployment(&model.run_id).await,
        };
        match deleted {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(DeleteModelError::ProviderUnavailable(e)),
            Err(e) => return Err(DeleteModelError::ProviderRefused(e)),
        }
    }
    match provider.delete_model(&model.provider_model).await {
        // Already gone at the provider (a retried DELETE): the same end.
        Ok(()) | Err(ProviderError::NotFound { .. }) => {}
        Err(e) if e.is_transient() => return Err(DeleteModelError::ProviderUnavailable(e)),
        Err(e) => return Err(DeleteModelError::ProviderRefused(e)),
    }
    // Our copy of the weights last: the provider's went first.
    if let Some(weights) = &model.weights {
        blobs
            .delete(&weights.key)
            .await
            .map_err(DeleteModelError::Weights)?;
    }
    store
        .mark_model_deleted(tenant, &model.id, now)
        .await
        .map_err(DeleteModelError::Store)
}
