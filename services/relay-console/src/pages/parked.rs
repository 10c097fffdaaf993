//! Parked messages: the three parking queues paged from the parked index (never walking a
//! queue to show a page), with `relayctl dead`'s filters; replaying a selection or a filtered
//! set at `console.replay_rate`, and purging after a typed confirmation. Replays and purges
//! run in the background ([`jobs`]) and their page shows how far they got.

use std::collections::BTreeSet;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use relay_parked::{Cursor, Filter, Index, Indexer, Queue};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome, Problem};

mod jobs;

pub(crate) use jobs::Replays;
use jobs::{Action, Job, Selection};

/// Messages per page.
const PAGE: usize = 50;

/// Keeps the parked index filled from `relay.parked.index` until `stop`, reconnecting after a
/// broker failure.
pub(crate) fn start_indexer(state: AppState, stop: CancellationToken) {
    // Created before the task, so that its metric's series exist from start-up.
    let indexer = Indexer::new(index(&state));
    tokio::spawn(async move {
        let mut warned = false;
        while !stop.is_cancelled() {
            match state.broker().open_channel().await {
                Ok(channel) => match indexer.run(&channel, &stop).await {
                    Ok(()) => return,
                    Err(error) if !warned => {
                        tracing::warn!(%error, "console: the parked indexer stopped; retrying (is the topology declared?)");
                        warned = true;
                    }
                    Err(_) => {}
                },
                Err(error) if !warned => {
                    tracing::warn!(%error, "console: no channel for the parked indexer; retrying");
                    warned = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    });
}

/// The parked index on the console's store.
pub(crate) fn index(state: &AppState) -> Index {
    Index::new(state.store().clone(), state.config())
}

/// `relayctl dead`'s filters, as the forms send them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    queue: Option<String>,
    destination: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    id: Option<String>,
    after: Option<String>,
}

fn nonempty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl Filters {
    fn queue(&self) -> Result<Queue, Problem> {
        let name = self
            .queue
            .as_deref()
            .unwrap_or(relay_core::routing::DEAD_DELIVERIES_QUEUE);
        Queue::from_name(name).ok_or_else(|| {
            Problem::bad_request(format!(
                "`{name}` is not a parking queue: relay.dead.deliveries, relay.dead.events or relay.unrouted."
            ))
        })
    }

    fn filter(&self) -> Result<Filter, Problem> {
        let since = match nonempty(&self.since) {
            None => None,
            Some(text) => Some(
                relay_parked::parse_since(&text, time::OffsetDateTime::now_utc())
                    .map_err(|e| Problem::bad_request(format!("since: {e}")))?,
            ),
        };
        Ok(Filter {
            id: nonempty(&self.id),
            destination: nonempty(&self.destination),
            ty: nonempty(&self.ty),
            reason: nonempty(&self.reason),
            since,
        })
    }

    /// The query string of these filters (for links that keep them).
    fn query(&self, queue: Queue) -> String {
        let mut q = format!("queue={}", queue.name());
        for (name, value) in [
            ("destination", &self.destination),
            ("type", &self.ty),
            ("reason", &self.reason),
            ("since", &self.since),
            ("id", &self.id),
        ] {
            if let Some(v) = nonempty(value) {
                q.push_str(&format!("&{name}={}", web::encode(&v)));
            }
        }
        q
    }
}

struct Row {
    id: String,
    time: String,
    reason: String,
    status: String,
    attempts: String,
    destination: String,
    key: String,
    ty: String,
    size: usize,
    detail: String,
}

#[derive(Template)]
#[template(path = "parked.html")]
struct ParkedPage {
    chrome: Chrome,
    queues: Vec<(&'static str, bool)>,
    queue: &'static str,
    destination: String,
    ty: String,
    reason: String,
    since: String,
    indexed: String,
    ready: String,
    rows: Vec<Row>,
    next: Option<String>,
    examined: usize,
    filtered: bool,
}

/// `GET /parked`.
pub(crate) async fn list(
    State(state): State<AppState>,
    authed: Authed,
    Query(filters): Query<Filters>,
) -> Response {
    let (queue, filter) = match (filters.queue(), filters.filter()) {
        (Ok(q), Ok(f)) => (q, f),
        (Err(p), _) | (_, Err(p)) => return p.into_response(),
    };
    let after = match nonempty(&filters.after).map(|a| a.parse::<Cursor>()) {
        None => None,
        Some(Ok(cursor)) => Some(cursor),
        Some(Err(_)) => {
            return Problem::bad_request("`after` is not a cursor of this list.").into_response();
        }
    };
    let index = index(&state);
    let depth = super::overview::depths(&state, vec![("parked", queue.name().to_owned())]);
    let (page, count, depth) = tokio::join!(
        index.page(queue, &filter, after.as_ref(), PAGE),
        index.count(queue),
        depth
    );
    let page = match page {
        Ok(page) => page,
        Err(error) => {
            return Problem::store("The parked index cannot be read", &error).into_response();
        }
    };
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
    let rows = page
        .items
        .iter()
        .map(|f| Row {
            id: f.id.clone().unwrap_or_default(),
            time: f
                .time
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map_or_else(|| "—".to_owned(), |t| web::short_time(&t)),
            reason: or_dash(&f.reason),
            status: f.status.map_or_else(|| "—".to_owned(), |s| s.to_string()),
            attempts: f.attempts.map_or_else(|| "—".to_owned(), |a| a.to_string()),
            destination: or_dash(&f.destination),
            key: or_dash(&f.routing_key),
            ty: or_dash(&f.ty),
            size: f.body_size,
            detail: f.detail.clone().unwrap_or_default(),
        })
        .collect();
    let next = page.next.map(|cursor| {
        format!(
            "/parked?{}&after={}",
            filters.query(queue),
            web::encode(&cursor.to_string())
        )
    });
    web::render(ParkedPage {
        chrome: Chrome::new(&authed, "/parked"),
        queues: Queue::ALL.iter().map(|q| (q.name(), *q == queue)).collect(),
        queue: queue.name(),
        destination: nonempty(&filters.destination).unwrap_or_default(),
        ty: nonempty(&filters.ty).unwrap_or_default(),
        reason: nonempty(&filters.reason).unwrap_or_default(),
        since: nonempty(&filters.since).unwrap_or_default(),
        indexed: count.map_or_else(|_| "unknown".to_owned(), |n| n.to_string()),
        ready: depth
            .first()
            .and_then(|d| d.ready)
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        rows,
        next,
        examined: page.examined,
        filtered: !filter.is_empty(),
    })
}

/// A form's fields, repeated ones (`id`) kept: serde's form decoding keeps only one.
struct FormFields(Vec<(String, String)>);

impl FormFields {
    fn parse(body: &Bytes) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn all(&self, name: &str) -> BTreeSet<String> {
        self.0
            .iter()
            .filter(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn filters(&self) -> Filters {
        Filters {
            queue: self.get("queue"),
            destination: self.get("destination"),
            ty: self.get("type"),
            reason: self.get("reason"),
            since: self.get("since"),
            id: None,
            after: None,
        }
    }
}

/// What a replay or purge form asks for: the ids ticked, or (`scope=filtered`) every message
/// the filters match.
fn selection(form: &FormFields) -> Result<(Queue, Selection), Problem> {
    let filters = form.filters();
    let queue = filters.queue()?;
    if form.get("scope").as_deref() == Some("filtered") {
        return Ok((queue, Selection::Filtered(filters.filter()?)));
    }
    let ids = form.all("id");
    if ids.is_empty() {
        return Err(Problem::bad_request(
            "No message was ticked: tick some, or use the filtered form.",
        ));
    }
    Ok((queue, Selection::Ids(ids)))
}

/// `POST /parked/replay`.
pub(crate) async fn replay(State(state): State<AppState>, authed: Authed, body: Bytes) -> Response {
    start(state, authed, body, Action::Replay).await
}

/// `POST /parked/purge`: the form must repeat the queue's name in `confirm`.
pub(crate) async fn purge(State(state): State<AppState>, authed: Authed, body: Bytes) -> Response {
    start(state, authed, body, Action::Purge).await
}

async fn start(state: AppState, authed: Authed, body: Bytes, action: Action) -> Response {
    let form = FormFields::parse(&body);
    if let Err(problem) = authed.check_csrf(form.get("csrf").as_deref()) {
        return problem.into_response();
    }
    let (queue, selection) = match selection(&form) {
        Ok(s) => s,
        Err(problem) => return problem.into_response(),
    };
    if action == Action::Purge
        && form.get("confirm").as_deref().map(str::trim) != Some(queue.name())
    {
        return Problem::bad_request(format!(
            "A purge removes messages for good: type the queue's name ({}) to confirm it.",
            queue.name()
        ))
        .into_response();
    }
    let job = Job::new(&authed.user, action, queue, &selection);
    tracing::info!(user = %authed.user, action = action.label(), queue = queue.name(), what = %job.what, "console: {} started", action.label());
    let id = state.replays().start(state.clone(), job, selection);
    Redirect::to(&format!("/parked/jobs/{id}")).into_response()
}

/// `GET /parked/jobs/{id}`.
pub(crate) async fn job(
    State(state): State<AppState>,
    authed: Authed,
    Path(id): Path<u64>,
) -> Response {
    match state.replays().get(id) {
        Some(job) => jobs::page(&authed, job),
        None => Problem::not_found(format!(
            "No replay or purge {id} in this console process (they are kept until it restarts)."
        ))
        .into_response(),
    }
}
