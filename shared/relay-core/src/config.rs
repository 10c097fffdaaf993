//! Typed configuration, shared by every service.
//!
//! One TOML file (`RELAY_CONFIG`, default `relay.toml`), then environment overrides of the form
//! `RELAY__SECTION__FIELD=value` (e.g. `RELAY__AMQP__URL`, `RELAY__INGRESS__LISTEN`). Secrets are
//! never written in the file: a field ending in `_env` names the environment variable that holds
//! the secret. Unknown fields are errors, so a typo stops start-up instead of being ignored; each
//! service validates the sections it uses with a message that names the field.
//! `relay.example.toml` at the repository root documents every field.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::duration::{serde_text, serde_text_vec};

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
    /// The TOML (with environment overrides applied) does not fit the schema.
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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A secret named by an environment variable. The file holds only the variable's name; the value
/// is read at load time and never printed (`Debug` shows the name only).
#[derive(Clone, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub struct EnvSecret {
    var: String,
    value: Option<Arc<SecretString>>,
}

impl EnvSecret {
    /// A secret with a known value (tests, tools). `var` is only used in messages.
    pub fn with_value(var: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            value: Some(Arc::new(SecretString::from(value.into()))),
        }
    }

    /// The environment variable's name.
    pub fn var(&self) -> &str {
        &self.var
    }

    /// The secret, if the variable was set.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref().map(|s| s.expose_secret())
    }

    /// The secret, or an error naming `field` and the variable.
    pub fn require(&self, field: &str) -> Result<&str, ConfigError> {
        self.value().ok_or_else(|| {
            invalid(
                field,
                format!("environment variable `{}` is not set or empty", self.var),
            )
        })
    }

    fn resolve(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if self.value.is_none() {
            self.value = env(&self.var)
                .filter(|v| !v.is_empty())
                .map(|v| Arc::new(SecretString::from(v)));
        }
    }
}

impl From<String> for EnvSecret {
    fn from(var: String) -> Self {
        Self { var, value: None }
    }
}

impl From<EnvSecret> for String {
    fn from(secret: EnvSecret) -> Self {
        secret.var
    }
}

impl std::fmt::Debug for EnvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.value.is_some() { "set" } else { "unset" };
        write!(f, "EnvSecret(${} {state})", self.var)
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
}

/// RabbitMQ.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URI, vhost included (`%2f` is `/`). Contains credentials: never logged.
    pub url: String,
    /// How long a publish may wait for the broker's confirm before it counts as failed.
    #[serde(with = "serde_text")]
    pub confirm_timeout: Duration,
    /// `x-delivery-limit` of the handler queues and `relay.deliveries`: a message redelivered
    /// this many times (consumer crashes, requeues) is dead-lettered instead of looping.
    pub delivery_limit: u32,
    /// Delay tiers of durable retries, ascending; one `relay.retry.<delay>` queue each.
    #[serde(with = "serde_text_vec")]
    pub retry_tiers: Vec<Duration>,
    /// Upper bound of the pause between reconnection attempts.
    #[serde(with = "serde_text")]
    pub reconnect_max_delay: Duration,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            confirm_timeout: Duration::from_secs(5),
            delivery_limit: 10,
            retry_tiers: [1, 5, 30, 120, 600, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            reconnect_max_delay: Duration::from_secs(5),
        }
    }
}

/// Redis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL. May contain a password: never logged.
    pub url: String,
    /// Prefix of every key the relay writes.
    pub key_prefix: String,
    /// Budget of one Redis operation; past it the operation counts as Redis being unavailable.
    #[serde(with = "serde_text")]
    pub op_timeout: Duration,
    /// How long a dedup mark is kept.
    #[serde(with = "serde_text")]
    pub dedup_ttl: Duration,
    /// How long a delivery record is kept.
    #[serde(with = "serde_text")]
    pub delivery_record_ttl: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "relay:".to_owned(),
            op_timeout: Duration::from_millis(250),
            dedup_ttl: Duration::from_secs(7 * 86_400),
            delivery_record_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, pretty otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log format.
    pub log_format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// OTLP/HTTP endpoint for traces (e.g. `http://otel-collector:4318`); none: traces are only
    /// propagated, not exported. `OTEL_EXPORTER_OTLP_ENDPOINT` wins when set.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Auto,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
        }
    }
}

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

