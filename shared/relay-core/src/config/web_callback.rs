//! `[worker.web_callback]`: the handler that originates the call an Acrobits web callback asked
//! for, through Plivo or Voximplant (both legs: the user first, then the target).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::serde_text;

use super::{Config, ConfigError, invalid};

/// Who places the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Plivo's Call API; the second leg is a `<Dial>` from ingress's answer route.
    Plivo,
    /// Voximplant's `StartScenarios`; the scenario (deploy/voximplant/) calls both legs.
    Voximplant,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Self; 2] = [Self::Plivo, Self::Voximplant];

    /// Its name: in configuration, in a job's context, and the `source` label of metrics (the
    /// same as ingress's for its callbacks).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plivo => "plivo",
            Self::Voximplant => "voximplant",
        }
    }
}

/// The web-callback handler.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebCallbackConfig {
    /// The provider of accounts not listed in `accounts`.
    pub provider: Provider,
    /// Acrobits username → provider, for accounts that use another one.
    pub accounts: BTreeMap<String, Provider>,
    /// An origination not placed this long after the request is given up (the user stopped
    /// waiting): its job is dead-lettered instead of retried.
    #[serde(with = "serde_text")]
    pub give_up_after: Duration,
    /// How long the answer URL of a Plivo call stays good: an answer request after it gets the
    /// default XML, not a `<Dial>`.
    #[serde(with = "serde_text")]
    pub answer_valid_for: Duration,
    /// How long the outcome of an origination (the provider's call id) is kept in Redis.
    #[serde(with = "serde_text")]
    pub outcome_ttl: Duration,
    /// Plivo origination.
    pub plivo: Option<PlivoOrigination>,
    /// Voximplant origination.
    pub voximplant: Option<VoximplantOrigination>,
    /// Missed inbound calls called back; absent: off.
    pub missed_calls: Option<MissedCallbacks>,
    /// Unacknowledged events at once; default `worker.prefetch`.
    pub prefetch: Option<u16>,
}

/// Calling back the callers of missed inbound calls (the call log says when a call was missed:
/// `relay.call.missed`), through the same origination, numbers policy and thread.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MissedCallbacks {
    /// Channel numbers (E.164) whose missed calls are called back.
    pub channels: Vec<String>,
    /// Local opening hours, `HH:MM-HH:MM` (the end excluded): a call missed outside them is
    /// not called back.
    #[serde(default = "default_hours")]
    pub hours: String,
    /// The time zone of `hours` (IANA, e.g. `Europe/Berlin`).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Callbacks per caller per day (24 hours from the first).
    #[serde(default = "default_per_caller_per_day")]
    pub per_caller_per_day: u32,
    /// The account the callback is placed for (its provider from `accounts`), shown in the
    /// thread.
    #[serde(default = "default_missed_user")]
    pub user: String,
    /// The number called first, the team's side (E.164); the caller is dialled once it answers.
    /// Default: the channel number the call was missed on.
    #[serde(default)]
    pub first_number: Option<String>,
}

fn default_hours() -> String {
    "09:00-18:00".to_owned()
}
fn default_time_zone() -> String {
    "UTC".to_owned()
}
fn default_per_caller_per_day() -> u32 {
    1
}
fn default_missed_user() -> String {
    "missed-call".to_owned()
}

impl MissedCallbacks {
    /// `hours` as minutes after midnight, `[start, end)`.
    pub fn opening(&self) -> Result<(u16, u16), String> {
        let minutes = |text: &str| -> Option<u16> {
            let (h, m) = text.trim().split_once(':')?;
            let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
            (h < 24 && m < 60 && m.to_string().len() <= 2).then_some(h * 60 + m)
        };
        // `24:00` may end the day.
        let end_of = |text: &str| {
            if text.trim() == "24:00" {
                Some(24 * 60)
            } else {
                minutes(text)
            }
        };
        let (start, end) = self
            .hours
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, end_of(b)?)))
            .ok_or_else(|| format!("`{}` is not HH:MM-HH:MM", self.hours))?;
        if start >= end {
            return Err(format!("`{}` ends before it starts", self.hours));
        }
        Ok((start, end))
    }

    /// Whether `at` falls within the opening hours, in the configured time zone.
    pub fn open_at(&self, at: time::OffsetDateTime) -> Result<bool, String> {
        let (start, end) = self.opening()?;
        let zone = jiff::tz::TimeZone::get(&self.time_zone)
            .map_err(|e| format!("time zone `{}`: {e}", self.time_zone))?;
        let instant =
            jiff::Timestamp::from_second(at.unix_timestamp()).map_err(|e| e.to_string())?;
        let local = instant.to_zoned(zone).time();
        let minute = u16::try_from(local.hour()).unwrap_or(0) * 60
            + u16::try_from(local.minute()).unwrap_or(0);
        Ok(start <= minute && minute < end)
    }
}

