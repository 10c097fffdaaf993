//! Deliveries: by destination, status and time, a page at a time from the delivery index
//! (two Redis round trips however many records there are); one delivery's attempts with
//! status, latency and response excerpt.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use relay_store::{AttemptEntry, DeliveryQuery, DeliveryRecord, DeliveryStatus};
use serde::Deserialize;

use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome, Problem};

/// Deliveries per page.
const PAGE: usize = 50;

#[derive(Deserialize)]
pub(crate) struct Filters {
    destination: Option<String>,
    status: Option<String>,
    before: Option<i64>,
    /// Only those written since (`2026-12-04T10:00:00Z`).
    since: Option<String>,
}

struct Row {
    id: String,
    destination: String,
    status: String,
    attempts: u32,
    last: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    chrome: Chrome,
    destinations: Vec<(String, bool)>,
    statuses: Vec<(&'static str, bool)>,
    since: String,
    counts: String,
    rows: Vec<Row>,
    older: Option<String>,
}

fn status_of(text: &str) -> Result<Option<DeliveryStatus>, Problem> {
    match text {
        "" => Ok(None),
        "retrying" => Ok(Some(DeliveryStatus::Retrying)),
        "delivered" => Ok(Some(DeliveryStatus::Delivered)),
        "dead" => Ok(Some(DeliveryStatus::Dead)),
        _ => Err(Problem::bad_request(
            "The status is `retrying`, `delivered` or `dead`.",
        )),
    }
}

fn label(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Retrying => "retrying",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Dead => "dead",
    }
}

/// `GET /deliveries`.
pub(crate) async fn list(
    State(state): State<AppState>,
    authed: Authed,
    Query(filters): Query<Filters>,
) -> Response {
    let destination = filters.destination.unwrap_or_default().trim().to_owned();
    let status_text = filters.status.unwrap_or_default();
    let status = match status_of(&status_text) {
        Ok(status) => status,
        Err(problem) => return problem.into_response(),
    };
    let since = filters.since.unwrap_or_default().trim().to_owned();
    let after_ms = if since.is_empty() {
        None
    } else {
        match web::millis_of(&since) {
            Some(ms) => Some(ms - 1),
            None => {
                return Problem::bad_request(
                    "`since` is an RFC 3339 time, e.g. 2026-12-04T10:00:00Z.",
                )
                .into_response();
            }
        }
    };
    let query = DeliveryQuery {
        destination: (!destination.is_empty()).then(|| destination.clone()),
        status,
        before_ms: filters.before,
        after_ms,
        limit: PAGE,
    };
    let store = state.store();
    let (page, counts) = tokio::join!(
        store.deliveries(&query),
        store.delivery_counts(query.destination.as_deref())
    );
    let page = match page {
        Ok(page) => page,
        Err(error) => return Problem::store("Deliveries cannot be read", &error).into_response(),
    };
    let counts = counts.map_or_else(
        |_| String::new(),
        |c| {
            format!(
                "{} in the index: {} delivered, {} retrying, {} dead",
                c.total, c.delivered, c.retrying, c.dead
            )
        },
    );
    let rows = page
        .items
        .into_iter()
        .map(|(id, r)| Row {
            id,
            destination: r.destination,
            status: label(r.status).to_owned(),
            attempts: r.attempts,
            last: r.last_outcome,
            updated: web::short_time(&r.updated_at),
        })
        .collect();
    let older = page.next_before_ms.map(|before| {
        format!(
            "/deliveries?destination={}&status={}&since={}&before={before}",
            web::encode(&destination),
            web::encode(&status_text),
            web::encode(&since)
        )
    });
    web::render(DeliveriesPage {
        chrome: Chrome::new(&authed, "/deliveries"),
        destinations: state
            .config()
            .destinations
            .keys()
            .map(|d| (d.clone(), *d == destination))
            .collect(),
        statuses: ["delivered", "retrying", "dead"]
            .into_iter()
            .map(|s| (s, s == status_text))
            .collect(),
        since,
        counts,
        rows,
        older,
    })
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    id: String,
    record: DeliveryRecord,
    status: &'static str,
    attempts: Vec<AttemptEntry>,
}

/// `GET /deliveries/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    authed: Authed,
    Path(id): Path<String>,
) -> Response {
    match state.store().delivery(&id).await {
        Ok(Some(record)) => web::render(DeliveryPage {
            chrome: Chrome::new(&authed, "/deliveries"),
            status: label(record.status),
            attempts: record.history.iter().rev().cloned().collect(),
            id,
            record,
        }),
        Ok(None) => Problem::not_found(format!(
            "No delivery record `{id}`: not attempted yet, or older than redis.delivery_record_ttl."
        ))
        .into_response(),
        Err(error) => Problem::store("The delivery cannot be read", &error).into_response(),
    }
}
