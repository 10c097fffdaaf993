//! Typed configuration, shared by every service.
//!
//! One TOML file (`RELAY_CONFIG`, default `relay.toml`), then environment overrides of the form
//! `RELAY__SECTION__FIELD=value` (e.g. `RELAY__AMQP__URL`, `RELAY__INGRESS__LISTEN`), layered by
//! figment (`layers`); an error names the file, line and table of a bad value, or the variable
//! it came from (`explain`). Secrets are never written in the file: a field ending in `_env`
//! names the environment variable that holds the secret. Unknown fields are errors, so a typo
//! stops start-up instead of being ignored; each service validates the sections it uses with a
//! message that names the field.
//! `relay.example.toml` at the repository root documents every field.

mod acrobits;
mod alerting;
mod amqp;
mod console;
mod delivery;
mod destination;
mod explain;
mod failure_alert;
mod ingress;
mod layers;
mod redis;
mod secret;
mod telemetry;
mod web_callback;
mod worker;

pub use alerting::{AccountAlertConfig, AlertFormat, MinBalanceAlertConfig, NotifierConfig};
pub use amqp::AmqpConfig;
pub use console::{ConsoleConfig, ConsoleServices, ConsoleUser};
pub use delivery::DeliveryConfig;
pub use destination::{DestinationConfig, Signing};
pub use failure_alert::FailureAlertConfig;
pub use ingress::{
    AcrobitsAccount, AcrobitsSource, IngressConfig, PasswordScheme, PlivoSource, ReamazeSource,
    SignatureEncoding, SourceConfig, SourceScheme, VoximplantAccount, VoximplantConfig,
};
pub use redis::RedisConfig;
pub use secret::EnvSecret;
pub use telemetry::{LogFormat, TelemetryConfig};
pub use web_callback::{
    MissedCallbacks, PlivoOrigination, Provider, VoximplantOrigination, WebCallbackConfig,
};
pub use worker::{AgentConfig, CallLogConfig, InboundAnswer, WorkerConfig};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML (with environment overrides applied) does not fit the schema: where (the file
    /// and line, or the variable), the table, the key and what is wrong.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A field has a value the relay cannot work with.
    #[error("invalid configuration: `{field}`: {message}")]
    Invalid {
        /// Dotted path of the field, e.g. `destinations.alerts.url`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole configuration tree.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// RabbitMQ connection and topology.
    pub amqp: AmqpConfig,
    /// Redis connection and key lifetimes.
    pub redis: RedisConfig,
    /// Logs, traces and metrics.
    pub telemetry: TelemetryConfig,
    /// relay-ingress.
    pub ingress: IngressConfig,
    /// relay-worker.
    pub worker: WorkerConfig,
    /// relay-delivery.
    pub delivery: DeliveryConfig,
    /// relay-console.
    pub console: ConsoleConfig,
    /// Outbound destinations by name; jobs name one of these.
    pub destinations: BTreeMap<String, DestinationConfig>,
    /// The file this was read from; `None`: no file at all (defaults, loopback only).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Prefix of environment overrides (matched in any case).
pub const ENV_PREFIX: &str = "RELAY__";

impl Config {
    /// Loads the file at `path` (or `RELAY_CONFIG`, or `relay.toml`), applies `RELAY__…`
    /// overrides and reads secrets from the process environment.
    ///
    /// A missing *default* file is fine (defaults apply); a missing named file is an error.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let named = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("RELAY_CONFIG").map(PathBuf::from));
        let mut file = named.clone();
        let text = match &named {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
            None => match std::fs::read_to_string("relay.toml") {
                Ok(text) => {
                    file = Some("relay.toml".into());
                    text
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: "relay.toml".into(),
                        source,
                    });
                }
            },
        };
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let mut config = Self::from_layers(&text, file.as_deref(), &vars, &|name| {
            std::env::var(name).ok()
        })?;
        // Files the configuration names are found beside it, wherever the service runs.
        if let Some(dir) = named.as_deref().and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        if file.is_none() {
            config.loopback_only();
        }
        config.file = file;
        Ok(config)
    }

    /// Without a configuration file nobody chose where to listen: every listener that is still
    /// on its all-interfaces default moves to loopback (an address set through `RELAY__…`
    /// stays), so a relay started by accident exposes neither its public nor its admin ports.
    pub fn loopback_only(&mut self) {
        let defaults = Self::default();
        let loopback = |addr: &mut std::net::SocketAddr, default: std::net::SocketAddr| {
            if *addr == default && addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
        };
        loopback(&mut self.ingress.listen, defaults.ingress.listen);
        loopback(
            &mut self.ingress.admin_listen,
            defaults.ingress.admin_listen,
        );
        loopback(&mut self.worker.admin_listen, defaults.worker.admin_listen);
        loopback(
            &mut self.delivery.admin_listen,
            defaults.delivery.admin_listen,
        );
    }

    /// The warning to log when no configuration file was read, if none was.
    pub fn no_file_warning(&self) -> Option<&'static str> {
        self.file.is_none().then_some(
            "no configuration file (--config, RELAY_CONFIG or ./relay.toml): running on defaults, listening on 127.0.0.1 only",
        )
    }

    /// Makes relative `secret_file` paths relative to `dir` (the configuration file's).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for destination in self.destinations.values_mut() {
            if let Some(file) = &mut destination.secret_file
                && file.is_relative()
            {
                *file = dir.join(&*file);
            }
        }
    }

    /// Parses `text`, applies overrides from `vars` (only those starting with `RELAY__`) and
    /// resolves secrets through `env`.
    pub fn from_toml(
        text: &str,
        vars: &[(String, String)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_layers(text, None, vars, env)
    }

    /// [`Config::from_toml`] of the text of `file`, which errors name.
    fn from_layers(
        text: &str,
        file: Option<&Path>,
        vars: &[(String, String)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let overrides = layers::overrides(vars)?;
        let mut config: Config = layers::figment(text, &overrides)
            .extract()
            .map_err(|error| {
                ConfigError::Parse(explain::layer_error(error, text, file, &overrides))
            })?;
        config.resolve_secrets(env);
        config.validate_common()?;
        Ok(config)
    }

    fn resolve_secrets(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let Some(salt) = &mut self.ingress.voximplant.salt_env {
            salt.resolve(env);
        }
        for account in &mut self.ingress.voximplant.accounts {
            account.api_key_env.resolve(env);
        }
        for source in self.ingress.sources.values_mut() {
            source.secret_env.resolve(env);
        }
        if let Some(reamaze) = &mut self.ingress.reamaze {
            reamaze.secret_env.resolve(env);
        }
        if let Some(acrobits) = &mut self.ingress.acrobits {
            for account in &mut acrobits.accounts {
                for secret in [&mut account.password_hash_env, &mut account.password_env]
                    .into_iter()
                    .flatten()
                {
                    secret.resolve(env);
                }
            }
        }
        if let Some(plivo) = &mut self.ingress.plivo {
            plivo.auth_token_env.resolve(env);
            if let Some(main) = &mut plivo.main_auth_token_env {
                main.resolve(env);
            }
        }
        if let Some(events) = &mut self.ingress.voximplant.events_secret_env {
            events.resolve(env);
        }
        for destination in self.destinations.values_mut() {
            if let Some(secret) = &mut destination.secret_env {
                secret.resolve(env);
            }
        }
        for user in &mut self.console.users {
            user.password_hash_env.resolve(env);
        }
    }

    fn validate_common(&self) -> Result<(), ConfigError> {
        url::Url::parse(&self.amqp.url)
            .map_err(|e| invalid("amqp.url", format!("not a URL: {e}")))?;
        url::Url::parse(&self.redis.url)
            .map_err(|e| invalid("redis.url", format!("not a URL: {e}")))?;
        if self.amqp.retry_tiers.is_empty() {
            return Err(invalid("amqp.retry_tiers", "needs at least one delay"));
        }
        if !self.amqp.retry_tiers.windows(2).all(|w| w[0] < w[1]) {
            return Err(invalid("amqp.retry_tiers", "must be strictly ascending"));
        }
        if self.amqp.retry_tiers[0].is_zero() {
            return Err(invalid("amqp.retry_tiers", "a delay must be positive"));
        }
        if self.amqp.delivery_limit == 0 {
            return Err(invalid("amqp.delivery_limit", "must be at least 1"));
        }
        if self.amqp.unrouted_ttl.is_zero() {
            return Err(invalid("amqp.unrouted_ttl", "must be positive"));
        }
        if self.amqp.unrouted_max_length == 0 {
            return Err(invalid("amqp.unrouted_max_length", "must be at least 1"));
        }
        if self.amqp.confirm_timeout.is_zero() {
            return Err(invalid("amqp.confirm_timeout", "must be positive"));
        }
        if self.redis.breaker_failures == 0 {
            return Err(invalid("redis.breaker_failures", "must be at least 1"));
        }
        if self.redis.probe_interval.is_zero() {
            return Err(invalid("redis.probe_interval", "must be positive"));
        }
        if self.redis.dedup_ttl.is_zero() || self.redis.delivery_record_ttl.is_zero() {
            return Err(invalid("redis", "TTLs must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
