//! Logging set-up shared by every function.
//!
//! In Lambda: one JSON object per line on stdout, which CloudWatch Logs
//! Insights queries by field. Each line carries its spans' fields: the
//! runtime's `requestId` and `xrayTraceId`, then ours: `request` (request
//! id, tenant, method, path; the webhook's too, with no tenant), `tick`
//! (`steps`: prepare, monitor or evaluate, request id) and `reconcile` (tenant, run
//! id, provider, phase); lines that close a unit of work add
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

/// An error and every cause under it, on one line, joined with `: `:
/// `DynamoDB Query failed: dispatch failure: io error: client error
/// (Connect): tcp connect error: Connection refused (os error 111)`.
///
/// The AWS SDK's errors say little at the top (`dispatch failure`,
/// `service error`) and keep the cause (connection refused, DNS,
/// credentials, the service's own message) in their `source()` chain, which
/// `%error` alone never prints. Log every error through this:
/// `tracing::warn!(error = %telemetry::chain(&e), "…")`.
///
/// Our error types often end their own message with their source's
/// (`"DynamoDB {op} failed: {source}"`); a cause whose message the line
/// already ends with is not repeated.
pub fn chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> Chain<'a> {
    Chain(error)
}

/// See [`chain`].
#[derive(Clone, Copy)]
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let message = error.to_string();
            if !message.is_empty() && !line.ends_with(&message) {
                line.push_str(": ");
                line.push_str(&message);
            }
            cause = error.source();
        }
        f.write_str(&line)
    }
}

impl std::fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// What a function's `main` returns: any error that stops it from
/// starting (configuration, clients, secrets) or ends its runtime loop.
///
/// Rust prints the error `main` returns as `Error: {:?}` before the process
/// exits, and that line is what an operator finds in the function's log
/// (Lambda reports `Runtime.ExitError`). The derived `Debug` of an error
/// type is a struct dump (`ConfigError { var: "FINETUNE_TABLE", … }`); this
/// one prints the error's sentence and its causes ([`chain`]):
/// `Error: configuration error: FINETUNE_TABLE is required but not set (the
/// DynamoDB table name)`.
///
/// Any error converts into it with `?`; the runtime loop's boxed error with
/// [`MainError::runtime`].
pub struct MainError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl MainError {
    /// The error `lambda_runtime::run` / `lambda_http::run` end with.
    pub fn runtime(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        MainError(error)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for MainError {
    fn from(error: E) -> Self {
        MainError(Box::new(error))
    }
}

impl std::fmt::Debug for MainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        chain(&*self.0).fmt(f)
    }
}

impl std::fmt::Display for MainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        chain(&*self.0).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK's shape: a terse top whose cause holds the reason.
    #[derive(Debug, thiserror::Error)]
    enum Sdk {
        #[error("dispatch failure")]
        Dispatch(#[source] std::io::Error),
    }

    /// Ours: a message that already ends with its source's.
    #[derive(Debug, thiserror::Error)]
    #[error("DynamoDB Query failed: {source}")]
    struct Store {
        #[source]
        source: Sdk,
    }

    fn refused() -> Store {
        Store {
            source: Sdk::Dispatch(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "tcp connect error: Connection refused (os error 111)",
            )),
        }
    }

    #[test]
    fn a_logged_error_carries_its_whole_cause_chain_on_one_line_without_repeats() {
        // GIVEN a store error over an SDK error over the socket's error
        let error = refused();
        // WHEN it is displayed alone, the reason is lost
        assert_eq!(error.to_string(), "DynamoDB Query failed: dispatch failure");
        // THEN through `chain` every cause is there once
        assert_eq!(
            chain(&error).to_string(),
            "DynamoDB Query failed: dispatch failure: \
             tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn an_error_without_causes_is_its_own_message() {
        let error = std::io::Error::other("disk full");
        assert_eq!(chain(&error).to_string(), "disk full");
    }

    #[test]
    fn what_main_returns_prints_as_sentences_with_their_causes() {
        // GIVEN a function whose start-up failed on configuration
        let missing = crate::config::Config::from_lookup(|_| None).unwrap_err();
        // WHEN `main` returns it (Rust prints `Error: {:?}`)
        let printed = format!("Error: {:?}", MainError::from(missing));
        // THEN the operator reads a sentence naming the variable
        assert_eq!(
            printed,
            "Error: configuration error: FINETUNE_TABLE is required but not set \
             (the DynamoDB table name)"
        );
        // AND any other start-up error carries its causes
        assert_eq!(
            format!("{:?}", MainError::from(refused())),
            "DynamoDB Query failed: dispatch failure: \
             tcp connect error: Connection refused (os error 111)"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refused());
        assert!(format!("{:?}", MainError::runtime(boxed)).ends_with("(os error 111)"));
    }

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
