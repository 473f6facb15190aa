//! `POST /runs`: validate the request, honour `Idempotency-Key`, store the
//! run as `queued`. No slow work here (API Gateway cuts requests at 30 s);
//! the monitor does the rest.
//!
//! Validation reads a `serde_json::Value` by hand instead of deserialising
//! into a struct: serde stops at the first error, and callers deserve every
//! violated rule in one answer.

use std::ops::RangeInclusive;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::input::{FieldError, IDEMPOTENCY_KEY_HEADER};
use crate::config::Config;
use crate::domain::{
    AutoOr, DatasetId, Filters, Hyperparameters, IdempotencyKey, NewRun, ProviderKind, Run,
    RunConfig, TenantId,
};
use crate::provider::bedrock::limits as bedrock_limits;
use crate::provider::shutdown;
use crate::store::{CreateOutcome, IdempotentRequest, Store, StoreError};

/// OpenAI refuses training files with fewer examples than this.
pub const MIN_EXAMPLES_FLOOR: i64 = 10;
pub const DEFAULT_MIN_EXAMPLES: u32 = 10;
pub const MAX_EXAMPLES_CEILING: i64 = 1_000_000;
pub const DEFAULT_MAX_EXAMPLES: u32 = 50_000;
pub const DEFAULT_TRAIN_SPLIT: f64 = 0.9;
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

/// What a free-text field may hold. A name is one line shown in lists and
/// dashboards; a description or a system prompt may have paragraphs. None
/// may hold other control characters (NUL, escape, bell…): they are never
/// meant, break logs and terminals, and some stores refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Line,
    Paragraphs,
}

impl Text {
    fn allows(self, c: char) -> bool {
        !c.is_control() || (self == Text::Paragraphs && matches!(c, '\t' | '\n' | '\r'))
    }

    fn rule(self) -> &'static str {
        match self {
            Text::Line => "; a name is one line of text",
            Text::Paragraphs => "; tabs and line breaks are allowed",
        }
    }
}

/// A control character as a person can read it in an error: `U+0000`.
struct ControlChar(char);

impl std::fmt::Display for ControlChar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 10_000;
const MAX_OUTCOMES: usize = 20;
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

#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    /// The body is not a JSON document.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// Every rule the request breaks.
    #[error("the request is invalid ({} problems)", .0.len())]
    Invalid(Vec<FieldError>),
    /// The key was used before with another body.
    #[error("Idempotency-Key {key} was already used with a different request")]
    IdempotencyKeyReused { key: String },
    #[error(transparent)]
    Store(StoreError),
}

/// Validates, then stores the run (or finds the one this idempotency key
/// created). `idempotency_key` is the raw header value.
pub async fn start_run(
    store: &Store,
    config: &Config,
    tenant: &TenantId,
    body: &[u8],
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CreateOutcome, StartRunError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        return Err(StartRunError::MalformedJson(
            "the body is empty; send a JSON object".to_owned(),
        ));
    } else {
        serde_json::from_slice(body).map_err(|e| StartRunError::MalformedJson(e.to_string()))?
    };
    let validated = validate(&value, config, now.date_naive());
    let mut errors = validated.as_ref().err().cloned().unwrap_or_default();
    if let Some(dataset_id) = value.get("dataset_id").and_then(Value::as_str)
        && let Ok(dataset_id) = DatasetId::parse(dataset_id)
    {
        match store.get_dataset(tenant, &dataset_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                errors.push(FieldError::new("dataset_id", "no dataset with this id"));
            }
            Err(e) => return Err(StartRunError::Store(e)),
        }
    }
    let key = match idempotency_key.map(|k| IdempotencyKey::parse(k.trim())) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                IDEMPOTENCY_KEY_HEADER,
                "must be 1 to 128 ASCII letters, digits, '-' or '_'",
            ));
            None
        }
    };
    let request = match validated {
        Ok(request) if errors.is_empty() => request,
        _ => return Err(StartRunError::Invalid(errors)),
    };
    let idempotency = key.map(|key| IdempotentRequest {
        key,
        request_hash: request_hash(&value),
    });
    let run = Run::new_queued(
        NewRun {
            tenant_id: tenant.clone(),
            name: request.name,
            description: request.description,
            provider: request.provider,
            config: request.config,
            dataset_id: request.dataset_id,
            prepare_only: request.prepare_only,
        },
        now,
    );
    match store.create_run(&run, idempotency.as_ref()).await {
        Ok(outcome) => Ok(outcome),
        Err(StoreError::IdempotencyMismatch { key, .. }) => {
            Err(StartRunError::IdempotencyKeyReused { key })
        }
        Err(e) => Err(StartRunError::Store(e)),
    }
}

