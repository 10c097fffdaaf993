//! Repeated Plivo parameters end to end: verified as the SDKs sign them, kept whole in the
//! event, and no replay with an added value gets through.

use super::*;

/// A repeated parameter is verified as plivo-python and plivo-node sign it (every value, a
/// key's values sorted) and reaches the event whole; a captured callback replayed with one more
/// value, or with a value put in front, is refused, so it can neither become a new event nor
/// take the dedup mark of the real one. The signatures are SDK-derived: computed by
/// `research/plivo_v3_reference.py` (plivo-python's algorithm), not by the relay's own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_parameters_verify_as_the_sdks_sign_them_and_replays_are_refused() {
    let env = plivo_env();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;
    let signed = |nonce: &str, sig: &str| {
        vec![
            (plivo::NONCE_V3, nonce.to_owned()),
            (plivo::SIGNATURE_V3, sig.to_owned()),
        ]
    };

    // GET, a key repeated in the query: `…?CallStatus=ringing&CallUUID=r1&Event=StartApp&
    // SIP-H-Tag=a&SIP-H-Tag=b`.
    let get =
        "/v1/plivo/status?CallUUID=r1&CallStatus=ringing&Event=StartApp&SIP-H-Tag=b&SIP-H-Tag=a";
    let headers = signed("rk1", "80fkafScWk0vDCP/bbOqdYz/7BSZThqVR8l/qSCqCsw=");
    let response = send(addr, reqwest::Method::GET, get, String::new(), &headers).await;
    assert_eq!(response.status(), 200, "GET with a repeated query key");

    // POST, a key repeated in the form: `…/hangup?CallStatuscompletedCallUUIDr2EventHangup
    // SIP-H-TagaSIP-H-Tagb`.
    let body = "CallUUID=r2&CallStatus=completed&Event=Hangup&SIP-H-Tag=b&SIP-H-Tag=a";
    let headers = signed("rk2", "0PZXiHUXK07bFUlNlJrVNKfPlE4N+/KX5+sgAzomUSM=");
    let response = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/hangup",
        body.to_owned(),
        &headers,
    )
    .await;
    assert_eq!(response.status(), 200, "POST with a repeated form key");

    // POST, a key repeated in the URL's query: `…/status?leg=a&leg=b.CallStatusbusyCallUUIDr3`.
    let with_query = "/v1/plivo/status?leg=b&leg=a";
    let headers = signed("rk3", "gxH/cTuii8CjtMLK+4gzvwnqGy2FBvS2WsSsQA+MPbg=");
    let body = "CallUUID=r3&CallStatus=busy".to_owned();
    let response = send(
        addr,
        reqwest::Method::POST,
        with_query,
        body.clone(),
        &headers,
    )
    .await;
    assert_eq!(response.status(), 200, "POST with a repeated query key");
    let more = "/v1/plivo/status?leg=b&leg=a&leg=c";
    let response = send(addr, reqwest::Method::POST, more, body, &headers).await;
    assert_eq!(response.status(), 401, "one more query value is not signed");

    // A captured "ringing" GET replayed with a hangup appended: refused, and the real hangup
    // that follows is not taken for a duplicate.
    let ringing = "/v1/plivo/status?CallUUID=r4&CallStatus=ringing&Event=StartApp";
    let headers = v3("plivo-token", ringing, Method::Get, &[], "rk4");
    let response = send(addr, reqwest::Method::GET, ringing, String::new(), &headers).await;
    assert_eq!(response.status(), 200);
    let forged = format!("{ringing}&CallStatus=completed&Event=Hangup");
    let response = send(addr, reqwest::Method::GET, &forged, String::new(), &headers).await;
    assert_eq!(response.status(), 401, "a forged hangup is refused");
    let (body, params) = form(&[
        ("CallUUID", "r4"),
        ("CallStatus", "completed"),
        ("Event", "Hangup"),
    ]);
    let headers = v3(
        "plivo-token",
        "/v1/plivo/hangup",
        Method::Post,
        &params,
        "rk5",
    );
    let real: Value = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/hangup",
        body,
        &headers,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (real["accepted"].as_u64(), real["duplicates"].as_u64()),
        (Some(1), Some(0)),
        "the real hangup is published"
    );

    // A captured POST with another value of a signed key put in front: refused.
    let (body, params) = form(&[
        ("CallUUID", "r5"),
        ("CallStatus", "busy"),
        ("Event", "Hangup"),
    ]);
    let headers = v3(
        "plivo-token",
        "/v1/plivo/hangup",
        Method::Post,
        &params,
        "rk6",
    );
    let response = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/hangup",
        body.clone(),
        &headers,
    )
    .await;
    assert_eq!(response.status(), 200);
    let polluted = format!("CallStatus=completed&{body}");
    let response = send(
        addr,
        reqwest::Method::POST,
        "/v1/plivo/hangup",
        polluted,
        &headers,
    )
    .await;
    assert_eq!(response.status(), 401, "an added value is not signed");

    // Exactly the accepted callbacks were published; a repeated key's values are an array, in
    // the order the signature covers them (sorted: their wire order is not signed).
    let got = published(&env, &channel).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|(k, e)| (e["subject"].as_str().unwrap().to_owned(), k.clone()))
        .collect();
    seen.sort_unstable();
    let expected = [
        ("r1", "plivo.call.ringing"),
        ("r2", "plivo.call.completed"),
        ("r3", "plivo.call.busy"),
        ("r4", "plivo.call.completed"),
        ("r4", "plivo.call.ringing"),
        ("r5", "plivo.call.busy"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(s, k)| ((*s).to_owned(), (*k).to_owned()))
        .collect();
    assert_eq!(seen, expected);
    let data = |subject: &str| {
        got.iter()
            .find(|(_, e)| e["subject"] == subject)
            .map(|(_, e)| e["data"].clone())
            .unwrap()
    };
    assert_eq!(data("r1")["SIP-H-Tag"], serde_json::json!(["a", "b"]));
    assert_eq!(data("r1")["CallStatus"], "ringing");
    assert_eq!(data("r2")["SIP-H-Tag"], serde_json::json!(["a", "b"]));
    assert_eq!(data("r3")["leg"], serde_json::json!(["a", "b"]));
    assert_eq!(data("r5")["CallStatus"], "busy");
    ingress.stop().await;
}
