//! The local stack for integration tests.
//!
//! moto's server is started once per test process on a free loopback port,
//! unless `FINETUNE_TEST_ENDPOINT` names one already running (`make test`
//! leaves that to this harness). A watchdog shell stops it when the test
//! process exits, however it exits. Every test gets its own table and
//! bucket, because one moto server's state is shared by all its clients.
//! The events Lambda delivers come from one set of samples ([`events`]).

pub mod events;
pub mod shards;

pub use events::ApiEvent;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use finetune::blob::Blobs;
use finetune::store::Store;

/// Where the workspace is, for finding `.venv` and the moto launcher.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

static ENDPOINT: OnceLock<String> = OnceLock::new();

/// The moto endpoint, starting moto on first use.
pub fn moto_endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("FINETUNE_TEST_ENDPOINT") {
            return endpoint;
        }
        start_moto()
    })
}

/// The Python that has moto installed: `MOTO_PYTHON`, else the project's
/// venv, else `python3` on PATH.
fn moto_python() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local addr").port()
}

// The watchdog shell is left running on purpose: it outlives this
// function and reaps moto itself.
#[allow(clippy::zombie_processes)]
fn start_moto() -> String {
    let port = free_port();
    let python = moto_python();
    // A missing interpreter would only show as moto never answering, once
    // per test after a 30 s wait each: say so at once.
    if python.components().count() > 1 && !python.exists() {
        panic!(
            "{} does not exist (MOTO_PYTHON or the project's venv): run `make venv`",
            python.display()
        );
    }
    // moto's own server, with DynamoDB requests serialised as DynamoDB
    // applies them (see the script's docstring).
    let server = workspace_root().join("tools/local-stack/moto_serve.py");
    // The shell owns moto and kills it as soon as this test process is
    // gone: statics are never dropped, so nothing in-process could.
    let script = format!(
        "\"$0\" \"$1\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & child=$!; \
         trap 'kill $child 2>/dev/null' EXIT INT TERM; \
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done",
        parent = std::process::id(),
    );
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&python)
        .arg(&server)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "could not start {} {}: {e} (run `make venv`)",
                python.display(),
                server.display()
            )
        });
    // Reap the watchdog when it ends, so it never lingers as a zombie.
    std::thread::spawn(move || watchdog.wait());
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for_moto(port, Duration::from_secs(30));
    endpoint
}

fn wait_for_moto(port: u16, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut head = [0u8; 12];
            if stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not answer on port {port} within {limit:?}");
}

/// Ends a Bedrock model customization job at moto as Bedrock would when
/// training ends (moto keeps jobs `InProgress` until stopped): `status` is
/// `Completed` or `Failed` (with `failure`). Uses the local-only endpoint of
/// `tools/local-stack/moto_serve.py`.
pub async fn finish_bedrock_job(
    job_name: &str,
    status: &str,
    failure: Option<&str>,
) -> Result<(), String> {
    let mut body = serde_json::json!({"status": status});
    if let Some(message) = failure {
        body["failureMessage"] = serde_json::json!(message);
    }
    finetune::tls::install_crypto_provider();
    let reply = reqwest::Client::new()
        .post(format!(
            "{}/_finetune/bedrock/jobs/{job_name}",
            moto_endpoint()
        ))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if reply.status().is_success() {
        Ok(())
    } else {
        Err(format!("moto answered {}", reply.status()))
    }
}

/// A local-only URL of `tools/local-stack/bedrock_serving.py`: each
/// segment percent-encoded (an ARN's `/` and `:` included).
fn local_bedrock_url(segments: &[&str]) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(moto_endpoint()).map_err(|e| e.to_string())?;
    url.path_segments_mut()
        .map_err(|()| "moto's endpoint cannot take a path".to_owned())?
        .extend(["_finetune", "bedrock"].iter().chain(segments));
    Ok(url)
}

/// Sets knobs of a custom model (name or ARN) at the local stack, merged
/// with those it has (`null` removes one): `quality` (`best` | `worst`:
/// answer from the least similar training example), `failNextDeployment`
/// (the model's next deployment ends `Failed` with this message),
/// `getsWhileCreating` (how many Gets a new deployment answers `Creating`,
/// default 1). Answers the model's knobs. Local-only.
pub async fn bedrock_model_knobs(
    model: &str,
    knobs: serde_json::Value,
) -> Result<serde_json::Value, String> {
    local_bedrock(&["custom-models", model], Some(knobs)).await
}

