//! Every environment variable the functions read, read once at init.
//!
//! A missing or malformed variable is a [`ConfigError`] naming it, so a bad
//! deploy fails at cold start with a sentence instead of at the first event.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::domain::ProviderKind;
use crate::provider::profiles;

/// A variable that is missing or does not parse. Displayed as one sentence
/// an operator can act on, naming the variable and what it must be:
/// `configuration error: FINETUNE_TABLE is required but not set (the
/// DynamoDB table name)`. `Debug` says the same: a function's `main` that
/// returns this error prints it with `{:?}` before the process exits, and
/// that line is what the operator finds in the function's log.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    /// What is wrong, worded to follow the variable's name.
    pub problem: String,
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Where the OpenAI API key comes from. Never the key in a template
/// parameter: in Lambda it is a Secrets Manager secret, locally an env var.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// `OPENAI_API_KEY`.
    Env(String),
    /// `OPENAI_API_KEY_SECRET_ARN`: fetched from Secrets Manager when first needed.
    SecretArn(String),
    /// Neither is set: OpenAI is not usable (fine for a Bedrock-only deploy).
    None,
}

impl std::fmt::Debug for ApiKeySource {
    // The key itself must never reach a log, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiKeySource::Env(_) => f.write_str("Env(<redacted>)"),
            ApiKeySource::SecretArn(arn) => write!(f, "SecretArn({arn})"),
            ApiKeySource::None => f.write_str("None"),
        }
    }
}

/// How the key is sent: OpenAI's bearer token, or Azure OpenAI's `api-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    Bearer,
    AzureApiKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// `OPENAI_BASE_URL`, default `https://api.openai.com/v1`, no trailing slash.
    pub base_url: String,
    pub api_key: ApiKeySource,
    /// `OPENAI_AUTH_STYLE`: `bearer` (default) or `azure`.
    pub auth_style: AuthStyle,
    /// `OPENAI_ORGANIZATION`, sent as `OpenAI-Organization`.
    pub organization: Option<String>,
    /// `OPENAI_PROJECT`, sent as `OpenAI-Project`.
    pub project: Option<String>,
    /// `OPENAI_TIMEOUT_SECONDS`, per request, default 60.
    pub timeout: Duration,
    /// `OPENAI_MAX_RETRIES`, on 429, 5xx and connection errors, default 3.
    pub max_retries: u32,
}

/// Together AI: open-weight models, LoRA, adapters the tenant downloads.
#[derive(Debug, Clone, PartialEq)]
pub struct TogetherConfig {
    /// `TOGETHER_BASE_URL`, default `https://api.together.xyz/v1`.
    pub base_url: String,
    /// `TOGETHER_API_KEY` or `TOGETHER_API_KEY_SECRET_ARN`; neither: Together
    /// is not enabled.
    pub api_key: ApiKeySource,
    /// `TOGETHER_TIMEOUT_SECONDS`, per request, default 60.
    pub timeout: Duration,
    /// `TOGETHER_MAX_RETRIES`, on 429, 5xx and connection errors, default 3.
    pub max_retries: u32,
}

pub const DEFAULT_TOGETHER_BASE_URL: &str = "https://api.together.xyz/v1";

