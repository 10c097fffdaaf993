//! A `twilio` generic source on twilio-python's `test_request_validator.py` vectors.

use super::{capture, config, doctor, form, kinds};
use crate::verify::capture::Capture;

const TOKEN: &str = "12345";
const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
const PARAMS: &[(&str, &str)] = &[
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
];

fn twilio_config(base: &str, token: &str) -> relay_core::config::Config {
    config(
        base,
        "[ingress.sources.calls]\nscheme = \"twilio\"\nsecret_env = \"TW\"\n",
        &[("TW", token)],
    )
}

fn signed_form(url: &str, extra: &[(&str, &str)], body: &[u8]) -> Capture {
    let mut headers = vec![
        ("X-Twilio-Signature", SIG),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    headers.extend_from_slice(extra);
    capture("POST", url, &headers, body)
}

#[test]
fn the_official_vector_verifies_with_names_and_values_in_signed_order() {
    let report = doctor(
        &twilio_config("https://mycompany.com", TOKEN),
        "calls",
        &signed_form(URL, &[], &form(PARAMS)),
        0,
        &[],
    );
    assert!(report.verified, "{}", report.render());
    assert_eq!(report.checks[0].expected.as_deref(), Some(SIG));
    let names: Vec<&str> = report.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["CallSid", "Caller", "Digits", "From", "To"]);
    assert_eq!(
        report.canonical[0].text,
        format!(
            "{URL}CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
        )
    );
}

#[test]
fn behind_a_tls_proxy_the_https_url_is_found() {
    let relay_side = signed_form(
        "http://10.0.0.5:8080/myapp.php?foo=1&bar=2",
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "mycompany.com"),
        ],
        &form(PARAMS),
    );
    let report = doctor(
        &twilio_config("http://mycompany.com", TOKEN),
        "calls",
        &relay_side,
        0,
        &[],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["url-mismatch"], "{}", report.render());
    assert!(
        report.causes[0]
            .detail
            .contains(&format!("verifies over {URL}"))
    );
    assert_eq!(
        report.causes[0].fix.as_deref(),
        Some("set ingress.public_base_url = \"https://mycompany.com\"")
    );
}

#[test]
fn a_re_encoded_form_is_found() {
    // The numbers' `+` as written, not as `%2B`: form decoding reads spaces.
    let body = b"CallSid=CA1234567890ABCDE&Digits=1234&From=+14158675309&To=+18005551212&Caller=+14158675309";
    let report = doctor(
        &twilio_config("https://mycompany.com", TOKEN),
        "calls",
        &signed_form(URL, &[], body),
        0,
        &[],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["body-re-encoded"], "{}", report.render());
}

#[test]
fn a_wrong_token_is_named() {
    let report = doctor(
        &twilio_config("https://mycompany.com", "54321"),
        "calls",
        &signed_form(URL, &[], &form(PARAMS)),
        0,
        &["54321"],
    );
    assert_eq!(kinds(&report), ["wrong-token"]);
}

/// twilio-python's JSON vector: the body covered by `bodySHA256`.
#[test]
fn a_json_body_reformatted_on_the_way_is_found() {
    let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    let url = format!("{URL}&bodySHA256={hash}");
    let headers = [
        ("X-Twilio-Signature", "a9nBmqA0ju/hNViExpshrM61xv4="),
        ("Content-Type", "application/json"),
    ];
    let config = twilio_config("https://mycompany.com", TOKEN);
    let sent = capture(
        "POST",
        &url,
        &headers,
        br#"{"property": "value", "boolean": true}"#,
    );
    assert!(doctor(&config, "calls", &sent, 0, &[]).verified);
    let compacted = capture(
        "POST",
        &url,
        &headers,
        br#"{"property":"value","boolean":true}"#,
    );
    let report = doctor(&config, "calls", &compacted, 0, &[]);
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["body-re-encoded"], "{}", report.render());
    assert!(
        report.causes[0].detail.contains("json.dumps"),
        "{}",
        report.causes[0].detail
    );
}
