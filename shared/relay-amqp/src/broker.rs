//! The supervised connection and the confirmed publisher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::FieldTable,
};
use relay_telemetry::readiness::{Check, Readiness};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Topology, headers, trace};

/// How long parking a message may keep retrying through broker trouble (the caller holds the
/// message meanwhile).
const DEAD_LETTER_BUDGET: Duration = Duration::from_secs(30);

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

/// A publish failed: the caller must not report success upstream.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection to the broker right now (it is down, or we are reconnecting).
    #[error("broker unavailable")]
    Unavailable,
    /// The broker did not confirm in time.
    #[error("broker did not confirm within {0:?}")]
    Timeout(Duration),
    /// The broker refused the message (nack), e.g. a queue at its length limit.
    #[error("broker refused the message (nack)")]
    Nacked,
    /// The message could not be routed to any queue.
    #[error("message returned unroutable: {0}")]
    Returned(String),
    /// The channel or connection failed during the publish.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
}

impl PublishError {
    /// Whether trying again later can succeed: everything but an unroutable message, which no
    /// retry routes.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Returned(_))
    }
}

/// One message to publish.
#[derive(Clone)]
pub struct Publish<'a> {
    /// Exchange (`""` is the default exchange, routing by queue name).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// AMQP `message_id`: the event or job id.
    pub message_id: &'a str,
    /// AMQP `content_type`.
    pub content_type: &'a str,
    /// Body.
    pub body: &'a [u8],
    /// Headers; the current trace context is added.
    pub headers: FieldTable,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) connection: Arc<Connection>,
    publisher: Channel,
}

struct Inner {
    settings: BrokerSettings,
    session: watch::Sender<Option<Session>>,
    connected: Check,
}

