//! The parked index: the [`Facts`] of every parked message, in Redis, so that a console pages
//! through 100,000 parked messages without walking a queue.
//!
//! Every parked message goes through `relay.dead` or `relay.unrouted`, and the topology binds
//! `relay.parked.index` to both: it gets a copy of everything parked. The [`Indexer`] consumes
//! it and files each copy's facts ([`Index::add`]); [`Index::page`] and [`Index::count`] read
//! them; a replay or a purge removes the entries of what it acked ([`Index::forget`]).
//!
//! What is kept (relay-store's `parked` module has the keys): per queue, a sorted set of ids
//! scored by the time each was parked, and one small JSON record per message (its facts,
//! never its body). An entry is kept as long as its message can be parked: the queue's TTL for
//! `relay.unrouted` (`amqp.unrouted_ttl`, and no more entries than `amqp.unrouted_max_length`,
//! like the queue), [`DEAD_RETENTION`] for the parking lots, which never expire their messages.
//!
//! The index is an accelerator, like all of Redis here: the queues stay the truth. It may lag
//! (copies wait for the indexer), and it may hold an entry whose message left its queue in a
//! way nobody told it about (the broker dropped the oldest unrouted event, a consumer other
//! than relayctl or the console took it): acting on it walks the queue, finds nothing, and
//! removes the entry.

mod indexer;
mod page;

pub use indexer::{COPIES_METRIC, Indexer, Outcome, PREFETCH};
pub use page::{BadCursor, Cursor, EXAMINE_PER_ITEM, MAX_LIMIT, Page};

use std::time::Duration;

use relay_core::config::Config;
use relay_store::{ParkedEntry, ParkedKeep, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Facts, Queue, Scan};

/// How long the index keeps an entry of `relay.dead.events` or `relay.dead.deliveries`: 30
/// days. Those queues never expire a message; an operator acts on a parked message well
/// within a month, or no longer needs the console to find it (`relayctl dead list` walks the
/// queue).
pub const DEAD_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Most entries the index keeps of a parking lot (`relay.unrouted` keeps the queue's own
/// length).
const DEAD_MAX_ENTRIES: u64 = 1_000_000;

/// The parked index on a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    store: Store,
    unrouted: ParkedKeep,
}

/// What [`Index::add`] did with the facts it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// Filed.
    pub filed: usize,
    /// Left out: no message id to file them under.
    pub no_id: usize,
    /// Left out: parked longer ago than the queue's retention.
    pub expired: usize,
}

/// One message's record as the index stores it: its facts, and the two the `list --json`
/// output leaves out (the broker's reason is matched by filters).
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    facts: Facts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    broker_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handler: Option<String>,
}

