//! A local Lambda Runtime API (the `2018-06-01` interface Lambda serves to a
//! function's process), enough to start a built function binary exactly as
//! Lambda starts it (`AWS_LAMBDA_RUNTIME_API`) and invoke it with real event
//! JSON; and [`FaultProxy`], a loopback proxy in front of the local endpoint
//! that answers chosen DynamoDB requests with a 500, to provoke the transient
//! failures a function must report as `batchItemFailures`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `/response`: the handler's JSON.
    Response(String),
    /// `/error`: the error document.
    Error(String),
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<(String, String)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<String>>,
    /// When the function first asked for an invocation (its init was done).
    first_next: Mutex<Option<Instant>>,
    notify: Notify,
    next_id: Mutex<u64>,
}

/// The server; it stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => loop {
            if let Ok(mut first) = state.first_next.lock() {
                first.get_or_insert_with(Instant::now);
            }
            let next = state.queue.lock().ok().and_then(|mut q| q.pop_front());
            if let Some((id, event)) = next {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() + 30_000)
                    .unwrap_or(0);
                let mut r = reply(StatusCode::OK, event);
                let h = r.headers_mut();
                let mut set = |k: &'static str, v: String| {
                    if let Ok(v) = v.parse() {
                        h.insert(k, v);
                    }
                };
                set("lambda-runtime-aws-request-id", id);
                set("lambda-runtime-deadline-ms", deadline.to_string());
                set(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:012345678901:function:streamfold-test".to_owned(),
                );
                set(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000".to_owned(),
                );
                set("content-type", "application/json".to_owned());
                return Ok(r);
            }
            state.notify.notified().await;
        },
        (
            Method::POST,
            [
                "2018-06-01",
                "runtime",
                "invocation",
                id,
                kind @ ("response" | "error"),
            ],
        ) => {
            let answer = if *kind == "response" {
                Answer::Response(body)
            } else {
                Answer::Error(body)
            };
            if let Some(tx) = state.waiting.lock().ok().and_then(|mut w| w.remove(*id)) {
                let _ = tx.send(answer);
            }
            Ok(reply(
                StatusCode::ACCEPTED,
                "{\"status\":\"OK\"}".to_owned(),
            ))
        }
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            if let Ok(mut e) = state.init_error.lock() {
                *e = Some(body);
            }
            Ok(reply(
                StatusCode::ACCEPTED,
                "{\"status\":\"OK\"}".to_owned(),
            ))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, "{}".to_owned())),
    }
}

impl RuntimeApi {
    /// Starts the server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(s.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues one event and waits for the function's answer.
    pub async fn invoke(&self, event: &str, timeout: Duration) -> Result<Answer, String> {
        let id = {
            let mut n = self.state.next_id.lock().map_err(|e| e.to_string())?;
            *n += 1;
            format!("request-{n:06}")
        };
        let (tx, rx) = oneshot::channel();
        self.state
            .waiting
            .lock()
            .map_err(|e| e.to_string())?
            .insert(id.clone(), tx);
        self.state
            .queue
            .lock()
            .map_err(|e| e.to_string())?
            .push_back((id, event.to_owned()));
        self.state.notify.notify_waiters();
        self.state.notify.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the invocation was dropped".to_owned()),
            Err(_) => Err(format!(
                "no answer within {timeout:?}; init error: {:?}",
                self.init_error()
            )),
        }
    }

    /// When the function first polled for an invocation: the end of its init.
    pub fn ready_at(&self) -> Option<Instant> {
        self.state.first_next.lock().ok().and_then(|t| *t)
    }

    /// The init error the function reported, if any.
    pub fn init_error(&self) -> Option<String> {
        self.state.init_error.lock().ok().and_then(|e| e.clone())
    }
}

/// A function binary running against a [`RuntimeApi`], as Lambda runs it.
pub struct Function {
    pub child: tokio::process::Child,
    pub started: Instant,
}

impl Function {
    /// Starts `binary` with Lambda's environment plus `env`. Its output is
    /// discarded unless `STREAMFOLD_RUNTIME_LOGS=1` (then it goes to this
    /// process's stderr).
    pub fn start(binary: &Path, api: &RuntimeApi, env: &[(&str, String)]) -> std::io::Result<Self> {
        Self::start_with_stdout(binary, api, env, None)
    }

    /// [`Function::start`] with the function's stdout (its log stream: log
    /// lines and EMF metrics) written to `stdout` if given.
    pub fn start_with_stdout(
        binary: &Path,
        api: &RuntimeApi,
        env: &[(&str, String)],
        stdout: Option<std::fs::File>,
    ) -> std::io::Result<Self> {
        let logs = || {
            if std::env::var("STREAMFOLD_RUNTIME_LOGS").as_deref() == Ok("1") {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .stdin(Stdio::null())
            .stdout(match stdout {
                Some(file) => Stdio::from(file),
                None => logs(),
            })
            .stderr(logs())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        Ok(Self {
            child: cmd.spawn()?,
            started,
        })
    }

    /// Peak resident memory (VmHWM) in kB, on Linux.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
    }
}

/// Builds a workspace binary (debug, or release with `release`) with the
/// cargo that runs the tests, and returns its path.
pub fn build_binary(package: &str, release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "-q", "-j2", "-p", package, "--bin", package]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build -p {package} failed"));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let path = target
        .join(if release { "release" } else { "debug" })
        .join(package);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} was not built", path.display()))
    }
}

/// The environment a function needs to reach the local endpoint and table
/// (`AWS_ENDPOINT_URL` as the tests have it).
pub fn function_env(table: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("STREAMFOLD_TABLE", table.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        if let Ok(v) = std::env::var(k) {
            env.push((k, v));
        }
    }
    env
}

