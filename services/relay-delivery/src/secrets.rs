//! A destination's secrets, live: read from an environment variable at start-up, or from a
//! file (`secret_file`, how Kubernetes mounts a Secret) that is read again when it changes and
//! on SIGHUP ([`crate::watch`]). Each attempt takes the secrets current when it signs
//! ([`Secrets::current`]), so a reload never disturbs a request in flight.
//!
//! A value may hold several secrets separated by whitespace, the newest first, so that a
//! rotation is "add the new one in front, wait, drop the old one": `standard-webhooks` signs
//! with each (the receiver accepts any one signature it can verify), `reamaze-hmac` and
//! `bearer` use the newest, `basic` takes the whole value as the password, `voximplant-jwt`
//! reads the value as Voximplant's key file.
//!
//! A secret that does not parse is refused with a message naming the field and never the
//! value; at start-up that stops delivery, on a reload it keeps the previous secrets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use relay_core::config::{ConfigError, DestinationConfig, Signing};
use relay_signing::standard_webhooks;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::voximplant;

/// Largest secret file read, in bytes: a key file is a few KiB.
const MAX_FILE: u64 = 64 * 1024;

/// The parsed secrets of one destination, ready to sign with.
pub(crate) enum Keys {
    /// The scheme needs none.
    None,
    /// Standard Webhooks keys, the newest first.
    Webhook(Vec<standard_webhooks::Secret>),
    /// The newest of the tokens (`reamaze-hmac`, `bearer`).
    Token(SecretString),
    /// A password (`basic`).
    Password(SecretString),
    /// A Voximplant service-account key.
    Voximplant(voximplant::Key),
}

/// One load of a destination's secrets.
pub(crate) struct Loaded {
    pub(crate) keys: Keys,
    /// How many secrets the value held.
    pub(crate) count: usize,
    /// When they were loaded.
    pub(crate) loaded_at: SystemTime,
    /// Digest of the raw value, to tell a changed file from a touched one.
    digest: [u8; 32],
}

