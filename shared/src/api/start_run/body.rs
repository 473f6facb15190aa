//! The body of `POST /runs`: every rule it must follow, read with the
//! field-error collector ([`super::checker`]) so that every broken rule is
//! listed at once. Values that check themselves (a date range, example
//! bounds, a train split, a provider's name, ids) are built from the
//! `crate::domain` types and only their errors are collected here; the
//! provider's own rules are asked of its profile.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::checker::{Checker, Text, path, present};
use crate::api::input::FieldError;
use crate::config::Config;
use crate::domain::evaluation::{MAX_ANSWER_TOKENS, MAX_EVALUATION_EXAMPLES};
use crate::domain::{
    ActivationPolicy, AutoOr, DatasetId, DateRange, DateRangeError, EvaluationConfig,
    ExampleBounds, ExampleBoundsError, Filters, Hyperparameters, ProviderKind, RunConfig,
    ServingChoice, TrainSplit,
};
use crate::provider::profile::on_demand_refusal;
use crate::provider::profiles::profile;
use crate::provider::shutdown;

pub use crate::domain::examples::{MAX_EXAMPLES_CEILING, MIN_EXAMPLES_FLOOR};
pub const DEFAULT_MIN_EXAMPLES: u32 = 10;
pub const DEFAULT_MAX_EXAMPLES: u32 = 50_000;
pub const DEFAULT_TRAIN_SPLIT: TrainSplit = TrainSplit::DEFAULT;
/// A fixed default so that repeating a request prepares the same split.
pub const DEFAULT_SEED: u64 = 42;
pub const MAX_SEED: i64 = 2_147_483_647;
/// The earliest day a date range may start or end on: a floor against
/// typos (`0001-10-01`), far older than any chat export this reads.
pub const EARLIEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 10_000;
const MAX_OUTCOMES: usize = 20;
const MAX_JUDGE_MODEL_CHARS: usize = 256;
const MAX_OUTCOME_CHARS: usize = 64;

/// A request that passed every rule, ready to become a queued run.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRunRequest {
    pub name: String,
    pub description: Option<String>,
    pub provider: ProviderKind,
    pub config: RunConfig,
    pub dataset_id: Option<DatasetId>,
    pub prepare_only: bool,
}

/// Checks every rule of a `POST /runs` body; pure (today is an argument).
pub fn validate(
    body: &Value,
    config: &Config,
    today: NaiveDate,
) -> Result<StartRunRequest, Vec<FieldError>> {
    let mut c = Checker::default();
    let Some(top) = c.object(
        Some(body),
        "",
        &[
            "name",
            "description",
            "provider",
            "config",
            "dataset_id",
            "prepare_only",
            "acknowledge_shutdown",
        ],
    ) else {
        return Err(c.errors);
    };

    let name = c.string(top.get("name"), "name", true, MAX_NAME_CHARS, Text::Line);
    let description = c.string(
        top.get("description"),
        "description",
        false,
        MAX_DESCRIPTION_CHARS,
        Text::Paragraphs,
    );
    let provider = match present(top.get("provider")) {
        None => Some(config.default_provider),
        Some(value) => match value.as_str().map(ProviderKind::parse) {
            Some(Ok(kind)) => Some(kind),
            _ => {
                c.error(
                    "provider",
                    format!("must be {}", ProviderKind::choices('"')),
                );
                None
            }
        },
    };
    if let Some(reason) = provider.and_then(|p| config.provider_unavailable(p)) {
        c.error("provider", reason);
    }
    let acknowledge_shutdown = c
        .boolean(top.get("acknowledge_shutdown"), "acknowledge_shutdown")
        .unwrap_or(false);
    let dataset_id = match present(top.get("dataset_id")) {
        None => None,
        Some(Value::String(s)) => match DatasetId::parse(s.as_str()) {
            Ok(id) => Some(id),
            Err(_) => {
                c.error(
                    "dataset_id",
                    "must be a dataset id ('ds_' and 32 hex digits)",
                );
                None
            }
        },
        Some(_) => {
            c.error("dataset_id", "must be a string");
            None
        }
    };
    let uses_dataset = present(top.get("dataset_id")).is_some();
    let prepare_only = c
        .boolean(top.get("prepare_only"), "prepare_only")
        .unwrap_or(false);
    if prepare_only && uses_dataset {
        c.error(
            "prepare_only",
            "cannot be true with dataset_id: that dataset is already prepared",
        );
    }

    let run_config = match c.object(
        top.get("config"),
        "config",
        &[
            "start_date",
            "end_date",
            "base_model",
            "min_examples",
            "max_examples",
            "train_split",
            "system_prompt",
            "seed",
            "hyperparameters",
            "filters",
            "evaluation",
            "activation",
            "serving",
        ],
    ) {
        Some(cfg) => run_config(&mut c, cfg, config, today, uses_dataset, provider),
        None => None,
    };
    if let (Some(provider), Some(run_config)) = (provider, &run_config) {
        provider_rules(
            &mut c,
            provider,
            run_config,
            config,
            today,
            acknowledge_shutdown,
        );
    }

    match (name, provider, run_config) {
        (Some(name), Some(provider), Some(run_config)) if c.errors.is_empty() => {
            Ok(StartRunRequest {
                name,
                description,
                provider,
                config: run_config,
                dataset_id,
                prepare_only,
            })
        }
        _ => Err(c.errors),
    }
}

/// 50,000, or fewer when the provider takes fewer records for the model
/// (Bedrock: its training plus validation record limits).
fn default_max_examples(provider: Option<ProviderKind>, base_model: Option<&str>) -> i64 {
    let limit = match (provider, base_model) {
        (Some(provider), Some(model)) => profile(provider).max_records(model),
        _ => None,
    };
    let default = u64::from(DEFAULT_MAX_EXAMPLES);
    i64::try_from(limit.map_or(default, |limit| limit.min(default))).unwrap_or(i64::MAX)
}

