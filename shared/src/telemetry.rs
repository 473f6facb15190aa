//! Logging set-up shared by every function.

/// JSON lines on stdout for CloudWatch (Lambda adds the request id); the
/// level comes from `RUST_LOG`, default `info`. Log fields carry ids and
/// counts only: never request bodies, keys or conversation text.
pub fn init_lambda() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .init();
}
