//! The end-to-end suite: every service in-process against the real RabbitMQ and Redis.
//! One binary (one link) with a module per area; every test has its own vhost and key prefix.

#![allow(clippy::unwrap_used)]

mod acrobits;
mod acrobits_guard;
mod alerting;
mod broker;
mod call_log;
mod console;
mod console_pages;
mod dead_letters;
mod delivery;
mod destinations;
mod failure_alert;
mod history;
mod hooks;
mod http_layer;
mod ingress;
mod isolation;
mod outcomes;
mod plivo;
mod raw;
mod resilience;
mod shutdown;
mod slow_clients;
mod topology;
mod traces;
mod web_callback;
