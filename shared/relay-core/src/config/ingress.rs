//! `[ingress]`: relay-ingress and its inbound sources.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::serde_text;

use super::{Config, ConfigError, EnvSecret, invalid};

// The Acrobits section lives in its own module; re-exported here for `config::` users.
pub use super::acrobits::{AcrobitsAccount, AcrobitsSource, PasswordScheme};

/// relay-ingress.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressConfig {
    /// Public listener for provider callbacks.
    pub listen: SocketAddr,
    /// Admin listener: `/livez`, `/readyz`, `/metrics`. Keep it off the public network.
    pub admin_listen: SocketAddr,
    /// The URL providers call, as they see it (behind proxies it differs from `listen`); signed-URL
    /// schemes (Plivo, Twilio) verify against it.
    pub public_base_url: String,
    /// Largest accepted request body, in bytes; larger requests get 413.
    pub body_limit_bytes: usize,
    /// `Retry-After` sent with 503 when the broker cannot take an event.
    #[serde(with = "serde_text")]
    pub retry_after: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(with = "serde_text")]
    pub shutdown_grace: Duration,
    /// How long a new connection has to deliver its first request head; slower clients are
    /// disconnected.
    #[serde(with = "serde_text")]
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive after its head; past it the request gets
    /// 408 and its connection is closed.
    #[serde(with = "serde_text")]
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait, idle, for its next complete request head;
    /// keep it above the idle timeout of a proxy or load balancer in front.
    #[serde(with = "serde_text")]
    pub keep_alive_timeout: Duration,
    /// Most connections served at once; at the cap, new clients wait in the listen backlog.
    pub max_connections: usize,
    /// Most requests handled at once; past it a request waits, its body unread, until one
    /// finishes. It bounds memory under many connections (each request in flight holds its
    /// body, its event and its publish) without slowing the relay: far fewer are needed to keep
    /// the broker busy.
    pub max_in_flight: usize,
    /// Voximplant account callbacks.
    pub voximplant: VoximplantConfig,
    /// Generic sources by name, each at `POST /v1/hooks/{name}`.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Signed requests from the Re:amaze helpdesk (`POST /v1/reamaze/{channel}`); the route
    /// answers 404 while this is not configured.
    pub reamaze: Option<ReamazeSource>,
    /// Plivo call callbacks (`/v1/plivo/{answer,hangup,status}`); 404 while not configured.
    pub plivo: Option<PlivoSource>,
    /// Acrobits softphone web callback (`/v1/acrobits/web-callback`); 404 while not configured.
    pub acrobits: Option<AcrobitsSource>,
}

/// The Plivo routes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoSource {
    /// Environment variable holding the (sub)account's auth token (`X-Plivo-Signature-V3`).
    pub auth_token_env: EnvSecret,
    /// Environment variable holding the main account's auth token, which Plivo uses for
    /// `X-Plivo-Signature-Ma-V3` on subaccount callbacks.
    #[serde(default)]
    pub main_auth_token_env: Option<EnvSecret>,
    /// Also accept the older `X-Plivo-Signature-V2` (signed URL without query or params).
    #[serde(default)]
    pub accept_v2: bool,
    /// XML answered to an `answer` request that is not a web-callback leg.
    #[serde(default = "default_answer_xml")]
    pub default_answer_xml: String,
}

fn default_answer_xml() -> String {
    "<Response><Hangup/></Response>".to_owned()
}

/// The Re:amaze route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReamazeSource {
    /// Environment variable holding the shared secret of `X-Reamaze-Hmac-SHA256`.
    pub secret_env: EnvSecret,
}

/// How a generic source signs its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceScheme {
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); `whsec_…`.
    StandardWebhooks,
    /// HMAC-SHA256 of the body in `header`, hex or base64, after an optional `prefix`.
    HmacSha256,
    /// `X-Twilio-Signature` over the public URL and the form parameters (or `bodySHA256`).
    Twilio,
    /// HTTP Basic with `username` and the secret as password.
    Basic,
}

/// Encoding of an `hmac-sha256` signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureEncoding {
    /// Hex digits.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// A generic source (`POST /v1/hooks/{name}`); its events are routed as `<name>.<type>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Signature scheme.
    pub scheme: SourceScheme,
    /// Environment variable holding the secret (signing key, auth token or password).
    pub secret_env: EnvSecret,
    /// User name, for `basic`.
    #[serde(default)]
    pub username: Option<String>,
    /// Header carrying the signature, for `hmac-sha256` (e.g. `X-Hub-Signature-256`).
    #[serde(default)]
    pub header: Option<String>,
    /// Encoding of the `hmac-sha256` signature.
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Prefix before the `hmac-sha256` signature (e.g. `sha256=`).
    #[serde(default)]
    pub prefix: String,
    /// JSON pointer to the event type in the body (e.g. `/type`); without it the type is
    /// `event`. Characters a routing key cannot hold become `_`.
    #[serde(default)]
    pub type_pointer: Option<String>,
    /// JSON pointer to the sender's unique id of the event (e.g. `/id`), used for dedup and the
    /// event id; Standard Webhooks sources use `webhook-id` instead.
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// Accepted clock difference, for `standard-webhooks`.
    #[serde(default = "default_tolerance", with = "serde_text")]
    pub tolerance: Duration,
}

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            public_base_url: "http://127.0.0.1:8080".to_owned(),
            body_limit_bytes: 256 * 1024,
            retry_after: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(20),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 4096,
            max_in_flight: 256,
            voximplant: VoximplantConfig::default(),
            sources: BTreeMap::new(),
            reamaze: None,
            plivo: None,
            acrobits: None,
        }
    }
}

