//! Who may sign in, and the password check.
//!
//! * Passwords are checked against each user's argon2 hash (PHC string) on a blocking thread,
//!   at most [`HASHING_PERMITS`] at once, so a flood of sign-ins cannot starve the pages.
//! * An unknown name is checked against a dummy hash with the same parameters, so the answer
//!   takes as long as for a known name and does not tell which names exist.
//! * After [`LOCKOUT_AFTER`] failures in a row a name is locked for [`LOCKOUT`]: refused without
//!   hashing. A success resets it. The lockouts live in this process (the console is one small
//!   replica); the names tracked are bounded by [`TRACKED_NAMES`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::config::ConsoleConfig;
use relay_signing::password;
use tokio::sync::Semaphore;

/// Password checks run at once (each takes ~19 MiB and tens of milliseconds).
pub const HASHING_PERMITS: usize = 2;
/// Failures in a row that lock a name.
pub const LOCKOUT_AFTER: u32 = 5;
/// How long a locked name is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Names whose failures are remembered at once (beyond it the oldest are forgotten).
pub const TRACKED_NAMES: usize = 10_000;

/// What a sign-in attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The name and password match.
    Accepted,
    /// They do not (the same answer for an unknown name).
    Refused,
    /// Too many failures: try again after the lockout.
    LockedOut,
}

/// The configured users.
#[derive(Clone)]
pub struct Users {
    hashes: Arc<HashMap<String, String>>,
    dummy: Arc<String>,
    hashing: Arc<Semaphore>,
    failures: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

impl Users {
    /// The users of `[console]`; a hash that does not parse refuses start-up (naming the user,
    /// never the hash).
    pub fn from_config(config: &ConsoleConfig) -> anyhow::Result<Self> {
        let mut hashes = HashMap::new();
        for user in &config.users {
            let phc = user
                .password_hash_env
                .value()
                .unwrap_or_default()
                .to_owned();
            if !password::is_argon2_phc(&phc) {
                anyhow::bail!(
                    "console.users `{}`: ${} is not an argon2 hash (PHC string, `$argon2id$v=19$…`; make one with `relayctl hash-password`)",
                    user.name,
                    user.password_hash_env.var()
                );
            }
            hashes.insert(user.name.clone(), phc);
        }
        let dummy = dummy_hash()?;
        Ok(Self {
            hashes: Arc::new(hashes),
            dummy: Arc::new(dummy),
            hashing: Arc::new(Semaphore::new(HASHING_PERMITS)),
            failures: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Checks `name` and `password`.
    pub async fn verify(&self, name: &str, password: &str) -> Verdict {
        if self.locked(name) {
            return Verdict::LockedOut;
        }
        let (phc, known) = match self.hashes.get(name) {
            Some(phc) => (phc.clone(), true),
            None => ((*self.dummy).clone(), false),
        };
        let Ok(_permit) = self.hashing.acquire().await else {
            return Verdict::Refused;
        };
        let given = password.to_owned();
        let matched =
            tokio::task::spawn_blocking(move || password::verify_argon2(&phc, &given).is_ok())
                .await
                .unwrap_or(false);
        if matched && known {
            self.lock().remove(name);
            Verdict::Accepted
        } else {
            self.failed(name);
            Verdict::Refused
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn locked(&self, name: &str) -> bool {
        let mut failures = self.lock();
        match failures.get(name) {
            Some((count, since)) if *count >= LOCKOUT_AFTER => {
                if since.elapsed() < LOCKOUT {
                    true
                } else {
                    failures.remove(name);
                    false
                }
            }
            _ => false,
        }
    }

    fn failed(&self, name: &str) {
        let mut failures = self.lock();
        if failures.len() >= TRACKED_NAMES
            && !failures.contains_key(name)
            && let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(n, _)| n.clone())
        {
            failures.remove(&oldest);
        }
        let entry = failures
            .entry(name.to_owned())
            .or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
    }
}

/// A hash of a random password (argon2's default parameters, those of
/// `relayctl hash-password`), checked for unknown names.
fn dummy_hash() -> anyhow::Result<String> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    password::hash_argon2(&hex::encode(random)).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::{ConsoleUser, EnvSecret};

    fn users() -> Users {
        let hash = password::hash_argon2("right").unwrap();
        let config = ConsoleConfig {
            users: vec![ConsoleUser {
                name: "ops".into(),
                password_hash_env: EnvSecret::with_value("H", hash),
            }],
            ..ConsoleConfig::default()
        };
        Users::from_config(&config).unwrap()
    }

    #[tokio::test]
    async fn the_right_password_signs_in_and_anything_else_is_refused_alike() {
        let users = users();
        assert_eq!(users.verify("ops", "right").await, Verdict::Accepted);
        assert_eq!(users.verify("ops", "wrong").await, Verdict::Refused);
        assert_eq!(users.verify("nobody", "right").await, Verdict::Refused);
        assert_eq!(users.verify("", "").await, Verdict::Refused);
    }

    #[tokio::test]
    async fn repeated_failures_lock_a_name_even_against_the_right_password() {
        let users = users();
        for _ in 0..LOCKOUT_AFTER {
            assert_eq!(users.verify("ops", "wrong").await, Verdict::Refused);
        }
        assert_eq!(users.verify("ops", "right").await, Verdict::LockedOut);
    }

    #[test]
    fn a_hash_that_does_not_parse_refuses_start_up_without_showing_it() {
        let config = ConsoleConfig {
            users: vec![ConsoleUser {
                name: "ops".into(),
                password_hash_env: EnvSecret::with_value("RELAY_OPS_HASH", "plain-secret"),
            }],
            ..ConsoleConfig::default()
        };
        let error = Users::from_config(&config).err().unwrap().to_string();
        assert!(
            error.contains("RELAY_OPS_HASH") && error.contains("`ops`"),
            "{error}"
        );
        assert!(!error.contains("plain-secret"), "{error}");
    }
}
