//! `[console]`: relay-console, the operator's web console. It listens on an admin-side port
//! (loopback by default) and only signed-in users see anything.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::serde_text;

use super::secret::EnvSecret;
use super::{Config, ConfigError, invalid};

/// relay-console.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console listens (its pages, `/livez`, `/readyz`, `/metrics`). Keep it off the
    /// public network: it is an operator's tool, like the other services' admin ports.
    pub listen: SocketAddr,
    /// Who may sign in.
    pub users: Vec<ConsoleUser>,
    /// Show phone numbers masked (`+44 20 •••• •567`) until the user reveals one.
    pub mask_numbers: bool,
    /// How long a sign-in lasts without being used.
    #[serde(with = "serde_text")]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (set it when the console is served over TLS, e.g.
    /// behind an HTTPS ingress or proxy). `SameSite=Strict` and `HttpOnly` are always set.
    pub secure_cookies: bool,
    /// Parked messages replayed per second by a replay started from the console.
    pub replay_rate: f64,
    /// The other services' admin endpoints, for the overview's rates (their `/metrics`). Empty
    /// fields default to the admin listeners in this configuration, on loopback when they
    /// listen on every interface.
    pub services: ConsoleServices,
}

/// One console user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// The name typed at sign-in (and written in the log of every action taken).
    pub name: String,
    /// Environment variable holding the user's argon2 password hash (PHC string, e.g. from
    /// `relayctl hash-password`).
    pub password_hash_env: EnvSecret,
}

/// Admin base URLs of the services the overview reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleServices {
    /// relay-ingress's admin URL (e.g. `http://relay-ingress:9090`).
    pub ingress: Option<String>,
    /// relay-worker's admin URL.
    pub worker: Option<String>,
    /// relay-delivery's admin URL.
    pub delivery: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9093)),
            users: Vec::new(),
            mask_numbers: true,
            session_ttl: Duration::from_secs(8 * 3600),
            secure_cookies: false,
            replay_rate: 50.0,
            services: ConsoleServices::default(),
        }
    }
}

impl ConsoleConfig {
    /// The admin base URLs of ingress, worker and delivery, in that order: as configured, or
    /// from their admin listeners.
    pub fn service_urls(&self, config: &Config) -> [(&'static str, String); 3] {
        let from = |addr: SocketAddr| {
            let mut addr = addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        };
        [
            (
                "ingress",
                self.services
                    .ingress
                    .clone()
                    .unwrap_or_else(|| from(config.ingress.admin_listen)),
            ),
            (
                "worker",
                self.services
                    .worker
                    .clone()
                    .unwrap_or_else(|| from(config.worker.admin_listen)),
            ),
            (
                "delivery",
                self.services
                    .delivery
                    .clone()
                    .unwrap_or_else(|| from(config.delivery.admin_listen)),
            ),
        ]
    }
}

impl Config {
    /// Checks what relay-console needs: at least one user, each with a hash that is set.
    pub fn validate_console(&self) -> Result<(), ConfigError> {
        if self.console.users.is_empty() {
            return Err(invalid(
                "console.users",
                "no user can sign in: add a [[console.users]] with name and password_hash_env",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for user in &self.console.users {
            if user.name.trim().is_empty() {
                return Err(invalid("console.users.name", "must not be empty"));
            }
            if !names.insert(user.name.as_str()) {
                return Err(invalid(
                    "console.users.name",
                    format!("`{}` is listed twice", user.name),
                ));
            }
            user.password_hash_env
                .require("console.users.password_hash_env")?;
        }
        if self.console.session_ttl.is_zero() {
            return Err(invalid("console.session_ttl", "must be positive"));
        }
        if !(self.console.replay_rate.is_finite() && self.console.replay_rate > 0.0) {
            return Err(invalid("console.replay_rate", "must be a positive number"));
        }
        for (name, url) in self.console.service_urls(self) {
            url::Url::parse(&url).map_err(|e| {
                invalid(
                    format!("console.services.{name}"),
                    format!("not a URL: {e}"),
                )
            })?;
        }
        Ok(())
    }
}
