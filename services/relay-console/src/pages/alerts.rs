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
    let resolved = log
        .iter()
        .filter(|n| n.is_resolved())
        .cloned()
        .map(shown)
        .collect();
    web::render(AlertsPage {
        chrome: Chrome::new(&authed, "/alerts"),
        firing: still_firing(firing).into_iter().map(shown).collect(),
        resolved,
        log: log.into_iter().map(shown).collect(),
    })
}

/// The notices of alerts still firing: a delivery-failure alert is never resolved by a notice
/// of its own, it ends with its window (`ends_at`).
pub(crate) fn still_firing(notes: Vec<AlertNote>) -> Vec<AlertNote> {
    let now = time::OffsetDateTime::now_utc();
    notes
        .into_iter()
        .filter(|n| {
            n.ends_at.as_deref().is_none_or(|end| {
                time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339)
                    .map_or(true, |end| end > now)
            })
        })
        .collect()
}

/// A notice with its time shortened for a table.
pub(crate) fn shown(mut note: AlertNote) -> AlertNote {
    note.at = web::short_time(&note.at);
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(ends_at: Option<&str>) -> AlertNote {
        AlertNote {
            key: "k".into(),
            name: "RelayDeliveryFailed".into(),
            subject: "helpdesk".into(),
            notice: "firing".into(),
            severity: None,
            summary: String::new(),
            at: "2026-12-04T10:00:00.123456Z".into(),
            notifiers: Vec::new(),
            ends_at: ends_at.map(str::to_owned),
        }
    }

    #[test]
    fn an_alert_past_its_window_no_longer_fires() {
        let kept = still_firing(vec![
            note(None),
            note(Some("2000-01-01T00:00:00Z")),
            note(Some("2999-01-01T00:00:00Z")),
        ]);
        assert_eq!(kept.len(), 2);
        assert!(
            kept.iter()
                .all(|n| n.ends_at.as_deref() != Some("2000-01-01T00:00:00Z"))
        );
        assert_eq!(shown(note(None)).at, "2026-12-04 10:00:00");
    }
}
