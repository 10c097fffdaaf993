//! The doctor on captures signed with the providers' official vectors, and on the broken
//! variants it must diagnose: behind a proxy (http vs https), a port, a path prefix, a trailing
//! slash, a re-encoded form or JSON, a wrong token, a stale timestamp, the other Plivo token.

mod acrobits;
mod hooks;
mod plivo;
mod twilio;
mod voximplant;

use relay_core::config::Config;

use super::capture::Capture;
use super::report::Report;

/// A configuration with `public_base_url` and `extra` TOML, secrets from `env`.
fn config(public_base_url: &str, extra: &str, env: &[(&str, &str)]) -> Config {
    let text = format!("[ingress]\npublic_base_url = \"{public_base_url}\"\n{extra}");
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    Config::from_toml(&text, &[], &lookup).expect("a valid test configuration")
}

/// A captured request.
fn capture(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Capture {
    let headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Capture::from_parts(
        Some(method.to_owned()),
        Some(url.to_owned()),
        &headers,
        body.to_vec(),
    )
    .expect("a valid capture")
}

/// A form body, encoded as providers encode it (`%2B` for `+`, `+` for a space).
fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

/// The report, after checking that neither its text nor its JSON shows any of `secrets`.
fn doctor(config: &Config, source: &str, capture: &Capture, now: i64, secrets: &[&str]) -> Report {
    let report = super::diagnose(config, source, capture, now).expect("a report");
    let text = report.render();
    let json = serde_json::to_string(&report).expect("JSON");
    for secret in secrets {
        assert!(!text.contains(secret), "the text shows a secret:\n{text}");
        assert!(!json.contains(secret), "the JSON shows a secret: {json}");
    }
    report
}

/// The kinds of the report's causes, in order.
fn kinds(report: &Report) -> Vec<&str> {
    report.causes.iter().map(|c| c.kind.as_str()).collect()
}
