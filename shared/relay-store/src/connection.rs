//! The connection: made in the background, kept by redis-rs's connection manager, and probed
//! while the breaker is open.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use relay_telemetry::readiness::Check;
use tokio_util::sync::CancellationToken;

use crate::Inner;
use crate::breaker::Input;

/// Makes the first connection, then probes Redis whenever the breaker is open.
pub(crate) async fn connect_loop(
    inner: Arc<Inner>,
    url: String,
    check: Check,
    stop: CancellationToken,
) {
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(error) => {
            // The URL was validated at start-up; this is a scheme the client cannot use.
            tracing::error!(%error, "redis URL unusable; running without Redis");
            return;
        }
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(inner.op_timeout.max(Duration::from_millis(50))))
        .set_max_delay(Duration::from_secs(2));
    let mut pause = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            r = ConnectionManager::new_with_config(client.clone(), config.clone()) => r,
        };
        match attempt {
            Ok(manager) => {
                tracing::info!("connected to Redis");
                // The breaker first: whoever waits for the connection (`wait_connected`) may
                // use the store at once, and must not find the breaker still open.
                inner.breaker.record(Input::Answered);
                inner.connection.send_replace(Some(manager.clone()));
                check.set(true);
                // The manager reconnects by itself from here on; the probe closes the breaker
                // once Redis answers again.
                probe(&inner, manager, &stop).await;
                return;
            }
            Err(error) => {
                if !warned {
                    tracing::warn!(%error, "cannot connect to Redis; running without dedup until it is reachable");
                    warned = true;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// While the breaker is open, pings Redis every `probe_interval` and closes it on an answer.
async fn probe(inner: &Inner, mut manager: ConnectionManager, stop: &CancellationToken) {
    let mut tick = tokio::time::interval(inner.probe_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !inner.breaker.is_open() {
            continue;
        }
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut manager);
        if let Ok(Ok(_)) = tokio::time::timeout(inner.op_timeout, ping).await {
            inner.breaker.record(Input::Answered);
        }
    }
}
