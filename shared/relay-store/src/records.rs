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
