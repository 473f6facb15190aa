//! Together AI's profile: the OpenAI chat JSONL it trains on (tool calls
//! included), its open-weight base models and their limits, the
//! hyperparameters it takes (LoRA rank and alpha, checkpoints), prices,
//! and how a trained model is served (serverless LoRA: callable when the
//! job completes). Pure data; the calls are in the adapter ([`super`]).

use crate::dataset::DatasetFormat;
use crate::dataset::format::{ChatFormat, ExampleFormat};
use crate::dataset::tokens::Encoding;
use crate::domain::{AutoOr, Hyperparameters, ProviderKind, RunConfig};
use crate::evaluation::Price;
use crate::provider::profile::{
    BaseModels, DatasetLimits, FieldProblem, Profile, Serving, UnknownModel, price_by_prefix,
};
use crate::provider::shutdown::{self, ProviderDates};

/// Base models this service trains on Together: instruction-tuned open
/// models whose LoRA adapters Together serves serverless (so the trained
/// model answers as soon as its job completes, and the evaluation can call
/// it). `template.yaml`'s `TogetherAllowedBaseModels` states the same.
pub const DEFAULT_BASE_MODELS: &str =
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference,Qwen/Qwen2.5-7B-Instruct";

/// The longest example a run writes for Together, in (estimated) tokens:
/// Together's default `max_seq_length` for these models' LoRA jobs.
/// Llama's and Qwen's tokenizers are not linked here: o200k_base is the
/// estimate, as for Bedrock's Nova.
pub const MAX_TOKENS_PER_EXAMPLE: usize = 8_192;

/// The LoRA rank when the run does not say: Together's recommended
/// starting point for 7–8B models; alpha defaults to twice the rank.
pub const DEFAULT_LORA_RANK: u32 = 16;
/// Together's limits for these models (`/fine-tunes/models/limits`).
pub const MAX_LORA_RANK: u32 = 64;
pub const MAX_EPOCHS: u32 = 20;
pub const LEARNING_RATE: (f64, f64) = (1e-6, 1e-2);

/// USD per 1M training tokens, LoRA SFT, models up to 16B (Together's
/// price list, 2025-26); full fine-tuning of the same costs more, so a
/// full run's estimate is a lower bound.
const TRAINING_USD_PER_1M: &[(&str, f64)] = &[
    ("meta-llama/Meta-Llama-3.1-8B", 0.48),
    ("Qwen/Qwen2.5-7B", 0.48),
];

/// The judges a run may name unless `TOGETHER_JUDGE_MODELS` says
/// otherwise: a serverless instruction model larger than the ones trained
/// here, priced in [`INFERENCE_USD_PER_1M`].
pub const DEFAULT_JUDGE_MODELS: &str = "meta-llama/Llama-3.3-70B-Instruct-Turbo";

/// USD per 1M input and output tokens of serverless inference (a LoRA
/// adapter costs what its base model costs).
const INFERENCE_USD_PER_1M: &[(&str, [f64; 2])] = &[
    ("meta-llama/Llama-3.3-70B-Instruct-Turbo", [0.88, 0.88]),
    ("meta-llama/Meta-Llama-3.1-8B", [0.18, 0.18]),
    ("Qwen/Qwen2.5-7B", [0.30, 0.30]),
];

/// Together as a profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct TogetherProfile;

/// The LoRA settings as Together takes them: `None` for a full
/// fine-tune, else `(rank, alpha)` with the defaults filled in.
pub fn lora_settings(h: &Hyperparameters) -> Option<(u32, u32)> {
    if h.lora == Some(false) {
        return None;
    }
    let rank = h.lora_rank.value().unwrap_or(DEFAULT_LORA_RANK);
    let alpha = h.lora_alpha.value().unwrap_or(rank * 2);
    Some((rank, alpha))
}

/// The problems of a run on `provider` (not Together) that sets Together's
/// hyperparameters: what OpenAI's and Bedrock's profiles add to theirs.
pub fn refuse_lora(h: &Hyperparameters, provider: &str) -> Vec<FieldProblem> {
    [
        ("config.hyperparameters.lora", h.lora.is_some()),
        ("config.hyperparameters.lora_rank", !h.lora_rank.is_auto()),
        ("config.hyperparameters.lora_alpha", !h.lora_alpha.is_auto()),
        (
            "config.hyperparameters.n_checkpoints",
            !h.n_checkpoints.is_auto(),
        ),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(field, _)| {
        FieldProblem::new(field, format!("is Together's; {provider} does not take it"))
    })
    .collect()
}

