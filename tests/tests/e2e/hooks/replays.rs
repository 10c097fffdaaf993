//! Replays of requests that carry no id of their own collapse on the digest of their signed
//! content.

use super::*;

/// A request without an id of its own (Re:amaze, a generic source without `id_pointer`) is
/// named by a digest of its signed content: replayed, it is a duplicate, not a new event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_without_a_provider_id_collapse_on_their_signed_content() {
    let mut env = env_with_sources();
    env.config.ingress.reamaze = Some(relay_core::config::ReamazeSource {
        secret_env: EnvSecret::with_value("TEST_REAMAZE_SECRET", "rz-secret"),
    });
    let mut plain = source(SourceScheme::HmacSha256, "plain-secret");
    plain.header = Some("X-Signature".into());
    env.config.ingress.sources.insert("plain".into(), plain);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;
    let twice = |path: &'static str,
                 content_type: &'static str,
                 first: Vec<u8>,
                 second: Vec<u8>,
                 headers: Vec<(&'static str, String)>| async move {
        let one: Value = post(addr, path, content_type, &first, &headers)
            .await
            .json()
            .await
            .unwrap();
        let two: Value = post(addr, path, content_type, &second, &headers)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (one["accepted"].as_u64(), one["duplicates"].as_u64()),
            (Some(1), Some(0)),
            "{path}"
        );
        assert_eq!(
            (two["accepted"].as_u64(), two["duplicates"].as_u64()),
            (Some(0), Some(1)),
            "{path} replayed"
        );
        // The answer names the event it published (to follow it in the logs), and no other.
        let ids = one["events"].as_array().expect("event ids");
        assert_eq!(ids.len(), 1, "{path}: {one}");
        assert!(ids[0].as_str().is_some_and(|id| id.len() == 36), "{one}");
        assert_eq!(
            two["events"],
            serde_json::json!([]),
            "{path}: a duplicate publishes nothing"
        );
    };

    // Re:amaze: the same signed request twice publishes once.
    let rz = br#"{"id":"c-10","body":"call me back"}"#.to_vec();
    let rz_sig = relay_signing::reamaze::sign(b"rz-secret", &rz);
    let rz_headers = vec![("x-reamaze-hmac-sha256", rz_sig.clone())];
    twice(
        "/v1/reamaze/support",
        "application/json",
        rz.clone(),
        rz.clone(),
        rz_headers.clone(),
    )
    .await;
    // The channel is not signed: the same request replayed to another channel is the same.
    let other: Value = post(
        addr,
        "/v1/reamaze/sales",
        "application/json",
        &rz,
        &rz_headers,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(other["duplicates"], 1);
    // Another signed body is another event.
    let next = br#"{"id":"c-11","body":"call me back"}"#;
    let next_sig = relay_signing::reamaze::sign(b"rz-secret", next);
    let fresh: Value = post(
        addr,
        "/v1/reamaze/support",
        "application/json",
        next,
        &[("x-reamaze-hmac-sha256", next_sig)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(fresh["accepted"], 1);

    // hmac-sha256 without an id pointer.
    let body = br#"{"type":"order.paid","amount":5}"#.to_vec();
    let sig = hmac_header::sign(b"plain-secret", &body, hmac_header::Encoding::Hex, "");
    twice(
        "/v1/hooks/plain",
        "application/json",
        body.clone(),
        body.clone(),
        vec![("x-signature", sig)],
    )
    .await;

    // basic, the same body twice.
    let auth = basic::header("sender", "ba-password");
    twice(
        "/v1/hooks/ba",
        "application/json",
        body.clone(),
        body,
        vec![("authorization", auth)],
    )
    .await;

    // twilio: signed over sorted parameters, so the replay with them reordered is the same.
    let form = "CallSid=CA9&CallStatus=completed&type=call.completed";
    let reordered = "type=call.completed&CallStatus=completed&CallSid=CA9";
    let params: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let tw_sig = twilio::sign("tw-token", &format!("{PUBLIC}/v1/hooks/tw"), &params);
    twice(
        "/v1/hooks/tw",
        "application/x-www-form-urlencoded",
        form.as_bytes().to_vec(),
        reordered.as_bytes().to_vec(),
        vec![("x-twilio-signature", tw_sig)],
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
    assert_eq!(
        keys,
        vec![
            "ba.order_paid",
            "plain.order_paid",
            "reamaze.support",
            "reamaze.support",
            "tw.call_completed"
        ]
    );
    // The event id is derived from the digest of the exact body.
    let digest = relay_signing::digest::content_digest(&[&rz]);
    let expected = relay_core::ids::derived_event_id("reamaze", &["sha256", &digest]);
    assert!(
        got.iter().any(|(_, e)| e["id"] == expected.as_str()),
        "a Re:amaze event named by its body's digest"
    );
    ingress.stop().await;
}
