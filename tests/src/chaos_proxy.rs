//! A fault-injecting proxy in front of the local endpoint, for the chaos
//! suite ([`crate::chaos`]). Every request a process sends through it
//! (DynamoDB, DynamoDB Streams, Kinesis: one JSON protocol) is, with the
//! configured probability and by a seeded random choice, answered with one
//! of the failures a real deployment sees:
//!
//! - **throttling**: `400 ProvisionedThroughputExceededException` or
//!   `ThrottlingException` (DynamoDB Streams: `LimitExceededException`), not
//!   forwarded;
//! - **server error**: `500 InternalServerError` (Kinesis: `InternalFailure`),
//!   not forwarded;
//! - **slow past the timeout**: forwarded (so it takes effect), then answered
//!   only after the client's attempt timeout has passed;
//! - **dropped after the write**: forwarded (so it takes effect), then the
//!   connection is closed without an answer: the client sees an I/O error for
//!   a request that succeeded;
//! - **cancelled transaction** (TransactWriteItems only):
//!   `TransactionCanceledException` with `TransactionConflict` reasons, not
//!   forwarded, as DynamoDB answers when another transaction holds an item.
//!
//! It counts what it did, and which requests were identical (operation and
//! body) to one it had already received: the retries of the SDK and of the
//! executor, and batches delivered again after a kill.
//!
//! It forwards one request at a time. DynamoDB isolates a transaction from
//! every other write to its items; the local endpoint does not (two
//! transactions can both pass their conditions before either writes, see
//! [`crate::serial_proxy`]), and a killed process's request still in flight
//! races the restarted process's. One at a time gives the endpoint
//! DynamoDB's isolation, so what the suite checks is the code, not the
//! emulator. [`ChaosProxy::drain`] waits for requests of a killed process
//! to land before the next step.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::runtime_api::{forward, header, loopback, read_message};

/// What the proxy did, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received.
    pub requests: u64,
    pub throttled: u64,
    pub server_errors: u64,
    /// Forwarded, then answered after the client's timeout.
    pub slow: u64,
    /// Forwarded, then the connection closed without an answer.
    pub dropped_after_write: u64,
    /// TransactWriteItems answered with a conflict cancellation.
    pub cancelled: u64,
    /// Requests identical to one received before (operation and body).
    pub repeated: u64,
}

impl FaultCounts {
    /// Faults injected, all kinds.
    pub fn faults(&self) -> u64 {
        self.throttled + self.server_errors + self.slow + self.dropped_after_write + self.cancelled
    }

    /// The counts since `earlier`.
    pub fn since(&self, earlier: &FaultCounts) -> FaultCounts {
        FaultCounts {
            requests: self.requests - earlier.requests,
            throttled: self.throttled - earlier.throttled,
            server_errors: self.server_errors - earlier.server_errors,
            slow: self.slow - earlier.slow,
            dropped_after_write: self.dropped_after_write - earlier.dropped_after_write,
            cancelled: self.cancelled - earlier.cancelled,
            repeated: self.repeated - earlier.repeated,
        }
    }
}

/// One injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Throttle,
    ServerError,
    Slow,
    DropAfterWrite,
    Cancel,
}

struct Shared {
    rate: f64,
    /// TransactWriteItems requests still to drop after the write, whatever
    /// the rate ([`ChaosProxy::drop_transactions`]).
    forced_drops: u32,
    rng: fastrand::Rng,
    counts: FaultCounts,
    seen: HashSet<u64>,
}

