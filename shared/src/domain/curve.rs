//! A run's training curve: the step metrics its job reported, kept bounded
//! so the record stays small whatever the job's length.

use serde::{Deserialize, Serialize};

/// At most this many points are kept. Past it, every other point is
/// dropped (the first and the newest always stay): a curve of a few
/// hundred points draws the same as one of ten thousand, and the record
/// stays around 10 KB.
pub const MAX_POINTS: usize = 256;

/// One step's metrics, as the provider reported them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub step: u64,
    #[serde(default)]
    pub train_loss: Option<f64>,
    #[serde(default)]
    pub valid_loss: Option<f64>,
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    #[serde(default)]
    pub valid_accuracy: Option<f64>,
    /// Over the whole validation file, where the provider computed it (at
    /// OpenAI's checkpoints, Bedrock's validation runs); `valid_loss` is
    /// over one batch.
    #[serde(default)]
    pub full_valid_loss: Option<f64>,
}

impl MetricPoint {
    /// Reads a provider metrics event's `data` in OpenAI's shape
    /// (`step`, `train_loss`, `valid_loss`, `train_mean_token_accuracy`,
    /// `valid_mean_token_accuracy`, optionally `total_steps`). Adapters
    /// whose providers report otherwise map to this shape.
    pub fn from_event_data(data: &serde_json::Value) -> Option<(Self, Option<u64>)> {
        let step = data.get("step")?.as_u64()?;
        let number = |name: &str| data.get(name).and_then(serde_json::Value::as_f64);
        let point = Self {
            step,
            train_loss: number("train_loss"),
            valid_loss: number("valid_loss"),
            train_accuracy: number("train_mean_token_accuracy"),
            valid_accuracy: number("valid_mean_token_accuracy"),
            full_valid_loss: number("full_valid_loss"),
        };
        let total = data.get("total_steps").and_then(serde_json::Value::as_u64);
        Some((point, total))
    }

    /// A point with only its step: the fields are then set by name.
    pub fn at(step: u64) -> Self {
        Self {
            step,
            train_loss: None,
            valid_loss: None,
            train_accuracy: None,
            valid_accuracy: None,
            full_valid_loss: None,
        }
    }

    /// This point with `newer`'s values where it has them: sources that
    /// report different metrics for one step (an event's batch losses, a
    /// checkpoint's full validation loss) add up instead of replacing
    /// each other.
    fn combined(self, newer: &MetricPoint) -> MetricPoint {
        MetricPoint {
            step: self.step,
            train_loss: newer.train_loss.or(self.train_loss),
            valid_loss: newer.valid_loss.or(self.valid_loss),
            train_accuracy: newer.train_accuracy.or(self.train_accuracy),
            valid_accuracy: newer.valid_accuracy.or(self.valid_accuracy),
            full_valid_loss: newer.full_valid_loss.or(self.full_valid_loss),
        }
    }
}

/// The series of a run, ordered by step, one point per step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainingMetrics {
    pub points: Vec<MetricPoint>,
    #[serde(default)]
    pub total_steps: Option<u64>,
}

impl TrainingMetrics {
    /// Adds points (a step seen again takes the values the new point has
    /// and keeps the others, so the same points merged twice change
    /// nothing) and thins the series to [`MAX_POINTS`].
    pub fn merge(&mut self, new: &[MetricPoint], total_steps: Option<u64>) {
        for point in new {
            match self.points.binary_search_by_key(&point.step, |p| p.step) {
                Ok(i) => self.points[i] = self.points[i].combined(point),
                Err(i) => self.points.insert(i, *point),
            }
        }
        if total_steps.is_some() {
            self.total_steps = total_steps;
        }
        while self.points.len() > MAX_POINTS {
            let last = self.points.len() - 1;
            let mut i = 0;
            self.points.retain(|_| {
                let keep = i % 2 == 0 || i == last;
                i += 1;
                keep
            });
        }
    }

    /// The newest step reported.
    pub fn last_step(&self) -> Option<u64> {
        self.points.last().map(|p| p.step)
    }

    pub fn final_train_loss(&self) -> Option<f64> {
        self.points.iter().rev().find_map(|p| p.train_loss)
    }

    /// The newest validation loss, over the whole file where the step has
    /// one (a final checkpoint's), else over a batch.
    pub fn final_valid_loss(&self) -> Option<f64> {
        self.points
            .iter()
            .rev()
            .find_map(|p| p.full_valid_loss.or(p.valid_loss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64, loss: f64) -> MetricPoint {
        MetricPoint {
            train_loss: Some(loss),
            ..MetricPoint::at(step)
        }
    }

    #[test]
    fn metrics_of_one_step_from_two_sources_add_up() {
        let mut m = TrainingMetrics::default();
        let event = MetricPoint {
            valid_loss: Some(1.4),
            ..point(10, 1.2)
        };
        let checkpoint = MetricPoint {
            full_valid_loss: Some(1.3),
            ..MetricPoint::at(10)
        };
        m.merge(&[event], None);
        m.merge(&[checkpoint], None);
        assert_eq!(
            m.points,
            vec![MetricPoint {
                full_valid_loss: Some(1.3),
                ..event
            }]
        );
        assert_eq!(m.final_valid_loss(), Some(1.3));
        let again = m.clone();
        m.merge(&[event, checkpoint], None);
        assert_eq!(m, again);
    }

    #[test]
    fn openai_metrics_event_data_is_read() {
        let data = serde_json::json!({"step": 7, "train_loss": 1.5, "valid_loss": 1.6,
            "train_mean_token_accuracy": 0.7, "valid_mean_token_accuracy": 0.68, "total_steps": 20});
        let (p, total) = MetricPoint::from_event_data(&data).unwrap();
        assert_eq!(
            (p.step, p.train_loss, p.valid_loss),
            (7, Some(1.5), Some(1.6))
        );
        assert_eq!(
            (p.train_accuracy, p.valid_accuracy),
            (Some(0.7), Some(0.68))
        );
        assert_eq!(total, Some(20));
        assert!(MetricPoint::from_event_data(&serde_json::json!({"loss": 1})).is_none());
    }

    #[test]
    fn merging_orders_by_step_and_is_idempotent() {
        let mut m = TrainingMetrics::default();
        m.merge(&[point(3, 1.0), point(1, 2.0)], Some(4));
        m.merge(&[point(2, 1.5), point(3, 1.0)], None);
        let steps: Vec<u64> = m.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, vec![1, 2, 3]);
        assert_eq!(m.total_steps, Some(4));
        let again = m.clone();
        m.merge(&[point(2, 1.5)], None);
        assert_eq!(m, again);
        assert_eq!(m.final_train_loss(), Some(1.0));
        assert_eq!(m.final_valid_loss(), None);
    }

    #[test]
    fn a_long_job_is_thinned_but_keeps_its_ends() {
        let mut m = TrainingMetrics::default();
        let points: Vec<MetricPoint> = (1..=10_000).map(|s| point(s, 1.0)).collect();
        for chunk in points.chunks(100) {
            m.merge(chunk, Some(10_000));
        }
        assert!(m.points.len() <= MAX_POINTS && m.points.len() > MAX_POINTS / 2);
        assert_eq!(m.points.first().map(|p| p.step), Some(1));
        assert_eq!(m.last_step(), Some(10_000));
    }
}
