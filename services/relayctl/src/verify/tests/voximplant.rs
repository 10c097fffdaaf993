//! Voximplant account callbacks on the computed vectors of relay-signing (`md5("salt100key7")`,
//! `md5("1k2")`), each callback of a batch with its own verdict.

use relay_signing::voximplant::callback_hash;

use super::{capture, config, doctor, kinds};

fn vox_config(salt: Option<&str>) -> relay_core::config::Config {
    let salt_line = if salt.is_some() {
        "salt_env = \"SALT\"\n"
    } else {
        ""
    };
    let mut env = vec![("KEY100", "key"), ("KEY1", "k")];
    env.extend(salt.map(|s| ("SALT", s)));
    config(
        "http://127.0.0.1:8080",
        &format!(
            "[ingress.voximplant]\n{salt_line}\
             [[ingress.voximplant.accounts]]\naccount_id = 100\napi_key_env = \"KEY100\"\n\
             [[ingress.voximplant.accounts]]\naccount_id = 1\napi_key_env = \"KEY1\"\n"
        ),
        &env,
    )
}

fn batch(callbacks: &[(u64, u64, &str)]) -> crate::verify::capture::Capture {
    let list: Vec<serde_json::Value> = callbacks
        .iter()
        .map(|(account, id, hash)| {
            serde_json::json!({"account_id": account, "callback_id": id, "type": "min_balance", "hash": hash})
        })
        .collect();
    let body = serde_json::json!({ "callbacks": list }).to_string();
    capture("POST", "/v1/voximplant/callbacks", &[], body.as_bytes())
}

#[test]
fn each_callback_is_checked_with_its_account_and_the_keys_stay_masked() {
    let good = "153ac2b700fee4d6a9760ce0f13512ac";
    assert_eq!(callback_hash("salt", 100, "key", 7), good);
    let report = doctor(
        &vox_config(Some("salt")),
        "voximplant",
        &batch(&[(100, 7, good)]),
        0,
        &[],
    );
    assert!(report.verified, "{}", report.render());
    assert_eq!(report.checks[0].expected.as_deref(), Some(good));
    assert_eq!(
        report.canonical[0].text,
        "md5(<salt $SALT, 4 characters> + \"100\" + <api key $KEY100, 3 characters> + \"7\")"
    );
}

#[test]
fn one_bad_callback_of_a_batch_fails_it_and_says_which() {
    let good = callback_hash("salt", 100, "key", 7);
    let report = doctor(
        &vox_config(Some("salt")),
        "voximplant",
        &batch(&[(100, 7, &good), (100, 8, &good), (555, 9, &good)]),
        0,
        &[],
    );
    assert!(!report.verified);
    assert!(
        report.verdict.contains("1 of 3 callbacks verify"),
        "{}",
        report.verdict
    );
    assert_eq!(kinds(&report), ["wrong-key", "unknown-account"]);
    assert!(report.causes[0].detail.starts_with("callbacks[1]"));
}

#[test]
fn a_callback_hashed_without_the_salt_is_found() {
    let unsalted = "79c23c16a9526a41d610a1457a382b9e";
    assert_eq!(callback_hash("", 1, "k", 2), unsalted);
    let report = doctor(
        &vox_config(Some("salt")),
        "voximplant",
        &batch(&[(1, 2, unsalted)]),
        0,
        &[],
    );
    assert_eq!(kinds(&report), ["salt"], "{}", report.render());
    assert!(
        doctor(
            &vox_config(None),
            "voximplant",
            &batch(&[(1, 2, unsalted)]),
            0,
            &[]
        )
        .verified
    );
}
