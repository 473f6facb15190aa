//! What Bedrock accepts per base model: hyperparameter names and ranges,
//! record counts and per-record size. One table, read through the Bedrock
//! profile by the API (to refuse a bad request with every problem listed)
//! and the dataset preparation (to write records Bedrock will take), and
//! by the adapter (to build the call).
//!
//! Hyperparameters, from Bedrock's "Amazon Nova Understanding model
//! customization hyperparameters" page (docs.aws.amazon.com/bedrock/latest/
//! userguide/cm-hp-nova-mm.html): Nova Micro, Lite and Pro take exactly
//! `epochCount` (integer 1–5, default 2), `learningRate` (float 1e-6–1e-4,
//! default 1e-5) and `learningRateWarmupSteps` (integer 0–100, default 10).
//! No `batchSize` for Nova (Titan models have one).
//!
//! Record limits are ESTIMATES from memory of Bedrock's Nova fine-tuning
//! quotas (not found in the reference material at hand): 8 to 20,000
//! training records, at most 1,000 validation records, about 32,000 tokens
//! per record for text. Nova's tokenizer is not public, so tokens are
//! counted with o200k_base, itself an estimate. Check the "Sum of training
//! and validation records" quotas before relying on the edges.

use std::collections::HashMap;

use crate::domain::{AutoOr, Hyperparameters};
use crate::provider::profile::FieldProblem;

/// An inclusive range of a numeric hyperparameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
}

impl<T: PartialOrd + Copy> Range<T> {
    pub fn contains(&self, v: T) -> bool {
        self.min <= v && v <= self.max
    }
}

/// One Bedrock base-model family's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelLimits {
    /// Base model ids starting with this belong to the family.
    pub prefix: &'static str,
    pub epoch_count: Range<u32>,
    pub learning_rate: Range<f64>,
    pub warmup_steps: Range<u32>,
    /// Bedrock's own default epochs, for the cost estimate.
    pub default_epochs: u32,
    pub min_train_records: u64,
    pub max_train_records: u64,
    pub max_validation_records: u64,
    pub max_tokens_per_record: usize,
}

const NOVA: ModelLimits = ModelLimits {
    prefix: "amazon.nova-",
    epoch_count: Range { min: 1, max: 5 },
    learning_rate: Range {
        min: 1e-6,
        max: 1e-4,
    },
    warmup_steps: Range { min: 0, max: 100 },
    default_epochs: 2,
    // Estimates (see the module docs).
    min_train_records: 8,
    max_train_records: 20_000,
    max_validation_records: 1_000,
    max_tokens_per_record: 32_000,
};

/// Longest prefix first; Micro, Lite and Pro share one set of limits.
const MODELS: &[ModelLimits] = &[
    ModelLimits {
        prefix: "amazon.nova-micro",
        ..NOVA
    },
    ModelLimits {
        prefix: "amazon.nova-lite",
        ..NOVA
    },
    ModelLimits {
        prefix: "amazon.nova-pro",
        ..NOVA
    },
];

/// The limits of a Bedrock base model, if this service knows its family.
pub fn limits_for(base_model: &str) -> Option<&'static ModelLimits> {
    MODELS.iter().find(|m| base_model.starts_with(m.prefix))
}

/// A hyperparameter a model does not take, or takes in another range:
/// the field as the API names it, and a sentence.
pub type HyperparameterProblem = FieldProblem;

fn problem(field: &'static str, message: impl Into<String>) -> HyperparameterProblem {
    FieldProblem::new(field, message)
}

/// Every problem with `h` for `base_model` on Bedrock (empty: fine).
pub fn check(h: &Hyperparameters, base_model: &str) -> Vec<HyperparameterProblem> {
    let mut out = Vec::new();
    let Some(limits) = limits_for(base_model) else {
        out.push(problem(
            "config.base_model",
            format!("{base_model} is not a Bedrock model this service knows how to fine-tune"),
        ));
        return out;
    };
    if !h.learning_rate_multiplier.is_auto() {
        out.push(problem(
            "config.hyperparameters.learning_rate_multiplier",
            "is OpenAI's; Bedrock takes an absolute learning_rate instead",
        ));
    }
    if !h.batch_size.is_auto() {
        out.push(problem(
            "config.hyperparameters.batch_size",
            format!("{base_model} takes no batch size on Bedrock"),
        ));
    }
    if let AutoOr::Value(n) = h.n_epochs
        && !limits.epoch_count.contains(n)
    {
        out.push(problem(
            "config.hyperparameters.n_epochs",
            format!(
                "must be from {} to {} for {base_model} (Bedrock epochCount)",
                limits.epoch_count.min, limits.epoch_count.max
            ),
        ));
    }
    if let AutoOr::Value(rate) = h.learning_rate
        && !limits.learning_rate.contains(rate)
    {
        out.push(problem(
            "config.hyperparameters.learning_rate",
            format!(
                "must be from {:e} to {:e} for {base_model} (Bedrock learningRate)",
                limits.learning_rate.min, limits.learning_rate.max
            ),
        ));
    }
    if let AutoOr::Value(steps) = h.learning_rate_warmup_steps
        && !limits.warmup_steps.contains(steps)
    {
        out.push(problem(
            "config.hyperparameters.learning_rate_warmup_steps",
            format!(
                "must be from {} to {} for {base_model} (Bedrock learningRateWarmupSteps)",
                limits.warmup_steps.min, limits.warmup_steps.max
            ),
        ));
    }
    out
}

