//! Every metric the relay exports, described once: `# HELP` text for each, and every label-less
//! metric present (at zero) from start-up, so dashboards and alert rules see zeros rather than
//! gaps. A test keeps this list and the code in step: a metric recorded anywhere in the
//! workspace must be described here.
//!
//! Labelled series are created at zero too, by the code that records them: each service, as it
//! starts, registers one series per label value it knows up front (its configured sources,
//! handlers and destinations, and the closed sets of outcomes and reasons, kept as const slices
//! beside the code that records them). The end-to-end suite (`tests/tests/metrics.rs`) checks
//! that every labelled metric here has its series from start-up.

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (seconds).
    Histogram,
}

/// One metric: name, kind, whether it has labels, help text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Whether every series carries labels (then the service that records it creates its
    /// series at start-up, one per label value it knows).
    pub labelled: bool,
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, labelled: bool, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        labelled,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// The catalogue.
pub const METRICS: &[Metric] = &[
    // Ingress.
    m(
        "relay_ingress_requests_total",
        Counter,
        true,
        "Inbound requests by source and outcome.",
    ),
    m(
        "relay_ingress_request_seconds",
        Histogram,
        true,
        "Time to answer an inbound request, by source.",
    ),
    m(
        "relay_ingress_events_total",
        Counter,
        true,
        "Events published by ingress, by source.",
    ),
    m(
        "relay_ingress_duplicates_total",
        Counter,
        true,
        "Callbacks already seen (not published again), by source.",
    ),
    m(
        "relay_ingress_callbacks_rejected_total",
        Counter,
        true,
        "Callbacks of a batch refused one by one, by source and reason.",
    ),
    m(
        "relay_ingress_callbacks_refused_total",
        Counter,
        true,
        "Web callbacks refused by the guard, by reason.",
    ),
    m(
        "relay_ingress_acrobits_password_checks_total",
        Counter,
        true,
        "Password verifications run (argon2 or salted SHA-1), by scheme.",
    ),
    m(
        "relay_ingress_connections",
        Gauge,
        false,
        "Open public connections.",
    ),
    m(
        "relay_ingress_connection_errors_total",
        Counter,
        true,
        "Public connections cut (header or body timeout, ...), by kind.",
    ),
    m(
        "relay_ingress_accept_errors_total",
        Counter,
        false,
        "Errors accepting public connections.",
    ),
    // Broker.
    m(
        "relay_amqp_publish_total",
        Counter,
        true,
        "Confirmed publishes by outcome.",
    ),
    m(
        "relay_amqp_publish_seconds",
        Histogram,
        false,
        "Time from publish to broker confirm.",
    ),
    m(
        "relay_amqp_publish_retries_total",
        Counter,
        false,
        "Publishes retried through broker trouble while a message was held.",
    ),
    m(
        "relay_amqp_publisher_reopens_total",
        Counter,
        false,
        "Publisher channels reopened after publishes kept failing.",
    ),
    m(
        "relay_parked_index_copies_total",
        Counter,
        true,
        "Copies read from relay.parked.index by the console's parked indexer, by outcome.",
    ),
    m(
        "relay_queue_messages",
        Gauge,
        true,
        "Ready messages per queue (read by the worker).",
    ),
    m(
        "relay_dead_letters_total",
        Counter,
        true,
        "Messages the relay parked, by lot and reason.",
    ),
    // Redis.
    m(
        "relay_redis_breaker_open",
        Gauge,
        false,
        "1 while Redis is being skipped (breaker open, or never connected).",
    ),
    m(
        "relay_redis_skipped_total",
        Counter,
        true,
        "Redis operations skipped while the breaker was open, by operation.",
    ),
    m(
        "relay_redis_errors_total",
        Counter,
        true,
        "Redis operations that failed, by operation.",
    ),
    // Worker and handlers.
    m(
        "relay_worker_events_total",
        Counter,
        true,
        "Events handled, by handler and outcome.",
    ),
    m(
        "relay_call_log_stale_events_total",
        Counter,
        true,
        "Call events older than their session's state (changed nothing), by source.",
    ),
    m(
        "relay_call_log_ignored_events_total",
        Counter,
        false,
        "Call events that say nothing about a session.",
    ),
    m(
        "relay_call_log_messages_undeliverable_total",
        Counter,
        false,
        "Helpdesk messages given up on.",
    ),
    m(
        "relay_call_log_ledger_conflicts_total",
        Counter,
        false,
        "Concurrent updates of one call session that had to be retried.",
    ),
    m(
        "relay_web_callback_originations_total",
        Counter,
        true,
        "Web callback originations by source (the provider) and outcome (queued, placed, failed).",
    ),
    m(
        "relay_web_callback_missed_calls_total",
        Counter,
        true,
        "Missed calls called back or skipped.",
    ),
    m(
        "relay_min_balance_alert_notices_total",
        Counter,
        true,
        "Min-balance alert notifications, by kind.",
    ),
    m(
        "relay_failure_alerts_total",
        Counter,
        true,
        "Failure alerts raised or resolved, by alertname (delivery failed, queue depth, breaker open).",
    ),
    m(
        "relay_failure_alerts_suppressed_total",
        Counter,
        true,
        "Failed deliveries of the failure alerts' own destinations: logged and counted, never alerted about.",
    ),
    m(
        "relay_failure_alert_ledger_conflicts_total",
        Counter,
        false,
        "Concurrent updates of one failure-alert record that had to be retried.",
    ),
    m(
        "relay_min_balance_alert_ledger_conflicts_total",
        Counter,
        false,
        "Concurrent updates of one account's alert state that had to be retried.",
    ),
    // Delivery.
    m(
        "relay_delivery_attempts_total",
        Counter,
        true,
        "Delivery attempts by destination and outcome.",
    ),
    m(
        "relay_delivery_latency_seconds",
        Histogram,
        true,
        "Time of one delivery attempt, by destination.",
    ),
    m(
        "relay_delivery_deferred_total",
        Counter,
        true,
        "Jobs put back in a delay tier without a request, by destination and reason.",
    ),
    m(
        "relay_delivery_skipped_total",
        Counter,
        true,
        "Jobs not sent because already delivered, by destination.",
    ),
    m(
        "relay_delivery_outcomes_total",
        Counter,
        true,
        "Delivery outcome events published, by outcome.",
    ),
    m(
        "relay_delivery_destination_gone_total",
        Counter,
        true,
        "410 answers, by destination.",
    ),
    m(
        "relay_destination_breaker",
        Gauge,
        true,
        "1 for a destination's breaker state (closed, open, half_open).",
    ),
    m(
        "relay_destination_disabled",
        Gauge,
        true,
        "1 while a destination is disabled (after a 410, or by hand).",
    ),
    m(
        "relay_destination_secret_reloads_total",
        Counter,
        true,
        "Secret files re-read, by destination and result.",
    ),
    m(
        "relay_destination_secret_loaded_timestamp_seconds",
        Gauge,
        true,
        "When a destination's secrets in use were loaded.",
    ),
];

