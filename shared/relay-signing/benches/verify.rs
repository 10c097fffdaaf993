//! Cost of one verification per scheme, on the providers' own test vectors.
//! `cargo bench -p relay-signing`. No criterion: a fixed loop, best of five rounds.

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use relay_signing::{hmac_header, plivo, reamaze, standard_webhooks, twilio, voximplant};

fn measure(name: &str, mut f: impl FnMut() -> bool) {
    const N: u32 = 20_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..N {
            assert!(black_box(f()), "{name} must verify");
        }
        best = best.min(start.elapsed().as_secs_f64() / f64::from(N));
    }
    println!("| {name} | {:.2} µs |", best * 1e6);
}

fn main() {
    println!("| scheme | per verification |\n|---|---|");
    let hash = voximplant::callback_hash("salt", 100_001, "api-key", 42);
    measure("voximplant md5 callback hash", || {
        voximplant::verify_callback("salt", 100_001, "api-key", 42, &hash).is_ok()
    });

    let wh =
        standard_webhooks::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
    let body = br#"{"test": 2432232314}"#;
    measure("standard webhooks", || {
        standard_webhooks::verify(
            &wh,
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            Some("1614265330"),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            body,
            1_614_265_330,
            300,
        )
        .is_ok()
    });

    let rz_body = br#"{"id":"1","body":"hello"}"#;
    measure("re:amaze hmac", || {
        reamaze::verify(
            b"your_shared_secret",
            rz_body,
            Some("FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU="),
        )
        .is_ok()
    });

    let params: Vec<(String, String)> = [
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
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    measure("plivo v3 (POST, 13 params)", || {
        plivo::verify_v3(
            "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4",
            "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml",
            plivo::Method::Post,
            &params,
            Some("31627761595286130198"),
            Some("iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
        )
        .is_ok()
    });
    measure("plivo v2", || {
        plivo::verify_v2(
            "my_auth_token",
            "https://answer.url",
            Some("12345"),
            Some("ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="),
        )
        .is_ok()
    });

    let tw: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    measure("twilio (5 params, 2 URL variants)", || {
        twilio::verify(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            twilio::Body::Form(&tw),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        )
        .is_ok()
    });

    let gh = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    measure("hmac-sha256 header (hex)", || {
        hmac_header::verify(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            hmac_header::Encoding::Hex,
            "sha256=",
            Some(gh),
        )
        .is_ok()
    });
}