/// The service's connection to RabbitMQ. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// Starts the connection supervisor and returns at once: the service starts (and reports
    /// not ready) even while the broker is down. The `broker` readiness check follows the
    /// connection (topology declared included). `stop` closes the connection.
    pub fn start(settings: BrokerSettings, readiness: &Readiness, stop: CancellationToken) -> Self {
        let (session, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            settings,
            session,
            connected: readiness.check("broker"),
        });
        tokio::spawn(supervise(inner.clone(), stop));
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

    /// Publishes persistently and waits for the broker's confirm.
    ///
    /// `Ok` means the broker has taken responsibility for the message: it is on disk in every
    /// queue it was routed to (or, for quorum queues, on a majority of nodes).
    pub async fn publish(&self, message: Publish<'_>) -> Result<(), PublishError> {
        let started = Instant::now();
        let result = self.publish_inner(message.exchange, message).await;
        let outcome = match &result {
            Ok(()) => "confirmed",
            Err(PublishError::Unavailable) => "unavailable",
            Err(PublishError::Timeout(_)) => "timeout",
            Err(PublishError::Nacked) => "nacked",
            Err(PublishError::Returned(_)) => "returned",
            Err(PublishError::Amqp(_)) => "error",
        };
        metrics::counter!("relay_amqp_publish_total", "outcome" => outcome).increment(1);
        metrics::histogram!("relay_amqp_publish_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    /// Publishes like [`Broker::publish`], retrying transient failures (broker away, nack,
    /// confirm timeout) with backoff until `budget` is spent.
    ///
    /// For a caller that holds a consumed message: handing it back to its queue for a broker
    /// hiccup would spend one of the queue's delivery-limit attempts, and a few seconds of
    /// hiccups would park good messages (DESIGN.md: the delivery limit is for poison messages
    /// only).
    pub async fn publish_patiently(
        &self,
        message: Publish<'_>,
        budget: Duration,
    ) -> Result<(), PublishError> {
        let deadline = Instant::now() + budget;
        let mut pauses = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match self.publish(message.clone()).await {
                Ok(()) => return Ok(()),
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    let pause = pauses.next().unwrap_or(Duration::from_secs(2));
                    if Instant::now() + pause >= deadline {
                        return Err(error);
                    }
                    metrics::counter!("relay_amqp_publish_retries_total").increment(1);
                    tracing::debug!(%error, ?pause, "publish failed, trying again");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn publish_inner(
        &self,
        exchange: &str,
        message: Publish<'_>,
    ) -> Result<(), PublishError> {
        let session = self
            .inner
            .session
            .borrow()
            .clone()
            .ok_or(PublishError::Unavailable)?;
        let mut headers = message.headers;
        trace::inject_current(&mut headers);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let properties = BasicProperties::default()
            .with_delivery_mode(2) // persistent
            .with_message_id(message.message_id.into())
            .with_content_type(message.content_type.into())
            .with_timestamp(timestamp)
            .with_headers(headers);
        // `mandatory`: an unroutable message comes back as a return instead of being dropped.
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let timeout = self.inner.settings.confirm_timeout;
        let confirmation = tokio::time::timeout(timeout, async {
            session
                .publisher
                .basic_publish(
                    exchange.into(),
                    message.routing_key.into(),
                    options,
                    message.body,
                    properties,
                )
                .await?
                .await
        })
        .await
        .map_err(|_| PublishError::Timeout(timeout))??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => {
                Err(PublishError::Returned(returned.reply_text.to_string()))
            }
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            // The publisher channel is always in confirm mode; this would be a bug.
            Confirmation::NotRequested => Err(PublishError::Unavailable),
        }
    }

    /// Parks a consumed message in `relay.dead` under `routing_key` (`events` or `deliveries`),
    /// with its reason in the headers, and waits for the confirm (retrying broker hiccups for
    /// a while). Ack the original only after this returns `Ok`.
    pub async fn dead_letter(
        &self,
        routing_key: &str,
        delivery: &lapin::message::Delivery,
        reason: &str,
        mut extra: FieldTable,
    ) -> Result<(), PublishError> {
        let mut table = delivery.properties.headers().clone().unwrap_or_default();
        headers::put_str(&mut table, headers::REASON, reason);
        // A message that came back through a delay tier already carries the routing key it
        // first had; the tier's own key is no place to replay it to.
        if headers::get_str(Some(&table), headers::ROUTING_KEY).is_none() {
            headers::put_str(
                &mut table,
                headers::ROUTING_KEY,
                delivery.routing_key.as_str(),
            );
        }
        for (k, v) in std::mem::take(&mut extra).inner() {
            table.insert(k.clone(), v.clone());
        }
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let content_type = delivery
            .properties
            .content_type()
            .as_ref()
            .map_or_else(|| "application/octet-stream".to_owned(), |s| s.to_string());
        metrics::counter!("relay_dead_letters_total", "lot" => routing_key.to_owned(), "reason" => reason.to_owned())
            .increment(1);
        self.publish_patiently(
            Publish {
                exchange: relay_core::routing::DEAD_EXCHANGE,
                routing_key,
                message_id: &message_id,
                content_type: &content_type,
                body: &delivery.data,
                headers: table,
            },
            DEAD_LETTER_BUDGET,
        )
        .await
    }
}

async fn supervise(inner: Arc<Inner>, stop: CancellationToken) {
    let settings = &inner.settings;
    let mut backoff = backoff(settings.reconnect_max_delay);
    loop {
        if stop.is_cancelled() {
            return;
        }
        match connect(settings).await {
            Ok(session) => {
                backoff = self::backoff(settings.reconnect_max_delay);
                tracing::info!(connection = %settings.connection_name, "connected to RabbitMQ, topology declared");
                let connection = session.connection.clone();
                let publisher = session.publisher.clone();
                inner.session.send_replace(Some(session));
                inner.connected.set(true);
                let lost = watch_connection(&connection, &publisher, &stop).await;
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
async fn connect(settings: &BrokerSettings) -> Result<Session, String> {
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
        publisher: channel,
    })
}

/// Returns when the connection or the publisher channel is lost (`Some(reason)`), or on stop
/// (`None`).
async fn watch_connection(
    connection: &Connection,
    publisher: &Channel,
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
                Some(_) => {}
                None => return Some("connection event stream ended".to_owned()),
            },
            _ = poll.tick() => {
                if !connection.status().connected() {
                    return Some("connection closed".to_owned());
                }
                if !publisher.status().connected() {
                    return Some("publisher channel closed".to_owned());
                }
            }
        }
    }
}
