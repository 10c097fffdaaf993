//! Plivo samples: signed with `X-Plivo-Signature-V3` over `ingress.public_base_url` + the
//! route, as Plivo signs them (a fresh nonce per request).

use anyhow::{Context, bail};
use relay_core::config::Config;
use relay_signing::plivo;

use super::plivo_call::{self, Call};
use super::{SendArgs, form_urlencoded_body, ingress_url, post};

/// The auth token of `[ingress.plivo]`.
fn auth_token(config: &Config) -> anyhow::Result<&str> {
    let source = config
        .ingress
        .plivo
        .as_ref()
        .context("no [ingress.plivo] in the configuration: the Plivo routes are off")?;
    Ok(source
        .auth_token_env
        .require("ingress.plivo.auth_token_env")?)
}

/// The V3 nonce and signature headers of a POST of `params` to `route`.
fn signed_headers(
    config: &Config,
    token: &str,
    route: &str,
    params: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    let public = config.ingress.public_base_url.trim_end_matches('/');
    let nonce = relay_core::ids::new_event_id().replace('-', "");
    let signature = plivo::sign_v3(
        token,
        &format!("{public}{route}"),
        plivo::Method::Post,
        params,
        &nonce,
    )
    .context("ingress.public_base_url is not an absolute URL")?;
    Ok(vec![
        (plivo::NONCE_V3.to_owned(), nonce),
        (plivo::SIGNATURE_V3.to_owned(), signature),
    ])
}

/// Posts a signed Plivo status callback, signed over the public URL as Plivo would.
pub(super) async fn send_status(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    let token = auth_token(config)?;
    let uuid = relay_core::ids::new_event_id();
    let params: Vec<(String, String)> = [
        ("CallUUID", uuid.as_str()),
        ("CallStatus", "completed"),
        ("Event", "Hangup"),
        ("From", "+15550000000"),
        ("To", "+15551231234"),
        ("Direction", "outbound"),
        ("Duration", "42"),
        ("HangupCause", "NORMAL_CLEARING"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let headers = signed_headers(config, token, "/v1/plivo/status", &params)?;
    println!("CallUUID {uuid}");
    let url = ingress_url(config, args.url, "/v1/plivo/status");
    post(
        &url,
        "application/x-www-form-urlencoded",
        form_urlencoded_body(&params),
        headers,
    )
    .await
}

/// Plays a whole call (`--scenario`) against relay-ingress: one line per callback, then the
/// session whose helpdesk thread it makes.
pub(super) async fn send_call(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    let token = auth_token(config)?;
    if config.worker.call_log.is_none() {
        eprintln!(
            "note: no [worker.call_log] in this configuration; unless the worker's has one, \
             these events wait in relay.unrouted"
        );
    }
    let scenario = args.scenario;
    let (from, to) = scenario.default_numbers();
    let call = Call {
        uuid: uuid::Uuid::now_v7().to_string(),
        from: args.from.unwrap_or_else(|| from.to_owned()),
        to: args.to.unwrap_or_else(|| to.to_owned()),
        agent: args.agent,
        start: time::OffsetDateTime::now_utc(),
        pause: args.pause,
        missed_grace: config.worker.call_log.as_ref().map(|c| c.missed_grace),
    };
    let steps = plivo_call::steps(scenario, &call, &mut || uuid::Uuid::now_v7().to_string());
    let width = steps.iter().map(|s| s.meaning.len()).max().unwrap_or(0);
    let client = reqwest::Client::new();
    let began = tokio::time::Instant::now();
    for step in steps {
        tokio::time::sleep_until(began + step.after).await;
        let headers = signed_headers(config, token, step.route, &step.params)?;
        let url = ingress_url(config, args.url.clone(), step.route);
        let mut request = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_urlencoded_body(&step.params));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach relay-ingress at {url}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        // Ingress says when it had the callback already (`{"accepted":0,"duplicates":1}`).
        let duplicate = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["duplicates"].as_u64())
            .is_some_and(|n| n > 0);
        let note = if duplicate { " (already had it)" } else { "" };
        println!(
            "{:<17} {:<width$}  {status}{note}",
            step.route, step.meaning
        );
        if !status.is_success() {
            bail!(
                "relay-ingress refused {} with {status}: {}",
                step.route,
                body.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    println!("session plivo:{}", call.uuid);
    Ok(())
}
