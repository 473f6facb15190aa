//! A tenant's limits (runs in flight, monthly spend) and the one decision
//! they make at admission: admit, wait, or refuse for good.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Money in millionths of a dollar: exact to add in DynamoDB (an `ADD` of
/// a float would drift) and fine enough for per-token prices.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Usd(u64);

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// Dollars, rounded up to the next millionth: an estimate reserved is
    /// never less than the estimate. Negative or not-a-number is zero.
    pub fn from_dollars(dollars: f64) -> Self {
        if dollars.is_finite() && dollars > 0.0 {
            Self((dollars * 1_000_000.0).ceil().min(u64::MAX as f64) as u64)
        } else {
            Self::ZERO
        }
    }

    pub fn micros(self) -> u64 {
        self.0
    }

    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    pub fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.2}", self.dollars())
    }
}

/// The calendar month (UTC) a spend counts in, `YYYY-MM`. A cap is per
/// month: what a run reserves counts in the month it was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn of(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// The first day of the next month: when a tenant waiting for budget
    /// can expect room again.
    pub fn next_start(self) -> NaiveDate {
        let (year, month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MAX)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl TryFrom<String> for Month {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let parsed = value.split_once('-').and_then(|(y, m)| {
            let year = y.parse::<i32>().ok()?;
            let month = m.parse::<u32>().ok()?;
            (y.len() == 4 && m.len() == 2 && (1..=12).contains(&month))
                .then_some(Month { year, month })
        });
        parsed.ok_or_else(|| format!("{value:?} is not a month (YYYY-MM)"))
    }
}

impl From<Month> for String {
    fn from(m: Month) -> Self {
        m.to_string()
    }
}

/// What a tenant may have: runs in flight at once (all pools together)
/// and, if capped, what its runs may cost in a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    pub max_in_flight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_cap: Option<Usd>,
}

/// What a tenant has now: runs holding a slot, and this month's money
/// (reserved by runs in flight, settled by runs that ended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub in_flight: u32,
    pub reserved: Usd,
    pub settled: Usd,
}

impl TenantUsage {
    pub fn spent(&self) -> Usd {
        self.reserved.saturating_add(self.settled)
    }
}

/// Why a prepared run is not admitted yet, in the words the run's phase
/// shows. Each clears by itself: a slot frees, a run of the tenant ends,
/// the month turns, the provider's cool-down passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WaitReason {
    Slot {
        /// The pool as people read it, e.g. "OpenAI gpt-4o-mini".
        label: String,
        in_use: u32,
        budget: u32,
    },
    TenantLimit {
        in_flight: u32,
        limit: u32,
    },
    Budget {
        needed: Usd,
        left: Usd,
        until: NaiveDate,
    },
    CoolingDown {
        label: String,
        until: DateTime<Utc>,
    },
}

impl WaitReason {
    pub fn code(&self) -> &'static str {
        match self {
            WaitReason::Slot { .. } => "slot",
            WaitReason::TenantLimit { .. } => "tenant_limit",
            WaitReason::Budget { .. } => "budget",
            WaitReason::CoolingDown { .. } => "provider_busy",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Slot {
                label,
                in_use,
                budget,
            } => write!(
                f,
                "waiting for a {label} slot ({in_use} of {budget} in use)"
            ),
            WaitReason::TenantLimit { in_flight, limit } => write!(
                f,
                "waiting for the tenant's limit ({in_flight} of {limit} runs in flight)"
            ),
            WaitReason::Budget {
                needed,
                left,
                until,
            } => write!(
                f,
                "waiting for budget (needs {needed}, {left} left this month; more from {until})"
            ),
            WaitReason::CoolingDown { label, until } => write!(
                f,
                "waiting: {label} is busy, trying again after {}",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        }
    }
}

/// Why a run can never be admitted under the tenant's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetExceeded {
    #[error(
        "the run's estimated cost {estimate} is more than the tenant's monthly cap {cap}; \
         lower max_examples or n_epochs, or ask the operator for a higher cap"
    )]
    EstimateAboveCap { estimate: Usd, cap: Usd },
    #[error(
        "the base model has no known price, so its cost cannot be held against the \
         tenant's monthly cap {cap}; choose a priced model"
    )]
    PriceUnknown { cap: Usd },
}

/// The tenant-side answer for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendDecision {
    /// The tenant has room: reserve this much.
    Admit {
        reserve: Usd,
    },
    Wait(WaitReason),
    Refuse(BudgetExceeded),
}

