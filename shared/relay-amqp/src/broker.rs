//! The supervised connection: connect, declare, open the publisher, watch, reconnect.

use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use futures_util::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties, options::ConfirmSelectOptions};
use relay_telemetry::readiness::{Check, Readiness};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::publisher::Publisher;
use crate::{PublishError, Topology};

/// How to reach the broker and what to declare there.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// AMQP URI (credentials included; never logged).
    pub url: String,
    /// Name shown in the broker's connection list, e.g. `relay-ingress`.
    pub connection_name: String,
    /// Budget of one publish, confirm included.
    pub confirm_timeout: Duration,
    /// Largest pause between reconnection attempts.
    pub reconnect_max_delay: Duration,
    /// Declared after every (re)connect.
    pub topology: Topology,
}

impl BrokerSettings {
    /// Settings from the configuration's `[amqp]` section and enabled handlers;
    /// `connection_name` labels the connection in the broker's management views.
    pub fn from_config(config: &relay_core::config::Config, connection_name: &str) -> Self {
        let amqp = &config.amqp;
        Self {
            url: amqp.url.clone(),
            connection_name: connection_name.to_owned(),
            confirm_timeout: amqp.confirm_timeout,
            reconnect_max_delay: amqp.reconnect_max_delay,
            topology: Topology::from_config(config),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) connection: Arc<Connection>,
    pub(crate) publisher: Arc<Publisher>,
}

struct Inner {
    settings: BrokerSettings,
    /// Host and port of the broker (`server.address`, `server.port` of publish spans).
    server: Option<(String, u16)>,
    session: watch::Sender<Option<Session>>,
    /// Readiness `broker`: connected, topology declared.
    connected: Check,
    /// Readiness `broker-publish`: publishes are being confirmed.
    publishing: Check,
    /// Readiness `broker-alarm`: the broker is not blocking publishers (memory or disk alarm).
    unblocked: Check,
}

/// The service's connection to RabbitMQ. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// Starts the connection supervisor and returns at once: the service starts (and reports
    /// not ready) even while the broker is down. Readiness follows what the service can do:
    /// `broker` the connection (topology declared included), `broker-publish` whether publishes
    /// are confirmed (a channel that keeps failing is reopened), `broker-alarm` whether the
    /// broker blocks publishers for a memory or disk alarm. `stop` closes the connection.
    pub fn start(settings: BrokerSettings, readiness: &Readiness, stop: CancellationToken) -> Self {
        let (session, _) = watch::channel(None);
        // The port defaults by scheme; `url` knows none for AMQP.
        let server = url::Url::parse(&settings.url).ok().and_then(|url| {
            let port = url
                .port()
                .unwrap_or(if url.scheme() == "amqps" { 5671 } else { 5672 });
            Some((url.host_str()?.to_owned(), port))
        });
        let inner = Arc::new(Inner {
            settings,
            server,
            session,
            connected: readiness.check("broker"),
            publishing: readiness.check("broker-publish"),
            unblocked: readiness.check("broker-alarm"),
        });
        tokio::spawn(supervise(inner.clone(), stop));
        crate::publish::register_metrics();
        Self { inner }
    }

    /// Waits until connected (or `timeout`); true when connected.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.session.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner.session.borrow().is_some()
    }

    /// A new channel on the current connection (for probes that may close their channel,
    /// such as a passive declare of a queue that does not exist).
    pub async fn open_channel(&self) -> Result<Channel, PublishError> {
        let session = self
            .inner
            .session
            .borrow()
            .clone()
            .ok_or(PublishError::Unavailable)?;
        Ok(session.connection.create_channel().await?)
    }

    pub(crate) fn sessions(&self) -> watch::Receiver<Option<Session>> {
        self.inner.session.subscribe()
    }

    /// The live session, if connected.
    pub(crate) fn session(&self) -> Option<Session> {
        self.inner.session.borrow().clone()
    }

    /// Host and port of the broker, from its URL.
    pub(crate) fn server(&self) -> Option<(&str, u16)> {
        let (host, port) = self.inner.server.as_ref()?;
        Some((host.as_str(), *port))
    }

    /// Budget of one publish, confirm included.
    pub(crate) fn confirm_timeout(&self) -> Duration {
        self.inner.settings.confirm_timeout
    }
}

async fn supervise(inner: Arc<Inner>, stop: CancellationToken) {
    let settings = &inner.settings;
    let mut backoff = backoff(settings.reconnect_max_delay);
    loop {
        if stop.is_cancelled() {
            return;
        }
        match connect(settings, &inner.publishing).await {
            Ok(session) => {
                backoff = self::backoff(settings.reconnect_max_delay);
                tracing::info!(connection = %settings.connection_name, "connected to RabbitMQ, topology declared");
                let connection = session.connection.clone();
                let publisher = session.publisher.clone();
                inner.session.send_replace(Some(session));
                inner.unblocked.set(true);
                inner.connected.set(true);
                let lost = watch_connection(&connection, &publisher, &inner.unblocked, &stop).await;
                inner.connected.set(false);
                inner.session.send_replace(None);
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    connection.close(200, "relay closing".into()),
                )
                .await;
                match lost {
                    Some(reason) => {
                        tracing::warn!(%reason, "lost the RabbitMQ connection, reconnecting")
                    }
                    None => return,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot connect to RabbitMQ, retrying");
            }
        }
        let pause = backoff.next().unwrap_or(settings.reconnect_max_delay);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

fn backoff(max: Duration) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Connects, declares the topology and opens the publisher channel.
async fn connect(settings: &BrokerSettings, publishing: &Check) -> Result<Session, String> {
    let properties = ConnectionProperties::default()
        .with_connection_name(settings.connection_name.clone().into());
    let connection = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&settings.url, properties),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    settings
        .topology
        .declare(&connection)
        .await
        .map_err(|e| e.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Session {
        connection: Arc::new(connection),
        publisher: Arc::new(Publisher::new(
            channel,
            publishing.clone(),
            settings.confirm_timeout,
        )),
    })
}

/// Returns when the connection or the publisher channel is lost (`Some(reason)`), or on stop
/// (`None`).
async fn watch_connection(
    connection: &Connection,
    publisher: &Publisher,
    unblocked: &Check,
    stop: &CancellationToken,
) -> Option<String> {
    let mut events = connection.events_listener();
    // Events report most failures at once; the status poll catches a publisher channel that the
    // broker closed (e.g. after a protocol error) while the connection stayed up.
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            event = events.next() => match event {
                Some(lapin::Event::Error(error)) => return Some(error.to_string()),
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "the broker blocks publishing (resource alarm); not ready until it lifts");
                    unblocked.set(false);
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    tracing::info!("the broker's resource alarm lifted");
                    unblocked.set(true);
                }
                Some(_) => {}
                None => return Some("connection event stream ended".to_owned()),
            },
            _ = poll.tick() => {
                if !connection.status().connected() {
                    return Some("connection closed".to_owned());
                }
                if !publisher.is_open() {
                    return Some("publisher channel closed".to_owned());
                }
            }
        }
    }
}
