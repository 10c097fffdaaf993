//! `relayctl dead`: what the relay parked, and what to do with it.
//!
//! Three queues hold what the relay could not get through: `relay.dead.deliveries` (jobs
//! delivery gave up on), `relay.dead.events` (events a handler could not process) and
//! `relay.unrouted` (events no handler takes). `list` and `show` read them without removing
//! anything, `replay` sends matching messages back (confirmed, then acked, at a rate cap),
//! `purge` removes matching messages after a confirmation. Every command walks the queue the
//! same way ([`relay_parked::Scan`]): what it does not act on is handed back untouched and in
//! order. Replay and purge also remove what they acked from the parked index (the console's).
//!
//! The work is relay-parked's; this module is the command line around it: the arguments,
//! what is printed, the progress bar and the confirmation.
//!
//! * [`list`]: `list` and `show`; [`replay`]; [`purge`].

mod list;
mod purge;
mod replay;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use lapin::Channel;
use relay_core::config::Config;
use relay_parked::{Filter, Index, Queue};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// A queue of parked messages, as `--queue` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueueName {
    /// `relay.dead.deliveries`: jobs delivery gave up on.
    DeadDeliveries,
    /// `relay.dead.events`: events a handler could not process.
    DeadEvents,
    /// `relay.unrouted`: events no enabled handler takes.
    Unrouted,
}

impl From<QueueName> for Queue {
    fn from(name: QueueName) -> Self {
        match name {
            QueueName::DeadDeliveries => Queue::DeadDeliveries,
            QueueName::DeadEvents => Queue::DeadEvents,
            QueueName::Unrouted => Queue::Unrouted,
        }
    }
}

/// The names `--lot` took before `--queue` (kept as a hidden alias).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lot {
    Deliveries,
    Events,
}

/// Which queue, and which of its messages.
#[derive(Debug, Args)]
pub(crate) struct Select {
    /// The queue to read.
    #[arg(long, value_enum, default_value = "dead-deliveries")]
    queue: QueueName,
    /// Former name of `--queue`: `deliveries` or `events`.
    #[arg(long, value_enum, hide = true, conflicts_with = "queue")]
    lot: Option<Lot>,
    /// Only the message with this id (the event or job id).
    #[arg(long)]
    id: Option<String>,
    /// Only jobs for this destination.
    #[arg(long)]
    destination: Option<String>,
    /// Only events whose CloudEvent type or routing key matches this glob (`plivo.call.*`).
    #[arg(long = "type", value_name = "GLOB")]
    ty: Option<String>,
    /// Only messages parked for this reason: the relay's (`http_status`,
    /// `attempts_exhausted`, …) or the broker's (`delivery_limit`, `expired`, …).
    #[arg(long)]
    reason: Option<String>,
    /// Only messages parked since then: a duration back from now (`2h`, `30m`, `7d`) or an
    /// RFC 3339 time.
    #[arg(long, value_name = "DURATION|TIME", value_parser = since)]
    since: Option<OffsetDateTime>,
}

impl Select {
    fn queue(&self) -> Queue {
        match self.lot {
            Some(Lot::Deliveries) => Queue::DeadDeliveries,
            Some(Lot::Events) => Queue::DeadEvents,
            None => self.queue.into(),
        }
    }

    fn filter(self) -> Filter {
        Filter {
            id: self.id,
            destination: self.destination,
            ty: self.ty,
            reason: self.reason,
            since: self.since,
        }
    }
}

fn since(text: &str) -> Result<OffsetDateTime, String> {
    relay_parked::parse_since(text, OffsetDateTime::now_utc())
}

