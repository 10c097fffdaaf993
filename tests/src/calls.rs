//! Signed call callbacks, as the providers (and the relay's own Voximplant scenario) send them.

use std::net::SocketAddr;

use relay_core::config::{EnvSecret, PlivoSource};
use relay_signing::{plivo, standard_webhooks};

use crate::TestEnv;

/// The Plivo auth token of every test environment that enables Plivo.
pub const PLIVO_TOKEN: &str = "test-plivo-token";
/// The public base URL Plivo signs over in tests.
pub const PUBLIC_BASE: &str = "https://relay.example.com";
/// The Standard Webhooks secret of the relay's own Voximplant scenario in tests.
pub const EVENTS_SECRET: &str = "whsec_dGVzdC1zY2VuYXJpby1ldmVudHMtc2VjcmV0LTAx";

impl TestEnv {
    /// Enables the Plivo routes, signed over [`PUBLIC_BASE`] with [`PLIVO_TOKEN`].
    pub fn plivo(&mut self) {
        self.config.ingress.public_base_url = PUBLIC_BASE.to_owned();
        self.config.ingress.plivo = Some(PlivoSource {
            auth_token_env: self.secret("TEST_PLIVO_TOKEN", PLIVO_TOKEN),
            main_auth_token_env: None,
            accept_v2: false,
            default_answer_xml: "<Response><Hangup/></Response>".to_owned(),
        });
    }

    /// Enables the Voximplant scenario events route with [`EVENTS_SECRET`].
    pub fn voximplant_events(&mut self) {
        self.config.ingress.voximplant.events_secret_env =
            Some(self.secret("TEST_EVENTS_SECRET", EVENTS_SECRET));
    }

    /// A secret the configuration names by `var`, remembered so that child processes get it.
    pub fn secret(&mut self, var: &str, value: &str) -> EnvSecret {
        self.secrets.retain(|(v, _)| v != var);
        self.secrets.push((var.to_owned(), value.to_owned()));
        EnvSecret::with_value(var, value)
    }
}

/// Posts a Plivo callback to `path` (e.g. `/v1/plivo/hangup`, a query allowed), form-encoded
/// and signed with `X-Plivo-Signature-V3` exactly as Plivo signs it.
pub async fn plivo_callback(
    addr: SocketAddr,
    path: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    let signature = plivo::sign_v3(
        PLIVO_TOKEN,
        &format!("{PUBLIC_BASE}{path}"),
        plivo::Method::Post,
        &params,
        &nonce,
    )
    .expect("a signable callback");
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(plivo::NONCE_V3, nonce)
        .header(plivo::SIGNATURE_V3, signature)
        .body(body)
        .send()
        .await
        .expect("ingress answers")
}

/// Posts a call event of the relay's own Voximplant scenario, Standard Webhooks signed.
pub async fn voximplant_event(addr: SocketAddr, body: &serde_json::Value) -> reqwest::Response {
    let key = standard_webhooks::Secret::parse(EVENTS_SECRET).expect("a whsec secret");
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let bytes = serde_json::to_vec(body).expect("json");
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/voximplant/events"))
        .header("content-type", "application/json")
        .header(standard_webhooks::ID_HEADER, &id)
        .header(standard_webhooks::TIMESTAMP_HEADER, now.to_string())
        .header(
            standard_webhooks::SIGNATURE_HEADER,
            standard_webhooks::sign(&key, &id, now, &bytes),
        )
        .body(bytes)
        .send()
        .await
        .expect("ingress answers")
}
