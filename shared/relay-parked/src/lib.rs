//! What the relay parked: the messages in `relay.dead.deliveries` (jobs delivery gave up on),
//! `relay.dead.events` (events a handler could not process) and `relay.unrouted` (events no
//! handler takes), and what an operator does with them. relayctl's `dead` commands and the
//! console share it.
//!
//! * [`Queue`]: the three queues; [`Filter`]: which of their messages (pure).
//! * [`Facts`]: what is read of a parked message, from its headers and body (pure); [`show`]:
//!   the whole of it as text and JSON.
//! * [`Scan`]: the walk over a queue, which leaves what it does not take where it was, in
//!   order.
//! * [`replay()`]: sends matching messages back (confirmed, then acked, at a [`Rate`]);
//!   [`purge::select`] and [`Selection::purge`]: removes them.
//! * [`index`]: the parked index in Redis, which pages 100,000 parked messages without
//!   walking a queue, filled by its [`Indexer`] from `relay.parked.index`; a replay or purge
//!   removes the entries of what it acked.
//!
//! Long operations report how far they got through [`Progress`].

mod error;
mod filter;
pub mod index;
mod message;
pub mod purge;
mod queue;
mod replay;
mod scan;
pub mod show;

pub use error::{Error, Result};
pub use filter::{Filter, glob, parse_since, topic_matches};
pub use index::{Cursor, Index, Indexer, Page};
pub use message::{Facts, parked_at, reason};
pub use purge::{Purged, Selection};
pub use queue::{Queue, UnknownQueue};
pub use replay::{Rate, Replay, Replayed, Route, publish, reaches_a_handler, replay, route};
pub use scan::{Parked, Scan};

/// How far a long operation (a walk, a replay, a purge) has got. Every method has an empty
/// default: implement those you show. `()` shows nothing.
pub trait Progress: Send {
    /// The walk has taken `scanned` of the `total` messages that were ready when it began.
    fn walked(&mut self, scanned: u32, total: u32) {
        let _ = (scanned, total);
    }

    /// The message of `facts` was dealt with (replayed, purged): it is gone from its queue.
    fn done(&mut self, facts: &Facts) {
        let _ = facts;
    }

    /// The message of `facts` matched but is left where it is, for the reason `why`.
    fn skipped(&mut self, facts: &Facts, why: &str) {
        let _ = (facts, why);
    }
}

/// Shows nothing.
impl Progress for () {}
