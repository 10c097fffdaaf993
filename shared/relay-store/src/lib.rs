//! The relay's Redis state: dedup marks, delivery records, rate limits and the handlers'
//! ledgers (call sessions).
//!
//! Redis is an accelerator, never a gate for inbound data (docs/ARCHITECTURE.md, invariant 2): the
//! connection is made in the background so a service starts without Redis, every operation has
//! its own time budget, and Redis sits behind one circuit breaker per process ([`breaker`]): once
//! it fails, operations are skipped at once instead of each waiting out its budget, until a
//! background probe finds Redis again. Every failure is returned as [`StoreError`] for the
//! caller to decide (ingress accepts anyway, delivery sends anyway, call origination refuses).
//! Failed operations are counted in `relay_redis_errors_total{op}`, skipped ones in
//! `relay_redis_skipped_total{op}`.
//!
//! Keys (prefix `relay:` by default, a TTL on every key): `seen:{source}:{key}` (dedup),
//! `rate:{key}:{window}` (limits), `delivery:{job id}` and `inflight:{job id}` ([`records`]),
//! `call:{session}` (the call log's ledger, [`ledger`]), `breakers:open` (each delivery
//! process's open destination breakers, [`breakers`]), `parked:index:{queue}` and
//! `parked:facts:{queue}:{id}` (the parked index, [`parked`]).

pub mod breaker;
mod breakers;
mod connection;
mod console;
mod dedup;
mod delivery_index;
mod destinations;
mod ledger;
mod limits;
mod parked;
mod private;
mod records;
#[cfg(test)]
mod test_redis;
mod time_index;

pub use breakers::OpenBreaker;
pub use console::{ALERT_LOG_LEN, AlertNote};
pub use delivery_index::{DeliveryCounts, DeliveryPage, DeliveryQuery};
pub use destinations::{DISABLED_TTL, Disabled};
pub use ledger::{Change, UpdateError, Updated};
pub use limits::{Admission, Limit, Window};
pub use parked::{ParkedEntry, ParkedKeep};
pub use private::PrivateRedis;
pub use records::{AttemptEntry, DeliveryRecord, DeliveryStatus, MAX_HISTORY};
pub use time_index::{IndexEntry, IndexItem, IndexPage, IndexRange, MAX_PAGE, MAX_TIES};

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use relay_core::config::RedisConfig;
use relay_telemetry::readiness::Readiness;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use breaker::{Breaker, Input};

/// A Redis operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not connected (yet, or any more), or skipped while the breaker is open.
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

impl StoreError {
    /// Whether the failure says Redis is away (as opposed to an answer it gave): the breaker
    /// logs those once, so callers need not log them per operation.
    pub fn means_unavailable(&self) -> bool {
        match self {
            Self::Unavailable | Self::Timeout => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
            }
            Self::Corrupt(_) => false,
        }
    }
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the relay's Redis state. Cheap to clone; all clones share one connection and one
/// breaker.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    prefix: String,
    op_timeout: Duration,
    probe_interval: Duration,
    connection: watch::Sender<Option<ConnectionManager>>,
    breaker: Breaker,
    /// Serialises this process's updates of one record ([`ledger::STRIPES`] locks, by key
    /// hash), so that a burst for one key queues here instead of failing compare-and-set.
    records: ledger::Stripes,
}

impl Store {
    /// Starts connecting in the background and returns at once. The `redis` readiness check
    /// passes once the first connection is made; later outages do not make the service unready
    /// (the breaker skips Redis instead), since inbound traffic must flow without Redis.
    pub fn start(config: &RedisConfig, readiness: &Readiness, stop: CancellationToken) -> Self {
        let (connection, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            prefix: config.key_prefix.clone(),
            op_timeout: config.op_timeout,
            probe_interval: config.probe_interval,
            connection,
            breaker: Breaker::new(config.breaker_failures),
            records: ledger::Stripes::new(),
        });
        register_metrics();
        let check = readiness.check("redis");
        tokio::spawn(connection::connect_loop(
            inner.clone(),
            config.url.clone(),
            check,
            stop,
        ));
        Self { inner }
    }

    /// Waits until the first connection is made (or `timeout`); true when connected.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.connection.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether Redis is being skipped right now (breaker open, or never connected).
    pub fn is_unavailable(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// The full key for `suffix`, e.g. `relay:seen:voximplant:1:2`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.inner.prefix)
    }

    /// Runs one operation within its budget, behind the breaker; `op` is one of [`OPS`].
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        debug_assert!(OPS.contains(&op), "add `{op}` to relay_store::OPS");
        let breaker = &self.inner.breaker;
        let connection = if breaker.is_open() {
            None
        } else {
            self.inner.connection.borrow().clone()
        };
        let Some(conn) = connection else {
            metrics::counter!("relay_redis_skipped_total", "op" => op).increment(1);
            return Err(StoreError::Unavailable);
        };
        let result = match tokio::time::timeout(self.inner.op_timeout, f(conn)).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(r) => r.map_err(StoreError::from),
        };
        match &result {
            Ok(_) => breaker.record(Input::Succeeded),
            Err(error) => {
                metrics::counter!("relay_redis_errors_total", "op" => op).increment(1);
                if error.means_unavailable() {
                    breaker.record(Input::Failed);
                }
            }
        }
        result
    }
}

/// Every operation of the store: the `op` label of `relay_redis_skipped_total` and
/// `relay_redis_errors_total`.
pub const OPS: &[&str] = &[
    "admit",
    "alert_record",
    "alerts_read",
    "append_attempt",
    "begin_attempt",
    "claim",
    "console_session",
    "delivery_get",
    "disable_destination",
    "disabled_destinations",
    "enable_destination",
    "finish_attempt",
    "hit_rate",
    "index_add",
    "index_count",
    "index_page",
    "index_records",
    "ledger_cas",
    "ledger_get",
    "mark_seen",
    "open_breakers",
    "parked_add",
    "parked_after",
    "parked_count",
    "parked_forget",
    "parked_records",
    "refund",
    "release",
    "release_claim",
    "report_open_breakers",
    "reset",
    "seen",
    "update_claim",
];

/// Creates the series of `relay_redis_skipped_total` and `relay_redis_errors_total` at zero,
/// one per operation, so an alert on Redis trouble sees zeros from start-up rather than a gap.
fn register_metrics() {
    for op in OPS {
        metrics::counter!("relay_redis_skipped_total", "op" => *op).increment(0);
        metrics::counter!("relay_redis_errors_total", "op" => *op).increment(0);
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

#[cfg(test)]
mod ops_tests {
    use super::OPS;

    /// [`OPS`] names exactly the operations the store runs (`self.run("…", …)` in its sources),
    /// so every one has its series from start-up.
    #[test]
    fn every_operation_run_is_in_ops() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut run = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for (at, _) in text.match_indices(".run(") {
                let rest = text[at + ".run(".len()..].trim_start();
                // A name: lower-case words (this test's own text is not one).
                let op = rest.strip_prefix('"').and_then(|r| r.split('"').next());
                if let Some(op) =
                    op.filter(|op| op.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                {
                    run.insert(op.to_owned());
                }
            }
        }
        let ops: std::collections::BTreeSet<String> =
            OPS.iter().map(|op| (*op).to_owned()).collect();
        assert_eq!(run, ops);
    }
}
