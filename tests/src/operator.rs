//! An operator at the console without a browser: a plain HTTP client that signs in (the
//! double-submit token of the sign-in form, then the session cookie) and reads pages and posts
//! forms with the session's CSRF token. For handler-level tests of the console's pages; the
//! browser tests (`console.rs`) drive the same pages through Chromium.

use std::net::SocketAddr;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::browser::{CONSOLE_PASSWORD, CONSOLE_USER};

/// A signed-in operator.
pub struct Operator {
    client: reqwest::Client,
    base: String,
    cookie: String,
    /// The session's CSRF token, read from the sign-out form.
    pub csrf: String,
}

/// A page as the console answered it.
pub struct Page {
    /// Its status.
    pub status: StatusCode,
    /// Its `Location`, for a redirect.
    pub location: Option<String>,
    /// Its HTML.
    pub html: String,
}

impl Page {
    /// How often `needle` occurs in the page.
    pub fn count(&self, needle: &str) -> usize {
        self.html.matches(needle).count()
    }
}

/// The value of the hidden `csrf` field of the first form in `html`.
pub fn csrf_field(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The `name=value` of the `Set-Cookie` named `name` in `response`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

impl Operator {
    /// Signs in to the console at `addr` as the test user.
    pub async fn sign_in(addr: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let base = format!("http://{addr}");
        let form = client
            .get(format!("{base}/login"))
            .send()
            .await
            .expect("the sign-in page");
        let login_cookie =
            set_cookie(&form, "relay_console_login").expect("a sign-in token cookie");
        let html = form.text().await.expect("the sign-in page's HTML");
        let token = csrf_field(&html).expect("the sign-in form's token");
        let signed = client
            .post(format!("{base}/login"))
            .header(COOKIE, &login_cookie)
            .form(&[
                ("csrf", token.as_str()),
                ("next", "/"),
                ("username", CONSOLE_USER),
                ("password", CONSOLE_PASSWORD),
            ])
            .send()
            .await
            .expect("signing in");
        assert_eq!(signed.status(), StatusCode::SEE_OTHER, "signed in");
        let cookie = set_cookie(&signed, "relay_console").expect("a session cookie");
        let mut operator = Self {
            client,
            base,
            cookie,
            csrf: String::new(),
        };
        let overview = operator.get("/").await;
        assert_eq!(overview.status, StatusCode::OK);
        operator.csrf = csrf_field(&overview.html).expect("the sign-out form's token");
        operator
    }

    /// `GET path` with the session.
    pub async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("the console answers");
        Self::page(response).await
    }

    /// `POST path` with the session and `form` (add `("csrf", &operator.csrf)` to pass).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .expect("the console answers");
        Self::page(response).await
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let html = response.text().await.unwrap_or_default();
        Page {
            status,
            location,
            html,
        }
    }
}
