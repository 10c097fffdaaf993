//! Alerts: what is firing now, and the latest notices (fired, re-sent, escalated, resolved)
//! with the notifiers each went to.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use relay_store::AlertNote;

use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome, Problem};

/// Notices shown.
const SHOWN: usize = 200;

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    firing: Vec<AlertNote>,
    resolved: Vec<AlertNote>,
    log: Vec<AlertNote>,
}

/// `GET /alerts`.
pub(crate) async fn page(State(state): State<AppState>, authed: Authed) -> Response {
    let (firing, log) = tokio::join!(
        state.store().firing_alerts(),
        state.store().alert_log(SHOWN)
    );
    let (firing, mut log) = match (firing, log) {
        (Ok(f), Ok(l)) => (f, l),
        (Err(error), _) | (_, Err(error)) => {
            return Problem::store("Alerts cannot be read", &error).into_response();
        }
    };
    // An event handled twice records its notice twice: show it once.
    log.dedup_by(|a, b| a.key == b.key && a.notice == b.notice && a.at == b.at);
    let resolved = log.iter().filter(|n| n.is_resolved()).cloned().collect();
    web::render(AlertsPage {
        chrome: Chrome::new(&authed, "/alerts"),
        firing,
        resolved,
        log,
    })
}