/// Whether a run estimated at `estimate` (none: the price is unknown) may
/// start now for a tenant with `limits` and `usage` in `month`. Refusal
/// is only for what waiting cannot fix.
pub fn judge(
    estimate: Option<Usd>,
    limits: TenantLimits,
    usage: TenantUsage,
    month: Month,
) -> SpendDecision {
    if let Some(cap) = limits.monthly_cap {
        let Some(estimate) = estimate else {
            return SpendDecision::Refuse(BudgetExceeded::PriceUnknown { cap });
        };
        if estimate > cap {
            return SpendDecision::Refuse(BudgetExceeded::EstimateAboveCap { estimate, cap });
        }
    }
    if usage.in_flight >= limits.max_in_flight {
        return SpendDecision::Wait(WaitReason::TenantLimit {
            in_flight: usage.in_flight,
            limit: limits.max_in_flight,
        });
    }
    let reserve = estimate.unwrap_or(Usd::ZERO);
    if let Some(cap) = limits.monthly_cap {
        let left = cap.saturating_sub(usage.spent());
        if reserve > left {
            return SpendDecision::Wait(WaitReason::Budget {
                needed: reserve,
                left,
                until: month.next_start(),
            });
        }
    }
    SpendDecision::Admit { reserve }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn month() -> Month {
        Month::try_from("2026-12".to_owned()).unwrap()
    }

    fn limits(max_in_flight: u32, cap: Option<f64>) -> TenantLimits {
        TenantLimits {
            max_in_flight,
            monthly_cap: cap.map(Usd::from_dollars),
        }
    }

    #[test]
    fn money_rounds_up_to_the_micro_dollar_and_never_goes_negative() {
        assert_eq!(Usd::from_dollars(0.0000011).micros(), 2);
        assert_eq!(Usd::from_dollars(-3.0), Usd::ZERO);
        assert_eq!(Usd::from_dollars(f64::NAN), Usd::ZERO);
        assert_eq!(Usd::from_dollars(12.5).to_string(), "$12.50");
    }

    #[test]
    fn a_month_reads_back_and_knows_when_the_next_begins() {
        let december = month();
        assert_eq!(december.to_string(), "2026-12");
        assert_eq!(
            december.next_start(),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
        assert!(Month::try_from("2026-13".to_owned()).is_err());
        assert!(Month::try_from("26-01".to_owned()).is_err());
    }

    #[test]
    fn given_a_cap_when_the_estimate_alone_is_above_it_then_the_run_is_refused() {
        let decision = judge(
            Some(Usd::from_dollars(60.0)),
            limits(5, Some(50.0)),
            TenantUsage::default(),
            month(),
        );
        assert!(matches!(
            decision,
            SpendDecision::Refuse(BudgetExceeded::EstimateAboveCap { .. })
        ));
    }

    #[test]
    fn given_a_cap_when_the_price_is_unknown_then_the_run_is_refused() {
        let decision = judge(None, limits(5, Some(50.0)), TenantUsage::default(), month());
        assert!(matches!(
            decision,
            SpendDecision::Refuse(BudgetExceeded::PriceUnknown { .. })
        ));
        assert_eq!(
            judge(None, limits(5, None), TenantUsage::default(), month()),
            SpendDecision::Admit { reserve: Usd::ZERO }
        );
    }

    #[test]
    fn given_a_half_spent_cap_when_a_second_run_needs_more_than_is_left_then_it_waits_for_next_month()
     {
        let usage = TenantUsage {
            in_flight: 1,
            reserved: Usd::from_dollars(30.0),
            settled: Usd::ZERO,
        };
        let decision = judge(
            Some(Usd::from_dollars(30.0)),
            limits(5, Some(50.0)),
            usage,
            month(),
        );
        let SpendDecision::Wait(reason) = decision else {
            panic!("expected a wait, got {decision:?}")
        };
        assert_eq!(reason.code(), "budget");
        assert_eq!(
            reason.to_string(),
            "waiting for budget (needs $30.00, $20.00 left this month; more from 2027-01-01)"
        );
    }

    #[test]
    fn a_tenant_at_its_in_flight_limit_waits() {
        let usage = TenantUsage {
            in_flight: 2,
            ..Default::default()
        };
        let decision = judge(
            Some(Usd::from_dollars(1.0)),
            limits(2, None),
            usage,
            month(),
        );
        assert_eq!(
            decision,
            SpendDecision::Wait(WaitReason::TenantLimit {
                in_flight: 2,
                limit: 2
            })
        );
    }

    proptest! {
        /// Whatever the usage, an admitted run never takes the month's
        /// spend past the cap, and a refusal happens only when waiting
        /// could not help.
        #[test]
        fn admission_never_takes_a_tenant_past_its_cap(
            cap in 0u64..10_000_000,
            reserved in 0u64..10_000_000,
            settled in 0u64..10_000_000,
            estimate in proptest::option::of(0u64..10_000_000),
            in_flight in 0u32..4,
        ) {
            let usage = TenantUsage {
                in_flight,
                reserved: Usd::from_micros(reserved),
                settled: Usd::from_micros(settled),
            };
            let limits = TenantLimits { max_in_flight: 3, monthly_cap: Some(Usd::from_micros(cap)) };
            match judge(estimate.map(Usd::from_micros), limits, usage, month()) {
                SpendDecision::Admit { reserve } => {
                    prop_assert!(usage.spent().saturating_add(reserve).micros() <= cap);
                    prop_assert!(in_flight < 3);
                }
                SpendDecision::Refuse(_) => {
                    prop_assert!(estimate.is_none_or(|e| e > cap));
                }
                SpendDecision::Wait(_) => {
                    prop_assert!(estimate.is_some_and(|e| e <= cap));
                }
            }
        }
    }
}
