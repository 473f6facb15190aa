//! The pipeline's vocabulary: runs, datasets, jobs, events, training
//! curves, models and their ids.
//! Pure data and rules; every I/O module speaks in these types.

pub mod curve;
pub mod dataset;
pub mod event;
pub mod ids;
pub mod job;
pub mod model;
pub mod run;

pub use dataset::{DatasetFile, DatasetRecord, ProviderFile};
pub use event::{EventLevel, EventSource, RunEvent};
pub use ids::{DatasetId, EventId, IdError, IdempotencyKey, ModelId, RunId, TenantId};
pub use job::{JobInfo, JobStatus};
pub use model::{ActiveModel, ModelCheckpoint, ModelRecord, ModelStatus};
pub use run::{
    AutoOr, Filters, Hyperparameters, NewRun, ProviderKind, Run, RunConfig, RunError, RunStats,
    RunStatus, TransitionError,
};
