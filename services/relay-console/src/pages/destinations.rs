//! Destinations: where each sends, how it signs, its secret's source and age (never its
//! value), its breaker, and enabling or disabling it.

use std::time::SystemTime;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use relay_store::Disabled;
use serde::Deserialize;

use super::overview::{self, Breaker};
use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome, Problem};

/// One row of the page.
struct Row {
    name: String,
    url: String,
    signing: String,
    secret: String,
    breaker: Breaker,
}

#[derive(Template)]
#[template(path = "destinations.html")]
struct DestinationsPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

/// `GET /destinations`.
pub(crate) async fn list(State(state): State<AppState>, authed: Authed) -> Response {
    let config = state.config();
    let now = SystemTime::now();
    let breakers = overview::breakers(&state).await;
    let rows = breakers
        .into_iter()
        .filter_map(|breaker| {
            let d = config.destinations.get(&breaker.name)?;
            Some(Row {
                name: breaker.name.clone(),
                url: redacted(&d.url),
                signing: serde_json::to_value(d.signing)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                secret: d.secret_source(now),
                breaker,
            })
        })
        .collect();
    web::render(DestinationsPage {
        chrome: Chrome::new(&authed, "/destinations"),
        rows,
    })
}

/// A URL without its user, password and query (which may hold credentials).
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            if parsed.query().is_some() {
                parsed.set_query(Some("…"));
            }
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Act {
    csrf: Option<String>,
}

/// `POST /destinations/{name}/{enable|disable}`.
pub(crate) async fn act(
    State(state): State<AppState>,
    authed: Authed,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<Act>,
) -> Response {
    if let Err(problem) = authed.check_csrf(form.csrf.as_deref()) {
        return problem.into_response();
    }
    if !state.config().destinations.contains_key(&name) {
        return Problem::not_found(format!(
            "No destination named `{name}` in the configuration."
        ))
        .into_response();
    }
    let store = state.store();
    let result = match action.as_str() {
        "disable" => {
            let disabled = Disabled {
                since: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                reason: format!("disabled in the console by {}", authed.user),
            };
            store
                .disable_destination(&name, &disabled)
                .await
                .map(|()| true)
        }
        "enable" => store.enable_destination(&name).await,
        _ => return Problem::bad_request("The action is `enable` or `disable`.").into_response(),
    };
    match result {
        Ok(changed) => {
            tracing::info!(user = %authed.user, destination = %name, action = %action, changed, "console: destination {action}d");
            Redirect::to("/destinations").into_response()
        }
        Err(error) => Problem::store("The destination was not changed", &error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redacted("https://u:p@hooks.example/x?token=abc"),
            "https://hooks.example/x?%E2%80%A6"
        );
        assert_eq!(
            redacted("http://127.0.0.1:9999/helpdesk"),
            "http://127.0.0.1:9999/helpdesk"
        );
        assert_eq!(redacted("::"), "(not a URL)");
    }
}