/// Amazon Bedrock model customization. No key: the functions' own role
/// calls Bedrock, and Bedrock reads the dataset from S3 as `role_arn`.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockConfig {
    /// `BEDROCK_ROLE_ARN`: the service role Bedrock assumes to read the
    /// dataset and write its output. Unset: Bedrock is not registered.
    pub role_arn: Option<String>,
    /// `AWS_REGION` (Lambda sets it): where deployments would be made, for
    /// the refusal of runs Bedrock could not serve on demand there.
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `FINETUNE_TABLE`: the single DynamoDB table.
    pub table_name: String,
    /// `FINETUNE_BUCKET`: conversation exports and datasets.
    pub bucket_name: String,
    /// `TENANT_CLAIM`: the JWT claim that names the tenant, default `tenant_id`.
    pub tenant_claim: String,
    /// The base models a run on each provider may name, from the variable
    /// its profile names (`ALLOWED_BASE_MODELS` for OpenAI,
    /// `BEDROCK_ALLOWED_BASE_MODELS` for Bedrock, `TOGETHER_ALLOWED_BASE_MODELS`
    /// for Together: comma-separated ids as the provider's fine-tuning takes
    /// them), else the profile's default.
    pub allowed_base_models: BTreeMap<ProviderKind, Vec<String>>,
    /// The judges a run on each provider may name as
    /// `config.evaluation.judge_model`, from the variable its profile names
    /// (`OPENAI_JUDGE_MODELS`, `BEDROCK_JUDGE_MODELS`,
    /// `TOGETHER_JUDGE_MODELS`), else the profile's default. Every one has
    /// a known price: a judge the evaluation's estimate would count as
    /// free is refused at cold start, since a tenant's judge calls are
    /// paid by the deployment.
    pub judge_models: BTreeMap<ProviderKind, Vec<String>>,
    /// `DEFAULT_PROVIDER`: `openai` (default), `bedrock` or `together`, for
    /// runs that do not name one.
    pub default_provider: ProviderKind,
    /// `MODEL_SHUTDOWN_MARGIN_DAYS`: a run on a base model that shuts down
    /// within this many days is refused unless it acknowledges the date
    /// (default 30: a run plus time to use its model).
    pub shutdown_margin_days: u32,
    /// `MODEL_SHUTDOWN_DATES`: `published` (default) refuses runs by the
    /// compiled-in shutdown table; `ignore` is for a local stack whose
    /// sandbox provider never winds down (tests and the demo must not start
    /// failing on the day a real model's date comes near).
    pub enforce_shutdown_dates: bool,
    /// `MAX_DATE_RANGE_DAYS`: the widest date range a run may read, default 366.
    pub max_date_range_days: u32,
    /// `RUN_LEASE_SECONDS`: how long a holder without an invocation
    /// deadline (a push, the tools, tests) owns a run, default 120; a
    /// tick's lease ends with its own deadline instead.
    pub run_lease: Duration,
    /// `MONITOR_CONCURRENCY`: runs reconciled at once, default 16.
    pub monitor_concurrency: usize,
    /// `FINETUNE_DICTIONARY_DIR`: where the prepare function reads the BPE
    /// vocabularies (`<encoding>.tokens.zlib`) from, default `/opt` (the
    /// dictionaries layer's mount point).
    pub dictionary_dir: std::path::PathBuf,
    /// When a run's preparation fans out over the shard queue:
    /// `PREPARE_SINGLE_MAX_MB` (runs with at most this many MB of exports,
    /// gzip counted ×6, are prepared in one invocation; default 256),
    /// `PREPARE_SHARD_MB` (per shard, default 256), `PREPARE_MAX_EXPORT_GB`
    /// (the most one run may prepare, default 64) and
    /// `PREPARE_SHARDS_TIMEOUT_MINUTES` (how long shards may take before
    /// the run fails, default 60); the merge may use three quarters of
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (Lambda sets it; default 1024),
    /// and the single path's spills `PREPARE_TMP_MB` of `/tmp` (default
    /// 512), shared by every run the process prepares at once.
    pub fan_out: crate::dataset::fanout::FanOutLimits,
    /// The fleet: `POOL_BUDGETS` (`openai=3,bedrock:us-east-1=2`: slots
    /// by pool or by provider), `TENANT_MAX_IN_FLIGHT` (default 5),
    /// `TENANT_MONTHLY_CAP_USD` (default none), `BUSY_PATIENCE_HOURS`
    /// (default 24), `PROVIDER_COOL_DOWN_SECONDS` (default 60); Bedrock's
    /// pool is the region's (`AWS_REGION`).
    pub fleet: crate::domain::fleet::FleetSettings,
    pub openai: OpenAiConfig,
    /// `OPENAI_WEBHOOK_SECRET` or `OPENAI_WEBHOOK_SECRET_ARN`: the `whsec_`
    /// secret OpenAI signs webhooks with (only the webhook function needs it).
    pub openai_webhook_secret: ApiKeySource,
    pub bedrock: BedrockConfig,
    pub together: TogetherConfig,
}