/// A JSON whole number, or `None` for anything else (a fraction, a
/// string): [`example_bounds`] reports it with the bounds' own rule.
fn whole_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The run's example bounds, built by [`ExampleBounds`] (which holds the
/// rules); `None` for a bound that was not a whole number. Every error is
/// collected on the field it is about, the minimum's first.
fn example_bounds(c: &mut Checker, min: Option<i64>, max: Option<i64>) -> Option<ExampleBounds> {
    let errors = match (min, max) {
        (Some(min), Some(max)) => match ExampleBounds::new(min, max) {
            Ok(bounds) => return Some(bounds),
            Err(errors) => errors,
        },
        (min, max) => {
            let mut errors = Vec::new();
            if !min.is_some_and(ExampleBounds::allows) {
                errors.push(ExampleBoundsError::MinOutOfRange);
            }
            if !max.is_some_and(ExampleBounds::allows) {
                errors.push(ExampleBoundsError::MaxOutOfRange);
            }
            errors
        }
    };
    for error in errors {
        c.error(error.field(), error.to_string());
    }
    None
}

fn run_config(
    c: &mut Checker,
    cfg: &Map<String, Value>,
    config: &Config,
    today: NaiveDate,
    uses_dataset: bool,
    provider: Option<ProviderKind>,
) -> Option<RunConfig> {
    let errors_before = c.errors.len();
    let (start_date, end_date) = if uses_dataset {
        for key in ["start_date", "end_date"] {
            if present(cfg.get(key)).is_some() {
                c.error(
                    path("config", key),
                    "must not be given with dataset_id (the dataset fixes the data)",
                );
            }
        }
        (None, None)
    } else {
        let start = c.date(cfg.get("start_date"), "config.start_date", true);
        let end = c.date(cfg.get("end_date"), "config.end_date", true);
        for (date, field) in [(start, "config.start_date"), (end, "config.end_date")] {
            if let Some(d) = date
                && d > today
            {
                c.error(
                    field,
                    format!("must not be in the future (today is {today})"),
                );
            } else if let Some(d) = date
                && d < EARLIEST_DATE
            {
                c.error(
                    field,
                    format!("must not be before {EARLIEST_DATE} (no export is older)"),
                );
            }
        }
        if let (Some(s), Some(e)) = (start, end) {
            match DateRange::at_most(s, e, config.max_date_range_days) {
                Ok(_) => {}
                Err(DateRangeError::EndBeforeStart { .. }) => {
                    c.error("config.end_date", "must not be before config.start_date");
                }
                Err(too_long @ DateRangeError::TooLong { .. }) => {
                    c.error("config.end_date", too_long.to_string());
                }
            }
        }
        (start, end)
    };

    let base_model = match present(cfg.get("base_model")) {
        None => {
            c.error("config.base_model", "is required");
            None
        }
        // Without a valid provider (its own error says why), any
        // provider's model passes here.
        Some(Value::String(m))
            if provider.map_or_else(
                || {
                    ProviderKind::ALL
                        .into_iter()
                        .any(|p| config.allowed_models(p).contains(m))
                },
                |p| config.allowed_models(p).contains(m),
            ) =>
        {
            Some(m.clone())
        }
        Some(Value::String(_)) => {
            let provider = provider.unwrap_or(config.default_provider);
            c.error(
                "config.base_model",
                format!(
                    "is not allowed for {}; use one of: {}",
                    provider.as_str(),
                    config.allowed_models(provider).join(", ")
                ),
            );
            None
        }
        Some(_) => {
            c.error("config.base_model", "must be a string");
            None
        }
    };

    let min_examples = match present(cfg.get("min_examples")) {
        None => Some(i64::from(DEFAULT_MIN_EXAMPLES)),
        Some(v) => whole_number(v),
    };
    let max_examples = match present(cfg.get("max_examples")) {
        None => Some(default_max_examples(provider, base_model.as_deref())),
        Some(v) => whole_number(v),
    };
    let examples = example_bounds(c, min_examples, max_examples);

    let train_split = match present(cfg.get("train_split")) {
        None => Some(DEFAULT_TRAIN_SPLIT),
        Some(v) => match v.as_f64().map(TrainSplit::new) {
            Some(Ok(split)) => Some(split),
            Some(Err(e)) => {
                c.error("config.train_split", e.to_string());
                None
            }
            None => {
                c.error("config.train_split", TrainSplit::RULE);
                None
            }
        },
    };
    let system_prompt = c.string(
        cfg.get("system_prompt"),
        "config.system_prompt",
        false,
        MAX_SYSTEM_PROMPT_CHARS,
        Text::Paragraphs,
    );
    let seed = match present(cfg.get("seed")) {
        None => Some(DEFAULT_SEED as i64),
        Some(v) => c.integer(v, "config.seed", 0..=MAX_SEED),
    };
    let hyperparameters = match present(cfg.get("hyperparameters")) {
        None => Hyperparameters::default(),
        Some(v) => hyperparameters(c, v),
    };
    let filters = match present(cfg.get("filters")) {
        None => Filters::default(),
        Some(v) => filters(c, v),
    };
    let evaluation = match present(cfg.get("evaluation")) {
        None => EvaluationConfig::default(),
        Some(v) => evaluation(c, v, config, provider),
    };
    let activation = choice(
        c,
        cfg.get("activation"),
        "config.activation",
        &[
            ActivationPolicy::Manual,
            ActivationPolicy::IfBetter,
            ActivationPolicy::Always,
        ],
        ActivationPolicy::as_str,
    );
    let serving = choice(
        c,
        cfg.get("serving"),
        "config.serving",
        &[ServingChoice::OnDemand, ServingChoice::SelfManaged],
        ServingChoice::as_str,
    );
    serving_rules(c, evaluation.enabled, activation, serving);

    if c.errors.len() > errors_before {
        return None;
    }
    Some(RunConfig {
        start_date,
        end_date,
        base_model: base_model?,
        min_examples: examples?.min(),
        max_examples: examples?.max(),
        train_split: train_split?,
        system_prompt,
        seed: u64::try_from(seed?).ok()?,
        hyperparameters,
        filters,
        evaluation,
        activation: activation?,
        serving: serving?,
    })
}

