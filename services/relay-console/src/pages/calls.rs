//! Calls: find a call session by the customer's number or by its id, and see its timeline
//! (provider events received, state transitions, helpdesk messages made and settled) and each
//! helpdesk message with its delivery status and attempts.
//!
//! Numbers are masked unless `console.mask_numbers` is off or the user asks to reveal them on
//! one page (`reveal=1`), which is logged.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use relay_store::DeliveryRecord;
use relay_worker::handlers::call_log::lookup;
use relay_worker::handlers::call_log::session::{Happened, Session};
use serde::Deserialize;

use crate::mask;
use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome, Problem};

/// Sessions per page.
const PAGE: usize = 50;

#[derive(Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    q: String,
    before: Option<i64>,
    reveal: Option<u8>,
}

/// One session in the list, as shown.
struct Row {
    id: String,
    started: String,
    direction: String,
    customer: String,
    channel: String,
    state: String,
    destination: String,
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage {
    chrome: Chrome,
    q: String,
    heading: String,
    rows: Vec<Row>,
    older: Option<String>,
    revealed: bool,
    maskable: bool,
}

fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn time_text(at: Option<time::OffsetDateTime>) -> String {
    at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or_else(|| "—".to_owned(), |t| web::short_time(&t))
}

/// Whether this request shows numbers in full (and logs that it does).
fn reveal(state: &AppState, authed: &Authed, asked: bool, what: &str) -> bool {
    if !state.masked() {
        return true;
    }
    if asked {
        tracing::info!(user = %authed.user, what, "console: phone numbers revealed");
    }
    asked
}

/// `GET /calls?q=`.
pub(crate) async fn search(
    State(state): State<AppState>,
    authed: Authed,
    Query(query): Query<Search>,
) -> Response {
    let q = query.q.trim().to_owned();
    let store = state.store();
    let revealed = reveal(
        &state,
        &authed,
        query.reveal == Some(1),
        &format!("calls search {q}"),
    );
    let (heading, page) = if q.is_empty() {
        (
            "Latest calls".to_owned(),
            lookup::recent(store, query.before, PAGE).await,
        )
    } else if q.chars().filter(char::is_ascii_digit).count() >= 3 && !q.contains(':') {
        (
            format!("Calls of {}", mask::shown(Some(&q), revealed)),
            lookup::by_number(store, &q, query.before, PAGE).await,
        )
    } else {
        // A session id (`plivo:…`, `callback:…`): one session, or none.
        let found = lookup::session(store, &q)
            .await
            .map(|s| lookup::SummaryPage {
                items: s.iter().map(lookup::Summary::from).collect(),
                next_before_ms: None,
            });
        (format!("Session {q}"), found)
    };
    let page = match page {
        Ok(page) => page,
        Err(error) => return Problem::store("Calls cannot be read", &error).into_response(),
    };
    let rows = page
        .items
        .iter()
        .map(|s| Row {
            id: s.id.clone(),
            started: time_text(s.started_at),
            direction: label(&s.direction),
            customer: mask::shown(s.customer.as_deref(), revealed),
            channel: mask::shown(s.channel.as_deref(), revealed),
            state: label(&s.state),
            destination: s.destination.clone(),
        })
        .collect();
    let older = page.next_before_ms.map(|before| {
        format!(
            "/calls?q={}&before={before}{}",
            web::encode(&q),
            if revealed && state.masked() {
                "&reveal=1"
            } else {
                ""
            }
        )
    });
    web::render(CallsPage {
        chrome: Chrome::new(&authed, "/calls"),
        q,
        heading,
        rows,
        older,
        revealed,
        maskable: state.masked(),
    })
}

/// One timeline entry, as shown.
struct Entry {
    at: String,
    kind: &'static str,
    text: String,
}

/// One helpdesk message, with its delivery.
struct Message {
    seq: u32,
    text: String,
    job_id: String,
    status: String,
    attempts: String,
    last: String,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    chrome: Chrome,
    id: String,
    facts: Vec<(&'static str, String)>,
    timeline: Vec<Entry>,
    messages: Vec<Message>,
    revealed: bool,
    maskable: bool,
}

#[derive(Deserialize)]
pub(crate) struct Reveal {
    reveal: Option<u8>,
}

/// `GET /calls/{id}`.
pub(crate) async fn session(
    State(state): State<AppState>,
    authed: Authed,
    Path(id): Path<String>,
    Query(query): Query<Reveal>,
) -> Response {
    let session = match lookup::session(state.store(), &id).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return Problem::not_found(format!(
                "No call session `{id}` (never seen, or expired from the ledger)."
            ))
            .into_response();
        }
        Err(error) => return Problem::store("The session cannot be read", &error).into_response(),
    };
    let revealed = reveal(
        &state,
        &authed,
        query.reveal == Some(1),
        &format!("call {id}"),
    );
    let mut messages = Vec::with_capacity(session.messages.len());
    for note in &session.messages {
        let record = state.store().delivery(&note.job_id).await.ok().flatten();
        messages.push(message(note, record.as_ref(), revealed));
    }
    web::render(CallPage {
        chrome: Chrome::new(&authed, "/calls"),
        facts: facts(&session, revealed),
        timeline: timeline(&session, revealed),
        messages,
        id,
        revealed,
        maskable: state.masked(),
    })
}

