//! Admission: prepared runs wait for a slot of their provider's pool, for
//! their tenant's in-flight limit and for room in its monthly cap; a pass
//! of the monitor's tick admits them in the fair-share order.
//!
//! Nothing here counts in memory: every admission is the store's
//! transaction over the run, the pool, the tenant's place and its spend,
//! so overlapping ticks cannot admit past a budget; a pass that loses a
//! race simply finds the pool full on its next read.

use chrono::{DateTime, Utc};

use super::{Ledger, PipelineError};
use crate::domain::fleet::{
    Admission, BudgetExceeded, Candidate, SpendDecision, TenantLoad, Usd, admission_order, judge,
};
use crate::domain::{EventLevel, Run, RunStatus, Waiting};
use crate::provider::ProviderError;
use crate::provider::pool::{pool_of, spec_of};
use crate::store::{AdmissionLimits, StoreError};

/// What one admission pass did, for the tick's log and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionSummary {
    pub admitted: usize,
    /// Runs read from queues with a free slot that stayed waiting.
    pub still_waiting: usize,
    /// Runs failed because their tenant's cap can never hold them.
    pub refused: usize,
    /// Slots given back by the reaper (their holder was terminal or gone).
    pub reclaimed: usize,
}

/// The run's estimate: training plus, if recorded, its evaluation's
/// calls; `None` when the training price is not known.
fn estimate(run: &Run) -> Option<Usd> {
    let stats = run.stats.as_ref()?;
    if stats.estimated_cost_usd <= 0.0 && stats.train_tokens > 0 {
        return None;
    }
    let total = stats.estimated_cost_usd + stats.evaluation_estimated_cost_usd.unwrap_or(0.0);
    Some(Usd::from_dollars(total))
}

/// The first `count` runs of a pool's queue in fair-share order, from
/// the work index's keys alone (tenant limits are judged on the runs
/// read); the whole queue when it is that short.
fn queue_head(
    queued: &[crate::store::QueuedRun],
    state: &crate::store::PoolState,
    count: usize,
) -> Vec<crate::store::ActiveRun> {
    let key = |q: &crate::store::QueuedRun| crate::store::ActiveRun {
        tenant_id: q.tenant_id.clone(),
        run_id: q.run_id.clone(),
    };
    if queued.len() <= count {
        return queued.iter().map(key).collect();
    }
    let candidates: Vec<Candidate<String>> = queued
        .iter()
        .map(|q| Candidate {
            tenant: q.tenant_id.clone(),
            // `{since}#{run}`; a key that does not parse queues last.
            since: q
                .since
                .split('#')
                .next()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(DateTime::<Utc>::MAX_UTC, |t| t.with_timezone(&Utc)),
            key: q.run_id.to_string(),
        })
        .collect();
    let loads = candidates
        .iter()
        .map(|c| {
            let load = TenantLoad {
                in_flight: state.in_flight(&c.tenant),
                last_served: state.last_served.get(&c.tenant).copied(),
                room: None,
            };
            (c.tenant.clone(), load)
        })
        .collect();
    admission_order(&candidates, &loads, count)
        .into_iter()
        .map(|i| key(&queued[i]))
        .collect()
}

impl Ledger {
    /// Puts a prepared run in its pool's queue (or fails it at once when its
    /// tenant's cap can never hold it). Nothing is uploaded before
    /// admission.
    pub(crate) async fn enter_waiting(
        &self,
        mut run: Run,
        phase: String,
    ) -> Result<Run, PipelineError> {
        let spec = pool_of(run.provider, &run.config.base_model, &self.fleet)
            .map_err(|e| PipelineError::Inconsistent(e.to_string()))?;
        let limits = self
            .store
            .tenant_limits(&run.tenant_id, self.fleet.tenant_default)
            .await?;
        if let Some(cap) = limits.monthly_cap {
            let refusal = match estimate(&run) {
                None => Some(BudgetExceeded::PriceUnknown { cap }),
                Some(e) if e > cap => Some(BudgetExceeded::EstimateAboveCap { estimate: e, cap }),
                Some(_) => None,
            };
            if let Some(refusal) = refusal {
                return self
                    .record_failure(run, &PipelineError::Budget(refusal))
                    .await;
            }
        }
        self.store.register_pool(&spec.id).await?;
        run.waiting = Some(Waiting {
            pool: spec.id,
            since: run.created_at,
            reason: None,
        });
        self.transition(
            run,
            RunStatus::Waiting,
            format!("{phase}; waiting for a {} slot", spec.label),
        )
        .await
    }

