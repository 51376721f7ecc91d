//! A loopback HTTP proxy that forwards one request at a time to the local
//! endpoint. The local endpoint (moto) serves requests on threads without
//! isolating TransactWriteItems from each other: two transactions can both
//! pass their conditions before either writes. DynamoDB serialises
//! conflicting transactions; this proxy gives the tests that property, so a
//! concurrency test checks the code's conditions, not the emulator's.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The running proxy; stops when dropped.
pub struct SerialProxy {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SerialProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SerialProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`, loopback only).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        assert!(
            upstream.starts_with("127.0.0.1:") || upstream.starts_with("localhost:"),
            "the serial proxy forwards to loopback only, not {upstream}"
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds a local port");
        let addr = listener
            .local_addr()
            .expect("the proxy has a local address");
        let lock = Arc::new(Mutex::new(()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (lock, upstream) = (lock.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, &lock, &upstream).await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            task,
        }
    }
}

/// Reads one request (head and Content-Length body).
async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    // One request per connection upstream: ask it to close when done.
    let mut out = String::new();
    for line in head[..head_end - 4].split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let mut request = out.into_bytes();
    request.extend_from_slice(&buf[head_end..head_end + length]);
    Ok(Some(request))
}

/// Reads one response: up to Content-Length, else to the end.
async fn read_response(up: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: Option<usize> = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            });
            if let Some(length) = length {
                while buf.len() < end + 4 + length {
                    let n = up.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Ok(buf);
            }
            up.read_to_end(&mut buf).await?;
            return Ok(buf);
        }
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(mut sock: TcpStream, lock: &Mutex<()>, upstream: &str) -> std::io::Result<()> {
    let Some(request) = read_request(&mut sock).await? else {
        return Ok(());
    };
    let response = {
        let _one_at_a_time = lock.lock().await;
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&request).await?;
        read_response(&mut up).await?
    };
    sock.write_all(&response).await?;
    sock.shutdown().await
}
