//! The delivery index: every write of a delivery record ([`Store::finish_attempt`]) also files
//! its job id, in the same `MULTI` (no extra round trip), in four time indexes
//! ([`crate::time_index`]): `deliveries:index:all`, `deliveries:index:all:{status}`,
//! `deliveries:index:dest:{destination}` and `deliveries:index:dest:{destination}:{status}`,
//! scored by the record's `updated_at` (ms). It leaves the sets of the other two statuses
//! (`ZREM`), and each set it adds to drops its entries older than the record TTL
//! (`ZREMRANGEBYSCORE`, cheap: it removes from the low end only) and expires a TTL after its
//! last write (`PEXPIRE`). That is 16 commands per record write, all O(log n).
//!
//! [`Store::deliveries`] lists them a page at a time, newest first; [`Store::delivery_counts`]
//! counts them per status.

use std::time::Duration;

use crate::records::{DeliveryRecord, DeliveryStatus};
use crate::time_index::{IndexRange, millis, now_ms};
use crate::{Result, Store};

/// Which deliveries to list ([`Store::deliveries`]), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only this destination's.
    pub destination: Option<String>,
    /// Only those whose record has this status now.
    pub status: Option<DeliveryStatus>,
    /// Only those last written strictly before this time (ms since the epoch): the cursor.
    pub before_ms: Option<i64>,
    /// Only those last written strictly after this time (ms since the epoch).
    pub after_ms: Option<i64>,
    /// At most this many (1 to [`crate::MAX_PAGE`]).
    pub limit: usize,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryPage {
    /// Job id and record (without its history: [`Store::delivery`] reads that).
    pub items: Vec<(String, DeliveryRecord)>,
    /// The `before_ms` of the next page; `None` when this was the last.
    pub next_before_ms: Option<i64>,
}

/// How many deliveries the index holds, per status (records of the last TTL; an index not
/// written lately may still count some that expired since).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// All of them.
    pub total: u64,
    /// Waiting in a retry tier.
    pub retrying: u64,
    /// Delivered.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead: u64,
}

const STATUSES: [DeliveryStatus; 3] = [
    DeliveryStatus::Retrying,
    DeliveryStatus::Delivered,
    DeliveryStatus::Dead,
];

fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Retrying => "retrying",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Dead => "dead",
    }
}

/// The index of deliveries to `destination` (all: `None`) with `status` (any: `None`).
fn delivery_index(destination: Option<&str>, status: Option<DeliveryStatus>) -> String {
    let base = match destination {
        Some(destination) => format!("deliveries:index:dest:{destination}"),
        None => "deliveries:index:all".to_owned(),
    };
    match status {
        Some(status) => format!("{base}:{}", status_name(status)),
        None => base,
    }
}
/// `text` (RFC 3339, e.g. `2026-12-04T10:00:00.123Z` or `…+02:00`) in milliseconds since the
/// epoch; `None` when it is not that shape.
pub(crate) fn rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| b.get(at) != Some(&c))
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let mut at = 19;
    let mut ms = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        for place in 0..3 {
            ms = ms * 10
                + if place < digits {
                    number(at + 1 + place, 1)?
                } else {
                    0
                };
        }
        at += 1 + digits;
    }
    let offset_minutes = match b.get(at)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let minutes = number(at + 1, 2)? * 60 + number(at + 4, 2)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    // Days from 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant, "days_from_civil").
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + ms)
}

impl Store {
    /// Adds the delivery index's commands for `record` of job `job_id` (kept for `ttl`) to
    /// `pipe`, which writes the record in a `MULTI`.
    pub(crate) fn index_delivery(
        &self,
        pipe: &mut redis::Pipeline,
        job_id: &str,
        record: &DeliveryRecord,
        ttl: Duration,
    ) {
        let now = now_ms();
        let at = rfc3339_ms(&record.updated_at).unwrap_or(now);
        let oldest = now.saturating_sub(millis(ttl));
        let ttl = millis(ttl).max(1);
        for destination in [None, Some(record.destination.as_str())] {
            for status in [None, Some(record.status)] {
                let key = self.key(&delivery_index(destination, status));
                pipe.cmd("ZADD").arg(&key).arg(at).arg(job_id).ignore();
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(format!("({oldest}"))
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
            }
            for other in STATUSES.into_iter().filter(|s| *s != record.status) {
                let key = self.key(&delivery_index(destination, Some(other)));
                pipe.cmd("ZREM").arg(&key).arg(job_id).ignore();
            }
        }
    }

    /// A page of deliveries, newest first (see [`DeliveryQuery`]): two round trips, one
    /// `ZREVRANGEBYSCORE` and one `MGET`, however many deliveries the index holds.
    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryPage> {
        let index = delivery_index(query.destination.as_deref(), query.status);
        let range = IndexRange {
            before_ms: query.before_ms,
            after_ms: query.after_ms,
            limit: query.limit,
        };
        let page = self.index_page(&index, "delivery:", range).await?;
        let items = page
            .items
            .into_iter()
            .filter_map(
                |item| match serde_json::from_str::<DeliveryRecord>(&item.record) {
                    Ok(record) => Some((item.member, record)),
                    Err(error) => {
                        tracing::warn!(%error, job = %item.member, "a delivery record does not parse");
                        None
                    }
                },
            )
            .collect();
        Ok(DeliveryPage {
            items,
            next_before_ms: page.next_before_ms,
        })
    }

    /// How many deliveries (to `destination`, or all) the index holds per status: one round
    /// trip of four `ZCARD`s.
    pub async fn delivery_counts(&self, destination: Option<&str>) -> Result<DeliveryCounts> {
        let keys: Vec<String> = [None]
            .into_iter()
            .chain(STATUSES.map(Some))
            .map(|status| self.key(&delivery_index(destination, status)))
            .collect();
        let (total, retrying, delivered, dead): (u64, u64, u64, u64) = self
            .run("index_count", |mut conn| async move {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("ZCARD").arg(key);
                }
                pipe.query_async(&mut conn).await
            })
            .await?;
        Ok(DeliveryCounts {
            total,
            retrying,
            delivered,
            dead,
        })
    }
}

#[cfg(test)]
#[path = "delivery_index_scale_tests.rs"]
mod scale_tests;
#[cfg(test)]
#[path = "delivery_index_tests.rs"]
mod tests;
