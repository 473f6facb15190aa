//! OpenAI's profile: the chat format, its base models and their token
//! limits, the hyperparameters it takes, its prices, and how its models
//! are served. Pure data; the calls are in the adapter ([`super`]).

use crate::dataset::DatasetFormat;
use crate::dataset::check::DEFAULT_MAX_TOKENS_PER_EXAMPLE;
use crate::dataset::format::{ChatFormat, ExampleFormat};
use crate::dataset::stats;
use crate::dataset::tokens::Encoding;
use crate::domain::{ProviderKind, RunConfig};
use crate::evaluation::Price;
use crate::provider::profile::{
    BaseModels, DatasetLimits, FieldProblem, Profile, Serving, UnknownModel, price_by_prefix,
};
use crate::provider::shutdown::{self, ProviderDates};

/// The base models a run may name unless `ALLOWED_BASE_MODELS` says
/// otherwise (`template.yaml`'s `AllowedBaseModels` states the same).
pub const DEFAULT_BASE_MODELS: &str = "gpt-4o-mini-2024-07-18,gpt-4o-2024-08-06,gpt-4.1-2025-04-14,gpt-4.1-mini-2025-04-14,gpt-4.1-nano-2025-04-14";

/// The judges a run may name unless `OPENAI_JUDGE_MODELS` says otherwise:
/// snapshots priced in [`BASE_INFERENCE_USD_PER_1M`], none of the premium
/// reasoning models (a tenant's judge calls are paid by the deployment).
pub const DEFAULT_JUDGE_MODELS: &str =
    "gpt-4.1-2025-04-14,gpt-4.1-mini-2025-04-14,gpt-4o-2024-08-06,gpt-4o-mini-2024-07-18";

/// Per-example token limits of fine-tunable base models (longest prefix
/// first), from OpenAI's fine-tuning guide ("Token limits"), 2025. Models
/// not listed get the notebook's [`DEFAULT_MAX_TOKENS_PER_EXAMPLE`].
const MAX_TOKENS_BY_MODEL: &[(&str, usize)] = &[
    ("gpt-4.1", 65_536),
    ("gpt-4o-mini", 65_536),
    ("gpt-4o", 65_536),
    ("gpt-3.5-turbo-0613", 4_096),
    ("gpt-3.5-turbo", 16_385),
];

/// USD per 1M training tokens, by model-name prefix (longest first).
///
/// ESTIMATE: taken from OpenAI's public pricing page (platform.openai.com/
/// docs/pricing, "Fine-tuning" table) as last seen in 2025-06; it could not
/// be re-checked offline and OpenAI changes prices. Unknown models get
/// `None` and a cost of 0 in the stats.
pub const TRAINING_PRICE_USD_PER_1M: &[(&str, f64)] = &[
    ("gpt-4.1-nano", 1.50),
    ("gpt-4.1-mini", 5.00),
    ("gpt-4.1", 25.00),
    ("gpt-4o-mini", 3.00),
    ("gpt-4o", 25.00),
    ("gpt-3.5-turbo", 8.00),
    ("davinci-002", 6.00),
    ("babbage-002", 0.40),
];

pub fn training_price_per_million(model: &str) -> Option<f64> {
    TRAINING_PRICE_USD_PER_1M
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map(|&(_, price)| price)
}

/// USD per 1M input and output tokens of base models' answers, by
/// prefix (longest first): OpenAI's price list, standard tier, 2025-26.
const BASE_INFERENCE_USD_PER_1M: &[(&str, [f64; 2])] = &[
    ("gpt-4.1-nano", [0.10, 0.40]),
    ("gpt-4.1-mini", [0.40, 1.60]),
    ("gpt-4.1", [2.00, 8.00]),
    ("gpt-4o-mini", [0.15, 0.60]),
    ("gpt-4o", [2.50, 10.00]),
    ("gpt-3.5-turbo", [0.50, 1.50]),
];

/// The same for fine-tuned models, by their base model's prefix.
const FINE_TUNED_INFERENCE_USD_PER_1M: &[(&str, [f64; 2])] = &[
    ("gpt-4.1-nano", [0.20, 0.80]),
    ("gpt-4.1-mini", [0.80, 3.20]),
    ("gpt-4.1", [3.00, 12.00]),
    ("gpt-4o-mini", [0.30, 1.20]),
    ("gpt-4o", [3.75, 15.00]),
    ("gpt-3.5-turbo", [3.00, 6.00]),
];

/// Cost of training `model` on `charged_tokens`, rounded to cents.
pub fn estimated_cost_usd(model: &str, charged_tokens: u64) -> f64 {
    crate::provider::profile::estimated_cost_usd(training_price_per_million(model), charged_tokens)
}

