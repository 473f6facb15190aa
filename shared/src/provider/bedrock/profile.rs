//! Amazon Bedrock's profile: Nova's `bedrock-conversation-2024` format,
//! its base models and their limits ([`super::limits`]), the
//! hyperparameters Nova takes, and how a custom model is served. Pure
//! data; the calls are in the adapter ([`super`]).

use super::format::{ConversationFormat, ESTIMATE_ENCODING};
use super::limits::{self, limits_for};
use crate::dataset::DatasetFormat;
use crate::dataset::format::ExampleFormat;
use crate::domain::{ProviderKind, RunConfig};
use crate::evaluation::Price;
use crate::provider::profile::{
    BaseModels, DatasetLimits, FieldProblem, Profile, Serving, UnknownModel, price_by_prefix,
};
use crate::provider::shutdown::{self, ProviderDates};

/// Amazon Nova understanding models, as Bedrock's fine-tuning names them
/// (the context-length suffix is part of the id); `template.yaml`'s
/// `BedrockAllowedBaseModels` states the same.
pub const DEFAULT_BASE_MODELS: &str =
    "amazon.nova-micro-v1:0:128k,amazon.nova-lite-v1:0:300k,amazon.nova-pro-v1:0:300k";

/// The judges a run may name unless `BEDROCK_JUDGE_MODELS` says otherwise:
/// Nova foundation models as Converse calls them in the deployment's
/// region, each priced in [`INFERENCE_USD_PER_1M`]. `template.yaml` lets
/// the evaluate function invoke exactly these (and the base models'), so
/// a judge added here needs its ARN there too.
pub const DEFAULT_JUDGE_MODELS: &str =
    "amazon.nova-micro-v1:0,amazon.nova-lite-v1:0,amazon.nova-pro-v1:0";

/// The base models whose custom models Bedrock serves on demand through a
/// custom model deployment (id prefixes): Nova Micro, Lite and Pro,
/// customized on or after 2025-07-16, in us-east-1 and us-west-2 (see
/// the reference notes on providers). Anything else would need
/// Provisioned Throughput.
pub const ON_DEMAND_BASE_MODELS: &[&str] =
    &["amazon.nova-micro", "amazon.nova-lite", "amazon.nova-pro"];

/// The regions with on-demand custom model deployments for Nova.
pub const ON_DEMAND_REGIONS: &[&str] = &["us-east-1", "us-west-2"];

/// USD per 1M input and output tokens, on demand, by base model prefix:
/// Bedrock's price list for Nova (us-east-1, 2025-26). A custom model
/// deployment is billed per token at its base model's rate.
const INFERENCE_USD_PER_1M: &[(&str, [f64; 2])] = &[
    ("amazon.nova-micro", [0.035, 0.14]),
    ("amazon.nova-lite", [0.06, 0.24]),
    ("amazon.nova-pro", [0.80, 3.20]),
];

/// Bedrock as a profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct BedrockProfile;

