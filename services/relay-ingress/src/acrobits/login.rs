//! Who may ask for a callback, at a cost an attacker cannot inflate.
//!
//! - **Lockout**: failed logins are counted per user name and per client address in Redis
//!   ([`gate`]), shared by every replica. The gate counts an attempt *before* its hash is
//!   checked (one atomic script), so concurrent guesses cannot slip past the count; a success
//!   resets the name's count and takes the attempt back from the address. A locked-out request
//!   is refused without hashing.
//! - **Bounded hashing**: argon2 takes ~19 MiB and tens of milliseconds per check. At most
//!   `hash_concurrency` checks run at once (a semaphore); a request waits `hash_queue_wait` for
//!   a slot and is otherwise refused with 503 at once, so a flood costs bounded memory and
//!   CPU. The permit travels into the blocking task: a client that hangs up does not free its
//!   slot before its hash is done.
//! - **Same cost for every name**: an unknown user name is checked against a dummy hash made
//!   at start-up with the accounts' own argon2 parameters (or a dummy password, for
//!   `salted-sha1`), so both paths run the verifier once and the timing tells nothing.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relay_core::config::{AcrobitsSource, ConfigError, EnvSecret, PasswordScheme};
use relay_signing::password;
use relay_store::Limit;
use tokio::sync::Semaphore;

/// Every password check slot stayed taken for `hash_queue_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// Every `scheme` of `relay_ingress_acrobits_password_checks_total`.
pub const SCHEMES: &[&str] = &["argon2", "salted-sha1"];

/// Creates the series of `relay_ingress_acrobits_password_checks_total` at zero, one per
/// scheme.
pub(super) fn register_metrics() {
    for scheme in SCHEMES {
        metrics::counter!("relay_ingress_acrobits_password_checks_total", "scheme" => *scheme)
            .increment(0);
    }
}

/// Runs password checks, at most `permits` argon2 checks at once.
pub(crate) struct Verifier {
    permits: Arc<Semaphore>,
    wait: Duration,
    /// Checks run (argon2 and SHA-1): the unit tests' window into the path taken.
    checks: AtomicU64,
}

impl Verifier {
    pub(crate) fn new(permits: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.clamp(1, Semaphore::MAX_PERMITS))),
            wait,
            checks: AtomicU64::new(0),
        }
    }

    fn count(&self, scheme: &'static str) {
        debug_assert!(SCHEMES.contains(&scheme), "add `{scheme}` to SCHEMES");
        self.checks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("relay_ingress_acrobits_password_checks_total", "scheme" => scheme)
            .increment(1);
    }

    /// Checks made so far.
    #[cfg(test)]
    pub(crate) fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Whether `given` matches the argon2 `phc`, on a blocking thread within the bound.
    async fn argon2(&self, phc: String, given: String) -> Result<bool, Busy> {
        // `timeout` polls the acquire once before the clock: a free slot is taken even when
        // the wait is zero.
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        self.count("argon2");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            password::verify_argon2(&phc, &given).is_ok()
        })
        .await
        .map_err(|_| Busy)
    }

    /// Whether `given` is the salted SHA-1 of `secret`. The comparison takes the same time
    /// whatever the length of `given`: a digest of the wrong length is compared as a
    /// placeholder of the right one (never a hex digest), then refused.
    fn salted_sha1(&self, template: &str, nonce: &str, secret: &str, given: &str) -> bool {
        const HEX_LEN: usize = 40;
        const PLACEHOLDER: &str = "----------------------------------------";
        self.count("salted-sha1");
        let right_length = given.len() == HEX_LEN;
        let compared = if right_length { given } else { PLACEHOLDER };
        let matches = password::verify_salted_sha1(template, nonce, secret, compared).is_ok();
        matches & right_length
    }
}

/// The accounts and how their passwords are checked.
pub(crate) struct Accounts {
    scheme: PasswordScheme,
    template: String,
    secrets: HashMap<String, EnvSecret>,
    /// What an unknown user name is checked against: an argon2 hash with the accounts'
    /// parameters, or a password, that nobody's input matches.
    dummy: String,
    pub(crate) verifier: Verifier,
}

impl Accounts {
    /// The accounts of `config`; an account whose argon2 hash does not parse refuses start-up.
    pub(crate) fn new(config: &AcrobitsSource) -> Result<Self, ConfigError> {
        let secret = |a: &relay_core::config::AcrobitsAccount| match config.password_scheme {
            PasswordScheme::Plain => a.password_hash_env.clone(),
            PasswordScheme::SaltedSha1 => a.password_env.clone(),
        };
        let mut secrets = HashMap::new();
        for (i, account) in config.accounts.iter().enumerate() {
            let value = secret(account);
            if config.password_scheme == PasswordScheme::Plain
                && !value
                    .as_ref()
                    .and_then(EnvSecret::value)
                    .is_some_and(password::is_argon2_phc)
            {
                return Err(ConfigError::Invalid {
                    field: format!("ingress.acrobits.accounts[{i}].password_hash_env"),
                    message: "not an argon2 PHC string (make one with relayctl hash-password)"
                        .to_owned(),
                });
            }
            if let Some(value) = value {
                secrets.insert(account.username.clone(), value);
            }
        }
        let dummy = match config.password_scheme {
            PasswordScheme::Plain => dummy_phc(
                config
                    .accounts
                    .iter()
                    .find_map(|a| a.password_hash_env.as_ref()?.value()),
            ),
            PasswordScheme::SaltedSha1 => random_b64(24),
        };
        Ok(Self {
            scheme: config.password_scheme,
            template: config.sha1_template.clone(),
            secrets,
            dummy,
            verifier: Verifier::new(config.hash_permits(), config.hash_queue_wait),
        })
    }

