//! A small local HTTP stub of Amazon Connect's ListUsers API
//! (`GET /users-summary/{InstanceId}?maxResults=&nextToken=`), for the real
//! aws-sdk-connect client pointed at it with an endpoint override. It
//! serves fixed pages (each page's `NextToken` leads to the next one) and
//! can answer the first requests with 429 ThrottlingException. It listens
//! on 127.0.0.1 only and stops when dropped.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the stub saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub next_token: Option<String>,
    pub status: u16,
}

#[derive(Debug, Default)]
struct State {
    pages: Vec<Value>,
    throttle_next: usize,
    seen: Vec<Seen>,
}

/// The running stub.
pub struct ConnectStub {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectStub {
    /// Serves `pages` (ListUsers response bodies); the first `throttle`
    /// requests get a 429.
    pub async fn start(pages: Vec<Value>, throttle: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the stub binds a local port");
        let addr = listener.local_addr().expect("the stub has a local address");
        let state = Arc::new(Mutex::new(State {
            pages,
            throttle_next: throttle,
            seen: Vec::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Bounded: a test sends a handful of requests.
            for _ in 0..10_000 {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let Some(path) = read_request(&mut sock).await else {
                        return;
                    };
                    let (status, body, error) = answer(&shared, &path);
                    let mut head = format!(
                        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        if status == 200 {
                            "OK"
                        } else {
                            "Too Many Requests"
                        },
                        body.len()
                    );
                    if let Some(e) = error {
                        head.push_str(&format!("x-amzn-errortype: {e}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }

    /// Replaces the pages (a later run sees other users).
    pub fn set_pages(&self, pages: Vec<Value>) {
        if let Ok(mut s) = self.state.lock() {
            s.pages = pages;
        }
    }
}

/// Reads one request; returns its target (path and query).
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            // ListUsers is a GET: no body to read.
            let line = head.lines().next()?;
            return line.split(' ').nth(1).map(str::to_owned);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let (_, q) = target.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%2D", "-").replace("%2d", "-"))
    })
}

fn answer(state: &Arc<Mutex<State>>, target: &str) -> (u16, String, Option<&'static str>) {
    let Ok(mut s) = state.lock() else {
        return (500, "{}".into(), Some("InternalServiceException"));
    };
    let path = target.split('?').next().unwrap_or("").to_owned();
    let token = query_param(target, "nextToken");
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        s.seen.push(Seen {
            path,
            next_token: token,
            status: 429,
        });
        return (
            429,
            r#"{"message":"Rate exceeded"}"#.into(),
            Some("ThrottlingException"),
        );
    }
    if !path.starts_with("/users-summary/") {
        s.seen.push(Seen {
            path,
            next_token: token,
            status: 400,
        });
        return (
            400,
            r#"{"message":"unknown operation"}"#.into(),
            Some("InvalidRequestException"),
        );
    }
    let index = match &token {
        None => 0,
        Some(t) => s
            .pages
            .iter()
            .position(|p| p["NextToken"].as_str() == Some(t.as_str()))
            .map(|i| i + 1)
            .unwrap_or(usize::MAX),
    };
    s.seen.push(Seen {
        path,
        next_token: token,
        status: 200,
    });
    let body = s
        .pages
        .get(index)
        .map(|p| p.to_string())
        .unwrap_or_else(|| r#"{"UserSummaryList":[]}"#.to_owned());
    (200, body, None)
}
