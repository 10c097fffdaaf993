//! The publisher channel, and how it heals.
//!
//! On a cluster, a node loss can leave a channel unable to publish while the connection stays
//! up: RabbitMQ 3.10 pins a channel's first publish to a quorum queue to the leader it last
//! knew, so a channel opened before the election settled gets every publish nacked or
//! unconfirmed until that node returns (docs/ARCHITECTURE.md, "RabbitMQ topology"). After
//! [`REOPEN_AFTER`] failed publishes in a row the publisher reports not ready and reopens its
//! channel, with backoff, until a probe publish on the new channel is confirmed; only then is
//! the new channel used and readiness green again. A nack of a full queue heals the same way
//! and costs a channel, which is cheap.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use backon::BackoffBuilder;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use relay_telemetry::readiness::Check;

use crate::PublishError;

/// Failed publishes in a row (nack, confirm timeout, channel error) that make the publisher
/// reopen its channel.
pub const REOPEN_AFTER: u32 = 3;

/// The queue probe publishes go to (a quorum queue holding at most one message).
pub const PROBE_QUEUE: &str = "relay.probe";

/// The publisher channel of one connection.
pub(crate) struct Publisher {
    channel: RwLock<Channel>,
    failures: AtomicU32,
    reopening: AtomicBool,
    healthy: Check,
    confirm_timeout: Duration,
}

impl Publisher {
    /// A healthy publisher on `channel` (already in confirm mode).
    pub(crate) fn new(channel: Channel, healthy: Check, confirm_timeout: Duration) -> Self {
        healthy.set(true);
        Self {
            channel: RwLock::new(channel),
            failures: AtomicU32::new(0),
            reopening: AtomicBool::new(false),
            healthy,
            confirm_timeout,
        }
    }

    /// The channel to publish on now.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.read().expect("publisher lock").clone()
    }

    /// Whether the channel is still open (the connection's watcher reconnects otherwise).
    pub(crate) fn is_open(&self) -> bool {
        self.reopening.load(Ordering::Acquire) || self.channel().status().connected()
    }

    /// Counts a publish's result; the [`REOPEN_AFTER`]th failure in a row starts a reopen.
    pub(crate) fn record(
        self: &Arc<Self>,
        result: &Result<(), PublishError>,
        connection: &Arc<Connection>,
    ) {
        match result {
            Ok(()) => self.failures.store(0, Ordering::Release),
            // Unroutable is the message's fault, and unavailable is the connection's (the
            // supervisor handles that).
            Err(PublishError::Returned(_) | PublishError::Unavailable) => {}
            Err(PublishError::Nacked | PublishError::Timeout(_) | PublishError::Amqp(_)) => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= REOPEN_AFTER && !self.reopening.swap(true, Ordering::AcqRel) {
                    self.healthy.set(false);
                    tracing::warn!(
                        failures,
                        "publishes keep failing; reopening the publisher channel"
                    );
                    metrics::counter!("relay_amqp_publisher_reopens_total").increment(1);
                    tokio::spawn(reopen(self.clone(), connection.clone()));
                }
            }
        }
    }
}

/// Opens channels until one confirms a probe publish, then puts it in service.
async fn reopen(publisher: Arc<Publisher>, connection: Arc<Connection>) {
    let mut pauses = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    while connection.status().connected() {
        match probe(&connection, publisher.confirm_timeout).await {
            Ok(channel) => {
                let old = std::mem::replace(
                    &mut *publisher.channel.write().expect("publisher lock"),
                    channel,
                );
                let _ = old.close(200, "replaced".into()).await;
                publisher.failures.store(0, Ordering::Release);
                publisher.reopening.store(false, Ordering::Release);
                publisher.healthy.set(true);
                tracing::info!("publisher channel reopened; a probe publish was confirmed");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "probe publish on a new channel failed; trying again");
                let pause = pauses.next().unwrap_or(Duration::from_secs(5));
                tokio::time::sleep(pause).await;
            }
        }
    }
    // The connection is gone: the supervisor builds a new one with a new publisher.
}

/// A new confirm-mode channel, returned once it has had a probe publish confirmed.
async fn probe(connection: &Connection, timeout: Duration) -> Result<Channel, PublishError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let confirm = tokio::time::timeout(timeout, async {
        channel
            .basic_publish(
                "".into(),
                PROBE_QUEUE.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                b"probe",
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await
    })
    .await
    .map_err(|_| PublishError::Timeout(timeout))??;
    match confirm {
        Confirmation::Ack(None) => Ok(channel),
        Confirmation::Ack(Some(returned)) => {
            let _ = channel.close(200, "probe returned".into()).await;
            Err(PublishError::Returned(returned.reply_text.to_string()))
        }
        _ => {
            let _ = channel.close(200, "probe refused".into()).await;
            Err(PublishError::Nacked)
        }
    }
}
