//! `[ingress.acrobits]`: the Acrobits softphone's web callback, its login protection and its
//! toll-fraud guard.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::duration::serde_text;

use super::{ConfigError, EnvSecret, invalid};

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
///
/// Every limit counts in Redis (shared by every ingress replica), and `0` turns a limit off.
/// Because a callback costs money, the route refuses (503) while Redis is unavailable.
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
    /// E.164 prefixes neither number may start with, even when allowed above (premium-rate and
    /// satellite ranges); default [`AcrobitsSource::DEFAULT_DENIED_PREFIXES`].
    pub denied_prefixes: Vec<String>,
    /// Accepted callbacks per account per minute; 0: unlimited.
    pub rate_limit_per_minute: u32,
    /// Accepted callbacks per account per day (24 hours from the first); 0: unlimited.
    pub rate_limit_per_day: u32,
    /// Accepted callbacks to one number to call, any account, per minute; 0: unlimited.
    pub target_limit_per_minute: u32,
    /// Accepted callbacks to one number to call, any account, per day (24 hours from the
    /// first); 0: unlimited.
    pub target_limit_per_day: u32,
    /// Accepted callbacks of all accounts together per minute; 0: unlimited.
    pub global_limit_per_minute: u32,
    /// Accepted callbacks of all accounts together per day; 0: unlimited.
    pub global_limit_per_day: u32,
    /// Callbacks one account may have in progress: from acceptance until the call ends or the
    /// origination fails (the worker gives the slot back), at most `concurrent_window`; 0:
    /// unlimited.
    pub max_concurrent_per_account: u32,
    /// How long an accepted callback counts as in progress, for `max_concurrent_per_account`.
    #[serde(with = "serde_text")]
    pub concurrent_window: Duration,
    /// A request repeating an accepted one (same account, callback number and target) within
    /// this window is answered with success again and publishes nothing.
    #[serde(with = "serde_text")]
    pub duplicate_window: Duration,
    /// Failed logins per user name within `login_lockout` before that name is locked out
    /// (429); a successful login resets the count; 0: no per-name lockout.
    pub login_failures_per_user: u32,
    /// Failed logins per client address (the connection's peer; IPv6 by /64) within
    /// `login_lockout` before that address is locked out (429); 0: no per-address lockout.
    pub login_failures_per_address: u32,
    /// How long failed logins are remembered, counted from the first: the longest lockout.
    #[serde(with = "serde_text")]
    pub login_lockout: Duration,
    /// Password hash verifications (argon2) run at once; 0: one per CPU core.
    pub hash_concurrency: usize,
    /// How long a request waits for a verification slot before it gets 503.
    #[serde(with = "serde_text")]
    pub hash_queue_wait: Duration,
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
            denied_prefixes: names(Self::DEFAULT_DENIED_PREFIXES),
            rate_limit_per_minute: 6,
            rate_limit_per_day: 60,
            target_limit_per_minute: 3,
            target_limit_per_day: 30,
            global_limit_per_minute: 120,
            global_limit_per_day: 5_000,
            max_concurrent_per_account: 3,
            concurrent_window: Duration::from_secs(5 * 60),
            duplicate_window: Duration::from_secs(2 * 60),
            login_failures_per_user: 10,
            login_failures_per_address: 30,
            login_lockout: Duration::from_secs(15 * 60),
            hash_concurrency: 0,
            hash_queue_wait: Duration::from_millis(100),
            accounts: Vec::new(),
        }
    }
}

impl AcrobitsSource {
    /// Prefixes refused by default (`denied_prefixes`): premium-rate and special ranges that
    /// toll fraud pays out on. `relay.example.toml` names each one.
    pub const DEFAULT_DENIED_PREFIXES: &[&str] = &[
        "+1900", "+449", "+4470", "+49900", "+3389", "+39899", "+34803", "+34806", "+34807",
        "+6119", "+870", "+881", "+882", "+883", "+979",
    ];

    /// The sliding counter (after `rate:`) of `username`'s callbacks in progress: ingress
    /// counts each accepted callback in it (member: its event id) and the worker takes it back
    /// when the callback's call ends or its origination fails.
    pub fn in_progress_counter(username: &str) -> String {
        format!("acrobits:in-progress:{username}")
    }

    /// The longest user name an account may have; longer ones are refused before any hashing.
    pub const MAX_USERNAME_BYTES: usize = 128;

