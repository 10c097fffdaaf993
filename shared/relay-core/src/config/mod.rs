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
mod tests {
    use super::*;
    use std::time::Duration;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = Config::from_toml("", &[], &no_env).unwrap();
        assert_eq!(c.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(c.ingress.listen.port(), 8080);
        assert_eq!(c.ingress.admin_listen.port(), 9090);
        assert_eq!(c.worker.admin_listen.port(), 9091);
        assert_eq!(c.delivery.admin_listen.port(), 9092);
    }

    #[test]
    fn environment_overrides_file_values() {
        let vars = vec![
            ("RELAY__AMQP__URL".to_owned(), "amqp://x:y@h:1/v".to_owned()),
            ("RELAY__WORKER__PREFETCH".to_owned(), "7".to_owned()),
            (
                "RELAY__AMQP__RETRY_TIERS".to_owned(),
                r#"["1s", "2s"]"#.to_owned(),
            ),
            ("UNRELATED".to_owned(), "1".to_owned()),
        ];
        let c = Config::from_toml("[worker]\nprefetch = 3\n", &vars, &no_env).unwrap();
        assert_eq!(c.amqp.url, "amqp://x:y@h:1/v");
        assert_eq!(c.worker.prefetch, 7);
        assert_eq!(
            c.amqp.retry_tiers,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
    }

    #[test]
    fn override_names_are_case_insensitive_and_values_read_as_toml() {
        let vars = vec![
            ("relay__Worker__Prefetch".to_owned(), "9".to_owned()),
            (
                "RELAY__WORKER__CALL_LOG__RECORDINGS".to_owned(),
                "false".to_owned(),
            ),
            (
                "RELAY__WORKER__CALL_LOG__DEFAULT_REGION".to_owned(),
                "\"US\"".to_owned(),
            ),
            (
                "RELAY__DESTINATIONS__VOXIMPLANT-API__URL".to_owned(),
                "http://127.0.0.1:1/x".to_owned(),
            ),
        ];
        let text = "[worker.call_log]\nrecordings = true\n[destinations.voximplant-api]\nurl = \"http://h/\"\n";
        let c = Config::from_toml(text, &vars, &no_env).unwrap();
        assert_eq!(c.worker.prefetch, 9);
        let call_log = c.worker.call_log.as_ref().unwrap();
        assert!(!call_log.recordings);
        assert_eq!(call_log.default_region.as_deref(), Some("US"));
        assert_eq!(c.destinations["voximplant-api"].url, "http://127.0.0.1:1/x");
    }

    #[test]
    fn malformed_override_names_are_refused_by_name() {
        for name in ["RELAY__", "RELAY__AMQP____URL", "RELAY__AMQP__"] {
            let vars = vec![(name.to_owned(), "1".to_owned())];
            match Config::from_toml("", &vars, &no_env).unwrap_err() {
                ConfigError::Invalid { field, message } => {
                    assert_eq!(field, name);
                    assert_eq!(
                        message,
                        "malformed override name (use RELAY__SECTION__FIELD)"
                    );
                }
                other => panic!("{name}: {other}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Config::from_toml("[amqp]\nurll = \"x\"\n", &[], &no_env).unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn type_errors_quote_the_key() {
        let vars = vec![("RELAY__WORKER__PREFETCH".to_owned(), "many".to_owned())];
        let err = Config::from_toml("", &vars, &no_env).unwrap_err();
        assert!(err.to_string().contains("prefetch"), "{err}");
    }

    #[test]
    fn secrets_come_from_the_environment_and_never_print() {
        let text = r#"
            [ingress.voximplant]
            salt_env = "SALT"
            [[ingress.voximplant.accounts]]
            account_id = 42
            api_key_env = "KEY"
        "#;
        let env = |name: &str| match name {
            "SALT" => Some("pepper".to_owned()),
            "KEY" => Some("hunter2".to_owned()),
            _ => None,
        };
        let c = Config::from_toml(text, &[], &env).unwrap();
        c.validate_ingress().unwrap();
        assert_eq!(
            c.ingress.voximplant.accounts[0].api_key_env.value(),
            Some("hunter2")
        );
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("pepper"),
            "{printed}"
        );
    }

    #[test]
    fn missing_secret_fails_closed_naming_the_field() {
        let text = "[[ingress.voximplant.accounts]]\naccount_id = 1\napi_key_env = \"NOPE\"\n";
        let c = Config::from_toml(text, &[], &no_env).unwrap();
        let err = c.validate_ingress().unwrap_err().to_string();
        assert!(
            err.contains("ingress.voximplant.accounts[0].api_key_env"),
            "{err}"
        );
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn handlers_run_when_their_section_is_present_and_need_their_destination() {
        let c = Config::from_toml("", &[], &no_env).unwrap();
        assert!(c.enabled_handlers().is_empty());
        c.validate_worker().unwrap();

        let c = Config::from_toml("[worker.min_balance_alert]\n", &[], &no_env).unwrap();
        assert_eq!(c.enabled_handlers(), [crate::routing::MIN_BALANCE_ALERT]);
        let err = c.validate_worker().unwrap_err().to_string();
        assert!(
            err.contains("worker.min_balance_alert.destination"),
            "{err}"
        );

        let text = r#"
            [worker.call_log]
            destination = "helpdesk"
            [worker.call_log.channels]
            "+15550001000" = "brand-b"
            [destinations.helpdesk]
            url = "http://127.0.0.1:1/h"
        "#;
        let c = Config::from_toml(text, &[], &no_env).unwrap();
        assert_eq!(c.enabled_handlers(), [crate::routing::CALL_LOG]);
        let err = c.validate_worker().unwrap_err().to_string();
        assert!(err.contains("worker.call_log.channels"), "{err}");
        assert!(err.contains("brand-b"), "{err}");
    }

    #[test]
    fn call_log_limits_are_checked() {
        let base = "[destinations.helpdesk]\nurl = \"http://127.0.0.1:1/h\"\n[worker.call_log]\n";
        let check = |extra: &str| {
            Config::from_toml(&format!("{base}{extra}"), &[], &no_env)
                .unwrap()
                .validate_worker()
                .map_err(|e| e.to_string())
        };
        check("").unwrap();
        assert!(
            check("session_ttl = \"1h\"\n")
                .unwrap_err()
                .contains("session_ttl")
        );
        assert!(
            check("default_region = \"usa\"\n")
                .unwrap_err()
                .contains("default_region")
        );
        assert!(
            check("prefetch = 0\n")
                .unwrap_err()
                .contains("worker.call_log.prefetch")
        );
    }

    #[test]
    fn delivery_checks_destination_secrets() {
        let text = r#"
            [destinations.alerts]
            url = "http://127.0.0.1:1/x"
            signing = "standard-webhooks"
            secret_env = "WH"
        "#;
        let bad = |name: &str| (name == "WH").then(|| "not-whsec".to_owned());
        let err = Config::from_toml(text, &[], &bad)
            .unwrap()
            .validate_delivery()
            .unwrap_err()
            .to_string();
        assert!(err.contains("destinations.alerts.secret_env"), "{err}");
        let good = |name: &str| (name == "WH").then(|| "whsec_AAAA".to_owned());
        Config::from_toml(text, &[], &good)
            .unwrap()
            .validate_delivery()
            .unwrap();
    }

    #[test]
    fn sources_fail_closed_and_name_the_field() {
        let text = r#"
            [ingress.sources.gh]
            scheme = "hmac-sha256"
            secret_env = "GH_SECRET"
        "#;
        let with = |name: &str| (name == "GH_SECRET").then(|| "s".to_owned());
        let err = Config::from_toml(text, &[], &with)
            .unwrap()
            .validate_ingress()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingress.sources.gh.header"), "{err}");
        let err = Config::from_toml(text, &[], &no_env)
            .unwrap()
            .validate_ingress()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingress.sources.gh.secret_env"), "{err}");
        let sw =
            "[ingress.sources.sw]\nscheme = \"standard-webhooks\"\nsecret_env = \"GH_SECRET\"\n";
        let err = Config::from_toml(sw, &[], &with)
            .unwrap()
            .validate_ingress()
            .unwrap_err()
            .to_string();
        assert!(err.contains("whsec_"), "{err}");
        let bad_name = "[ingress.sources.\"a.b\"]\nscheme = \"basic\"\nsecret_env = \"GH_SECRET\"\nusername = \"u\"\n";
        let err = Config::from_toml(bad_name, &[], &with)
            .unwrap()
            .validate_ingress()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingress.sources.a.b"), "{err}");
    }

    #[test]
    fn retry_tiers_must_ascend() {
        let err = Config::from_toml("[amqp]\nretry_tiers = [\"5s\", \"1s\"]\n", &[], &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("amqp.retry_tiers"), "{err}");
    }

    #[test]
    fn without_a_file_every_default_listener_is_loopback_and_a_warning_says_so() {
        let mut config = Config::from_toml("", &[], &|_: &str| None).unwrap();
        config.ingress.admin_listen = "0.0.0.0:9999".parse().unwrap(); // chosen: kept
        config.loopback_only();
        assert_eq!(config.ingress.listen.ip().to_string(), "127.0.0.1");
        assert_eq!(config.worker.admin_listen.ip().to_string(), "127.0.0.1");
        assert_eq!(config.delivery.admin_listen.ip().to_string(), "127.0.0.1");
        assert_eq!(config.ingress.admin_listen.to_string(), "0.0.0.0:9999");
        assert!(config.no_file_warning().unwrap().contains("127.0.0.1 only"));
        config.file = Some("relay.toml".into());
        assert!(config.no_file_warning().is_none());
    }

    #[test]
    fn the_example_configuration_parses_with_no_warnings() {
        // Every struct of the tree denies unknown fields, so a key the example documents that
        // the schema lacks (a typo, a field since removed) fails here rather than being ignored.
        // Loading has one warning, the missing file's; relay-core logs nothing itself (it has
        // no `tracing`), nor does figment. No overrides: the developer's `RELAY__…` variables
        // must not mask a mistake of the file.
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../relay.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut config = Config::from_layers(&text, Some(&path), &[], &no_env)
            .unwrap_or_else(|error| panic!("{error}"));
        config.file = Some(path);
        assert_eq!(config.no_file_warning(), None);
    }

    #[test]
    fn the_example_configuration_loads_from_its_file_as_is() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../relay.example.toml");
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.file.as_deref(), Some(path.as_path()));
        assert!(config.no_file_warning().is_none());
        // Its secret file is found beside it, wherever the test runs.
        let key = config.destinations["voximplant-api"]
            .secret_file
            .clone()
            .unwrap();
        assert!(key.exists(), "{}", key.display());
    }
}
