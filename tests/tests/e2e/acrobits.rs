//! The Acrobits web callback end to end: every parameter encoding, every refusal in the format
//! the app reads, the rate limit, and an event that never carries the password. The guard
//! (lockouts, bounded hashing, every limit, Redis down) is in `acrobits_guard`.

use std::sync::OnceLock;
use std::time::Duration;

use relay_core::config::{AcrobitsAccount, AcrobitsSource, EnvSecret};
use relay_e2e::*;
use serde_json::Value;

/// argon2 is slow on purpose: hash once for the whole suite.
fn alice_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| relay_signing::password::hash_argon2("secretW0rd").unwrap())
}

fn env(rate_limit: u32) -> TestEnv {
    let mut env = TestEnv::new();
    env.config.ingress.acrobits = Some(AcrobitsSource {
        allowed_prefixes: vec!["+1".into()],
        rate_limit_per_minute: rate_limit,
        accounts: vec![AcrobitsAccount {
            username: "alice".into(),
            password_hash_env: Some(EnvSecret::with_value("TEST_ALICE_HASH", alice_hash())),
            password_env: None,
        }],
        ..AcrobitsSource::default()
    });
    env
}

fn url(addr: std::net::SocketAddr, query: &str) -> String {
    format!("http://{addr}/v1/acrobits/web-callback{query}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_callback_accepts_every_encoding_and_refuses_in_the_apps_format() {
    let env = env(0);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let client = reqwest::Client::new();
    let channel = env.channel().await;

    // GET with a query string (the documentation's example names).
    let ok = client
        .get(url(addr, "?username=alice&password=secretW0rd&targetNumber=%2B15551231234&callbackNumber=%2B15559879876&lang=en"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // POST JSON with the other default names.
    let json = client
        .post(url(addr, ""))
        .header("content-type", "application/json")
        .body(r#"{"username":"alice","password":"secretW0rd","to":"+1 (555) 765-4321","callback":"+15559879876"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
    assert_eq!(json.headers()["content-type"], "application/json");

    // Refusals: wrong password as XML, because the app asked for XML.
    let xml = client
        .post(url(addr, ""))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/xml")
        .body("u=alice&p=wrong&to=%2B15551231234&callback=%2B15559879876")
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), 401);
    assert_eq!(xml.headers()["content-type"], "application/xml");
    assert_eq!(
        xml.text().await.unwrap(),
        "<message>Wrong user name or password.</message>"
    );
    // An unknown user gets the very same answer.
    let unknown = client.get(url(addr, "?username=mallory&password=secretW0rd&targetNumber=%2B15551231234&callbackNumber=%2B15559879876")).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(
        (body["type"].as_str(), body["message"].as_str()),
        (
            Some("urn:relay:problem:bad-credentials"),
            Some("Wrong user name or password.")
        )
    );
    // A number that is not international, as a form reply.
    let bad = client
        .post(url(addr, ""))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=secretW0rd&targetNumber=5551231234&callbackNumber=%2B15559879876")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let form: Vec<(String, String)> = form_urlencoded::parse(bad.text().await.unwrap().as_bytes())
        .into_owned()
        .collect();
    assert!(
        form.contains(&("type".into(), "urn:relay:problem:invalid-number".into())),
        "{form:?}"
    );
    // A destination outside the allowed prefixes (either leg).
    let abroad = client.get(url(addr, "?username=alice&password=secretW0rd&targetNumber=%2B442079460958&callbackNumber=%2B15559879876")).send().await.unwrap();
    assert_eq!(abroad.status(), 403);
    let back_abroad = client.get(url(addr, "?username=alice&password=secretW0rd&targetNumber=%2B15551231234&callbackNumber=%2B442079460958")).send().await.unwrap();
    assert_eq!(back_abroad.status(), 403);

    // A body in a format the route does not read, answered in the format the app asked for.
    let xml_body = client
        .post(url(addr, ""))
        .header("content-type", "application/xml")
        .body("<a/>")
        .send()
        .await
        .unwrap();
    assert_eq!(xml_body.status(), 415);
    assert_eq!(xml_body.headers()["content-type"], "application/xml");

    // Exactly the two accepted requests became events, normalised and without the password;
    // the three refusals of an authenticated user (one invalid number, two destinations not
    // allowed) became refusal reports for the call log; the unauthenticated ones nothing.
    let mut events = Vec::new();
    let mut refusals = Vec::new();
    while let Some(m) = env
        .next_message(&channel, "relay.unrouted", Duration::from_millis(500))
        .await
    {
        let text = String::from_utf8(m.delivery.data.clone()).unwrap();
        assert!(!text.contains("secretW0rd"), "the password leaked: {text}");
        match m.delivery.routing_key.as_str() {
            "acrobits.web_callback" => events.push(text),
            "acrobits.web_callback_refused" => {
                refusals.push(serde_json::from_str::<Value>(&text).unwrap())
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(events.len(), 2);
    let mut targets = Vec::new();
    let mut reasons: Vec<&str> = refusals
        .iter()
        .map(|r| r["data"]["reason"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "destination_not_allowed",
            "destination_not_allowed",
            "invalid_number"
        ]
    );
    for refusal in &refusals {
        assert_eq!(refusal["data"]["username"], "alice");
        assert!(
            refusal["data"]["session_id"]
                .as_str()
                .unwrap()
                .starts_with("callback:")
        );
    }
    for text in &events {
        assert!(
            !text.contains("secretW0rd"),
            "the password leaked into the event: {text}"
        );
        let event: Value = serde_json::from_str(text).unwrap();
        targets.push(event["data"]["target"].as_str().unwrap().to_owned());
        assert_eq!(event["data"]["callback"], "+15559879876");
        assert_eq!(event["subject"], "alice");
        assert!(
            event["data"]["session_id"]
                .as_str()
                .unwrap()
                .starts_with("callback:"),
            "a web callback mints the session both legs will carry"
        );
    }
    targets.sort();
    assert_eq!(targets, ["+15551231234", "+15557654321"], "normalised");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_callback_is_rate_limited_per_account() {
    let env = env(2);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let client = reqwest::Client::new();
    // A different number each time: a repeat of the same request would be answered as a
    // repeat (acrobits_guard), not counted.
    let mut accepted = 0;
    let mut limited = None;
    for i in 0..6 {
        let request = url(
            addr,
            &format!(
                "?username=alice&password=secretW0rd&targetNumber=%2B155512312{i:02}&callbackNumber=%2B15559879876"
            ),
        );
        let response = client.get(&request).send().await.unwrap();
        match response.status().as_u16() {
            200 => accepted += 1,
            429 => {
                limited = Some(response);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let limited = limited.expect("the third request in a minute is refused");
    // The window starts at the first request: exactly two fit, and it ends within the minute.
    assert_eq!(accepted, 2, "the limit lets 2 through first");
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "urn:relay:problem:rate-limited");
    assert_eq!(
        body["message"],
        "Too many callback requests, please wait a minute."
    );
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_password_where_a_hash_belongs_refuses_to_start() {
    let mut env = env(0);
    let acrobits = env.config.ingress.acrobits.as_mut().unwrap();
    acrobits.accounts[0].password_hash_env = Some(EnvSecret::with_value(
        "TEST_ALICE_HASH",
        "$argon2id$garbage",
    ));
    let err = relay_ingress::Ingress::build(env.config.clone())
        .await
        .err()
        .expect("refuses to start");
    assert!(
        err.to_string()
            .contains("ingress.acrobits.accounts[0].password_hash_env"),
        "{err}"
    );
}
