//! The registry: every handler the worker has, built from its configuration section. A handler
//! whose section is absent is not built, and its queue is not declared.

pub mod alerting;
pub mod call_log;
pub mod failure_alert;
/// The min-balance alert handler under its former module name.
pub use alerting as min_balance;
pub mod web_callback;

use std::sync::Arc;
use std::time::Duration;

use relay_core::config::Config;
use relay_store::Store;
use relay_telemetry::admin::StartError;

use crate::handler::Handler;

/// The enabled handlers.
pub fn build(config: &Config, store: &Store) -> Result<Vec<Arc<dyn Handler>>, StartError> {
    let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
    if let Some(section) = &config.worker.min_balance_alert {
        handlers.push(Arc::new(alerting::MinBalanceAlert::new(
            section,
            store.clone(),
        )));
    }
    if let Some(section) = &config.worker.call_log {
        handlers.push(Arc::new(call_log::CallLog::new(section, store.clone())?));
    }
    if let Some(section) = &config.worker.web_callback {
        handlers.push(Arc::new(web_callback::WebCallback::new(
            section,
            &config.ingress.public_base_url,
            config.ingress.acrobits.as_ref(),
            store.clone(),
        )));
    }
    if let Some(section) = &config.worker.failure_alert {
        handlers.push(Arc::new(failure_alert::FailureAlert::new(
            section,
            store.clone(),
        )));
    }
    Ok(handlers)
}

/// The timer queues the enabled handlers use: (handler, delay), one TTL queue each.
pub fn timer_queues(config: &Config) -> Vec<(&'static str, Duration)> {
    let mut timers = Vec::new();
    if let Some(section) = &config.worker.min_balance_alert {
        for delay in alerting::MinBalanceAlert::timer_delays(section) {
            timers.push((alerting::NAME, delay));
        }
    }
    if let Some(section) = &config.worker.call_log {
        timers.push((call_log::NAME, section.end_after));
        timers.push((call_log::NAME, section.missed_grace));
    }
    if let Some(section) = &config.worker.failure_alert {
        for delay in failure_alert::FailureAlert::timer_delays(section) {
            timers.push((failure_alert::NAME, delay));
        }
    }
    timers
}

/// The whole topology the worker declares: the common one, its handlers' queues and their
/// timer queues.
pub fn topology(config: &Config) -> relay_amqp::Topology {
    let mut topology = relay_amqp::Topology::from_config(config);
    topology.timers = timer_queues(config);
    topology
}