/// The running proxy; stops when dropped.
pub struct ChaosProxy {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    /// Requests received and not yet answered by the endpoint.
    in_flight: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The service of a JSON-protocol request, from its `x-amz-target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    DynamoDb,
    Streams,
    Kinesis,
    Other,
}

fn service_of(target: &str) -> Service {
    if target.starts_with("DynamoDBStreams_") {
        Service::Streams
    } else if target.starts_with("DynamoDB_") {
        Service::DynamoDb
    } else if target.starts_with("Kinesis_") {
        Service::Kinesis
    } else {
        Service::Other
    }
}

fn error_response(status: &str, service: Service, code: &str, extra: &str) -> Vec<u8> {
    let (content_type, type_name) = match service {
        Service::DynamoDb | Service::Streams | Service::Other => (
            "application/x-amz-json-1.0",
            format!("com.amazonaws.dynamodb.v20120810#{code}"),
        ),
        Service::Kinesis => ("application/x-amz-json-1.1", code.to_owned()),
    };
    let body =
        format!(r#"{{"__type":"{type_name}","message":"injected by the chaos proxy"{extra}}}"#);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-amzn-requestid: chaos\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answer of a fault that is not forwarded.
fn refusal(fault: Fault, service: Service, body: &[u8], coin: bool) -> Vec<u8> {
    match fault {
        Fault::Throttle => {
            let code = match (service, coin) {
                (Service::Streams, _) => "LimitExceededException",
                (_, true) => "ThrottlingException",
                (_, false) => "ProvisionedThroughputExceededException",
            };
            error_response("400 Bad Request", service, code, "")
        }
        Fault::Cancel => {
            let actions = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1)
                .max(1);
            let reasons = vec![
                r#"{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}"#;
                actions
            ]
            .join(",");
            error_response(
                "400 Bad Request",
                service,
                "TransactionCanceledException",
                &format!(r#","CancellationReasons":[{reasons}]"#),
            )
        }
        Fault::ServerError | Fault::Slow | Fault::DropAfterWrite => {
            let code = if service == Service::Kinesis {
                "InternalFailure"
            } else {
                "InternalServerError"
            };
            error_response("500 Internal Server Error", service, code, "")
        }
    }
}

impl ChaosProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`, loopback only),
    /// injecting faults into a `rate` share of requests (0 to 1), chosen by
    /// a generator seeded with `seed`. `slow` is how long a slow answer is
    /// held: longer than the client's attempt timeout.
    pub async fn start(
        upstream: &str,
        rate: f64,
        seed: u64,
        slow: Duration,
    ) -> std::io::Result<Self> {
        let upstream = loopback("the chaos proxy", upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Mutex::new(Shared {
            rate: rate.clamp(0.0, 1.0),
            forced_drops: 0,
            rng: fastrand::Rng::with_seed(seed),
            counts: FaultCounts::default(),
            seen: HashSet::new(),
        }));
        let state = shared.clone();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let proxy = Upstream {
            addr: upstream,
            gate: Arc::new(tokio::sync::Mutex::new(())),
            in_flight: in_flight.clone(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (state, proxy) = (state.clone(), proxy.clone());
                tokio::spawn(async move {
                    serve(client, &state, &proxy, slow).await;
                });
            }
        });
        Ok(Self {
            url,
            shared,
            in_flight,
            task,
        })
    }

    /// Changes the share of requests that fail (0 turns faults off).
    pub fn set_rate(&self, rate: f64) {
        if let Ok(mut s) = self.shared.lock() {
            s.rate = rate.clamp(0.0, 1.0);
        }
    }

    /// The next `n` TransactWriteItems requests are forwarded (so they take
    /// effect) and then dropped without an answer, whatever the rate: a
    /// test's way to lose the answer of a transaction that was applied.
    pub fn drop_transactions(&self, n: u32) {
        if let Ok(mut s) = self.shared.lock() {
            s.forced_drops = n;
        }
    }

    /// Waits (up to `limit`) until every request received has been answered
    /// by the endpoint: those of a killed process included.
    pub async fn drain(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.lock().map(|s| s.counts).unwrap_or_default()
    }
}

/// Counts the request and draws its fault, if any.
fn draw(state: &Mutex<Shared>, target: &str, body: &[u8]) -> (Option<Fault>, bool) {
    let Ok(mut s) = state.lock() else {
        return (None, false);
    };
    s.counts.requests += 1;
    let mut h = DefaultHasher::new();
    target.hash(&mut h);
    body.hash(&mut h);
    if !s.seen.insert(h.finish()) {
        s.counts.repeated += 1;
    }
    let transaction = target.ends_with(".TransactWriteItems");
    if transaction && s.forced_drops > 0 {
        s.forced_drops -= 1;
        s.counts.dropped_after_write += 1;
        return (Some(Fault::DropAfterWrite), false);
    }
    let rate = s.rate;
    if s.rng.f64() >= rate {
        return (None, false);
    }
    let kinds = if transaction { 5 } else { 4 };
    let fault = match s.rng.usize(0..kinds) {
        0 => Fault::Throttle,
        1 => Fault::ServerError,
        2 => Fault::Slow,
        3 => Fault::DropAfterWrite,
        _ => Fault::Cancel,
    };
    let coin = s.rng.bool();
    let c = &mut s.counts;
    match fault {
        Fault::Throttle => c.throttled += 1,
        Fault::ServerError => c.server_errors += 1,
        Fault::Slow => c.slow += 1,
        Fault::DropAfterWrite => c.dropped_after_write += 1,
        Fault::Cancel => c.cancelled += 1,
    }
    (Some(fault), coin)
}

/// The endpoint, one request at a time.
#[derive(Clone)]
struct Upstream {
    addr: String,
    gate: Arc<tokio::sync::Mutex<()>>,
    in_flight: Arc<AtomicUsize>,
}

impl Upstream {
    async fn forward(&self, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let _one_at_a_time = self.gate.lock().await;
        forward(&self.addr, head, body).await
    }
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one client connection (keep-alive: request after request).
async fn serve(mut client: TcpStream, state: &Mutex<Shared>, upstream: &Upstream, slow: Duration) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_message(&mut client, &mut buf).await {
        upstream.in_flight.fetch_add(1, Ordering::SeqCst);
        let landed = InFlight(&upstream.in_flight);
        let target = header(&head, "x-amz-target").unwrap_or("").to_owned();
        let service = service_of(&target);
        let (fault, coin) = draw(state, &target, &body);
        let response = match fault {
            None => match upstream.forward(&head, &body).await {
                Ok(r) => r,
                Err(_) => return,
            },
            Some(Fault::Slow) => {
                let r = upstream.forward(&head, &body).await;
                drop(landed);
                tokio::time::sleep(slow).await;
                match r {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
            Some(Fault::DropAfterWrite) => {
                let _ = upstream.forward(&head, &body).await;
                let _ = client.shutdown().await;
                return;
            }
            Some(f) => refusal(f, service, &body, coin),
        };
        if client.write_all(&response).await.is_err() {
            return;
        }
    }
}
