//! Keeps each destination's live state current while delivery runs: secrets read again from
//! their files when these change (every `delivery.secret_check_interval`, and at once on
//! SIGHUP), and the destinations disabled after a 410 re-read from Redis (so that one
//! process's 410 reaches the others, and `relayctl destination enable` reaches them all).
//!
//! Nothing here holds up a delivery: attempts read the current state, and a reload swaps it
//! for the next attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use relay_store::Store;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::destination::Destination;
use crate::secrets::Reload;

/// The `result` labels of `relay_destination_secret_reloads_total`.
const RELOADED: &str = "reloaded";
const FAILED: &str = "failed";

/// Creates the series of `relay_destination_secret_reloads_total` at zero for `destination`,
/// when its secrets come from a file (the only ones read again).
pub(crate) fn register_metrics(destination: &Destination) {
    if destination.secrets.file().is_some() {
        for result in [RELOADED, FAILED] {
            metrics::counter!("relay_destination_secret_reloads_total", "destination" => destination.name.clone(), "result" => result)
                .increment(0);
        }
    }
}

/// Watches `destinations` until `stop`.
pub(crate) async fn run(
    destinations: Arc<HashMap<String, Destination>>,
    store: Store,
    interval: Duration,
    stop: CancellationToken,
) {
    for destination in destinations.values() {
        export_loaded_at(destination);
    }
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; secret files are still checked every {interval:?}");
            None
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: HashMap<String, String> = HashMap::new();
    loop {
        let on_signal = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let reloaded = reload_secrets(&destinations, &mut failures);
        if on_signal {
            tracing::info!(reloaded, "SIGHUP: secret files read again");
        }
        refresh_disabled(&destinations, &store).await;
    }
}

/// Reads every secret file again; returns how many destinations got new secrets. A failure is
/// logged when it first appears (or changes), not on every check.
fn reload_secrets(
    destinations: &HashMap<String, Destination>,
    failures: &mut HashMap<String, String>,
) -> usize {
    let mut reloaded = 0;
    for destination in destinations.values() {
        if destination.secrets.file().is_none() {
            continue;
        }
        let name = destination.name.as_str();
        match destination.secrets.reload() {
            Reload::Unchanged => {
                failures.remove(name);
            }
            Reload::Reloaded(count) => {
                failures.remove(name);
                reloaded += 1;
                export_loaded_at(destination);
                metrics::counter!("relay_destination_secret_reloads_total", "destination" => name.to_owned(), "result" => RELOADED).increment(1);
                tracing::info!(
                    destination = name,
                    active = count,
                    "secrets reloaded from their file; the next requests use them"
                );
            }
            Reload::Failed(message) => {
                metrics::counter!("relay_destination_secret_reloads_total", "destination" => name.to_owned(), "result" => FAILED).increment(1);
                if failures.get(name) != Some(&message) {
                    tracing::warn!(
                        destination = name,
                        "secret file not usable, keeping the secrets in use: {message}"
                    );
                    failures.insert(name.to_owned(), message);
                }
            }
        }
    }
    reloaded
}

/// Applies the disabled set in Redis; keeps the local state when Redis cannot say.
async fn refresh_disabled(destinations: &HashMap<String, Destination>, store: &Store) {
    let disabled = match store.disabled_destinations().await {
        Ok(disabled) => disabled,
        Err(error) => {
            tracing::debug!(%error, "disabled destinations not refreshed");
            return;
        }
    };
    for destination in destinations.values() {
        let name = destination.name.as_str();
        let now_disabled = disabled.contains_key(name);
        if destination.set_disabled(now_disabled) {
            if now_disabled {
                tracing::warn!(
                    destination = name,
                    reason = %disabled[name].reason,
                    "destination disabled (by another delivery process or an operator); its jobs are parked"
                );
            } else {
                tracing::info!(
                    destination = name,
                    "destination enabled again; its jobs are sent"
                );
            }
        }
    }
}

/// `relay_destination_secret_loaded_timestamp_seconds`: when the secrets in use were loaded,
/// so an operator (and the console) can see their age without seeing them.
fn export_loaded_at(destination: &Destination) {
    let at = destination
        .secrets
        .current()
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    metrics::gauge!("relay_destination_secret_loaded_timestamp_seconds", "destination" => destination.name.clone())
        .set(at);
}