/// sha256 of the body's canonical form (keys sorted, no whitespace), so a
/// retry that only reorders keys or reformats still matches.
pub fn request_hash(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
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
        Some(Value::String(s)) if s == "openai" => Some(ProviderKind::OpenAi),
        Some(Value::String(s)) if s == "bedrock" => Some(ProviderKind::Bedrock),
        Some(_) => {
            c.error("provider", "must be \"openai\" or \"bedrock\"");
            None
        }
    };
    if provider == Some(ProviderKind::Bedrock) && config.bedrock.role_arn.is_none() {
        c.error(
            "provider",
            "bedrock is not enabled in this deployment (it has no BEDROCK_ROLE_ARN)",
        );
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
        ],
    ) {
        Some(cfg) => c.run_config(cfg, config, today, uses_dataset, provider),
        None => None,
    };
    if let (Some(provider), Some(run_config)) = (provider, &run_config) {
        c.provider_rules(provider, run_config, config, today, acknowledge_shutdown);
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
    let bedrock = match (provider, base_model) {
        (Some(ProviderKind::Bedrock), Some(model)) => bedrock_limits::limits_for(model)
            .map(|l| l.max_train_records + l.max_validation_records),
        _ => None,
    };
    let default = u64::from(DEFAULT_MAX_EXAMPLES);
    i64::try_from(bedrock.map_or(default, |limit| limit.min(default))).unwrap_or(i64::MAX)
}

