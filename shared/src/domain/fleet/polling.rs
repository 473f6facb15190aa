//! When a run in training is next looked at, and in which order a tick
//! takes the runs that are due.
//!
//! A job trains for minutes to hours and a tick comes every minute: polling
//! every training run on every tick makes a tick's cost grow with the
//! fleet (10,000 runs, a third of them training, was 6,666 provider calls
//! and 45 s a tick with nothing new). So a run in training is polled again
//! only when it is due: soon after its job starts, then more rarely the
//! longer it has trained, and rarely at all when the provider pushes its
//! job's changes (a push reconciles the run at once; the poll is only the
//! safety net for a push that was lost). Every other phase has work each
//! tick and is always due.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::ProviderKind;

/// How often a job in training is polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollPolicy {
    /// The longest wait between two polls of a job no push reports on;
    /// a young job is polled sooner (a tenth of its age, at least a
    /// minute, never more than this). Zero: every tick.
    pub unpushed: Duration,
    /// The wait between two polls of a job whose provider pushes its
    /// changes. Zero: every tick.
    pub pushed: Duration,
    /// The providers whose job changes reach the monitor as pushes:
    /// Bedrock's EventBridge events always do (the template's rule);
    /// OpenAI's webhooks only once the operator registered the endpoint.
    pub pushing: Vec<ProviderKind>,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            unpushed: Duration::from_secs(600),
            pushed: Duration::from_secs(1800),
            pushing: vec![ProviderKind::Bedrock],
        }
    }
}

/// The shortest wait a young job gets: about one tick.
const SOONEST: Duration = Duration::from_secs(60);

impl PollPolicy {
    /// Every job polled on every tick (a local stack's sandbox moves its
    /// jobs on by polls, not by the clock).
    pub fn every_tick() -> Self {
        Self {
            unpushed: Duration::ZERO,
            pushed: Duration::ZERO,
            ..Self::default()
        }
    }

    /// How long after a poll at `now` of a job that started training at
    /// `training_since` the run is due again. `key` (the run's id) spreads
    /// the waits of many runs over the last fifth of the interval, so runs
    /// polled in one tick do not all come due in the same later one.
    pub fn next_poll(
        &self,
        provider: ProviderKind,
        training_since: DateTime<Utc>,
        now: DateTime<Utc>,
        key: &str,
    ) -> Duration {
        let interval = if self.pushing.contains(&provider) {
            self.pushed
        } else {
            let age = (now - training_since).to_std().unwrap_or_default();
            (age / 10).clamp(SOONEST.min(self.unpushed), self.unpushed)
        };
        if interval.is_zero() {
            return Duration::ZERO;
        }
        // 80 % to 100 % of the interval, the same for the same run and
        // moment (no randomness to seed in a Lambda), different across runs.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (key, now.timestamp_millis()).hash(&mut hasher);
        let spread = (hasher.finish() % 1001) as f64 / 1000.0;
        interval.mul_f64(0.8 + 0.2 * spread)
    }
}