/// A megabyte as the preparation's thresholds count it (MiB).
const MB: u64 = 1024 * 1024;

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests need not touch the
    /// process environment (shared by every test thread).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let base_url = vars
            .optional("OPENAI_BASE_URL")
            .unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_owned());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError {
                var: "OPENAI_BASE_URL",
                problem: format!("must be an http(s) URL, got {base_url:?}"),
            });
        }
        let api_key = match (
            vars.optional("OPENAI_API_KEY"),
            vars.optional("OPENAI_API_KEY_SECRET_ARN"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    var: "OPENAI_API_KEY",
                    problem:
                        "is set together with OPENAI_API_KEY_SECRET_ARN: set one of them, not both"
                            .to_owned(),
                });
            }
            (Some(key), None) => ApiKeySource::Env(key),
            (None, Some(arn)) => ApiKeySource::SecretArn(arn),
            (None, None) => ApiKeySource::None,
        };
        let openai_webhook_secret =
            secret_source(&vars, "OPENAI_WEBHOOK_SECRET", "OPENAI_WEBHOOK_SECRET_ARN")?;
        let auth_style = match vars.optional("OPENAI_AUTH_STYLE").as_deref() {
            None | Some("bearer") => AuthStyle::Bearer,
            Some("azure") => AuthStyle::AzureApiKey,
            Some(other) => {
                return Err(ConfigError {
                    var: "OPENAI_AUTH_STYLE",
                    problem: format!("must be 'bearer' or 'azure', got {other:?}"),
                });
            }
        };
        let mut allowed_base_models = BTreeMap::new();
        let mut judge_models = BTreeMap::new();
        for profile in profiles::all() {
            let models = profile.base_models();
            allowed_base_models.insert(profile.kind(), vars.list(models.variable, models.default)?);
            let judges = profile.judge_models();
            let listed = vars.list(judges.variable, judges.default)?;
            if let Some(unpriced) = listed
                .iter()
                .find(|m| profile.inference_price(m, false).is_none())
            {
                return Err(ConfigError {
                    var: judges.variable,
                    problem: format!(
                        "names {unpriced:?}, whose price is not known: a judge must have a known price, or its calls would be estimated at $0 (known-priced judges include {})",
                        judges.default.replace(',', ", ")
                    ),
                });
            }
            judge_models.insert(profile.kind(), listed);
        }
        let together_base_url = vars
            .optional("TOGETHER_BASE_URL")
            .unwrap_or_else(|| DEFAULT_TOGETHER_BASE_URL.to_owned());
        if !(together_base_url.starts_with("https://") || together_base_url.starts_with("http://"))
        {
            return Err(ConfigError {
                var: "TOGETHER_BASE_URL",
                problem: format!("must be an http(s) URL, got {together_base_url:?}"),
            });
        }
        let together_key = secret_source(&vars, "TOGETHER_API_KEY", "TOGETHER_API_KEY_SECRET_ARN")?;
        let role_arn = vars.optional("BEDROCK_ROLE_ARN");
        if let Some(arn) = &role_arn
            && !(arn.starts_with("arn:") && arn.contains(":role/"))
        {
            return Err(ConfigError {
                var: "BEDROCK_ROLE_ARN",
                problem: format!("must be an IAM role ARN, got {arn:?}"),
            });
        }
        let default_provider = match vars.optional("DEFAULT_PROVIDER") {
            None => ProviderKind::OpenAi,
            Some(name) => ProviderKind::parse(&name).map_err(|e| ConfigError {
                var: "DEFAULT_PROVIDER",
                problem: format!("must be {}, got {:?}", ProviderKind::choices('\''), e.given),
            })?,
        };
        let enforce_shutdown_dates = match vars.optional("MODEL_SHUTDOWN_DATES").as_deref() {
            None | Some("published") => true,
            Some("ignore") => false,
            Some(other) => {
                return Err(ConfigError {
                    var: "MODEL_SHUTDOWN_DATES",
                    problem: format!("must be 'published' or 'ignore', got {other:?}"),
                });
            }
        };
        Ok(Self {
            table_name: vars.required("FINETUNE_TABLE", "the DynamoDB table name")?,
            bucket_name: vars.required("FINETUNE_BUCKET", "the S3 bucket name")?,
            tenant_claim: vars
                .optional("TENANT_CLAIM")
                .unwrap_or_else(|| "tenant_id".to_owned()),
            allowed_base_models,
            judge_models,
            default_provider,
            shutdown_margin_days: vars.number("MODEL_SHUTDOWN_MARGIN_DAYS", 30, 0..=365)?,
            enforce_shutdown_dates,
            max_date_range_days: vars.number("MAX_DATE_RANGE_DAYS", 366, 1..=3660)?,
            run_lease: Duration::from_secs(vars.number("RUN_LEASE_SECONDS", 120, 10..=900)?),
            monitor_concurrency: vars.number("MONITOR_CONCURRENCY", 16, 1..=256)?,
            dictionary_dir: vars
                .optional("FINETUNE_DICTIONARY_DIR")
                .unwrap_or_else(|| "/opt".to_owned())
                .into(),
            fan_out: crate::dataset::fanout::FanOutLimits {
                single_max_bytes: MB
                    * vars.number::<u64>("PREPARE_SINGLE_MAX_MB", 256, 1..=4096)?,
                shard_bytes: MB * vars.number::<u64>("PREPARE_SHARD_MB", 256, 1..=4096)?,
                max_export_bytes: 1024
                    * MB
                    * vars.number::<u64>("PREPARE_MAX_EXPORT_GB", 64, 1..=2048)?,
                stall_after: Duration::from_secs(
                    60 * vars.number::<u64>("PREPARE_SHARDS_TIMEOUT_MINUTES", 60, 5..=1440)?,
                ),
                // Three quarters of the function's memory (Lambda sets
                // AWS_LAMBDA_FUNCTION_MEMORY_SIZE); the rest is the
                // process, the SDK and the parts in flight.
                merge_memory_bytes: MB * 3 / 4
                    * vars.number::<u64>("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024, 128..=10240)?,
                read: read_limits_of(&vars)?,
                // The function's ephemeral storage (template.yaml's
                // EphemeralStorage states the same); Lambda's default is 512.
                tmp_bytes: MB * vars.number::<u64>("PREPARE_TMP_MB", 512, 1..=10240)?,
            },
            fleet: fleet_of(&vars)?,
            openai: OpenAiConfig {
                base_url: base_url.trim_end_matches('/').to_owned(),
                api_key,
                auth_style,
                organization: vars.optional("OPENAI_ORGANIZATION"),
                project: vars.optional("OPENAI_PROJECT"),
                timeout: Duration::from_secs(vars.number("OPENAI_TIMEOUT_SECONDS", 60, 1..=900)?),
                max_retries: vars.number("OPENAI_MAX_RETRIES", 3, 0..=10)?,
            },
            openai_webhook_secret,
            bedrock: BedrockConfig {
                role_arn,
                region: vars.optional("AWS_REGION"),
            },
            together: TogetherConfig {
                base_url: together_base_url.trim_end_matches('/').to_owned(),
                api_key: together_key,
                timeout: Duration::from_secs(vars.number(
                    "TOGETHER_TIMEOUT_SECONDS",
                    60,
                    1..=900,
                )?),
                max_retries: vars.number("TOGETHER_MAX_RETRIES", 3, 0..=10)?,
            },
        })
    }

    /// The base models a run on `provider` may name.
    pub fn allowed_models(&self, provider: ProviderKind) -> &[String] {
        self.allowed_base_models
            .get(&provider)
            .map_or(&[], Vec::as_slice)
    }

    /// The judges a run on `provider` may name.
    pub fn allowed_judges(&self, provider: ProviderKind) -> &[String] {
        self.judge_models.get(&provider).map_or(&[], Vec::as_slice)
    }

    /// Why runs on `provider` cannot start in this deployment, when they
    /// cannot: its adapter needs a setting the deployment lacks.
    pub fn provider_unavailable(&self, provider: ProviderKind) -> Option<&'static str> {
        match provider {
            ProviderKind::Bedrock if self.bedrock.role_arn.is_none() => {
                Some("bedrock is not enabled in this deployment (it has no BEDROCK_ROLE_ARN)")
            }
            ProviderKind::Together if self.together.api_key == ApiKeySource::None => Some(
                "together is not enabled in this deployment (it has no TOGETHER_API_KEY_SECRET_ARN)",
            ),
            _ => None,
        }
    }
}

