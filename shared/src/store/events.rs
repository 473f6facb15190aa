//! A run's timeline.

use super::keys::{EVENT_PREFIX, PK, SK, event_sk, events_pk};
use super::runs::Page;
use super::{Store, StoreError, cursor, from_item, is_condition_failure, s, string_attr, to_item};
use crate::domain::{RunEvent, RunId, TenantId};

impl Store {
    /// Appends an event; the same event id twice is stored once. Returns
    /// whether it was new (provider events are re-read on every poll). Its
    /// message is scrubbed of ARNs and account ids on the way in.
    pub async fn append_event(
        &self,
        tenant: &TenantId,
        event: &RunEvent,
    ) -> Result<bool, StoreError> {
        let mut item = to_item("event", &scrubbed_event(event))?;
        item.insert(PK.to_owned(), s(events_pk(tenant, &event.run_id)));
        item.insert(SK.to_owned(), s(event_sk(event.at, &event.id)));
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

    /// The run's events, newest first. The caller checks the run belongs
    /// to the tenant; the partition key names the tenant anyway.
    pub async fn list_events(
        &self,
        tenant: &TenantId,
        run_id: &RunId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<RunEvent>, StoreError> {
        let limit = limit.clamp(1, 100);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(events_pk(tenant, run_id)))
            .expression_attribute_values(":prefix", s(EVENT_PREFIX))
            .scan_index_forward(false)
            .limit(limit as i32 + 1);
        if let Some(c) = cursor {
            // EVENT#{time}#{evt id}: check the shape, never trust it.
            let sk = cursor::decode(c, EVENT_PREFIX, |rest| {
                rest.rsplit_once('#').is_some_and(|(time, id)| {
                    chrono::DateTime::parse_from_rfc3339(time).is_ok()
                        && crate::domain::EventId::parse(id).is_ok()
                })
            })?;
            query = query
                .exclusive_start_key(PK, s(events_pk(tenant, run_id)))
                .exclusive_start_key(SK, s(sk));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut events = Vec::new();
        let mut last_sk = None;
        for item in out.items.unwrap_or_default() {
            if events.len() == limit {
                break;
            }
            last_sk = string_attr(&item, SK);
            events.push(from_item::<RunEvent>("event", item)?);
        }
        let more = out.count as usize > limit;
        Ok(Page {
            items: events,
            next_cursor: if more {
                last_sk.map(|sk| cursor::encode(&sk))
            } else {
                None
            },
        })
    }
}

/// The event as the tenant may read it: its message scrubbed of ARNs and
/// account ids ([`crate::domain::tenant_text`]).
pub(super) fn scrubbed_event(event: &RunEvent) -> std::borrow::Cow<'_, RunEvent> {
    use crate::domain::tenant_text::{needs_scrubbing, scrub};
    if !needs_scrubbing(&event.message) {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut clean = event.clone();
    clean.message = scrub(&event.message).into_owned();
    std::borrow::Cow::Owned(clean)
}
