//! `relayctl dead`: list and replay what the relay parked in `relay.dead.*`.

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relay_amqp::headers;
use relay_core::config::Config;
use relay_core::routing;

/// A parking lot.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Lot {
    /// `relay.dead.deliveries`: jobs delivery gave up on.
    Deliveries,
    /// `relay.dead.events`: events a handler could not process.
    Events,
}

impl Lot {
    fn queue(self) -> &'static str {
        match self {
            Lot::Deliveries => routing::DEAD_DELIVERIES_QUEUE,
            Lot::Events => routing::DEAD_EVENTS_QUEUE,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum DeadCommand {
    /// List dead letters (they stay parked).
    List {
        /// Which parking lot.
        #[arg(long, value_enum, default_value = "deliveries")]
        lot: Lot,
        /// Most messages to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send dead letters back for another try: jobs to `relay.deliveries` (attempts reset),
    /// events to `relay.events` with their original routing key.
    Replay {
        /// Which parking lot.
        #[arg(long, value_enum, default_value = "deliveries")]
        lot: Lot,
        /// Replay only the message with this id.
        #[arg(long, conflicts_with = "all")]
        id: Option<String>,
        /// Replay every message.
        #[arg(long)]
        all: bool,
    },
}

/// A channel on the configured broker (the connection lives as long as the process).
pub(crate) async fn channel(config: &Config) -> anyhow::Result<Channel> {
    let connection = Connection::connect(&config.amqp.url, ConnectionProperties::default())
        .await
        .context("cannot connect to RabbitMQ (check amqp.url)")?;
    let channel = connection.create_channel().await?;
    std::mem::forget(connection);
    Ok(channel)
}

pub(crate) async fn run(config: &Config, command: DeadCommand) -> anyhow::Result<()> {
    match command {
        DeadCommand::List { lot, limit } => list(config, lot, limit).await,
        DeadCommand::Replay { lot, id, all } => {
            if id.is_none() && !all {
                bail!("say which: --id <message id> or --all");
            }
            replay(config, lot, id.as_deref()).await
        }
    }
}

async fn queue_len(channel: &Channel, queue: &str) -> anyhow::Result<u32> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    Ok(channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .with_context(|| format!("{queue} does not exist (run `relayctl topology`)"))?
        .message_count())
}

fn describe(properties: &BasicProperties) -> String {
    let table = properties.headers().as_ref();
    let text = |k| headers::get_str(table, k).unwrap_or_else(|| "-".to_owned());
    let status =
        headers::get_int(table, headers::STATUS).map_or_else(|| "-".to_owned(), |s| s.to_string());
    format!(
        "{id}  reason={reason} status={status} attempts={attempts} destination={dest} key={key}\n    detail: {detail}",
        id = properties
            .message_id()
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        reason = text(headers::REASON),
        attempts = headers::get_int(table, headers::ATTEMPT).unwrap_or(0),
        dest = text(headers::DESTINATION),
        key = text(headers::ROUTING_KEY),
        detail = text(headers::DETAIL),
    )
}

async fn list(config: &Config, lot: Lot, limit: usize) -> anyhow::Result<()> {
    let channel = channel(config).await?;
    let total = queue_len(&channel, lot.queue()).await?;
    println!("{}: {total} message(s)", lot.queue());
    // Unacknowledged gets are handed back when the channel closes: listing changes nothing.
    for _ in 0..limit.min(total as usize) {
        let Some(message) = channel
            .basic_get(lot.queue().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        println!("  {}", describe(&message.delivery.properties));
    }
    channel.close(200, "listed".into()).await?;
    Ok(())
}

async fn replay(config: &Config, lot: Lot, only: Option<&str>) -> anyhow::Result<()> {
    let channel = channel(config).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let total = queue_len(&channel, lot.queue()).await?;
    let mut replayed = 0;
    for _ in 0..total {
        let Some(message) = channel
            .basic_get(lot.queue().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string());
        if only.is_some() && id.as_deref() != only {
            continue; // handed back when the channel closes
        }
        let table = delivery.properties.headers().as_ref();
        let mut fresh = FieldTable::default();
        let (exchange, key) = match lot {
            Lot::Deliveries => {
                headers::put_int(&mut fresh, headers::ATTEMPT, 0);
                if let Some(d) = headers::get_str(table, headers::DESTINATION) {
                    headers::put_str(&mut fresh, headers::DESTINATION, d);
                }
                (routing::DELIVERIES, String::new())
            }
            Lot::Events => (
                routing::EVENTS_EXCHANGE,
                headers::get_str(table, headers::ROUTING_KEY)
                    .context("dead event has no routing key header")?,
            ),
        };
        let properties = delivery.properties.clone().with_headers(fresh);
        let confirm = channel
            .basic_publish(
                exchange.into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            bail!("the broker did not take the replayed message {id:?}; it stays parked");
        }
        // Ack the parked copy only once the replayed one is confirmed.
        delivery.acker.ack(BasicAckOptions::default()).await?;
        replayed += 1;
        println!("replayed {}", id.as_deref().unwrap_or("-"));
    }
    channel.close(200, "replayed".into()).await?;
    println!("{replayed} message(s) replayed");
    if only.is_some() && replayed == 0 {
        bail!("no parked message has that id");
    }
    Ok(())
}
