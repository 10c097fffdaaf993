//! The walk over a queue that listing, replaying and purging share, and how it leaves what it
//! does not take where it was.
//!
//! Messages are taken one at a time with `basic_get` and *not* acknowledged, on one channel of
//! a connection of the walk's own. The caller acks, through [`Scan::ack`], what it has dealt
//! with (replayed, purged); everything else is held until [`Scan::close`] hands it back.
//!
//! Handing back keeps the order only if done with care (measured on RabbitMQ 3.10 quorum
//! queues, which the parking lots and `relay.unrouted` are):
//! * a quorum queue serves the messages handed back to it (its "returns") before the others,
//!   each joining the end of the returns. So a walk always takes every message that was ready
//!   when it began, even when the caller needed fewer: otherwise what it hands back would go
//!   behind returns it never reached. The messages come back in their old order, ahead of
//!   anything that arrived meanwhile;
//! * closing a channel that still holds messages hands them back in no particular order, so
//!   they are handed back one by one (`basic.nack`, requeue), in the order they were taken;
//! * a channel may have 32 acks or nacks on their way to a quorum queue; past that, RabbitMQ
//!   holds the rest back and later sends them regrouped (out of order), and drops what it still
//!   holds when the channel closes (an ack dropped so is a message back in the queue). So at
//!   most [`IN_FLIGHT`] go out before a point where the queue has applied them all: a
//!   `basic.get` (a synchronous command to the queue), or, for nacks, seeing the queue's
//!   ready count reach what was handed back.
//!
//! A nack with requeue is also what RabbitMQ 4.3+ does not count against a delivery limit. The
//! broker adds an `x-delivery-count` header to the messages it hands back.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Connection, ConnectionProperties};

use crate::{Error, Facts, Filter, Queue, Result};

/// Acks and nacks sent before the queue must have applied them (RabbitMQ's quorum-queue client
/// starts holding them back at 32).
const IN_FLIGHT: usize = 16;

/// How long handing back waits for the queue to show a batch of nacks applied.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// A walk over the messages that were ready in a queue when it began.
pub struct Scan {
    connection: Connection,
    channel: Channel,
    queue: Queue,
    filter: Filter,
    /// Every message taken, in order; `None` once acked.
    taken: Vec<Option<Acker>>,
    /// Acks sent since the queue last applied everything.
    unapplied: usize,
    /// Messages ready when the walk began (see [`Scan::total`]).
    total: u32,
    /// Whether [`Scan::next`] has found the end.
    ended: bool,
}

/// A message that matched, held until the caller acks it (or the walk ends).
#[derive(Debug)]
pub struct Parked {
    /// What was read of it.
    pub facts: Facts,
    /// The message itself.
    pub delivery: Delivery,
    /// Its place in the walk.
    seq: usize,
}

impl Scan {
    /// Starts a walk over `queue` on a connection of its own to `amqp_url` (the
    /// configuration's `amqp.url`), yielding the messages `filter` matches.
    pub async fn open(amqp_url: &str, queue: Queue, filter: Filter) -> Result<Self> {
        let connection = Connection::connect(amqp_url, ConnectionProperties::default())
            .await
            .map_err(Error::Connect)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(Error::amqp("open a channel for", queue))?;
        let total = ready(&channel, queue).await?;
        Ok(Self {
            connection,
            channel,
            queue,
            filter,
            taken: Vec::new(),
            unapplied: 0,
            total,
            ended: false,
        })
    }

    /// The queue walked.
    pub fn queue(&self) -> Queue {
        self.queue
    }

    /// Messages ready when the walk began. The walk stops there, so a message published back
    /// into the same queue meanwhile (an unrouted event that still has no handler) is not met
    /// a second time.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Messages taken so far.
    pub fn scanned(&self) -> u32 {
        u32::try_from(self.taken.len()).unwrap_or(u32::MAX)
    }

    /// Whether the walk has met every message it will meet: [`Scan::next`] found the end.
    pub fn finished(&self) -> bool {
        self.ended
    }

    /// The next message that matches, or `None` at the end of the walk. Messages that do not
    /// match are held until [`Scan::close`].
    pub async fn next(&mut self) -> Result<Option<Parked>> {
        while self.scanned() < self.total {
            let Some(delivery) = self.get().await? else {
                // Fewer than counted: expired (relay.unrouted has a TTL) or taken by another.
                break;
            };
            let facts = Facts::read(
                self.queue,
                &delivery.properties,
                delivery.routing_key.as_str(),
                &delivery.data,
            );
            if self.filter.matches(&facts) {
                let seq = self.taken.len() - 1;
                return Ok(Some(Parked {
                    facts,
                    delivery,
                    seq,
                }));
            }
        }
        self.ended = true;
        Ok(None)
    }

    /// Removes `parked` from the queue for good.
    pub async fn ack(&mut self, parked: &Parked) -> Result<()> {
        let Some(acker) = self.taken.get_mut(parked.seq).and_then(Option::take) else {
            return Ok(());
        };
        acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(Error::amqp("remove a message from", self.queue))?;
        self.unapplied += 1;
        if self.unapplied >= IN_FLIGHT {
            // Whatever this takes is held, like any other message of the walk.
            self.get().await?;
        }
        Ok(())
    }

    /// Takes the next message of the queue, held. A `basic.get` is a synchronous command to
    /// the queue: when it answers, the acks sent before it are applied.
    async fn get(&mut self) -> Result<Option<Delivery>> {
        // no_ack: false, so that nothing taken is gone before the caller says so.
        let got = self
            .channel
            .basic_get(self.queue.name().into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(Error::amqp("read", self.queue))?;
        self.unapplied = 0;
        Ok(got.map(|message| {
            self.taken.push(Some(message.delivery.acker.clone()));
            message.delivery
        }))
    }

    /// Ends the walk: every message taken and not acked goes back to the queue, in its order
    /// (see the module's documentation).
    pub async fn close(mut self) -> Result<()> {
        while self.scanned() < self.total && self.get().await?.is_some() {}
        if self.unapplied > 0 {
            self.get().await?;
        }
        let requeue = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        let held: Vec<Acker> = self.taken.iter().flatten().cloned().collect();
        for (i, acker) in held.iter().enumerate() {
            // On failure the broker still hands back what was not dealt with, once the
            // connection ends.
            acker
                .nack(requeue)
                .await
                .map_err(Error::amqp("hand a message back to", self.queue))?;
            if (i + 1) % IN_FLIGHT == 0 || i + 1 == held.len() {
                self.applied(i + 1).await?;
            }
        }
        self.channel
            .close(200, "walked".into())
            .await
            .map_err(Error::amqp("close the channel on", self.queue))?;
        let _ = self.connection.close(200, "walked".into()).await;
        Ok(())
    }

    /// Waits until the queue shows at least `returned` messages ready: the nacks sent so far
    /// are applied. Gives up after [`APPLY_WAIT`] (messages may expire meanwhile), since
    /// nothing is lost then, at worst reordered.
    async fn applied(&self, returned: usize) -> Result<()> {
        let deadline = tokio::time::Instant::now() + APPLY_WAIT;
        while (ready(&self.channel, self.queue).await? as usize) < returned
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

/// Messages ready in `queue` (a passive declare: a missing queue is reported, never created
/// with the wrong arguments).
async fn ready(channel: &Channel, queue: Queue) -> Result<u32> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    Ok(channel
        .queue_declare(queue.name().into(), options, FieldTable::default())
        .await
        .map_err(|source| Error::NoQueue(queue, source))?
        .message_count())
}
