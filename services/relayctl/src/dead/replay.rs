//! `dead replay`: send matching parked messages back for another try.
//!
//! Each message is published again with the broker's confirm awaited, and only then is the
//! parked copy acked: a crash in between leaves a duplicate (delivery and the handlers are
//! idempotent by id), never a loss. The first publish the broker refuses stops the replay;
//! that message and everything after it stay where they were. Replays are paced to `--rate`
//! so that a destination that just came back is not flooded.
//!
//! Where a message goes:
//! * a job: `relay.deliveries` through [`relay_amqp::jobs::publish_copy`], attempts reset;
//! * an event that names its handler (`relay-handler`: the worker parked it, or it is a
//!   handler's retry or timer that found the handler disabled): `relay.handlers`, to that
//!   handler only, so handlers that already took the event do not see it twice;
//! * any other event: `relay.events` with its original routing key, reaching whichever
//!   handlers are bound to it now (an unrouted event whose handler has since been enabled).

use std::io::IsTerminal as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use relay_amqp::jobs::{self, JobMessage, Target};
use relay_amqp::{FieldTable, Publish, headers};
use relay_core::config::Config;
use relay_core::routing;

use super::Queue;
use super::filter::{Filter, topic_matches};
use super::list::print_facts;
use super::message::Facts;
use super::scan::{Parked, Scan};

/// What `dead replay` was asked.
pub(crate) struct ReplayArgs {
    pub(crate) queue: Queue,
    pub(crate) filter: Filter,
    pub(crate) limit: Option<usize>,
    pub(crate) rate: Rate,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
}

/// `--rate`: most messages per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate(f64);

impl FromStr for Rate {
    type Err = String;

    /// `N`, `N/s` or `N/m`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (number, per) = match text.trim().split_once('/') {
            None => (text.trim(), 1.0),
            Some((number, "s")) => (number, 1.0),
            Some((number, "m")) => (number, 60.0),
            Some(_) => {
                return Err(format!(
                    "`{text}`: give messages per second (`50/s`) or per minute (`600/m`)"
                ));
            }
        };
        match number.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => Ok(Rate(n / per)),
            _ => Err(format!(
                "`{text}`: the rate must be a positive number (`50/s`)"
            )),
        }
    }
}

impl Rate {
    /// The time between two messages.
    fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }
}

/// Where one message is published.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// A job, to `relay.deliveries`.
    Job,
    /// An event, to `relay.handlers` for one handler.
    Handler { name: &'a str, key: Option<&'a str> },
    /// An event, to `relay.events`.
    Events { key: &'a str },
}

fn route(queue: Queue, facts: &Facts) -> Result<Route<'_>, String> {
    let key = facts.routing_key.as_deref();
    match (queue, facts.handler.as_deref(), key) {
        (Queue::DeadDeliveries, _, _) => Ok(Route::Job),
        (_, Some(name), key) => Ok(Route::Handler { name, key }),
        (_, None, Some(key)) => Ok(Route::Events { key }),
        (_, None, None) => Err("no routing key to publish it with".to_owned()),
    }
}

/// Whether the configured topology takes a message on `route` to a handler (otherwise
/// `relay.events` and `relay.handlers` hand it to `relay.unrouted`).
fn reaches_a_handler(config: &Config, route: &Route<'_>) -> bool {
    let enabled = config.enabled_handlers();
    match route {
        Route::Job => true,
        Route::Handler { name, .. } => enabled.iter().any(|h| h.name == *name),
        Route::Events { key } => enabled
            .iter()
            .any(|h| h.patterns.iter().any(|p| topic_matches(p, key))),
    }
}

