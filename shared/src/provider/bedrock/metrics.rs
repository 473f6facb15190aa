//! Bedrock's step metrics: CSV files it writes beside a job's output when
//! the job ends (its API returns only the final losses).
//!
//! ```text
//! {output}/model-customization-job-{id}/training_artifacts/step_wise_training_metrics.csv
//!     step_number,epoch_number,training_loss,perplexity
//! {output}/model-customization-job-{id}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv
//!     step_number,epoch_number,validation_loss,perplexity
//! ```
//!
//! Columns are found by name, so an added or reordered column reads the
//! same. Rows that do not parse are counted and skipped, not fatal.

use tokio::io::AsyncBufReadExt;

use crate::domain::curve::MetricPoint;

/// The training file, by the end of its key.
pub const TRAINING_FILE: &str = "training_artifacts/step_wise_training_metrics.csv";
/// The validation file, by the end of its key.
pub const VALIDATION_FILE: &str = "validation_metrics.csv";

/// More rows than this are not read: a curve is thinned to a few hundred
/// points anyway, and a file is read whole into one monitor tick.
pub const MAX_ROWS: usize = 200_000;

/// Which loss a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Training,
    Validation,
}

impl Series {
    fn column(self) -> &'static str {
        match self {
            Series::Training => "training_loss",
            Series::Validation => "validation_loss",
        }
    }

    fn point(self, step: u64, loss: f64) -> MetricPoint {
        match self {
            Series::Training => MetricPoint {
                train_loss: Some(loss),
                ..MetricPoint::at(step)
            },
            // Bedrock validates on the whole validation file.
            Series::Validation => MetricPoint {
                full_valid_loss: Some(loss),
                ..MetricPoint::at(step)
            },
        }
    }
}

/// A file's points and how many rows were skipped.
#[derive(Debug, Default, PartialEq)]
pub struct ParsedSeries {
    pub points: Vec<MetricPoint>,
    pub skipped: usize,
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsFileError {
    #[error("the metrics file has no header row naming step_number and {0}")]
    MissingColumns(&'static str),
    #[error("reading the metrics file: {0}")]
    Read(String),
}

/// Reads one CSV file (streamed: the file is never held whole).
pub async fn parse(
    reader: impl tokio::io::AsyncBufRead + Unpin,
    series: Series,
) -> Result<ParsedSeries, MetricsFileError> {
    let mut lines = reader.lines();
    let read = |e: std::io::Error| MetricsFileError::Read(e.to_string());
    let header = lines.next_line().await.map_err(read)?.unwrap_or_default();
    let names: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    let find = |name: &str| names.iter().position(|n| *n == name);
    let (Some(step_at), Some(loss_at)) = (find("step_number"), find(series.column())) else {
        return Err(MetricsFileError::MissingColumns(series.column()));
    };
    let mut parsed = ParsedSeries::default();
    let mut rows = 0;
    while let Some(line) = lines.next_line().await.map_err(read)? {
        if line.trim().is_empty() {
            continue;
        }
        rows += 1;
        if rows > MAX_ROWS {
            parsed.skipped += 1;
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let step = fields.get(step_at).and_then(|s| s.parse::<u64>().ok());
        let loss = fields
            .get(loss_at)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|l| l.is_finite());
        match (step, loss) {
            (Some(step), Some(loss)) => parsed.points.push(series.point(step, loss)),
            _ => parsed.skipped += 1,
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn training_rows_become_train_losses_by_column_name() {
        let csv = "step_number,epoch_number,training_loss,perplexity\n\
                   0,0,2.5,12.1\n1,0,2.25,9.5\n\n2,1,nan,1\nx,1,1.0,1\n3,1,1.75,5.7\n";
        let parsed = parse(csv.as_bytes(), Series::Training).await.unwrap();
        let losses: Vec<(u64, Option<f64>)> = parsed
            .points
            .iter()
            .map(|p| (p.step, p.train_loss))
            .collect();
        assert_eq!(
            losses,
            vec![(0, Some(2.5)), (1, Some(2.25)), (3, Some(1.75))]
        );
        assert_eq!(parsed.skipped, 2);
    }

    #[tokio::test]
    async fn validation_rows_are_whole_file_losses_and_columns_may_move() {
        let csv = "validation_loss,step_number,perplexity\r\n1.5,10,4.4\r\n";
        let parsed = parse(csv.as_bytes(), Series::Validation).await.unwrap();
        assert_eq!(
            parsed.points,
            vec![MetricPoint {
                full_valid_loss: Some(1.5),
                ..MetricPoint::at(10)
            }]
        );
    }

    #[tokio::test]
    async fn a_file_without_the_columns_is_refused_by_name() {
        let err = parse("a,b\n1,2\n".as_bytes(), Series::Training)
            .await
            .unwrap_err();
        assert_eq!(err, MetricsFileError::MissingColumns("training_loss"));
        assert!(parse("".as_bytes(), Series::Validation).await.is_err());
    }
}