/// One of `choices`, by its name; `default` when absent.
fn choice<T: Copy + Default>(
    c: &mut Checker,
    value: Option<&Value>,
    field: &str,
    choices: &[T],
    name: fn(T) -> &'static str,
) -> Option<T> {
    let Some(value) = present(value) else {
        return Some(T::default());
    };
    let found = value
        .as_str()
        .and_then(|v| choices.iter().copied().find(|c| name(*c) == v));
    if found.is_none() {
        let names: Vec<String> = choices
            .iter()
            .map(|c| format!("\"{}\"", name(*c)))
            .collect();
        c.error(field, format!("must be one of {}", names.join(", ")));
    }
    found
}

/// `config.evaluation`. A judge must be on the deployment's list for the
/// run's provider (every one there has a known price): the tenant chooses
/// the model, the deployment pays for its calls.
fn evaluation(
    c: &mut Checker,
    value: &Value,
    config: &Config,
    provider: Option<ProviderKind>,
) -> EvaluationConfig {
    let at = "config.evaluation";
    let mut evaluation = EvaluationConfig::default();
    let Some(map) = c.object(
        Some(value),
        at,
        &["enabled", "max_examples", "max_tokens", "judge_model"],
    ) else {
        return evaluation;
    };
    if let Some(enabled) = c.boolean(map.get("enabled"), &path(at, "enabled")) {
        evaluation.enabled = enabled;
    }
    if let Some(v) = present(map.get("max_examples")) {
        let range = 1..=i64::from(MAX_EVALUATION_EXAMPLES);
        if let Some(n) = c.integer(v, &path(at, "max_examples"), range) {
            evaluation.max_examples = u32::try_from(n).unwrap_or(evaluation.max_examples);
        }
    }
    if let Some(v) = present(map.get("max_tokens")) {
        let range = 1..=i64::from(MAX_ANSWER_TOKENS);
        if let Some(n) = c.integer(v, &path(at, "max_tokens"), range) {
            evaluation.max_tokens = u32::try_from(n).unwrap_or(evaluation.max_tokens);
        }
    }
    evaluation.judge_model = c.string(
        map.get("judge_model"),
        &path(at, "judge_model"),
        false,
        MAX_JUDGE_MODEL_CHARS,
        Text::Line,
    );
    // Without a valid provider (its own error says why) the judge cannot
    // be checked against a list.
    if let (Some(judge), Some(provider)) = (&evaluation.judge_model, provider) {
        let judges = config.allowed_judges(provider);
        if !judges.contains(judge) {
            c.error(
                path(at, "judge_model"),
                format!(
                    "is not an allowed judge for {}; use one of: {}",
                    provider.as_str(),
                    judges.join(", ")
                ),
            );
        }
    }
    evaluation
}

/// What the evaluation, the activation policy and the serving choice
/// must agree on: a model served by the tenant cannot be called here, so
/// cannot be evaluated; `if_better` needs an evaluation to decide.
fn serving_rules(
    c: &mut Checker,
    evaluating: bool,
    activation: Option<ActivationPolicy>,
    serving: Option<ServingChoice>,
) {
    if serving == Some(ServingChoice::SelfManaged) && evaluating {
        c.error(
            "config.evaluation.enabled",
            "must be false when config.serving is \"self_managed\": a model this service does not serve cannot be evaluated here",
        );
    }
    if activation == Some(ActivationPolicy::IfBetter) && !evaluating {
        c.error(
            "config.activation",
            "\"if_better\" (the default) needs an evaluation; with config.evaluation.enabled false choose \"manual\" or \"always\"",
        );
    }
}

fn hyperparameters(c: &mut Checker, value: &Value) -> Hyperparameters {
    let at = "config.hyperparameters";
    let Some(map) = c.object(
        Some(value),
        at,
        &[
            "n_epochs",
            "batch_size",
            "learning_rate_multiplier",
            "learning_rate",
            "learning_rate_warmup_steps",
            "lora",
            "lora_rank",
            "lora_alpha",
            "n_checkpoints",
        ],
    ) else {
        return Hyperparameters::default();
    };
    let whole = |c: &mut Checker, key: &str, max: i64| -> AutoOr<u32> {
        match present(map.get(key)) {
            None => AutoOr::Auto,
            Some(Value::String(s)) if s == "auto" => AutoOr::Auto,
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| (1..=max).contains(&n)) => n
                .as_i64()
                .and_then(|n| u32::try_from(n).ok())
                .map_or(AutoOr::Auto, AutoOr::Value),
            Some(_) => {
                c.error(
                    path(at, key),
                    format!("must be \"auto\" or a whole number from 1 to {max}"),
                );
                AutoOr::Auto
            }
        }
    };
    let n_epochs = whole(c, "n_epochs", 50);
    let batch_size = whole(c, "batch_size", 256);
    let learning_rate_multiplier = match present(map.get("learning_rate_multiplier")) {
        None => AutoOr::Auto,
        Some(Value::String(s)) if s == "auto" => AutoOr::Auto,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x > 0.0 && x <= 10.0) => {
            n.as_f64().map_or(AutoOr::Auto, AutoOr::Value)
        }
        Some(_) => {
            c.error(
                path(at, "learning_rate_multiplier"),
                "must be \"auto\" or a number greater than 0 and at most 10",
            );
            AutoOr::Auto
        }
    };
    let learning_rate = match present(map.get("learning_rate")) {
        None => AutoOr::Auto,
        Some(Value::String(s)) if s == "auto" => AutoOr::Auto,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x > 0.0 && x < 1.0) => {
            n.as_f64().map_or(AutoOr::Auto, AutoOr::Value)
        }
        Some(_) => {
            c.error(
                path(at, "learning_rate"),
                "must be \"auto\" or a number greater than 0 and less than 1",
            );
            AutoOr::Auto
        }
    };
    let learning_rate_warmup_steps = match present(map.get("learning_rate_warmup_steps")) {
        None => AutoOr::Auto,
        Some(Value::String(s)) if s == "auto" => AutoOr::Auto,
        Some(v) => c
            .integer(v, &path(at, "learning_rate_warmup_steps"), 0..=10_000)
            .and_then(|n| u32::try_from(n).ok())
            .map_or(AutoOr::Auto, AutoOr::Value),
    };
    let lora = c.boolean(map.get("lora"), &path(at, "lora"));
    let lora_rank = whole(c, "lora_rank", 1024);
    let lora_alpha = whole(c, "lora_alpha", 4096);
    let n_checkpoints = whole(c, "n_checkpoints", 100);
    Hyperparameters {
        n_epochs,
        batch_size,
        learning_rate_multiplier,
        learning_rate,
        learning_rate_warmup_steps,
        lora,
        lora_rank,
        lora_alpha,
        n_checkpoints,
    }
}

