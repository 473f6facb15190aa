//! Creates the table as `template.yaml` declares it, for the local stack
//! (tests, the demo). Production tables come from the template only; keep
//! the two in step.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use super::StoreError;
use super::keys::{ACTIVE_INDEX, ACTIVE_PK, ACTIVE_SK, PK, SK, WORK_INDEX, WORK_PK, WORK_SK};

fn attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| StoreError::dynamo("build table", e))
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| StoreError::dynamo("build table", e))
}

/// A keys-only index on `pk`/`sk` (sparse: only items with both are in it).
fn sparse_index(name: &str, pk: &str, sk: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::dynamo("build table", e))
}

/// Creates the table with its sparse active-runs and work indexes. An existing table
/// of that name is left as it is.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let index = sparse_index(ACTIVE_INDEX, ACTIVE_PK, ACTIVE_SK)?;
    let work = sparse_index(WORK_INDEX, WORK_PK, WORK_SK)?;
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(SK)?)
        .attribute_definitions(attribute(ACTIVE_PK)?)
        .attribute_definitions(attribute(ACTIVE_SK)?)
        .attribute_definitions(attribute(WORK_PK)?)
        .attribute_definitions(attribute(WORK_SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index)
        .global_secondary_indexes(work)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(StoreError::dynamo("CreateTable", e)),
    }
}
