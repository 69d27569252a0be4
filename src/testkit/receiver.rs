//! HTTP endpoints a test runs to receive what runbookd sends out: a
//! recorder that answers 200 and keeps every request (Alertmanager's
//! webhooks, dead man's switch pings), and a listener that accepts
//! connections and never answers (a silent service).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, without `?`; empty when none.
    pub query: String,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: the body is not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Received>>,
    arrived: Notify,
}

/// An HTTP server on 127.0.0.1 that answers every request 200 and keeps it.
pub struct Recorder {
    pub addr: std::net::SocketAddr,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Self {
        Self::answering_after(Duration::ZERO).await
    }

    /// One that keeps each request as it arrives and answers it `delay`
    /// later: a slow service.
    pub async fn answering_after(delay: Duration) -> Self {
        use axum::body::Bytes;
        use axum::extract::{Request, State};
        let log = Arc::new(Log::default());
        let app = axum::Router::new()
            .fallback(
                move |State(log): State<Arc<Log>>, req: Request| async move {
                    let (parts, body) = req.into_parts();
                    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    log.seen.lock().unwrap().push(Received {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_string(),
                        query: parts.uri.query().unwrap_or_default().to_string(),
                        body: body.to_vec(),
                        at: Instant::now(),
                    });
                    log.arrived.notify_waiters();
                    tokio::time::sleep(delay).await;
                    "OK"
                },
            )
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a test HTTP server");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, log, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.log.seen.lock().unwrap().clone()
    }

    /// Waits until the requests so far satisfy `done`, failing after
    /// `within` with what did arrive.
    pub async fn wait_for<T>(
        &self,
        within: Duration,
        what: &str,
        mut done: impl FnMut(&[Received]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.log.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(v) = done(&self.requests()) {
                return v;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let got: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}?{} {}",
                            r.method,
                            r.path,
                            r.query,
                            String::from_utf8_lossy(&r.body)
                        )
                    })
                    .collect();
                panic!("timed out after {within:?} waiting for {what}; received: {got:#?}");
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections on 127.0.0.1 and never answers: a service that
/// hangs. Keeps every connection open until dropped.
pub struct Silent {
    pub addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a silent listener");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(s);
            }
        });
        Silent {
            addr,
            accepted,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}