impl Default for WebCallbackConfig {
    fn default() -> Self {
        Self {
            provider: Provider::Plivo,
            accounts: BTreeMap::new(),
            give_up_after: Duration::from_secs(120),
            answer_valid_for: Duration::from_secs(600),
            outcome_ttl: Duration::from_secs(2 * 86_400),
            plivo: None,
            voximplant: None,
            missed_calls: None,
            prefetch: None,
        }
    }
}

/// Originating through Plivo's Call API (`POST /v1/Account/{auth_id}/Call/`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoOrigination {
    /// The destination of the API (`https://api.plivo.com`, `signing = "basic"` with
    /// `username` = the auth id and the auth token as its secret).
    #[serde(default = "default_plivo_destination")]
    pub destination: String,
    /// The account's auth id (in the API path).
    pub auth_id: String,
    /// The number both legs show (E.164): a number of the account.
    pub caller_id: String,
    /// Seconds the user's phone rings before Plivo gives up.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout: u32,
}

/// Originating through Voximplant's `StartScenarios`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoximplantOrigination {
    /// The destination of the API (`https://api.voximplant.com`, `signing = "voximplant-jwt"`).
    #[serde(default = "default_voximplant_destination")]
    pub destination: String,
    /// The rule that runs deploy/voximplant/web-callback.js.
    pub rule_id: u64,
    /// The number both legs show (E.164), passed to the scenario.
    pub caller_id: String,
}

fn default_plivo_destination() -> String {
    "plivo-api".to_owned()
}
fn default_voximplant_destination() -> String {
    "voximplant-api".to_owned()
}
fn default_ring_timeout() -> u32 {
    30
}

impl WebCallbackConfig {
    /// The provider of `username`.
    pub fn provider_of(&self, username: &str) -> Provider {
        self.accounts
            .get(username)
            .copied()
            .unwrap_or(self.provider)
    }
}

