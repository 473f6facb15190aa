//! Many runs, few slots: what a run waits for before a provider sees it.
//!
//! A provider takes only so many fine-tuning jobs at once (OpenAI per base
//! model, Bedrock per account and region, Together per account). A run
//! that is prepared waits for a slot of its [`PoolId`], for its tenant's
//! in-flight limit and for room in its tenant's monthly spend cap; when a
//! slot frees, [`fair_share`] says whose run goes next. Everything here is
//! pure: the store keeps the pools and the spend, the pipeline's admission
//! pass asks these functions what to do.

pub mod fair_share;
pub mod polling;
pub mod pool;
pub mod settings;
pub mod spend;

pub use fair_share::{Candidate, TenantLoad, admission_order};
pub use polling::PollPolicy;
pub use pool::{Admission, PoolBudget, PoolId, PoolIdError};
pub use settings::FleetSettings;
pub use spend::{
    BudgetExceeded, Month, SpendDecision, TenantLimits, TenantUsage, Usd, WaitReason, judge,
};
