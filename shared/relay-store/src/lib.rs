//! The relay's Redis state: dedup marks and delivery records.
//!
//! Redis is an accelerator, never a gate for inbound data (DESIGN.md, invariant 2): the
//! connection is made in the background so a service starts without Redis, every operation has
//! its own time budget, and every failure is returned as [`StoreError`] for the caller to decide
//! (ingress accepts anyway, delivery sends anyway). Each failure is counted in
//! `relay_redis_errors_total{op}`.
//!
//! Keys (prefix `relay:` by default, a TTL on every key): `seen:{source}:{key}` (dedup),
//! `delivery:{job id}` (status, attempts, last outcome) and `inflight:{job id}` (the claim of
//! the attempt under way, so two copies of one job are never sent at once).

mod ledger;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use relay_core::config::RedisConfig;
use relay_telemetry::readiness::{Check, Readiness};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A Redis operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not connected (yet, or any more).
    #[error("redis unavailable")]
    Unavailable,
    /// The operation exceeded its budget.
    #[error("redis operation timed out")]
    Timeout,
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored value does not parse.
    #[error("stored value is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a delivery job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting in a retry tier.
    Retrying,
    /// The destination answered 2xx.
    Delivered,
    /// Parked in `relay.dead.deliveries`.
    Dead,
}

/// What delivery remembers of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Current status.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Destination name.
    pub destination: String,
    /// Last outcome, e.g. `status 503` or `timeout`.
    pub last_outcome: String,
    /// When the record was written (RFC 3339).
    pub updated_at: String,
}

/// Handle to the relay's Redis state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    op_timeout: Duration,
    connection: watch::Sender<Option<ConnectionManager>>,
}

