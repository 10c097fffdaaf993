//! Standard Webhooks explained (generic sources and the relay's Voximplant scenario):
//! `id.timestamp.body` and the timestamp's age; on a mismatch, a stale timestamp over a right
//! signature, Svix's header names, a re-serialised body, or a key not decoded from `whsec_`.

use relay_core::config::EnvSecret;
use relay_signing::{VerifyError, standard_webhooks as sw};

use super::capture::Capture;
use super::hooks::{BODY_SHOWN, body_causes, wrong_secret};
use super::report::{Cause, Check, Param, Report, key_label};

/// Standard Webhooks: `id.timestamp.body`, the timestamp within `tolerance` seconds of `now`.
pub(super) fn explain(
    source: &str,
    scheme: &str,
    var: &EnvSecret,
    secret: &str,
    tolerance: i64,
    capture: &Capture,
    now: i64,
) -> anyhow::Result<Report> {
    let key = sw::Secret::parse(secret)?;
    let mut report = Report::new(source, scheme, super::request_line(capture));
    report
        .keys
        .push(key_label("signing secret", var.var(), secret));
    let (id, ts, sig) = (
        capture.header(sw::ID_HEADER),
        capture.header(sw::TIMESTAMP_HEADER),
        capture.header(sw::SIGNATURE_HEADER),
    );
    let parsed = ts.and_then(|t| t.trim().parse::<i64>().ok());
    let age = parsed.map(|t| i128::from(now) - i128::from(t));
    for (name, value) in [(sw::ID_HEADER, id), (sw::TIMESTAMP_HEADER, ts)] {
        report.params.push(Param {
            from: "header".to_owned(),
            name: name.to_owned(),
            value: value.unwrap_or("(absent)").to_owned(),
        });
    }
    if let Some(age) = age {
        report.params.push(Param {
            from: "age".to_owned(),
            name: String::new(),
            value: format!("{age} s (now - webhook-timestamp; ±{tolerance} s accepted)"),
        });
    }
    report.canonical(
        "id.timestamp.body",
        format!(
            "{}.{}.{}",
            id.unwrap_or("<no id>"),
            ts.unwrap_or("<no timestamp>"),
            capture.body_text(BODY_SHOWN)
        ),
    );
    let result = sw::verify(&key, id, ts, sig, &capture.body, now, tolerance);
    report.checks.push(Check {
        header: sw::SIGNATURE_HEADER.to_owned(),
        received: sig.map(str::to_owned),
        expected: id
            .zip(parsed)
            .map(|(id, t)| sw::sign(&key, id, t, &capture.body)),
        result: match result {
            Ok(()) => "verifies".to_owned(),
            Err(VerifyError::Stale) => format!(
                "timestamp outside the accepted window ({} s old, ±{tolerance} s accepted)",
                age.unwrap_or_default()
            ),
            Err(e) => e.to_string(),
        },
    });
    if result.is_err() {
        report.causes = sw_causes(&key, secret, var.var(), capture, now, tolerance);
    }
    let verified = result.is_ok();
    report.conclude(
        verified,
        if verified {
            "webhook-signature matches id.timestamp.body"
        } else {
            "webhook-signature does not verify"
        },
    );
    Ok(report)
}

fn sw_causes(
    key: &sw::Secret,
    secret: &str,
    var: &str,
    capture: &Capture,
    now: i64,
    tolerance: i64,
) -> Vec<Cause> {
    let header = |n: &str| capture.header(n);
    let (id, ts, sig) = (
        header(sw::ID_HEADER),
        header(sw::TIMESTAMP_HEADER),
        header(sw::SIGNATURE_HEADER),
    );
    let mut causes = Vec::new();
    if id.is_none() || ts.is_none() || sig.is_none() {
        let svix = (
            header("svix-id"),
            header("svix-timestamp"),
            header("svix-signature"),
        );
        let fix = "send webhook-id, webhook-timestamp and webhook-signature".to_owned();
        if svix.0.is_some() {
            causes.push(Cause::new(
                "header",
                "the sender uses Svix's svix-* headers; the relay reads the Standard Webhooks \
                 names webhook-*",
                Some(fix),
            ));
        } else {
            causes.push(Cause::new(
                "missing-header",
                "the capture lacks webhook-id, webhook-timestamp or webhook-signature",
                None,
            ));
        }
        return causes;
    }
    // The signature checked at the signed instant: what is wrong besides the clock.
    let at_signing = ts.and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(now);
    let verifies = |key: &sw::Secret, body: &[u8]| {
        sw::verify(key, id, ts, sig, body, at_signing, tolerance).is_ok()
    };
    if sw::verify(key, id, ts, sig, &capture.body, now, tolerance) == Err(VerifyError::Stale) {
        let age = i128::from(now) - i128::from(at_signing);
        let detail = if age > 0 {
            format!("the timestamp is {age} s old, ±{tolerance} s is accepted")
        } else {
            format!(
                "the timestamp is {} s in the future, ±{tolerance} s is accepted",
                -age
            )
        };
        if verifies(key, &capture.body) {
            causes.push(Cause::new(
                "stale-timestamp",
                format!("the signature itself is right, but {detail}: a delayed retry or a replay, or the sender's clock is off"),
                Some("re-send it signed now; keep the sender's clock in sync (NTP)".to_owned()),
            ));
            return causes;
        }
        causes.push(Cause::new("stale-timestamp", detail, None));
    }
    causes.extend(body_causes(capture, |body| verifies(key, body)));
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    for (what, raw) in [
        ("whole secret text", secret),
        ("text after `whsec_`", encoded),
    ] {
        if verifies(&sw::Secret::from_key_bytes(raw.as_bytes()), &capture.body) {
            causes.push(Cause::new(
                "secret-encoding",
                format!(
                    "it verifies with the {what} as the HMAC key: the sender does not \
                     base64-decode the part after `whsec_`"
                ),
                Some("fix the sender's key decoding (Standard Webhooks)".to_owned()),
            ));
        }
    }
    if causes.iter().all(|c| c.kind == "stale-timestamp") {
        causes.push(wrong_secret(var));
    }
    causes
}
