//! A local stand-in for the Lambda Runtime API, just enough to time one
//! cold start: it records when the function first asks for an event
//! (`GET /2018-06-01/runtime/invocation/next`, where Lambda ends "Init
//! Duration"), serves it one event, records when the response (or an
//! error) is posted, and never answers the second `next`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One cold start of one binary.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Process start to the first `GET …/invocation/next`.
    pub init: Duration,
    /// The event served to its response posted.
    pub first_response: Duration,
    /// The posted body (a response, or an error document).
    pub body: String,
    /// Whether it was posted to `…/response` (not `…/error`).
    pub ok: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{binary}: {what} within {limit:?}")]
    Timeout {
        binary: String,
        what: &'static str,
        limit: Duration,
    },
    #[error("{binary} reported an init error: {body}")]
    InitError { binary: String, body: String },
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const LIMIT: Duration = Duration::from_secs(30);

enum Seen {
    Next(Instant),
    Posted {
        at: Instant,
        path: String,
        body: String,
    },
}

/// Starts `binary` with `env` against a fresh stand-in and times it.
/// `runner`, when not empty, is the command the binary is started under
/// (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu` for an arm64 build on
/// an x86_64 machine); its program is looked up on this process's `PATH`,
/// since the function's own environment has none. With `show_output` the
/// function's (and the runner's) stdout and stderr go to ours, else nowhere.
pub fn cold_start(
    runner: &[String],
    show_output: bool,
    binary: &Path,
    env: &[(String, String)],
    event: &serde_json::Value,
) -> Result<ColdStart, BenchError> {
    let name = binary.display().to_string();
    let io = |what: &str| {
        let name = name.clone();
        let what = what.to_owned();
        move |e| BenchError::Io(format!("{name}: {what}"), e)
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind"))?;
    let port = listener.local_addr().map_err(io("bind"))?.port();
    let (seen_tx, seen) = mpsc::channel();
    let event = event.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen_tx, event) = (seen_tx.clone(), event.clone());
            std::thread::spawn(move || serve(stream, &seen_tx, &event));
        }
    });

    let mut command = match runner.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(on_path(program));
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let started = Instant::now();
    let mut child = command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(if show_output {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(if show_output {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .map_err(io("spawn"))?;
    let result = wait(&seen, started, &name);
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `program` as found on `PATH` (as given when it holds a `/` or is not found).
fn on_path(program: &str) -> std::path::PathBuf {
    if program.contains('/') {
        return program.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| program.into())
}

fn wait(
    seen: &mpsc::Receiver<Seen>,
    started: Instant,
    name: &str,
) -> Result<ColdStart, BenchError> {
    let timeout = |what| BenchError::Timeout {
        binary: name.to_owned(),
        what,
        limit: LIMIT,
    };
    let first_next = loop {
        match seen.recv_timeout(LIMIT) {
            Ok(Seen::Next(at)) => break at,
            Ok(Seen::Posted { path, body, .. }) if path.contains("/init/error") => {
                return Err(BenchError::InitError {
                    binary: name.to_owned(),
                    body,
                });
            }
            Ok(Seen::Posted { .. }) => {}
            Err(_) => return Err(timeout("no GET /next")),
        }
    };
    loop {
        match seen.recv_timeout(LIMIT) {
            Ok(Seen::Posted { at, path, body }) => {
                return Ok(ColdStart {
                    init: first_next - started,
                    first_response: at - first_next,
                    ok: path.ends_with("/response"),
                    body,
                });
            }
            Ok(Seen::Next(_)) => {}
            Err(_) => return Err(timeout("no response")),
        }
    }
}

/// Serves one keep-alive connection of the runtime client.
fn serve(stream: TcpStream, seen: &mpsc::Sender<Seen>, event: &str) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut served = false;
    while let Some((method, path, body)) = read_request(&mut reader) {
        let at = Instant::now();
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let _ = seen.send(Seen::Next(at));
            if served {
                // The second `next`: the function is idle; hold it there.
                std::thread::sleep(LIMIT);
                return;
            }
            served = true;
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 60_000)
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 lambda-runtime-aws-request-id: {REQUEST_ID}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 lambda-runtime-trace-id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\r\n",
                event.len()
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(event.as_bytes());
        } else {
            let _ = seen.send(Seen::Posted { at, path, body });
            let _ = writer.write_all(
                b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n",
            );
        }
        let _ = writer.flush();
    }
}

/// One HTTP/1.1 request: method, path and body (content-length or chunked).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}
