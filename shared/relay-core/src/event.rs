//! The CloudEvents 1.0 envelope in structured JSON mode (`application/cloudevents+json`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Media type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// One event on `relay.events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Event id: UUIDv7, or UUIDv5 of the provider's unique id (see [`crate::ids`]).
    pub id: String,
    /// Where it came from, e.g. `voximplant/account/12345`.
    pub source: String,
    /// Reverse-DNS type, e.g. `com.voximplant.account.min_balance`.
    #[serde(rename = "type")]
    pub ty: String,
    /// When the relay received it.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What it is about, e.g. the account or call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Media type of `data`: always JSON here.
    #[serde(default = "json")]
    pub datacontenttype: String,
    /// The normalised payload; keeps every provider field the relay does not model.
    pub data: serde_json::Value,
}

fn json() -> String {
    "application/json".to_owned()
}

impl CloudEvent {
    /// A new event received now.
    pub fn new(id: String, source: String, ty: String, data: serde_json::Value) -> Self {
        Self {
            specversion: "1.0".to_owned(),
            id,
            source,
            ty,
            time: OffsetDateTime::now_utc(),
            subject: None,
            datacontenttype: json(),
            data,
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_structured_mode_names() {
        let event = CloudEvent::new(
            "id-1".into(),
            "voximplant/account/1".into(),
            "com.voximplant.account.min_balance".into(),
            serde_json::json!({"balance": 1.5}),
        )
        .with_subject("1");
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["type"], "com.voximplant.account.min_balance");
        assert_eq!(value["datacontenttype"], "application/json");
        assert_eq!(value["subject"], "1");
        assert!(value["time"].as_str().unwrap().ends_with('Z'));
        let back: CloudEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }
}