/// The encoding and per-example token limit of an OpenAI model (a
/// fine-tuned `ft:` name counts as its base model).
pub fn limits_for(model: &str) -> DatasetLimits {
    let m = model.strip_prefix("ft:").unwrap_or(model);
    let max = MAX_TOKENS_BY_MODEL
        .iter()
        .find(|(prefix, _)| m.starts_with(prefix))
        .map_or(DEFAULT_MAX_TOKENS_PER_EXAMPLE, |&(_, n)| n);
    DatasetLimits {
        encoding: Encoding::for_model(m),
        max_tokens_per_example: max,
        max_validation_records: None,
    }
}

/// OpenAI as a profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiProfile;

impl Profile for OpenAiProfile {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn dataset_format(&self) -> DatasetFormat {
        DatasetFormat::OpenAiChat
    }

    fn example_format(&self) -> &'static dyn ExampleFormat {
        &ChatFormat
    }

    fn base_models(&self) -> BaseModels {
        BaseModels {
            variable: "ALLOWED_BASE_MODELS",
            default: DEFAULT_BASE_MODELS,
        }
    }

    fn judge_models(&self) -> BaseModels {
        BaseModels {
            variable: "OPENAI_JUDGE_MODELS",
            default: DEFAULT_JUDGE_MODELS,
        }
    }

    fn dataset_limits(&self, base_model: &str) -> Result<DatasetLimits, UnknownModel> {
        Ok(limits_for(base_model))
    }

    fn max_records(&self, _base_model: &str) -> Option<u64> {
        None
    }

    /// OpenAI takes `n_epochs`, `batch_size` and `learning_rate_multiplier`
    /// (their ranges are the API's own, checked for every provider);
    /// Bedrock's absolute rate and warmup steps are refused.
    fn check_config(&self, run: &RunConfig) -> Vec<FieldProblem> {
        let h = &run.hyperparameters;
        let mut problems = Vec::new();
        for (field, set) in [
            (
                "config.hyperparameters.learning_rate",
                !h.learning_rate.is_auto(),
            ),
            (
                "config.hyperparameters.learning_rate_warmup_steps",
                !h.learning_rate_warmup_steps.is_auto(),
            ),
        ] {
            if set {
                problems.push(FieldProblem::new(
                    field,
                    "is Bedrock's; OpenAI takes learning_rate_multiplier",
                ));
            }
        }
        problems.extend(crate::provider::together::profile::refuse_lora(h, "OpenAI"));
        problems
    }

    /// The cookbook's heuristic ([`stats::default_epochs`]).
    fn default_epochs(&self, _base_model: &str, train_examples: u64) -> u32 {
        stats::default_epochs(train_examples)
    }

    fn shutdown_dates(&self) -> &'static ProviderDates {
        shutdown::published(ProviderKind::OpenAi)
    }

    /// A base model is called by its own name.
    fn base_inference_model(&self, base_model: &str) -> String {
        base_model.to_owned()
    }

    fn inference_price(&self, base_model: &str, fine_tuned: bool) -> Option<Price> {
        let model = base_model.strip_prefix("ft:").unwrap_or(base_model);
        if fine_tuned {
            price_by_prefix(FINE_TUNED_INFERENCE_USD_PER_1M, model)
        } else {
            price_by_prefix(BASE_INFERENCE_USD_PER_1M, model)
        }
    }

    fn training_price_per_million(&self, base_model: &str) -> Option<f64> {
        training_price_per_million(base_model)
    }

    fn serving(&self) -> Serving {
        Serving::WhenTrained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_uses_the_longest_matching_price() {
        assert_eq!(
            training_price_per_million("gpt-4o-mini-2024-07-18"),
            Some(3.0)
        );
        assert_eq!(training_price_per_million("gpt-4o-2024-08-06"), Some(25.0));
        assert_eq!(estimated_cost_usd("gpt-4o-mini-2024-07-18", 1_000_000), 3.0);
        assert_eq!(estimated_cost_usd("unknown", 1_000_000), 0.0);
    }

    #[test]
    fn a_model_is_served_as_soon_as_its_job_succeeds() {
        assert_eq!(OpenAiProfile.serving(), Serving::WhenTrained);
    }

    #[test]
    fn every_default_base_model_has_its_token_limit_and_encoding() {
        for model in DEFAULT_BASE_MODELS.split(',') {
            let limits = OpenAiProfile.dataset_limits(model).unwrap();
            assert_eq!(limits.max_tokens_per_example, 65_536, "{model}");
            assert_eq!(limits.encoding, Encoding::O200kBase, "{model}");
            assert_eq!(limits.max_validation_records, None);
        }
    }
}