impl Profile for TogetherProfile {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Together
    }

    /// OpenAI's chat format, which Together reads as it is.
    fn dataset_format(&self) -> DatasetFormat {
        DatasetFormat::OpenAiChat
    }

    fn example_format(&self) -> &'static dyn ExampleFormat {
        &ChatFormat
    }

    fn base_models(&self) -> BaseModels {
        BaseModels {
            variable: "TOGETHER_ALLOWED_BASE_MODELS",
            default: DEFAULT_BASE_MODELS,
        }
    }

    fn judge_models(&self) -> BaseModels {
        BaseModels {
            variable: "TOGETHER_JUDGE_MODELS",
            default: DEFAULT_JUDGE_MODELS,
        }
    }

    fn dataset_limits(&self, _base_model: &str) -> Result<DatasetLimits, UnknownModel> {
        Ok(DatasetLimits {
            encoding: Encoding::O200kBase,
            max_tokens_per_example: MAX_TOKENS_PER_EXAMPLE,
            max_validation_records: None,
        })
    }

    fn max_records(&self, _base_model: &str) -> Option<u64> {
        None
    }

    /// Together takes `n_epochs`, `batch_size`, an absolute
    /// `learning_rate`, LoRA's rank and alpha (or `lora: false`) and
    /// `n_checkpoints`; OpenAI's multiplier and Bedrock's warmup steps are
    /// refused.
    fn check_config(&self, run: &RunConfig) -> Vec<FieldProblem> {
        let h = &run.hyperparameters;
        let at = |name: &str| -> &'static str {
            match name {
                "n_epochs" => "config.hyperparameters.n_epochs",
                "learning_rate" => "config.hyperparameters.learning_rate",
                "lora_rank" => "config.hyperparameters.lora_rank",
                "lora_alpha" => "config.hyperparameters.lora_alpha",
                "n_checkpoints" => "config.hyperparameters.n_checkpoints",
                _ => "config.hyperparameters",
            }
        };
        let mut problems = Vec::new();
        if !h.learning_rate_multiplier.is_auto() {
            problems.push(FieldProblem::new(
                "config.hyperparameters.learning_rate_multiplier",
                "is OpenAI's; Together takes an absolute learning_rate instead",
            ));
        }
        if !h.learning_rate_warmup_steps.is_auto() {
            problems.push(FieldProblem::new(
                "config.hyperparameters.learning_rate_warmup_steps",
                "is Bedrock's; Together does not take it",
            ));
        }
        if let AutoOr::Value(n) = h.n_epochs
            && n > MAX_EPOCHS
        {
            problems.push(FieldProblem::new(
                at("n_epochs"),
                format!("must be at most {MAX_EPOCHS} on Together"),
            ));
        }
        if let AutoOr::Value(rate) = h.learning_rate
            && !(LEARNING_RATE.0..=LEARNING_RATE.1).contains(&rate)
        {
            problems.push(FieldProblem::new(
                at("learning_rate"),
                format!(
                    "must be from {} to {} on Together",
                    LEARNING_RATE.0, LEARNING_RATE.1
                ),
            ));
        }
        let full = h.lora == Some(false);
        if full {
            problems.push(FieldProblem::new(
                "config.hyperparameters.lora",
                "false (a full fine-tune) is not offered on Together yet: its merged model (about 16 GB for an 8B model) would have to be copied to the tenant in one invocation; train a LoRA adapter (lora true or absent)",
            ));
        }
        for (name, value) in [("lora_rank", h.lora_rank), ("lora_alpha", h.lora_alpha)] {
            if full && !value.is_auto() {
                problems.push(FieldProblem::new(
                    at(name),
                    "applies to LoRA only; remove it or set lora to true",
                ));
            }
        }
        if let AutoOr::Value(rank) = h.lora_rank
            && rank > MAX_LORA_RANK
        {
            problems.push(FieldProblem::new(
                at("lora_rank"),
                format!("must be at most {MAX_LORA_RANK} for {}", run.base_model),
            ));
        }
        if let (AutoOr::Value(checkpoints), epochs) = (h.n_checkpoints, h.n_epochs) {
            let epochs = epochs.value().unwrap_or(1);
            if checkpoints > epochs {
                problems.push(FieldProblem::new(
                    at("n_checkpoints"),
                    format!(
                        "must be at most n_epochs ({epochs}): one checkpoint per epoch at most"
                    ),
                ));
            }
        }
        problems
    }

    /// Together trains one epoch unless told.
    fn default_epochs(&self, _base_model: &str, _train_examples: u64) -> u32 {
        1
    }

    fn shutdown_dates(&self) -> &'static ProviderDates {
        shutdown::published(ProviderKind::Together)
    }

    fn training_price_per_million(&self, base_model: &str) -> Option<f64> {
        TRAINING_USD_PER_1M
            .iter()
            .find(|(prefix, _)| base_model.starts_with(prefix))
            .map(|(_, price)| *price)
    }

    /// Serverless LoRA: a completed job's model answers by its name.
    fn serving(&self) -> Serving {
        Serving::WhenTrained
    }

    fn base_inference_model(&self, base_model: &str) -> String {
        base_model.to_owned()
    }

    fn inference_price(&self, base_model: &str, _fine_tuned: bool) -> Option<Price> {
        price_by_prefix(INFERENCE_USD_PER_1M, base_model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(h: Hyperparameters) -> RunConfig {
        RunConfig {
            start_date: None,
            end_date: None,
            base_model: "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference".into(),
            min_examples: 10,
            max_examples: 1000,
            train_split: crate::domain::TrainSplit::DEFAULT,
            system_prompt: None,
            seed: 1,
            hyperparameters: h,
            filters: Default::default(),
            evaluation: Default::default(),
            activation: Default::default(),
            serving: Default::default(),
        }
    }

    #[test]
    fn lora_is_the_default_with_alpha_twice_the_rank_and_full_is_asked_for() {
        let h = Hyperparameters::default();
        assert_eq!(
            lora_settings(&h),
            Some((DEFAULT_LORA_RANK, 2 * DEFAULT_LORA_RANK))
        );
        let h = Hyperparameters {
            lora_rank: AutoOr::Value(8),
            ..Hyperparameters::default()
        };
        assert_eq!(lora_settings(&h), Some((8, 16)));
        let h = Hyperparameters {
            lora: Some(false),
            ..Hyperparameters::default()
        };
        assert_eq!(lora_settings(&h), None);
    }

    #[test]
    fn togethers_ranges_are_checked_and_the_other_providers_settings_refused() {
        let h = Hyperparameters {
            n_epochs: AutoOr::Value(2),
            learning_rate_multiplier: AutoOr::Value(2.0),
            lora_rank: AutoOr::Value(128),
            n_checkpoints: AutoOr::Value(3),
            learning_rate: AutoOr::Value(0.5),
            ..Hyperparameters::default()
        };
        let fields: Vec<&str> = TogetherProfile
            .check_config(&run(h))
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "config.hyperparameters.learning_rate_multiplier",
                "config.hyperparameters.learning_rate",
                "config.hyperparameters.lora_rank",
                "config.hyperparameters.n_checkpoints",
            ]
        );
        let fine = Hyperparameters {
            n_epochs: AutoOr::Value(3),
            lora_rank: AutoOr::Value(32),
            lora_alpha: AutoOr::Value(64),
            n_checkpoints: AutoOr::Value(3),
            learning_rate: AutoOr::Value(1e-4),
            ..Hyperparameters::default()
        };
        assert!(TogetherProfile.check_config(&run(fine)).is_empty());
        let full_with_rank = Hyperparameters {
            lora: Some(false),
            lora_rank: AutoOr::Value(8),
            ..Hyperparameters::default()
        };
        let fields: Vec<&str> = TogetherProfile
            .check_config(&run(full_with_rank))
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "config.hyperparameters.lora",
                "config.hyperparameters.lora_rank"
            ]
        );
        // OpenAI and Bedrock refuse Together's own settings by name.
        let lora = Hyperparameters {
            lora_rank: AutoOr::Value(8),
            ..Hyperparameters::default()
        };
        let refused = refuse_lora(&lora, "OpenAI");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].message, "is Together's; OpenAI does not take it");
    }
}
