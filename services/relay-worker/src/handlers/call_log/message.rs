//! The helpdesk message: Re:amaze's custom voice channel format (seed 004, PROTOCOLS.md).
//!
//! ```json
//! {"id": "…", "direction": "inbound", "to": {"name": "…", "phone": "+1…"},
//!  "from": {"phone": "+1…"}, "body": "Call ended - duration: 0:30:05",
//!  "created_at": "2019-08-06T23:21:15+0000", "attachments": ["https://…"],
//!  "thread_id": "plivo:…", "assignee": {"email": "alice@example.com"}}
//! ```
//! For an outbound call `to` is the customer and `from` the channel number; inbound the
//! reverse. `id` is deterministic per (session, transition), so any replay collapses.

use std::collections::BTreeMap;

use relay_core::config::{AgentConfig, CallLogConfig, InboundAnswer};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::session::{Direction, Session};

/// The namespace of message ids (a fixed random UUID; never change it).
const NAMESPACE: Uuid = Uuid::from_u128(0x2b8e_61f4_93c7_4d0a_8f25_c0d9_7a13_64be);

/// What the configuration says about rendering and routing messages.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Helpdesk destination of channels without their own.
    pub default_destination: String,
    /// Channel number → destination.
    pub channels: BTreeMap<String, String>,
    /// Send recording messages.
    pub recordings: bool,
    /// Customer names by number.
    pub contacts: BTreeMap<String, String>,
    /// Staff by number or SIP user.
    pub agents: BTreeMap<String, AgentConfig>,
    /// An inbound call counts as answered when the application answers it.
    pub app_answer_counts: bool,
}

impl Rules {
    /// The rules of a `[worker.call_log]` section.
    pub fn from_config(config: &CallLogConfig) -> Self {
        Self {
            default_destination: config.destination.clone(),
            channels: config.channels.clone(),
            recordings: config.recordings,
            contacts: config.contacts.clone(),
            agents: config.agents.clone(),
            app_answer_counts: config.plivo_inbound_answer == InboundAnswer::App,
        }
    }

    /// The helpdesk destination of a session on `channel`.
    pub fn destination_for(&self, channel: Option<&str>) -> &str {
        channel
            .and_then(|c| self.channels.get(c))
            .unwrap_or(&self.default_destination)
    }

    /// The staff entry of an agent identity: a number, a SIP URI, or a bare SIP user.
    pub fn agent(&self, who: &str) -> Option<&AgentConfig> {
        self.agents.get(who).or_else(|| {
            let user = who
                .strip_prefix("sip:")
                .or_else(|| who.strip_prefix("sips:"))?;
            let user = user.split(['@', ';']).next()?;
            self.agents.get(user)
        })
    }

    /// How to call an agent in a message.
    pub fn agent_name(&self, who: &str) -> String {
        self.agent(who)
            .map_or_else(|| who.to_owned(), |a| a.name.clone())
    }

    /// How to call a customer in a message.
    pub fn contact_name(&self, number: &str) -> String {
        self.contacts
            .get(number)
            .cloned()
            .unwrap_or_else(|| number.to_owned())
    }
}

/// The deterministic id of a session's message for `key`.
pub fn message_id(session: &str, key: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("call-log/{session}/{key}").as_bytes()).to_string()
}

/// The id of the delivery job that carries the message `message_id` (one job per message).
pub fn job_id(message_id: &str) -> String {
    relay_core::ids::job_id(message_id, relay_core::routing::CALL_LOG.name, 0)
}

/// `seconds` as `H:MM:SS`.
pub fn hms(seconds: u64) -> String {
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

/// `at` the way the seed writes it: `2019-08-06T23:21:15+0000`, in UTC.
pub fn created_at(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]+0000"
        ))
        .unwrap_or_default()
}

fn party(phone: Option<&str>, name: Option<String>) -> Value {
    let mut object = Map::new();
    if let Some(name) = name {
        object.insert("name".into(), Value::String(name));
    }
    if let Some(phone) = phone {
        object.insert("phone".into(), Value::String(phone.to_owned()));
    }
    Value::Object(object)
}

/// Renders the message `key` of `session`: its id and the exact body to send.
pub fn render(
    session: &Session,
    key: &str,
    text: &str,
    at: OffsetDateTime,
    attachment: Option<&str>,
    rules: &Rules,
) -> (String, String) {
    let id = message_id(&session.id, key);
    let customer_name = session
        .customer
        .as_deref()
        .and_then(|c| rules.contacts.get(c).cloned());
    let staff = session.agent.as_deref().and_then(|a| rules.agent(a));
    let company_name = staff
        .map(|a| a.name.clone())
        .or_else(|| session.user.clone());
    let customer = party(session.customer.as_deref(), customer_name);
    let company = party(session.channel.as_deref(), company_name);
    let (direction, to, from) = match session.direction {
        Direction::Inbound => ("inbound", company, customer),
        Direction::Outbound => ("outbound", customer, company),
    };
    let mut body = json!({
        "id": id,
        "direction": direction,
        "to": to,
        "from": from,
        "body": text,
        "created_at": created_at(at),
        "thread_id": session.thread.as_deref().unwrap_or(&session.id),
    });
    if let Some(url) = attachment {
        body["attachments"] = json!([url]);
    }
    if let Some(email) = staff.and_then(|a| a.email.as_deref()) {
        body["assignee"] = json!({ "email": email });
    }
    (
        id,
        serde_json::to_string(&body).expect("a message always serialises"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_are_formatted_like_the_seed() {
        assert_eq!(hms(0), "0:00:00");
        assert_eq!(hms(30 * 60 + 5), "0:30:05");
        assert_eq!(hms(3 * 3600 + 59), "3:00:59");
        let at = time::macros::datetime!(2019-08-06 23:21:15 UTC);
        assert_eq!(created_at(at), "2019-08-06T23:21:15+0000");
        let offset = time::macros::datetime!(2019-08-07 01:21:15 +02:00);
        assert_eq!(created_at(offset), "2019-08-06T23:21:15+0000");
    }

    #[test]
    fn agents_are_found_by_number_sip_uri_or_user() {
        let mut rules = Rules::default();
        rules.agents.insert(
            "alice".into(),
            AgentConfig {
                name: "Alice".into(),
                email: Some("alice@example.com".into()),
            },
        );
        rules.agents.insert(
            "+15550001111".into(),
            AgentConfig {
                name: "Bob".into(),
                email: None,
            },
        );
        assert_eq!(rules.agent_name("sip:alice@phone.plivo.com"), "Alice");
        assert_eq!(rules.agent_name("alice"), "Alice");
        assert_eq!(rules.agent_name("+15550001111"), "Bob");
        assert_eq!(rules.agent_name("+15559999999"), "+15559999999");
    }

    #[test]
    fn ids_are_per_session_and_transition() {
        assert_eq!(message_id("s", "ended"), message_id("s", "ended"));
        assert_ne!(message_id("s", "ended"), message_id("s", "missed"));
        assert_ne!(message_id("s", "ended"), message_id("t", "ended"));
    }
}