#[derive(Subcommand)]
pub(crate) enum DeadCommand {
    /// List parked messages (nothing is removed).
    List {
        #[command(flatten)]
        select: Select,
        /// Most messages to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Show parked messages whole: their headers and body (nothing is removed).
    Show {
        #[command(flatten)]
        select: Select,
        /// Most messages to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Bodies in full (otherwise cut at 4 KiB).
        #[arg(long)]
        full: bool,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Send parked messages back for another try.
    ///
    /// Jobs go to `relay.deliveries` (attempts reset); an event goes to the handler that
    /// parked it, or to the handlers its routing key reaches now. Each copy is confirmed by
    /// the broker before the parked one is removed; the first refusal stops the replay.
    Replay {
        #[command(flatten)]
        select: Select,
        /// Every message of the queue (otherwise a filter is required).
        #[arg(long)]
        all: bool,
        /// Replay at most this many messages.
        #[arg(long)]
        limit: Option<usize>,
        /// Most messages per second (`50/s`, `200`, `600/m`).
        #[arg(long, default_value = "50/s")]
        rate: relay_parked::Rate,
        /// Show what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With `--dry-run`: one JSON object per message.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Remove parked messages for good, after a confirmation.
    Purge {
        #[command(flatten)]
        select: Select,
        /// Every message of the queue (otherwise a filter is required).
        #[arg(long)]
        all: bool,
        /// Purge at most this many messages.
        #[arg(long)]
        limit: Option<usize>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Show what would be purged; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With `--dry-run`: one JSON object per message.
        #[arg(long, requires = "dry_run")]
        json: bool,
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
        DeadCommand::List {
            select,
            limit,
            json,
        } => {
            let queue = select.queue();
            list::list(config, queue, select.filter(), limit, json).await
        }
        DeadCommand::Show {
            select,
            limit,
            full,
            json,
        } => {
            let queue = select.queue();
            list::show(config, queue, select.filter(), limit, full, json).await
        }
        DeadCommand::Replay {
            select,
            all,
            limit,
            rate,
            dry_run,
            json,
        } => {
            let queue = select.queue();
            let filter = chosen(select.filter(), all, "replay")?;
            let args = replay::ReplayArgs {
                queue,
                filter,
                limit,
                rate,
                dry_run,
                json,
            };
            replay::run(config, args).await
        }
        DeadCommand::Purge {
            select,
            all,
            limit,
            yes,
            dry_run,
            json,
        } => {
            let queue = select.queue();
            let filter = chosen(select.filter(), all, "purge")?;
            let args = purge::PurgeArgs {
                queue,
                filter,
                limit,
                yes,
                dry_run,
                json,
            };
            purge::run(config, args).await
        }
    }
}

/// The parked index on the configured Redis, for a replay or a purge to remove what it acked;
/// `None`, with a note, when Redis does not answer in time (the index is the console's
/// accelerator: nothing parked depends on it). Redis is let go when `stop` is cancelled.
async fn index(config: &Config, stop: &CancellationToken) -> Option<Index> {
    let readiness = relay_telemetry::Readiness::new();
    let store = relay_store::Store::start(&config.redis, &readiness, stop.clone());
    if store.wait_connected(Duration::from_secs(2)).await {
        Some(Index::new(store, config))
    } else {
        eprintln!(
            "note: Redis does not answer (check redis.url): the parked index is left as it is"
        );
        None
    }
}

/// A command that changes the queue acts on every message only when told `--all`.
fn chosen(filter: Filter, all: bool, verb: &str) -> anyhow::Result<Filter> {
    match (filter.is_empty(), all) {
        (true, false) => anyhow::bail!(
            "say which messages to {verb}: a filter (--id, --reason, --destination, --type, --since) or --all"
        ),
        (false, true) => anyhow::bail!("--all takes no filter: give one or the other"),
        _ => Ok(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        dead: DeadCommand,
    }

    fn parse(args: &[&str]) -> Result<DeadCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("dead").chain(args.iter().copied())).map(|c| c.dead)
    }

    #[test]
    fn the_queue_defaults_to_dead_deliveries_and_lot_still_works() {
        let DeadCommand::List { select, .. } = parse(&["list"]).unwrap() else {
            panic!("list");
        };
        assert_eq!(select.queue(), Queue::DeadDeliveries);
        let DeadCommand::List { select, .. } = parse(&["list", "--lot", "events"]).unwrap() else {
            panic!("list");
        };
        assert_eq!(select.queue(), Queue::DeadEvents);
        let DeadCommand::Replay { select, .. } =
            parse(&["replay", "--queue", "unrouted", "--all"]).unwrap()
        else {
            panic!("replay");
        };
        assert_eq!(select.queue().name(), "relay.unrouted");
        assert!(parse(&["list", "--lot", "events", "--queue", "unrouted"]).is_err());
    }

    #[test]
    fn filters_parse_and_bad_times_are_refused() {
        let DeadCommand::Purge { select, yes, .. } = parse(&[
            "purge",
            "--reason",
            "http_status",
            "--type",
            "plivo.*",
            "--since",
            "2h",
            "--yes",
        ])
        .unwrap() else {
            panic!("purge");
        };
        assert!(yes);
        let filter = select.filter();
        assert_eq!(filter.reason.as_deref(), Some("http_status"));
        assert_eq!(filter.ty.as_deref(), Some("plivo.*"));
        let since = filter.since.unwrap();
        let ago = OffsetDateTime::now_utc() - since;
        assert!((ago - time::Duration::hours(2)).abs() < time::Duration::minutes(1));
        let error = parse(&["list", "--since", "lately"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("neither a duration"), "{error}");
        assert!(
            parse(&["replay", "--all", "--json"]).is_err(),
            "--json needs --dry-run"
        );
    }

    #[test]
    fn changing_commands_want_a_filter_or_all_not_both() {
        let none = Filter::default();
        assert!(chosen(none.clone(), false, "purge").is_err());
        assert!(chosen(none, true, "purge").is_ok());
        let some = Filter {
            reason: Some("http_status".into()),
            ..Filter::default()
        };
        assert!(chosen(some.clone(), false, "purge").is_ok());
        assert!(chosen(some, true, "purge").is_err());
    }
}
