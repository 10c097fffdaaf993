//! Plivo callbacks end to end: V3 over the public URL, Ma-V3, V2 off, answer XML, dedup, routes
//! with a trailing slash; repeated parameters in [`repeated_keys`].

mod repeated_keys;

use std::time::Duration;

use relay_core::config::{EnvSecret, PlivoSource};
use relay_e2e::*;
use relay_signing::plivo::{self, Method};
use serde_json::Value;

const PUBLIC: &str = "https://relay.example.com";

fn form(pairs: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    (body, params)
}

async fn send(
    addr: std::net::SocketAddr,
    method: reqwest::Method,
    path_and_query: &str,
    body: String,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{addr}{path_and_query}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    request.send().await.expect("ingress answers")
}

fn v3(
    token: &str,
    path_and_query: &str,
    method: Method,
    params: &[(String, String)],
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let sig = plivo::sign_v3(
        token,
        &format!("{PUBLIC}{path_and_query}"),
        method,
        params,
        nonce,
    )
    .unwrap();
    vec![
        (plivo::NONCE_V3, nonce.to_owned()),
        (plivo::SIGNATURE_V3, sig),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_callbacks_are_verified_published_and_answered() {
    let mut env = TestEnv::new();
    env.config.ingress.public_base_url = PUBLIC.to_owned();
    env.config.ingress.plivo = Some(PlivoSource {
        auth_token_env: EnvSecret::with_value("TEST_PLIVO_TOKEN", "plivo-token"),
        main_auth_token_env: Some(EnvSecret::with_value("TEST_PLIVO_MAIN", "main-token")),
        accept_v2: false,
        default_answer_xml: "<Response><Hangup/></Response>".to_owned(),
    });
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;

    // A signed status callback, then its retry (deduplicated), then a tampered copy.
    let (body, params) = form(&[
        ("CallUUID", "u1"),
        ("CallStatus", "completed"),
        ("Event", "Hangup"),
        ("Duration", "30"),
    ]);
    let headers = v3(
        "plivo-token",
        "/v1/plivo/status",
        Method::Post,
        &params,
        "n1",
    );
    let ok = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/status",
        body.clone(),
        &headers,
    )
    .await;
    assert_eq!(ok.status(), 200);
    let again: Value = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/status",
        body.clone(),
        &headers,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["duplicates"], 1);
    let tampered = body.replace("Duration=30", "Duration=31");
    assert_eq!(
        send(
            addr,
            reqwest::Method::POST,
            "/v1/plivo/status",
            tampered,
            &headers
        )
        .await
        .status(),
        401
    );

    // A subaccount callback signed with the main account's token.
    let (body, params) = form(&[("CallUUID", "u2"), ("CallStatus", "busy")]);
    let sig = plivo::sign_v3(
        "main-token",
        &format!("{PUBLIC}/v1/plivo/hangup"),
        Method::Post,
        &params,
        "n2",
    )
    .unwrap();
    let headers = vec![
        (plivo::NONCE_V3, "n2".to_owned()),
        (plivo::SIGNATURE_MA_V3, sig),
    ];
    assert_eq!(
        send(
            addr,
            reqwest::Method::POST,
            "/v1/plivo/hangup",
            body,
            &headers
        )
        .await
        .status(),
        200
    );

    // V2 is not enabled for this source.
    let v2 = plivo::sign_v2("plivo-token", &format!("{PUBLIC}/v1/plivo/hangup"), "n3").unwrap();
    let headers = vec![
        (plivo::NONCE_V2, "n3".to_owned()),
        (plivo::SIGNATURE_V2, v2),
    ];
    assert_eq!(
        send(
            addr,
            reqwest::Method::POST,
            "/v1/plivo/hangup",
            String::new(),
            &headers
        )
        .await
        .status(),
        401
    );

    // The answer of a web-callback leg dials the target carried in its signed URL.
    let answer = "/v1/plivo/answer?target=%2B15551231234&caller_id=%2B15550000000";
    let (body, params) = form(&[
        ("CallUUID", "u3"),
        ("CallStatus", "in-progress"),
        ("Event", "StartApp"),
    ]);
    let headers = v3("plivo-token", answer, Method::Post, &params, "n4");
    let xml = send(addr, reqwest::Method::POST, answer, body.clone(), &headers).await;
    assert_eq!(xml.status(), 200);
    assert_eq!(xml.headers()["content-type"], "application/xml");
    assert_eq!(
        xml.text().await.unwrap(),
        "<Response><Dial callerId=\"+15550000000\"><Number>+15551231234</Number></Dial></Response>"
    );
    // Changing the target breaks the signature.
    let forged = "/v1/plivo/answer?target=%2B19005550000&caller_id=%2B15550000000";
    assert_eq!(
        send(addr, reqwest::Method::POST, forged, body, &headers)
            .await
            .status(),
        401
    );

    // A GET answer without a target gets the default XML.
    let get = "/v1/plivo/answer?CallUUID=u4&CallStatus=ringing";
    let headers = v3("plivo-token", get, Method::Get, &[], "n5");
    let default = send(addr, reqwest::Method::GET, get, String::new(), &headers).await;
    assert_eq!(default.status(), 200);
    assert_eq!(
        default.text().await.unwrap(),
        "<Response><Hangup/></Response>"
    );

    assert_eq!(
        send(
            addr,
            reqwest::Method::POST,
            "/v1/plivo/transfer",
            String::new(),
            &[]
        )
        .await
        .status(),
        404
    );
    let json = reqwest::Client::new()
        .post(format!("http://{addr}/v1/plivo/status"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415, "Plivo callbacks are form-encoded");

    let mut keys = Vec::new();
    while let Some(m) = env
        .next_message(&channel, "relay.unrouted", Duration::from_millis(500))
        .await
    {
        let event: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        if m.delivery.routing_key.as_str() == "plivo.call.completed" {
            assert_eq!(event["data"]["Duration"], "30");
            assert_eq!(event["subject"], "u1");
        }
        keys.push(m.delivery.routing_key.to_string());
    }
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "plivo.call.answered",
            "plivo.call.busy",
            "plivo.call.completed",
            "plivo.call.ringing"
        ]
    );
    ingress.stop().await;
}

