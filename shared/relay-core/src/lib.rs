//! Relay's domain: the types every service agrees on.
//!
//! Nothing here does I/O. The envelope that travels on `relay.events` ([`event::CloudEvent`]), the
//! jobs that travel on `relay.deliveries` ([`job::DeliveryJob`]), the deterministic ids that make
//! retries collapse downstream ([`ids`]), the broker names of the topology ([`routing`]) and the
//! typed configuration shared by all services ([`config`]).

pub mod backoff;
pub mod config;
pub mod duration;
pub mod event;
pub mod ids;
pub mod job;
pub mod outcome;
pub mod phone;
pub mod routing;

pub use event::CloudEvent;
pub use job::DeliveryJob;