/// Paces publishes to a rate: never two within one interval, no bursts to catch up.
struct Pace {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(rate: Rate) -> Self {
        Self {
            interval: rate.interval(),
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let now = tokio::time::Instant::now();
        self.next = self.next.max(now);
        tokio::time::sleep_until(self.next).await;
        self.next += self.interval;
    }
}

/// A progress bar on a terminal; nothing otherwise (a log or a pipe gets the summary line).
fn progress(total: u32) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(u64::from(total)), ProgressDrawTarget::stdout());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} read, {msg} ({elapsed}, eta {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

pub(crate) async fn run(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    let queue = args.queue;
    let id = args.filter.id.clone();
    let limit = args.limit.unwrap_or(usize::MAX);
    if args.dry_run {
        return dry_run(config, args).await;
    }
    let connected = crate::amqp::broker(config).await?;
    let mut scan = Scan::open(config, queue, args.filter).await?;
    let bar = progress(scan.total);
    let mut pace = Pace::new(args.rate);
    let started = Instant::now();
    let (mut replayed, mut unbound, mut keyless) = (0usize, 0usize, 0usize);
    while replayed < limit {
        let Some(parked) = scan.next().await? else {
            break;
        };
        bar.set_position(u64::from(scan.scanned()));
        let route = match route(queue, &parked.facts) {
            Ok(route) => route,
            Err(why) => {
                // Left where it is (handed back when the walk ends).
                let id = parked.facts.id.as_deref().unwrap_or("-");
                bar.suspend(|| eprintln!("skipped {id}: {why}"));
                keyless += 1;
                continue;
            }
        };
        if !reaches_a_handler(config, &route) {
            unbound += 1;
        }
        pace.wait().await;
        if let Err(error) = publish(&connected.broker, &parked, &route).await {
            bar.abandon();
            let what = parked.facts.id.as_deref().unwrap_or("-").to_owned();
            scan.close().await?;
            anyhow::bail!(
                "the broker refused message {what} ({error}) after {replayed} replayed; it and the rest stay in {}",
                queue.name()
            );
        }
        // Only now that the copy is confirmed does the parked message go.
        scan.ack(&parked).await?;
        replayed += 1;
        bar.set_message(format!("{replayed} replayed"));
    }
    bar.finish_and_clear();
    let total = scan.total;
    scan.close().await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {replayed} of {total} message(s) in {queue} in {secs:.1}s ({rate:.0}/s); {left} left there",
        queue = queue.name(),
        rate = if secs > 0.0 {
            replayed as f64 / secs
        } else {
            0.0
        },
        left = (total as usize).saturating_sub(replayed),
    );
    if unbound > 0 {
        println!(
            "{unbound} of them reach no enabled handler in this configuration and are back in {}",
            routing::UNROUTED
        );
    }
    if keyless > 0 {
        anyhow::bail!(
            "{keyless} message(s) have no routing key to replay them with and stay in {}",
            queue.name()
        );
    }
    if let Some(id) = id
        && replayed == 0
    {
        anyhow::bail!("no message in {} has id {id}", queue.name());
    }
    Ok(())
}

/// Publishes one message on its route, waiting for the confirm (no retry: a refusal stops
/// the replay).
async fn publish(
    broker: &relay_amqp::Broker,
    parked: &Parked,
    route: &Route<'_>,
) -> Result<(), relay_amqp::PublishError> {
    let delivery = &parked.delivery;
    let id = parked.facts.id.as_deref().unwrap_or_default();
    let (exchange, key, table) = match route {
        Route::Job => {
            let message = JobMessage {
                id,
                destination: parked.facts.destination.as_deref().unwrap_or_default(),
                // A replay starts the job's attempts afresh.
                attempts_made: 0,
                body: &delivery.data,
            };
            return jobs::publish_copy(broker, Target::Deliveries, message, Duration::ZERO).await;
        }
        Route::Events { key } => (routing::EVENTS_EXCHANGE, *key, FieldTable::default()),
        Route::Handler { name, key } => {
            let mut table = FieldTable::default();
            headers::put_str(&mut table, routing::HANDLER_HEADER, *name);
            // The handler reads the event's key from here: relay.handlers ignores the
            // message's own.
            if let Some(key) = key {
                headers::put_str(&mut table, headers::ROUTING_KEY, *key);
            }
            (routing::HANDLERS_EXCHANGE, key.unwrap_or_default(), table)
        }
    };
    let content_type = delivery.properties.content_type().as_ref().map_or_else(
        || relay_core::event::CONTENT_TYPE.to_owned(),
        |s| s.to_string(),
    );
    broker
        .publish(Publish {
            exchange,
            routing_key: key,
            message_id: id,
            content_type: &content_type,
            body: &delivery.data,
            headers: table,
        })
        .await
}

/// `--dry-run`: what would be replayed, and where.
async fn dry_run(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    let queue = args.queue;
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut scan = Scan::open(config, queue, args.filter).await?;
    let (mut matched, mut unbound) = (0usize, 0usize);
    while matched < limit {
        let Some(parked) = scan.next().await? else {
            break;
        };
        print_facts(&parked.facts, args.json);
        if route(queue, &parked.facts).is_ok_and(|route| !reaches_a_handler(config, &route)) {
            unbound += 1;
        }
        matched += 1;
    }
    let total = scan.total;
    scan.close().await?;
    if !args.json {
        println!(
            "would replay {matched} of {total} message(s) in {} (dry run: nothing changed)",
            queue.name()
        );
        if unbound > 0 {
            println!(
                "{unbound} of them reach no enabled handler in this configuration and would land in {}",
                routing::UNROUTED
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(key: Option<&str>, handler: Option<&str>) -> Facts {
        let properties = lapin::BasicProperties::default();
        let mut facts = Facts::read(Queue::DeadEvents, &properties, "events", b"{}");
        facts.routing_key = key.map(str::to_owned);
        facts.handler = handler.map(str::to_owned);
        facts
    }

    #[test]
    fn rates_read_per_second_or_per_minute() {
        assert_eq!("50/s".parse(), Ok(Rate(50.0)));
        assert_eq!("500".parse(), Ok(Rate(500.0)));
        assert_eq!("600/m".parse(), Ok(Rate(10.0)));
        assert_eq!(
            "0.5/s".parse::<Rate>().map(Rate::interval),
            Ok(Duration::from_secs(2))
        );
        for bad in ["0", "-1/s", "fast", "50/h", "", "inf"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn jobs_go_to_deliveries_events_to_their_handler_or_their_key() {
        let job = facts(None, None);
        assert_eq!(route(Queue::DeadDeliveries, &job), Ok(Route::Job));
        let parked = facts(Some("plivo.call.ringing"), Some("call-log"));
        assert_eq!(
            route(Queue::DeadEvents, &parked),
            Ok(Route::Handler {
                name: "call-log",
                key: Some("plivo.call.ringing")
            })
        );
        let unrouted = facts(Some("shop.order"), None);
        assert_eq!(
            route(Queue::Unrouted, &unrouted),
            Ok(Route::Events { key: "shop.order" })
        );
        assert!(route(Queue::DeadEvents, &facts(None, None)).is_err());
    }

    #[test]
    fn only_enabled_handlers_count_as_reached() {
        let mut config = Config::default();
        config.worker.call_log = Some(Default::default());
        assert!(reaches_a_handler(
            &config,
            &Route::Events {
                key: "plivo.call.ringing"
            }
        ));
        assert!(!reaches_a_handler(
            &config,
            &Route::Events { key: "shop.order" }
        ));
        let min_balance = Route::Handler {
            name: "min-balance-alert",
            key: None,
        };
        assert!(!reaches_a_handler(&config, &min_balance));
        config.worker.min_balance_alert = Some(Default::default());
        assert!(reaches_a_handler(&config, &min_balance));
        assert!(reaches_a_handler(&config, &Route::Job));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_never_goes_faster_than_the_rate() {
        let mut pace = Pace::new(Rate(10.0));
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            pace.wait().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "ten intervals for eleven"
        );
        // Falling behind earns no burst: the next one still waits a whole interval.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let late = tokio::time::Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(late.elapsed(), Duration::from_millis(100));
    }
}
