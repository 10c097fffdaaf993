//! Body-signed sources: Standard Webhooks (the reference vector), `hmac-sha256` (GitHub's
//! documented example), Re:amaze (the computed vector) and `basic` (RFC 7617's example).

use relay_signing::{hmac_header, standard_webhooks as sw};

use super::{capture, config, doctor, kinds};

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: i64 = 1_614_265_330;
const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn sw_config(secret: &str) -> relay_core::config::Config {
    config(
        "http://127.0.0.1:8080",
        "[ingress.sources.events]\nscheme = \"standard-webhooks\"\nsecret_env = \"SW\"\n",
        &[("SW", secret)],
    )
}

fn sw_capture(body: &[u8]) -> crate::verify::capture::Capture {
    let ts = SW_TS.to_string();
    capture(
        "POST",
        "/v1/hooks/events",
        &[
            ("webhook-id", SW_ID),
            ("webhook-timestamp", &ts),
            ("webhook-signature", SW_SIG),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

#[test]
fn standard_webhooks_official_vector_verifies_with_id_timestamp_and_body() {
    let report = doctor(
        &sw_config(SW_SECRET),
        "events",
        &sw_capture(SW_BODY),
        SW_TS,
        &[SW_SECRET],
    );
    assert!(report.verified, "{}", report.render());
    assert_eq!(report.checks[0].expected.as_deref(), Some(SW_SIG));
    assert_eq!(
        report.canonical[0].text,
        format!("{SW_ID}.{SW_TS}.{}", String::from_utf8_lossy(SW_BODY))
    );
    assert!(
        report
            .params
            .iter()
            .any(|p| p.from == "age" && p.value.starts_with("0 s"))
    );
}

#[test]
fn a_stale_timestamp_with_a_right_signature_is_named() {
    let now = SW_TS + 3600;
    let report = doctor(
        &sw_config(SW_SECRET),
        "events",
        &sw_capture(SW_BODY),
        now,
        &[SW_SECRET],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["stale-timestamp"], "{}", report.render());
    assert!(
        report.causes[0]
            .detail
            .contains("signature itself is right")
    );
    assert!(report.causes[0].detail.contains("3600 s old"));
    assert!(
        report.verdict.contains("stale timestamp"),
        "{}",
        report.verdict
    );
}

#[test]
fn reformatted_json_and_a_wrong_secret_are_told_apart() {
    // The reference body has `: `; a proxy that re-serialised it compactly breaks the MAC.
    let report = doctor(
        &sw_config(SW_SECRET),
        "events",
        &sw_capture(br#"{"test":2432232314}"#),
        SW_TS,
        &[SW_SECRET],
    );
    assert_eq!(kinds(&report), ["body-re-encoded"], "{}", report.render());
    let wrong = doctor(
        &sw_config("whsec_c2VjcmV0"),
        "events",
        &sw_capture(SW_BODY),
        SW_TS,
        &[],
    );
    assert_eq!(kinds(&wrong), ["wrong-secret"]);
}

#[test]
fn the_scenario_events_route_is_standard_webhooks_too() {
    let config = config(
        "http://127.0.0.1:8080",
        "[ingress.voximplant]\nevents_secret_env = \"EV\"\n",
        &[("EV", SW_SECRET)],
    );
    let mut capture = sw_capture(SW_BODY);
    capture.url = Some("http://127.0.0.1:8080/v1/voximplant/events".to_owned());
    let report = doctor(&config, "voximplant", &capture, SW_TS, &[SW_SECRET]);
    assert!(report.verified, "{}", report.render());
    assert!(report.scheme.contains("scenario"));
}

const GH_SECRET: &str = "It's a Secret to Everybody";
const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn hmac_config(header: &str, encoding: &str) -> relay_core::config::Config {
    config(
        "http://127.0.0.1:8080",
        &format!(
            "[ingress.sources.gh]\nscheme = \"hmac-sha256\"\nsecret_env = \"GH\"\n\
             header = \"{header}\"\nencoding = \"{encoding}\"\nprefix = \"sha256=\"\n"
        ),
        &[("GH", GH_SECRET)],
    )
}

#[test]
fn hmac_header_vector_and_its_misconfigurations() {
    let sent = capture(
        "POST",
        "/v1/hooks/gh",
        &[
            ("X-Hub-Signature-256", GH_SIG),
            ("Content-Type", "text/plain"),
        ],
        b"Hello, World!",
    );
    let ok = doctor(
        &hmac_config("X-Hub-Signature-256", "hex"),
        "gh",
        &sent,
        0,
        &[GH_SECRET],
    );
    assert!(ok.verified, "{}", ok.render());
    assert_eq!(ok.checks[0].expected.as_deref(), Some(GH_SIG));
    let other_header = doctor(
        &hmac_config("X-Shop-Signature-256", "hex"),
        "gh",
        &sent,
        0,
        &[],
    );
    assert_eq!(kinds(&other_header), ["header"]);
    assert!(
        other_header.causes[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("X-Hub-Signature-256")
    );
    let base64 = doctor(
        &hmac_config("X-Hub-Signature-256", "base64"),
        "gh",
        &sent,
        0,
        &[],
    );
    assert_eq!(kinds(&base64), ["encoding"]);
}

#[test]
fn a_form_re_encoded_with_other_spaces_is_found() {
    let config = hmac_config("X-Sig", "hex");
    let signed = hmac_header::sign(
        GH_SECRET.as_bytes(),
        b"note=two+words",
        hmac_header::Encoding::Hex,
        "sha256=",
    );
    let form = [
        ("X-Sig", signed.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let re_encoded = capture("POST", "/v1/hooks/gh", &form, b"note=two%20words");
    let report = doctor(&config, "gh", &re_encoded, 0, &[GH_SECRET]);
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["body-re-encoded"], "{}", report.render());
    assert!(
        report.causes[0].detail.contains("`+` for spaces"),
        "{}",
        report.causes[0].detail
    );
}

#[test]
fn reamaze_computed_vector_and_a_wrong_secret() {
    let sig = "FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=";
    let body = br#"{"id":"1","body":"hello"}"#;
    let request = capture(
        "POST",
        "/v1/reamaze/support",
        &[("X-Reamaze-Hmac-SHA256", sig)],
        body,
    );
    let reamaze = |secret: &str| {
        config(
            "http://127.0.0.1:8080",
            "[ingress.reamaze]\nsecret_env = \"RZ\"\n",
            &[("RZ", secret)],
        )
    };
    let ok = doctor(
        &reamaze("your_shared_secret"),
        "reamaze",
        &request,
        0,
        &["your_shared_secret"],
    );
    assert!(ok.verified, "{}", ok.render());
    let wrong = doctor(&reamaze("another"), "reamaze", &request, 0, &["another"]);
    assert_eq!(kinds(&wrong), ["wrong-secret"]);
}

#[test]
fn basic_shows_the_user_never_the_password() {
    let config = |user: &str| {
        config(
            "http://127.0.0.1:8080",
            &format!(
                "[ingress.sources.b]\nscheme = \"basic\"\nsecret_env = \"PW\"\nusername = \"{user}\"\n"
            ),
            &[("PW", "open sesame")],
        )
    };
    let request = capture(
        "POST",
        "/v1/hooks/b",
        &[("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")],
        b"{}",
    );
    let ok = doctor(
        &config("Aladdin"),
        "b",
        &request,
        0,
        &["open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ"],
    );
    assert!(ok.verified, "{}", ok.render());
    let wrong = doctor(&config("Ali"), "b", &request, 0, &["open sesame"]);
    assert_eq!(kinds(&wrong), ["wrong-user"]);
}

#[test]
fn svix_headers_are_recognised() {
    let ts = SW_TS.to_string();
    let svix = capture(
        "POST",
        "/v1/hooks/events",
        &[
            ("svix-id", SW_ID),
            ("svix-timestamp", &ts),
            ("svix-signature", SW_SIG),
        ],
        SW_BODY,
    );
    let report = doctor(&sw_config(SW_SECRET), "events", &svix, SW_TS, &[SW_SECRET]);
    assert_eq!(kinds(&report), ["header"]);
    assert_eq!(sw::ID_HEADER, "webhook-id");
}