/// The due runs in the order a tick takes them: round-robin across
/// tenants, each tenant's runs in the order given (most overdue first),
/// tenants in the order of their most overdue run. A tenant with 500 runs
/// due takes one turn in each round like a tenant with one, so when the
/// tick's deadline cuts the list, every tenant with work got some; the runs
/// left over stay due and lead the next tick's list, so none starves.
pub fn round_robin<T, K: Ord + Clone>(items: Vec<T>, tenant: impl Fn(&T) -> K) -> Vec<T> {
    let total = items.len();
    let mut order: Vec<K> = Vec::new();
    let mut queues: BTreeMap<K, VecDeque<T>> = BTreeMap::new();
    for item in items {
        let key = tenant(&item);
        let queue = queues.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            VecDeque::new()
        });
        queue.push_back(item);
    }
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for key in &order {
            if let Some(item) = queues.get_mut(key).and_then(VecDeque::pop_front) {
                out.push(item);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_young_job_is_polled_about_every_tick_and_an_old_one_at_most_every_interval() {
        let policy = PollPolicy::default();
        let young = policy.next_poll(ProviderKind::OpenAi, at(0), at(120), "run_a");
        assert!(
            young >= Duration::from_secs(48) && young <= SOONEST,
            "{young:?}"
        );
        let hour = policy.next_poll(ProviderKind::OpenAi, at(0), at(3600), "run_a");
        assert!(hour >= Duration::from_secs(288) && hour <= Duration::from_secs(360));
        let day = policy.next_poll(ProviderKind::OpenAi, at(0), at(86_400), "run_a");
        assert!(day >= Duration::from_secs(480) && day <= Duration::from_secs(600));
    }

    #[test]
    fn a_pushed_job_is_polled_only_as_a_safety_net() {
        let policy = PollPolicy::default();
        let wait = policy.next_poll(ProviderKind::Bedrock, at(0), at(60), "run_a");
        assert!(wait >= Duration::from_secs(1440) && wait <= Duration::from_secs(1800));
    }

    #[test]
    fn zero_intervals_make_every_tick_a_poll() {
        let policy = PollPolicy::every_tick();
        assert_eq!(
            policy.next_poll(ProviderKind::OpenAi, at(0), at(86_400), "r"),
            Duration::ZERO
        );
        assert_eq!(
            policy.next_poll(ProviderKind::Bedrock, at(0), at(60), "r"),
            Duration::ZERO
        );
    }

    #[test]
    fn runs_polled_in_one_tick_come_due_over_a_spread_not_all_at_once() {
        let policy = PollPolicy::default();
        let waits: std::collections::BTreeSet<u64> = (0..200)
            .map(|i| {
                policy
                    .next_poll(ProviderKind::Bedrock, at(0), at(60), &format!("run_{i}"))
                    .as_secs()
            })
            .collect();
        assert!(waits.len() > 100, "only {} distinct waits", waits.len());
    }

    proptest! {
        #[test]
        fn round_robin_keeps_every_run_and_each_tenants_order(
            runs in proptest::collection::vec((0u8..6, 0u32..1000), 0..200)
        ) {
            let ordered = round_robin(runs.clone(), |(tenant, _)| *tenant);
            // nothing lost, nothing added
            let mut a = runs.clone();
            let mut b = ordered.clone();
            a.sort();
            b.sort();
            prop_assert_eq!(a, b);
            // each tenant's runs keep their order
            for tenant in 0u8..6 {
                let before: Vec<_> = runs.iter().filter(|r| r.0 == tenant).collect();
                let after: Vec<_> = ordered.iter().filter(|r| r.0 == tenant).collect();
                prop_assert_eq!(before, after);
            }
        }

        #[test]
        fn no_tenant_gets_a_second_turn_before_every_tenant_with_work_had_its_first(
            runs in proptest::collection::vec((0u8..6, 0u32..1000), 1..200)
        ) {
            let ordered = round_robin(runs.clone(), |(tenant, _)| *tenant);
            let tenants: std::collections::BTreeSet<u8> = runs.iter().map(|r| r.0).collect();
            let first_round: std::collections::BTreeSet<u8> =
                ordered.iter().take(tenants.len()).map(|r| r.0).collect();
            prop_assert_eq!(first_round, tenants);
        }
    }

    #[test]
    fn a_burst_of_one_tenant_does_not_push_back_anothers_single_run() {
        // GIVEN 500 due runs of acme, listed before globex's one
        let mut runs: Vec<(&str, u32)> = (0..500).map(|i| ("acme", i)).collect();
        runs.push(("globex", 0));
        // WHEN the tick orders them
        let ordered = round_robin(runs, |(tenant, _)| *tenant);
        // THEN globex's run is second, not 501st
        assert_eq!(ordered[1], ("globex", 0));
    }
}
