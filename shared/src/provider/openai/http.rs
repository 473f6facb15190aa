//! The HTTP core every OpenAI call goes through: auth headers, timeouts,
//! retries with backoff, and the one mapping from HTTP errors to
//! [`ProviderError`].

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::config::{AuthStyle, OpenAiConfig};
use crate::provider::ProviderError;
use crate::secret::LazySecret;

use super::types::ErrorEnvelope;

/// The API key. Its `Debug` and `Display` never show it: it is the one
/// secret this client holds, and structs holding it get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What the OpenAI client's key is called in errors.
pub const API_KEY: &str = "the OpenAI API key";

impl From<ApiKey> for LazySecret {
    fn from(key: ApiKey) -> Self {
        LazySecret::ready(API_KEY, key.0)
    }
}

/// How failed calls are retried, after openai-python's policy (see the
/// reference): a server-given wait in (0, `max_retry_after`] is honoured
/// exactly; a longer one is not waited out in a Lambda but returned as
/// [`ProviderError::RateLimited`] for the next monitor tick; otherwise
/// `min(initial * 2^n, max) * jitter(0.75..=1)`. Whatever the waits, one
/// call sleeps at most `max_total_wait` in all: a tick has a deadline
/// (three honoured 120 s waits would outlast the 300 s function), and a
/// busy provider is the fleet's to wait out (the run goes back to waiting,
/// the pool cools down), not one call's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_retry_after: Duration,
    pub max_total_wait: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(20),
            max_total_wait: Duration::from_secs(30),
        }
    }

    /// How long to wait before retry number `attempt` (0-based) after
    /// `waited` in earlier retries, or `None` when the server asked for a
    /// longer wait than we are willing to spend, or the wait would take the
    /// call past `max_total_wait`.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        let wait = match retry_after {
            Some(wait) if wait > self.max_retry_after => return None,
            Some(wait) if !wait.is_zero() => wait,
            _ => {
                let exp = self.initial_backoff.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
                let capped = exp.min(self.max_backoff.as_secs_f64());
                let jitter: f64 = rand::random_range(0.75..=1.0);
                Duration::from_secs_f64(capped * jitter)
            }
        };
        (waited + wait <= self.max_total_wait).then_some(wait)
    }
}

/// Everything about the connection except the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// e.g. `https://api.openai.com/v1`; no trailing slash needed.
    pub base_url: String,
    pub auth_style: AuthStyle,
    pub organization: Option<String>,
    pub project: Option<String>,
    /// Per request, for JSON calls.
    pub timeout: Duration,
    /// Per request for file bodies (a 64 MiB part needs more than a JSON call).
    pub upload_timeout: Duration,
    pub retry: RetryPolicy,
    /// Files above this size go through the Uploads API. OpenAI's Files
    /// limit is 512 MB; configurable so tests can exercise both paths.
    pub upload_threshold: u64,
    /// Uploads API part size: openai-python's 64 MiB (OpenAI's limit is 64 MB per part).
    pub part_size: u64,
}

pub const DEFAULT_UPLOAD_THRESHOLD: u64 = 512 * 1000 * 1000;
pub const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;

