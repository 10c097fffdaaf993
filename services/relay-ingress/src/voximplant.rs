//! `POST /v1/voximplant/callbacks`: Voximplant account callbacks.
//!
//! The body is `{"callbacks": [AccountCallback, …]}`. Every callback carries
//! `hash = md5(salt + account_id + api_key + callback_id)`; all of them must verify before any is
//! published. Each becomes one CloudEvent, routing key `voximplant.<type>`, whose id derives from
//! (account_id, callback_id), so a re-sent callback maps onto the same event downstream. About
//! forty callback types exist and more may come: unknown types and fields are kept, not dropped.

use serde_json::{Map, Value};

use crate::problem::Problem;
use relay_core::{CloudEvent, ids, routing};

/// Dedup namespace of this source in Redis.
pub const SOURCE: &str = "voximplant";

/// One parsed, not yet verified, callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// Account the callback is about.
    pub account_id: u64,
    /// Voximplant's unique sequence number of the callback.
    pub callback_id: u64,
    /// The callback type, e.g. `min_balance`; routing-key safe.
    pub kind: String,
    /// The provided hash.
    pub hash: String,
    /// Every field but `hash`, as received.
    pub data: Map<String, Value>,
}

impl Callback {
    /// The dedup key: `<account_id>:<callback_id>`.
    pub fn dedup_key(&self) -> String {
        format!("{}:{}", self.account_id, self.callback_id)
    }

    /// The event's routing key.
    pub fn routing_key(&self) -> String {
        routing::event_key(SOURCE, &self.kind)
    }

    /// The CloudEvent for this callback.
    pub fn to_event(&self) -> CloudEvent {
        let account = self.account_id.to_string();
        CloudEvent::new(
            ids::derived_event_id(SOURCE, &[&account, &self.callback_id.to_string()]),
            format!("voximplant/account/{account}"),
            format!("com.voximplant.account.{}", self.kind),
            Value::Object(self.data.clone()),
        )
        .with_subject(account)
    }
}

/// Parses the request body. Errors say which callback and which field.
pub fn parse(body: &[u8]) -> Result<Vec<Callback>, Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::Malformed(format!("body is not JSON: {e}")))?;
    let list = value
        .get("callbacks")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Problem::Malformed("expected an object with a `callbacks` array".to_owned())
        })?;
    if list.is_empty() {
        return Err(Problem::Malformed("`callbacks` is empty".to_owned()));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| parse_one(i, item))
        .collect()
}

fn parse_one(index: usize, item: &Value) -> Result<Callback, Problem> {
    let bad = |what: &str| Problem::Malformed(format!("callbacks[{index}]: {what}"));
    let object = item.as_object().ok_or_else(|| bad("not an object"))?;
    let account_id = id_field(object, "account_id")
        .ok_or_else(|| bad("`account_id` must be a non-negative integer"))?;
    let callback_id = id_field(object, "callback_id")
        .ok_or_else(|| bad("`callback_id` must be a non-negative integer"))?;
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`type` must be a string"))?;
    if !routing::is_key_word(kind) {
        return Err(bad("`type` must be 1-64 letters, digits, `_` or `-`"));
    }
    let hash = object
        .get("hash")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`hash` must be a string"))?;
    let mut data = object.clone();
    // The hash is derived from the API key; it has no use downstream.
    data.remove("hash");
    Ok(Callback {
        account_id,
        callback_id,
        kind: kind.to_owned(),
        hash: hash.to_owned(),
        data,
    })
}

