//! Replaying: sending matching parked messages back for another try.
//!
//! Each message is published again with the broker's confirm awaited, and only then is the
//! parked copy acked: a crash in between leaves a duplicate (delivery and the handlers are
//! idempotent by id), never a loss. The first publish the broker refuses stops the replay;
//! that message and everything after it stay where they were. Replays are paced to a
//! [`Rate`] so that a destination that just came back is not flooded.
//!
//! Where a message goes ([`route`]):
//! * a job: `relay.deliveries` through [`relay_amqp::jobs::publish_copy`], attempts reset;
//! * an event that names its handler (`relay-handler`: the worker parked it, or it is a
//!   handler's retry or timer that found the handler disabled): `relay.handlers`, to that
//!   handler only, so handlers that already took the event do not see it twice;
//! * any other event: `relay.events` with its original routing key, reaching whichever
//!   handlers are bound to it now (an unrouted event whose handler has since been enabled).

use std::str::FromStr;
use std::time::{Duration, Instant};

use relay_amqp::jobs::{self, JobMessage, Target};
use relay_amqp::{Broker, FieldTable, Publish, PublishError, headers};
use relay_core::config::Config;
use relay_core::routing;

use crate::index::{Forget, Index};
use crate::{Error, Facts, Filter, Parked, Progress, Queue, Result, Scan, topic_matches};

/// A replay's pace: most messages per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(f64);

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
    /// `per_second` messages a second; `None` unless positive and finite.
    pub fn per_second(per_second: f64) -> Option<Self> {
        (per_second.is_finite() && per_second > 0.0).then_some(Rate(per_second))
    }

    /// The time between two messages.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }
}

/// Paces publishes to a rate: never two within one interval, no bursts to catch up.
pub(crate) struct Pace {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            interval: rate.interval(),
            next: tokio::time::Instant::now(),
        }
    }

    pub(crate) async fn wait(&mut self) {
        let now = tokio::time::Instant::now();
        self.next = self.next.max(now);
        tokio::time::sleep_until(self.next).await;
        self.next += self.interval;
    }
}

/// Where one message is published.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// A job, to `relay.deliveries`.
    Job,
    /// An event, to `relay.handlers` for one handler.
    Handler {
        /// The handler.
        name: &'a str,
        /// The event's routing key, when known.
        key: Option<&'a str>,
    },
    /// An event, to `relay.events`.
    Events {
        /// The event's routing key.
        key: &'a str,
    },
}

/// Where a message of `queue` goes when replayed; why not, when it cannot be.
pub fn route(queue: Queue, facts: &Facts) -> Result<Route<'_>, String> {
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
pub fn reaches_a_handler(config: &Config, route: &Route<'_>) -> bool {
    let enabled = config.enabled_handlers();
    match route {
        Route::Job => true,
        Route::Handler { name, .. } => enabled.iter().any(|h| h.name == *name),
        Route::Events { key } => enabled
            .iter()
            .any(|h| h.patterns.iter().any(|p| topic_matches(p, key))),
    }
}

/// Publishes one message on its route, waiting for the confirm (no retry: a refusal stops a
/// replay).
pub async fn publish(
    broker: &Broker,
    parked: &Parked,
    route: &Route<'_>,
) -> Result<(), PublishError> {
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

/// What to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The queue to replay from.
    pub queue: Queue,
    /// Which of its messages (every one when empty).
    pub filter: Filter,
    /// At most this many.
    pub limit: Option<usize>,
    /// At most this fast.
    pub rate: Rate,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    /// Messages published again and removed from the queue.
    pub replayed: usize,
    /// Messages in the queue when the replay began.
    pub total: u32,
    /// Of those replayed, how many reach no enabled handler in this configuration (they are
    /// back in `relay.unrouted`).
    pub unbound: usize,
    /// Matching messages left in the queue because they cannot be replayed (no routing key).
    pub skipped: usize,
    /// Index entries that could not be removed (Redis away): the console may still list
    /// them until they expire.
    pub unforgotten: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// Replays the messages of `request.queue` that its filter matches, through `broker` (on
/// `config`'s broker and topology), and removes each replayed one from `index` when given.
/// A replay by id that walks the whole queue without meeting the id removes it from the index
/// too: it is no longer parked.
///
/// A refused publish ends the replay with [`Error::Refused`]; what was replayed before it
/// stays replayed.
pub async fn replay(
    config: &Config,
    broker: &Broker,
    index: Option<&Index>,
    request: Replay,
    progress: &mut dyn Progress,
) -> Result<Replayed> {
    let mut forget = Forget::new(index, request.queue);
    let result = walk(config, broker, request, &mut forget, progress).await;
    let unforgotten = forget.finish().await;
    result.map(|done| Replayed {
        unforgotten,
        ..done
    })
}

async fn walk(
    config: &Config,
    broker: &Broker,
    request: Replay,
    forget: &mut Forget<'_>,
    progress: &mut dyn Progress,
) -> Result<Replayed> {
    let queue = request.queue;
    let id = request.filter.id.clone();
    let limit = request.limit.unwrap_or(usize::MAX);
    let mut scan = Scan::open(&config.amqp.url, queue, request.filter).await?;
    let mut pace = Pace::new(request.rate);
    let started = Instant::now();
    let mut done = Replayed {
        total: scan.total(),
        ..Replayed::default()
    };
    while done.replayed < limit {
        let Some(parked) = scan.next().await? else {
            break;
        };
        progress.walked(scan.scanned(), scan.total());
        let route = match route(queue, &parked.facts) {
            Ok(route) => route,
            Err(why) => {
                // Left where it is (handed back when the walk ends).
                progress.skipped(&parked.facts, &why);
                done.skipped += 1;
                continue;
            }
        };
        if !reaches_a_handler(config, &route) {
            done.unbound += 1;
        }
        pace.wait().await;
        if let Err(source) = publish(broker, &parked, &route).await {
            scan.close().await?;
            return Err(Error::Refused {
                id: parked.facts.id.unwrap_or_else(|| "-".to_owned()),
                replayed: done.replayed,
                queue,
                source,
            });
        }
        // Only now that the copy is confirmed does the parked message go.
        scan.ack(&parked).await?;
        forget.push(&parked.facts).await;
        done.replayed += 1;
        progress.done(&parked.facts);
    }
    if let Some(id) = id.filter(|_| done.replayed == 0 && done.skipped == 0) {
        forget.unless_met(id, &scan);
    }
    scan.close().await?;
    done.elapsed = started.elapsed();
    Ok(done)
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
        assert_eq!(Rate::per_second(20.0), Some(Rate(20.0)));
        assert_eq!(Rate::per_second(0.0), None);
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