impl ClientSettings {
    pub fn from_config(config: &OpenAiConfig) -> Self {
        Self {
            base_url: config.base_url.clone(),
            auth_style: config.auth_style,
            organization: config.organization.clone(),
            project: config.project.clone(),
            timeout: config.timeout,
            upload_timeout: config.timeout.max(Duration::from_secs(600)),
            retry: RetryPolicy::new(config.max_retries),
            upload_threshold: DEFAULT_UPLOAD_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

/// What a call is about, for error messages and the 403 rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call<'a> {
    /// Creating a fine-tuning job: a 403 here is OpenAI's wind-down.
    CreateJob,
    Other {
        what: &'a str,
    },
}

/// The transport: one reqwest client (rustls), headers, retries.
///
/// The reqwest client and the key are both made on the first call, not
/// at init: building a rustls client reads the system's root certificates
/// and the key may be a Secrets Manager read, and most cold starts of the
/// functions holding this client never call OpenAI.
#[derive(Clone)]
pub(crate) struct Http {
    client: Arc<OnceLock<reqwest::Client>>,
    base: Url,
    key: Arc<LazySecret>,
    pub(crate) settings: ClientSettings,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Http {
    pub(crate) fn new(settings: ClientSettings, key: LazySecret) -> Result<Self, ProviderError> {
        let base = Url::parse(settings.base_url.trim_end_matches('/')).map_err(|e| {
            ProviderError::NotConfigured(format!(
                "OpenAI base URL {:?} is not a URL: {e}",
                settings.base_url
            ))
        })?;
        if base.cannot_be_a_base() {
            return Err(ProviderError::NotConfigured(format!(
                "OpenAI base URL {:?} cannot take paths",
                settings.base_url
            )));
        }
        Ok(Self {
            client: Arc::new(OnceLock::new()),
            base,
            key: Arc::new(key),
            settings,
        })
    }

    /// The reqwest client, built by the first call that needs it. A build
    /// that fails (no usable root certificates) is not kept: the next call
    /// tries again.
    fn client(&self) -> Result<&reqwest::Client, ProviderError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(self.settings.timeout))
            .user_agent(concat!("finetune/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::NotConfigured(format!("HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// `base` + path segments, each percent-encoded (ids are opaque).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request with the optional organization/project headers;
    /// [`Self::execute`] adds the key.
    pub(crate) fn request(
        &self,
        method: Method,
        url: Url,
    ) -> Result<RequestBuilder, ProviderError> {
        let mut req = self
            .client()?
            .request(method, url)
            .timeout(self.settings.timeout);
        if let Some(org) = &self.settings.organization {
            req = req.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.settings.project {
            req = req.header("OpenAI-Project", project);
        }
        Ok(req)
    }

    /// Sends the request `build` makes, again after a retryable failure.
    /// `build` runs once per attempt so streamed bodies (S3 reads) are
    /// reopened for each try instead of buffered for replay.
    pub(crate) async fn execute<F, Fut>(
        &self,
        call: Call<'_>,
        build: F,
    ) -> Result<Response, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<RequestBuilder, ProviderError>>,
    {
        let key = self
            .key
            .get()
            .await
            .map_err(|e| ProviderError::NotConfigured(e.to_string()))?;
        let policy = self.settings.retry;
        let mut attempt: u32 = 0;
        let mut waited = Duration::ZERO;
        loop {
            let request = match self.settings.auth_style {
                AuthStyle::Bearer => build().await?.bearer_auth(key),
                AuthStyle::AzureApiKey => build().await?.header("api-key", key),
            };
            let (error, retryable, retry_after) = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let retry_after = retry_after(&headers);
                    // A 5xx on job creation may come after the job was
                    // made: resending could pay for two. Only a 429 (the
                    // request was not processed) is resent there; the
                    // reconciler finds a job that did get made by its tags.
                    let retryable = match should_retry_header(&headers) {
                        Some(forced) => forced,
                        None if call == Call::CreateJob => status == StatusCode::TOO_MANY_REQUESTS,
                        None => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                    };
                    let body = response.bytes().await.unwrap_or_default();
                    let error = error_from_response(call, status, &headers, &body, retry_after);
                    (error, retryable, retry_after)
                }
                Err(e) => {
                    // Connection refused, timeouts, a body stream that failed
                    // mid-way: worth another try. Except that a job creation
                    // which timed out may have created the job: sending it
                    // again could pay for two, so only a refused connection
                    // (nothing sent) is retried there, and the reconciler's
                    // `find_jobs` heals the rest.
                    let retryable = e.is_connect()
                        || (call != Call::CreateJob && (e.is_timeout() || e.is_request()));
                    (
                        ProviderError::Transport(describe_reqwest(&e)),
                        retryable,
                        None,
                    )
                }
            };
            if !retryable || attempt >= policy.max_retries {
                return Err(error);
            }
            let Some(wait) = policy.delay(attempt, retry_after, waited) else {
                return Err(error);
            };
            attempt += 1;
            waited += wait;
            tracing::warn!(
                error = %crate::telemetry::chain(&error),
                attempt,
                max_retries = policy.max_retries,
                wait_ms = wait.as_millis() as u64,
                "OpenAI call failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// [`Self::execute`] and decode the JSON answer.
    pub(crate) async fn json<T, F, Fut>(&self, call: Call<'_>, build: F) -> Result<T, ProviderError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<RequestBuilder, ProviderError>>,
    {
        let response = self.execute(call, build).await?;
        let request_id = request_id(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Transport(describe_reqwest(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Decode(format!(
                "{e} (request id {})",
                request_id.as_deref().unwrap_or("none")
            ))
        })
    }
}

/// reqwest's message plus its cause chain (the cause says *why* a
/// connection failed). Headers, and so the key, are never part of it.
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `x-should-retry: true|false` overrides the status-based decision, as
/// openai-python does.
fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `retry-after-ms` (milliseconds), else `retry-after` as seconds (fractions
/// allowed) or an HTTP date, as openai-python reads them.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The one mapping from an OpenAI error answer to [`ProviderError`].
pub(crate) fn error_from_response(
    call: Call<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ProviderError {
    let request_id = request_id(headers);
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body).ok();
    let message = match &parsed {
        Some(env) if !env.error.message.is_empty() => env.error.message.clone(),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.to_string()
            } else {
                text.chars().take(500).collect()
            }
        }
    };
    let (param, code) = parsed
        .map(|e| (e.error.param, e.error.code))
        .unwrap_or_default();
    match status.as_u16() {
        401 => ProviderError::Auth {
            message,
            request_id,
        },
        403 if call == Call::CreateJob => ProviderError::FineTuningNotPermitted {
            message,
            request_id,
        },
        403 => ProviderError::PermissionDenied {
            message,
            request_id,
        },
        404 => ProviderError::NotFound {
            what: match call {
                Call::CreateJob => "the fine-tuning endpoint".to_owned(),
                Call::Other { what } => what.to_owned(),
            },
            request_id,
        },
        429 => ProviderError::RateLimited {
            retry_after,
            request_id,
        },
        s if s >= 500 => ProviderError::Server {
            status: s,
            message,
            request_id,
        },
        _ => ProviderError::InvalidRequest {
            message,
            param,
            code,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "7")]);
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn retry_after_reads_fractional_seconds_and_http_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        let h = headers(&[("retry-after", &later.to_rfc2822())]);
        let wait = retry_after(&h).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn a_server_wait_is_honoured_exactly_unless_too_long() {
        let p = RetryPolicy::new(3);
        let none = Duration::ZERO;
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(2)), none),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(21)), none), None);
    }

    #[test]
    fn retries_stop_before_one_call_sleeps_past_its_total_budget() {
        // GIVEN three honoured 12 s waits (openai's largest would be 120 s)
        let p = RetryPolicy::new(3);
        let wait = Some(Duration::from_secs(12));
        let mut waited = Duration::ZERO;
        let mut slept = 0;
        // WHEN the call retries as long as the policy lets it
        while let Some(d) = p.delay(slept, wait, waited) {
            waited += d;
            slept += 1;
        }
        // THEN it stopped at the budget: two waits, not three
        assert_eq!(slept, 2);
        assert!(waited <= p.max_total_wait);
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let p = RetryPolicy::new(10);
        for _ in 0..50 {
            let first = p.delay(0, None, Duration::ZERO).unwrap().as_secs_f64();
            assert!((0.375..=0.5).contains(&first), "{first}");
            let third = p.delay(2, None, Duration::ZERO).unwrap().as_secs_f64();
            assert!((1.5..=2.0).contains(&third), "{third}");
            let late = p.delay(9, None, Duration::ZERO).unwrap().as_secs_f64();
            assert!((6.0..=8.0).contains(&late), "{late}");
        }
    }

    #[test]
    fn errors_map_by_status_and_keep_openai_message_param_and_request_id() {
        let body = br#"{"error":{"message":"bad suffix","type":"invalid_request_error","param":"suffix","code":"invalid_value"}}"#;
        let h = headers(&[("x-request-id", "req_123")]);
        let other = Call::Other { what: "job x" };
        match error_from_response(other, StatusCode::BAD_REQUEST, &h, body, None) {
            ProviderError::InvalidRequest {
                message,
                param,
                code,
                request_id,
            } => {
                assert_eq!(message, "bad suffix");
                assert_eq!(param.as_deref(), Some("suffix"));
                assert_eq!(code.as_deref(), Some("invalid_value"));
                assert_eq!(request_id.as_deref(), Some("req_123"));
            }
            e => panic!("unexpected {e:?}"),
        }
        assert!(matches!(
            error_from_response(Call::CreateJob, StatusCode::FORBIDDEN, &h, body, None),
            ProviderError::FineTuningNotPermitted { .. }
        ));
        assert!(matches!(
            error_from_response(other, StatusCode::FORBIDDEN, &h, body, None),
            ProviderError::PermissionDenied { .. }
        ));
        assert!(matches!(
            error_from_response(other, StatusCode::UNAUTHORIZED, &h, body, None),
            ProviderError::Auth { .. }
        ));
        assert!(matches!(
            error_from_response(other, StatusCode::NOT_FOUND, &h, b"", None),
            ProviderError::NotFound { .. }
        ));
        assert!(matches!(
            error_from_response(other, StatusCode::BAD_GATEWAY, &h, b"<html>", None),
            ProviderError::Server { status: 502, .. }
        ));
        assert!(matches!(
            error_from_response(other, StatusCode::TOO_MANY_REQUESTS, &h, body, Some(Duration::from_secs(1))),
            ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)
        ));
    }
}