fn plivo_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.config.ingress.public_base_url = PUBLIC.to_owned();
    env.config.ingress.plivo = Some(PlivoSource {
        auth_token_env: EnvSecret::with_value("TEST_PLIVO_TOKEN", "plivo-token"),
        main_auth_token_env: None,
        accept_v2: false,
        default_answer_xml: "<Response><Hangup/></Response>".to_owned(),
    });
    env
}

/// Every event published so far, by routing key, in publishing order.
async fn published(env: &TestEnv, channel: &lapin::Channel) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    while let Some(m) = env
        .next_message(channel, "relay.unrouted", Duration::from_millis(500))
        .await
    {
        let event: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        got.push((m.delivery.routing_key.to_string(), event));
    }
    got
}

/// Providers are often configured with a trailing slash: `/v1/plivo/<kind>/` is served too,
/// verified over the URL as called, slash included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_with_a_trailing_slash_verify_over_the_url_as_called() {
    let env = plivo_env();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;

    let (body, params) = form(&[("CallUUID", "s1"), ("CallStatus", "completed")]);
    let headers = v3(
        "plivo-token",
        "/v1/plivo/hangup/",
        Method::Post,
        &params,
        "s1",
    );
    let response = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/hangup/",
        body.clone(),
        &headers,
    )
    .await;
    assert_eq!(response.status(), 200);
    // Signed over the URL without the slash: not the URL that was called.
    let headers = v3(
        "plivo-token",
        "/v1/plivo/hangup",
        Method::Post,
        &params,
        "s2",
    );
    let response = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/hangup/",
        body,
        &headers,
    )
    .await;
    assert_eq!(response.status(), 401);

    let answer = "/v1/plivo/answer/?CallUUID=s3&CallStatus=ringing";
    let headers = v3("plivo-token", answer, Method::Get, &[], "s3");
    let response = send(addr, reqwest::Method::GET, answer, String::new(), &headers).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "<Response><Hangup/></Response>"
    );
    let response = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/transfer/",
        String::new(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 404);

    let mut keys: Vec<String> = published(&env, &channel)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["plivo.call.completed", "plivo.call.ringing"]);
    ingress.stop().await;
}
