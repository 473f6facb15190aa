//! A provider's profile: everything that differs per provider and is
//! plain data or a pure rule — the dataset format it trains on, its base
//! models and their limits, its hyperparameter rules, shutdown dates,
//! prices, and how a trained model is served.
//!
//! The API, the preparation and the pipeline ask the run's profile
//! ([`super::profiles::profile`]) instead of naming a provider, so a new
//! provider is its folder under `provider/` and one line in the registry.
//!
//! A profile does no I/O and links no SDK: the prepare function holds
//! every profile (as trait objects, so all their methods are linked) and
//! must stay free of adapters. Adapters — the calls — are the
//! [`super::FineTuningProvider`] port's business.
//!
//! No method has a default: a profile says every answer itself, so a new
//! provider cannot inherit another's rules by omission.

use std::fmt;

use crate::dataset::DatasetFormat;
use crate::dataset::format::ExampleFormat;
use crate::dataset::tokens::Encoding;
use crate::domain::{ProviderKind, RunConfig};

use super::shutdown::ProviderDates;
use crate::evaluation::Price;

/// What the preparation needs to know about one base model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetLimits {
    /// The vocabulary tokens are counted with (an estimate when the
    /// provider's own tokenizer is not public).
    pub encoding: Encoding,
    /// Longer conversations are split into windows of at most this.
    pub max_tokens_per_example: usize,
    /// The most validation examples the provider takes; `None`: no limit
    /// beyond the run's `max_examples`.
    pub max_validation_records: Option<u64>,
}

/// A base model this provider cannot prepare data for; displayed as the
/// sentence the preparation fails with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownModel(pub String);

/// A rule a run's config breaks for this provider: the field as the API
/// names it (`config.hyperparameters.n_epochs`) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Where a deployment lists the base models a run on this provider may
/// name, and the list when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseModels {
    /// The environment variable (comma-separated model ids).
    pub variable: &'static str,
    /// Its default, comma-separated; `template.yaml` states the same.
    pub default: &'static str,
}

/// How a trained model is served, for the deploy/evaluate work that
/// follows the job. Pure data: nothing here deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// Callable by its fine-tuned model name as soon as the job succeeds
    /// (OpenAI: the same chat completions API as the base model).
    WhenTrained,
    /// Needs an on-demand custom model deployment before it can be called
    /// (Bedrock: `CreateCustomModelDeployment`, then the deployment ARN as
    /// the `modelId`). Only custom models of these base models (id
    /// prefixes) can be deployed on demand; any other needs Provisioned
    /// Throughput, which this service does not buy.
    OnDemandDeployment {
        deployable_base_models: &'static [&'static str],
        /// The regions that offer on-demand deployments.
        regions: &'static [&'static str],
    },
}

/// Why a model trained on `base_model` could not be served on demand by a
/// deployment in `region` (when known); `None` when it can. What `POST
/// /runs` refuses before any training is paid for.
pub fn on_demand_refusal(
    serving: Serving,
    base_model: &str,
    region: Option<&str>,
) -> Option<String> {
    let Serving::OnDemandDeployment {
        deployable_base_models,
        regions,
    } = serving
    else {
        return None;
    };
    if !deployable_base_models
        .iter()
        .any(|prefix| base_model.starts_with(prefix))
    {
        return Some(format!(
            "{base_model} cannot be deployed on demand (its custom models would need capacity bought ahead, such as Provisioned Throughput); choose a base model starting with {}",
            deployable_base_models.join(", ")
        ));
    }
    match region {
        Some(region) if !regions.contains(&region) => Some(format!(
            "custom models cannot be deployed on demand in {region}, this deployment's region (only in {})",
            regions.join(", ")
        )),
        _ => None,
    }
}

/// A provider's rules, as data and pure functions.
pub trait Profile: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// The dataset format this provider trains on (recorded on datasets).
    fn dataset_format(&self) -> DatasetFormat;

    /// How the preparation writes and checks one example in that format.
    fn example_format(&self) -> &'static dyn ExampleFormat;

    /// Where the deployment's list of allowed base models comes from.
    fn base_models(&self) -> BaseModels;

    /// Where the deployment's list of judges comes from: the models a
    /// run's `config.evaluation.judge_model` may name. Each default has a
    /// known [`Self::inference_price`] (the configuration refuses a judge
    /// without one), so a judge is never estimated as free.
    fn judge_models(&self) -> BaseModels;

    /// The preparation's limits for `base_model`, or why this provider
    /// cannot prepare data for it.
    fn dataset_limits(&self, base_model: &str) -> Result<DatasetLimits, UnknownModel>;

    /// The most examples (training and validation together) the provider
    /// takes for `base_model`; `None`: no limit of its own. A run that does
    /// not set `max_examples` asks for no more than this.
    fn max_records(&self, base_model: &str) -> Option<u64>;

    /// Every rule of this provider that `run` breaks (its hyperparameters
    /// and their ranges, its record limits), in the order the API lists
    /// them; empty when the config suits the provider.
    fn check_config(&self, run: &RunConfig) -> Vec<FieldProblem>;

    /// The epochs the provider trains when the run leaves `n_epochs` to it,
    /// for the cost estimate.
    fn default_epochs(&self, base_model: &str, train_examples: u64) -> u32;

    /// The provider's announced shutdown dates.
    fn shutdown_dates(&self) -> &'static ProviderDates;

    /// USD per 1M training tokens for `base_model`, when known (an
    /// estimate: see each profile); `None` prices the training at 0.
    fn training_price_per_million(&self, base_model: &str) -> Option<f64>;

    /// How a model trained here is served.
    fn serving(&self) -> Serving;
    /// The id that calls `base_model` itself through the provider's
    /// inference API: the evaluation's baseline when the tenant has no
    /// active model (Bedrock trains `amazon.nova-lite-v1:0:300k` and
    /// serves `amazon.nova-lite-v1:0`).
    fn base_inference_model(&self, base_model: &str) -> String;
    /// USD per 1,000 input and output tokens of answers from `base_model`
    /// (`fine_tuned`: from a model trained on it), for the evaluation's
    /// estimate; `None` prices them at 0. List prices when written: see
    /// each profile.
    fn inference_price(&self, base_model: &str, fine_tuned: bool) -> Option<Price>;
}

impl fmt::Debug for dyn Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("kind", &self.kind())
            .finish()
    }
}

/// The price of `(prefix, [input, output] USD per 1M tokens)` whose
/// prefix `model` starts with (the longest first in the table), per 1,000
/// tokens.
pub fn price_by_prefix(table: &[(&str, [f64; 2])], model: &str) -> Option<Price> {
    table
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map(|(_, [input, output])| Price {
            input_per_1k: input / 1000.0,
            output_per_1k: output / 1000.0,
        })
}

/// The cost of training on `charged_tokens` at `price_per_million` USD,
/// rounded to cents (an unknown price costs 0).
pub fn estimated_cost_usd(price_per_million: Option<f64>, charged_tokens: u64) -> f64 {
    let price = price_per_million.unwrap_or(0.0);
    (charged_tokens as f64 * price / 1_000_000.0 * 100.0).round() / 100.0
}
