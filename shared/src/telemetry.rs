//! Logging set-up shared by every function.
//!
//! In Lambda: one JSON object per line on stdout, which CloudWatch Logs
//! Insights queries by field. Each line carries its spans' fields: the
//! runtime's `requestId` and `xrayTraceId`, then ours: `request` (request
//! id, tenant, method, path), `monitor` (request id) and `reconcile`
//! (tenant, run id, provider, phase); lines that close a unit of work add
//! `duration_ms`. Locally: the same events as readable text.
//!
//! Log fields carry ids, codes and counts only: never request bodies, API
//! keys, tokens or conversation text (`tests/it/logs.rs` checks a whole run).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `LOG_FORMAT` (`json` or `text`) if set; otherwise JSON inside
    /// Lambda (which sets `AWS_LAMBDA_FUNCTION_NAME`) and text elsewhere.
    pub fn detect(lookup: impl Fn(&str) -> Option<String>) -> Self {
        match lookup("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            _ if lookup("AWS_LAMBDA_FUNCTION_NAME").is_some() => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// The level filter from `RUST_LOG` (`info`, `warn,finetune=debug`: a
/// level, per-target levels), default `info`. `Targets` rather than
/// `EnvFilter`: the same directives without span-field filters, and without
/// the regex engine EnvFilter links in (~180 KB of every binary).
pub fn env_filter() -> Targets {
    parse_filter(std::env::var("RUST_LOG").ok().as_deref())
}

/// `directives` as a filter; unset or unreadable is `info`.
pub fn parse_filter(directives: Option<&str>) -> Targets {
    directives
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// The JSON subscriber the functions use in Lambda, writing to `writer`
/// (tests pass a buffer to read what a run logged). No timestamp: Lambda
/// stamps every line itself.
pub fn json_subscriber<W>(filter: Targets, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .without_time()
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// Installs the process's subscriber, JSON or text by [`LogFormat::detect`].
/// Called once at the top of each `main`.
pub fn init_lambda() {
    let format = LogFormat::detect(|name| std::env::var(name).ok());
    // Failing means a subscriber is already installed: keep that one.
    let _ = match format {
        LogFormat::Json => {
            tracing::subscriber::set_global_default(json_subscriber(env_filter(), std::io::stdout))
        }
        LogFormat::Text => tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_target(false)
                .finish()
                .with(env_filter()),
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_lambda_text_elsewhere_unless_told() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(LogFormat::detect(env(&[])), LogFormat::Text);
        assert_eq!(
            LogFormat::detect(env(&[("AWS_LAMBDA_FUNCTION_NAME", "monitor")])),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::detect(env(&[
                ("AWS_LAMBDA_FUNCTION_NAME", "monitor"),
                ("LOG_FORMAT", "text")
            ])),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::detect(env(&[("LOG_FORMAT", "json")])),
            LogFormat::Json
        );
    }

    #[test]
    fn rust_log_directives_set_levels_per_target_and_default_to_info() {
        use tracing::Level;
        let default = parse_filter(None);
        assert!(default.would_enable("finetune::pipeline", &Level::INFO));
        assert!(!default.would_enable("finetune::pipeline", &Level::DEBUG));

        let custom = parse_filter(Some("warn,finetune=debug"));
        assert!(custom.would_enable("finetune::pipeline", &Level::DEBUG));
        assert!(!custom.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(custom.would_enable("aws_smithy_runtime", &Level::WARN));

        let unreadable = parse_filter(Some("finetune=loud"));
        assert!(unreadable.would_enable("x", &Level::INFO));
        assert!(!unreadable.would_enable("x", &Level::DEBUG));
    }
}
