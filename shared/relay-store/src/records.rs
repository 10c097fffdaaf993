//! Delivery records (`delivery:{job id}`: status, attempts, last outcome), their attempt
//! history (`attempts:{job id}`) and the claim of the attempt under way (`inflight:{job id}`),
//! so two copies of one job are never sent at once.
//!
//! The history is a Redis list of JSON entries beside the record, not a field inside it: an
//! attempt is appended with `RPUSH` + `LTRIM` + `PEXPIRE` in one `MULTI`, which needs no read, so
//! two processes attempting the same job (a duplicate copy, a redelivery after a crash) never
//! lose each other's entries the way a read-modify-write of the record would. The record keeps
//! being overwritten whole: it only says where the job stands now. Each write of the record also
//! files it in the delivery index (`deliveries:index:…`, [`crate::delivery_index`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Result, Store};

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
    /// Every attempt, oldest first (the latest [`MAX_HISTORY`]). Read from `attempts:{job id}`
    /// by [`Store::delivery`]; never written with the record.
    #[serde(default)]
    pub history: Vec<AttemptEntry>,
}

/// Attempts kept in a delivery's record; older ones are dropped.
pub const MAX_HISTORY: usize = 50;

/// One attempt of a delivery, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptEntry {
    /// The attempt's number as delivery counted it (1 for the first). A job handed back to its
    /// queue after an attempt repeats that number on its next one. 0 in entries written before
    /// the field existed.
    #[serde(default)]
    pub attempt: u32,
    /// When it ended (RFC 3339).
    pub at: String,
    /// What it came to: `delivered`, `retryable`, `rejected` (another 4xx or a 3xx), `gone`
    /// (410), `refused` (a 2xx whose body says the request failed) or `invalid` (the request
    /// could not be built). A job deferred without being sent (its destination at its limit or
    /// its breaker open) makes no entry.
    pub outcome: String,
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The kind of error without a response (`timeout`, `connection error`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// The first bytes of the response body (at most 1 KiB; never a secret of ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
}

impl DeliveryRecord {
    /// Appends `entry` to the history, keeping the latest [`MAX_HISTORY`].
    pub fn push_attempt(&mut self, entry: AttemptEntry) {
        self.history.push(entry);
        if self.history.len() > MAX_HISTORY {
            let excess = self.history.len() - MAX_HISTORY;
            self.history.drain(..excess);
        }
    }
}

impl Store {
    /// Starts an attempt of job `job_id` in one round trip: reads its record (without its
    /// history) and claims it (`SET NX` with `ttl`) so that no other copy of the job is sent
    /// meanwhile. Returns the record and whether the claim was won. A crashed holder never
    /// blocks the job for longer than `ttl`; [`Store::finish_attempt`] or [`Store::release`]
    /// gives the claim back.
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