/// How far the preparation reads one export file, from the environment:
/// `PREPARE_MAX_LINE_MB` (a longer line is skipped, default 8),
/// `PREPARE_GZIP_MAX_GB` (a gzip file that inflates past it is refused,
/// default 16) and `PREPARE_GZIP_MAX_RATIO` (one that inflates past this
/// many times its compressed bytes, once over 64 MiB, is refused, default
/// 100). The `finetune prepare` command reads them too, without the rest.
pub fn read_limits(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<crate::dataset::io::ReadLimits, ConfigError> {
    read_limits_of(&Vars(&lookup))
}

fn read_limits_of(vars: &Vars<'_>) -> Result<crate::dataset::io::ReadLimits, ConfigError> {
    Ok(crate::dataset::io::ReadLimits {
        max_line_bytes: MB * vars.number::<u64>("PREPARE_MAX_LINE_MB", 8, 1..=1024)?,
        max_inflated_bytes: 1024 * MB * vars.number::<u64>("PREPARE_GZIP_MAX_GB", 16, 1..=1024)?,
        max_gzip_ratio: vars.number::<u64>("PREPARE_GZIP_MAX_RATIO", 100, 2..=100_000)?,
    })
}

/// A secret given either as its value (local runs) or as a Secrets
/// Manager ARN (Lambda), never both.
fn secret_source(
    vars: &Vars<'_>,
    value_var: &'static str,
    arn_var: &'static str,
) -> Result<ApiKeySource, ConfigError> {
    match (vars.optional(value_var), vars.optional(arn_var)) {
        (Some(_), Some(_)) => Err(ConfigError {
            var: value_var,
            problem: format!("is set together with {arn_var}: set one of them, not both"),
        }),
        (Some(value), None) => Ok(ApiKeySource::Env(value)),
        (None, Some(arn)) => Ok(ApiKeySource::SecretArn(arn)),
        (None, None) => Ok(ApiKeySource::None),
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// Unset and empty are the same: an empty value is a template mistake.
    fn optional_number(&self, var: &'static str) -> Result<Option<f64>, ConfigError> {
        match self.optional(var) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
                _ => Err(ConfigError {
                    var,
                    problem: format!("must be a non-negative number, got {v:?}"),
                }),
            },
        }
    }

    fn optional(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    /// A comma-separated list that must name at least one item.
    fn list(&self, var: &'static str, default: &str) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = self
            .optional(var)
            .unwrap_or_else(|| default.to_owned())
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        if items.is_empty() {
            return Err(ConfigError {
                var,
                problem: "must name at least one model".to_owned(),
            });
        }
        Ok(items)
    }

    /// `meaning` says what the variable holds, for the message.
    fn required(&self, var: &'static str, meaning: &str) -> Result<String, ConfigError> {
        self.optional(var).ok_or_else(|| ConfigError {
            var,
            problem: format!("is required but not set ({meaning})"),
        })
    }

    fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.optional(var) else {
            return Ok(default);
        };
        let value: T = raw.trim().parse().map_err(|_| ConfigError {
            var,
            problem: format!("must be a whole number, got {raw:?}"),
        })?;
        if !range.contains(&value) {
            return Err(ConfigError {
                var,
                problem: format!(
                    "must be between {} and {}, got {value}",
                    range.start(),
                    range.end()
                ),
            });
        }
        Ok(value)
    }
}