    /// Whether `given` (with `nonce`, for `salted-sha1`) is `username`'s password. Known and
    /// unknown names take the same path: one check by the verifier, against the dummy for an
    /// unknown name, whose result is then ignored.
    pub(crate) async fn authenticate(
        &self,
        username: &str,
        given: &str,
        nonce: &str,
    ) -> Result<bool, Busy> {
        let secret = self.secrets.get(username).and_then(EnvSecret::value);
        let known = secret.is_some();
        let against = secret.unwrap_or(&self.dummy);
        let matches = match self.scheme {
            PasswordScheme::Plain => {
                self.verifier
                    .argon2(against.to_owned(), given.to_owned())
                    .await?
            }
            PasswordScheme::SaltedSha1 => {
                self.verifier
                    .salted_sha1(&self.template, nonce, against, given)
            }
        };
        Ok(known & matches)
    }
}

/// A dummy argon2 hash that costs what `model` costs: its algorithm, version and parameters,
/// with a random salt and a random output of the same length (which no password produces).
/// Without a usable model, a hash of a random password with the default parameters (those of
/// `relayctl hash-password`).
fn dummy_phc(model: Option<&str>) -> String {
    let made = model.and_then(|phc| {
        let fields: Vec<&str> = phc.split('$').collect();
        // `$argon2id$v=19$m=…,t=…,p=…$salt$hash`, the version field being optional.
        let (head, output) = fields.split_at(fields.len().checked_sub(2)?);
        let output_bytes = output.get(1)?.len() * 3 / 4;
        let dummy = format!(
            "{}${}${}",
            head.join("$"),
            random_b64(16),
            random_b64(output_bytes)
        );
        password::is_argon2_phc(&dummy).then_some(dummy)
    });
    made.unwrap_or_else(|| {
        password::hash_argon2(&random_b64(24)).expect("argon2 hashes with its default parameters")
    })
}

/// `len` random bytes in unpadded standard base64 (the PHC string alphabet).
fn random_b64(len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // The standard library's randomly keyed hasher: unpredictable enough for a dummy that
    // guards timing, not secrets.
    let state = std::collections::hash_map::RandomState::new();
    let bytes: Vec<u8> = (0..len)
        .map(|i| state.hash_one(i).to_le_bytes()[0])
        .collect();
    let mut out = String::with_capacity(len.div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The client's address as the lockout counts it: the connection's peer (the relay trusts no
/// forwarding header for this), IPv4 as it is, IPv6 by its /64 (one host usually holds a whole
/// /64). `None` when the request came without a connection (in-process tests).
pub(crate) fn client_key(peer: Option<SocketAddr>) -> Option<String> {
    let ip = peer?.ip();
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    })
}

/// Which lockout refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Too many failures for the user name.
    User,
    /// Too many failures from the client address.
    Address,
}