impl Config {
    /// Checks `[worker.web_callback]`, when present.
    pub(super) fn validate_web_callback(&self) -> Result<(), ConfigError> {
        let Some(section) = &self.worker.web_callback else {
            return Ok(());
        };
        let destination = |field: &str, name: &str| self.require_destination(field, name);
        let e164 = |field: &str, number: &str| {
            if crate::phone::normalize_e164(number).as_deref() == Some(number) {
                Ok(())
            } else {
                Err(invalid(field, "an E.164 number such as \"+15550001111\""))
            }
        };
        let used = std::iter::once(section.provider).chain(section.accounts.values().copied());
        for provider in used {
            match provider {
                Provider::Plivo if section.plivo.is_none() => {
                    return Err(invalid(
                        "worker.web_callback.plivo",
                        "Plivo originates some callbacks: configure [worker.web_callback.plivo]",
                    ));
                }
                Provider::Voximplant if section.voximplant.is_none() => {
                    return Err(invalid(
                        "worker.web_callback.voximplant",
                        "Voximplant originates some callbacks: configure [worker.web_callback.voximplant]",
                    ));
                }
                _ => {}
            }
        }
        if let Some(plivo) = &section.plivo {
            destination("worker.web_callback.plivo.destination", &plivo.destination)?;
            e164("worker.web_callback.plivo.caller_id", &plivo.caller_id)?;
            if plivo.auth_id.is_empty() || !plivo.auth_id.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(invalid(
                    "worker.web_callback.plivo.auth_id",
                    "the account's auth id (letters and digits)",
                ));
            }
            if plivo.ring_timeout == 0 {
                return Err(invalid(
                    "worker.web_callback.plivo.ring_timeout",
                    "must be positive",
                ));
            }
        }
        if let Some(vox) = &section.voximplant {
            destination(
                "worker.web_callback.voximplant.destination",
                &vox.destination,
            )?;
            e164("worker.web_callback.voximplant.caller_id", &vox.caller_id)?;
        }
        if section.give_up_after.is_zero() || section.answer_valid_for.is_zero() {
            return Err(invalid(
                "worker.web_callback.give_up_after",
                "give_up_after and answer_valid_for must be positive",
            ));
        }
        if let Some(missed) = &section.missed_calls {
            let field = |f: &str| format!("worker.web_callback.missed_calls.{f}");
            if missed.channels.is_empty() {
                return Err(invalid(
                    field("channels"),
                    "list the channel numbers to call back",
                ));
            }
            for (i, channel) in missed.channels.iter().enumerate() {
                e164(&field(&format!("channels[{i}]")), channel)?;
            }
            missed.opening().map_err(|m| invalid(field("hours"), m))?;
            jiff::tz::TimeZone::get(&missed.time_zone)
                .map_err(|e| invalid(field("time_zone"), format!("not a known time zone: {e}")))?;
            if let Some(first) = &missed.first_number {
                e164(&field("first_number"), first)?;
            }
            if missed.per_caller_per_day == 0 {
                return Err(invalid(field("per_caller_per_day"), "must be at least 1"));
            }
        }
        if section.prefetch == Some(0) {
            return Err(invalid(
                "worker.web_callback.prefetch",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let config = Config::from_toml(text, &[], &|_: &str| Some("secret".to_owned()))
            .map_err(|e| e.to_string())?;
        config.validate_worker().map_err(|e| e.to_string())?;
        Ok(config)
    }

    const DESTINATIONS: &str = "[destinations.plivo-api]\nurl = \"http://127.0.0.1:1\"\nsigning = \"basic\"\nusername = \"MA1\"\nsecret_env = \"T\"\n[destinations.voximplant-api]\nurl = \"http://127.0.0.1:1\"\n";

    #[test]
    fn a_providers_name_is_its_configuration_name() {
        for provider in Provider::ALL {
            assert_eq!(serde_json::to_value(provider).unwrap(), provider.name());
        }
    }

    #[test]
    fn providers_per_account_and_their_sections() {
        let config = load(&format!(
            "{DESTINATIONS}[worker.web_callback]\naccounts = {{ bob = \"voximplant\" }}\n[worker.web_callback.plivo]\nauth_id = \"MA1\"\ncaller_id = \"+15550001111\"\n[worker.web_callback.voximplant]\nrule_id = 7\ncaller_id = \"+15550001111\"\n"
        ))
        .unwrap();
        let section = config.worker.web_callback.as_ref().unwrap();
        assert_eq!(section.provider_of("alice"), Provider::Plivo);
        assert_eq!(section.provider_of("bob"), Provider::Voximplant);
        assert_eq!(section.plivo.as_ref().unwrap().destination, "plivo-api");
        assert_eq!(section.plivo.as_ref().unwrap().ring_timeout, 30);
    }

    #[test]
    fn a_provider_in_use_needs_its_section_and_numbers_are_e164() {
        let err = load(&format!("{DESTINATIONS}[worker.web_callback]\n")).unwrap_err();
        assert!(err.contains("worker.web_callback.plivo"), "{err}");
        let err = load(&format!(
            "{DESTINATIONS}[worker.web_callback]\n[worker.web_callback.plivo]\nauth_id = \"MA1\"\ncaller_id = \"5550001111\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("caller_id"), "{err}");
        let err = load(&format!(
            "{DESTINATIONS}[worker.web_callback]\nprovider = \"voximplant\"\n[worker.web_callback.voximplant]\ndestination = \"nope\"\nrule_id = 1\ncaller_id = \"+15550001111\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("no destination named `nope`"), "{err}");
    }

    fn missed(hours: &str, zone: &str) -> MissedCallbacks {
        MissedCallbacks {
            channels: vec!["+15550009999".into()],
            hours: hours.into(),
            time_zone: zone.into(),
            per_caller_per_day: 1,
            user: "missed-call".into(),
            first_number: None,
        }
    }

    #[test]
    fn opening_hours_are_local_to_their_time_zone() {
        let berlin = missed("09:00-18:00", "Europe/Berlin");
        // 2026-12-04 07:59 UTC is 08:59 in Berlin (CET, UTC+1); 08:00 UTC is 09:00.
        let at = |h: u8, m: u8| {
            time::macros::datetime!(2026-12-04 00:00 UTC)
                + time::Duration::hours(h.into())
                + time::Duration::minutes(m.into())
        };
        assert!(!berlin.open_at(at(7, 59)).unwrap());
        assert!(berlin.open_at(at(8, 0)).unwrap());
        assert!(berlin.open_at(at(16, 59)).unwrap());
        assert!(!berlin.open_at(at(17, 0)).unwrap(), "18:00 local: closed");
        // Summer time: 2026-07-01 07:00 UTC is 09:00 in Berlin (CEST, UTC+2).
        let summer = time::macros::datetime!(2026-07-01 07:00 UTC);
        assert!(berlin.open_at(summer).unwrap());
        assert!(!berlin.open_at(summer - time::Duration::minutes(1)).unwrap());
    }

    #[test]
    fn bad_hours_and_zones_are_refused_by_name() {
        assert_eq!(missed("00:00-24:00", "UTC").opening(), Ok((0, 1440)));
        for bad in [
            "9-18",
            "09:00",
            "18:00-09:00",
            "09:00-24:30",
            "24:00-24:00",
            "09:60-10:00",
        ] {
            assert!(missed(bad, "UTC").opening().is_err(), "{bad}");
        }
        let err = load(&format!(
            "{DESTINATIONS}[worker.web_callback]\n[worker.web_callback.plivo]\nauth_id = \"MA1\"\ncaller_id = \"+15550001111\"\n[worker.web_callback.missed_calls]\nchannels = [\"+15550009999\"]\ntime_zone = \"Mars/Olympus\"\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("worker.web_callback.missed_calls.time_zone"),
            "{err}"
        );
    }
}