/// The fleet's settings from `POOL_BUDGETS`, `TENANT_MAX_IN_FLIGHT`,
/// `TENANT_MONTHLY_CAP_USD`, `BUSY_PATIENCE_HOURS`,
/// `PROVIDER_COOL_DOWN_SECONDS`, `TRAINING_POLL_SECONDS`,
/// `PUSHED_POLL_SECONDS` and `PUSHED_PROVIDERS`.
fn fleet_of(vars: &Vars) -> Result<crate::domain::fleet::FleetSettings, ConfigError> {
    use crate::domain::fleet::{FleetSettings, PoolId, TenantLimits, Usd};
    let defaults = FleetSettings::default();
    let mut pool_budgets = BTreeMap::new();
    let listed = vars.optional("POOL_BUDGETS").unwrap_or_default();
    for entry in listed.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |problem: String| ConfigError {
            var: "POOL_BUDGETS",
            problem,
        };
        let (pool, slots) = entry
            .split_once('=')
            .ok_or_else(|| bad(format!("{entry:?} is not <pool or provider>=<slots>")))?;
        let pool = pool.trim();
        if ProviderKind::parse(pool).is_err() && PoolId::parse(pool).is_err() {
            return Err(bad(format!(
                "{pool:?} is neither a provider ({}) nor a pool like openai:<base model>",
                ProviderKind::choices('\'')
            )));
        }
        let slots = slots
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "{entry:?}: slots must be a whole number from 1 to 1000"
                ))
            })?;
        pool_budgets.insert(pool.to_owned(), slots);
    }
    Ok(FleetSettings {
        pool_budgets,
        tenant_default: TenantLimits {
            max_in_flight: vars.number("TENANT_MAX_IN_FLIGHT", 5, 1..=10_000)?,
            monthly_cap: vars
                .optional_number("TENANT_MONTHLY_CAP_USD")?
                .map(Usd::from_dollars),
        },
        busy_patience: Duration::from_secs(
            3600 * vars.number::<u64>("BUSY_PATIENCE_HOURS", 24, 1..=720)?,
        ),
        cool_down: Duration::from_secs(vars.number(
            "PROVIDER_COOL_DOWN_SECONDS",
            60,
            1..=86_400,
        )?),
        polling: polling_of(vars)?,
        bedrock_scope: vars
            .optional("AWS_REGION")
            .unwrap_or(defaults.bedrock_scope.clone()),
        ..defaults
    })
}

