//! A pool of provider slots, and a run's hold on one.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spend::{Month, Usd};
use crate::domain::{ProviderKind, RunStatus};

/// Which provider quota a run's job counts against, e.g.
/// `openai:gpt-4o-mini-2024-07-18`, `bedrock:us-east-1`,
/// `together:default`. The provider's profile names it; it becomes a
/// DynamoDB key, so it is checked like an id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool: {0}")]
pub struct PoolIdError(&'static str);

const MAX_POOL_LEN: usize = 200;

impl PoolId {
    /// The pool `scope` of `provider`. The scope is a base model, a region
    /// or a name from configuration: ASCII letters, digits and `-._:`.
    pub fn new(provider: ProviderKind, scope: &str) -> Result<Self, PoolIdError> {
        Self::parse(format!("{}:{scope}", provider.as_str()))
    }

    pub fn parse(value: impl Into<String>) -> Result<Self, PoolIdError> {
        let value = value.into();
        let Some((provider, scope)) = value.split_once(':') else {
            return Err(PoolIdError("must be <provider>:<scope>"));
        };
        if ProviderKind::parse(provider).is_err() {
            return Err(PoolIdError("must start with a provider's name"));
        }
        if scope.is_empty() || value.len() > MAX_POOL_LEN {
            return Err(PoolIdError("the scope must be 1 to 190 characters"));
        }
        if !scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(PoolIdError(
                "the scope may contain only ASCII letters, digits and '-', '_', '.', ':'",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn provider(&self) -> ProviderKind {
        self.0
            .split_once(':')
            .and_then(|(p, _)| ProviderKind::parse(p).ok())
            .unwrap_or(ProviderKind::OpenAi)
    }

    pub fn scope(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, s)| s)
    }
}

impl TryFrom<String> for PoolId {
    type Error = PoolIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<PoolId> for String {
    fn from(id: PoolId) -> Self {
        id.0
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many jobs a pool runs at once (at least one: a pool of none would
/// leave its runs waiting for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolBudget(u32);

impl PoolBudget {
    pub fn new(slots: u32) -> Self {
        Self(slots.max(1))
    }

    pub fn slots(self) -> u32 {
        self.0
    }
}

/// What a run holds from admission: a slot in `pool` until its job is
/// terminal, and a place in its tenant's in-flight count with the estimate
/// reserved against the spend of `month` until the run is. On the run's
/// record, so the write that ends either also gives it back (the store
/// does, in the same transaction) and a repeat finds nothing to give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    pub pool: PoolId,
    pub admitted_at: DateTime<Utc>,
    pub month: Month,
    pub reserved: Usd,
    pub slot_held: bool,
    pub tenant_held: bool,
    /// What the run's training cost, once known (the tokens its job billed
    /// at the model's price); settled, with the evaluation's estimate, in
    /// place of the reservation. Unknown: the reservation stands as spent
    /// if a provider job exists, nothing is otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Usd>,
}

impl Admission {
    pub fn new(pool: PoolId, admitted_at: DateTime<Utc>, reserved: Usd) -> Self {
        Self {
            pool,
            admitted_at,
            month: Month::of(admitted_at),
            reserved,
            slot_held: true,
            tenant_held: true,
            cost: None,
        }
    }

    /// What a run in `status` still holds of its admission: the pool's
    /// slot while its job may be running (uploading to training), its
    /// tenant's place while it is not terminal and not back to waiting.
    pub fn holds(status: RunStatus) -> (bool, bool) {
        use RunStatus::*;
        let slot = matches!(status, Uploading | Submitting | Training);
        let tenant = !status.is_terminal() && !matches!(status, Queued | Preparing | Waiting);
        (slot, tenant)
    }

    /// The amount to settle against the month when the tenant's place is
    /// given back: the known training cost plus `evaluation` (what its
    /// calls billed, or its estimate while that is not known), else the
    /// reservation when a provider job was created (it may bill), else
    /// nothing.
    pub fn to_settle(&self, had_job: bool, evaluation: Usd) -> Usd {
        match self.cost {
            Some(cost) => cost.saturating_add(evaluation),
            None if had_job => self.reserved,
            None => Usd::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_a_provider_and_a_key_safe_scope() {
        let pool = PoolId::new(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(pool.as_str(), "openai:gpt-4o-mini-2024-07-18");
        assert_eq!(pool.provider(), ProviderKind::OpenAi);
        assert_eq!(pool.scope(), "gpt-4o-mini-2024-07-18");
        assert!(PoolId::new(ProviderKind::Bedrock, "us-east-1").is_ok());
        assert!(PoolId::parse("azure:x").is_err());
        assert!(PoolId::parse("openai:").is_err());
        assert!(PoolId::parse("openai:a#b").is_err());
        assert!(PoolId::parse("openai:a/b").is_err());
    }

    #[test]
    fn a_budget_has_at_least_one_slot() {
        assert_eq!(PoolBudget::new(0).slots(), 1);
        assert_eq!(PoolBudget::new(3).slots(), 3);
    }
}
