//! What is read of a parked message: its [`Facts`] (why, where to, when, how big) from the
//! relay's headers, the broker's `x-death` record and the body. Pure functions over AMQP
//! properties, tested without a broker.

use lapin::BasicProperties;
use relay_amqp::{AMQPValue, FieldTable, headers};
use relay_core::routing;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Queue;

/// The broker's dead-letter record, newest death first.
const X_DEATH: &str = "x-death";
/// The broker's reason for the first dead-lettering (`delivery_limit`, `rejected`, `expired`).
const FIRST_DEATH_REASON: &str = "x-first-death-reason";
/// The queue the broker first dead-lettered the message from.
const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";

/// What is known of one parked message, without its body; as `relayctl dead list --json`
/// prints it (the fields marked `skip` are not printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// AMQP `message_id`: the event or job id.
    pub id: Option<String>,
    /// The queue it sits in (printed as its name on the broker).
    pub queue: Queue,
    /// Why it is parked (see [`reason`]).
    pub reason: Option<String>,
    /// The broker's own reason, when the broker parked it.
    #[serde(skip)]
    pub broker_reason: Option<String>,
    /// The failure in words (`x-relay-detail`).
    pub detail: Option<String>,
    /// HTTP status of a job's last attempt.
    pub status: Option<i64>,
    /// Attempts made (`x-relay-attempt`).
    pub attempts: Option<i64>,
    /// A job's destination.
    pub destination: Option<String>,
    /// The routing key an event was published with (what a replay publishes it with again).
    pub routing_key: Option<String>,
    /// The CloudEvent `type` of an event.
    #[serde(rename = "type")]
    pub ty: Option<String>,
    /// When it was parked (see [`parked_at`]).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub time: Option<OffsetDateTime>,
    /// Body length in bytes.
    pub body_size: usize,
    /// The handler an event was for when it was parked or sent on (`relay-handler`).
    #[serde(skip)]
    pub handler: Option<String>,
}

/// The fields read from a body without knowing whether it is an event or a job.
#[derive(serde::Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    ty: Option<String>,
    destination: Option<String>,
}

impl Facts {
    /// Reads a message got from `queue` with `routing_key`.
    pub fn read(
        queue: Queue,
        properties: &BasicProperties,
        routing_key: &str,
        body: &[u8],
    ) -> Self {
        let table = properties.headers().as_ref();
        let text = |key| headers::get_str(table, key).filter(|s| !s.is_empty());
        let peek = serde_json::from_slice::<Peek>(body).ok();
        let (ty, body_destination) = peek.map_or((None, None), |p| (p.ty, p.destination));
        // The key to publish it with again: the relay records it when parking; what sits in
        // relay.unrouted still has its own; the broker records it in x-death.
        let own_key =
            (queue == Queue::Unrouted && !routing_key.is_empty()).then(|| routing_key.to_owned());
        let death_key = last_death(table)
            .and_then(|death| death.inner().get("routing-keys"))
            .and_then(|keys| match keys {
                AMQPValue::FieldArray(keys) => keys.as_slice().first().and_then(as_text),
                _ => None,
            })
            .filter(|key| !key.is_empty());
        Self {
            id: properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty()),
            queue,
            reason: reason(table),
            broker_reason: text(FIRST_DEATH_REASON),
            detail: text(headers::DETAIL),
            status: headers::get_int(table, headers::STATUS),
            attempts: headers::get_int(table, headers::ATTEMPT),
            destination: text(headers::DESTINATION).or(body_destination),
            routing_key: text(headers::ROUTING_KEY).or(own_key).or(death_key),
            ty,
            time: parked_at(table, *properties.timestamp()),
            body_size: body.len(),
            handler: text(routing::HANDLER_HEADER),
        }
    }

    /// One line (and the detail under it), as `relayctl dead list` prints it.
    pub fn line(&self) -> String {
        let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        let number = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let time = self.time.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        let mut line = format!(
            "{id}  reason={reason} status={status} attempts={attempts} destination={destination} key={key} type={ty} time={time} size={size}",
            id = or_dash(&self.id),
            reason = or_dash(&self.reason),
            status = number(self.status),
            attempts = number(self.attempts),
            destination = or_dash(&self.destination),
            key = or_dash(&self.routing_key),
            ty = or_dash(&self.ty),
            time = or_dash(&time),
            size = self.body_size,
        );
        if let Some(detail) = &self.detail {
            line.push_str("\n    detail: ");
            line.push_str(detail);
        }
        line
    }
}

