//! `relayctl dead`: list and replay what the relay parked in `relay.dead.*`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use relay_amqp::jobs::{self, JobMessage, Target};
use relay_amqp::{FieldTable as Headers, Publish, headers};
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
    let connection = crate::amqp::connect(config).await?;
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

/// Why a message is parked: the relay's own reason, or, for what the broker parked by itself
/// (a delivery limit, a rejection, an expiry), the broker's `x-first-death-reason` and queue.
fn reason(table: Option<&Headers>) -> String {
    if let Some(reason) = headers::get_str(table, headers::REASON) {
        return reason;
    }
    match headers::get_str(table, "x-first-death-reason") {
        Some(reason) => {
            let queue = headers::get_str(table, "x-first-death-queue").unwrap_or_default();
            format!("broker:{reason}@{queue}")
        }
        None => "-".to_owned(),
    }
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
        reason = reason(table),
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
    let connected = crate::amqp::broker(config).await?;
    let channel = channel(config).await?;
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
        let published = match lot {
            Lot::Deliveries => {
                let destination = headers::get_str(table, headers::DESTINATION).unwrap_or_default();
                let message = JobMessage {
                    id: id.as_deref().unwrap_or_default(),
                    destination: &destination,
                    // A replay starts the job's attempts afresh.
                    attempts_made: 0,
                    body: &delivery.data,
                };
                jobs::publish_copy(
                    &connected.broker,
                    Target::Deliveries,
                    message,
                    Duration::ZERO,
                )
                .await
            }
            Lot::Events => {
                let key = headers::get_str(table, headers::ROUTING_KEY)
                    .context("dead event has no routing key header")?;
                let content_type = delivery.properties.content_type().as_ref().map_or_else(
                    || relay_core::event::CONTENT_TYPE.to_owned(),
                    |s| s.to_string(),
                );
                connected
                    .broker
                    .publish(Publish {
                        exchange: routing::EVENTS_EXCHANGE,
                        routing_key: &key,
                        message_id: id.as_deref().unwrap_or_default(),
                        content_type: &content_type,
                        body: &delivery.data,
                        headers: Headers::default(),
                    })
                    .await
            }
        };
        if let Err(error) = published {
            bail!("the broker did not take the replayed message {id:?} ({error}); it stays parked");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_the_relay_or_from_the_broker() {
        let mut relay = Headers::default();
        headers::put_str(&mut relay, headers::REASON, "http_status");
        assert_eq!(reason(Some(&relay)), "http_status");
        let mut broker = Headers::default();
        headers::put_str(&mut broker, "x-first-death-reason", "delivery_limit");
        headers::put_str(&mut broker, "x-first-death-queue", "relay.handler.call-log");
        assert_eq!(
            reason(Some(&broker)),
            "broker:delivery_limit@relay.handler.call-log"
        );
        assert_eq!(reason(None), "-");
    }
}