/// The `hyperParameters` map of a create call: Bedrock's names, string
/// values (its wire type), and nothing for `"auto"` so Bedrock's own
/// default applies. Refuses what [`check`] refuses.
pub fn to_bedrock(
    h: &Hyperparameters,
    base_model: &str,
) -> Result<HashMap<String, String>, Vec<HyperparameterProblem>> {
    let problems = check(h, base_model);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = HashMap::new();
    if let AutoOr::Value(n) = h.n_epochs {
        out.insert("epochCount".to_owned(), n.to_string());
    }
    if let AutoOr::Value(rate) = h.learning_rate {
        out.insert("learningRate".to_owned(), format!("{rate:e}"));
    }
    if let AutoOr::Value(steps) = h.learning_rate_warmup_steps {
        out.insert("learningRateWarmupSteps".to_owned(), steps.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICRO: &str = "amazon.nova-micro-v1:0:128k";

    #[test]
    fn every_nova_size_has_the_documented_ranges() {
        for model in [
            MICRO,
            "amazon.nova-lite-v1:0:300k",
            "amazon.nova-pro-v1:0:300k",
        ] {
            let l = limits_for(model).unwrap();
            assert_eq!(l.epoch_count, Range { min: 1, max: 5 }, "{model}");
            assert_eq!(l.warmup_steps, Range { min: 0, max: 100 }, "{model}");
            assert_eq!(l.learning_rate.min, 1e-6);
            assert_eq!(l.learning_rate.max, 1e-4);
        }
        assert!(limits_for("anthropic.claude-3-haiku").is_none());
    }

    #[test]
    fn values_map_to_bedrock_names_as_strings_and_auto_is_left_out() {
        let h = Hyperparameters {
            n_epochs: AutoOr::Value(3),
            learning_rate: AutoOr::Value(0.00002),
            learning_rate_warmup_steps: AutoOr::Value(15),
            ..Default::default()
        };
        let map = to_bedrock(&h, MICRO).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map["epochCount"], "3");
        assert_eq!(map["learningRate"], "2e-5");
        assert_eq!(map["learningRateWarmupSteps"], "15");
        assert!(
            to_bedrock(&Hyperparameters::default(), MICRO)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn out_of_range_and_foreign_hyperparameters_are_all_reported() {
        let h = Hyperparameters {
            n_epochs: AutoOr::Value(6),
            batch_size: AutoOr::Value(8),
            learning_rate_multiplier: AutoOr::Value(2.0),
            learning_rate: AutoOr::Value(0.001),
            learning_rate_warmup_steps: AutoOr::Value(101),
            ..Hyperparameters::default()
        };
        let fields: Vec<&str> = to_bedrock(&h, MICRO)
            .unwrap_err()
            .iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "config.hyperparameters.learning_rate_multiplier",
                "config.hyperparameters.batch_size",
                "config.hyperparameters.n_epochs",
                "config.hyperparameters.learning_rate",
                "config.hyperparameters.learning_rate_warmup_steps",
            ]
        );
    }

    #[test]
    fn the_range_edges_are_accepted() {
        for (epochs, rate, steps) in [(1, 1e-6, 0), (5, 1e-4, 100)] {
            let h = Hyperparameters {
                n_epochs: AutoOr::Value(epochs),
                learning_rate: AutoOr::Value(rate),
                learning_rate_warmup_steps: AutoOr::Value(steps),
                ..Default::default()
            };
            assert_eq!(check(&h, MICRO), vec![], "{epochs} {rate} {steps}");
        }
    }
}
