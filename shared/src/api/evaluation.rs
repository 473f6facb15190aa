//! `GET /runs/{id}/evaluation` (job-status): a run's evaluated examples,
//! one row each (prompt excerpt, reference, both answers and their
//! scores, the judge's verdicts), in example order, paginated. Rows are
//! read from the run's prefix in the bucket, under the caller's tenant:
//! another tenant's run is not found, its rows never listed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt, TryStreamExt};

use super::input::{FieldError, PageParams};
use super::job_status::{GetRunError, read_run};
use crate::blob::keys::evaluation_rows_prefix;
use crate::blob::{BlobError, Blobs};
use crate::domain::TenantId;
use crate::evaluation::row::EvaluationRow;
use crate::store::{Page, Store, StoreError};

/// Rows read from the bucket at once.
const READS_AT_ONCE: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ListEvaluationError {
    #[error("run not found")]
    NotFound,
    #[error("invalid query parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error(transparent)]
    Store(StoreError),
    #[error("the evaluation's rows could not be read: {0}")]
    Rows(#[source] BlobError),
}

/// A page of the run's rows after `cursor` (the last row's key name,
/// opaque to the caller).
pub async fn list_run_evaluation(
    store: &Store,
    blobs: &Blobs,
    tenant: &TenantId,
    id: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Page<EvaluationRow>, ListEvaluationError> {
    let params =
        PageParams::parse(limit, cursor).map_err(|e| ListEvaluationError::InvalidQuery(vec![e]))?;
    let run = read_run(store, tenant, id).await.map_err(|e| match e {
        GetRunError::NotFound => ListEvaluationError::NotFound,
        GetRunError::Store(e) => ListEvaluationError::Store(e),
    })?;
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let prefix = evaluation_rows_prefix(&run.tenant_id, &run.id);
    let keys: Vec<String> = blobs
        .list_prefix(&prefix)
        .await
        .map_err(ListEvaluationError::Rows)?
        .into_iter()
        .map(|o| o.key)
        // In bounds: ListObjectsV2 under `prefix` names only keys that
        // start with it (the slices below cut exactly that prefix off).
        .filter(|k| after.as_deref().is_none_or(|a| k[prefix.len()..] > *a))
        .collect();
    let more = keys.len() > params.limit;
    let page: Vec<String> = keys.into_iter().take(params.limit).collect();
    let next_cursor = more
        .then(|| {
            page.last()
                .map(|k| URL_SAFE_NO_PAD.encode(&k[prefix.len()..]))
        })
        .flatten();
    let items: Vec<EvaluationRow> = futures::stream::iter(page)
        .map(|key| async move { blobs.get_json::<EvaluationRow>(&key).await })
        .buffered(READS_AT_ONCE)
        .try_collect()
        .await
        .map_err(ListEvaluationError::Rows)?;
    Ok(Page { items, next_cursor })
}

/// A cursor is the base64url of a row's name (`000042.json`); anything
/// else is refused as not from this listing.
fn decode_cursor(cursor: &str) -> Result<String, ListEvaluationError> {
    let invalid = || {
        ListEvaluationError::InvalidQuery(vec![FieldError::new(
            "cursor",
            "is not a cursor from this listing",
        )])
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| invalid())?;
    let name = String::from_utf8(bytes).map_err(|_| invalid())?;
    let digits = name.strip_suffix(".json").ok_or_else(invalid)?;
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(name)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_a_row_name_and_nothing_else() {
        let cursor = URL_SAFE_NO_PAD.encode("000042.json");
        assert_eq!(decode_cursor(&cursor).unwrap(), "000042.json");
        for forged in ["../x.json", "42.json", "000042", "%%%"] {
            let cursor = URL_SAFE_NO_PAD.encode(forged);
            assert!(decode_cursor(&cursor).is_err(), "{forged}");
        }
        assert!(decode_cursor("%%%").is_err());
    }
}
