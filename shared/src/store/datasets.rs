//! Dataset records.

use super::keys::{PK, SK, dataset_sk, tenant_pk};
use super::{Store, StoreError, from_item, is_condition_failure, n, s, to_item};
use crate::domain::{DatasetId, DatasetRecord, TenantId};

impl Store {
    /// Records a new dataset; an id already used is an error, not an overwrite.
    pub async fn put_dataset(&self, dataset: &DatasetRecord) -> Result<(), StoreError> {
        let mut item = to_item("dataset", dataset)?;
        item.insert(PK.to_owned(), s(tenant_pk(&dataset.tenant_id)));
        item.insert(SK.to_owned(), s(dataset_sk(&dataset.id)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::AlreadyExists {
                kind: "dataset",
                id: dataset.id.to_string(),
            }),
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    pub async fn get_dataset(
        &self,
        tenant: &TenantId,
        dataset_id: &DatasetId,
    ) -> Result<DatasetRecord, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(dataset_sk(dataset_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?
            .item;
        match item {
            Some(item) => from_item("dataset", item),
            None => Err(StoreError::NotFound {
                kind: "dataset",
                id: dataset_id.to_string(),
            }),
        }
    }

    /// Stores a changed dataset (e.g. a new provider file id) if nobody
    /// changed it since `dataset.version`; returns it at its new version.
    pub async fn update_dataset(
        &self,
        dataset: &DatasetRecord,
    ) -> Result<DatasetRecord, StoreError> {
        let mut next = dataset.clone();
        next.version = dataset.version + 1;
        let mut item = to_item("dataset", &next)?;
        item.insert(PK.to_owned(), s(tenant_pk(&next.tenant_id)));
        item.insert(SK.to_owned(), s(dataset_sk(&next.id)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(dataset.version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(e) if is_condition_failure(&e) => Err(StoreError::VersionConflict {
                kind: "dataset",
                id: dataset.id.to_string(),
                expected: dataset.version,
            }),
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }
}