/// Describes every metric to the installed recorder and creates the label-less ones at 0 (a
/// gauge something set already keeps its value; a histogram shows no observations).
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            Counter => {
                metrics::describe_counter!(metric.name, metric.help);
                if !metric.labelled {
                    metrics::counter!(metric.name).increment(0);
                }
            }
            Gauge => {
                metrics::describe_gauge!(metric.name, metric.help);
                if !metric.labelled {
                    metrics::gauge!(metric.name).increment(0.0);
                }
            }
            Histogram => {
                metrics::describe_histogram!(metric.name, metric.help);
                if !metric.labelled {
                    // Registering the handle is what creates the series (count 0).
                    let _ = metrics::histogram!(metric.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Every `relay_…` name recorded with `counter!`, `gauge!` or `histogram!` in `dir`, with
    /// whether each call gives labels (a comma after the name) or not.
    fn recorded(dir: &Path, found: &mut BTreeMap<String, BTreeSet<bool>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                recorded(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                    for (at, _) in text.match_indices(macro_name) {
                        let rest = text[at + macro_name.len()..].trim_start();
                        let Some(after_quote) = rest.strip_prefix('"') else {
                            continue;
                        };
                        let Some((name, after_name)) = after_quote.split_once('"') else {
                            continue;
                        };
                        if name.starts_with("relay_") {
                            let labelled = after_name.trim_start().starts_with(',');
                            found.entry(name.to_owned()).or_default().insert(labelled);
                        }
                    }
                }
            }
        }
    }

    fn recorded_in_the_workspace() -> BTreeMap<String, BTreeSet<bool>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut found = BTreeMap::new();
        for dir in ["services", "shared"] {
            recorded(&root.join(dir), &mut found);
        }
        assert!(found.len() > 20, "the scan found the metrics: {found:?}");
        found
    }

    #[test]
    fn every_metric_recorded_in_the_workspace_is_described_once() {
        let found: BTreeSet<String> = recorded_in_the_workspace().into_keys().collect();
        let described: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
        assert_eq!(described.len(), METRICS.len(), "each described once");
        let missing: Vec<_> = found.difference(&described).collect();
        assert!(
            missing.is_empty(),
            "recorded but not described in relay-telemetry's catalog.rs: {missing:?}"
        );
        let stale: Vec<_> = described.difference(&found).collect();
        assert!(stale.is_empty(), "described but never recorded: {stale:?}");
        for metric in METRICS {
            assert!(
                !metric.help.is_empty() && metric.help.ends_with('.'),
                "{}",
                metric.name
            );
        }
    }

    /// The flag decides who creates a metric's series at start-up ([`describe`] or the code
    /// that records it): a wrong one leaves a gap.
    #[test]
    fn the_labelled_flag_says_how_each_metric_is_recorded() {
        let found = recorded_in_the_workspace();
        for metric in METRICS {
            let Some(ways) = found.get(metric.name) else {
                continue;
            };
            assert_eq!(
                ways,
                &BTreeSet::from([metric.labelled]),
                "{} is recorded with labels {ways:?} but catalogued labelled = {}",
                metric.name,
                metric.labelled
            );
        }
    }
}
