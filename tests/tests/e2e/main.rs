//! The end-to-end suite: every service in-process against the real RabbitMQ and Redis.
//! One binary (one link) with a module per area; every test has its own vhost and key prefix.

#![allow(clippy::unwrap_used)]

mod acrobits;
mod broker;
mod call_log;
mod delivery;
mod hooks;
mod ingress;
mod plivo;
mod resilience;
mod topology;