/// How often a job in training is polled: `TRAINING_POLL_SECONDS` (the
/// longest wait, 600), `PUSHED_POLL_SECONDS` (1800) for the providers in
/// `PUSHED_PROVIDERS` (`bedrock`; add `openai` once its webhook endpoint is
/// registered). 0 polls every tick (the local stack's demos and tests).
fn polling_of(vars: &Vars) -> Result<crate::domain::fleet::PollPolicy, ConfigError> {
    let defaults = crate::domain::fleet::PollPolicy::default();
    let seconds = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(vars.number(
            var,
            default.as_secs(),
            0..=86_400,
        )?))
    };
    let pushing = match vars.optional("PUSHED_PROVIDERS") {
        None => defaults.pushing.clone(),
        Some(listed) => listed
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                ProviderKind::parse(p).map_err(|_| ConfigError {
                    var: "PUSHED_PROVIDERS",
                    problem: format!("{p:?} is not a provider ({})", ProviderKind::choices('\'')),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(crate::domain::fleet::PollPolicy {
        unpushed: seconds("TRAINING_POLL_SECONDS", defaults.unpushed)?,
        pushed: seconds("PUSHED_POLL_SECONDS", defaults.pushed)?,
        pushing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[("FINETUNE_TABLE", "t"), ("FINETUNE_BUCKET", "b")];

    #[test]
    fn defaults_fill_everything_optional() {
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert_eq!(c.openai.base_url, DEFAULT_OPENAI_BASE_URL);
        assert_eq!(c.tenant_claim, "tenant_id");
        assert_eq!(c.run_lease, Duration::from_secs(120));
        assert_eq!(c.openai.api_key, ApiKeySource::None);
        assert!(
            c.allowed_models(ProviderKind::OpenAi)
                .contains(&"gpt-4o-mini-2024-07-18".to_owned())
        );
    }

    #[test]
    fn a_missing_required_variable_is_named_in_a_sentence_also_when_debug_printed() {
        // GIVEN a function started without its table
        let err = Config::from_lookup(lookup(&[("FINETUNE_BUCKET", "b")])).unwrap_err();
        assert_eq!(err.var, "FINETUNE_TABLE");
        let sentence =
            "configuration error: FINETUNE_TABLE is required but not set (the DynamoDB table name)";
        assert_eq!(err.to_string(), sentence);
        // WHEN `main` returns it, Rust prints it with Debug formatting:
        // THEN the operator reads the same sentence, not the struct.
        assert_eq!(format!("{err:?}"), sentence);
    }

    #[test]
    fn a_bad_number_is_named_with_its_value() {
        let mut pairs = BASE.to_vec();
        pairs.push(("MONITOR_CONCURRENCY", "lots"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.var, "MONITOR_CONCURRENCY");
        assert!(err.problem.contains("\"lots\""));

        let mut pairs = BASE.to_vec();
        pairs.push(("RUN_LEASE_SECONDS", "5"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.problem.contains("between 10 and 900"), "{err}");
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let mut pairs = BASE.to_vec();
        pairs.push(("OPENAI_API_KEY", "sk-secret-123"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert!(!format!("{c:?}").contains("sk-secret-123"));
    }

    #[test]
    fn shutdown_dates_are_enforced_unless_a_local_stack_says_ignore() {
        assert!(
            Config::from_lookup(lookup(BASE))
                .unwrap()
                .enforce_shutdown_dates
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("MODEL_SHUTDOWN_DATES", "ignore"));
        assert!(
            !Config::from_lookup(lookup(&pairs))
                .unwrap()
                .enforce_shutdown_dates
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("MODEL_SHUTDOWN_DATES", "never"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.var, "MODEL_SHUTDOWN_DATES");
    }

    #[test]
    fn the_webhook_secret_comes_from_a_value_or_an_arn_and_stays_hidden() {
        let mut pairs = BASE.to_vec();
        pairs.push(("OPENAI_WEBHOOK_SECRET", "whsec_c2VjcmV0"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            c.openai_webhook_secret,
            ApiKeySource::Env("whsec_c2VjcmV0".into())
        );
        assert!(!format!("{c:?}").contains("whsec_"));
        pairs.push(("OPENAI_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:x"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.var, "OPENAI_WEBHOOK_SECRET");
        assert_eq!(
            err.to_string(),
            "configuration error: OPENAI_WEBHOOK_SECRET is set together with \
             OPENAI_WEBHOOK_SECRET_ARN: set one of them, not both"
        );
    }

    #[test]
    fn bedrock_settings_are_read_and_checked() {
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert_eq!(c.default_provider, ProviderKind::OpenAi);
        assert_eq!(c.bedrock.role_arn, None);
        assert_eq!(c.shutdown_margin_days, 30);
        assert!(
            c.allowed_models(ProviderKind::Bedrock)
                .contains(&"amazon.nova-micro-v1:0:128k".to_owned())
        );

        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("DEFAULT_PROVIDER", "bedrock"),
            ("BEDROCK_ROLE_ARN", "arn:aws:iam::123456789012:role/ft"),
            ("BEDROCK_ALLOWED_BASE_MODELS", "amazon.nova-lite-v1:0:300k"),
        ]);
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(c.default_provider, ProviderKind::Bedrock);
        assert_eq!(
            c.allowed_models(ProviderKind::Bedrock),
            ["amazon.nova-lite-v1:0:300k"]
        );

        let mut pairs = BASE.to_vec();
        pairs.push(("DEFAULT_PROVIDER", "azure"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).unwrap_err().var,
            "DEFAULT_PROVIDER"
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("BEDROCK_ROLE_ARN", "ft-role"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).unwrap_err().var,
            "BEDROCK_ROLE_ARN"
        );
    }

    #[test]
    fn judges_come_from_each_providers_list_and_must_have_a_known_price() {
        // GIVEN the defaults
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert!(
            c.allowed_judges(ProviderKind::OpenAi)
                .contains(&"gpt-4.1-2025-04-14".to_owned())
        );
        assert!(
            c.allowed_judges(ProviderKind::Bedrock)
                .contains(&"amazon.nova-pro-v1:0".to_owned())
        );
        assert!(!c.allowed_judges(ProviderKind::Together).is_empty());
        // WHEN a deployment lists its own judges THEN they replace the defaults
        let mut pairs = BASE.to_vec();
        pairs.push(("OPENAI_JUDGE_MODELS", "gpt-4o-mini-2024-07-18"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            c.allowed_judges(ProviderKind::OpenAi),
            ["gpt-4o-mini-2024-07-18"]
        );
        // WHEN it lists a judge whose price is not known
        let mut pairs = BASE.to_vec();
        pairs.push((
            "BEDROCK_JUDGE_MODELS",
            "amazon.nova-pro-v1:0,anthropic.claude-opus-4-v1:0",
        ));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        // THEN the cold start fails naming the variable and the model
        assert_eq!(err.var, "BEDROCK_JUDGE_MODELS");
        assert!(
            err.problem.contains("anthropic.claude-opus-4-v1:0"),
            "{err}"
        );
        assert!(err.problem.contains("known price"), "{err}");
    }

    #[test]
    fn polling_is_read_with_its_providers_and_zero_means_every_tick() {
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert_eq!(c.fleet.polling, crate::domain::fleet::PollPolicy::default());
        let mut pairs = BASE.to_vec();
        pairs.push(("TRAINING_POLL_SECONDS", "0"));
        pairs.push(("PUSHED_PROVIDERS", "openai, bedrock"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(c.fleet.polling.unpushed, Duration::ZERO);
        assert_eq!(
            c.fleet.polling.pushing,
            vec![ProviderKind::OpenAi, ProviderKind::Bedrock]
        );
        pairs.push(("PUSHED_POLL_SECONDS", "x"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.var, "PUSHED_POLL_SECONDS");
        let mut pairs = BASE.to_vec();
        pairs.push(("PUSHED_PROVIDERS", "openai,azure"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.var, "PUSHED_PROVIDERS");
        assert!(err.to_string().contains("azure"), "{err}");
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let mut pairs = BASE.to_vec();
        pairs.push(("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(c.openai.base_url, "http://127.0.0.1:9/v1");
    }

    /// The text of a Rust file a reader sees: its doc comments and its
    /// string literals (code and plain comments left out).
    fn prose(source: &str) -> String {
        let mut out = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '/' if chars.peek() == Some(&'/') => {
                    let line: String = chars.by_ref().take_while(|&c| c != '\n').collect();
                    if line.starts_with("//") || line.starts_with("/!") {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                '\'' => {
                    // A char literal ('"', '\'', 'x'); a lifetime has no closing quote.
                    let rest: Vec<char> = chars.clone().take(2).collect();
                    if rest.first() == Some(&'\\') {
                        chars.next();
                        chars.next();
                        let _ = chars.by_ref().take_while(|&c| c != '\'').count();
                    } else if rest.get(1) == Some(&'\'') {
                        chars.next();
                        chars.next();
                    }
                }
                '"' => {
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => break,
                            c => out.push(c),
                        }
                    }
                    out.push('\n');
                }
                _ => {}
            }
        }
        out
    }

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Words of `text` shaped like one of this project's variables.
    fn variable_names(text: &str) -> Vec<String> {
        const PREFIXES: [&str; 12] = [
            "PREPARE_",
            "EVALUATION_",
            "OPENAI_",
            "TOGETHER_",
            "BEDROCK_",
            "FINETUNE_",
            "MODEL_SHUTDOWN_",
            "MONITOR_",
            "RUN_LEASE_",
            "TENANT_CLAIM",
            "MAX_DATE_RANGE_",
            "DEFAULT_PROVIDER",
        ];
        text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| w.len() >= 4 && w.starts_with(|c: char| c.is_ascii_uppercase()))
            .filter(|w| PREFIXES.iter().any(|p| w.starts_with(p)))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_variable_a_message_or_doc_names_is_one_the_configuration_reads() {
        // GIVEN the variables Config::from_lookup and read_limits ask for
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let recording = |name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            lookup(BASE)(name)
        };
        Config::from_lookup(recording).unwrap();
        read_limits(recording).unwrap();
        let asked = asked.into_inner();
        // AND every file of the library, with the names it declares as
        // constants (a code reference, not a variable)
        let mut files = Vec::new();
        rust_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let sources: Vec<(std::path::PathBuf, String)> = files
            .into_iter()
            .map(|f| {
                let mut text = std::fs::read_to_string(&f).unwrap();
                // Tests may name made-up variables (this one does).
                if let Some(at) = text.find("\n#[cfg(test)]\nmod tests {") {
                    text.truncate(at);
                }
                (f, text)
            })
            .collect();
        let constants: std::collections::BTreeSet<String> = sources
            .iter()
            .flat_map(|(_, text)| {
                text.split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .filter(|w| w[0] == "const" || w[0] == "static")
                    .map(|w| w[1].trim_end_matches(':').to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        // WHEN their messages and docs are read THEN each variable they
        // name is one the configuration reads
        let mut unknown = Vec::new();
        for (file, text) in &sources {
            for name in variable_names(&prose(text)) {
                if !asked.contains(&name) && !constants.contains(&name) {
                    unknown.push(format!("{} names {name}", file.display()));
                }
            }
        }
        assert!(asked.contains("PREPARE_MAX_EXPORT_GB"), "{asked:?}");
        assert!(
            unknown.is_empty(),
            "variables no configuration reads: {unknown:#?}"
        );
    }

    #[test]
    fn prose_is_doc_comments_and_strings_only() {
        let text = prose(
            "/// Reads `PREPARE_A`.\n// PREPARE_B\nconst PREPARE_C: &str = \"PREPARE_D \\\"q\\\"\";\nlet c = '\"'; let l: &'a str = \"PREPARE_E\";",
        );
        assert_eq!(
            variable_names(&text),
            ["PREPARE_A", "PREPARE_D", "PREPARE_E"]
        );
    }
}
