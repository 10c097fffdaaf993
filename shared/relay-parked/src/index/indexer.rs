//! The indexer: consumes `relay.parked.index` (a copy of everything parked) and files each
//! copy's facts in the [`Index`], then acks it.
//!
//! A copy is acked only once its facts are in Redis. While Redis is away the indexer holds the
//! copy and tries again with a growing pause (never by handing it back, which would spin), so
//! the queue keeps the rest meanwhile, bounded by its length and TTL. A copy that cannot be
//! indexed (no message id; not from a parking exchange) or that is older than its queue's
//! retention is acked and counted, never retried.
//!
//! Run it in one process (the console): two indexers would only do the same work twice.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use relay_amqp::{Disposition, Handler};
use relay_core::routing;
use relay_store::StoreError;
use tokio_util::sync::CancellationToken;

use super::Index;
use crate::{Error, Facts, Queue, Result};

/// Copies held unacknowledged at once (`basic_qos`): the indexer's memory is bounded by this
/// many copies, bodies included.
pub const PREFETCH: u16 = 64;

/// Copies read from `relay.parked.index`, by [`Outcome`] (`outcome` label).
pub const COPIES_METRIC: &str = "relay_parked_index_copies_total";

/// The longest pause between two tries while Redis is away.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// What became of one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its facts are filed.
    Indexed,
    /// It has no message id to file them under.
    NoId,
    /// It did not come through `relay.dead` or `relay.unrouted`.
    NotParked,
    /// It was parked longer ago than its queue's retention.
    Expired,
}

impl Outcome {
    /// Every outcome (the `outcome` label's values).
    pub const ALL: [Outcome; 4] = [
        Outcome::Indexed,
        Outcome::NoId,
        Outcome::NotParked,
        Outcome::Expired,
    ];

    /// The `outcome` label of [`COPIES_METRIC`].
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Indexed => "indexed",
            Outcome::NoId => "no_id",
            Outcome::NotParked => "not_parked",
            Outcome::Expired => "expired",
        }
    }
}

/// Files the facts of the copies in `relay.parked.index`.
#[derive(Clone)]
pub struct Indexer {
    index: Index,
}

impl Indexer {
    /// An indexer filing into `index`; creates its metric's series at zero.
    pub fn new(index: Index) -> Self {
        for outcome in Outcome::ALL {
            metrics::counter!("relay_parked_index_copies_total", "outcome" => outcome.label())
                .increment(0);
        }
        Self { index }
    }

    /// Consumes `relay.parked.index` on `channel` until `stop` (then `Ok`) or until the
    /// channel fails (then `Err`: reconnect and call again). Copies held when it returns are
    /// handed back when the caller closes the channel.
    pub async fn run(&self, channel: &Channel, stop: &CancellationToken) -> Result<()> {
        // Prefetch bounds the copies held, and so the memory they take.
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(Error::Consume)?;
        let tag = format!("relay-parked-indexer-{}", std::process::id());
        let mut copies = channel
            .basic_consume(
                routing::PARKED_INDEX_QUEUE.into(),
                tag.as_str().into(),
                // Manual acks: a copy goes only once its facts are in Redis.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(Error::Consume)?;
        loop {
            let copy = tokio::select! {
                () = stop.cancelled() => {
                    let _ = channel
                        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                        .await;
                    return Ok(());
                }
                next = copies.next() => match next {
                    Some(Ok(copy)) => copy,
                    Some(Err(error)) => return Err(Error::Consume(error)),
                    None => return Err(Error::Consume(lapin::Error::from(
                        lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                    ))),
                },
            };
            if !self.settle(&copy, stop).await {
                return Ok(());
            }
            copy.acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(Error::Consume)?;
        }
    }

    /// Indexes `copy`, trying again while Redis is away; false if `stop` came first.
    async fn settle(&self, copy: &Delivery, stop: &CancellationToken) -> bool {
        let mut pause = Duration::from_millis(100);
        let mut failing = false;
        loop {
            match self.index(copy).await {
                Ok(_) => {
                    if failing {
                        tracing::info!("the parked index is written again");
                    }
                    return true;
                }
                Err(error) => {
                    if !failing && !error.means_unavailable() {
                        tracing::warn!(%error, "cannot write the parked index; holding the copy");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Files one copy's facts (its queue read from the exchange and routing key it came
    /// with), and counts what became of it.
    pub async fn index(&self, copy: &Delivery) -> Result<Outcome, StoreError> {
        let outcome = match Queue::of_copy(copy.exchange.as_str(), copy.routing_key.as_str()) {
            None => Outcome::NotParked,
            Some(queue) => {
                let facts = Facts::read(
                    queue,
                    &copy.properties,
                    copy.routing_key.as_str(),
                    &copy.data,
                );
                let added = self.index.add(std::slice::from_ref(&facts)).await?;
                if added.filed > 0 {
                    Outcome::Indexed
                } else if added.no_id > 0 {
                    Outcome::NoId
                } else {
                    Outcome::Expired
                }
            }
        };
        if outcome != Outcome::Indexed {
            tracing::debug!(outcome = outcome.label(), "a parked copy is not indexed");
        }
        metrics::counter!("relay_parked_index_copies_total", "outcome" => outcome.label())
            .increment(1);
        Ok(outcome)
    }
}

/// For [`relay_amqp::consumer::run`] (a consumer that reconnects with its broker):
/// consume [`routing::PARKED_INDEX_QUEUE`] with `poison: None`. A copy is held while Redis is
/// away, as by [`Indexer::run`], until the consumer's grace period on shutdown.
impl Handler for Indexer {
    async fn handle(&self, delivery: &Delivery) -> Disposition {
        let never = CancellationToken::new();
        self.settle(delivery, &never).await;
        Disposition::Ack
    }
}
