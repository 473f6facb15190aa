//! Model records (`MODEL#{id}`) and the tenant's active-model pointer
//! (`ACTIVE_MODEL`), both in the tenant's partition.
//!
//! The pointer is a copy of what the chat system needs (provider and the
//! provider's model name), so `GET /models/active` is one GetItem. Switching
//! it and deleting a model are transactions over both items: a model cannot
//! be activated while it is being deleted, nor deleted while it is active.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::keys::{ACTIVE_MODEL_SK, MODEL_PREFIX, PK, SK, model_sk, tenant_pk};
use super::runs::Page;
use super::{Item, Store, StoreError, cursor, from_item, is_condition_failure, s, to_item};
use crate::domain::{
    ActiveModel, EvaluationRecord, ModelId, ModelRecord, ModelStatus, TenantId, WeightsFile,
};

/// What a conditional activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The model is the tenant's active one now.
    Activated(ActiveModel),
    /// The active model was not the one expected: nothing changed.
    ActiveChanged,
}

impl Store {
    /// Records a model; `false` when it already was (a completion step
    /// retried after a crash), which is not an error.
    pub async fn put_model(&self, model: &ModelRecord) -> Result<bool, StoreError> {
        let mut item = to_item("model", model)?;
        item.insert(PK.to_owned(), s(tenant_pk(&model.tenant_id)));
        item.insert(SK.to_owned(), s(model_sk(&model.id)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// The tenant's model; another tenant's id is simply not found.
    pub async fn get_model(
        &self,
        tenant: &TenantId,
        id: &ModelId,
    ) -> Result<ModelRecord, StoreError> {
        match self.get_item(tenant_pk(tenant), model_sk(id), true).await? {
            Some(item) => from_item("model", item),
            None => Err(StoreError::NotFound {
                kind: "model",
                id: id.to_string(),
            }),
        }
    }

    /// The tenant's models, newest first. `limit` is clamped to 1..=100.
    pub async fn list_models(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<ModelRecord>, StoreError> {
        let limit = limit.clamp(1, 100);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":prefix", s(MODEL_PREFIX))
            .scan_index_forward(false)
            .limit(limit as i32 + 1);
        if let Some(c) = cursor {
            let sk = cursor::decode(c, MODEL_PREFIX, |id| ModelId::parse(id).is_ok())?;
            query = query
                .exclusive_start_key(PK, s(tenant_pk(tenant)))
                .exclusive_start_key(SK, s(sk));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut models = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item("model", item))
            .collect::<Result<Vec<ModelRecord>, _>>()?;
        let next_cursor = if models.len() > limit {
            models.truncate(limit);
            models.last().map(|m| cursor::encode(&model_sk(&m.id)))
        } else {
            None
        };
        Ok(Page {
            items: models,
            next_cursor,
        })
    }

    /// The tenant's active model, if one was activated. An eventually
    /// consistent read (half the price): a switch shows within a second.
    pub async fn get_active_model(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ActiveModel>, StoreError> {
        self.get_item(tenant_pk(tenant), ACTIVE_MODEL_SK.to_owned(), false)
            .await?
            .map(|item| from_item("active model", item))
            .transpose()
    }

    /// Makes `model` the tenant's active model in one transaction: the
    /// pointer is replaced (the previous model is kept as it is) only if
    /// the model is still ready. [`StoreError::ConditionFailed`] otherwise.
    pub async fn activate_model(
        &self,
        model: &ModelRecord,
        now: DateTime<Utc>,
    ) -> Result<ActiveModel, StoreError> {
        match self.activate(model, None, now).await? {
            Activation::Activated(active) => Ok(active),
            // No condition on the pointer was set: unreachable, answered
            // as the model's own condition.
            Activation::ActiveChanged => Err(StoreError::ConditionFailed {
                kind: "model",
                id: model.id.to_string(),
            }),
        }
    }

    /// Makes `model` the tenant's active model only if the active one is
    /// still `expected` (`None`: still none), in the same transaction as
    /// the check that the model is ready: what an evaluation activates
    /// over the baseline it beat, never over a choice made since.
    /// [`Activation::ActiveChanged`] when the active model is another;
    /// [`StoreError::ConditionFailed`] when the model is not ready.
    pub async fn activate_model_over(
        &self,
        model: &ModelRecord,
        expected: Option<&ModelId>,
        now: DateTime<Utc>,
    ) -> Result<Activation, StoreError> {
        self.activate(model, Some(expected), now).await
    }

    async fn activate(
        &self,
        model: &ModelRecord,
        expected: Option<Option<&ModelId>>,
        now: DateTime<Utc>,
    ) -> Result<Activation, StoreError> {
        let active = ActiveModel {
            model_id: model.id.clone(),
            provider: model.provider,
            provider_model: model.endpoint().to_owned(),
            base_model: model.base_model.clone(),
            activated_at: now,
        };
        let pk = tenant_pk(&model.tenant_id);
        let mut item = to_item("active model", &active)?;
        item.insert(PK.to_owned(), s(&pk));
        item.insert(SK.to_owned(), s(ACTIVE_MODEL_SK));
        let ready = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(model_sk(&model.id)))
            .condition_expression("#status = :ready")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ready", s(ModelStatus::Ready.as_str()))
            .build()
            .map_err(|e| StoreError::dynamo("build condition", e))?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = match expected {
            None => put,
            Some(None) => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(Some(id)) => put
                .condition_expression("#model_id = :expected")
                .expression_attribute_names("#model_id", "model_id")
                .expression_attribute_values(":expected", s(id.as_str())),
        };
        let put = put
            .build()
            .map_err(|e| StoreError::dynamo("build put", e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(ready).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Activation::Activated(active)),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    // One reason per item, in order: the model's check,
                    // then the pointer's put.
                    let failed = |i: usize| {
                        cancelled
                            .cancellation_reasons()
                            .get(i)
                            .and_then(|r| r.code())
                            .is_some_and(|code| code == "ConditionalCheckFailed")
                    };
                    if !failed(0) && failed(1) {
                        Ok(Activation::ActiveChanged)
                    } else {
                        Err(StoreError::ConditionFailed {
                            kind: "model",
                            id: model.id.to_string(),
                        })
                    }
                }
                _ => Err(StoreError::dynamo("TransactWriteItems", e)),
            },
        }
    }

    /// Marks a ready (or already deleting) model as being deleted, unless
    /// it is the active one: both checked in one transaction, so a
    /// concurrent activation cannot slip between. [`StoreError::ConditionFailed`]
    /// when it is active (or was deleted meanwhile).
    pub async fn mark_model_deleting(
        &self,
        tenant: &TenantId,
        id: &ModelId,
    ) -> Result<(), StoreError> {
        let pk = tenant_pk(tenant);
        let not_active = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(ACTIVE_MODEL_SK))
            .condition_expression("attribute_not_exists(#pk) OR #model_id <> :id")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#model_id", "model_id")
            .expression_attribute_values(":id", s(id.as_str()))
            .build()
            .map_err(|e| StoreError::dynamo("build condition", e))?;
        let deleting = Update::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(model_sk(id)))
            .update_expression("SET #status = :deleting")
            .condition_expression("#status IN (:ready, :failed, :deleting)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ready", s(ModelStatus::Ready.as_str()))
            .expression_attribute_values(":failed", s(ModelStatus::Failed.as_str()))
            .expression_attribute_values(":deleting", s(ModelStatus::Deleting.as_str()))
            .build()
            .map_err(|e| StoreError::dynamo("build update", e))?;
        self.transact(
            "model",
            id,
            vec![
                TransactWriteItem::builder()
                    .condition_check(not_active)
                    .build(),
                TransactWriteItem::builder().update(deleting).build(),
            ],
        )
        .await
    }

    /// Records how the model's deployment ended: `Ready` and served at
    /// `deployment`, or `Failed`. Only a model still `deploying` changes;
    /// `false` when it no longer was (a step retried after a crash finds
    /// its own earlier write), which is not an error.
    pub async fn finish_deployment(
        &self,
        tenant: &TenantId,
        id: &ModelId,
        status: ModelStatus,
        deployment: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(model_sk(id)))
            .update_expression("SET #status = :status, #deployment = :deployment")
            .condition_expression("#status = :deploying")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#deployment", "deployment")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":deployment", s(deployment))
            .expression_attribute_values(":deploying", s(ModelStatus::Deploying.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Gives up a model still `deploying` (its run was cancelled or failed
    /// before the deployment served): it becomes `failed`. Recorded before
    /// its deployment is deleted, so a deploying step that created the
    /// deployment meanwhile finds the model given up and deletes it too.
    /// `false` when the model was no longer deploying (a retry, a
    /// duplicate), which is not an error.
    pub async fn give_up_deploying_model(
        &self,
        tenant: &TenantId,
        id: &ModelId,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(model_sk(id)))
            .update_expression("SET #status = :failed")
            .condition_expression("#status = :deploying")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", s(ModelStatus::Failed.as_str()))
            .expression_attribute_values(":deploying", s(ModelStatus::Deploying.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Records how the model compared with the tenant's when its run
    /// evaluated it (what `activate` checks). Rewriting it is harmless: a
    /// resumed evaluation computes the same figures from the same rows.
    pub async fn record_model_evaluation(
        &self,
        tenant: &TenantId,
        id: &ModelId,
        evaluation: &EvaluationRecord,
    ) -> Result<(), StoreError> {
        self.set_model_member(tenant, id, "evaluation", evaluation)
            .await
    }

    /// Records the model's weights copied into our bucket.
    pub async fn record_model_weights(
        &self,
        tenant: &TenantId,
        id: &ModelId,
        weights: &WeightsFile,
    ) -> Result<(), StoreError> {
        self.set_model_member(tenant, id, "weights", weights).await
    }

    /// Sets one member of an existing model's record to `value`.
    async fn set_model_member<T: serde::Serialize>(
        &self,
        tenant: &TenantId,
        id: &ModelId,
        member: &'static str,
        value: &T,
    ) -> Result<(), StoreError> {
        let value =
            serde_dynamo::to_attribute_value(value).map_err(|source| StoreError::Corrupt {
                kind: member,
                source,
            })?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(model_sk(id)))
            .update_expression("SET #member = :value")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#member", member)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":value", value)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::NotFound {
                kind: "model",
                id: id.to_string(),
            }),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Records that the provider no longer has the model.
    pub async fn mark_model_deleted(
        &self,
        tenant: &TenantId,
        id: &ModelId,
        now: DateTime<Utc>,
    ) -> Result<ModelRecord, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(model_sk(id)))
            .update_expression("SET #status = :deleted, #deleted_at = :now")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#deleted_at", "deleted_at")
            .expression_attribute_values(":deleted", s(ModelStatus::Deleted.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => from_item("model", out.attributes.unwrap_or_default()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::NotFound {
                kind: "model",
                id: id.to_string(),
            }),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// One item by its keys (the store's other modules use it too).
    pub(super) async fn get_item(
        &self,
        pk: String,
        sk: String,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?
            .item)
    }

    /// A transaction whose refusal means a condition did not hold.
    async fn transact(
        &self,
        kind: &'static str,
        id: &ModelId,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_transaction_canceled_exception()) =>
            {
                Err(StoreError::ConditionFailed {
                    kind,
                    id: id.to_string(),
                })
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }
}
