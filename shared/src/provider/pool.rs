//! Which provider quota a run's job counts against, and its default size.
//!
//! The providers document their fine-tuning concurrency as quotas that
//! vary by account and can be raised, so these defaults are starting
//! points an operator overrides (`POOL_BUDGETS`):
//! - OpenAI limits concurrent fine-tuning jobs per base model per
//!   organisation (`GET /v1/fine_tuning/model_limits`; a 429 on creation
//!   past it): a pool per base model, 3 by default.
//! - Bedrock's model-customization jobs are a Service Quotas value per
//!   account and region (a couple by default): one pool per region, 2.
//! - Together's limit is per account: one pool, 3.

use crate::domain::ProviderKind;
use crate::domain::fleet::{FleetSettings, PoolId, PoolIdError};

/// A run's pool as its provider declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub id: PoolId,
    /// As people read it in a waiting run's phase.
    pub label: String,
    pub default_budget: u32,
}

/// The pool a run of `provider` on `base_model` needs.
pub fn pool_of(
    provider: ProviderKind,
    base_model: &str,
    settings: &FleetSettings,
) -> Result<PoolSpec, PoolIdError> {
    Ok(match provider {
        ProviderKind::OpenAi => PoolSpec {
            id: PoolId::new(provider, base_model)?,
            label: format!("OpenAI {base_model}"),
            default_budget: 3,
        },
        ProviderKind::Bedrock => PoolSpec {
            id: PoolId::new(provider, &settings.bedrock_scope)?,
            label: format!("Amazon Bedrock ({})", settings.bedrock_scope),
            default_budget: 2,
        },
        ProviderKind::Together => PoolSpec {
            id: PoolId::new(provider, "account")?,
            label: "Together AI".to_owned(),
            default_budget: 3,
        },
    })
}

/// The label and default budget of a pool known only by its id.
pub fn spec_of(pool: &PoolId, settings: &FleetSettings) -> PoolSpec {
    let provider = pool.provider();
    pool_of(provider, pool.scope(), settings)
        .map(|spec| PoolSpec {
            id: pool.clone(),
            ..spec
        })
        .unwrap_or(PoolSpec {
            id: pool.clone(),
            label: pool.to_string(),
            default_budget: 1,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_pools_are_per_base_model_and_bedrock_pools_per_region() {
        let settings = FleetSettings::default();
        let a = pool_of(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18", &settings).unwrap();
        let b = pool_of(ProviderKind::OpenAi, "gpt-4.1-2025-04-14", &settings).unwrap();
        assert_ne!(a.id, b.id);
        let n1 = pool_of(
            ProviderKind::Bedrock,
            "amazon.nova-micro-v1:0:128k",
            &settings,
        )
        .unwrap();
        let n2 = pool_of(
            ProviderKind::Bedrock,
            "amazon.nova-lite-v1:0:300k",
            &settings,
        )
        .unwrap();
        assert_eq!(n1.id, n2.id);
        assert_eq!(n1.id.as_str(), "bedrock:us-east-1");
        assert_eq!(
            spec_of(&a.id, &settings).label,
            "OpenAI gpt-4o-mini-2024-07-18"
        );
    }
}