impl Profile for BedrockProfile {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bedrock
    }

    fn dataset_format(&self) -> DatasetFormat {
        DatasetFormat::BedrockConversation
    }

    fn example_format(&self) -> &'static dyn ExampleFormat {
        &ConversationFormat
    }

    fn base_models(&self) -> BaseModels {
        BaseModels {
            variable: "BEDROCK_ALLOWED_BASE_MODELS",
            default: DEFAULT_BASE_MODELS,
        }
    }

    fn judge_models(&self) -> BaseModels {
        BaseModels {
            variable: "BEDROCK_JUDGE_MODELS",
            default: DEFAULT_JUDGE_MODELS,
        }
    }

    /// Tokens are estimated with o200k_base (Nova's tokenizer is not
    /// public) against the family's per-record limit.
    fn dataset_limits(&self, base_model: &str) -> Result<DatasetLimits, UnknownModel> {
        let limits = limits_for(base_model).ok_or_else(|| {
            UnknownModel(format!(
                "{base_model} is not a Bedrock model this service can prepare data for"
            ))
        })?;
        Ok(DatasetLimits {
            encoding: ESTIMATE_ENCODING,
            max_tokens_per_example: limits.max_tokens_per_record,
            max_validation_records: Some(limits.max_validation_records),
        })
    }

    fn max_records(&self, base_model: &str) -> Option<u64> {
        limits_for(base_model).map(|l| l.max_train_records + l.max_validation_records)
    }

    /// Nova's hyperparameters and ranges ([`limits::check`]), then its
    /// record limits.
    fn check_config(&self, run: &RunConfig) -> Vec<FieldProblem> {
        let mut problems = limits::check(&run.hyperparameters, &run.base_model);
        problems.extend(crate::provider::together::profile::refuse_lora(
            &run.hyperparameters,
            "Bedrock",
        ));
        if let Some(limits) = limits_for(&run.base_model)
            && u64::from(run.max_examples)
                > limits.max_train_records + limits.max_validation_records
        {
            problems.push(FieldProblem::new(
                "config.max_examples",
                format!(
                    "must be at most {} for {} (Bedrock takes {} training and {} validation records)",
                    limits.max_train_records + limits.max_validation_records,
                    run.base_model,
                    limits.max_train_records,
                    limits.max_validation_records
                ),
            ));
        }
        problems
    }

    /// Bedrock's own default for the family (2 for Nova).
    fn default_epochs(&self, base_model: &str, _train_examples: u64) -> u32 {
        limits_for(base_model).map_or(0, |l| l.default_epochs)
    }

    fn shutdown_dates(&self) -> &'static ProviderDates {
        shutdown::published(ProviderKind::Bedrock)
    }

    /// Not known: Bedrock prices Nova customization per token in its own
    /// price list, which this service has not recorded, so the estimate
    /// says 0 (as it always has for Bedrock runs).
    fn training_price_per_million(&self, _base_model: &str) -> Option<f64> {
        None
    }

    fn serving(&self) -> Serving {
        Serving::OnDemandDeployment {
            deployable_base_models: ON_DEMAND_BASE_MODELS,
            regions: ON_DEMAND_REGIONS,
        }
    }

    /// Fine-tuning names a model with its context length
    /// (`amazon.nova-lite-v1:0:300k`); inference does not
    /// (`amazon.nova-lite-v1:0`).
    fn base_inference_model(&self, base_model: &str) -> String {
        let mut parts: Vec<&str> = base_model.split(':').collect();
        if parts.len() == 3 && parts[2].ends_with('k') {
            parts.pop();
        }
        parts.join(":")
    }

    fn inference_price(&self, base_model: &str, _fine_tuned: bool) -> Option<Price> {
        price_by_prefix(INFERENCE_USD_PER_1M, base_model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_nova_model_needs_an_on_demand_deployment() {
        let Serving::OnDemandDeployment {
            deployable_base_models,
            ..
        } = BedrockProfile.serving()
        else {
            panic!("Bedrock serves custom models through deployments");
        };
        for model in DEFAULT_BASE_MODELS.split(',') {
            assert!(
                deployable_base_models.iter().any(|p| model.starts_with(p)),
                "{model}"
            );
        }
    }

    #[test]
    fn a_model_bedrock_cannot_deploy_on_demand_is_refused_by_model_or_by_region() {
        use crate::provider::profile::on_demand_refusal;
        let serving = BedrockProfile.serving();
        assert_eq!(
            on_demand_refusal(serving, "amazon.nova-lite-v1:0:300k", Some("us-west-2")),
            None
        );
        assert_eq!(
            on_demand_refusal(serving, "amazon.nova-lite-v1:0:300k", None),
            None
        );
        let model =
            on_demand_refusal(serving, "amazon.nova-premier-v1:0", Some("us-east-1")).unwrap();
        assert!(model.contains("Provisioned Throughput"), "{model}");
        assert!(model.contains("amazon.nova-micro"), "{model}");
        let region =
            on_demand_refusal(serving, "amazon.nova-micro-v1:0:128k", Some("eu-west-1")).unwrap();
        assert!(
            region.contains("eu-west-1") && region.contains("us-east-1, us-west-2"),
            "{region}"
        );
    }

    #[test]
    fn a_base_model_is_called_without_its_context_length() {
        assert_eq!(
            BedrockProfile.base_inference_model("amazon.nova-lite-v1:0:300k"),
            "amazon.nova-lite-v1:0"
        );
        assert_eq!(
            BedrockProfile.base_inference_model("amazon.nova-micro-v1:0"),
            "amazon.nova-micro-v1:0"
        );
        let price = BedrockProfile
            .inference_price("amazon.nova-micro-v1:0:128k", true)
            .unwrap();
        assert!((price.input_per_1k - 0.000_035).abs() < 1e-12);
    }

    #[test]
    fn a_model_outside_the_nova_family_cannot_be_prepared_for() {
        let err = BedrockProfile
            .dataset_limits("anthropic.claude-3-haiku")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "anthropic.claude-3-haiku is not a Bedrock model this service can prepare data for"
        );
    }

    #[test]
    fn a_nova_model_takes_at_most_its_training_and_validation_records() {
        assert_eq!(
            BedrockProfile.max_records("amazon.nova-micro-v1:0:128k"),
            Some(21_000)
        );
        let limits = BedrockProfile
            .dataset_limits("amazon.nova-lite-v1:0:300k")
            .unwrap();
        assert_eq!(limits.max_validation_records, Some(1_000));
        assert_eq!(limits.max_tokens_per_example, 32_000);
    }
}
