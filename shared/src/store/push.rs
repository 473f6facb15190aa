//! What a push from a provider (OpenAI webhook, Bedrock EventBridge event)
//! needs: the run that owns a job, and which deliveries were handled.

use chrono::{DateTime, Duration, Utc};

use super::keys::{ITEM_SK, PK, SK, delivery_pk, job_owner_pk};
use super::{Store, StoreError, is_condition_failure, n, s, string_attr};
use crate::domain::{ProviderKind, RunId, TenantId};

/// How long a handled delivery is remembered: longer than OpenAI's retry
/// window (72 h), so every retry of a delivery finds it.
pub const DELIVERY_TTL: Duration = Duration::days(4);

/// The run a provider's job trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOwner {
    pub tenant_id: TenantId,
    pub run_id: RunId,
}

impl Store {
    /// Records that `job_id` at `provider` belongs to this run. Written
    /// before the run records the job, so no recorded job lacks it; a
    /// second write of the same facts is harmless.
    pub async fn put_job_owner(
        &self,
        provider: ProviderKind,
        job_id: &str,
        owner: &JobOwner,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(job_owner_pk(provider, job_id)))
            .item(SK, s(ITEM_SK))
            .item("provider", s(provider.as_str()))
            .item("provider_job_id", s(job_id))
            .item("tenant_id", s(owner.tenant_id.as_str()))
            .item("run_id", s(owner.run_id.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    /// The run that owns the job, if this deployment created it.
    pub async fn find_job_owner(
        &self,
        provider: ProviderKind,
        job_id: &str,
    ) -> Result<Option<JobOwner>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(job_owner_pk(provider, job_id)))
            .key(SK, s(ITEM_SK))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?
            .item;
        let Some(item) = item else { return Ok(None) };
        // The stored id must still be the one asked for (a hash collision
        // or a hand edit would otherwise point at someone else's run).
        if string_attr(&item, "provider_job_id").as_deref() != Some(job_id) {
            return Ok(None);
        }
        let tenant_id = TenantId::parse(string_attr(&item, "tenant_id").unwrap_or_default())?;
        let run_id = RunId::parse(string_attr(&item, "run_id").unwrap_or_default())?;
        Ok(Some(JobOwner { tenant_id, run_id }))
    }

    /// Claims a delivery by its id: `true` the first time, `false` for a
    /// replay. A claim whose handling then fails is released again
    /// ([`Store::release_delivery`]) so the provider's retry is handled.
    pub async fn claim_delivery(
        &self,
        provider: ProviderKind,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(delivery_pk(provider, delivery_id)))
            .item(SK, s(ITEM_SK))
            .item("received_at", s(now.to_rfc3339()))
            .item("expires_at", n((now + DELIVERY_TTL).timestamp()))
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

    pub async fn release_delivery(
        &self,
        provider: ProviderKind,
        delivery_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(delivery_pk(provider, delivery_id)))
            .key(SK, s(ITEM_SK))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }
}
