//! The API's operations, one module per function, each a plain async fn
//! over the store (and the providers' job controls for cancel and models)
//! with its own error enum. No HTTP here: what every operation reads the
//! same way (field errors, page parameters) is in [`input`], and
//! `crate::http` maps the errors to problem+json in one place.

pub mod cancel;
pub mod download;
pub mod evaluation;
pub mod input;
pub mod job_status;
pub mod limits;
pub mod models;
pub mod start_run;
pub mod view;

pub use cancel::{CancelError, CancelOutcome, cancel_run};
pub use input::{FieldError, PageParams};
pub use job_status::{
    GetDatasetError, GetRunError, ListEventsError, ListRunsError, ListRunsQuery, RunDetail,
    get_dataset, get_run, list_run_events, list_runs,
};
pub use limits::{GetLimitsError, TenantFleet, get_limits};
pub use start_run::{StartRunError, StartRunRequest, start_run, validate};