/// Voximplant account callbacks (`POST /v1/voximplant/callbacks`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoximplantConfig {
    /// Environment variable holding the security salt (Control panel → Settings → Callbacks).
    /// None: the empty salt, which Voximplant uses when no salt is set.
    pub salt_env: Option<EnvSecret>,
    /// Accounts whose callbacks are accepted; callbacks of any other account get 401.
    pub accounts: Vec<VoximplantAccount>,
    /// Environment variable holding the `whsec_…` secret with which the relay's own Voximplant
    /// scenario signs its call events (`POST /v1/voximplant/events`); unset: the route answers
    /// 404.
    pub events_secret_env: Option<EnvSecret>,
}

/// One Voximplant account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoximplantAccount {
    /// Numeric account id.
    pub account_id: u64,
    /// Environment variable holding the account's API key.
    pub api_key_env: EnvSecret,
}

impl Config {
    /// Checks what relay-ingress needs.
    pub fn validate_ingress(&self) -> Result<(), ConfigError> {
        let base = url::Url::parse(&self.ingress.public_base_url)
            .map_err(|e| invalid("ingress.public_base_url", format!("not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("ingress.public_base_url", "must be http or https"));
        }
        if self.ingress.body_limit_bytes == 0 {
            return Err(invalid("ingress.body_limit_bytes", "must be positive"));
        }
        let ingress = &self.ingress;
        for (field, timeout) in [
            ("header_read_timeout", ingress.header_read_timeout),
            ("body_read_timeout", ingress.body_read_timeout),
            ("keep_alive_timeout", ingress.keep_alive_timeout),
        ] {
            if timeout.is_zero() {
                return Err(invalid(format!("ingress.{field}"), "must be positive"));
            }
        }
        if ingress.max_connections == 0 {
            return Err(invalid("ingress.max_connections", "must be positive"));
        }
        if ingress.max_in_flight == 0 {
            return Err(invalid("ingress.max_in_flight", "must be positive"));
        }
        let vox = &self.ingress.voximplant;
        if let Some(salt) = &vox.salt_env {
            salt.require("ingress.voximplant.salt_env")?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, account) in vox.accounts.iter().enumerate() {
            // Fail closed: an account without its key would be a source nobody can verify.
            account
                .api_key_env
                .require(&format!("ingress.voximplant.accounts[{i}].api_key_env"))?;
            if !seen.insert(account.account_id) {
                return Err(invalid(
                    format!("ingress.voximplant.accounts[{i}].account_id"),
                    format!("account {} is listed twice", account.account_id),
                ));
            }
        }
        if let Some(reamaze) = &self.ingress.reamaze {
            reamaze.secret_env.require("ingress.reamaze.secret_env")?;
        }
        if let Some(acrobits) = &self.ingress.acrobits {
            acrobits.validate()?;
        }
        if let Some(plivo) = &self.ingress.plivo {
            plivo
                .auth_token_env
                .require("ingress.plivo.auth_token_env")?;
            if let Some(main) = &plivo.main_auth_token_env {
                main.require("ingress.plivo.main_auth_token_env")?;
            }
            if !plivo
                .default_answer_xml
                .trim_start()
                .starts_with("<Response")
            {
                return Err(invalid(
                    "ingress.plivo.default_answer_xml",
                    "must be a Plivo <Response> document",
                ));
            }
        }
        if let Some(events) = &vox.events_secret_env {
            let secret = events.require("ingress.voximplant.events_secret_env")?;
            if !secret.starts_with("whsec_") {
                return Err(invalid(
                    "ingress.voximplant.events_secret_env",
                    format!("`{}` must hold a `whsec_…` secret", events.var()),
                ));
            }
        }
        for (name, source) in &self.ingress.sources {
            let field = |f: &str| format!("ingress.sources.{name}.{f}");
            if !crate::routing::is_key_word(name) {
                return Err(invalid(
                    format!("ingress.sources.{name}"),
                    "a source name is 1-64 letters, digits, `_` or `-`",
                ));
            }
            // Fail closed: a source without its secret would accept anything.
            let secret = source.secret_env.require(&field("secret_env"))?;
            match source.scheme {
                SourceScheme::StandardWebhooks if !secret.starts_with("whsec_") => {
                    return Err(invalid(
                        field("secret_env"),
                        format!("`{}` must hold a `whsec_…` secret", source.secret_env.var()),
                    ));
                }
                SourceScheme::HmacSha256 if source.header.as_deref().is_none_or(str::is_empty) => {
                    return Err(invalid(field("header"), "required by hmac-sha256"));
                }
                SourceScheme::Basic if source.username.is_none() => {
                    return Err(invalid(field("username"), "required by basic"));
                }
                _ => {}
            }
            for (f, pointer) in [
                ("type_pointer", &source.type_pointer),
                ("id_pointer", &source.id_pointer),
            ] {
                if pointer.as_deref().is_some_and(|p| !p.starts_with('/')) {
                    return Err(invalid(field(f), "a JSON pointer starts with `/`"));
                }
            }
        }
        Ok(())
    }
}
