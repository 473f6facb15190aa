//! A run's training curve: one item beside the run (`METRICS#{run_id}`),
//! written only when new metrics arrive, bounded by
//! [`crate::domain::curve::MAX_POINTS`].
//!
//! The series is one compact JSON string (`[step, train, valid, acc, vacc]`
//! rows): about 10 KB at the bound instead of ~30 KB of DynamoDB maps
//! with every field name repeated, and writes are billed by size.

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{PK, SK, metrics_sk, tenant_pk};
use super::{Store, StoreError, is_condition_failure, n, s, string_attr};
use crate::domain::curve::{MetricPoint, TrainingMetrics};
use crate::domain::{RunId, TenantId};

/// Writers that race (the monitor and webhooks following the same job)
/// re-read and merge again; merging is idempotent, so this converges. A
/// writer only loses a round when another one wins it, so with at most
/// this many concurrent writers every one succeeds (two is the usual).
const MERGE_ATTEMPTS: usize = 10;

type Row = (u64, Option<f64>, Option<f64>, Option<f64>, Option<f64>);

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    rows: Vec<Row>,
    total_steps: Option<u64>,
    /// `[step, loss]` of the steps with a whole-file validation loss; apart
    /// from `rows` so series written before it existed still read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    full_valid: Vec<(u64, f64)>,
}

fn encode(m: &TrainingMetrics) -> Result<String, StoreError> {
    let stored = Stored {
        rows: m
            .points
            .iter()
            .map(|p| {
                (
                    p.step,
                    p.train_loss,
                    p.valid_loss,
                    p.train_accuracy,
                    p.valid_accuracy,
                )
            })
            .collect(),
        total_steps: m.total_steps,
        full_valid: m
            .points
            .iter()
            .filter_map(|p| Some((p.step, p.full_valid_loss?)))
            .collect(),
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::dynamo("encode metrics", e))
}

fn decode(series: &str) -> Result<TrainingMetrics, StoreError> {
    let stored: Stored =
        serde_json::from_str(series).map_err(|e| StoreError::dynamo("decode metrics", e))?;
    let full_valid: std::collections::HashMap<u64, f64> = stored.full_valid.into_iter().collect();
    Ok(TrainingMetrics {
        points: stored
            .rows
            .into_iter()
            .map(
                |(step, train_loss, valid_loss, train_accuracy, valid_accuracy)| MetricPoint {
                    step,
                    train_loss,
                    valid_loss,
                    train_accuracy,
                    valid_accuracy,
                    full_valid_loss: full_valid.get(&step).copied(),
                },
            )
            .collect(),
        total_steps: stored.total_steps,
    })
}

impl Store {
    /// The run's series (empty before the job reported any metrics).
    pub async fn get_metrics(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<TrainingMetrics, StoreError> {
        Ok(self.read_metrics(tenant, run).await?.0)
    }

    async fn read_metrics(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<(TrainingMetrics, u64), StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(metrics_sk(run)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?
            .item;
        let Some(item) = item else {
            return Ok((TrainingMetrics::default(), 0));
        };
        let version = match item.get("version") {
            Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
            _ => 0,
        };
        let series = string_attr(&item, "series").unwrap_or_default();
        Ok((decode(&series)?, version))
    }

    /// Adds points to the run's series and returns it merged.
    pub async fn merge_metrics(
        &self,
        tenant: &TenantId,
        run: &RunId,
        points: &[MetricPoint],
        total_steps: Option<u64>,
    ) -> Result<TrainingMetrics, StoreError> {
        for _ in 0..MERGE_ATTEMPTS {
            let (mut metrics, version) = self.read_metrics(tenant, run).await?;
            let before = metrics.clone();
            metrics.merge(points, total_steps);
            if metrics == before {
                return Ok(metrics);
            }
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, s(tenant_pk(tenant)))
                .item(SK, s(metrics_sk(run)))
                .item("series", s(encode(&metrics)?))
                .item("points", n(metrics.points.len()))
                .item("version", n(version + 1));
            put = if version == 0 {
                put.condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
            } else {
                put.condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", n(version))
            };
            match put.send().await {
                Ok(_) => return Ok(metrics),
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(StoreError::dynamo("PutItem", e)),
            }
        }
        Err(StoreError::VersionConflict {
            kind: "metrics",
            id: run.to_string(),
            expected: 0,
        })
    }
}
