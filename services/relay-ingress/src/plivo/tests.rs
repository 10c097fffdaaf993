//! The Plivo route's pure parts: refusals, the signed view, statuses, the answer XML.

use super::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn routes(main: bool, accept_v2: bool) -> PlivoRoutes {
    PlivoRoutes::new(&PlivoSource {
        auth_token_env: EnvSecret::with_value("TEST_UNIT_PLIVO_TOKEN", "sub-token"),
        main_auth_token_env: main
            .then(|| EnvSecret::with_value("TEST_UNIT_PLIVO_MAIN", "main-token")),
        accept_v2,
        default_answer_xml: "<Response/>".to_owned(),
    })
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in list {
        map.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map
}

const URL: &str = "https://relay.example.com/v1/plivo/hangup";

fn refusal(routes: &PlivoRoutes, list: &[(&str, &str)]) -> String {
    let params = pairs(&[("CallUUID", "u1"), ("CallStatus", "busy")]);
    let request = sig::SignedRequest::new(URL, sig::Method::Post, params).unwrap();
    match routes.verify(&headers(list), URL, &request) {
        Err(Problem::BadSignature(detail)) => detail,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A refusal names the header that was checked, never one that was not sent.
#[test]
fn a_refusal_names_the_header_that_was_checked() {
    let detail = refusal(
        &routes(true, false),
        &[(sig::NONCE_V3, "n"), (sig::SIGNATURE_MA_V3, "aW52YWxpZA==")],
    );
    assert_eq!(detail, "X-Plivo-Signature-Ma-V3: signature does not match");
    let detail = refusal(
        &routes(true, false),
        &[(sig::NONCE_V3, "n"), (sig::SIGNATURE_V3, "aW52YWxpZA==")],
    );
    assert_eq!(detail, "X-Plivo-Signature-V3: signature does not match");
    let detail = refusal(
        &routes(true, false),
        &[
            (sig::NONCE_V3, "n"),
            (sig::SIGNATURE_V3, "aW52YWxpZA=="),
            (sig::SIGNATURE_MA_V3, "aW52YWxpZA=="),
        ],
    );
    assert_eq!(
        detail,
        "X-Plivo-Signature-V3: signature does not match; \
         X-Plivo-Signature-Ma-V3: signature does not match"
    );
    let detail = refusal(
        &routes(false, true),
        &[(sig::NONCE_V2, "n"), (sig::SIGNATURE_V2, "aW52YWxpZA==")],
    );
    assert_eq!(detail, "X-Plivo-Signature-V2: signature does not match");
    assert_eq!(
        refusal(&routes(true, true), &[]),
        "X-Plivo-Signature-V3: signature missing"
    );
    // Sent but not accepted here: said so, rather than blamed on another header.
    let detail = refusal(
        &routes(false, false),
        &[(sig::NONCE_V3, "n"), (sig::SIGNATURE_MA_V3, "aW52YWxpZA==")],
    );
    assert_eq!(
        detail,
        "X-Plivo-Signature-Ma-V3: not accepted (no main account token is configured)"
    );
    let detail = refusal(
        &routes(false, false),
        &[(sig::NONCE_V2, "n"), (sig::SIGNATURE_V2, "aW52YWxpZA==")],
    );
    assert_eq!(
        detail,
        "X-Plivo-Signature-V2: not accepted (V2 is disabled)"
    );
    // Nothing of a token in any refusal.
    for detail in [
        refusal(
            &routes(true, true),
            &[(sig::NONCE_V3, "n"), (sig::SIGNATURE_MA_V3, "x")],
        ),
        refusal(
            &routes(true, true),
            &[(sig::NONCE_V2, "n"), (sig::SIGNATURE_V2, "x")],
        ),
    ] {
        assert!(
            !detail.contains("token\"")
                && !detail.contains("main-token")
                && !detail.contains("sub-token"),
            "{detail}"
        );
    }
}

/// The event is built from what was signed: the same whatever the sender's wire order, with
/// every value of a repeated name, and the status read from the signed view.
#[test]
fn the_event_reads_what_was_signed_whatever_the_wire_order() {
    let url = "https://relay.example.com/v1/plivo/status?leg=b&CallUUID=u1&leg=a";
    let reordered = "https://relay.example.com/v1/plivo/status?leg=a&leg=b&CallUUID=u1";
    let body = b"CallStatus=busy&Tag=y&Tag=x&Event=Hangup";
    let swapped = b"Tag=x&Event=Hangup&Tag=y&CallStatus=busy";
    let one = sig::SignedRequest::from_body(url, sig::Method::Post, body).unwrap();
    let two = sig::SignedRequest::from_body(reordered, sig::Method::Post, swapped).unwrap();
    assert_eq!(signed_params(&one), signed_params(&two));
    assert_eq!(
        form_to_json(&signed_params(&one)),
        serde_json::json!({
            "CallUUID": "u1", "leg": ["a", "b"], "CallStatus": "busy",
            "Tag": ["x", "y"], "Event": "Hangup"
        })
    );
    assert_eq!(status(&signed_params(&one), "hangup"), "busy");
}

#[test]
fn statuses_map_to_event_names() {
    assert_eq!(
        status(&pairs(&[("CallStatus", "in-progress")]), "status"),
        "answered"
    );
    assert_eq!(
        status(&pairs(&[("CallStatus", "no-answer")]), "status"),
        "no-answer"
    );
    assert_eq!(
        status(&pairs(&[("CallStatus", "completed")]), "hangup"),
        "completed"
    );
    assert_eq!(status(&[], "answer"), "answered");
    assert_eq!(status(&pairs(&[("CallStatus", "a.b")]), "status"), "status");
}

const BASE: &str = "https://relay.example/";

#[test]
fn a_web_callback_answer_dials_until_it_expires_and_reports_the_second_leg() {
    let q = pairs(&[
        ("session", "callback:0190 e1"),
        ("target", "+15557654321"),
        ("caller_id", "+15550001111"),
        ("expires", "1000"),
    ]);
    assert_eq!(
        answer_xml(&q, "<Response/>", 1000, BASE),
        "<Response><Dial callerId=\"+15550001111\" callbackUrl=\"https://relay.example/v1/plivo/status?session=callback%3A0190+e1\" callbackMethod=\"POST\"><Number>+15557654321</Number></Dial></Response>"
    );
    assert_eq!(
        answer_xml(&q, "<Response/>", 1001, BASE),
        "<Response/>",
        "expired"
    );
    let bad = pairs(&[("target", "+15557654321"), ("expires", "soon")]);
    assert_eq!(answer_xml(&bad, "<Response/>", 0, BASE), "<Response/>");
}

#[test]
fn answer_dials_a_valid_target_and_escapes_it() {
    let q = pairs(&[("target", "+1 555 123 1234"), ("caller_id", "+15550000000")]);
    assert_eq!(
        answer_xml(&q, "<Response/>", 0, BASE),
        "<Response><Dial callerId=\"+15550000000\"><Number>+15551231234</Number></Dial></Response>"
    );
    assert_eq!(
        answer_xml(&pairs(&[("target", "<script>")]), "<Response/>", 0, BASE),
        "<Response/>"
    );
    assert_eq!(
        answer_xml(&[], "<Response><Hangup/></Response>", 0, BASE),
        "<Response><Hangup/></Response>"
    );
    assert_eq!(xml_escape("a&\"<>'"), "a&amp;&quot;&lt;&gt;&apos;");
}

proptest::proptest! {
    #[test]
    fn answer_xml_never_carries_unvalidated_text(target in ".{0,40}", caller in ".{0,40}") {
        let q = vec![("target".to_owned(), target), ("caller_id".to_owned(), caller)];
        let xml = answer_xml(&q, "<Response/>", 0, BASE);
        if xml != "<Response/>" {
            let number = xml.split("<Number>").nth(1).and_then(|r| r.split("</Number>").next()).unwrap();
            proptest::prop_assert!(number.starts_with('+') && number[1..].bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn status_is_always_a_routing_key_word(value in ".{0,30}", kind in "answer|hangup|status") {
        let s = status(&[("CallStatus".to_owned(), value)], &kind);
        proptest::prop_assert!(relay_core::routing::is_key_word(&s));
    }
}
