//! `relayctl verify --source voximplant`: account callbacks (`POST /v1/voximplant/callbacks`),
//! each callback of the batch with its `hash = md5(salt + account_id + api_key + callback_id)`;
//! or, for a capture of `/v1/voximplant/events` (or one with Standard Webhooks headers), the
//! relay's own scenario events.

use anyhow::Context;
use relay_core::config::{EnvSecret, VoximplantConfig};
use relay_ingress::problem::Problem;
use relay_ingress::voximplant::parse_batch;
use relay_signing::{standard_webhooks as sw, voximplant as vox};

use super::capture::Capture;
use super::report::{Cause, Check, Param, Report, key_label, masked};

/// Explains a Voximplant capture.
pub(super) fn diagnose(
    config: &VoximplantConfig,
    capture: &Capture,
    now: i64,
) -> anyhow::Result<Report> {
    let events_route = capture
        .target()
        .is_some_and(|t| t.route.trim_end_matches('/') == "/v1/voximplant/events");
    let signed_like_events = [sw::SIGNATURE_HEADER, "svix-signature"]
        .iter()
        .any(|h| capture.header(h).is_some());
    if events_route || signed_like_events {
        let secret = config
            .events_secret_env
            .as_ref()
            .context("no ingress.voximplant.events_secret_env: the relay answers 404 on /v1/voximplant/events")?;
        let value = secret.require("ingress.voximplant.events_secret_env")?;
        let mut report = super::standard_webhooks::explain(
            "voximplant",
            "Standard Webhooks: the relay's scenario events",
            secret,
            value,
            sw::DEFAULT_TOLERANCE_SECS,
            capture,
            now,
        )?;
        super::media_note(capture, &mut report);
        return Ok(report);
    }
    callbacks(config, capture)
}

/// Account callbacks: every callback on its own, as relay-ingress verifies them.
fn callbacks(config: &VoximplantConfig, capture: &Capture) -> anyhow::Result<Report> {
    let salt = match &config.salt_env {
        Some(s) => Some((s, s.require("ingress.voximplant.salt_env")?)),
        None => None,
    };
    let salt_value = salt.map_or("", |(_, v)| v);
    let mut report = Report::new(
        "voximplant",
        "md5(salt + account_id + api_key + callback_id) per callback",
        super::request_line(capture),
    );
    match salt {
        Some((var, value)) => report.keys.push(key_label("salt", var.var(), value)),
        None => report
            .keys
            .push("salt: none configured (the empty salt)".to_owned()),
    }
    let key_of = |account: u64| {
        config
            .accounts
            .iter()
            .find(|a| a.account_id == account)
            .map(|a| &a.api_key_env)
    };
    for account in &config.accounts {
        if let Some(value) = account.api_key_env.value() {
            report.keys.push(key_label(
                &format!("API key of account {}", account.account_id),
                account.api_key_env.var(),
                value,
            ));
        }
    }
    super::route_note(capture, "/v1/voximplant/callbacks", &mut report);
    let items = match parse_batch(&capture.body) {
        Ok(items) => items,
        Err(problem) => {
            report
                .causes
                .push(Cause::new("malformed", detail(&problem), None));
            report.conclude(
                false,
                "the body is not a batch of callbacks: the relay answers 400",
            );
            return Ok(report);
        }
    };
    let total = items.len();
    let mut valid = 0;
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("callbacks[{i}]");
        let cb = match item {
            Ok(cb) => cb,
            Err(problem) => {
                report
                    .causes
                    .push(Cause::new("malformed", detail(&problem), None));
                continue;
            }
        };
        for (name, value) in [
            ("account_id", cb.account_id.to_string()),
            ("callback_id", cb.callback_id.to_string()),
            ("type", cb.kind.clone()),
        ] {
            report.params.push(Param {
                from: at.clone(),
                name: name.to_owned(),
                value,
            });
        }
        let key = key_of(cb.account_id);
        let salt_text = salt.map_or_else(|| "\"\"".to_owned(), |(v, s)| masked("salt", v.var(), s));
        let key_text = key.and_then(|k| k.value().map(|v| masked("api key", k.var(), v)));
        report.canonical(
            at.clone(),
            format!(
                "md5({salt_text} + \"{}\" + {} + \"{}\")",
                cb.account_id,
                key_text
                    .as_deref()
                    .unwrap_or("<no key: account not configured>"),
                cb.callback_id
            ),
        );
        let key_value = key.and_then(EnvSecret::value);
        let result = key_value
            .map(|k| vox::verify_callback(salt_value, cb.account_id, k, cb.callback_id, &cb.hash));
        report.checks.push(Check {
            header: format!(
                "{at}.hash (callback_id {}, type {})",
                cb.callback_id, cb.kind
            ),
            received: Some(cb.hash.clone()),
            expected: key_value
                .map(|k| vox::callback_hash(salt_value, cb.account_id, k, cb.callback_id)),
            result: match &result {
                Some(Ok(())) => "verifies".to_owned(),
                Some(Err(e)) => e.to_string(),
                None => format!("account {} is not configured", cb.account_id),
            },
        });
        match result {
            Some(Ok(())) => valid += 1,
            None => report.causes.push(Cause::new(
                "unknown-account",
                format!(
                    "{at}: account {} is not in ingress.voximplant.accounts",
                    cb.account_id
                ),
                Some("add the account with its api_key_env".to_owned()),
            )),
            Some(Err(_)) => report.causes.push(callback_cause(config, salt, &at, &cb)),
        }
    }
    let verified = valid == total;
    let what = if verified {
        format!("all {total} callbacks' hashes match")
    } else if valid > 0 {
        format!(
            "{valid} of {total} callbacks verify: the relay publishes those, answers 200 and \
             counts {} as rejected",
            total - valid
        )
    } else {
        format!("none of the {total} callbacks verifies: the relay answers 401")
    };
    report.conclude(verified, &what);
    Ok(report)
}