/// An id given as a JSON integer or, tolerantly, as a string of digits.
fn id_field(object: &Map<String, Value>, name: &str) -> Option<u64> {
    match object.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A correctly signed `min_balance` callback body, as Voximplant would send it (for `relayctl
/// send`, benchmarks and tests).
pub fn sample_min_balance(
    account_id: u64,
    callback_id: u64,
    api_key: &str,
    salt: &str,
    balance: f64,
    is_min_credit: bool,
) -> Value {
    serde_json::json!({
        "callbacks": [{
            "callback_id": callback_id,
            "type": "min_balance",
            "account_id": account_id,
            "account_name": "sample",
            "account_email": "ops@example.com",
            "language_code": "en",
            "balance": balance,
            "currency": "USD",
            "min_balance": { "is_min_credit": is_min_credit, "is_repeated": false },
            "hash": relay_signing::voximplant::callback_hash(salt, account_id, api_key, callback_id),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(callbacks: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "callbacks": callbacks })).unwrap()
    }

    #[test]
    fn parses_min_balance_and_keeps_unknown_fields() {
        let b = body(serde_json::json!([{
            "callback_id": 99, "type": "min_balance", "account_id": 12345, "hash": "ab",
            "balance": 1.23, "currency": "USD", "min_balance": {"is_min_credit": true, "is_repeated": false},
            "brand_new_field": {"x": 1}
        }]));
        let cbs = parse(&b).unwrap();
        assert_eq!(cbs.len(), 1);
        let cb = &cbs[0];
        assert_eq!(
            (cb.account_id, cb.callback_id, cb.kind.as_str()),
            (12345, 99, "min_balance")
        );
        assert_eq!(cb.routing_key(), "voximplant.min_balance");
        assert!(!cb.data.contains_key("hash"));
        assert_eq!(cb.data["brand_new_field"]["x"], 1);
        let event = cb.to_event();
        assert_eq!(event.ty, "com.voximplant.account.min_balance");
        assert_eq!(event.source, "voximplant/account/12345");
        assert_eq!(event.subject.as_deref(), Some("12345"));
        assert_eq!(event.id, cb.to_event().id, "event id is deterministic");
    }

    #[test]
    fn accepts_unknown_types_and_string_ids() {
        let b = body(serde_json::json!([
            {"callback_id": "7", "type": "sms_inbound", "account_id": "1", "hash": "x",
             "sms_inbound": {"sms_inbound": {"sms_body": "hi"}}},
            {"callback_id": 8, "type": "some_future_type", "account_id": 1, "hash": "x"}
        ]));
        let cbs = parse(&b).unwrap();
        assert_eq!(cbs[0].callback_id, 7);
        assert_eq!(cbs[1].kind, "some_future_type");
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not JSON"),
            (b"{}".to_vec(), "`callbacks` array"),
            (body(serde_json::json!([])), "empty"),
            (body(serde_json::json!([1])), "callbacks[0]: not an object"),
            (
                body(serde_json::json!([{"type": "a", "account_id": 1, "hash": "x"}])),
                "callback_id",
            ),
            (
                body(
                    serde_json::json!([{"callback_id": -1, "type": "a", "account_id": 1, "hash": "x"}]),
                ),
                "callback_id",
            ),
            (
                body(
                    serde_json::json!([{"callback_id": 1, "type": "a.b", "account_id": 1, "hash": "x"}]),
                ),
                "`type`",
            ),
            (
                body(
                    serde_json::json!([{"callback_id": 1, "type": "#", "account_id": 1, "hash": "x"}]),
                ),
                "`type`",
            ),
            (
                body(serde_json::json!([{"callback_id": 1, "type": "a", "account_id": 1}])),
                "`hash`",
            ),
        ];
        for (b, expected) in cases {
            match parse(&b) {
                Err(Problem::Malformed(detail)) => {
                    assert!(detail.contains(expected), "{detail} !~ {expected}")
                }
                other => panic!("expected malformed for {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: every prefix and every single-byte corruption of a valid body.
        let valid = body(
            serde_json::json!([{"callback_id": 1, "type": "a", "account_id": 1, "hash": "x"}]),
        );
        for end in 0..valid.len() {
            let _ = parse(&valid[..end]);
        }
        for i in 0..valid.len() {
            for byte in [0u8, b'"', b'{', b'}', b'[', b'9', 0xff] {
                let mut b = valid.clone();
                b[i] = byte;
                let _ = parse(&b);
            }
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_field_values_parse_or_refuse_cleanly(
            account in json_value(), callback in json_value(), kind in json_value(), hash in json_value(),
        ) {
            let b = body(serde_json::json!([{"account_id": account, "callback_id": callback, "type": kind, "hash": hash}]));
            match parse(&b) {
                Ok(cbs) => proptest::prop_assert!(routing::is_key_word(&cbs[0].kind)),
                Err(Problem::Malformed(_)) => {}
                Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
