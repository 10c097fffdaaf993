//! The Voximplant callbacks' parser and handler, under arbitrary and hostile input.

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
    let valid =
        body(serde_json::json!([{"callback_id": 1, "type": "a", "account_id": 1, "hash": "x"}]));
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

/// The handler's state with one account (1, `key-1`), salt `salt`, and a broker and Redis that
/// are not there; `stop` ends their connection attempts.
fn app(stop: &tokio_util::sync::CancellationToken) -> Shared {
    use relay_core::config::{Config, VoximplantAccount};
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut config = Config::default();
    config.amqp.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    config.redis.url = format!("redis://127.0.0.1:{port}");
    config.ingress.voximplant.salt_env = Some(EnvSecret::with_value("TEST_UNIT_SALT", "salt"));
    config.ingress.voximplant.accounts = vec![VoximplantAccount {
        account_id: 1,
        api_key_env: EnvSecret::with_value("TEST_UNIT_KEY", "key-1"),
    }];
    let readiness = relay_telemetry::Readiness::new();
    let settings = relay_amqp::BrokerSettings::from_config(&config, "voximplant-test");
    let broker = relay_amqp::Broker::start(settings, &readiness, stop.clone());
    let store = relay_store::Store::start(&config.redis, &readiness, stop.clone());
    Shared::new(&config, broker, store).unwrap()
}

fn signed(callback_id: u64) -> Value {
    let hash = relay_signing::voximplant::callback_hash("salt", 1, "key-1", callback_id);
    serde_json::json!({"callback_id": callback_id, "type": "min_balance", "account_id": 1, "hash": hash})
}

fn tampered(callback_id: u64) -> Value {
    let mut cb = signed(callback_id);
    cb["hash"] = Value::String("0".repeat(32));
    cb
}

async fn run(app: &Shared, callbacks: Value) -> Result<Accepted, Problem> {
    handle(app, &HeaderMap::new(), Body::from(body(callbacks))).await
}

#[tokio::test]
async fn a_rejected_callback_is_logged_by_index_and_ids_never_by_hash_or_key() {
    let (lines, _guard) = crate::test_support::capture();
    let stop = tokio_util::sync::CancellationToken::new();
    let app = app(&stop);
    let valid = signed(8);
    let result = run(&app, serde_json::json!([tampered(7), valid.clone()])).await;
    // The valid one goes on to the broker, which is not there.
    assert!(matches!(result, Err(Problem::BrokerUnavailable { .. })));
    let rejected = lines.containing("callback rejected");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    let line = &rejected[0];
    for expected in ["index=0", "account_id=1", "callback_id=7", "bad_signature"] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
    let text = lines.lines().join("\n");
    assert!(!text.contains("key-1") && !text.contains(&"0".repeat(32)));
    assert!(!text.contains(valid["hash"].as_str().unwrap()));
    stop.cancel();
}

#[tokio::test]
async fn a_request_without_a_valid_callback_is_refused_whole() {
    let stop = tokio_util::sync::CancellationToken::new();
    let app = app(&stop);
    // Bad hashes and an unknown account: 401, naming how many there were.
    let mut stranger = signed(9);
    stranger["account_id"] = Value::from(2);
    match run(&app, serde_json::json!([tampered(7), stranger])).await {
        Err(Problem::BadSignature(detail)) => {
            assert!(
                detail.starts_with("none of the 2 callbacks is valid; callbacks[0]"),
                "{detail}"
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
    // A bad signature outweighs a callback that does not parse.
    let unparsed =
        serde_json::json!({"callback_id": 1, "type": "a.b", "account_id": 1, "hash": "x"});
    assert!(matches!(
        run(&app, serde_json::json!([unparsed.clone(), tampered(7)])).await,
        Err(Problem::BadSignature(_))
    ));
    // None parses: 400.
    assert!(matches!(
        run(&app, serde_json::json!([unparsed.clone(), unparsed])).await,
        Err(Problem::Malformed(_))
    ));
    stop.cancel();
}
