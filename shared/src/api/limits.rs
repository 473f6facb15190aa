//! `GET /limits` (job-status): what the tenant may run and spend, and what
//! it has now. Tenants read their limits; they never change them: an
//! operator sets them with `finetune limits set` (the CLI, with IAM
//! credentials that may write the table), so no tenant token can raise its
//! own cap (docs/fleet.md).

use chrono::{DateTime, Utc};

use crate::domain::TenantId;
use crate::domain::fleet::{FleetSettings, Month, TenantLimits, TenantUsage};
use crate::store::{Store, StoreError};

/// The tenant's limits (its own, else the deployment's default) and this
/// month's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantFleet {
    pub limits: TenantLimits,
    pub month: Month,
    pub usage: TenantUsage,
}

#[derive(Debug, thiserror::Error)]
pub enum GetLimitsError {
    #[error(transparent)]
    Store(StoreError),
}

pub async fn get_limits(
    store: &Store,
    fleet: &FleetSettings,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<TenantFleet, GetLimitsError> {
    let month = Month::of(now);
    let limits = store
        .tenant_limits(tenant, fleet.tenant_default)
        .await
        .map_err(GetLimitsError::Store)?;
    let usage = store
        .tenant_usage(tenant, month)
        .await
        .map_err(GetLimitsError::Store)?;
    Ok(TenantFleet {
        limits,
        month,
        usage,
    })
}
