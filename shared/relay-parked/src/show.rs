//! How a parked message is shown whole: its body as text and its headers as JSON. Pure
//! functions, tested without a broker.

use relay_amqp::{AMQPValue, FieldTable};
use serde_json::{Value, json};

use crate::message::{as_text, lossy, seconds};

/// The body as text: JSON pretty-printed, other bytes as (lossy) UTF-8, cut to
/// `limit` bytes (at a character boundary) unless `None`. Returns the text and whether it was
/// cut.
pub fn body_text(body: &[u8], pretty: bool, limit: Option<usize>) -> (String, bool) {
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
pub fn headers_json(table: Option<&FieldTable>) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::broker_parked;
    use relay_amqp::headers;

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
        assert_eq!(json["x-first-death-reason"], "delivery_limit");
        assert_eq!(json["x-death"][0]["time"], "2025-03-01T11:00:00Z");
        assert_eq!(json["x-death"][0]["routing-keys"][0], "plivo.call.ringing");
        assert_eq!(headers_json(None), json!({}));
    }
}
