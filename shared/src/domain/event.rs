//! One entry of a run's timeline: our own transitions and the provider's
//! events, side by side.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{EventId, RunId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Pipeline,
    Provider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub id: EventId,
    pub run_id: RunId,
    pub at: DateTime<Utc>,
    pub source: EventSource,
    pub level: EventLevel,
    /// What happened, e.g. `status_changed`, `message`, `metrics`.
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

impl RunEvent {
    /// An event of our own, with a fresh time-ordered id.
    pub fn pipeline(
        run_id: RunId,
        level: EventLevel,
        kind: impl Into<String>,
        message: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: EventId::generate(),
            run_id,
            at,
            source: EventSource::Pipeline,
            level,
            kind: kind.into(),
            message: message.into(),
            data: None,
        }
    }

    /// The id a provider event gets here: derived from the provider's own
    /// id, so storing the same provider event twice stores it once.
    pub fn id_for_provider_event(provider: &str, provider_event_id: &str) -> EventId {
        let digest = Sha256::digest(format!("{provider}\n{provider_event_id}").as_bytes());
        let hex = hex::encode(&digest[..16]);
        // 16 bytes of sha256 are 32 lowercase hex digits: always a valid id.
        EventId::parse(format!("{}{hex}", EventId::PREFIX)).unwrap_or_else(|_| EventId::generate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_event_ids_are_stable_and_distinct() {
        let a = RunEvent::id_for_provider_event("openai", "ftevent-1");
        assert_eq!(a, RunEvent::id_for_provider_event("openai", "ftevent-1"));
        assert_ne!(a, RunEvent::id_for_provider_event("openai", "ftevent-2"));
        assert_ne!(a, RunEvent::id_for_provider_event("bedrock", "ftevent-1"));
    }
}
