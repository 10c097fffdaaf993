//! `POST /v1/hooks/{source}` end to end: each scheme accepted when signed, refused (and nothing
//! published) when not; replays of requests without an id in [`replays`].

mod replays;

use std::time::Duration;

use relay_core::config::{EnvSecret, SignatureEncoding, SourceConfig, SourceScheme};
use relay_e2e::*;
use relay_signing::{basic, hmac_header, standard_webhooks, twilio};
use serde_json::Value;

const PUBLIC: &str = "https://relay.example.com";

fn source(scheme: SourceScheme, secret: &str) -> SourceConfig {
    SourceConfig {
        scheme,
        secret_env: EnvSecret::with_value("TEST_SOURCE_SECRET", secret),
        username: None,
        header: None,
        encoding: SignatureEncoding::Hex,
        prefix: String::new(),
        type_pointer: Some("/type".to_owned()),
        id_pointer: None,
        tolerance: Duration::from_secs(300),
    }
}

fn env_with_sources() -> TestEnv {
    let mut env = TestEnv::new();
    env.config.ingress.public_base_url = PUBLIC.to_owned();
    let sources = &mut env.config.ingress.sources;
    sources.insert(
        "sw".into(),
        source(SourceScheme::StandardWebhooks, WEBHOOK_SECRET),
    );
    let mut gh = source(SourceScheme::HmacSha256, "gh-secret");
    gh.header = Some("X-Hub-Signature-256".into());
    gh.prefix = "sha256=".into();
    gh.id_pointer = Some("/id".into());
    sources.insert("gh".into(), gh);
    sources.insert("tw".into(), source(SourceScheme::Twilio, "tw-token"));
    let mut ba = source(SourceScheme::Basic, "ba-password");
    ba.username = Some("sender".into());
    sources.insert("ba".into(), ba);
    env
}

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    request.send().await.expect("ingress answers")
}