/// Why a message is parked: the relay's own reason, or, for what the broker parked by itself
/// (a delivery limit, a rejection, an expiry), the broker's `x-first-death-reason` and queue.
pub fn reason(table: Option<&FieldTable>) -> Option<String> {
    if let Some(reason) = headers::get_str(table, headers::REASON) {
        return Some(reason);
    }
    let reason = headers::get_str(table, FIRST_DEATH_REASON)?;
    let queue = headers::get_str(table, FIRST_DEATH_QUEUE).unwrap_or_default();
    Some(format!("broker:{reason}@{queue}"))
}

/// When a message was parked. The relay parks by publishing a copy, stamped with the time
/// (AMQP `timestamp`); the broker dead-letters the message itself, keeping its original
/// timestamp and recording the time of death in `x-death`. A message in `relay.unrouted` has
/// the time it was published.
pub fn parked_at(table: Option<&FieldTable>, timestamp: Option<u64>) -> Option<OffsetDateTime> {
    let stamped = timestamp.and_then(seconds);
    let died = last_death(table)
        .and_then(|death| match death.inner().get("time") {
            Some(AMQPValue::Timestamp(t)) => Some(*t),
            _ => None,
        })
        .and_then(seconds);
    let parked_by_relay = headers::get_str(table, headers::REASON).is_some();
    if parked_by_relay {
        stamped.or(died)
    } else {
        died.or(stamped)
    }
}