fn facts(s: &Session, revealed: bool) -> Vec<(&'static str, String)> {
    vec![
        ("State", label(&s.state)),
        ("Direction", label(&s.direction)),
        ("Customer", mask::shown(s.customer.as_deref(), revealed)),
        (
            "Company number",
            mask::shown(s.channel.as_deref(), revealed),
        ),
        ("Answered by", mask::shown(s.agent.as_deref(), revealed)),
        (
            "Softphone user",
            s.user.clone().unwrap_or_else(|| "—".to_owned()),
        ),
        ("Helpdesk", s.destination.clone()),
        ("Thread", s.thread.clone().unwrap_or_else(|| s.id.clone())),
        ("Started", time_text(s.started_at)),
        ("Answered", time_text(s.answered_at)),
        ("Ended", time_text(s.ended_at)),
        (
            "Messages",
            format!(
                "{} delivered, {} undeliverable, {} waiting",
                s.delivered,
                s.undeliverable,
                s.outbox.len()
            ),
        ),
    ]
}

fn timeline(s: &Session, revealed: bool) -> Vec<Entry> {
    s.timeline
        .iter()
        .map(|entry| {
            let (kind, text) = match &entry.what {
                Happened::Event {
                    event,
                    detail,
                    from,
                    to,
                } => {
                    let mut text = format!("{} ({} → {})", label(event), label(from), label(to));
                    if let Some(detail) = detail {
                        // A detail may name the agent who answered: masked like any number.
                        let detail = if revealed {
                            detail.clone()
                        } else {
                            mask_digits(detail)
                        };
                        text.push_str(": ");
                        text.push_str(&detail);
                    }
                    ("event", text)
                }
                Happened::Message { seq, text, .. } => {
                    let text = if revealed {
                        text.clone()
                    } else {
                        mask_digits(text)
                    };
                    ("message", format!("message {seq} made: {text}"))
                }
                Happened::Settled { seq, status, .. } => {
                    ("settled", format!("message {seq} {}", label(status)))
                }
            };
            Entry {
                at: time_text(Some(entry.at)),
                kind,
                text,
            }
        })
        .collect()
}

/// Masks every run of seven or more digits (with their separators) in free text.
fn mask_digits(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.chars().filter(char::is_ascii_digit).count() >= 7 {
                mask::mask_number(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn message(
    note: &relay_worker::handlers::call_log::session::MessageNote,
    record: Option<&DeliveryRecord>,
    revealed: bool,
) -> Message {
    let status = match record {
        Some(r) => label(&r.status),
        None => label(&note.status),
    };
    Message {
        seq: note.seq,
        // The texts name the caller ("Call started - from +15105559999"): masked like the rest.
        text: if revealed {
            note.text.clone()
        } else {
            mask_digits(&note.text)
        },
        job_id: note.job_id.clone(),
        status,
        attempts: record.map_or_else(|| "0".to_owned(), |r| r.attempts.to_string()),
        last: record.map_or_else(String::new, |r| r.last_outcome.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_digit_runs_in_free_text_are_masked() {
        assert_eq!(
            mask_digits("answered by +442071838750"),
            "answered by +44•••••••750"
        );
        assert_eq!(mask_digits("busy after 30 s"), "busy after 30 s");
        assert_eq!(
            mask_digits("Call started - from +15105559999"),
            "Call started - from +15••••••999"
        );
    }
}