    /// The provider was busy at upload or job creation: the run goes back
    /// to its queue (its slot and reservation given back in the same
    /// write) and the pool cools down for the provider's `Retry-After`, or
    /// the configured pause. Not a failure and not a retry.
    pub(crate) async fn back_to_waiting(
        &self,
        mut run: Run,
        error: &ProviderError,
    ) -> Result<Run, PipelineError> {
        let Some(admission) = run.admission.clone() else {
            return Err(PipelineError::Inconsistent(
                "a run past admission without its admission record".into(),
            ));
        };
        let wait = match error {
            ProviderError::RateLimited {
                retry_after: Some(d),
                ..
            } => *d,
            _ => self.fleet.cool_down,
        };
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(1));
        self.store.cool_down(&admission.pool, until).await?;
        let spec = spec_of(&admission.pool, &self.fleet);
        self.metrics.provider_busy(run.provider);
        run.waiting = Some(Waiting {
            pool: admission.pool,
            since: run.created_at,
            reason: Some(crate::domain::fleet::WaitReason::CoolingDown {
                label: spec.label.clone(),
                until,
            }),
        });
        let phase = format!(
            "waiting: {} was busy ({}), back in its queue",
            spec.label,
            error.code()
        );
        self.transition(run, RunStatus::Waiting, phase).await
    }

    /// One pass over every pool with a queue: reclaims slots whose holder
    /// has let go, then admits waiting runs into the free slots in the
    /// fair-share order. A pool that is full or cooling down costs one
    /// read and no more.
    pub async fn admit_waiting(
        &self,
        now: DateTime<Utc>,
    ) -> Result<AdmissionSummary, PipelineError> {
        let mut summary = AdmissionSummary::default();
        for pool in self.store.list_pools().await? {
            let spec = spec_of(&pool, &self.fleet);
            let budget = self.fleet.budget(&pool, spec.default_budget).slots();
            let mut state = self.store.get_pool(&pool).await?;
            // The reaper: a holder whose run is terminal, gone, or no
            // longer holding (a hand-edited record) gives its slot back.
            let mut kept = Vec::with_capacity(state.holders.len());
            for (tenant, run_id) in std::mem::take(&mut state.holders) {
                let holds = match self.store.get_run(&tenant, &run_id).await {
                    Ok(run) => {
                        Admission::holds(run.status).0
                            && run
                                .admission
                                .as_ref()
                                .is_some_and(|a| a.slot_held && a.pool == pool)
                    }
                    Err(StoreError::NotFound { .. }) => false,
                    Err(e) => return Err(e.into()),
                };
                if holds {
                    kept.push((tenant, run_id));
                } else if self.store.reclaim_slot(&pool, &tenant, &run_id).await? {
                    summary.reclaimed += 1;
                    self.metrics.slot_reclaimed(pool.provider());
                    tracing::warn!(pool = %pool, run_id = %run_id, "reclaimed a slot whose run no longer holds it");
                }
            }
            state.holders = kept;
            let in_use = state.holders.len() as u32;
            if in_use >= budget || state.cooldown_until.is_some_and(|until| until > now) {
                continue;
            }
            let queued = self
                .store
                .list_waiting(&pool, self.fleet.queue_read)
                .await?;
            if queued.is_empty() {
                continue;
            }
            // Only the head of the queue in fair order is read in full: the
            // index alone (tenant, since) orders it, so a pass costs what
            // it can admit, not what waits. Eight candidates a free slot
            // leave room for tenants found at their own limit.
            let head = queue_head(&queued, &state, (budget - in_use) as usize * 8 + 8);
            let mut runs = self.store.get_runs(&head).await?;
            runs.retain(|r| r.status == RunStatus::Waiting);
            // Each tenant's limits and usage, read once per pass.
            let month = crate::domain::fleet::Month::of(now);
            let mut tenants = std::collections::BTreeMap::new();
            for run in &runs {
                if tenants.contains_key(&run.tenant_id) {
                    continue;
                }
                let limits = self
                    .store
                    .tenant_limits(&run.tenant_id, self.fleet.tenant_default)
                    .await?;
                let usage = self.store.tenant_usage(&run.tenant_id, month).await?;
                tenants.insert(run.tenant_id.clone(), (limits, usage));
            }
            let loads = tenants
                .iter()
                .map(|(tenant, (limits, usage))| {
                    let load = TenantLoad {
                        in_flight: state.in_flight(tenant),
                        last_served: state.last_served.get(tenant).copied(),
                        room: Some(limits.max_in_flight.saturating_sub(usage.in_flight)),
                    };
                    (tenant.clone(), load)
                })
                .collect();
            let candidates: Vec<Candidate<String>> = runs
                .iter()
                .map(|r| Candidate {
                    tenant: r.tenant_id.clone(),
                    since: r.waiting.as_ref().map_or(r.created_at, |w| w.since),
                    key: r.id.to_string(),
                })
                .collect();
            let order = admission_order(&candidates, &loads, (budget - in_use) as usize);
            let mut admitted_now = std::collections::BTreeSet::new();
            for index in order {
                let run = &runs[index];
                let Some((limits, usage)) = tenants.get(&run.tenant_id).copied() else {
                    continue;
                };
                match judge(estimate(run), limits, usage, month) {
                    SpendDecision::Admit { reserve } => {
                        let mut next = run.clone();
                        next.admission = Some(Admission::new(pool.clone(), now, reserve));
                        next.move_to(RunStatus::Uploading, "admitted; uploading the dataset", now)?;
                        next.retries = 0;
                        next.busy_since = None;
                        let limits = AdmissionLimits {
                            pool_budget: budget,
                            tenant: limits,
                        };
                        match self.store.admit(&next, limits, now).await? {
                            Some(stored) => {
                                summary.admitted += 1;
                                admitted_now.insert(stored.id.clone());
                                tenants.insert(
                                    stored.tenant_id.clone(),
                                    (
                                        limits.tenant,
                                        crate::domain::fleet::TenantUsage {
                                            in_flight: usage.in_flight + 1,
                                            reserved: usage.reserved.saturating_add(reserve),
                                            settled: usage.settled,
                                        },
                                    ),
                                );
                                self.metrics.run_admitted(stored.provider);
                                self.event(
                                    &stored,
                                    EventLevel::Info,
                                    "status_changed",
                                    format!("waiting -> uploading: admitted to {}", spec.label),
                                )
                                .await;
                            }
                            // The pool filled or the run moved under us:
                            // the next tick reads afresh.
                            None => break,
                        }
                    }
                    SpendDecision::Refuse(refusal) => {
                        self.record_failure(run.clone(), &PipelineError::Budget(refusal))
                            .await?;
                        summary.refused += 1;
                    }
                    SpendDecision::Wait(reason) => {
                        self.note_waiting(run, reason).await?;
                    }
                }
            }
            // The runs read and left waiting learn why (written only when
            // the reason changed).
            let in_use_after = in_use + admitted_now.len() as u32;
            for run in runs.iter().filter(|r| !admitted_now.contains(&r.id)) {
                summary.still_waiting += 1;
                if in_use_after >= budget {
                    let reason = crate::domain::fleet::WaitReason::Slot {
                        label: spec.label.clone(),
                        in_use: in_use_after,
                        budget,
                    };
                    self.note_waiting(run, reason).await?;
                }
            }
        }
        Ok(summary)
    }

    /// Records why `run` waits, if that changed (a run waiting for hours
    /// is not rewritten every tick).
    async fn note_waiting(
        &self,
        run: &Run,
        reason: crate::domain::fleet::WaitReason,
    ) -> Result<(), PipelineError> {
        let Some(waiting) = run.waiting.as_ref() else {
            return Ok(());
        };
        if waiting.reason.as_ref() == Some(&reason) {
            return Ok(());
        }
        let mut next = run.clone();
        next.phase = reason.to_string();
        if let Some(w) = next.waiting.as_mut() {
            w.reason = Some(reason);
        }
        match self.store.update_run(&next).await {
            Ok(_) | Err(StoreError::VersionConflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunId, TenantId};
    use crate::store::{PoolState, QueuedRun};

    fn queued(tenant: &str, minute: u32) -> QueuedRun {
        QueuedRun {
            tenant_id: TenantId::parse(tenant).unwrap(),
            run_id: RunId::generate(),
            since: format!("2026-12-07T10:{minute:02}:00.000Z#run"),
        }
    }

    #[test]
    fn the_head_of_a_long_queue_is_read_in_fair_order_not_oldest_first() {
        // GIVEN a burst of 40 from one tenant, then one run each of two others
        let mut queue: Vec<QueuedRun> = (0..40).map(|m| queued("bulk", m)).collect();
        queue.push(queued("shop-a", 50));
        queue.push(queued("shop-b", 55));
        let state = PoolState {
            holders: Vec::new(),
            cooldown_until: None,
            last_served: Default::default(),
        };

        // WHEN three are read for a pass
        let head = queue_head(&queue, &state, 3);

        // THEN each tenant's oldest is among them
        let tenants: std::collections::BTreeSet<&str> =
            head.iter().map(|r| r.tenant_id.as_str()).collect();
        assert_eq!(head.len(), 3);
        assert_eq!(tenants.len(), 3, "{head:?}");
        assert!(head.iter().any(|r| r.run_id == queue[0].run_id));
    }

    #[test]
    fn a_short_queue_is_read_whole() {
        let queue = vec![queued("a", 1), queued("a", 2)];
        let state = PoolState {
            holders: Vec::new(),
            cooldown_until: None,
            last_served: Default::default(),
        };
        assert_eq!(queue_head(&queue, &state, 8).len(), 2);
    }
}
