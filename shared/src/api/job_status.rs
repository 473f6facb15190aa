//! The read side: `GET /runs`, `GET /runs/{id}`, `GET /runs/{id}/events`,
//! `GET /runs/{id}/metrics`, `GET /datasets/{id}`. Reads from DynamoDB only; every read is keyed by
//! the caller's tenant, so another tenant's ids are simply not found.

use crate::api::input::{FieldError, PageParams};
use crate::domain::curve::TrainingMetrics;
use crate::domain::{DatasetId, DatasetRecord, Run, RunEvent, RunId, RunStatus, TenantId};
use crate::store::{Page, Store, StoreError};

/// `GET /runs` query, raw from the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRunsQuery {
    pub status: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListRunsError {
    #[error("invalid query parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error(transparent)]
    Store(StoreError),
}

/// The tenant's runs, newest first, optionally of one status.
pub async fn list_runs(
    store: &Store,
    tenant: &TenantId,
    query: &ListRunsQuery,
) -> Result<Page<Run>, ListRunsError> {
    let mut errors = Vec::new();
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => match RunStatus::parse(s) {
            Some(status) => Some(status),
            None => {
                let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(FieldError::new(
                    "status",
                    format!("must be one of: {}", names.join(", ")),
                ));
                None
            }
        },
    };
    let page = PageParams::parse(query.limit.as_deref(), query.cursor.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    let Some(page) = page.filter(|_| errors.is_empty()) else {
        return Err(ListRunsError::InvalidQuery(errors));
    };
    store
        .list_runs(tenant, status, page.limit, page.cursor.as_deref())
        .await
        .map_err(|e| match e {
            StoreError::InvalidCursor => ListRunsError::InvalidQuery(vec![invalid_cursor()]),
            other => ListRunsError::Store(other),
        })
}

fn invalid_cursor() -> FieldError {
    FieldError::new("cursor", "is not a cursor from this listing")
}

#[derive(Debug, thiserror::Error)]
pub enum GetRunError {
    /// Missing, another tenant's, or not even a well-formed id: the same
    /// answer for all three, so ids of other tenants cannot be probed.
    #[error("run not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

/// A run and, when it has one, its dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    pub run: Run,
    pub dataset: Option<DatasetRecord>,
}

pub async fn get_run(store: &Store, tenant: &TenantId, id: &str) -> Result<RunDetail, GetRunError> {
    let run = read_run(store, tenant, id).await?;
    let dataset = match &run.dataset_id {
        None => None,
        Some(ds) => match store.get_dataset(tenant, ds).await {
            Ok(d) => Some(d),
            // Referenced but gone (or not written yet): show the run anyway.
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(GetRunError::Store(e)),
        },
    };
    Ok(RunDetail { run, dataset })
}

/// Reads the tenant's run by its raw path id.
pub(crate) async fn read_run(
    store: &Store,
    tenant: &TenantId,
    id: &str,
) -> Result<Run, GetRunError> {
    let run_id = RunId::parse(id).map_err(|_| GetRunError::NotFound)?;
    match store.get_run(tenant, &run_id).await {
        Ok(run) => Ok(run),
        Err(StoreError::NotFound { .. }) => Err(GetRunError::NotFound),
        Err(e) => Err(GetRunError::Store(e)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListEventsError {
    #[error("run not found")]
    NotFound,
    #[error("invalid query parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error(transparent)]
    Store(StoreError),
}

/// The run's timeline, newest first. The run is read first so that a
/// foreign or missing run is 404 rather than an empty list.
pub async fn list_run_events(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Page<RunEvent>, ListEventsError> {
    let run = read_run(store, tenant, id).await.map_err(|e| match e {
        GetRunError::NotFound => ListEventsError::NotFound,
        GetRunError::Store(e) => ListEventsError::Store(e),
    })?;
    let page =
        PageParams::parse(limit, cursor).map_err(|e| ListEventsError::InvalidQuery(vec![e]))?;
    store
        .list_events(tenant, &run.id, page.limit, page.cursor.as_deref())
        .await
        .map_err(|e| match e {
            StoreError::InvalidCursor => ListEventsError::InvalidQuery(vec![invalid_cursor()]),
            other => ListEventsError::Store(other),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum GetMetricsError {
    #[error("run not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

/// The run's training curve (the run is read first: a foreign or missing
/// run is 404, not an empty series).
pub async fn get_run_metrics(
    store: &Store,
    tenant: &TenantId,
    id: &str,
) -> Result<(Run, TrainingMetrics), GetMetricsError> {
    let run = read_run(store, tenant, id).await.map_err(|e| match e {
        GetRunError::NotFound => GetMetricsError::NotFound,
        GetRunError::Store(e) => GetMetricsError::Store(e),
    })?;
    let metrics = store
        .get_metrics(tenant, &run.id)
        .await
        .map_err(GetMetricsError::Store)?;
    Ok((run, metrics))
}

#[derive(Debug, thiserror::Error)]
pub enum GetDatasetError {
    #[error("dataset not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

pub async fn get_dataset(
    store: &Store,
    tenant: &TenantId,
    id: &str,
) -> Result<DatasetRecord, GetDatasetError> {
    let dataset_id = DatasetId::parse(id).map_err(|_| GetDatasetError::NotFound)?;
    match store.get_dataset(tenant, &dataset_id).await {
        Ok(d) => Ok(d),
        Err(StoreError::NotFound { .. }) => Err(GetDatasetError::NotFound),
        Err(e) => Err(GetDatasetError::Store(e)),
    }
}