impl Loaded {
    /// `text` (a response) with the secret it was sent masked, in case the destination echoes
    /// what it received: a token or password (`bearer`, `reamaze-hmac`, `basic`). Signatures
    /// and minted tokens are not secrets in themselves and are left as they are.
    pub(crate) fn redact(&self, text: &str) -> String {
        match &self.keys {
            Keys::Token(s) | Keys::Password(s) if !s.expose_secret().is_empty() => {
                text.replace(s.expose_secret(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }
}

/// Where a destination's secrets come from.
#[derive(Debug, Clone)]
enum Origin {
    /// No secret (the scheme needs none).
    Nothing,
    /// An environment variable, read once at start-up.
    Env,
    /// A file, read again when it changes.
    File(PathBuf),
}

/// What a reload came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    /// Not a file, or the same content.
    Unchanged,
    /// New secrets in use; how many.
    Reloaded(usize),
    /// The file could not be read or parsed; the previous secrets stay. The message names the
    /// field and the problem, never the content.
    Failed(String),
}

/// A destination's secrets.
pub(crate) struct Secrets {
    signing: Signing,
    origin: Origin,
    /// `destinations.<name>.secret_file` (or `secret_env`), for messages.
    field: String,
    current: RwLock<Arc<Loaded>>,
}

impl Secrets {
    /// Loads the secrets of destination `name`.
    pub(crate) fn load(name: &str, config: &DestinationConfig) -> Result<Self, ConfigError> {
        let (origin, field, text) = if !config.signing.needs_secret() {
            (Origin::Nothing, String::new(), SecretString::from(""))
        } else if let Some(path) = &config.secret_file {
            let field = format!("destinations.{name}.secret_file");
            let text = read_file(path).map_err(|message| ConfigError::Invalid {
                field: field.clone(),
                message,
            })?;
            (Origin::File(path.clone()), field, text)
        } else {
            let field = format!("destinations.{name}.secret_env");
            let text = config
                .secret_env
                .as_ref()
                .map_or(Ok(""), |s| s.require(&field))?;
            (Origin::Env, field, SecretString::from(text))
        };
        let loaded = parse(config.signing, &text).map_err(|message| ConfigError::Invalid {
            field: field.clone(),
            message,
        })?;
        Ok(Self {
            signing: config.signing,
            origin,
            field,
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    /// The secrets to sign the next request with.
    pub(crate) fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The file the secrets come from, if any.
    pub(crate) fn file(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File(path) => Some(path),
            Origin::Nothing | Origin::Env => None,
        }
    }

    /// Reads the file again and, when its content changed and parses, uses it from the next
    /// request on.
    pub(crate) fn reload(&self) -> Reload {
        let Origin::File(path) = &self.origin else {
            return Reload::Unchanged;
        };
        let text = match read_file(path) {
            Ok(text) => text,
            Err(message) => return Reload::Failed(format!("{}: {message}", self.field)),
        };
        if digest(&text) == self.current().digest {
            return Reload::Unchanged;
        }
        match parse(self.signing, &text) {
            Ok(loaded) => {
                let count = loaded.count;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                Reload::Reloaded(count)
            }
            Err(message) => Reload::Failed(format!("{}: {message}", self.field)),
        }
    }
}

fn read_file(path: &Path) -> Result<SecretString, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!(
            "`{}` is larger than {MAX_FILE} bytes",
            path.display()
        ));
    }
    Ok(SecretString::from(text))
}

fn digest(text: &SecretString) -> [u8; 32] {
    Sha256::digest(text.expose_secret().as_bytes()).into()
}

/// Parses `text` for `signing`. Errors never quote the value.
fn parse(signing: Signing, text: &SecretString) -> Result<Loaded, String> {
    let raw = text.expose_secret();
    let mut words = raw.split_whitespace();
    let (keys, count) = match signing {
        Signing::None => (Keys::None, 0),
        Signing::StandardWebhooks => {
            let keys = words
                .enumerate()
                .map(|(i, word)| {
                    standard_webhooks::Secret::parse(word)
                        .map_err(|e| format!("secret number {} is not a `whsec_…` key: {e}", i + 1))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let count = keys.len();
            (Keys::Webhook(keys), count)
        }
        Signing::ReamazeHmac | Signing::Bearer => {
            let newest = words.next().ok_or("is empty")?;
            (
                Keys::Token(SecretString::from(newest.to_owned())),
                1 + words.count(),
            )
        }
        Signing::Basic => {
            let password = raw.trim();
            (Keys::Password(SecretString::from(password.to_owned())), 1)
        }
        Signing::VoximplantJwt => (Keys::Voximplant(voximplant::Key::parse(raw)?), 1),
    };
    if count == 0 && signing.needs_secret() {
        return Err("is empty".to_owned());
    }
    if let Keys::Password(p) = &keys
        && p.expose_secret().is_empty()
    {
        return Err("is empty".to_owned());
    }
    Ok(Loaded {
        keys,
        count,
        loaded_at: SystemTime::now(),
        digest: digest(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::EnvSecret;

    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_bm90IHRoZSBvdGhlciBvbmUgYXQgYWxs";

    fn file_destination(signing: Signing, path: &Path) -> DestinationConfig {
        let mut d = DestinationConfig::new("http://127.0.0.1:1/x", signing, None);
        d.secret_file = Some(path.to_owned());
        d
    }

    fn temp_file(tag: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "relay-secret-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn webhook_count(secrets: &Secrets) -> usize {
        match &secrets.current().keys {
            Keys::Webhook(keys) => keys.len(),
            _ => panic!("not webhook keys"),
        }
    }

    #[test]
    fn several_secrets_newest_first_from_the_environment() {
        let d = DestinationConfig::new(
            "http://127.0.0.1:1/x",
            Signing::StandardWebhooks,
            Some(EnvSecret::with_value("S", format!("{NEW}  {OLD}\n"))),
        );
        let secrets = Secrets::load("d", &d).unwrap();
        assert_eq!(webhook_count(&secrets), 2);
        assert_eq!(secrets.reload(), Reload::Unchanged, "env is read once");

        let d = DestinationConfig::new(
            "http://127.0.0.1:1/x",
            Signing::ReamazeHmac,
            Some(EnvSecret::with_value("S", "newest older")),
        );
        let loaded = Secrets::load("d", &d).unwrap().current();
        assert_eq!(loaded.count, 2);
        match &loaded.keys {
            Keys::Token(t) => assert_eq!(t.expose_secret(), "newest"),
            _ => panic!("a token"),
        }
    }

    #[test]
    fn a_changed_file_is_used_from_the_next_request_and_a_bad_one_is_not() {
        let path = temp_file("rotate", OLD);
        let secrets =
            Secrets::load("d", &file_destination(Signing::StandardWebhooks, &path)).unwrap();
        let before = secrets.current();
        assert_eq!(secrets.reload(), Reload::Unchanged);

        std::fs::write(&path, format!("{NEW}\n{OLD}\n")).unwrap();
        assert_eq!(secrets.reload(), Reload::Reloaded(2));
        assert_eq!(webhook_count(&secrets), 2);
        // What an attempt in flight holds is untouched.
        assert!(matches!(&before.keys, Keys::Webhook(k) if k.len() == 1));

        std::fs::write(&path, "not-a-key").unwrap();
        match secrets.reload() {
            Reload::Failed(message) => {
                assert!(message.contains("destinations.d.secret_file"), "{message}");
                assert!(
                    !message.contains("not-a-key"),
                    "never the content: {message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(webhook_count(&secrets), 2, "the previous secrets stay");

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(secrets.reload(), Reload::Failed(_)));
        assert_eq!(webhook_count(&secrets), 2);
    }

    #[test]
    fn start_up_refuses_what_does_not_parse_naming_the_field() {
        let path = temp_file("bad", "   \n");
        for signing in [Signing::ReamazeHmac, Signing::Bearer, Signing::Basic] {
            let err = Secrets::load("d", &file_destination(signing, &path))
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("destinations.d.secret_file") && err.contains("empty"),
                "{err}"
            );
        }
        std::fs::write(&path, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_%%%").unwrap();
        let err = Secrets::load("d", &file_destination(Signing::StandardWebhooks, &path))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("secret number 2"), "{err}");
        assert!(!err.contains("MfKQ9r8"), "never the value: {err}");
        std::fs::remove_file(&path).unwrap();
        let missing = Secrets::load("d", &file_destination(Signing::Bearer, &path))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("cannot open"), "{missing}");
    }

    #[test]
    fn an_echoed_secret_is_masked() {
        let d = DestinationConfig::new(
            "http://127.0.0.1:1/x",
            Signing::Bearer,
            Some(EnvSecret::with_value("S", "s3cr3t-value older")),
        );
        let loaded = Secrets::load("d", &d).unwrap().current();
        assert_eq!(
            loaded.redact("you sent Authorization: Bearer s3cr3t-value"),
            "you sent Authorization: Bearer [redacted]"
        );
    }

    #[test]
    fn a_basic_password_is_the_whole_value() {
        let path = temp_file("basic", "pass with spaces\n");
        let loaded = Secrets::load("d", &file_destination(Signing::Basic, &path))
            .unwrap()
            .current();
        match &loaded.keys {
            Keys::Password(p) => assert_eq!(p.expose_secret(), "pass with spaces"),
            _ => panic!("a password"),
        }
        std::fs::remove_file(&path).unwrap();
    }
}
