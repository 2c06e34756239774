//! A minimal merchant webhook endpoint: no framework, so it runs on any tokio runtime (the
//! benchmark's, or a test's beside its server processes). Shared by the benchmark, the
//! crash test and the failover tests.

use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One webhook request as the endpoint read it.
pub struct HookRequest<'a> {
    head: &'a str,
    pub body: &'a [u8],
}

impl HookRequest<'_> {
    /// A request header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Serves `listener`: hands each request (keep-alive connections carry several) to
/// `answer`, and answers 200 when it says so, else 500 (a merchant failing an attempt).
pub async fn webhook_endpoint(
    listener: tokio::net::TcpListener,
    answer: Arc<dyn Fn(&HookRequest<'_>) -> bool + Send + Sync>,
) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len = HookRequest {
                    head: &head,
                    body: &[],
                }
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
                let end = head_end + 4 + len;
                while buf.len() < end {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let ok = answer(&HookRequest {
                    head: &head,
                    body: &buf[head_end + 4..end],
                });
                buf.drain(..end);
                let reply: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
                };
                if sock.write_all(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// [`webhook_endpoint`] that answers 200 and hands each event's JSON to `on_event`.
pub async fn webhook_sink(
    listener: tokio::net::TcpListener,
    on_event: Arc<dyn Fn(Value) + Send + Sync>,
) {
    webhook_endpoint(
        listener,
        Arc::new(move |r: &HookRequest<'_>| {
            on_event(serde_json::from_slice(r.body).unwrap_or(Value::Null));
            true
        }),
    )
    .await
}
