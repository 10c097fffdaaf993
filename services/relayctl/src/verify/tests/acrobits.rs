//! Acrobits web callbacks: credentials, not signatures, read under the configured names.

use super::{capture, config, doctor, kinds};

/// argon2 hash of "demo-password" (deploy/local.env).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$/BnlhnEAWT9uxSpeRX6THA$qlcILUwB5DLSvbHQC5Qg7HXeNjLOCUxO2Xe5ZKCBf0g";

fn acrobits_config() -> relay_core::config::Config {
    config(
        "http://127.0.0.1:8080",
        "[ingress.acrobits]\nusername_params = [\"user\"]\npassword_params = [\"pass\"]\n\
         allowed_prefixes = [\"+1\"]\n\
         [[ingress.acrobits.accounts]]\nusername = \"demo\"\npassword_hash_env = \"HASH\"\n",
        &[("HASH", HASH)],
    )
}

fn request(password: &str) -> crate::verify::capture::Capture {
    let body = format!(
        "user=demo&pass={password}&targetNumber=%2B15551231234&callbackNumber=%2B445559879876"
    );
    capture(
        "POST",
        "/v1/acrobits/web-callback",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
}

#[test]
fn credentials_are_read_under_the_configured_names_and_never_shown() {
    let report = doctor(
        &acrobits_config(),
        "acrobits",
        &request("demo-password"),
        0,
        &["demo-password", HASH],
    );
    assert!(report.verified, "{}", report.render());
    let read: Vec<(&str, &str)> = report
        .read_as
        .iter()
        .map(|r| (r.label.as_str(), r.text.as_str()))
        .collect();
    assert_eq!(read[0], ("user", "`user` = demo"));
    assert_eq!(read[1], ("password", "`pass` (13 characters, not shown)"));
    assert_eq!(read[2], ("target", "`targetNumber` = +15551231234"));
    // Checked after the credentials: the callback number is outside the allowed prefixes.
    assert!(
        report.notes.iter().any(|n| n.contains("403")),
        "{:?}",
        report.notes
    );
}

#[test]
fn a_wrong_password_fails_without_showing_either() {
    let report = doctor(
        &acrobits_config(),
        "acrobits",
        &request("guess"),
        0,
        &["guess", "demo-password", HASH],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["wrong-password"]);
}

#[test]
fn a_password_in_the_query_is_hidden_from_the_request_line() {
    let get = capture(
        "GET",
        "https://relay.example/v1/acrobits/web-callback?user=demo&pass=demo-password&targetNumber=%2B15551231234&callbackNumber=%2B15559879876",
        &[],
        b"",
    );
    let report = doctor(
        &acrobits_config(),
        "acrobits",
        &get,
        0,
        &["demo-password", HASH],
    );
    assert!(report.verified, "{}", report.render());
    assert!(
        report.request.contains("pass=<hidden>"),
        "{}",
        report.request
    );
}