async fn expect_problem(response: reqwest::Response, status: u16, ty: &str) {
    assert_eq!(response.status().as_u16(), status, "{ty}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], format!("urn:relay:problem:{ty}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheme_accepts_signed_requests_and_refuses_the_rest() {
    let env = env_with_sources();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;
    let body = br#"{"type":"order.paid","id":"evt-1","amount":5}"#;

    // standard-webhooks
    let key = standard_webhooks::Secret::parse(WEBHOOK_SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sw = |id: &str, ts: i64, body: &[u8]| {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                standard_webhooks::sign(&key, id, ts, body),
            ),
        ]
    };
    let ok = post(
        addr,
        "/v1/hooks/sw",
        "application/json",
        body,
        &sw("msg_1", now, body),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let again = post(
        addr,
        "/v1/hooks/sw",
        "application/json",
        body,
        &sw("msg_1", now, body),
    )
    .await;
    let answer: Value = again.json().await.unwrap();
    assert_eq!(
        answer["duplicates"], 1,
        "a replayed webhook-id is not published again"
    );
    let mut forged = sw("msg_2", now, body);
    forged[2].1 = standard_webhooks::sign(&key, "msg_2", now, b"{}");
    expect_problem(
        post(addr, "/v1/hooks/sw", "application/json", body, &forged).await,
        401,
        "bad-signature",
    )
    .await;
    expect_problem(
        post(
            addr,
            "/v1/hooks/sw",
            "application/json",
            body,
            &sw("msg_3", now - 3600, body),
        )
        .await,
        401,
        "stale-timestamp",
    )
    .await;

    // hmac-sha256
    let gh_sig = hmac_header::sign(b"gh-secret", body, hmac_header::Encoding::Hex, "sha256=");
    assert_eq!(
        post(
            addr,
            "/v1/hooks/gh",
            "application/json",
            body,
            &[("x-hub-signature-256", gh_sig.clone())]
        )
        .await
        .status(),
        200
    );
    let tampered = br#"{"type":"order.paid","id":"evt-1","amount":6}"#;
    expect_problem(
        post(
            addr,
            "/v1/hooks/gh",
            "application/json",
            tampered,
            &[("x-hub-signature-256", gh_sig)],
        )
        .await,
        401,
        "bad-signature",
    )
    .await;
    expect_problem(
        post(addr, "/v1/hooks/gh", "application/json", body, &[]).await,
        401,
        "bad-signature",
    )
    .await;

    // twilio, form-encoded, signed over the public URL
    let form = "CallSid=CA1&CallStatus=completed&type=call.completed";
    let params: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let tw_sig = twilio::sign("tw-token", &format!("{PUBLIC}/v1/hooks/tw"), &params);
    assert_eq!(
        post(
            addr,
            "/v1/hooks/tw",
            "application/x-www-form-urlencoded",
            form.as_bytes(),
            &[("x-twilio-signature", tw_sig.clone())]
        )
        .await
        .status(),
        200
    );
    let changed = form.replace("completed&", "failed&");
    expect_problem(
        post(
            addr,
            "/v1/hooks/tw",
            "application/x-www-form-urlencoded",
            changed.as_bytes(),
            &[("x-twilio-signature", tw_sig)],
        )
        .await,
        401,
        "bad-signature",
    )
    .await;

    // basic
    assert_eq!(
        post(
            addr,
            "/v1/hooks/ba",
            "application/json",
            body,
            &[("authorization", basic::header("sender", "ba-password"))]
        )
        .await
        .status(),
        200
    );
    expect_problem(
        post(
            addr,
            "/v1/hooks/ba",
            "application/json",
            body,
            &[("authorization", basic::header("sender", "guess"))],
        )
        .await,
        401,
        "bad-signature",
    )
    .await;

    // a body in a format no source reads
    expect_problem(
        post(addr, "/v1/hooks/gh", "application/xml", b"<a/>", &[]).await,
        415,
        "unsupported-media-type",
    )
    .await;

    // unknown source
    expect_problem(
        post(addr, "/v1/hooks/nobody", "application/json", body, &[]).await,
        404,
        "unknown-source",
    )
    .await;

    // Exactly the four accepted requests were published (nothing binds these keys, so they
    // wait in relay.unrouted), each with its source's routing key and data.
    let mut got = Vec::new();
    while let Some(m) = env
        .next_message(&channel, "relay.unrouted", Duration::from_millis(500))
        .await
    {
        let event: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        got.push((m.delivery.routing_key.to_string(), event));
    }
    let mut keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "ba.order_paid",
            "gh.order_paid",
            "sw.order_paid",
            "tw.call_completed"
        ]
    );
    let tw = &got
        .iter()
        .find(|(k, _)| k == "tw.call_completed")
        .unwrap()
        .1;
    assert_eq!(tw["data"]["CallSid"], "CA1");
    assert_eq!(tw["type"], "relay.hooks.tw.call_completed");
    // Sources with a unique id get a deterministic event id.
    let gh = &got.iter().find(|(k, _)| k == "gh.order_paid").unwrap().1;
    assert_eq!(
        gh["id"],
        relay_core::ids::derived_event_id("hooks/gh", &["evt-1"])
    );
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_its_secret_refuses_to_start() {
    let mut env = env_with_sources();
    let mut bad = source(SourceScheme::HmacSha256, "x");
    bad.secret_env = EnvSecret::from("RELAY_TEST_UNSET_SECRET".to_owned());
    bad.header = Some("X-Sig".into());
    env.config.ingress.sources.insert("nokey".into(), bad);
    let err = relay_ingress::Ingress::build(env.config.clone())
        .await
        .err()
        .expect("refuses to start");
    assert!(
        err.to_string().contains("ingress.sources.nokey.secret_env"),
        "{err}"
    );
    // A built-in source name is refused too.
    let mut env = env_with_sources();
    env.config
        .ingress
        .sources
        .insert("voximplant".into(), source(SourceScheme::Basic, "p"));
    env.config
        .ingress
        .sources
        .get_mut("voximplant")
        .unwrap()
        .username = Some("u".into());
    let err = relay_ingress::Ingress::build(env.config.clone())
        .await
        .err()
        .expect("refuses to start");
    assert!(
        err.to_string().contains("ingress.sources.voximplant"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reamaze_and_voximplant_scenario_routes() {
    let mut env = TestEnv::new();
    env.config.ingress.reamaze = Some(relay_core::config::ReamazeSource {
        secret_env: EnvSecret::with_value("TEST_REAMAZE_SECRET", "rz-secret"),
    });
    env.config.ingress.voximplant.events_secret_env = Some(EnvSecret::with_value(
        "TEST_VOX_EVENTS_SECRET",
        WEBHOOK_SECRET,
    ));
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;

    // Re:amaze: X-Reamaze-Hmac-SHA256 over the exact body, routed by channel.
    let rz = br#"{"id":"c-9","body":"call me back"}"#;
    let rz_sig = relay_signing::reamaze::sign(b"rz-secret", rz);
    assert_eq!(
        post(
            addr,
            "/v1/reamaze/support",
            "application/json",
            rz,
            &[("x-reamaze-hmac-sha256", rz_sig.clone())]
        )
        .await
        .status(),
        200
    );
    expect_problem(
        post(
            addr,
            "/v1/reamaze/support",
            "application/json",
            b"{}",
            &[("x-reamaze-hmac-sha256", rz_sig.clone())],
        )
        .await,
        401,
        "bad-signature",
    )
    .await;
    expect_problem(
        post(
            addr,
            "/v1/reamaze/a.b",
            "application/json",
            rz,
            &[("x-reamaze-hmac-sha256", rz_sig)],
        )
        .await,
        404,
        "not-found",
    )
    .await;

    // The relay's own scenario: Standard Webhooks, kind in the body, deduplicated on webhook-id.
    let key = standard_webhooks::Secret::parse(WEBHOOK_SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ended = br#"{"kind":"ended","call_id":"call-1","duration":30,"hangup_reason":"normal"}"#;
    let headers = vec![
        ("webhook-id", "evt_call-1_ended".to_owned()),
        ("webhook-timestamp", now.to_string()),
        (
            "webhook-signature",
            standard_webhooks::sign(&key, "evt_call-1_ended", now, ended),
        ),
    ];
    assert_eq!(
        post(
            addr,
            "/v1/voximplant/events",
            "application/json",
            ended,
            &headers
        )
        .await
        .status(),
        200
    );
    let again: Value = post(
        addr,
        "/v1/voximplant/events",
        "application/json",
        ended,
        &headers,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["duplicates"], 1);
    expect_problem(
        post(
            addr,
            "/v1/voximplant/events",
            "application/json",
            b"{\"kind\":\"failed\"}",
            &headers,
        )
        .await,
        401,
        "bad-signature",
    )
    .await;

    let mut got = Vec::new();
    while let Some(m) = env
        .next_message(&channel, "relay.unrouted", Duration::from_millis(500))
        .await
    {
        let event: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        got.push((m.delivery.routing_key.to_string(), event));
    }
    let mut keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["reamaze.support", "voximplant.call.ended"]);
    let call = &got
        .iter()
        .find(|(k, _)| k == "voximplant.call.ended")
        .unwrap()
        .1;
    assert_eq!(call["type"], "com.voximplant.call.ended");
    assert_eq!(call["data"]["duration"], 30);
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_built_in_routes_are_unknown_sources() {
    let env = TestEnv::new();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    expect_problem(
        post(addr, "/v1/reamaze/support", "application/json", b"{}", &[]).await,
        404,
        "unknown-source",
    )
    .await;
    expect_problem(
        post(
            addr,
            "/v1/voximplant/events",
            "application/json",
            b"{}",
            &[],
        )
        .await,
        404,
        "unknown-source",
    )
    .await;
    ingress.stop().await;
}