    /// Whether calls to `number` (E.164) pass the toll-fraud prefixes: `Err("destination_denied")`
    /// under a `denied_prefixes` entry (a denial wins), `Err("destination_not_allowed")` outside
    /// `allowed_prefixes` when any is set. Ingress's guard and the worker's missed-call callbacks
    /// both ask this.
    pub fn number_policy(&self, number: &str) -> Result<(), &'static str> {
        let starts = |prefixes: &[String]| prefixes.iter().any(|p| number.starts_with(p.as_str()));
        if starts(&self.denied_prefixes) {
            return Err("destination_denied");
        }
        if !self.allowed_prefixes.is_empty() && !starts(&self.allowed_prefixes) {
            return Err("destination_not_allowed");
        }
        Ok(())
    }

    /// Verifications of password hashes run at once: `hash_concurrency`, or the CPU cores.
    pub fn hash_permits(&self) -> usize {
        match self.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            n => n,
        }
    }

    /// Checks the section (field names under `ingress.acrobits`).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let field = |f: &str| format!("ingress.acrobits.accounts[{i}].{f}");
            if account.username.is_empty() || account.username.len() > Self::MAX_USERNAME_BYTES {
                return Err(invalid(
                    field("username"),
                    format!("1 to {} bytes", Self::MAX_USERNAME_BYTES),
                ));
            }
            if !names.insert(account.username.as_str()) {
                return Err(invalid(
                    field("username"),
                    format!("`{}` is listed twice", account.username),
                ));
            }
            match self.password_scheme {
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
        for (list, prefixes) in [
            ("allowed_prefixes", &self.allowed_prefixes),
            ("denied_prefixes", &self.denied_prefixes),
        ] {
            for (i, prefix) in prefixes.iter().enumerate() {
                let digits = prefix.strip_prefix('+').unwrap_or_default();
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        format!("ingress.acrobits.{list}[{i}]"),
                        "an E.164 prefix such as \"+1\"",
                    ));
                }
            }
        }
        for (field, window) in [
            ("concurrent_window", self.concurrent_window),
            ("duplicate_window", self.duplicate_window),
            ("login_lockout", self.login_lockout),
        ] {
            if window < Duration::from_secs(1) {
                return Err(invalid(format!("ingress.acrobits.{field}"), "at least 1s"));
            }
        }
        Ok(())
    }
}

/// One Acrobits account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcrobitsAccount {
    /// User name as the app sends it (at most 128 bytes).
    pub username: String,
    /// Environment variable holding the argon2 hash of the password (`relayctl hash-password`),
    /// for the `plain` scheme.
    #[serde(default)]
    pub password_hash_env: Option<EnvSecret>,
    /// Environment variable holding the password itself, for `salted-sha1` only.
    #[serde(default)]
    pub password_env: Option<EnvSecret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> AcrobitsSource {
        AcrobitsSource {
            accounts: vec![AcrobitsAccount {
                username: "alice".into(),
                password_hash_env: Some(EnvSecret::with_value("H", "$argon2id$v=19$x")),
                password_env: None,
            }],
            ..AcrobitsSource::default()
        }
    }

    #[test]
    fn the_defaults_validate_and_deny_premium_ranges() {
        source().validate().unwrap();
        assert!(source().denied_prefixes.iter().any(|p| p == "+1900"));
    }

    #[test]
    fn bad_values_name_their_field() {
        type Change = fn(&mut AcrobitsSource);
        let cases: Vec<(Change, &str)> = vec![
            (
                |s| s.denied_prefixes = vec!["44".into()],
                "ingress.acrobits.denied_prefixes[0]",
            ),
            (
                |s| s.allowed_prefixes = vec!["+".into()],
                "ingress.acrobits.allowed_prefixes[0]",
            ),
            (
                |s| s.duplicate_window = Duration::ZERO,
                "ingress.acrobits.duplicate_window",
            ),
            (
                |s| s.login_lockout = Duration::from_millis(10),
                "ingress.acrobits.login_lockout",
            ),
            (
                |s| s.accounts.push(s.accounts[0].clone()),
                "ingress.acrobits.accounts[1].username",
            ),
            (
                |s| s.accounts[0].username = "x".repeat(AcrobitsSource::MAX_USERNAME_BYTES + 1),
                "ingress.acrobits.accounts[0].username",
            ),
        ];
        for (change, field) in cases {
            let mut s = source();
            change(&mut s);
            let error = s.validate().unwrap_err().to_string();
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn hash_permits_default_to_the_cores() {
        assert!(source().hash_permits() >= 1);
        let fixed = AcrobitsSource {
            hash_concurrency: 3,
            ..source()
        };
        assert_eq!(fixed.hash_permits(), 3);
    }
}
