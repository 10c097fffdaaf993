//! `[destinations]`: where delivery sends, how it signs, and the limits that keep one
//! destination from harming the others.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::{serde_text, serde_text_option};

use super::{ConfigError, DeliveryConfig, EnvSecret, invalid};

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
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// A Voximplant service-account token (`Authorization: Bearer`, RS256, header `kid`, claims
    /// `iss` = account id, `iat`, `exp`), minted from the key file Voximplant's `CreateKey`
    /// returns; a 2xx answer whose body is `{"error": {...}}` is a failure.
    VoximplantJwt,
}

impl Signing {
    /// Whether this scheme needs a secret (`secret_env` or `secret_file`).
    pub fn needs_secret(self) -> bool {
        !matches!(self, Signing::None)
    }
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
    /// Environment variable holding the signing secret or password. Several secrets may be
    /// active at once, separated by whitespace, the newest first (see `secret_file`).
    #[serde(default)]
    pub secret_env: Option<EnvSecret>,
    /// File holding the secret instead (how Kubernetes mounts a Secret): re-read when it
    /// changes (checked every `delivery.secret_check_interval`) and on SIGHUP, without a
    /// restart. Several secrets may be active at once, separated by whitespace, the newest
    /// first: `standard-webhooks` sends a signature for each, `reamaze-hmac` and `bearer` use
    /// the newest, `basic` takes the whole file as the password, `voximplant-jwt` the key file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
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
    /// Requests to this destination in flight at once, per delivery process. A job that finds
    /// them all taken waits in a delay tier instead of holding one of `delivery.prefetch`'s
    /// slots, so a slow destination cannot starve the others. Below `delivery.prefetch`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Retryable failures in a row (5xx, 408, 429, timeouts, connection errors) that open the
    /// destination's circuit breaker: its jobs then wait in the delay tiers, sending nothing,
    /// until `breaker_cool_down` has passed and a probe request succeeds.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Share of retryable failures among the attempts of one `breaker_window` that opens the
    /// breaker too (once the window has seen `breaker_min_requests`); between 0 and 1.
    #[serde(default = "default_breaker_failure_ratio")]
    pub breaker_failure_ratio: f64,
    /// Attempts a `breaker_window` needs before its failure ratio counts.
    #[serde(default = "default_breaker_min_requests")]
    pub breaker_min_requests: u32,
    /// Length of the windows over which the failure ratio is counted (each starts afresh).
    #[serde(default = "default_breaker_window", with = "serde_text")]
    pub breaker_window: Duration,
    /// How long an open breaker sends nothing before one probe request may go.
    #[serde(default = "default_breaker_cool_down", with = "serde_text")]
    pub breaker_cool_down: Duration,
    /// This destination's first retry delay, instead of `delivery.backoff_base`.
    #[serde(default, with = "serde_text_option")]
    pub backoff_base: Option<Duration>,
    /// This destination's largest retry delay, instead of `delivery.backoff_max`.
    #[serde(default, with = "serde_text_option")]
    pub backoff_max: Option<Duration>,
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
fn default_max_in_flight() -> u32 {
    16
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_failure_ratio() -> f64 {
    0.5
}
fn default_breaker_min_requests() -> u32 {
    20
}
fn default_breaker_window() -> Duration {
    Duration::from_secs(30)
}
fn default_breaker_cool_down() -> Duration {
    Duration::from_secs(10)
}

impl DestinationConfig {
    /// Where the signing secret comes from and, for a file, how long ago it changed (read at
    /// `now`): `file /run/secrets/x (changed 3d ago)`, `$RELAY_X_SECRET (set)`, `none`. Never
    /// the secret itself.
    pub fn secret_source(&self, now: std::time::SystemTime) -> String {
        if let Some(path) = &self.secret_file {
            let age = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| now.duration_since(at).ok());
            return match age {
                Some(age) => format!(
                    "file {} (changed {} ago)",
                    path.display(),
                    crate::duration::label(Duration::from_secs(age.as_secs()))
                ),
                None => format!("file {} (unreadable here)", path.display()),
            };
        }
        match &self.secret_env {
            Some(env) => {
                let state = if env.value().is_some() {
                    "set"
                } else {
                    "not set here"
                };
                format!("${} ({state})", env.var())
            }
            None => "none".to_owned(),
        }
    }

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
            max_in_flight: default_max_in_flight(),
            breaker_failures: default_breaker_failures(),
            breaker_failure_ratio: default_breaker_failure_ratio(),
            breaker_min_requests: default_breaker_min_requests(),
            breaker_window: default_breaker_window(),
            breaker_cool_down: default_breaker_cool_down(),
            secret_file: None,
            backoff_base: None,
            backoff_max: None,
        }
    }
}

