//! Secrets named by environment variable.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{ConfigError, invalid};

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

    pub(super) fn resolve(&mut self, env: &dyn Fn(&str) -> Option<String>) {
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