/// What relay-ingress says of a callback it cannot read.
fn detail(problem: &Problem) -> String {
    match problem {
        Problem::Malformed(detail) | Problem::BadSignature(detail) => detail.clone(),
        other => format!("{other:?}"),
    }
}

/// Why one callback's hash does not match: the salt, another account's key, or neither.
fn callback_cause(
    config: &VoximplantConfig,
    salt: Option<(&EnvSecret, &str)>,
    at: &str,
    cb: &relay_ingress::voximplant::Callback,
) -> Cause {
    let matches = |salt: &str, key: &str| {
        vox::verify_callback(salt, cb.account_id, key, cb.callback_id, &cb.hash).is_ok()
    };
    let own_key = config
        .accounts
        .iter()
        .find(|a| a.account_id == cb.account_id)
        .and_then(|a| a.api_key_env.value())
        .unwrap_or_default();
    if salt.is_some() && matches("", own_key) {
        return Cause::new(
            "salt",
            format!("{at}: the hash matches with the empty salt: Voximplant has no salt set"),
            Some("remove ingress.voximplant.salt_env, or set the salt at Voximplant".to_owned()),
        );
    }
    let salt_value = salt.map_or("", |(_, v)| v);
    for other in &config.accounts {
        if other.account_id != cb.account_id
            && other
                .api_key_env
                .value()
                .is_some_and(|k| matches(salt_value, k))
        {
            return Cause::new(
                "wrong-key",
                format!(
                    "{at}: the hash matches with account {}'s API key (${})",
                    other.account_id,
                    other.api_key_env.var()
                ),
                Some("the two accounts' api_key_env are swapped".to_owned()),
            );
        }
    }
    Cause::new(
        "wrong-key",
        format!(
            "{at}: no salt or key variant matches: the API key of account {} or the salt is not \
             Voximplant's",
            cb.account_id
        ),
        Some("check the account's API key and the callbacks' security salt in the Voximplant control panel".to_owned()),
    )
}
