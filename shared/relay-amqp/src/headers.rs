//! Reading and writing the relay's AMQP headers.

use lapin::types::{AMQPValue, FieldTable, LongString};

/// Attempts already made for a delivery job (u32).
pub const ATTEMPT: &str = "x-relay-attempt";
/// Why a message was dead-lettered (stable slug, e.g. `http_status`, `attempts_exhausted`).
pub const REASON: &str = "x-relay-reason";
/// Human-readable detail of the failure (never a secret).
pub const DETAIL: &str = "x-relay-detail";
/// HTTP status of the last attempt.
pub const STATUS: &str = "x-relay-status";
/// First bytes of the last response body.
pub const RESPONSE: &str = "x-relay-response";
/// Destination of a job.
pub const DESTINATION: &str = "x-relay-destination";
/// Routing key the message had when it was dead-lettered (replay publishes with it again).
pub const ROUTING_KEY: &str = "x-relay-routing-key";

/// A message's `message_id`, or `""` when it has none.
pub fn message_id(properties: &lapin::BasicProperties) -> String {
    properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Inserts a string header.
pub fn put_str(table: &mut FieldTable, key: &str, value: impl Into<String>) {
    table.insert(
        key.into(),
        AMQPValue::LongString(LongString::from(value.into())),
    );
}

/// Inserts an integer header.
pub fn put_int(table: &mut FieldTable, key: &str, value: i64) {
    table.insert(key.into(), AMQPValue::LongLongInt(value));
}

/// Reads a header as text, whatever string type the broker used.
pub fn get_str(table: Option<&FieldTable>, key: &str) -> Option<String> {
    match table?.inner().get(key)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Reads a header as an integer, whatever integer type the broker used.
pub fn get_int(table: Option<&FieldTable>, key: &str) -> Option<i64> {
    match table?.inner().get(key)? {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut t = FieldTable::default();
        put_str(&mut t, REASON, "http_status");
        put_int(&mut t, STATUS, 400);
        assert_eq!(get_str(Some(&t), REASON).as_deref(), Some("http_status"));
        assert_eq!(get_int(Some(&t), STATUS), Some(400));
        assert_eq!(get_int(Some(&t), REASON), None);
        assert_eq!(get_str(None, REASON), None);
    }
}
