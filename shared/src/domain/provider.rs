//! Which fine-tuning service trains a run, and its one parse.
//!
//! Every place that reads a provider's name from outside (the `provider`
//! field of `POST /runs`, `DEFAULT_PROVIDER`) goes through
//! [`ProviderKind::parse`], so a new provider is named in one list
//! ([`ProviderKind::ALL`]) and every message that lists the choices follows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which fine-tuning service trains the run. Recorded per run, because
/// OpenAI stops taking new jobs after 2027-01-06 and tenants move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    OpenAi,
    Bedrock,
    Together,
}

impl ProviderKind {
    /// Every provider, in the order messages list them.
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::OpenAi,
        ProviderKind::Bedrock,
        ProviderKind::Together,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Together => "together",
        }
    }

    /// The provider named exactly `name` (its [`as_str`](Self::as_str)).
    pub fn parse(name: &str) -> Result<Self, UnknownProvider> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownProvider {
                given: name.to_owned(),
            })
    }

    /// The names, each between `quote`s, joined as a sentence lists them:
    /// `"openai", "bedrock" or "together"` (with `"`).
    pub fn choices(quote: char) -> String {
        let names: Vec<String> = Self::ALL
            .iter()
            .map(|k| format!("{quote}{}{quote}", k.as_str()))
            .collect();
        match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

/// A name that is no provider's. Each caller words its own message (an API
/// field error, a configuration error) around [`ProviderKind::choices`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a provider; use {}", ProviderKind::choices('"'))]
pub struct UnknownProvider {
    pub given: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_parses_from_its_own_name() {
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
        }
    }

    #[test]
    fn a_name_that_is_no_providers_is_refused_with_the_name() {
        for bad in ["azure", "OpenAI", "", " bedrock"] {
            let err = ProviderKind::parse(bad).unwrap_err();
            assert_eq!(err.given, bad);
        }
    }

    #[test]
    fn the_choices_read_as_a_sentence() {
        assert_eq!(
            ProviderKind::choices('"'),
            "\"openai\", \"bedrock\" or \"together\""
        );
        assert_eq!(
            ProviderKind::choices('\''),
            "'openai', 'bedrock' or 'together'"
        );
    }

    #[test]
    fn the_stored_name_is_the_parsed_name() {
        for kind in ProviderKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
