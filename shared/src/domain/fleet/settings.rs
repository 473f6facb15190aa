//! What an operator sets for the fleet: pool budgets, tenants' default
//! limits, and how long a busy provider is waited out.

use std::collections::BTreeMap;
use std::time::Duration;

use super::pool::{PoolBudget, PoolId};
use super::spend::TenantLimits;

/// The fleet's settings, read once from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    /// Budgets by pool id (`openai:gpt-4o-mini-2024-07-18`) or by provider
    /// (`openai`: every pool of it); a pool named in neither takes its
    /// profile's default.
    pub pool_budgets: BTreeMap<String, u32>,
    /// A tenant without an operator's override has these.
    pub tenant_default: TenantLimits,
    /// How long a phase after admission (training, deploying, evaluating)
    /// may go without one successful provider answer before the run fails:
    /// a busy provider is waited out, never counted out.
    pub busy_patience: Duration,
    /// The longest a pool cools down after a busy answer that names no wait.
    pub cool_down: Duration,
    /// The most waiting runs one admission pass reads from a pool's queue
    /// (oldest first): the fair-share order is taken over these.
    pub queue_read: usize,
    /// How often a job in training is polled (every other phase is due
    /// each tick).
    pub polling: super::PollPolicy,
    /// Which account-wide pool scope Bedrock's jobs count against (its
    /// region; a quota is per account and region).
    pub bedrock_scope: String,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            pool_budgets: BTreeMap::new(),
            tenant_default: TenantLimits {
                max_in_flight: 5,
                monthly_cap: None,
            },
            busy_patience: Duration::from_secs(24 * 3600),
            cool_down: Duration::from_secs(60),
            queue_read: 2000,
            polling: super::PollPolicy::default(),
            bedrock_scope: "us-east-1".to_owned(),
        }
    }
}

impl FleetSettings {
    /// The budget of `pool`: configured for the pool, else for its
    /// provider, else `default`.
    pub fn budget(&self, pool: &PoolId, default: u32) -> PoolBudget {
        let configured = self
            .pool_budgets
            .get(pool.as_str())
            .or_else(|| self.pool_budgets.get(pool.provider().as_str()));
        PoolBudget::new(configured.copied().unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProviderKind;

    #[test]
    fn a_pools_own_budget_wins_over_its_providers_and_that_over_the_default() {
        let mut settings = FleetSettings::default();
        let pool = PoolId::new(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18").unwrap();
        let other = PoolId::new(ProviderKind::OpenAi, "gpt-4.1-2025-04-14").unwrap();
        assert_eq!(settings.budget(&pool, 3).slots(), 3);
        settings.pool_budgets.insert("openai".into(), 2);
        settings
            .pool_budgets
            .insert("openai:gpt-4o-mini-2024-07-18".into(), 7);
        assert_eq!(settings.budget(&pool, 3).slots(), 7);
        assert_eq!(settings.budget(&other, 3).slots(), 2);
    }
}
