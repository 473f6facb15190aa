//! The providers this deployment can talk to, chosen per run by
//! `run.provider`. Built once at init; a kind with no adapter registered
//! answers [`ProviderError::NotConfigured`] instead of panicking.

use std::collections::HashMap;
use std::sync::Arc;

use super::inference::Inference;
use super::{FineTuningProvider, JobControl, ProviderError};
use crate::domain::ProviderKind;

/// Adapters by kind, as trait objects of the port a function needs.
pub struct Registry<P: ?Sized> {
    by_kind: HashMap<ProviderKind, Arc<P>>,
}

/// Whole adapters: what the pipeline (monitor, webhook) holds.
pub type Providers = Registry<dyn FineTuningProvider>;

/// The inference API of each provider: what the evaluating phase asks
/// for answers (the monitor; no other function links it).
pub type Answerers = Registry<dyn Inference>;

/// Adapters that only stop jobs and retire models: what cancel and models
/// hold (see [`JobControl`]).
pub type Controls = Registry<dyn JobControl>;

impl<P: ?Sized + JobControl> Registry<P> {
    /// No providers (e.g. a function that only reads).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` under its own [`JobControl::kind`], replacing
    /// any earlier one of that kind.
    pub fn with(mut self, provider: Arc<P>) -> Self {
        self.by_kind.insert(provider.kind(), provider);
        self
    }
}

impl Answerers {
    /// No provider answers (e.g. a tool that never evaluates).
    pub fn none() -> Self {
        Self::default()
    }

    /// Registers `provider`'s inference as `kind`'s (an [`Inference`] has
    /// no kind of its own: one client may serve several).
    pub fn with_kind(mut self, kind: ProviderKind, provider: Arc<dyn Inference>) -> Self {
        self.by_kind.insert(kind, provider);
        self
    }
}

impl<P: ?Sized> Registry<P> {
    pub fn get(&self, kind: ProviderKind) -> Result<Arc<P>, ProviderError> {
        self.by_kind.get(&kind).cloned().ok_or_else(|| {
            ProviderError::NotConfigured(format!("no {} adapter in this deployment", kind.as_str()))
        })
    }
}

impl Providers {
    /// The same adapters seen only as [`JobControl`] (tests and tools that
    /// hold whole adapters and call the cancel or models handlers).
    pub fn controls(&self) -> Controls {
        Registry {
            by_kind: self
                .by_kind
                .iter()
                .map(|(kind, p)| (*kind, p.clone() as Arc<dyn JobControl>))
                .collect(),
        }
    }
}

impl<P: ?Sized> Default for Registry<P> {
    fn default() -> Self {
        Self {
            by_kind: HashMap::new(),
        }
    }
}

impl<P: ?Sized> Clone for Registry<P> {
    fn clone(&self) -> Self {
        Self {
            by_kind: self.by_kind.clone(),
        }
    }
}

impl<P: ?Sized> std::fmt::Debug for Registry<P> {
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
        let err = providers
            .controls()
            .get(ProviderKind::OpenAi)
            .err()
            .unwrap();
        assert!(matches!(err, ProviderError::NotConfigured(_)));
    }
}