/// `null` is the same as absent for every optional field.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Collects errors instead of stopping at the first one.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// An object whose keys are all known; unknown keys are errors of their
    /// own (a typo must not silently fall back to a default).
    fn object<'v>(
        &mut self,
        value: Option<&'v Value>,
        at: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let field = if at.is_empty() { "body" } else { at };
        match value {
            None | Some(Value::Null) => {
                self.error(field, "is required");
                None
            }
            Some(Value::Object(map)) => {
                let mut unknown: Vec<&String> = map
                    .keys()
                    .filter(|k| !known.contains(&k.as_str()))
                    .collect();
                unknown.sort();
                for key in unknown {
                    self.error(path(at, key), "is not a known field");
                }
                Some(map)
            }
            Some(_) => {
                self.error(field, "must be a JSON object");
                None
            }
        }
    }

    fn string(
        &mut self,
        value: Option<&Value>,
        field: &str,
        required: bool,
        max_chars: usize,
        kind: Text,
    ) -> Option<String> {
        match present(value) {
            None => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                let chars = trimmed.chars().count();
                if trimmed.is_empty() {
                    if required {
                        self.error(field, "must not be empty");
                    }
                    None
                } else if chars > max_chars {
                    self.error(
                        field,
                        format!("must be at most {max_chars} characters, got {chars}"),
                    );
                    None
                } else if let Some(c) = trimmed.chars().find(|&c| !kind.allows(c)) {
                    self.error(
                        field,
                        format!(
                            "must not contain control characters ({} found){}",
                            ControlChar(c),
                            kind.rule()
                        ),
                    );
                    None
                } else {
                    Some(trimmed.to_owned())
                }
            }
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    fn boolean(&mut self, value: Option<&Value>, field: &str) -> Option<bool> {
        match present(value) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(field, "must be true or false");
                None
            }
        }
    }

    /// A whole number in `range`; `None` (with an error) otherwise.
    fn integer(&mut self, value: &Value, field: &str, range: RangeInclusive<i64>) -> Option<i64> {
        let n = match value {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    field,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    fn date(&mut self, value: Option<&Value>, field: &str, required: bool) -> Option<NaiveDate> {
        match present(value) {
            None => {
                if required {
                    self.error(field, "is required (or give dataset_id)");
                }
                None
            }
            Some(Value::String(s))
                if s.len() == 10
                    && s.as_bytes()[4] == b'-'
                    && s.as_bytes()[7] == b'-'
                    && s.bytes().filter(u8::is_ascii_digit).count() == 8 =>
            {
                match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(d) => Some(d),
                    Err(_) => {
                        self.error(field, "is not a calendar date");
                        None
                    }
                }
            }
            Some(_) => {
                self.error(field, "must be a date as YYYY-MM-DD");
                None
            }
        }
    }

    fn run_config(
        &mut self,
        cfg: &Map<String, Value>,
        config: &Config,
        today: NaiveDate,
        uses_dataset: bool,
        provider: Option<ProviderKind>,
    ) -> Option<RunConfig> {
        let errors_before = self.errors.len();
        let (start_date, end_date) = if uses_dataset {
            for key in ["start_date", "end_date"] {
                if present(cfg.get(key)).is_some() {
                    self.error(
                        path("config", key),
                        "must not be given with dataset_id (the dataset fixes the data)",
                    );
                }
            }
            (None, None)
        } else {
            let start = self.date(cfg.get("start_date"), "config.start_date", true);
            let end = self.date(cfg.get("end_date"), "config.end_date", true);
            for (date, field) in [(start, "config.start_date"), (end, "config.end_date")] {
                if let Some(d) = date
                    && d > today
                {
                    self.error(
                        field,
                        format!("must not be in the future (today is {today})"),
                    );
                } else if let Some(d) = date
                    && d < EARLIEST_DATE
                {
                    self.error(
                        field,
                        format!("must not be before {EARLIEST_DATE} (no export is older)"),
                    );
                }
            }
            if let (Some(s), Some(e)) = (start, end) {
                let days = (e - s).num_days() + 1;
                if e < s {
                    self.error("config.end_date", "must not be before config.start_date");
                } else if days > i64::from(config.max_date_range_days) {
                    self.error(
                        "config.end_date",
                        format!(
                            "the date range is {days} days; at most {} are allowed",
                            config.max_date_range_days
                        ),
                    );
                }
            }
            (start, end)
        };

        let base_model = match present(cfg.get("base_model")) {
            None => {
                self.error("config.base_model", "is required");
                None
            }
            // Without a valid provider (its own error says why), any
            // provider's model passes here.
            Some(Value::String(m))
                if provider.map_or_else(
                    || {
                        config.allowed_models(ProviderKind::OpenAi).contains(m)
                            || config.allowed_models(ProviderKind::Bedrock).contains(m)
                    },
                    |p| config.allowed_models(p).contains(m),
                ) =>
            {
                Some(m.clone())
            }
            Some(Value::String(_)) => {
                let provider = provider.unwrap_or(config.default_provider);
                self.error(
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
                self.error("config.base_model", "must be a string");
                None
            }
        };

        let min_examples = match present(cfg.get("min_examples")) {
            None => Some(i64::from(DEFAULT_MIN_EXAMPLES)),
            Some(v) => self.integer(
                v,
                "config.min_examples",
                MIN_EXAMPLES_FLOOR..=MAX_EXAMPLES_CEILING,
            ),
        };
        let max_examples = match present(cfg.get("max_examples")) {
            None => Some(default_max_examples(provider, base_model.as_deref())),
            Some(v) => self.integer(
                v,
                "config.max_examples",
                MIN_EXAMPLES_FLOOR..=MAX_EXAMPLES_CEILING,
            ),
        };
        if let (Some(min), Some(max)) = (min_examples, max_examples)
            && min > max
        {
            self.error(
                "config.max_examples",
                format!("must be at least config.min_examples ({min})"),
            );
        }

        let train_split = match present(cfg.get("train_split")) {
            None => Some(DEFAULT_TRAIN_SPLIT),
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x <= 1.0 => Some(x),
                _ => {
                    self.error(
                        "config.train_split",
                        "must be a number greater than 0 and at most 1",
                    );
                    None
                }
            },
        };
        let system_prompt = self.string(
            cfg.get("system_prompt"),
            "config.system_prompt",
            false,
            MAX_SYSTEM_PROMPT_CHARS,
            Text::Paragraphs,
        );
        let seed = match present(cfg.get("seed")) {
            None => Some(DEFAULT_SEED as i64),
            Some(v) => self.integer(v, "config.seed", 0..=MAX_SEED),
        };
        let hyperparameters = match present(cfg.get("hyperparameters")) {
            None => Hyperparameters::default(),
            Some(v) => self.hyperparameters(v),
        };
        let filters = match present(cfg.get("filters")) {
            None => Filters::default(),
            Some(v) => self.filters(v),
        };

        if self.errors.len() > errors_before {
            return None;
        }
        Some(RunConfig {
            start_date,
            end_date,
            base_model: base_model?,
            min_examples: u32::try_from(min_examples?).ok()?,
            max_examples: u32::try_from(max_examples?).ok()?,
            train_split: train_split?,
            system_prompt,
            seed: u64::try_from(seed?).ok()?,
            hyperparameters,
            filters,
        })
    }

    fn hyperparameters(&mut self, value: &Value) -> Hyperparameters {
        let at = "config.hyperparameters";
        let Some(map) = self.object(
            Some(value),
            at,
            &[
                "n_epochs",
                "batch_size",
                "learning_rate_multiplier",
                "learning_rate",
                "learning_rate_warmup_steps",
            ],
        ) else {
            return Hyperparameters::default();
        };
        let whole = |c: &mut Self, key: &str, max: i64| -> AutoOr<u32> {
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
        let n_epochs = whole(self, "n_epochs", 50);
        let batch_size = whole(self, "batch_size", 256);
        let learning_rate_multiplier = match present(map.get("learning_rate_multiplier")) {
            None => AutoOr::Auto,
            Some(Value::String(s)) if s == "auto" => AutoOr::Auto,
            Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x > 0.0 && x <= 10.0) => {
                n.as_f64().map_or(AutoOr::Auto, AutoOr::Value)
            }
            Some(_) => {
                self.error(
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
                self.error(
                    path(at, "learning_rate"),
                    "must be \"auto\" or a number greater than 0 and less than 1",
                );
                AutoOr::Auto
            }
        };
        let learning_rate_warmup_steps = match present(map.get("learning_rate_warmup_steps")) {
            None => AutoOr::Auto,
            Some(Value::String(s)) if s == "auto" => AutoOr::Auto,
            Some(v) => self
                .integer(v, &path(at, "learning_rate_warmup_steps"), 0..=10_000)
                .and_then(|n| u32::try_from(n).ok())
                .map_or(AutoOr::Auto, AutoOr::Value),
        };
        Hyperparameters {
            n_epochs,
            batch_size,
            learning_rate_multiplier,
            learning_rate,
            learning_rate_warmup_steps,
        }
    }

    /// The rules that depend on the provider: its hyperparameters and
    /// their ranges, its record limits, and the base model's shutdown date.
    fn provider_rules(
        &mut self,
        provider: ProviderKind,
        run: &RunConfig,
        config: &Config,
        today: NaiveDate,
        acknowledged: bool,
    ) {
        match provider {
            ProviderKind::OpenAi => {
                let h = &run.hyperparameters;
                for (field, set) in [
                    ("learning_rate", !h.learning_rate.is_auto()),
                    (
                        "learning_rate_warmup_steps",
                        !h.learning_rate_warmup_steps.is_auto(),
                    ),
                ] {
                    if set {
                        self.error(
                            format!("config.hyperparameters.{field}"),
                            "is Bedrock's; OpenAI takes learning_rate_multiplier",
                        );
                    }
                }
            }
            ProviderKind::Bedrock => {
                for p in bedrock_limits::check(&run.hyperparameters, &run.base_model) {
                    self.error(p.field, p.message);
                }
                if let Some(limits) = bedrock_limits::limits_for(&run.base_model)
                    && u64::from(run.max_examples)
                        > limits.max_train_records + limits.max_validation_records
                {
                    self.error(
                        "config.max_examples",
                        format!(
                            "must be at most {} for {} (Bedrock takes {} training and {} validation records)",
                            limits.max_train_records + limits.max_validation_records,
                            run.base_model,
                            limits.max_train_records,
                            limits.max_validation_records
                        ),
                    );
                }
            }
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
            self.error("config.base_model", refusal.to_string());
        }
    }

    fn filters(&mut self, value: &Value) -> Filters {
        let at = "config.filters";
        let mut filters = Filters::default();
        let Some(map) = self.object(
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
                    self.error(&field, format!("may list at most {MAX_OUTCOMES} outcomes"));
                }
                let mut outcomes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().map(str::trim) {
                        Some(s) if !s.is_empty() && s.chars().count() <= MAX_OUTCOME_CHARS => {
                            outcomes.push(s.to_owned());
                        }
                        _ => self.error(
                            format!("{field}[{i}]"),
                            format!("must be a non-empty string of at most {MAX_OUTCOME_CHARS} characters"),
                        ),
                    }
                }
                filters.exclude_outcomes = outcomes;
            }
            Some(_) => self.error(path(at, "exclude_outcomes"), "must be an array of strings"),
        }
        if let Some(v) = present(map.get("min_rating")) {
            filters.min_rating = self.integer(v, &path(at, "min_rating"), 1..=5);
        }
        if let Some(v) = present(map.get("min_assistant_turns"))
            && let Some(n) = self.integer(v, &path(at, "min_assistant_turns"), 1..=100)
        {
            filters.min_assistant_turns = u32::try_from(n).unwrap_or(1);
        }
        if let Some(b) = self.boolean(map.get("redact_pii"), &path(at, "redact_pii")) {
            filters.redact_pii = b;
        }
        filters
    }
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

    #[test]
    fn the_request_hash_ignores_key_order_and_whitespace_only() {
        let a: Value = serde_json::from_str(r#"{"name":"x","config":{"a":1,"b":[1,2]}}"#).unwrap();
        let b: Value =
            serde_json::from_str("{ \"config\": {\"b\": [1, 2], \"a\": 1},\n \"name\": \"x\" }")
                .unwrap();
        let c: Value = serde_json::from_str(r#"{"name":"y","config":{"a":1,"b":[1,2]}}"#).unwrap();
        let d: Value = serde_json::from_str(r#"{"name":"x","config":{"a":1,"b":[2,1]}}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
        assert_ne!(request_hash(&a), request_hash(&d));
        assert_eq!(request_hash(&a).len(), 64);
    }
}