/// The rules that depend on the provider, asked of its profile (its
/// hyperparameters and their ranges, its record limits), and the base
/// model's shutdown date.
fn provider_rules(
    c: &mut Checker,
    provider: ProviderKind,
    run: &RunConfig,
    config: &Config,
    today: NaiveDate,
    acknowledged: bool,
) {
    let profile = profile(provider);
    for problem in profile.check_config(run) {
        c.error(problem.field, problem.message);
    }
    if run.serving == ServingChoice::OnDemand
        && let Some(refusal) = on_demand_refusal(
            profile.serving(),
            &run.base_model,
            config.bedrock.region.as_deref(),
        )
    {
        c.error(
            "config.base_model",
            format!(
                "{refusal}; or set config.serving to \"self_managed\" (and config.evaluation.enabled to false) to train it and serve the model yourself"
            ),
        );
    }
    if config.enforce_shutdown_dates
        && let Err(refusal) = shutdown::check(
            provider,
            &run.base_model,
            today,
            config.shutdown_margin_days,
            acknowledged,
        )
    {
        c.error("config.base_model", refusal.to_string());
    }
}

fn filters(c: &mut Checker, value: &Value) -> Filters {
    let at = "config.filters";
    let mut filters = Filters::default();
    let Some(map) = c.object(
        Some(value),
        at,
        &[
            "exclude_outcomes",
            "min_rating",
            "min_assistant_turns",
            "redact_pii",
        ],
    ) else {
        return filters;
    };
    match present(map.get("exclude_outcomes")) {
        None => {}
        Some(Value::Array(items)) => {
            let field = path(at, "exclude_outcomes");
            if items.len() > MAX_OUTCOMES {
                c.error(&field, format!("may list at most {MAX_OUTCOMES} outcomes"));
            }
            let mut outcomes = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() && s.chars().count() <= MAX_OUTCOME_CHARS => {
                        outcomes.push(s.to_owned());
                    }
                    _ => c.error(
                        format!("{field}[{i}]"),
                        format!(
                            "must be a non-empty string of at most {MAX_OUTCOME_CHARS} characters"
                        ),
                    ),
                }
            }
            filters.exclude_outcomes = outcomes;
        }
        Some(_) => c.error(path(at, "exclude_outcomes"), "must be an array of strings"),
    }
    if let Some(v) = present(map.get("min_rating")) {
        filters.min_rating = c.integer(v, &path(at, "min_rating"), 1..=5);
    }
    if let Some(v) = present(map.get("min_assistant_turns"))
        && let Some(n) = c.integer(v, &path(at, "min_assistant_turns"), 1..=100)
    {
        filters.min_assistant_turns = u32::try_from(n).unwrap_or(1);
    }
    if let Some(b) = c.boolean(map.get("redact_pii"), &path(at, "redact_pii")) {
        filters.redact_pii = b;
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "FINETUNE_TABLE" => Some("t".into()),
            "FINETUNE_BUCKET" => Some("b".into()),
            "ALLOWED_BASE_MODELS" => Some("gpt-4o-mini-2024-07-18,gpt-4.1-2025-04-14".into()),
            "MAX_DATE_RANGE_DAYS" => Some("31".into()),
            _ => None,
        })
        .unwrap()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn valid() -> Value {
        json!({
            "name": "October support",
            "config": {
                "start_date": "2026-10-01",
                "end_date": "2026-10-31",
                "base_model": "gpt-4o-mini-2024-07-18"
            }
        })
    }

    fn errors_of(body: Value) -> Vec<(String, String)> {
        validate(&body, &config(), today())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn fields_of(body: Value) -> Vec<String> {
        errors_of(body).into_iter().map(|(f, _)| f).collect()
    }

    fn with(mut body: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(parent).unwrap()
        };
        target.as_object_mut().unwrap().insert(key.into(), value);
        body
    }

    #[test]
    fn a_minimal_request_gets_the_defaults() {
        let r = validate(&valid(), &config(), today()).unwrap();
        assert_eq!(r.name, "October support");
        assert_eq!(r.provider, ProviderKind::OpenAi);
        assert_eq!(r.config.min_examples, DEFAULT_MIN_EXAMPLES);
        assert_eq!(r.config.max_examples, DEFAULT_MAX_EXAMPLES);
        assert_eq!(r.config.train_split, DEFAULT_TRAIN_SPLIT);
        assert_eq!(r.config.seed, DEFAULT_SEED);
        assert_eq!(r.config.hyperparameters, Hyperparameters::default());
        assert_eq!(r.config.filters, Filters::default());
        assert!(!r.prepare_only && r.dataset_id.is_none());
    }

    #[test]
    fn a_full_request_is_read_exactly() {
        let body = json!({
            "name": "  full  ",
            "description": "all fields",
            "provider": "openai",
            "prepare_only": true,
            "config": {
                "start_date": "2026-11-01", "end_date": "2026-11-25",
                "base_model": "gpt-4.1-2025-04-14",
                "min_examples": 20, "max_examples": 20, "train_split": 1,
                "system_prompt": "Be kind.", "seed": 2147483647,
                "hyperparameters": {"n_epochs": 50, "batch_size": "auto", "learning_rate_multiplier": 10},
                "filters": {"exclude_outcomes": ["spam"], "min_rating": 4,
                            "min_assistant_turns": 2, "redact_pii": false}
            }
        });
        let r = validate(&body, &config(), today()).unwrap();
        assert_eq!(r.name, "full");
        assert!(r.prepare_only);
        assert_eq!(r.config.seed, 2_147_483_647);
        assert_eq!(r.config.train_split, 1.0);
        assert_eq!(r.config.hyperparameters.n_epochs, AutoOr::Value(50));
        assert_eq!(r.config.hyperparameters.batch_size, AutoOr::Auto);
        assert_eq!(
            r.config.hyperparameters.learning_rate_multiplier,
            AutoOr::Value(10.0)
        );
        assert_eq!(r.config.filters.exclude_outcomes, vec!["spam"]);
        assert_eq!(r.config.filters.min_rating, Some(4));
        assert_eq!(r.config.filters.min_assistant_turns, 2);
        assert!(!r.config.filters.redact_pii);
        assert_eq!(r.config.system_prompt.as_deref(), Some("Be kind."));
    }

    #[test]
    fn every_violation_is_listed_at_once() {
        let body = json!({
            "name": "",
            "description": "d".repeat(1001),
            "provider": "azure",
            "colour": "blue",
            "config": {
                "start_date": "2026-10-31", "end_date": "2026-10-01",
                "base_model": "gpt-5",
                "min_examples": 5, "max_examples": 2_000_000, "train_split": 0,
                "system_prompt": "p".repeat(10_001), "seed": -1,
                "hyperparameters": {"n_epochs": 0, "batch_size": 257, "learning_rate_multiplier": 0, "lr": 1},
                "filters": {"exclude_outcomes": "x", "min_rating": 9, "min_assistant_turns": 0, "redact_pii": "yes", "x": 1},
                "extra": true
            }
        });
        let fields = fields_of(body);
        for expected in [
            "name",
            "description",
            "provider",
            "colour",
            "config.extra",
            "config.end_date",
            "config.base_model",
            "config.min_examples",
            "config.max_examples",
            "config.train_split",
            "config.system_prompt",
            "config.seed",
            "config.hyperparameters.n_epochs",
            "config.hyperparameters.batch_size",
            "config.hyperparameters.learning_rate_multiplier",
            "config.hyperparameters.lr",
            "config.filters.exclude_outcomes",
            "config.filters.min_rating",
            "config.filters.min_assistant_turns",
            "config.filters.redact_pii",
            "config.filters.x",
        ] {
            assert!(
                fields.contains(&expected.to_owned()),
                "{expected} not in {fields:?}"
            );
        }
        assert_eq!(fields.len(), 21, "{fields:?}");
    }

    #[test]
    fn body_must_be_an_object_with_required_fields() {
        assert_eq!(fields_of(json!([1])), vec!["body"]);
        assert_eq!(fields_of(json!({})), vec!["name", "config"]);
        assert_eq!(
            fields_of(json!({"name": "n", "config": {}})),
            vec!["config.start_date", "config.end_date", "config.base_model"]
        );
        assert_eq!(
            fields_of(json!({"name": 3, "config": 3})),
            vec!["name", "config"]
        );
    }

    #[test]
    fn dates_must_be_strict_calendar_days() {
        for bad in [
            "2026-1-05",
            "2026/10/01",
            "01-10-2026",
            "2026-02-30",
            "yesterday",
        ] {
            let errs = errors_of(with(valid(), "/config/start_date", json!(bad)));
            assert_eq!(errs[0].0, "config.start_date", "{bad}");
        }
        assert_eq!(
            fields_of(with(valid(), "/config/start_date", json!(20261001))),
            vec!["config.start_date"]
        );
    }

    #[test]
    fn dates_are_ordered_in_the_past_and_within_the_range_limit() {
        let errs = errors_of(with(valid(), "/config/end_date", json!("2026-09-30")));
        assert_eq!(
            errs,
            vec![(
                "config.end_date".into(),
                "must not be before config.start_date".into()
            )]
        );

        let future = with(valid(), "/config/end_date", json!("2026-11-26"));
        let errs = errors_of(with(future, "/config/start_date", json!("2026-11-26")));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].1.contains("future"));

        // today itself is fine
        let today_only = with(valid(), "/config/start_date", json!("2026-11-25"));
        assert!(
            validate(
                &with(today_only, "/config/end_date", json!("2026-11-25")),
                &config(),
                today()
            )
            .is_ok()
        );

        // 31 days allowed (inclusive), 32 not
        let errs = errors_of(with(valid(), "/config/start_date", json!("2026-09-30")));
        assert_eq!(errs[0].0, "config.end_date");
        assert!(errs[0].1.contains("32 days"), "{errs:?}");
    }

    #[test]
    fn examples_split_and_seed_bounds() {
        let ok = |p: &str, v: Value| validate(&with(valid(), p, v), &config(), today()).is_ok();
        assert!(ok("/config/min_examples", json!(10)));
        assert!(!ok("/config/min_examples", json!(9)));
        assert!(!ok("/config/min_examples", json!(10.5)));
        assert!(!ok("/config/min_examples", json!("10")));
        assert!(ok("/config/max_examples", json!(1_000_000)));
        assert!(!ok("/config/max_examples", json!(1_000_001)));
        let body = with(
            with(valid(), "/config/min_examples", json!(100)),
            "/config/max_examples",
            json!(99),
        );
        assert_eq!(fields_of(body), vec!["config.max_examples"]);
        assert!(ok("/config/train_split", json!(1)));
        assert!(ok("/config/train_split", json!(0.01)));
        assert!(!ok("/config/train_split", json!(1.01)));
        assert!(!ok("/config/train_split", json!(-0.5)));
        assert!(ok("/config/seed", json!(0)));
        assert!(!ok("/config/seed", json!(2_147_483_648_i64)));
    }

    #[test]
    fn hyperparameters_accept_auto_or_bounded_numbers() {
        let hp = |v: Value| {
            validate(
                &with(valid(), "/config/hyperparameters", v),
                &config(),
                today(),
            )
        };
        assert!(
            hp(json!({"n_epochs": "auto", "batch_size": 1, "learning_rate_multiplier": 0.05}))
                .is_ok()
        );
        assert!(hp(json!({"n_epochs": 1, "batch_size": 256})).is_ok());
        assert!(hp(json!({})).is_ok());
        for bad in [
            json!({"n_epochs": 51}),
            json!({"n_epochs": "AUTO"}),
            json!({"n_epochs": 2.5}),
            json!({"batch_size": 0}),
            json!({"learning_rate_multiplier": 10.5}),
            json!({"learning_rate_multiplier": -1}),
            json!("auto"),
        ] {
            assert!(hp(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_with_a_control_character_is_refused_naming_it() {
        // GIVEN names a dashboard could not show as one line
        for (bad, shown) in [
            ("a\u{0}b", "U+0000"),
            ("a\nb", "U+000A"),
            ("a\u{1b}[31m", "U+001B"),
        ] {
            // WHEN the run is started THEN the name is refused, and the
            // message names the character
            let errs = errors_of(with(valid(), "/name", json!(bad)));
            assert_eq!(errs.len(), 1, "{bad:?}: {errs:?}");
            assert_eq!(errs[0].0, "name");
            assert!(errs[0].1.contains(shown), "{errs:?}");
        }
        // AND non-ASCII letters and emoji are names like any other
        assert!(
            validate(
                &with(valid(), "/name", json!("Soporte ñandú 🚀")),
                &config(),
                today()
            )
            .is_ok()
        );
    }

    #[test]
    fn descriptions_and_prompts_keep_line_breaks_but_refuse_other_control_characters() {
        let ok = |p: &str, v: Value| validate(&with(valid(), p, v), &config(), today()).is_ok();
        assert!(ok("/description", json!("first line\nsecond\tline\r\n")));
        assert!(ok("/config/system_prompt", json!("Be brief.\n\nBe kind.")));
        assert!(!ok("/description", json!("nul\u{0}here")));
        assert!(!ok("/config/system_prompt", json!("bell\u{7}")));
    }

    #[test]
    fn dates_before_the_year_2000_are_refused_as_typos() {
        // GIVEN a date range starting in year 1 (a typo for 2026)
        let errs = errors_of(with(valid(), "/config/start_date", json!("0001-10-01")));
        // THEN it is refused with the floor in the message
        assert_eq!(errs[0].0, "config.start_date");
        assert!(errs[0].1.contains("2000-01-01"), "{errs:?}");
        // AND the floor itself is accepted (only the range limit then applies)
        let body = with(
            with(valid(), "/config/start_date", json!("2000-01-01")),
            "/config/end_date",
            json!("2000-01-31"),
        );
        assert!(validate(&body, &config(), today()).is_ok());
    }

    #[test]
    fn names_and_texts_are_bounded_in_characters_not_bytes() {
        let ok = |p: &str, v: Value| validate(&with(valid(), p, v), &config(), today()).is_ok();
        assert!(ok("/name", json!("é".repeat(100))));
        assert!(!ok("/name", json!("é".repeat(101))));
        assert!(!ok("/name", json!("   ")));
        assert!(ok("/description", json!("d".repeat(1000))));
        assert!(ok("/description", Value::Null));
        assert!(ok("/config/system_prompt", json!("s".repeat(10_000))));
    }

    #[test]
    fn provider_defaults_to_openai_and_bedrock_needs_its_role() {
        let r = validate(&with(valid(), "/provider", Value::Null), &config(), today()).unwrap();
        assert_eq!(r.provider, ProviderKind::OpenAi);
        let body = with(bedrock_valid(), "/provider", json!("bedrock"));
        let errs: Vec<(String, String)> = validate(&body, &config(), today())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect();
        assert_eq!(
            errs,
            vec![(
                "provider".into(),
                "bedrock is not enabled in this deployment (it has no BEDROCK_ROLE_ARN)".into()
            )]
        );
    }

    fn bedrock_config(extra: &'static [(&'static str, &'static str)]) -> Config {
        Config::from_lookup(|k| match k {
            "FINETUNE_TABLE" => Some("t".into()),
            "FINETUNE_BUCKET" => Some("b".into()),
            "BEDROCK_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/bedrock-ft".into()),
            other => extra
                .iter()
                .find(|(k, _)| *k == other)
                .map(|(_, v)| (*v).to_owned()),
        })
        .unwrap()
    }

    fn bedrock_valid() -> Value {
        json!({
            "name": "Nova support",
            "provider": "bedrock",
            "config": {
                "start_date": "2026-10-01",
                "end_date": "2026-10-31",
                "base_model": "amazon.nova-micro-v1:0:128k",
                "hyperparameters": {"n_epochs": 3, "learning_rate": 0.00001,
                                    "learning_rate_warmup_steps": 5}
            }
        })
    }

    fn errors_with(body: Value, config: &Config, today: NaiveDate) -> Vec<(String, String)> {
        validate(&body, config, today)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn a_bedrock_run_takes_a_nova_model_and_bedrock_hyperparameters() {
        let r = validate(&bedrock_valid(), &bedrock_config(&[]), today()).unwrap();
        assert_eq!(r.provider, ProviderKind::Bedrock);
        assert_eq!(r.config.base_model, "amazon.nova-micro-v1:0:128k");
        assert_eq!(
            r.config.hyperparameters.learning_rate,
            AutoOr::Value(0.00001)
        );
        assert_eq!(
            r.config.hyperparameters.learning_rate_warmup_steps,
            AutoOr::Value(5)
        );
    }

    #[test]
    fn a_run_is_evaluated_and_activated_only_if_better_unless_it_says_otherwise() {
        let r = validate(&valid(), &config(), today()).unwrap();
        assert_eq!(r.config.evaluation, EvaluationConfig::default());
        assert!(r.config.evaluation.enabled);
        assert_eq!(r.config.evaluation.max_examples, 200);
        assert_eq!(r.config.activation, ActivationPolicy::IfBetter);
        assert_eq!(r.config.serving, ServingChoice::OnDemand);

        let body = with(
            with(
                valid(),
                "/config/evaluation",
                json!({"max_examples": 50, "max_tokens": 256, "judge_model": "gpt-4.1-2025-04-14"}),
            ),
            "/config/activation",
            json!("always"),
        );
        let r = validate(&body, &config(), today()).unwrap();
        assert_eq!(r.config.evaluation.max_examples, 50);
        assert_eq!(r.config.evaluation.max_tokens, 256);
        assert_eq!(
            r.config.evaluation.judge_model.as_deref(),
            Some("gpt-4.1-2025-04-14")
        );
        assert_eq!(r.config.activation, ActivationPolicy::Always);
    }

    #[test]
    fn a_judge_outside_the_providers_list_is_refused_naming_the_field_and_the_allowed_judges() {
        for judge in ["o1-pro", "gpt-4.5-preview", "amazon.nova-pro-v1:0"] {
            // GIVEN an OpenAI run whose judge is not on the deployment's list
            // (a premium model, or another provider's)
            let body = with(valid(), "/config/evaluation", json!({"judge_model": judge}));
            // WHEN it is validated
            let errors = errors_of(body);
            // THEN the judge is refused with the rule and the choices
            assert_eq!(errors.len(), 1, "{judge}: {errors:?}");
            assert_eq!(errors[0].0, "config.evaluation.judge_model");
            assert!(
                errors[0]
                    .1
                    .starts_with("is not an allowed judge for openai; use one of: ")
                    && errors[0].1.contains("gpt-4.1-2025-04-14"),
                "{}",
                errors[0].1
            );
        }
        // AND a Bedrock run may name a Nova judge, not an OpenAI one
        let bedrock = Config::from_lookup(|k| match k {
            "FINETUNE_TABLE" => Some("t".into()),
            "FINETUNE_BUCKET" => Some("b".into()),
            "BEDROCK_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/ft".into()),
            _ => None,
        })
        .unwrap();
        let nova = |judge: &str| {
            let body = with(
                with(
                    with(valid(), "/provider", json!("bedrock")),
                    "/config/base_model",
                    json!("amazon.nova-micro-v1:0:128k"),
                ),
                "/config/evaluation",
                json!({"judge_model": judge}),
            );
            validate(&body, &bedrock, today())
        };
        assert!(nova("amazon.nova-pro-v1:0").is_ok());
        let errors = nova("gpt-4.1-2025-04-14").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "config.evaluation.judge_model");
    }

    #[test]
    fn evaluation_settings_out_of_range_or_contradicting_each_other_are_named() {
        let body = with(
            with(
                valid(),
                "/config/evaluation",
                json!({"max_examples": 0, "max_tokens": 5000, "judge_model": "m".repeat(300), "extra": 1}),
            ),
            "/config/activation",
            json!("sometimes"),
        );
        let fields = fields_of(body);
        for field in [
            "config.evaluation.max_examples",
            "config.evaluation.max_tokens",
            "config.evaluation.judge_model",
            "config.evaluation.extra",
            "config.activation",
        ] {
            assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
        }

        // GIVEN no evaluation with the default policy (if_better)
        let off = with(valid(), "/config/evaluation", json!({"enabled": false}));
        let errors = errors_of(off.clone());
        // THEN the policy is refused: nothing would ever decide "better"
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "config.activation");
        assert!(
            errors[0].1.contains("\"manual\" or \"always\""),
            "{}",
            errors[0].1
        );
        // AND with a policy that needs no decision it is accepted
        let manual = with(off, "/config/activation", json!("manual"));
        assert!(validate(&manual, &config(), today()).is_ok());

        // GIVEN a model the tenant serves itself, still to be evaluated
        let self_served = with(valid(), "/config/serving", json!("self_managed"));
        let errors = errors_of(self_served);
        assert!(
            errors
                .iter()
                .any(|(f, m)| f == "config.evaluation.enabled" && m.contains("self_managed")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_run_bedrock_cannot_serve_on_demand_is_refused_unless_the_tenant_serves_it() {
        // GIVEN a deployment in a region without on-demand deployments
        let config = bedrock_config(&[("AWS_REGION", "eu-west-1")]);
        // WHEN a run asks for its model to be served on demand (the default)
        let errors = errors_with(bedrock_valid(), &config, today());
        // THEN it is refused before any training is paid for, saying why
        // and what to do instead
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "config.base_model");
        for words in [
            "cannot be deployed on demand in eu-west-1",
            "us-east-1",
            "self_managed",
        ] {
            assert!(errors[0].1.contains(words), "{words}: {}", errors[0].1);
        }
        // AND a tenant that serves it itself (no evaluation here) may train it
        let mut own = with(bedrock_valid(), "/config/serving", json!("self_managed"));
        own = with(own, "/config/evaluation", json!({"enabled": false}));
        own = with(own, "/config/activation", json!("manual"));
        let r = validate(&own, &config, today()).unwrap();
        assert_eq!(r.config.serving, ServingChoice::SelfManaged);
        // AND in us-east-1 the same run is served on demand
        let config = bedrock_config(&[("AWS_REGION", "us-east-1")]);
        assert!(validate(&bedrock_valid(), &config, today()).is_ok());
    }

    #[test]
    fn the_default_provider_comes_from_config() {
        let config = bedrock_config(&[("DEFAULT_PROVIDER", "bedrock")]);
        let body = with(bedrock_valid(), "/provider", Value::Null);
        assert_eq!(
            validate(&body, &config, today()).unwrap().provider,
            ProviderKind::Bedrock
        );
    }

    #[test]
    fn a_model_of_the_other_provider_is_refused_with_this_providers_list() {
        let body = with(
            bedrock_valid(),
            "/config/base_model",
            json!("gpt-4o-mini-2024-07-18"),
        );
        let errs = errors_with(body, &bedrock_config(&[]), today());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "config.base_model");
        assert!(
            errs[0]
                .1
                .starts_with("is not allowed for bedrock; use one of: amazon.nova-micro")
        );
    }

    #[test]
    fn bedrock_hyperparameter_ranges_and_foreign_ones_are_all_listed() {
        let body = with(
            bedrock_valid(),
            "/config/hyperparameters",
            json!({"n_epochs": 6, "batch_size": 8, "learning_rate": 0.01,
                   "learning_rate_warmup_steps": 101, "learning_rate_multiplier": 2}),
        );
        let fields: Vec<String> = errors_with(body, &bedrock_config(&[]), today())
            .into_iter()
            .map(|(f, _)| f)
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
        let openai = with(
            valid(),
            "/config/hyperparameters",
            json!({"learning_rate": 0.00001}),
        );
        assert_eq!(
            errors_of(openai),
            vec![(
                "config.hyperparameters.learning_rate".into(),
                "is Bedrock's; OpenAI takes learning_rate_multiplier".into()
            )]
        );
    }

    #[test]
    fn a_base_model_shutting_down_soon_is_refused_with_its_date_unless_acknowledged() {
        let december = NaiveDate::from_ymd_opt(2026, 12, 20).unwrap();
        let errs = errors_with(valid(), &config(), december);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "config.base_model");
        assert!(
            errs[0].1.contains("shuts down on 2027-01-14"),
            "{}",
            errs[0].1
        );
        assert!(errs[0].1.contains("acknowledge_shutdown"), "{}", errs[0].1);

        let acknowledged = with(valid(), "/acknowledge_shutdown", json!(true));
        assert!(validate(&acknowledged, &config(), december).is_ok());

        let config = Config::from_lookup(|k| match k {
            "FINETUNE_TABLE" => Some("t".into()),
            "FINETUNE_BUCKET" => Some("b".into()),
            "MODEL_SHUTDOWN_MARGIN_DAYS" => Some("10".into()),
            _ => None,
        })
        .unwrap();
        assert!(validate(&valid(), &config, december).is_ok());
    }

    #[test]
    fn after_openais_last_day_for_new_jobs_no_openai_run_starts() {
        let january = NaiveDate::from_ymd_opt(2027, 1, 7).unwrap();
        let acknowledged = with(valid(), "/acknowledge_shutdown", json!(true));
        let errs = errors_with(acknowledged, &config(), january);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].1.contains("after 2027-01-06"), "{}", errs[0].1);
    }

    #[test]
    fn a_local_stack_that_ignores_shutdown_dates_starts_openai_runs_any_day() {
        let january = NaiveDate::from_ymd_opt(2027, 2, 1).unwrap();
        let config = Config::from_lookup(|k| match k {
            "FINETUNE_TABLE" => Some("t".into()),
            "FINETUNE_BUCKET" => Some("b".into()),
            "MODEL_SHUTDOWN_DATES" => Some("ignore".into()),
            _ => None,
        })
        .unwrap();
        let mut body = valid();
        body["config"]["start_date"] = json!("2027-01-01");
        body["config"]["end_date"] = json!("2027-01-31");
        assert!(validate(&body, &config, january).is_ok());
    }

    #[test]
    fn dataset_id_replaces_the_date_range() {
        let id = DatasetId::generate();
        let body = json!({"name": "reuse", "dataset_id": id.as_str(),
                          "config": {"base_model": "gpt-4o-mini-2024-07-18"}});
        let r = validate(&body, &config(), today()).unwrap();
        assert_eq!(r.dataset_id, Some(id.clone()));
        assert_eq!(r.config.start_date, None);

        let body = json!({"name": "both", "dataset_id": id.as_str(), "prepare_only": true,
                          "config": {"base_model": "gpt-4o-mini-2024-07-18", "start_date": "2026-10-01"}});
        assert_eq!(fields_of(body), vec!["prepare_only", "config.start_date"]);

        let body = json!({"name": "bad", "dataset_id": "ds_../x",
                          "config": {"base_model": "gpt-4o-mini-2024-07-18"}});
        assert_eq!(fields_of(body), vec!["dataset_id"]);
    }
}