/// How the Acrobits app sends the password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordScheme {
    /// The password itself (HTTPS only), checked against the account's argon2 hash.
    #[default]
    Plain,
    /// A salted SHA-1 built from `sha1_template` with the request's nonce; checked against the
    /// account's plaintext password secret.
    SaltedSha1,
}

/// The Acrobits web callback route. Parameter names come from the provisioning template, so
/// each is a list of accepted names (defaults from Acrobits' documentation).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcrobitsSource {
    /// Names of the user name parameter.
    pub username_params: Vec<String>,
    /// Names of the password (or salted hash) parameter.
    pub password_params: Vec<String>,
    /// Names of the number to call.
    pub target_params: Vec<String>,
    /// Names of the number to call back.
    pub callback_params: Vec<String>,
    /// How the password is sent.
    pub password_scheme: PasswordScheme,
    /// Names of the nonce parameter, for `salted-sha1`.
    pub nonce_params: Vec<String>,
    /// What is hashed for `salted-sha1`, with `{nonce}` and `{password}` filled in.
    pub sha1_template: String,
    /// E.164 prefixes both numbers must start with (toll-fraud guard); empty: any number.
    pub allowed_prefixes: Vec<String>,
    /// Requests per account per minute; 0: unlimited.
    pub rate_limit_per_minute: u32,
    /// Accounts allowed to request callbacks.
    pub accounts: Vec<AcrobitsAccount>,
}

impl Default for AcrobitsSource {
    fn default() -> Self {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            username_params: names(&["username", "u"]),
            password_params: names(&["password", "p"]),
            target_params: names(&["targetNumber", "to"]),
            callback_params: names(&["callbackNumber", "callback"]),
            password_scheme: PasswordScheme::Plain,
            nonce_params: names(&["nonce"]),
            sha1_template: "{nonce}{password}".to_owned(),
            allowed_prefixes: Vec::new(),
            rate_limit_per_minute: 6,
            accounts: Vec::new(),
        }
    }
}

/// One Acrobits account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcrobitsAccount {
    /// User name as the app sends it.
    pub username: String,
    /// Environment variable holding the argon2 hash of the password (`relayctl hash-password`),
    /// for the `plain` scheme.
    #[serde(default)]
    pub password_hash_env: Option<EnvSecret>,
    /// Environment variable holding the password itself, for `salted-sha1` only.
    #[serde(default)]
    pub password_env: Option<EnvSecret>,
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

/// relay-worker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Unacknowledged events per handler at once (`basic_qos`).
    pub prefetch: u16,
    /// How long in-flight events may take to finish after SIGTERM.
    #[serde(with = "serde_text")]
    pub shutdown_grace: Duration,
    /// The min-balance alert handler.
    pub min_balance_alert: MinBalanceAlertConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9091)),
            prefetch: 32,
            shutdown_grace: Duration::from_secs(20),
            min_balance_alert: MinBalanceAlertConfig::default(),
        }
    }
}

/// Shape of an alert request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertFormat {
    /// The relay's own JSON alert, for a signed webhook.
    #[default]
    Webhook,
    /// Alertmanager `POST /api/v2/alerts`.
    Alertmanager,
    /// Slack incoming webhook `{"text": …}`.
    Slack,
}

/// The min-balance alert handler.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinBalanceAlertConfig {
    /// Destination (a key of `[destinations]`) that receives the alerts.
    pub destination: String,
    /// Request shape for that destination.
    pub format: AlertFormat,
}

