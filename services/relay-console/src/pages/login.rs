//! Signing in and out.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Verdict;
use crate::session::{self, Authed, COOKIE, LOGIN_COOKIE, SessionRecord};
use crate::state::AppState;
use crate::web::{self, Problem};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: Option<&'static str>,
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path of this console, else the overview.
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// The sign-in form, with a fresh double-submit token.
fn form(
    state: &AppState,
    next: String,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let token = session::token();
    let mut response = web::render(LoginPage {
        csrf: token.clone(),
        next,
        error,
    });
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            LOGIN_COOKIE,
            &token,
            Some(3600),
            state.config().console.secure_cookies,
        ),
    );
    response
}

/// `GET /login`.
pub(crate) async fn page(State(state): State<AppState>, Query(query): Query<Next>) -> Response {
    form(&state, local(query.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    csrf: Option<String>,
    next: Option<String>,
    username: String,
    password: String,
}

/// `POST /login`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(input): Form<SignIn>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !session::same(input.csrf.as_deref().unwrap_or_default(), expected) {
        return Problem::csrf().into_response();
    }
    let next = local(input.next.as_deref());
    let name = input.username.trim();
    match state.users().verify(name, &input.password).await {
        Verdict::Accepted => {}
        Verdict::Refused => {
            tracing::warn!(user = %name, "console: sign-in refused");
            return form(
                &state,
                next,
                Some("Wrong name or password."),
                StatusCode::UNAUTHORIZED,
            );
        }
        Verdict::LockedOut => {
            tracing::warn!(user = %name, "console: sign-in refused, name locked after repeated failures");
            return form(
                &state,
                next,
                Some("Too many failed sign-ins for this name: try again in a minute."),
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
    }
    let token = session::token();
    let record = SessionRecord {
        user: name.to_owned(),
        csrf: session::token(),
        since: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    let json = serde_json::to_string(&record).unwrap_or_default();
    let console = &state.config().console;
    if let Err(error) = state
        .store()
        .put_console_session(&session::token_hash(&token), &json, console.session_ttl)
        .await
    {
        return Problem::store("Cannot sign in", &error).into_response();
    }
    tracing::info!(user = %name, "console: signed in");
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(
            COOKIE,
            &token,
            Some(console.session_ttl.as_secs()),
            console.secure_cookies,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(LOGIN_COOKIE, "", Some(0), console.secure_cookies),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct Csrf {
    csrf: Option<String>,
}

/// `POST /logout`.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    authed: Authed,
    Form(input): Form<Csrf>,
) -> Response {
    if let Err(problem) = authed.check_csrf(input.csrf.as_deref()) {
        return problem.into_response();
    }
    if let Err(error) = state.store().end_console_session(&authed.token_hash).await {
        return Problem::store("Cannot sign out", &error).into_response();
    }
    tracing::info!(user = %authed.user, "console: signed out");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(COOKIE, "", Some(0), state.config().console.secure_cookies),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_path_is_followed_after_sign_in() {
        assert_eq!(local(Some("/calls?q=1")), "/calls?q=1");
        assert_eq!(local(Some("//evil.example/")), "/");
        assert_eq!(local(Some("https://evil.example/")), "/");
        assert_eq!(local(Some("/\\evil")), "/");
        assert_eq!(local(None), "/");
    }
}
