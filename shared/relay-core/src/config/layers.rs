//! The layers of a configuration, merged by figment: the TOML file, then every
//! `RELAY__SECTION__FIELD` environment override on top of it.
//!
//! Each override is a figment provider of its own, merged in turn, so that figment tags every
//! value with the layer it came from and an error about it names the variable. figment's `Env`
//! provider is not used: it reads only the process environment (the deployment check feeds a
//! container's variables, tests their own) and drops a malformed name without a word.

use figment::providers::{Data, Format};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::DeserializeOwned;

use super::{ConfigError, ENV_PREFIX, invalid};

/// TOML through figment's `Format` trait, parsed by the workspace's `toml` (TOML 1.1, the
/// parser every other part of the relay uses) rather than figment's own older one.
pub(super) struct Toml;

impl Format for Toml {
    type Error = toml::de::Error;
    const NAME: &'static str = "TOML";

    fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Self::Error> {
        toml::from_str(text)
    }
}

/// One `RELAY__…` variable: where in the tree its value goes.
#[derive(Debug, Clone)]
pub(super) struct Override {
    /// The variable's name, as set.
    pub(super) name: String,
    /// The key path, lowercased: `RELAY__AMQP__URL` → `["amqp", "url"]`.
    pub(super) path: Vec<String>,
    value: Value,
}

impl Override {
    /// The override `name=value` sets, `None` when `name` does not start with `RELAY__` (in any
    /// case). The value is read as a TOML value when it parses as one (numbers, booleans,
    /// arrays, quoted strings) and as a string otherwise.
    pub(super) fn parse(name: &str, value: &str) -> Result<Option<Self>, ConfigError> {
        let Some(rest) = name
            .get(..ENV_PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
            .map(|_| &name[ENV_PREFIX.len()..])
        else {
            return Ok(None);
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(invalid(
                name,
                "malformed override name (use RELAY__SECTION__FIELD)",
            ));
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut table| table.remove("v"))
            // A date is no type of the configuration: such a value is the text as written.
            .filter(|parsed| !parsed.is_datetime())
            .and_then(|parsed| Value::serialize(parsed).ok())
            .unwrap_or_else(|| Value::from(value.to_owned()));
        Ok(Some(Self {
            name: name.to_owned(),
            path,
            value: parsed,
        }))
    }
}

impl Provider for Override {
    fn metadata(&self) -> Metadata {
        let name = self.name.clone();
        Metadata::from("environment variable", Source::Custom(self.name.clone()))
            .interpolater(move |_: &Profile, _: &[&str]| name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        if let Some((first, rest)) = self.path.split_first() {
            let value = rest.iter().rev().fold(self.value.clone(), |value, key| {
                Value::from(Dict::from([(key.clone(), value)]))
            });
            dict.insert(first.clone(), value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The overrides among `vars`, in order; an error for the first malformed `RELAY__…` name.
pub(super) fn overrides(vars: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    vars.iter()
        .filter_map(|(name, value)| Override::parse(name, value).transpose())
        .collect()
}

/// The file's text with `overrides` merged over it, later ones winning.
pub(super) fn figment(text: &str, overrides: &[Override]) -> Figment {
    overrides
        .iter()
        .cloned()
        .fold(Figment::from(Data::<Toml>::string(text)), Figment::merge)
}
