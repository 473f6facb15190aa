//! The pipeline's vocabulary: runs, datasets, jobs, events, training
//! curves, models and their ids. Pure data and rules; every I/O module
//! speaks in these types. The small value types (a train split, a date
//! range, example bounds, a provider's name, ids) check themselves when
//! built, so a value that exists is valid and nothing downstream checks it
//! again.

pub mod curve;
pub mod dataset;
pub mod dates;
pub mod evaluation;
pub mod event;
pub mod examples;
pub mod fleet;
pub mod ids;
pub mod job;
pub mod model;
pub mod provider;
pub mod run;
pub mod split;
pub mod tenant_text;

pub use dataset::{DatasetFile, DatasetRecord, ProviderFile};
pub use dates::{DateRange, DateRangeError};
pub use evaluation::{
    ActivationDecision, ActivationPolicy, EvaluationConfig, EvaluationRecord, EvaluationStatus,
    ScoredModel, ServingChoice,
};
pub use event::{EventLevel, EventSource, RunEvent};
pub use examples::{ExampleBounds, ExampleBoundsError};
pub use ids::{DatasetId, EventId, IdError, IdempotencyKey, ModelId, RunId, TenantId};
pub use job::{JobInfo, JobStatus};
pub use model::{ActiveModel, ModelCheckpoint, ModelRecord, ModelStatus, WeightsFile};
pub use provider::{ProviderKind, UnknownProvider};
pub use run::{
    AutoOr, Filters, Hyperparameters, NewRun, Run, RunConfig, RunError, RunStats, RunStatus,
    TransitionError, Waiting,
};
pub use split::{TrainSplit, TrainSplitError};