impl Default for MinBalanceAlertConfig {
    fn default() -> Self {
        Self {
            destination: "alerts".to_owned(),
            format: AlertFormat::Webhook,
        }
    }
}

/// relay-delivery.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Jobs in flight at once (`basic_qos`).
    pub prefetch: u16,
    /// How long in-flight jobs may take to finish after SIGTERM.
    #[serde(with = "serde_text")]
    pub shutdown_grace: Duration,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max`.
    #[serde(with = "serde_text")]
    pub backoff_base: Duration,
    /// Largest retry delay.
    #[serde(with = "serde_text")]
    pub backoff_max: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            prefetch: 64,
            shutdown_grace: Duration::from_secs(20),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// How delivery signs requests to a destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signing {
    /// No signature.
    #[default]
    None,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); the secret is
    /// `whsec_<base64>`.
    StandardWebhooks,
    /// Re:amaze `X-Reamaze-Hmac-SHA256` over the body.
    ReamazeHmac,
    /// HTTP Basic with `username` and the secret as password.
    Basic,
}

/// An outbound destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Base URL; a job's path is appended.
    pub url: String,
    /// Signature scheme.
    #[serde(default)]
    pub signing: Signing,
    /// Environment variable holding the signing secret or password.
    #[serde(default)]
    pub secret_env: Option<EnvSecret>,
    /// User name for `basic`.
    #[serde(default)]
    pub username: Option<String>,
    /// Timeout of one attempt, connection included.
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// Attempts before a retryable failure is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Age after which a retryable failure is dead-lettered.
    #[serde(default = "default_max_age", with = "serde_text")]
    pub max_age: Duration,
    /// Extra non-secret headers on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    8
}
fn default_max_age() -> Duration {
    Duration::from_secs(86_400)
}

impl DestinationConfig {
    /// A destination with defaults for everything but the URL and signing.
    pub fn new(url: impl Into<String>, signing: Signing, secret: Option<EnvSecret>) -> Self {
        Self {
            url: url.into(),
            signing,
            secret_env: secret,
            username: None,
            timeout: default_timeout(),
            max_attempts: default_max_attempts(),
            max_age: default_max_age(),
            headers: BTreeMap::new(),
        }
    }
}

/// Prefix of environment overrides.
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
        let text = match &named {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
            None => match std::fs::read_to_string("relay.toml") {
                Ok(text) => text,
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
        Self::from_toml(&text, &vars, &|name| std::env::var(name).ok())
    }

    /// Parses `text`, applies overrides from `vars` (only those starting with `RELAY__`) and
    /// resolves secrets through `env`.
    pub fn from_toml(
        text: &str,
        vars: &[(String, String)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        for (name, value) in vars {
            if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                apply_override(&mut table, path, value)?;
            }
        }
        // Deserialise from the merged document's text so that a type error quotes the line with
        // the offending key, whether it came from the file or from the environment.
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut config: Config =
            toml::from_str(&merged).map_err(|e| ConfigError::Parse(e.to_string()))?;
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
        if self.amqp.confirm_timeout.is_zero() {
            return Err(invalid("amqp.confirm_timeout", "must be positive"));
        }
        if self.redis.dedup_ttl.is_zero() || self.redis.delivery_record_ttl.is_zero() {
            return Err(invalid("redis", "TTLs must be positive"));
        }
        Ok(())
    }

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
            for (i, account) in acrobits.accounts.iter().enumerate() {
                let field = |f: &str| format!("ingress.acrobits.accounts[{i}].{f}");
                match acrobits.password_scheme {
                    PasswordScheme::Plain => {
                        let hash = account
                            .password_hash_env
                            .as_ref()
                            .ok_or_else(|| {
                                invalid(field("password_hash_env"), "required by the plain scheme")
                            })?
                            .require(&field("password_hash_env"))?;
                        if !hash.starts_with("$argon2") {
                            return Err(invalid(
                                field("password_hash_env"),
                                "must hold an argon2 hash (relayctl hash-password)",
                            ));
                        }
                    }
                    PasswordScheme::SaltedSha1 => {
                        account
                            .password_env
                            .as_ref()
                            .ok_or_else(|| {
                                invalid(field("password_env"), "required by the salted-sha1 scheme")
                            })?
                            .require(&field("password_env"))?;
                    }
                }
            }
            for (i, prefix) in acrobits.allowed_prefixes.iter().enumerate() {
                if !prefix.starts_with('+') || !prefix[1..].bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        format!("ingress.acrobits.allowed_prefixes[{i}]"),
                        "an E.164 prefix such as \"+1\"",
                    ));
                }
            }
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

    /// Checks what relay-worker needs.
    pub fn validate_worker(&self) -> Result<(), ConfigError> {
        let name = &self.worker.min_balance_alert.destination;
        if !self.destinations.contains_key(name) {
            return Err(invalid(
                "worker.min_balance_alert.destination",
                format!("no destination named `{name}` in [destinations]"),
            ));
        }
        if self.worker.prefetch == 0 {
            return Err(invalid("worker.prefetch", "must be at least 1"));
        }
        Ok(())
    }

    /// Checks what relay-delivery needs.
    pub fn validate_delivery(&self) -> Result<(), ConfigError> {
        if self.delivery.prefetch == 0 {
            return Err(invalid("delivery.prefetch", "must be at least 1"));
        }
        if self.delivery.backoff_base.is_zero()
            || self.delivery.backoff_max < self.delivery.backoff_base
        {
            return Err(invalid(
                "delivery.backoff_base",
                "must be positive and not above delivery.backoff_max",
            ));
        }
        for (name, d) in &self.destinations {
            let field = |f: &str| format!("destinations.{name}.{f}");
            let url = url::Url::parse(&d.url)
                .map_err(|e| invalid(field("url"), format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(field("url"), "must be http or https"));
            }
            if d.max_attempts == 0 {
                return Err(invalid(field("max_attempts"), "must be at least 1"));
            }
            if d.timeout.is_zero() {
                return Err(invalid(field("timeout"), "must be positive"));
            }
            match d.signing {
                Signing::None => {}
                Signing::StandardWebhooks | Signing::ReamazeHmac | Signing::Basic => {
                    let secret = d.secret_env.as_ref().ok_or_else(|| {
                        invalid(field("secret_env"), "required by this signing scheme")
                    })?;
                    let value = secret.require(&field("secret_env"))?;
                    if d.signing == Signing::StandardWebhooks && !value.starts_with("whsec_") {
                        return Err(invalid(
                            field("secret_env"),
                            format!("`{}` must hold a `whsec_…` secret", secret.var()),
                        ));
                    }
                    if d.signing == Signing::Basic && d.username.is_none() {
                        return Err(invalid(field("username"), "required by basic signing"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sets `path` (`SECTION__FIELD`, case-insensitive) in `table` to `value`, read as a TOML value
/// when it parses as one (numbers, booleans, arrays) and as a string otherwise.
fn apply_override(table: &mut toml::Table, path: &str, value: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if keys.iter().any(String::is_empty) {
        return Err(invalid(
            format!("{ENV_PREFIX}{path}"),
            "malformed override name (use RELAY__SECTION__FIELD)",
        ));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = keys.split_last().expect("split yields at least one key");
    let mut node = table;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| {
            invalid(
                format!("{ENV_PREFIX}{path}"),
                format!("`{key}` is not a section"),
            )
        })?;
    }
    node.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn worker_needs_its_destination() {
        let c = Config::from_toml("", &[], &no_env).unwrap();
        let err = c.validate_worker().unwrap_err().to_string();
        assert!(
            err.contains("worker.min_balance_alert.destination"),
            "{err}"
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
}
