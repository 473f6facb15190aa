//! The providers this deployment can talk to, chosen per run by
//! `run.provider`. Built once at init; a kind with no adapter registered
//! answers [`ProviderError::NotConfigured`] instead of panicking.

use std::collections::HashMap;
use std::sync::Arc;

use super::{FineTuningProvider, ProviderError};
use crate::domain::ProviderKind;

#[derive(Clone, Default)]
pub struct Providers {
    by_kind: HashMap<ProviderKind, Arc<dyn FineTuningProvider>>,
}

impl Providers {
    /// No providers (e.g. a function that only reads).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` under its own [`FineTuningProvider::kind`],
    /// replacing any earlier one of that kind.
    pub fn with(mut self, provider: Arc<dyn FineTuningProvider>) -> Self {
        self.by_kind.insert(provider.kind(), provider);
        self
    }

    pub fn get(&self, kind: ProviderKind) -> Result<Arc<dyn FineTuningProvider>, ProviderError> {
        self.by_kind.get(&kind).cloned().ok_or_else(|| {
            ProviderError::NotConfigured(format!("no {} adapter in this deployment", kind.as_str()))
        })
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&str> = self.by_kind.keys().map(|k| k.as_str()).collect();
        kinds.sort_unstable();
        f.debug_struct("Providers").field("kinds", &kinds).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unregistered_kind_is_not_configured() {
        let providers = Providers::new();
        let err = providers.get(ProviderKind::OpenAi).err().unwrap();
        assert!(matches!(err, ProviderError::NotConfigured(_)));
        assert_eq!(err.code(), "provider_not_configured");
    }
}
