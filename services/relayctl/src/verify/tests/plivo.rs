//! Plivo V3 on the official POST vector (plivo-go `utils_test.go`, plivo-ruby
//! `signature_spec.rb`), served by the relay behind a proxy that strips the `/api` prefix.

use relay_signing::plivo as sig;

use super::{capture, config, doctor, form, kinds};
use crate::verify::capture::Capture;

const URL: &str = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml";
const BASE: &str = "https://plivobin.non-prod.plivops.com/api";
const TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
const NONCE: &str = "31627761595286130198";
const SIG: &str = "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=";

const PARAMS: &[(&str, &str)] = &[
    ("Direction", "outbound"),
    ("From", "19792014278"),
    ("ALegUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("CallStatus", "in-progress"),
    ("BillRate", "0.002"),
    ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
    (
        "To",
        "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
    ),
    ("ALegRequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("CallUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("RequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    (
        "SIP-H-To",
        "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
    ),
    ("SessionStart", "2020-04-08 11:34:33.238707"),
    ("Event", "StartApp"),
];

fn plivo_config(base: &str, token: &str, main: Option<&str>) -> relay_core::config::Config {
    let main_line = if main.is_some() {
        "main_auth_token_env = \"MAIN\"\n"
    } else {
        ""
    };
    let mut env = vec![("TOKEN", token)];
    env.extend(main.map(|m| ("MAIN", m)));
    config(
        base,
        &format!("[ingress.plivo]\nauth_token_env = \"TOKEN\"\n{main_line}"),
        &env,
    )
}

/// The official callback as Plivo sent it to `url`, with its V3 headers.
fn callback(url: &str, extra: &[(&str, &str)]) -> Capture {
    let mut headers = vec![(sig::SIGNATURE_V3, SIG), (sig::NONCE_V3, NONCE)];
    headers.extend_from_slice(extra);
    capture("POST", url, &headers, &form(PARAMS))
}

#[test]
fn the_official_vector_verifies_and_is_explained() {
    let report = doctor(
        &plivo_config(BASE, TOKEN, None),
        "plivo",
        &callback(URL, &[]),
        0,
        &[TOKEN],
    );
    assert!(report.verified, "{}", report.render());
    assert!(report.verdict.starts_with("VERIFIED"), "{}", report.verdict);
    assert_eq!(report.url.as_ref().unwrap().relay, URL);
    assert_eq!(report.checks[0].expected.as_deref(), Some(SIG));
    assert!(report.checks[0].header.starts_with(sig::SIGNATURE_V3));
    // Parameters in signed order: names sorted, the canonical string starts with them.
    assert_eq!(report.params[0].name, "ALegRequestUUID");
    assert!(
        report.canonical[0]
            .text
            .starts_with(&format!("{URL}?ALegRequestUUID3e82ae9d")),
        "{:?}",
        report.canonical
    );
    assert!(report.canonical[0].text.ends_with(&format!(".{NONCE}")));
}

#[test]
fn behind_a_proxy_http_instead_of_https_is_found() {
    let config = plivo_config("http://plivobin.non-prod.plivops.com/api", TOKEN, None);
    let relay_side = callback(
        "http://10.0.0.7:8080/v1/validate_signature03.xml",
        &[("X-Forwarded-Proto", "https")],
    );
    let report = doctor(&config, "plivo", &relay_side, 0, &[TOKEN]);
    assert!(!report.verified);
    assert_eq!(kinds(&report)[0], "url-mismatch", "{}", report.render());
    let cause = &report.causes[0];
    assert!(
        cause.detail.contains(&format!("verifies over {URL}")),
        "{}",
        cause.detail
    );
    assert!(
        cause.detail.contains("scheme https instead of http"),
        "{}",
        cause.detail
    );
    assert!(
        cause.detail.contains("X-Forwarded-Proto"),
        "{}",
        cause.detail
    );
    assert_eq!(
        cause.fix.as_deref(),
        Some("set ingress.public_base_url = \"https://plivobin.non-prod.plivops.com/api\"")
    );
    assert!(report.verdict.contains(URL), "{}", report.verdict);
    let proxy = &report.url.as_ref().unwrap().proxy;
    assert!(
        proxy
            .iter()
            .any(|l| l.starts_with("X-Forwarded-Proto: https")),
        "{proxy:?}"
    );
}

#[test]
fn a_default_port_in_public_base_url_is_found() {
    let config = plivo_config("https://plivobin.non-prod.plivops.com:443/api", TOKEN, None);
    let report = doctor(&config, "plivo", &callback(URL, &[]), 0, &[TOKEN]);
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["url-mismatch"]);
    assert!(
        report.causes[0]
            .detail
            .contains("no port instead of the default :443")
    );
    assert_eq!(
        report.causes[0].fix.as_deref(),
        Some("set ingress.public_base_url = \"https://plivobin.non-prod.plivops.com/api\"")
    );
}

#[test]
fn a_path_prefix_the_proxy_strips_is_found() {
    let config = plivo_config("https://plivobin.non-prod.plivops.com", TOKEN, None);
    let report = doctor(&config, "plivo", &callback(URL, &[]), 0, &[TOKEN]);
    assert_eq!(kinds(&report), ["url-mismatch"], "{}", report.render());
    assert!(report.causes[0].detail.contains("the path prefix /api"));
    assert_eq!(
        report.causes[0].fix.as_deref(),
        Some("set ingress.public_base_url = \"https://plivobin.non-prod.plivops.com/api\"")
    );
}

#[test]
fn a_trailing_slash_added_on_the_way_is_found() {
    // Plivo signed the URL without the slash; the request reached the relay with one.
    let report = doctor(
        &plivo_config(BASE, TOKEN, None),
        "plivo",
        &callback(&format!("{URL}/"), &[]),
        0,
        &[TOKEN],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["url-mismatch"]);
    assert!(
        report.causes[0].detail.contains("no trailing slash"),
        "{}",
        report.causes[0].detail
    );
    assert!(
        report.causes[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("trailing slash")
    );
}

#[test]
fn a_wrong_token_is_named_when_no_variant_verifies() {
    let report = doctor(
        &plivo_config(BASE, "not-the-token", None),
        "plivo",
        &callback(URL, &[]),
        0,
        &["not-the-token"],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["wrong-token"]);
    assert!(report.verdict.contains("wrong token"), "{}", report.verdict);
}

#[test]
fn ma_v3_versus_v3_tokens_are_told_apart() {
    // V3 signed with what the relay holds as the main account's token.
    let swapped = plivo_config(BASE, "subaccount-token", Some(TOKEN));
    let report = doctor(
        &swapped,
        "plivo",
        &callback(URL, &[]),
        0,
        &[TOKEN, "subaccount-token"],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["main-account-token"]);
    // The same signature sent as Ma-V3 is what the relay accepts with the main token.
    let ma = capture(
        "POST",
        URL,
        &[(sig::SIGNATURE_MA_V3, SIG), (sig::NONCE_V3, NONCE)],
        &form(PARAMS),
    );
    let report = doctor(&swapped, "plivo", &ma, 0, &[TOKEN]);
    assert!(report.verified, "{}", report.render());
    assert!(report.checks[0].header.starts_with(sig::SIGNATURE_MA_V3));
    // Without a main account token the relay cannot check Ma-V3.
    let report = doctor(
        &plivo_config(BASE, "subaccount-token", None),
        "plivo",
        &ma,
        0,
        &[],
    );
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["main-account-token"]);
    assert!(
        report.causes[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("main_auth_token_env")
    );
}

#[test]
fn a_plus_that_lost_its_encoding_is_found() {
    let route = "https://relay.example/v1/plivo/status";
    let params = [("CallUUID", "u-1"), ("From", "+15105559999")];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = sig::sign_v3(TOKEN, route, sig::Method::Post, &owned, NONCE).unwrap();
    let headers = [
        (sig::SIGNATURE_V3, signature.as_str()),
        (sig::NONCE_V3, NONCE),
    ];
    let config = plivo_config("https://relay.example", TOKEN, None);
    let good = capture("POST", route, &headers, &form(&params));
    assert!(doctor(&config, "plivo", &good, 0, &[TOKEN]).verified);
    let unencoded = capture("POST", route, &headers, b"CallUUID=u-1&From=+15105559999");
    let report = doctor(&config, "plivo", &unencoded, 0, &[TOKEN]);
    assert!(!report.verified);
    assert_eq!(kinds(&report), ["body-re-encoded"], "{}", report.render());
    assert!(report.causes[0].detail.contains("%2B"));
}

#[test]
fn a_capture_without_signature_headers_says_so() {
    let bare = capture("POST", URL, &[], &form(PARAMS));
    let report = doctor(&plivo_config(BASE, TOKEN, None), "plivo", &bare, 0, &[]);
    assert_eq!(kinds(&report), ["missing-header"]);
    assert!(report.causes[0].detail.contains(sig::SIGNATURE_V3));
}
