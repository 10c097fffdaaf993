//! All of the relay's AMQP discipline, in one place.
//!
//! * [`Broker`]: one long-lived connection per service, supervised: it reconnects with backoff
//!   after the broker restarts, re-declares the [`topology`] and reopens a publisher channel in
//!   confirm mode. While it is down, publishing fails fast with [`PublishError::Unavailable`].
//! * [`Broker::publish`]: persistent, `mandatory`, and awaited to the broker's confirm; many
//!   publishes may be in flight at once, each caller awaiting its own. A nack, a returned
//!   (unroutable) message or a confirm timeout is an error, never a silent success.
//! * [`consumer::run`]: `basic_qos` before `basic_consume`, manual acks after the handler's side
//!   effect is durable, drain on shutdown.
//! * [`trace`]: W3C trace context in AMQP headers, both ways.

mod broker;
pub mod consumer;
pub mod depth;
pub mod events;
pub mod headers;
pub mod jobs;
mod publish;
pub mod publisher;
pub mod topology;
pub mod trace;
pub mod vhost;

pub use broker::{Broker, BrokerSettings};
pub use consumer::{Consumer, Disposition, Handler};
pub use lapin::{
    BasicProperties,
    message::Delivery,
    types::{AMQPValue, FieldTable},
};
pub use publish::{PUBLISH_OUTCOMES, Publish, PublishError, register_dead_letters};
pub use topology::{DeclareError, Topology};
