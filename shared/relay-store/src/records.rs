//! Delivery records (`delivery:{job id}`: status, attempts, last outcome) and the claim of the
//! attempt under way (`inflight:{job id}`), so two copies of one job are never sent at once.

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
    /// Every attempt, oldest first (the latest [`MAX_HISTORY`]).
    #[serde(default)]
    pub history: Vec<AttemptEntry>,
}

/// Attempts kept in a delivery's record; older ones are dropped.
pub const MAX_HISTORY: usize = 50;

/// One attempt of a delivery, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptEntry {
    /// When it ended (RFC 3339).
    pub at: String,
    /// What it came to: `delivered`, `retryable`, `rejected`, `gone`, `invalid`, or `deferred`
    /// (not sent: the destination was at its limit or its breaker open).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> AttemptEntry {
        AttemptEntry {
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
}
