//! Whose run takes a free slot: the fair-share order, as a pure function.
//!
//! The rule: the tenant with the fewest runs in flight in the pool goes
//! first; ties go to the tenant served least recently (never served
//! first); within a tenant, its oldest waiting run. So a tenant's second
//! run never goes ahead of another tenant's first, and a burst of 500
//! runs from one tenant delays another tenant's first run by at most one
//! slot turnover.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::TenantId;

/// A run waiting in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<K> {
    pub tenant: TenantId,
    /// When the run started waiting (its tenant's runs go oldest first).
    pub since: DateTime<Utc>,
    /// The caller's handle on the run (its id); ties on `since` go by it.
    pub key: K,
}

/// A tenant's standing in the pool when the pass begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantLoad {
    /// Its runs holding one of this pool's slots.
    pub in_flight: u32,
    /// When one of its runs was last admitted to this pool.
    pub last_served: Option<DateTime<Utc>>,
    /// How many more runs it may start now (its in-flight limit and its
    /// budget, across pools); `None` is no limit.
    pub room: Option<u32>,
}

/// A tenant during a pass: in flight, last served (time, order in this
/// pass), room left.
type Standing = (u32, Option<(DateTime<Utc>, usize)>, Option<u32>);

/// The candidates to admit, as indices into `candidates`, in admission
/// order: at most `slots` of them. Tenants missing from `loads` have no
/// run in flight, were never served and have no limit.
pub fn admission_order<K: Ord>(
    candidates: &[Candidate<K>],
    loads: &BTreeMap<TenantId, TenantLoad>,
    slots: usize,
) -> Vec<usize> {
    // Each tenant's queue, oldest first.
    let mut queues: BTreeMap<&TenantId, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        queues.entry(&c.tenant).or_default().push(i);
    }
    for queue in queues.values_mut() {
        queue.sort_by(|a, b| {
            let (a, b) = (&candidates[*a], &candidates[*b]);
            (b.since, &b.key).cmp(&(a.since, &a.key))
        });
    }
    // Standing: (in flight, last served as (time, order in this pass)).
    // `None` sorts before `Some`: never served goes first.
    let mut standing: BTreeMap<&TenantId, Standing> = queues
        .keys()
        .map(|t| {
            let load = loads.get(*t).copied().unwrap_or_default();
            (
                *t,
                (
                    load.in_flight,
                    load.last_served.map(|at| (at, 0)),
                    load.room,
                ),
            )
        })
        .collect();
    let latest = loads
        .values()
        .filter_map(|l| l.last_served)
        .chain(candidates.iter().map(|c| c.since))
        .max();
    let mut order = Vec::with_capacity(slots.min(candidates.len()));
    while order.len() < slots {
        let next = standing
            .iter()
            .filter(|(t, (_, _, room))| {
                room != &Some(0) && queues.get(*t).is_some_and(|q| !q.is_empty())
            })
            .min_by(|(ta, a), (tb, b)| (a.0, a.1, *ta).cmp(&(b.0, b.1, *tb)))
            .map(|(t, _)| *t);
        let Some(tenant) = next else { break };
        let Some(index) = queues.get_mut(tenant).and_then(Vec::pop) else {
            break;
        };
        order.push(index);
        if let Some(s) = standing.get_mut(tenant) {
            s.0 += 1;
            // Served now: after everyone served before this pass.
            s.1 = latest.map(|at| (at, order.len()));
            s.2 = s.2.map(|room| room.saturating_sub(1));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant(i: usize) -> TenantId {
        TenantId::parse(format!("t{i:03}")).unwrap()
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + minute * 60, 0).unwrap()
    }

    fn candidates(per_tenant: &[usize]) -> Vec<Candidate<u32>> {
        let mut all = Vec::new();
        let mut key = 0;
        for (t, n) in per_tenant.iter().enumerate() {
            for _ in 0..*n {
                all.push(Candidate {
                    tenant: tenant(t),
                    since: at(i64::from(key)),
                    key,
                });
                key += 1;
            }
        }
        all
    }

    #[test]
    fn given_one_tenant_with_many_runs_and_others_with_one_when_slots_free_then_every_first_run_goes_before_the_big_tenants_second()
     {
        // The big tenant's 500 runs are all older than the others'.
        let mut waiting = candidates(&[500]);
        waiting.extend((1..=10).map(|t| Candidate {
            tenant: tenant(t),
            since: at(1000 + t as i64),
            key: 1000 + t as u32,
        }));
        let order = admission_order(&waiting, &BTreeMap::new(), 11);
        let tenants: Vec<&TenantId> = order.iter().map(|i| &waiting[*i].tenant).collect();
        assert_eq!(tenants.iter().filter(|t| **t == &tenant(0)).count(), 1);
        assert_eq!(tenants.len(), 11);
    }

    #[test]
    fn a_tenant_with_fewer_runs_in_flight_goes_first_and_ties_go_to_who_was_served_longest_ago() {
        let waiting = candidates(&[1, 1, 1]);
        let loads = BTreeMap::from([
            (
                tenant(0),
                TenantLoad {
                    in_flight: 1,
                    last_served: Some(at(1)),
                    room: None,
                },
            ),
            (
                tenant(1),
                TenantLoad {
                    in_flight: 0,
                    last_served: Some(at(5)),
                    room: None,
                },
            ),
            (
                tenant(2),
                TenantLoad {
                    in_flight: 0,
                    last_served: Some(at(2)),
                    room: None,
                },
            ),
        ]);
        let order = admission_order(&waiting, &loads, 3);
        let tenants: Vec<TenantId> = order.iter().map(|i| waiting[*i].tenant.clone()).collect();
        assert_eq!(tenants, vec![tenant(2), tenant(1), tenant(0)]);
    }

    #[test]
    fn a_tenant_without_room_is_passed_over() {
        let waiting = candidates(&[3, 1]);
        let loads = BTreeMap::from([(
            tenant(0),
            TenantLoad {
                room: Some(1),
                ..Default::default()
            },
        )]);
        let order = admission_order(&waiting, &loads, 4);
        assert_eq!(order.len(), 2);
        assert_eq!(waiting[order[0]].tenant, tenant(0));
        assert_eq!(waiting[order[1]].tenant, tenant(1));
    }

    proptest! {
        /// GIVEN tenants with no run in flight WHEN slots are filled THEN
        /// no tenant has a second run admitted while another that was
        /// waiting has none (at every prefix of the order, the counts of
        /// tenants that still had runs differ by at most one), and each
        /// tenant's runs go oldest first.
        #[test]
        fn no_tenant_waits_behind_another_tenants_second_run(
            per_tenant in proptest::collection::vec(1usize..30, 1..12),
            slots in 0usize..200,
        ) {
            let waiting = candidates(&per_tenant);
            let order = admission_order(&waiting, &BTreeMap::new(), slots);
            prop_assert_eq!(order.len(), slots.min(waiting.len()));
            let mut admitted = vec![0usize; per_tenant.len()];
            let mut last_since: BTreeMap<TenantId, DateTime<Utc>> = BTreeMap::new();
            for i in &order {
                let c = &waiting[*i];
                let t: usize = c.tenant.as_str()[1..].parse().unwrap();
                // Everyone still waiting has at least as many as this one had.
                for (other, count) in admitted.iter().enumerate() {
                    if *count < per_tenant[other] {
                        prop_assert!(admitted[t] <= *count, "tenant {t} got a second run before tenant {other}");
                    }
                }
                admitted[t] += 1;
                if let Some(prev) = last_since.insert(c.tenant.clone(), c.since) {
                    prop_assert!(prev <= c.since);
                }
            }
        }

        /// GIVEN one tenant with a burst of runs, waiting before everyone
        /// else, WHEN one slot frees at a time THEN each other tenant's first
        /// run is admitted within (other tenants + 1) turnovers.
        #[test]
        fn a_burst_from_one_tenant_delays_anothers_first_run_by_at_most_one_turnover(
            burst in 1usize..500,
            small in 1usize..40,
        ) {
            let mut per_tenant = vec![burst];
            per_tenant.extend(std::iter::repeat_n(1, small));
            let mut waiting = candidates(&per_tenant);
            let mut loads: BTreeMap<TenantId, TenantLoad> = BTreeMap::new();
            let mut rank = 0usize;
            let mut served_at = 10_000i64;
            // One slot, turning over: admit one, it finishes, admit the next.
            while !waiting.is_empty() {
                let order = admission_order(&waiting, &loads, 1);
                prop_assert_eq!(order.len(), 1);
                let chosen = waiting.remove(order[0]);
                rank += 1;
                served_at += 1;
                loads.insert(chosen.tenant.clone(), TenantLoad { in_flight: 0, last_served: Some(at(served_at)), room: None });
                if chosen.tenant != tenant(0) {
                    prop_assert!(rank <= small + 1, "a small tenant's first run came at rank {rank}");
                }
            }
        }
    }
}