impl DestinationConfig {
    /// Checks the destination called `name`, for a delivery configured as `delivery`. Secrets
    /// in files are read and checked when delivery loads them.
    pub(super) fn validate(
        &self,
        name: &str,
        delivery: &DeliveryConfig,
    ) -> Result<(), ConfigError> {
        let d = self;
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
        if d.max_in_flight == 0 {
            return Err(invalid(field("max_in_flight"), "must be at least 1"));
        }
        if d.max_in_flight >= u32::from(delivery.prefetch) {
            return Err(invalid(
                field("max_in_flight"),
                format!(
                    "must be below delivery.prefetch ({}), or one stuck destination could hold every job delivery has taken",
                    delivery.prefetch
                ),
            ));
        }
        if d.breaker_failures == 0 {
            return Err(invalid(field("breaker_failures"), "must be at least 1"));
        }
        if !(d.breaker_failure_ratio > 0.0 && d.breaker_failure_ratio <= 1.0) {
            return Err(invalid(
                field("breaker_failure_ratio"),
                "must be above 0 and at most 1",
            ));
        }
        if d.breaker_min_requests == 0 {
            return Err(invalid(field("breaker_min_requests"), "must be at least 1"));
        }
        if d.breaker_window.is_zero() {
            return Err(invalid(field("breaker_window"), "must be positive"));
        }
        if d.breaker_cool_down.is_zero() {
            return Err(invalid(field("breaker_cool_down"), "must be positive"));
        }
        if let (Some(_), Some(_)) = (&d.secret_env, &d.secret_file) {
            return Err(invalid(
                field("secret_file"),
                "give secret_env or secret_file, not both",
            ));
        }
        if d.signing.needs_secret() {
            if let Some(secret) = &d.secret_env {
                let value = secret.require(&field("secret_env"))?;
                if d.signing == Signing::StandardWebhooks
                    && !value.split_whitespace().all(|s| s.starts_with("whsec_"))
                {
                    return Err(invalid(
                        field("secret_env"),
                        format!(
                            "`{}` must hold `whsec_…` secrets (several separated by spaces)",
                            secret.var()
                        ),
                    ));
                }
            } else if d.secret_file.is_none() {
                return Err(invalid(
                    field("secret_env"),
                    "this signing scheme needs secret_env or secret_file",
                ));
            }
        }
        if d.signing == Signing::Basic && d.username.is_none() {
            return Err(invalid(field("username"), "required by basic signing"));
        }
        let base = d.backoff_base.unwrap_or(delivery.backoff_base);
        let max = d.backoff_max.unwrap_or(delivery.backoff_max);
        if base.is_zero() || max < base {
            return Err(invalid(
                field("backoff_base"),
                "must be positive and not above backoff_max (delivery's when not set here)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn check(destination: &str) -> Result<(), String> {
        let text = format!("[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\n{destination}");
        Config::from_toml(&text, &[], &|_: &str| None)
            .map_err(|e| e.to_string())?
            .validate_delivery()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn isolation_and_breaker_have_defaults() {
        let config = Config::from_toml(
            "[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\n",
            &[],
            &|_: &str| None,
        )
        .unwrap();
        let d = &config.destinations["d"];
        assert_eq!(d.max_in_flight, 16);
        assert_eq!(d.breaker_failures, 5);
        assert_eq!(d.breaker_cool_down, Duration::from_secs(10));
        config.validate_delivery().unwrap();
        check("max_in_flight = 4\nbreaker_failures = 2\nbreaker_failure_ratio = 1.0\nbreaker_window = \"1m\"\nbreaker_cool_down = \"500ms\"\n").unwrap();
    }

    #[test]
    fn bad_limits_name_their_field() {
        for (line, field) in [
            ("max_in_flight = 0", "destinations.d.max_in_flight"),
            ("max_in_flight = 64", "destinations.d.max_in_flight"),
            ("breaker_failures = 0", "destinations.d.breaker_failures"),
            (
                "breaker_failure_ratio = 0.0",
                "destinations.d.breaker_failure_ratio",
            ),
            (
                "breaker_failure_ratio = 1.5",
                "destinations.d.breaker_failure_ratio",
            ),
            (
                "breaker_min_requests = 0",
                "destinations.d.breaker_min_requests",
            ),
            ("breaker_window = \"0s\"", "destinations.d.breaker_window"),
            (
                "breaker_cool_down = \"0s\"",
                "destinations.d.breaker_cool_down",
            ),
        ] {
            let err = check(&format!("{line}\n")).unwrap_err();
            assert!(err.contains(field), "{line}: {err}");
        }
    }

    fn with_env(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Config::from_toml(text, &[], &move |name: &str| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())?;
        config.validate_delivery().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file_not_both() {
        let base =
            "[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\nsigning = \"standard-webhooks\"\n";
        let two = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_bm90IHRoZSBvdGhlciBvbmU=";
        with_env(&format!("{base}secret_env = \"S\""), &[("S", two)]).unwrap();
        let file = with_env(&format!("{base}secret_file = \"/run/secrets/d\""), &[]).unwrap();
        assert_eq!(
            file.destinations["d"].secret_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/d"))
        );
        let both = with_env(
            &format!("{base}secret_env = \"S\"\nsecret_file = \"/x\""),
            &[("S", two)],
        );
        assert!(both.unwrap_err().contains("destinations.d.secret_file"));
        let neither = with_env(base, &[]).unwrap_err();
        assert!(neither.contains("secret_env or secret_file"), "{neither}");
        let not_whsec = with_env(
            &format!("{base}secret_env = \"S\""),
            &[("S", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw plain")],
        )
        .unwrap_err();
        assert!(not_whsec.contains("whsec_"), "{not_whsec}");
    }

    #[test]
    fn every_profile_parses_and_names_its_needs() {
        for profile in [
            "none",
            "standard-webhooks",
            "reamaze-hmac",
            "basic",
            "bearer",
            "voximplant-jwt",
        ] {
            let text = format!(
                "[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\nsigning = \"{profile}\"\nusername = \"u\"\nsecret_file = \"/k\"\n"
            );
            with_env(&text, &[]).unwrap_or_else(|e| panic!("{profile}: {e}"));
        }
        let no_user = "[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\nsigning = \"basic\"\nsecret_file = \"/k\"\n";
        assert!(
            with_env(no_user, &[])
                .unwrap_err()
                .contains("destinations.d.username")
        );
    }

    #[test]
    fn retry_schedule_overrides_are_checked_against_delivery_defaults() {
        let d = "[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\n";
        let config = with_env(
            &format!("{d}backoff_base = \"250ms\"\nbackoff_max = \"5s\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(
            config.destinations["d"].backoff_base,
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            config.destinations["d"].backoff_max,
            Some(Duration::from_secs(5))
        );
        // A base above delivery's default maximum (1h) is refused, naming the field.
        let err = with_env(&format!("{d}backoff_base = \"2h\"\n"), &[]).unwrap_err();
        assert!(err.contains("destinations.d.backoff_base"), "{err}");
    }

    #[test]
    fn relative_secret_files_are_found_beside_the_configuration() {
        let mut config = with_env(
            "[destinations.a]\nurl = \"http://127.0.0.1:1/x\"\nsigning = \"bearer\"\nsecret_file = \"keys/a\"\n[destinations.b]\nurl = \"http://127.0.0.1:1/x\"\nsigning = \"bearer\"\nsecret_file = \"/run/secrets/b\"\n",
            &[],
        )
        .unwrap();
        config.resolve_paths(std::path::Path::new("/etc/relay"));
        let file = |n: &str| config.destinations[n].secret_file.clone().unwrap();
        assert_eq!(file("a"), std::path::PathBuf::from("/etc/relay/keys/a"));
        assert_eq!(file("b"), std::path::PathBuf::from("/run/secrets/b"));
    }
}
