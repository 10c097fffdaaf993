//! relayctl's way to the broker: the same topology and publishers as the services.

use std::time::Duration;

use anyhow::Context;
use relay_amqp::{Broker, BrokerSettings};
use relay_core::config::Config;
use tokio_util::sync::CancellationToken;

/// The topology the relay declares for this configuration: the common part, the enabled
/// handlers' queues and their timers.
pub(crate) fn topology(config: &Config) -> relay_amqp::Topology {
    relay_worker::handlers::topology(config)
}

/// A plain connection to the configured broker.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<lapin::Connection> {
    lapin::Connection::connect(&config.amqp.url, lapin::ConnectionProperties::default())
        .await
        .context("cannot connect to RabbitMQ (check amqp.url)")
}

/// Declares the topology and reports what went wrong, if anything.
pub(crate) async fn declare(config: &Config) -> anyhow::Result<()> {
    let connection = connect(config).await?;
    topology(config).declare(&connection).await?;
    let _ = connection.close(200, "declared".into()).await;
    Ok(())
}

/// A connected [`Broker`] (confirmed publishes, the relay's topology declared), closed when
/// dropped.
pub(crate) struct Connected {
    pub(crate) broker: Broker,
    stop: CancellationToken,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Connects a [`Broker`] for one command.
pub(crate) async fn broker(config: &Config) -> anyhow::Result<Connected> {
    // Declared first, so that a topology problem is reported as such rather than as a broker
    // that never connects.
    declare(config).await?;
    let stop = CancellationToken::new();
    let mut settings = BrokerSettings::from_config(config, "relayctl");
    settings.topology = topology(config);
    let broker = Broker::start(settings, &relay_telemetry::Readiness::new(), stop.clone());
    anyhow::ensure!(
        broker.wait_connected(Duration::from_secs(10)).await,
        "cannot reach RabbitMQ (check amqp.url)"
    );
    Ok(Connected { broker, stop })
}