impl Record {
    fn encode(facts: &Facts) -> String {
        let record = Record {
            facts: facts.clone(),
            broker_reason: facts.broker_reason.clone(),
            handler: facts.handler.clone(),
        };
        serde_json::to_string(&record).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Facts> {
        let record: Record = serde_json::from_str(text).ok()?;
        Some(Facts {
            broker_reason: record.broker_reason,
            handler: record.handler,
            ..record.facts
        })
    }
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    ms(OffsetDateTime::now_utc())
}

/// `time` in milliseconds since the epoch (rounded down).
pub(crate) fn ms(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Index {
    /// The index on `store`, keeping `relay.unrouted`'s entries as `config` keeps its events.
    pub fn new(store: Store, config: &Config) -> Self {
        Self {
            store,
            unrouted: ParkedKeep {
                retention: config.amqp.unrouted_ttl,
                max_entries: u64::from(config.amqp.unrouted_max_length),
            },
        }
    }

    /// The store it is kept in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How long, and how many, entries of `queue` are kept.
    pub fn keep(&self, queue: Queue) -> ParkedKeep {
        match queue {
            Queue::Unrouted => self.unrouted,
            Queue::DeadDeliveries | Queue::DeadEvents => ParkedKeep {
                retention: DEAD_RETENTION,
                max_entries: DEAD_MAX_ENTRIES,
            },
        }
    }

    /// The oldest score (ms) of `queue` still within its retention.
    fn oldest_ms(&self, queue: Queue) -> i64 {
        now_ms().saturating_sub(millis(self.keep(queue).retention))
    }

    /// Files `facts` (of any queues), each under its queue and id, scored by the time it was
    /// parked (the time it is filed, when that is unknown): one `MULTI` per queue.
    pub async fn add(&self, facts: &[Facts]) -> Result<Added, StoreError> {
        let mut added = Added::default();
        for queue in Queue::ALL {
            let oldest = self.oldest_ms(queue);
            let now = now_ms();
            let mut entries = Vec::new();
            for facts in facts.iter().filter(|f| f.queue == queue) {
                let Some(id) = &facts.id else {
                    added.no_id += 1;
                    continue;
                };
                let at_ms = facts.time.map_or(now, ms);
                if at_ms < oldest {
                    added.expired += 1;
                    continue;
                }
                entries.push(ParkedEntry {
                    id: id.clone(),
                    at_ms,
                    record: Record::encode(facts),
                });
            }
            if !entries.is_empty() {
                self.store
                    .parked_add(queue.name(), &entries, self.keep(queue))
                    .await?;
                added.filed += entries.len();
            }
        }
        Ok(added)
    }

    /// Removes the entries of `ids` in `queue`.
    pub async fn forget(&self, queue: Queue, ids: &[String]) -> Result<(), StoreError> {
        self.store.parked_forget(queue.name(), ids).await
    }

    /// How many messages of `queue` the index holds (within the queue's retention).
    pub async fn count(&self, queue: Queue) -> Result<u64, StoreError> {
        self.store
            .parked_count(queue.name(), self.oldest_ms(queue))
            .await
    }
}

/// Ids a replay or a purge removes from the index as it goes, in batches.
pub(crate) struct Forget<'a> {
    index: Option<&'a Index>,
    queue: Queue,
    ids: Vec<String>,
    failed: usize,
}

impl<'a> Forget<'a> {
    /// Ids sent to Redis at once.
    const BATCH: usize = 100;

    pub(crate) fn new(index: Option<&'a Index>, queue: Queue) -> Self {
        Self {
            index,
            queue,
            ids: Vec::new(),
            failed: 0,
        }
    }

    /// `facts`' message was acked: its entry goes.
    pub(crate) async fn push(&mut self, facts: &Facts) {
        if let (Some(_), Some(id)) = (self.index, &facts.id) {
            self.ids.push(id.clone());
            if self.ids.len() >= Self::BATCH {
                self.flush().await;
            }
        }
    }

    /// `id` was asked for: its entry goes if `scan` walked the whole queue (it is not parked).
    pub(crate) fn unless_met(&mut self, id: String, scan: &Scan) {
        if self.index.is_some() && scan.finished() {
            self.ids.push(id);
        }
    }

    async fn flush(&mut self) {
        let Some(index) = self.index else {
            return;
        };
        if self.ids.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.ids);
        if let Err(error) = index.forget(self.queue, &ids).await {
            tracing::warn!(%error, queue = %self.queue, count = ids.len(), "cannot remove parked index entries");
            self.failed += ids.len();
        }
    }

    /// Sends what is left; says how many entries could not be removed.
    pub(crate) async fn finish(mut self) -> usize {
        self.flush().await;
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_what_the_listing_leaves_out() {
        let properties = lapin::BasicProperties::default().with_message_id("e-1".into());
        let mut facts = Facts::read(Queue::DeadEvents, &properties, "events", b"{}");
        facts.broker_reason = Some("delivery_limit".into());
        facts.handler = Some("call-log".into());
        facts.time = Some(time::macros::datetime!(2025-03-01 12:00:00.5 UTC));
        let text = Record::encode(&facts);
        assert!(!text.contains("\"body\""), "{text}");
        assert_eq!(Record::decode(&text), Some(facts.clone()));
        facts.broker_reason = None;
        facts.handler = None;
        facts.time = None;
        assert_eq!(Record::decode(&Record::encode(&facts)), Some(facts));
        assert_eq!(Record::decode("{not json"), None);
    }

    #[test]
    fn times_are_milliseconds_rounded_down() {
        assert_eq!(
            ms(time::macros::datetime!(1970-01-01 0:00:01.0019 UTC)),
            1001
        );
        assert_eq!(
            ms(time::macros::datetime!(1969-12-31 23:59:59.9995 UTC)),
            -1
        );
    }
}
