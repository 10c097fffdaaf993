//! What relayctl reads of a parked message: its [`Facts`] (why, where to, when, how big) from
//! the relay's headers, the broker's `x-death` record and the body, and how they are shown.
//! Pure functions over AMQP properties, tested without a broker.

use lapin::BasicProperties;
use relay_amqp::{AMQPValue, FieldTable, headers};
use relay_core::routing;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Queue;

/// The broker's dead-letter record, newest death first.
const X_DEATH: &str = "x-death";
/// The broker's reason for the first dead-lettering (`delivery_limit`, `rejected`, `expired`).
const FIRST_DEATH_REASON: &str = "x-first-death-reason";
/// The queue the broker first dead-lettered the message from.
const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";

/// One parked message, as `list --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Facts {
    /// AMQP `message_id`: the event or job id.
    pub(crate) id: Option<String>,
    /// The queue it sits in.
    pub(crate) queue: &'static str,
    /// Why it is parked (see [`reason`]).
    pub(crate) reason: Option<String>,
    /// The broker's own reason, when the broker parked it.
    #[serde(skip)]
    pub(crate) broker_reason: Option<String>,
    /// The failure in words (`x-relay-detail`).
    pub(crate) detail: Option<String>,
    /// HTTP status of a job's last attempt.
    pub(crate) status: Option<i64>,
    /// Attempts made (`x-relay-attempt`).
    pub(crate) attempts: Option<i64>,
    /// A job's destination.
    pub(crate) destination: Option<String>,
    /// The routing key an event was published with (what a replay publishes it with again).
    pub(crate) routing_key: Option<String>,
    /// The CloudEvent `type` of an event.
    #[serde(rename = "type")]
    pub(crate) ty: Option<String>,
    /// When it was parked (see [`parked_at`]).
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) time: Option<OffsetDateTime>,
    /// Body length in bytes.
    pub(crate) body_size: usize,
    /// The handler an event was for when it was parked or sent on (`relay-handler`).
    #[serde(skip)]
    pub(crate) handler: Option<String>,
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
    pub(crate) fn read(
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
            queue: queue.name(),
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

    /// One line (and the detail under it) for `list`.
    pub(crate) fn line(&self) -> String {
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
pub(crate) fn reason(table: Option<&FieldTable>) -> Option<String> {
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
pub(crate) fn parked_at(
    table: Option<&FieldTable>,
    timestamp: Option<u64>,
) -> Option<OffsetDateTime> {
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

/// The body as text for `show`: JSON pretty-printed, other bytes as (lossy) UTF-8, cut to
/// `limit` bytes (at a character boundary) unless `None`. Returns the text and whether it was
/// cut.
pub(crate) fn body_text(body: &[u8], pretty: bool, limit: Option<usize>) -> (String, bool) {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(value) if pretty => serde_json::to_string_pretty(&value).unwrap_or_else(|_| lossy(body)),
        _ => lossy(body),
    };
    match limit {
        Some(limit) if text.len() > limit => {
            let mut end = limit;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (text[..end].to_owned(), true)
        }
        _ => (text, false),
    }
}

/// The headers as a JSON object, AMQP types mapped to their JSON counterparts (timestamps as
/// RFC 3339 text).
pub(crate) fn headers_json(table: Option<&FieldTable>) -> Value {
    let Some(table) = table else {
        return json!({});
    };
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(key, value)| (key.as_str().to_owned(), amqp_json(value)))
            .collect(),
    )
}

fn amqp_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(v) => json!(v),
        AMQPValue::ShortShortInt(v) => json!(v),
        AMQPValue::ShortShortUInt(v) => json!(v),
        AMQPValue::ShortInt(v) => json!(v),
        AMQPValue::ShortUInt(v) => json!(v),
        AMQPValue::LongInt(v) => json!(v),
        AMQPValue::LongUInt(v) => json!(v),
        AMQPValue::LongLongInt(v) => json!(v),
        AMQPValue::Float(v) => json!(v),
        AMQPValue::Double(v) => json!(v),
        AMQPValue::DecimalValue(d) => {
            json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => {
            json!(as_text(value).unwrap_or_default())
        }
        AMQPValue::ByteArray(bytes) => json!(lossy(bytes.as_slice())),
        AMQPValue::Timestamp(t) => seconds(*t)
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map_or_else(|| json!(t), Value::String),
        AMQPValue::FieldArray(values) => {
            Value::Array(values.as_slice().iter().map(amqp_json).collect())
        }
        AMQPValue::FieldTable(table) => headers_json(Some(table)),
        AMQPValue::Void => Value::Null,
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

fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(lossy(s.as_bytes())),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn seconds(t: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok()
}

#[cfg(test)]
mod tests {
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

    fn broker_parked() -> FieldTable {
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
        assert_eq!(facts.queue, "relay.dead.deliveries");
        assert_eq!(facts.reason.as_deref(), Some("http_status"));
        assert_eq!(facts.detail.as_deref(), Some("answered 400"));
        assert_eq!((facts.status, facts.attempts), (Some(400), Some(1)));
        assert_eq!(facts.destination.as_deref(), Some("alerts"));
        assert_eq!(facts.routing_key, None, "an empty key is no key");
        assert_eq!(facts.ty, None);
        assert_eq!(facts.body_size, 8);
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(json["time"], "2025-03-01T12:00:00Z");
        assert_eq!(json["routing_key"], Value::Null);
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

    #[test]
    fn bodies_are_cut_at_a_character_boundary() {
        let (text, cut) = body_text("ééé".as_bytes(), false, Some(3));
        assert_eq!((text.as_str(), cut), ("é", true));
        let (text, cut) = body_text(b"short", false, Some(4096));
        assert_eq!((text.as_str(), cut), ("short", false));
        let (text, cut) = body_text(br#"{"a":1}"#, true, None);
        assert_eq!((text.as_str(), cut), ("{\n  \"a\": 1\n}", false));
        let (text, _) = body_text(&[0xff, b'a'], true, None);
        assert_eq!(text, "\u{fffd}a");
    }

    #[test]
    fn headers_become_json() {
        let mut table = broker_parked();
        headers::put_int(&mut table, headers::STATUS, 410);
        let json = headers_json(Some(&table));
        assert_eq!(json[headers::STATUS], 410);
        assert_eq!(json[FIRST_DEATH_REASON], "delivery_limit");
        assert_eq!(json[X_DEATH][0]["time"], "2025-03-01T11:00:00Z");
        assert_eq!(json[X_DEATH][0]["routing-keys"][0], "plivo.call.ringing");
        assert_eq!(headers_json(None), json!({}));
    }
}
