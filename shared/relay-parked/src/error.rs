//! What can go wrong with parked messages.

use crate::Queue;

/// A walk, a replay or a purge could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection to RabbitMQ (check `amqp.url`).
    #[error("cannot connect to RabbitMQ (check amqp.url)")]
    Connect(#[source] lapin::Error),
    /// The queue is not declared on the broker.
    #[error("{0} does not exist (declare the topology: `relayctl topology`)")]
    NoQueue(Queue, #[source] lapin::Error),
    /// An AMQP operation on a queue failed.
    #[error("cannot {what} {queue}")]
    Amqp {
        /// What was being done (`read`, `remove a message from`, …).
        what: &'static str,
        /// The queue.
        queue: Queue,
        /// What the broker or the connection said.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused a replayed copy: the replay stopped there, and the message and those
    /// after it stay parked.
    #[error(
        "the broker refused message {id} after {replayed} replayed; it and the rest stay in {queue}"
    )]
    Refused {
        /// The refused message's id (`-` without one).
        id: String,
        /// Messages replayed before it.
        replayed: usize,
        /// The queue they stay in.
        queue: Queue,
        /// Why.
        #[source]
        source: relay_amqp::PublishError,
    },
    /// Consuming `relay.parked.index` failed (the channel or the connection is gone).
    #[error("cannot consume relay.parked.index")]
    Consume(#[source] lapin::Error),
    /// The parked index in Redis could not be read or written.
    #[error("the parked index is unavailable")]
    Index(#[from] relay_store::StoreError),
}

impl Error {
    /// Maps a lapin error to [`Error::Amqp`] (for `map_err`).
    pub(crate) fn amqp(what: &'static str, queue: Queue) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Error::Amqp {
            what,
            queue,
            source,
        }
    }
}

/// The result of a walk, a replay or a purge.
pub type Result<T, E = Error> = std::result::Result<T, E>;