    /// Ends an attempt in one round trip: writes the job's record (expiring after `ttl`),
    /// files it in the delivery index ([`Store::deliveries`]) and releases its claim, in one
    /// `MULTI`. `record.history` is not written: attempts are appended one by one with
    /// [`Store::append_attempt`].
    pub async fn finish_attempt(
        &self,
        job_id: &str,
        record: &DeliveryRecord,
        ttl: Duration,
    ) -> Result<()> {
        let record_key = self.key(&format!("delivery:{job_id}"));
        let claim_key = self.key(&format!("inflight:{job_id}"));
        let text = serde_json::to_string(&DeliveryRecord {
            history: Vec::new(),
            ..record.clone()
        })?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&record_key)
            .arg(text)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .ignore()
            .cmd("DEL")
            .arg(&claim_key)
            .ignore();
        self.index_delivery(&mut pipe, job_id, record, ttl);
        self.run("finish_attempt", |mut conn| async move {
            pipe.query_async::<()>(&mut conn).await
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

    /// Appends one attempt of job `job_id` to its history, keeping the latest [`MAX_HISTORY`],
    /// and (re)sets the history's expiry to `ttl`: `RPUSH`, `LTRIM`, `PEXPIRE` in one `MULTI`,
    /// so the list never exists without a TTL and concurrent appends all land.
    pub async fn append_attempt(
        &self,
        job_id: &str,
        entry: &AttemptEntry,
        ttl: Duration,
    ) -> Result<()> {
        let key = self.key(&format!("attempts:{job_id}"));
        let text = serde_json::to_string(entry)?;
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let keep = -isize::try_from(MAX_HISTORY).unwrap_or(isize::MAX);
        self.run("append_attempt", |mut conn| async move {
            redis::pipe()
                .atomic()
                .cmd("RPUSH")
                .arg(&key)
                .arg(text)
                .ignore()
                .cmd("LTRIM")
                .arg(&key)
                .arg(keep)
                .arg(-1)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// The record of job `job_id` with its history, if any. An entry of the history that does
    /// not parse is left out (and logged) rather than hiding the rest.
    pub async fn delivery(&self, job_id: &str) -> Result<Option<DeliveryRecord>> {
        let record_key = self.key(&format!("delivery:{job_id}"));
        let history_key = self.key(&format!("attempts:{job_id}"));
        let (text, entries): (Option<String>, Vec<String>) = self
            .run("delivery_get", |mut conn| async move {
                // One snapshot of both keys.
                redis::pipe()
                    .atomic()
                    .cmd("GET")
                    .arg(&record_key)
                    .cmd("LRANGE")
                    .arg(&history_key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(text) = text else {
            return Ok(None);
        };
        let mut record: DeliveryRecord = serde_json::from_str(&text)?;
        let history: Vec<AttemptEntry> = entries
            .iter()
            .filter_map(|e| match serde_json::from_str(e) {
                Ok(entry) => Some(entry),
                Err(error) => {
                    tracing::warn!(%error, "an attempt of the delivery record does not parse");
                    None
                }
            })
            .collect();
        // Records written before the history had its own key carry it inline.
        if !history.is_empty() {
            record.history = history;
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;

    fn entry(n: u64) -> AttemptEntry {
        AttemptEntry {
            attempt: 1,
            at: "2026-12-04T10:00:00Z".into(),
            outcome: "retryable".into(),
            status: Some(503),
            error: None,
            latency_ms: n,
            response_excerpt: None,
        }
    }

    #[test]
    fn the_history_keeps_the_latest_attempts_and_old_records_still_parse() {
        let old = r#"{"status":"delivered","attempts":2,"destination":"d","last_outcome":"status 200","updated_at":"2026-12-04T10:00:00Z"}"#;
        let mut record: DeliveryRecord = serde_json::from_str(old).unwrap();
        assert!(record.history.is_empty());
        for n in 0..(MAX_HISTORY as u64 + 5) {
            record.push_attempt(entry(n));
        }
        assert_eq!(record.history.len(), MAX_HISTORY);
        assert_eq!(record.history[0].latency_ms, 5);
        assert_eq!(
            record.history.last().unwrap().latency_ms,
            MAX_HISTORY as u64 + 4
        );
    }

    fn record(status: DeliveryStatus, attempts: u32) -> DeliveryRecord {
        DeliveryRecord {
            status,
            attempts,
            destination: "d".into(),
            last_outcome: "status 503".into(),
            updated_at: "2026-12-04T10:00:00Z".into(),
            history: Vec::new(),
        }
    }

    const TTL: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn attempts_accumulate_in_order_beside_a_record_that_is_overwritten() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        for (n, status) in [(1, 503), (2, 503), (3, 200)] {
            let mut e = entry(u64::from(n) * 10);
            e.attempt = n;
            e.status = Some(status);
            store.append_attempt("job-1", &e, TTL).await.unwrap();
            let status = if status == 200 {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Retrying
            };
            store
                .finish_attempt("job-1", &record(status, n), TTL)
                .await
                .unwrap();
        }
        let got = store.delivery("job-1").await.unwrap().unwrap();
        assert_eq!(got.status, DeliveryStatus::Delivered);
        assert_eq!(got.attempts, 3);
        let seen: Vec<(u32, Option<u16>)> =
            got.history.iter().map(|e| (e.attempt, e.status)).collect();
        assert_eq!(seen, [(1, Some(503)), (2, Some(503)), (3, Some(200))]);
        // The record itself carries no copy of the history.
        let mut raw = redis.raw().await;
        let text: String = redis::cmd("GET")
            .arg(store.key("delivery:job-1"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(text.contains(r#""history":[]"#), "{text}");
        assert_eq!(store.delivery("job-unknown").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_history_is_trimmed_to_the_latest_and_always_expires() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        store
            .finish_attempt("job-2", &record(DeliveryStatus::Retrying, 1), TTL)
            .await
            .unwrap();
        let total = MAX_HISTORY as u64 + 7;
        for n in 0..total {
            store.append_attempt("job-2", &entry(n), TTL).await.unwrap();
        }
        let got = store.delivery("job-2").await.unwrap().unwrap();
        let latencies: Vec<u64> = got.history.iter().map(|e| e.latency_ms).collect();
        assert_eq!(latencies, (7..total).collect::<Vec<_>>());

        let mut raw = redis.raw().await;
        let pttl: i64 = redis::cmd("PTTL")
            .arg(store.key("attempts:job-2"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 3_600_000, "attempts key TTL: {pttl}");
    }

    #[tokio::test]
    async fn two_processes_appending_at_once_lose_nothing() {
        let redis = TestRedis::new();
        let (a, b) = (redis.store().await, redis.store().await);
        a.finish_attempt("job-3", &record(DeliveryStatus::Retrying, 1), TTL)
            .await
            .unwrap();
        let per_process = 20u64;
        let append = |store: Store, base: u64| async move {
            for n in 0..per_process {
                store
                    .append_attempt("job-3", &entry(base + n), TTL)
                    .await
                    .unwrap();
            }
        };
        tokio::join!(append(a.clone(), 0), append(b, 1000));
        let got = a.delivery("job-3").await.unwrap().unwrap();
        let mut latencies: Vec<u64> = got.history.iter().map(|e| e.latency_ms).collect();
        latencies.sort_unstable();
        let expected: Vec<u64> = (0..per_process).chain(1000..1000 + per_process).collect();
        assert_eq!(latencies, expected);
    }

    #[tokio::test]
    async fn an_unreadable_entry_hides_only_itself() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        store
            .finish_attempt("job-4", &record(DeliveryStatus::Retrying, 2), TTL)
            .await
            .unwrap();
        store.append_attempt("job-4", &entry(1), TTL).await.unwrap();
        let mut raw = redis.raw().await;
        let () = redis::cmd("RPUSH")
            .arg(store.key("attempts:job-4"))
            .arg("not json")
            .query_async(&mut raw)
            .await
            .map(|_: i64| ())
            .unwrap();
        store.append_attempt("job-4", &entry(2), TTL).await.unwrap();
        let got = store.delivery("job-4").await.unwrap().unwrap();
        let latencies: Vec<u64> = got.history.iter().map(|e| e.latency_ms).collect();
        assert_eq!(latencies, [1, 2]);
    }
}