/// The failure counters a login attempt counts against (`rate:acrobits:login:user:{name}`,
/// `rate:acrobits:login:addr:{client}`), each with what refusing by it means.
pub(crate) fn gate(
    config: &AcrobitsSource,
    username: &str,
    client: Option<&str>,
) -> Vec<(Limit, Lock)> {
    let mut limits = Vec::with_capacity(2);
    if config.login_failures_per_user > 0 {
        limits.push((
            Limit::fixed(
                format!("acrobits:login:user:{username}"),
                u64::from(config.login_failures_per_user),
                config.login_lockout,
            ),
            Lock::User,
        ));
    }
    if let Some(client) = client
        && config.login_failures_per_address > 0
    {
        limits.push((
            Limit::fixed(
                format!("acrobits:login:addr:{client}"),
                u64::from(config.login_failures_per_address),
                config.login_lockout,
            ),
            Lock::Address,
        ));
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::AcrobitsAccount;
    use std::sync::OnceLock;

    fn alice_hash() -> &'static str {
        static HASH: OnceLock<String> = OnceLock::new();
        HASH.get_or_init(|| password::hash_argon2("secretW0rd").unwrap())
    }

    fn config(scheme: PasswordScheme) -> AcrobitsSource {
        AcrobitsSource {
            password_scheme: scheme,
            accounts: vec![AcrobitsAccount {
                username: "alice".into(),
                password_hash_env: Some(EnvSecret::with_value("H", alice_hash())),
                password_env: Some(EnvSecret::with_value("P", "secretW0rd")),
            }],
            ..AcrobitsSource::default()
        }
    }

    #[tokio::test]
    async fn unknown_and_known_names_both_run_the_verifier_once() {
        let accounts = Accounts::new(&config(PasswordScheme::Plain)).unwrap();
        assert_eq!(
            accounts.authenticate("mallory", "guess", "").await,
            Ok(false)
        );
        assert_eq!(
            accounts.verifier.checks(),
            1,
            "an unknown name is hashed too"
        );
        assert_eq!(accounts.authenticate("alice", "guess", "").await, Ok(false));
        assert_eq!(
            accounts.verifier.checks(),
            2,
            "a wrong password is hashed once"
        );
        assert_eq!(
            accounts.authenticate("alice", "secretW0rd", "").await,
            Ok(true)
        );
        assert_eq!(accounts.verifier.checks(), 3);
        // An unknown name never passes, not even with the dummy's own input.
        assert_eq!(
            accounts.authenticate("mallory", "secretW0rd", "").await,
            Ok(false)
        );
    }

    #[tokio::test]
    async fn salted_sha1_names_take_one_path_and_any_length_is_compared_alike() {
        let accounts = Accounts::new(&config(PasswordScheme::SaltedSha1)).unwrap();
        // sha1("abc" + "secretW0rd"), computed with `printf abcsecretW0rd | sha1sum`.
        let right = "86dec1e0081400c2798f6fdce5fb1400b5d2c02f".to_owned();
        assert_eq!(
            accounts.authenticate("alice", &right, "abc").await,
            Ok(true)
        );
        assert_eq!(
            accounts.authenticate("mallory", &right, "abc").await,
            Ok(false)
        );
        for wrong in [
            "",
            "00",
            &right[..39],
            &format!("{right}0"),
            &"0".repeat(40),
        ] {
            assert_eq!(
                accounts.authenticate("alice", wrong, "abc").await,
                Ok(false)
            );
        }
        assert_eq!(
            accounts.verifier.checks(),
            7,
            "one check per attempt, any name"
        );
    }

    #[test]
    fn the_dummy_hash_has_the_accounts_parameters_and_a_fresh_salt() {
        let model = "$argon2id$v=19$m=8192,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$\
                     qLml5cbqFAO6YxVHhrSBHP0UWdxrIxkNcM8aMX3K0wo";
        let dummy = dummy_phc(Some(model));
        assert!(password::is_argon2_phc(&dummy), "{dummy}");
        assert!(
            dummy.starts_with("$argon2id$v=19$m=8192,t=3,p=2$"),
            "{dummy}"
        );
        assert_ne!(dummy, model);
        let output = |phc: &str| phc.rsplit('$').next().unwrap().len();
        assert_eq!(output(&dummy), output(model));
        // Without a model: the default parameters.
        assert!(dummy_phc(None).starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(password::is_argon2_phc(&dummy_phc(Some(
            "$argon2id$garbage"
        ))));
    }

    #[tokio::test]
    async fn a_full_verifier_refuses_after_its_wait_and_a_slot_frees_on_completion() {
        let verifier = Arc::new(Verifier::new(1, Duration::from_millis(50)));
        let held = verifier.permits.clone().acquire_owned().await.unwrap();
        let phc = alice_hash().to_owned();
        assert_eq!(
            verifier.argon2(phc.clone(), "x".into()).await,
            Err(Busy),
            "no slot within the wait"
        );
        assert_eq!(verifier.checks(), 0, "a refused check hashes nothing");
        drop(held);
        assert_eq!(verifier.argon2(phc, "secretW0rd".into()).await, Ok(true));
        assert_eq!(verifier.permits.available_permits(), 1);
    }

    #[test]
    fn client_keys_group_ipv6_by_its_64() {
        let key = |s: &str| client_key(Some(s.parse().unwrap()));
        assert_eq!(key("203.0.113.7:5000").as_deref(), Some("203.0.113.7"));
        assert_eq!(
            key("[2001:db8:1:2:aaaa::1]:443").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            key("[2001:db8:1:2:bbbb::9]:443"),
            key("[2001:db8:1:2::1]:1")
        );
        assert_eq!(
            key("[::ffff:198.51.100.1]:80").as_deref(),
            Some("198.51.100.1")
        );
        assert_eq!(client_key(None), None);
    }

    #[test]
    fn the_gate_counts_per_name_and_per_address_unless_turned_off() {
        let mut c = config(PasswordScheme::Plain);
        let names =
            |g: Vec<(Limit, Lock)>| -> Vec<String> { g.into_iter().map(|(l, _)| l.name).collect() };
        assert_eq!(
            names(gate(&c, "alice", Some("203.0.113.7"))),
            [
                "acrobits:login:user:alice",
                "acrobits:login:addr:203.0.113.7"
            ]
        );
        assert_eq!(
            names(gate(&c, "alice", None)),
            ["acrobits:login:user:alice"]
        );
        c.login_failures_per_user = 0;
        c.login_failures_per_address = 0;
        assert!(gate(&c, "alice", Some("203.0.113.7")).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn random_b64_is_canonical_base64(len in 0usize..80) {
            let text = random_b64(len);
            proptest::prop_assert_eq!(text.len(), (len * 4).div_ceil(3));
            proptest::prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        }
    }
}