/// The newest entry of the broker's `x-death` record.
fn last_death(table: Option<&FieldTable>) -> Option<&FieldTable> {
    match table?.inner().get(X_DEATH)? {
        AMQPValue::FieldArray(deaths) => match deaths.as_slice().first()? {
            AMQPValue::FieldTable(death) => Some(death),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(lossy(s.as_bytes())),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn seconds(t: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString, ShortString};
    use time::macros::datetime;

    const PARKED: u64 = 1_740_830_400; // 2025-03-01T12:00:00Z
    const DIED: u64 = 1_740_826_800; // 2025-03-01T11:00:00Z

    fn death(queue: &str, key: &str) -> AMQPValue {
        let mut death = FieldTable::default();
        death.insert(
            ShortString::from("queue"),
            AMQPValue::LongString(LongString::from(queue)),
        );
        death.insert(ShortString::from("time"), AMQPValue::Timestamp(DIED));
        death.insert(
            ShortString::from("routing-keys"),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                LongString::from(key),
            )])),
        );
        AMQPValue::FieldTable(death)
    }

    pub(crate) fn broker_parked() -> FieldTable {
        let mut table = FieldTable::default();
        headers::put_str(&mut table, FIRST_DEATH_REASON, "delivery_limit");
        headers::put_str(&mut table, FIRST_DEATH_QUEUE, "relay.handler.call-log");
        table.insert(
            ShortString::from(X_DEATH),
            AMQPValue::FieldArray(FieldArray::from(vec![death(
                "relay.handler.call-log",
                "plivo.call.ringing",
            )])),
        );
        table
    }

    #[test]
    fn reasons_come_from_the_relay_or_from_the_broker() {
        let mut relay = FieldTable::default();
        headers::put_str(&mut relay, headers::REASON, "http_status");
        assert_eq!(reason(Some(&relay)).as_deref(), Some("http_status"));
        assert_eq!(
            reason(Some(&broker_parked())).as_deref(),
            Some("broker:delivery_limit@relay.handler.call-log")
        );
        assert_eq!(reason(None), None);
    }

    #[test]
    fn a_relay_parked_message_is_timed_by_its_stamp_a_broker_parked_one_by_its_death() {
        let mut relay = broker_parked(); // it went through a retry tier first
        headers::put_str(&mut relay, headers::REASON, "attempts_exhausted");
        assert_eq!(
            parked_at(Some(&relay), Some(PARKED)),
            Some(datetime!(2025-03-01 12:00 UTC))
        );
        assert_eq!(
            parked_at(Some(&broker_parked()), Some(PARKED)),
            Some(datetime!(2025-03-01 11:00 UTC))
        );
        assert_eq!(
            parked_at(None, Some(PARKED)),
            Some(datetime!(2025-03-01 12:00 UTC))
        );
        assert_eq!(parked_at(None, None), None);
    }

    #[test]
    fn a_jobs_facts_come_from_the_relays_headers() {
        let mut table = FieldTable::default();
        headers::put_str(&mut table, headers::REASON, "http_status");
        headers::put_str(&mut table, headers::DETAIL, "answered 400");
        headers::put_int(&mut table, headers::STATUS, 400);
        headers::put_int(&mut table, headers::ATTEMPT, 1);
        headers::put_str(&mut table, headers::DESTINATION, "alerts");
        headers::put_str(&mut table, headers::ROUTING_KEY, "");
        let properties = BasicProperties::default()
            .with_message_id("job-1".into())
            .with_timestamp(PARKED)
            .with_headers(table);
        let facts = Facts::read(
            Queue::DeadDeliveries,
            &properties,
            "deliveries",
            b"{\"id\":1}",
        );
        assert_eq!(facts.id.as_deref(), Some("job-1"));
        assert_eq!(facts.queue.name(), "relay.dead.deliveries");
        assert_eq!(facts.reason.as_deref(), Some("http_status"));
        assert_eq!(facts.detail.as_deref(), Some("answered 400"));
        assert_eq!((facts.status, facts.attempts), (Some(400), Some(1)));
        assert_eq!(facts.destination.as_deref(), Some("alerts"));
        assert_eq!(facts.routing_key, None, "an empty key is no key");
        assert_eq!(facts.ty, None);
        assert_eq!(facts.body_size, 8);
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(json["time"], "2025-03-01T12:00:00Z");
        assert_eq!(json["routing_key"], serde_json::Value::Null);
        for key in [
            "id",
            "queue",
            "reason",
            "detail",
            "status",
            "attempts",
            "destination",
            "type",
            "body_size",
        ] {
            assert!(json.get(key).is_some(), "{key} is always there");
        }
        assert!(json.get("broker_reason").is_none() && json.get("handler").is_none());
        let back: Facts = serde_json::from_value(json).unwrap();
        assert_eq!(back, facts, "what is printed reads back");
    }

    #[test]
    fn an_events_key_is_the_recorded_one_its_own_when_unrouted_or_the_brokers() {
        let event = br#"{"type":"com.plivo.call.ringing","id":"e"}"#;
        let properties = BasicProperties::default();
        let unrouted = Facts::read(Queue::Unrouted, &properties, "shop.order", event);
        assert_eq!(unrouted.routing_key.as_deref(), Some("shop.order"));
        assert_eq!(unrouted.ty.as_deref(), Some("com.plivo.call.ringing"));
        let parked = Facts::read(Queue::DeadEvents, &properties, "events", event);
        assert_eq!(
            parked.routing_key, None,
            "the lot's own key is not the event's"
        );
        let broker = BasicProperties::default().with_headers(broker_parked());
        let parked = Facts::read(Queue::DeadEvents, &broker, "events", event);
        assert_eq!(parked.routing_key.as_deref(), Some("plivo.call.ringing"));
        assert_eq!(parked.broker_reason.as_deref(), Some("delivery_limit"));
        let mut recorded = broker_parked();
        headers::put_str(&mut recorded, headers::ROUTING_KEY, "plivo.call.answered");
        let recorded = BasicProperties::default().with_headers(recorded);
        let parked = Facts::read(Queue::DeadEvents, &recorded, "events", event);
        assert_eq!(parked.routing_key.as_deref(), Some("plivo.call.answered"));
    }
}
