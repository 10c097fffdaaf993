//! The overview: rates in and out, queue depths, destinations' breakers, Redis, firing alerts.

use std::collections::BTreeMap;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use relay_core::routing;
use relay_store::AlertNote;

use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome};

/// One queue's depth; `None`: it could not be read (absent, or the broker is down).
pub(crate) struct Depth {
    pub(crate) group: &'static str,
    pub(crate) queue: String,
    pub(crate) ready: Option<u32>,
}

/// One destination as the overview shows it.
pub(crate) struct Breaker {
    pub(crate) name: String,
    /// `closed`, `open` or `disabled`.
    pub(crate) state: &'static str,
    pub(crate) detail: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    events_in: String,
    deliveries_out: String,
    broker: &'static str,
    redis: &'static str,
    depths: Vec<Depth>,
    breakers: Vec<Breaker>,
    firing: Vec<AlertNote>,
}

/// Every queue the overview reads, by group: the enabled handlers' queues, deliveries, the
/// retry tiers, the parking lots.
pub(crate) fn queues(config: &relay_core::config::Config) -> Vec<(&'static str, String)> {
    let mut queues: Vec<(&'static str, String)> = config
        .enabled_handlers()
        .iter()
        .map(|h| ("handler", h.queue()))
        .collect();
    queues.push(("deliveries", routing::DELIVERIES.to_owned()));
    for delay in &config.amqp.retry_tiers {
        queues.push(("retry tier", routing::retry_queue(*delay)));
    }
    queues.push(("parked", routing::DEAD_DELIVERIES_QUEUE.to_owned()));
    queues.push(("parked", routing::DEAD_EVENTS_QUEUE.to_owned()));
    queues.push(("unrouted", routing::UNROUTED.to_owned()));
    queues
}

/// The depth of every queue in `queues`, on one channel.
pub(crate) async fn depths(state: &AppState, queues: Vec<(&'static str, String)>) -> Vec<Depth> {
    let mut channel: Option<lapin::Channel> = None;
    let mut out = Vec::with_capacity(queues.len());
    for (group, queue) in queues {
        // A passive declare of a missing queue closes its channel: the next one opens another.
        if channel.as_ref().is_none_or(|c| !c.status().connected()) {
            channel =
                match tokio::time::timeout(Duration::from_secs(2), state.broker().open_channel())
                    .await
                {
                    Ok(Ok(channel)) => Some(channel),
                    _ => None,
                };
        }
        let ready = match &channel {
            Some(channel) => {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                };
                channel
                    .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                    .await
                    .ok()
                    .map(|q| q.message_count())
            }
            None => None,
        };
        out.push(Depth {
            group,
            queue,
            ready,
        });
    }
    if let Some(channel) = channel
        && channel.status().connected()
    {
        let _ = channel.close(200, "overview read".into()).await;
    }
    out
}

/// Each configured destination's breaker: open (as delivery last reported it), disabled (410 or
/// by hand), or closed.
pub(crate) async fn breakers(state: &AppState) -> Vec<Breaker> {
    let config = state.config();
    let fresh = config.delivery.breaker_report_interval * 3;
    let open: BTreeMap<String, i64> = state
        .store()
        .open_breakers(fresh)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|b| (b.destination, b.open_since_ms))
        .collect();
    let disabled = state
        .store()
        .disabled_destinations()
        .await
        .unwrap_or_default();
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    config
        .destinations
        .keys()
        .map(|name| {
            if let Some(off) = disabled.get(name) {
                Breaker {
                    name: name.clone(),
                    state: "disabled",
                    detail: format!("since {} ({})", web::short_time(&off.since), off.reason),
                }
            } else if let Some(since) = open.get(name) {
                let open_for =
                    Duration::from_secs(u64::try_from((now_ms - since) / 1000).unwrap_or(0));
                Breaker {
                    name: name.clone(),
                    state: "open",
                    detail: format!("open for {}", relay_core::duration::label(open_for)),
                }
            } else {
                Breaker {
                    name: name.clone(),
                    state: "closed",
                    detail: String::new(),
                }
            }
        })
        .collect()
}

fn per_second(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{r:.1}/s"))
}

/// `GET /`.
pub(crate) async fn page(State(state): State<AppState>, authed: Authed) -> Response {
    let (events, delivered) = state.rates().now();
    let queues = queues(state.config());
    let (depths, breakers, firing) = tokio::join!(
        depths(&state, queues),
        breakers(&state),
        state.store().firing_alerts()
    );
    web::render(OverviewPage {
        chrome: Chrome::new(&authed, "/"),
        events_in: per_second(events),
        deliveries_out: per_second(delivered),
        broker: if state.broker().is_connected() {
            "connected"
        } else {
            "unreachable"
        },
        redis: if state.store().is_unavailable() {
            "unreachable"
        } else {
            "ok"
        },
        depths,
        breakers,
        firing: super::alerts::still_firing(firing.unwrap_or_default())
            .into_iter()
            .map(super::alerts::shown)
            .collect(),
    })
}