impl Store {
    /// Starts connecting in the background and returns at once. The `redis` readiness check
    /// passes once the first connection is made; later outages do not make the service unready
    /// (they are counted instead), since inbound traffic must flow without Redis.
    pub fn start(config: &RedisConfig, readiness: &Readiness, stop: CancellationToken) -> Self {
        let (connection, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            prefix: config.key_prefix.clone(),
            op_timeout: config.op_timeout,
            connection,
        });
        let check = readiness.check("redis");
        tokio::spawn(connect_loop(inner.clone(), config.url.clone(), check, stop));
        Self { inner }
    }

    /// Waits until the first connection is made (or `timeout`); true when connected.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.connection.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The full key for `suffix`, e.g. `relay:seen:voximplant:1:2`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.inner.prefix)
    }

    fn seen_key(&self, source: &str, key: &str) -> String {
        self.key(&format!("seen:{source}:{key}"))
    }

    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.inner.connection.borrow().clone();
        let result = match connection {
            None => Err(StoreError::Unavailable),
            Some(conn) => match tokio::time::timeout(self.inner.op_timeout, f(conn)).await {
                Err(_) => Err(StoreError::Timeout),
                Ok(r) => r.map_err(StoreError::from),
            },
        };
        if result.is_err() {
            metrics::counter!("relay_redis_errors_total", "op" => op).increment(1);
        }
        result
    }

    /// For each key of `source`, whether a dedup mark exists.
    pub async fn seen(&self, source: &str, keys: &[String]) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.seen_key(source, k)).collect();
        self.run("seen", |mut conn| async move {
            let mut pipe = redis::pipe();
            for key in &full {
                pipe.exists(key);
            }
            pipe.query_async::<Vec<bool>>(&mut conn).await
        })
        .await
    }

    /// Writes dedup marks for `keys` of `source`, each expiring after `ttl`. Call only after the
    /// broker confirmed the events they stand for (invariant 1).
    pub async fn mark_seen(&self, source: &str, keys: &[String], ttl: Duration) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|k| self.seen_key(source, k)).collect();
        let ttl = ttl.as_secs().max(1);
        self.run("mark_seen", |mut conn| async move {
            let mut pipe = redis::pipe();
            for key in &full {
                pipe.set_ex(key, 1u8, ttl).ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Starts an attempt of job `job_id` in one round trip: reads its record and claims it
    /// (`SET NX` with `ttl`) so that no other copy of the job is sent meanwhile. Returns the
    /// record and whether the claim was won. A crashed holder never blocks the job for longer
    /// than `ttl`; [`Store::finish_attempt`] or [`Store::release`] gives the claim back.
    pub async fn begin_attempt(
        &self,
        job_id: &str,
        ttl: Duration,
    ) -> Result<(Option<DeliveryRecord>, bool)> {
        let record_key = self.key(&format!("delivery:{job_id}"));
        let claim_key = self.key(&format!("inflight:{job_id}"));
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (record, claimed): (Option<String>, Option<String>) = self
            .run("begin_attempt", |mut conn| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&record_key)
                    .cmd("SET")
                    .arg(&claim_key)
                    .arg(1u8)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let record = record.map(|t| serde_json::from_str(&t)).transpose()?;
        Ok((record, claimed.is_some()))
    }

    /// Ends an attempt in one round trip: writes the job's record (expiring after `ttl`) and
    /// releases its claim.
    pub async fn finish_attempt(
        &self,
        job_id: &str,
        record: &DeliveryRecord,
        ttl: Duration,
    ) -> Result<()> {
        let record_key = self.key(&format!("delivery:{job_id}"));
        let claim_key = self.key(&format!("inflight:{job_id}"));
        let text = serde_json::to_string(record)?;
        let ttl = ttl.as_secs().max(1);
        self.run("finish_attempt", |mut conn| async move {
            redis::pipe()
                .cmd("SET")
                .arg(&record_key)
                .arg(text)
                .arg("EX")
                .arg(ttl)
                .ignore()
                .cmd("DEL")
                .arg(&claim_key)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Releases a claim without writing a record.
    pub async fn release(&self, job_id: &str) -> Result<()> {
        let key = self.key(&format!("inflight:{job_id}"));
        self.run("release", |mut conn| async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Counts one hit against `key` (e.g. `acrobits:alice`) in the current `window`, and
    /// returns the hits so far in it. Windows are fixed (aligned to the clock); each counter
    /// expires with its window.
    pub async fn hit_rate(&self, key: &str, window: Duration) -> Result<u64> {
        let secs = window.as_secs().max(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let full = self.key(&format!("rate:{key}:{}", now / secs));
        self.run("hit_rate", |mut conn| async move {
            let (count,): (u64,) = redis::pipe()
                .cmd("INCR")
                .arg(&full)
                .cmd("EXPIRE")
                .arg(&full)
                .arg(secs * 2)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(count)
        })
        .await
    }

    /// The record of job `job_id`, if any.
    pub async fn delivery(&self, job_id: &str) -> Result<Option<DeliveryRecord>> {
        let key = self.key(&format!("delivery:{job_id}"));
        let text: Option<String> = self
            .run("delivery_get", |mut conn| async move {
                redis::cmd("GET").arg(&key).query_async(&mut conn).await
            })
            .await?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }
}

/// Deletes every key under `prefix` (tests and benchmarks clean up their own prefix with it;
/// blocking, for `Drop`). Uses `SCAN`, so a large database is not stalled the way `KEYS`
/// would stall it.
pub fn purge_prefix(url: &str, prefix: &str) -> redis::RedisResult<usize> {
    let mut conn = redis::Client::open(url)?.get_connection()?;
    let keys: Vec<String> =
        redis::Commands::scan_match::<_, String>(&mut conn, format!("{prefix}*"))?
            .collect::<redis::RedisResult<_>>()?;
    for chunk in keys.chunks(1000) {
        redis::cmd("DEL").arg(chunk).query::<()>(&mut conn)?;
    }
    Ok(keys.len())
}

async fn connect_loop(inner: Arc<Inner>, url: String, check: Check, stop: CancellationToken) {
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(error) => {
            // The URL was validated at start-up; this is a scheme the client cannot use.
            tracing::error!(%error, "redis URL unusable; running without Redis");
            return;
        }
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(inner.op_timeout.max(Duration::from_millis(50))))
        .set_max_delay(Duration::from_secs(2));
    let mut pause = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            r = ConnectionManager::new_with_config(client.clone(), config.clone()) => r,
        };
        match attempt {
            Ok(manager) => {
                tracing::info!("connected to Redis");
                inner.connection.send_replace(Some(manager));
                check.set(true);
                // The manager reconnects by itself from here on.
                return;
            }
            Err(error) => {
                if !warned {
                    tracing::warn!(%error, "cannot connect to Redis; running without dedup until it is reachable");
                    warned = true;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
