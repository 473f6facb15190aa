//! Together AI mode: Together's fine-tuning API (files, fine-tunes, events,
//! checkpoints, metrics, price estimates, model limits, adapter downloads)
//! served by the same sandbox, beside OpenAI's paths under `/v1`, so the
//! Together adapter is tested against a stand-in that shares the file
//! store, the chat engine, faults, latency and request recording with the
//! OpenAI one. Shapes follow `tests/contract/together-finetuning-openapi.json`
//! (the contract test checks every answer against it); behaviour the
//! schema does not pin down is the sandbox's choice, stated here.
//!
//! - `spec`: a creation request checked against the sandbox's limits.
//! - `job`: a job's record, its statuses and how it is shown.
//! - [`price`]: the price arithmetic behind estimates and `total_price`.
//! - [`download`]: the deterministic adapter file `GET /finetune/download`
//!   streams.
//! - `routes`: the handlers.
//!
//! The numbers below (models, limits, prices) are the sandbox's, modelled
//! on Together's published tiers but not guaranteed to be Together's.

pub mod download;
pub(crate) mod job;
pub mod price;
pub(crate) mod routes;
pub(crate) mod spec;

pub use job::model_output_name;
pub use price::{Estimate, estimate, nano_dollars, tokens_of};

/// A base model the sandbox fine-tunes and serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaseModel {
    pub name: &'static str,
    /// Shown in events' `param_count`.
    pub param_count: u64,
    /// US dollars per million trained tokens, LoRA.
    pub lora_price_per_million: f64,
    /// US dollars per million trained tokens, full training.
    pub full_price_per_million: f64,
}

/// The base models the sandbox fine-tunes (and answers chat completions
/// for, generically).
pub const BASE_MODELS: &[BaseModel] = &[
    BaseModel {
        name: "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        param_count: 8_030_261_248,
        lora_price_per_million: 0.48,
        full_price_per_million: 0.54,
    },
    BaseModel {
        name: "Qwen/Qwen2.5-7B-Instruct",
        param_count: 7_615_616_512,
        lora_price_per_million: 0.48,
        full_price_per_million: 0.54,
    },
];

/// Largest LoRA rank (`training_type.lora_r`).
pub const MAX_LORA_RANK: u64 = 64;
/// Largest `n_epochs`.
pub const MAX_EPOCHS: u64 = 20;
/// Largest `n_evals`.
pub const MAX_EVALS: u64 = 100;
/// `learning_rate` must lie within these bounds.
pub const MIN_LEARNING_RATE: f64 = 1e-6;
pub const MAX_LEARNING_RATE: f64 = 1e-2;
/// Batch sizes (`"max"` resolves to the maximum): LoRA, full training.
pub const LORA_BATCH: BatchLimits = BatchLimits {
    min: 8,
    max: 32,
    max_dpo: 16,
};
pub const FULL_BATCH: BatchLimits = BatchLimits {
    min: 8,
    max: 16,
    max_dpo: 8,
};
/// Longest `suffix`, in characters.
pub const MAX_SUFFIX_CHARS: usize = 40;
/// Default credit limit (US dollars) `estimate-price` compares with.
pub const DEFAULT_CREDIT_LIMIT: f64 = 100.0;
/// Default size of a downloaded adapter, in bytes.
pub const DEFAULT_DOWNLOAD_BYTES: u64 = 300 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub min: u64,
    pub max: u64,
    pub max_dpo: u64,
}

/// The supported base model of this name.
pub fn base_model(name: &str) -> Option<&'static BaseModel> {
    BASE_MODELS.iter().find(|m| m.name == name)
}

/// Together's model names are `organization/name`; OpenAI's never hold a
/// `/`. The chat engine uses this to speak Together's dialect (its extra
/// request fields, `prompt` in the answer) to Together models only.
pub fn is_together_model_name(model: &str) -> bool {
    model.contains('/')
}