/// One local-only Bedrock endpoint's JSON answer: `body` is POSTed when
/// given, else the endpoint is read.
async fn local_bedrock(
    segments: &[&str],
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, String> {
    finetune::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = local_bedrock_url(segments)?;
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let reply = request.send().await.map_err(|e| e.to_string())?;
    if !reply.status().is_success() {
        return Err(format!("moto answered {}", reply.status()));
    }
    reply.json().await.map_err(|e| e.to_string())
}

/// Sets the local stack's concurrent-jobs quota for Bedrock jobs writing
/// their output to `bucket` (`None`: unlimited) and answers how many
/// creations that quota has refused so far. Past the quota,
/// CreateModelCustomizationJob answers ServiceQuotaExceededException, as
/// Bedrock does at its Service Quotas value. Local-only.
pub async fn bedrock_quota(bucket: &str, jobs: Option<usize>) -> Result<u64, String> {
    let body = serde_json::json!({"concurrentJobs": jobs});
    let quota = local_bedrock(&["quotas", bucket], Some(body)).await?;
    Ok(quota["refused"].as_u64().unwrap_or(0))
}

/// How many Bedrock job creations the quota of `bucket` has refused.
pub async fn bedrock_quota_refusals(bucket: &str) -> Result<u64, String> {
    let quota = local_bedrock(&["quotas", bucket], None).await?;
    Ok(quota["refused"].as_u64().unwrap_or(0))
}

/// How many Converse calls the local stack has answered for `model_id`
/// (as sent: a base model id or a deployment ARN), so a test can prove no
/// answer was requested twice. Local-only.
pub async fn converse_calls(model_id: &str) -> Result<u64, String> {
    let body = local_bedrock(&["converse-calls", model_id], None).await?;
    body["calls"]
        .as_u64()
        .ok_or_else(|| format!("no call count in {body}"))
}

/// An SDK config pointed at moto, with fake credentials. Built per test:
/// SDK clients belong to the tokio runtime they were first used on.
pub async fn sdk_config() -> SdkConfig {
    // Whoever talks to the local stack may prepare datasets in-process
    // (tests, the demo): they count with the compiled-in vocabularies.
    finetune::dataset::dictionaries::use_embedded();
    aws_config::defaults(BehaviorVersion::latest())
        // The functions' own HTTP client, so every test goes through it.
        .http_client(finetune::aws::https_client())
        .endpoint_url(moto_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "finetune-tests",
        ))
        .load()
        .await
}

pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A unique name for this test's table or bucket (lowercase, S3-safe).
pub fn unique_name(kind: &str) -> String {
    format!("ft-{kind}-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh table and bucket on the local stack, and the stores over them.
pub struct TestEnv {
    pub sdk: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub bucket: String,
    pub store: Store,
    pub blobs: Blobs,
}

impl TestEnv {
    pub async fn new() -> Self {
        // Tests prepare datasets in-process, with no dictionaries layer.
        finetune::dataset::dictionaries::use_embedded();
        let sdk = sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3 = s3_client(&sdk);
        let table = unique_name("table");
        let bucket = unique_name("bucket");
        finetune::store::provision::create_table(&dynamodb, &table)
            .await
            .expect("create table");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        Self {
            store: Store::new(dynamodb.clone(), table.clone()),
            blobs: Blobs::new(s3.clone(), bucket.clone()),
            sdk,
            dynamodb,
            s3,
            table,
            bucket,
        }
    }
}

/// This process's resident memory in bytes, from /proc (Linux).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Held by tests that measure this process's memory, so two of them never
/// run at once and inflate each other's figure.
pub static MEMORY_MEASUREMENT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Samples resident memory every few milliseconds until dropped, and
/// reports the highest figure seen.
pub struct PeakMemory {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakMemory {
    pub fn start() -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let peak = std::sync::Arc::new(AtomicU64::new(resident_bytes()));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the peak resident bytes seen.
    pub fn finish(mut self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed).max(resident_bytes())
    }
}