/// Which requests [`FaultProxy`] answers with an error instead of
/// forwarding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The operation (`X-Amz-Target` suffix), e.g. `TransactWriteItems`.
    pub operation: String,
    /// Only requests whose body contains this text (e.g. a key), if set.
    pub body_contains: Option<String>,
}

impl Fault {
    /// Every request of `operation`.
    pub fn on(operation: &str) -> Self {
        Self {
            operation: operation.to_owned(),
            body_contains: None,
        }
    }

    /// The requests of `operation` whose body contains `text`.
    pub fn on_body(operation: &str, text: &str) -> Self {
        Self {
            operation: operation.to_owned(),
            body_contains: Some(text.to_owned()),
        }
    }

    fn matches(&self, target: &str, body: &[u8]) -> bool {
        let op_matches = target.rsplit('.').next() == Some(self.operation.as_str());
        let body_matches = match &self.body_contains {
            None => true,
            Some(text) => {
                let needle = text.as_bytes();
                !needle.is_empty() && body.windows(needle.len()).any(|w| w == needle)
            }
        };
        op_matches && body_matches
    }
}

#[derive(Default)]
struct ProxyState {
    fault: Option<Fault>,
    /// Requests answered with the injected error.
    injected: u64,
}

/// A loopback HTTP/1.1 proxy to the local endpoint (loopback only) that
/// forwards every request except those matching the current [`Fault`],
/// which get DynamoDB's `500 InternalServerError`: a transient error, as
/// DynamoDB gives under trouble. It stops when dropped.
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<ProxyState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const MAX_MESSAGE: usize = 64 * 1024 * 1024;

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one HTTP/1.1 message (head and a Content-Length body) from `sock`,
/// `buf` holding what was already read; `None` at end of stream.
pub(crate) async fn read_message(
    sock: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > MAX_MESSAGE {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_MESSAGE {
        return None;
    }
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let message: Vec<u8> = buf.drain(..head_end + len).collect();
    Some((head, message[head_end..].to_vec()))
}

/// Sends one request upstream on a fresh connection (`connection: close`)
/// and returns the raw response.
pub(crate) async fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let hop = line
            .split_once(':')
            .map(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
            .unwrap_or(false);
        if i == 0 || !hop {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let mut up = tokio::net::TcpStream::connect(upstream).await?;
    up.write_all(out.as_bytes()).await?;
    up.write_all(body).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    Ok(response)
}

/// `http://127.0.0.1:PORT/` as `127.0.0.1:PORT`; an error unless it is on
/// loopback (the test proxies never forward elsewhere).
pub(crate) fn loopback(who: &str, upstream: &str) -> std::io::Result<String> {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    if upstream.starts_with("127.0.0.1:") || upstream.starts_with("localhost:") {
        Ok(upstream)
    } else {
        Err(std::io::Error::other(format!(
            "{who} forwards to loopback only, not {upstream}"
        )))
    }
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`, loopback only).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let upstream = loopback("the fault proxy", upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut buf = Vec::new();
                    while let Some((head, body)) = read_message(&mut client, &mut buf).await {
                        let target = header(&head, "x-amz-target").unwrap_or("").to_owned();
                        let inject = match shared.lock() {
                            Ok(mut s) => {
                                let hit =
                                    s.fault.as_ref().is_some_and(|f| f.matches(&target, &body));
                                if hit {
                                    s.injected += 1;
                                }
                                hit
                            }
                            Err(_) => false,
                        };
                        let response = if inject {
                            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected by the test's fault proxy"}"#;
                            format!(
                                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .into_bytes()
                        } else {
                            match forward(&upstream, &head, &body).await {
                                Ok(r) => r,
                                Err(_) => return,
                            }
                        };
                        if client.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { url, state, task })
    }

    /// Sets (or with `None` clears) the fault.
    pub fn set_fault(&self, fault: Option<Fault>) {
        if let Ok(mut s) = self.state.lock() {
            s.fault = fault;
        }
    }

    /// How many requests got the injected error so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().map(|s| s.injected).unwrap_or(0)
    }
}

/// The agent event stream's ARN in generated Lambda Kinesis events.
pub const KINESIS_ARN: &str = "arn:aws:kinesis:us-east-1:012345678901:stream/connect-agent-events";

/// The Lambda DynamoDB Streams event of `records` from the stream `arn`
/// (each record with its `eventSourceARN`), as JSON text.
pub fn table_event<R: std::borrow::Borrow<streamfold_shared::record::StreamRecord>>(
    records: &[R],
    arn: &str,
) -> String {
    use serde_json::json;
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r.borrow()).unwrap_or_default();
            v["eventSourceARN"] = json!(arn);
            v
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// Connect agent events as Lambda Kinesis event records (the shape Lambda
/// delivers, data in base64), sequence numbers from `first_seq` on.
pub fn kinesis_lambda_records(
    events: &[serde_json::Value],
    first_seq: usize,
) -> Vec<serde_json::Value> {
    use serde_json::json;
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let r = streamfold_shared::kinesis::KinesisRecord::from_payload_line(
                "shardId-000000000000",
                first_seq + i,
                &e.to_string(),
            );
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            v["eventID"] = json!(format!("shardId-000000000000:{}", r.sequence_number));
            v["eventSourceARN"] = json!(KINESIS_ARN);
            v["eventName"] = json!("aws:kinesis:record");
            v["eventVersion"] = json!("1.0");
            v["awsRegion"] = json!("us-east-1");
            v["kinesis"]["kinesisSchemaVersion"] = json!("1.0");
            v
        })
        .collect()
}
