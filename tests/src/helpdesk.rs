//! A helpdesk on loopback that speaks Re:amaze's custom voice channel: it verifies
//! `X-Reamaze-Hmac-SHA256` on every request (401 when it does not verify), keeps what it
//! accepted in order, and can be told to answer 503 for one conversation thread until
//! released.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    accepted: Vec<Value>,
    refused_503: Vec<Value>,
    bad_signatures: usize,
    failing: HashSet<String>,
}

/// The helpdesk peer.
#[derive(Clone)]
pub struct Helpdesk {
    /// Where the relay posts (`…/incoming/voice`).
    pub url: String,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl Helpdesk {
    /// Starts a helpdesk that verifies with `secret`.
    pub async fn start(secret: &'static str) -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let app = axum::Router::new().fallback({
            let state = state.clone();
            let changed = changed.clone();
            move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                let changed = changed.clone();
                async move {
                    let status = receive(&state, secret, &headers, &body);
                    changed.notify_waiters();
                    status
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind helpdesk");
        let addr = listener.local_addr().expect("helpdesk addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("helpdesk serves");
        });
        Self {
            url: format!("http://{addr}/incoming/voice"),
            state,
            changed,
        }
    }

    /// Answers 503 to every message of `thread` until [`Helpdesk::release`].
    pub fn fail(&self, thread: &str) {
        self.lock().failing.insert(thread.to_owned());
    }

    /// Accepts `thread` again.
    pub fn release(&self, thread: &str) {
        self.lock().failing.remove(thread);
    }

    /// Every accepted message, in arrival order.
    pub fn accepted(&self) -> Vec<Value> {
        self.lock().accepted.clone()
    }

    /// The accepted messages of `thread`, in arrival order.
    pub fn thread(&self, thread: &str) -> Vec<Value> {
        self.accepted()
            .into_iter()
            .filter(|m| m["thread_id"] == thread)
            .collect()
    }

    /// The bodies (texts) accepted for `thread`, in order.
    pub fn texts(&self, thread: &str) -> Vec<String> {
        self.thread(thread)
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Requests of `thread` answered 503.
    pub fn refused(&self, thread: &str) -> Vec<Value> {
        self.lock()
            .refused_503
            .iter()
            .filter(|m| m["thread_id"] == thread)
            .cloned()
            .collect()
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> usize {
        self.lock().bad_signatures
    }

    /// Waits until `done` holds (checked after every request), or panics after `timeout`
    /// with `what`.
    pub async fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                assert!(
                    done(self),
                    "{what} (accepted so far: {:#?})",
                    self.accepted()
                );
                return;
            }
        }
    }

    /// Waits until `thread` has `count` accepted messages.
    pub async fn wait_for_thread(&self, thread: &str, count: usize, timeout: Duration) {
        self.wait_until(timeout, &format!("{count} messages in {thread}"), |h| {
            h.thread(thread).len() >= count
        })
        .await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("helpdesk lock")
    }
}

fn receive(state: &Mutex<State>, secret: &str, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    let mut state = state.lock().expect("helpdesk lock");
    let signature = headers
        .get(relay_signing::reamaze::HEADER)
        .and_then(|v| v.to_str().ok());
    if relay_signing::reamaze::verify(secret.as_bytes(), body, signature).is_err() {
        state.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let thread = message["thread_id"].as_str().unwrap_or_default().to_owned();
    if state.failing.contains(&thread) {
        state.refused_503.push(message);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    state.accepted.push(message);
    StatusCode::OK
}
