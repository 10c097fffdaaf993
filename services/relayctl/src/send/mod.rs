//! `relayctl send`: correctly signed sample callbacks.
//!
//! [`plivo`] holds the Plivo samples: one status callback, and a whole call played callback
//! by callback ([`plivo_call`] says which callbacks make which call).

mod plivo;
mod plivo_call;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use relay_core::config::Config;

use plivo_call::Scenario;

/// Which sample to send.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Sample {
    /// A Voximplant `min_balance` account callback.
    VoximplantMinBalance,
    /// A JSON event to a generic source (`--source`), signed with its configured scheme.
    Hook,
    /// A Plivo `completed` status callback, signed with X-Plivo-Signature-V3.
    PlivoStatus,
    /// A whole Plivo call (`--scenario`), every callback signed with X-Plivo-Signature-V3:
    /// the call log turns it into one helpdesk thread.
    PlivoCall,
    /// A call event from the relay's Voximplant scenario (`--body` JSON with `kind`).
    VoximplantEvent,
    /// A Re:amaze signed request (`--channel`, `--body`).
    Reamaze,
    /// An Acrobits web callback (`--username`, `--password`, `--target`, `--callback`).
    AcrobitsWebCallback,
}

#[derive(Args)]
pub(crate) struct SendArgs {
    /// The sample.
    sample: Sample,
    /// relay-ingress base URL (default: `ingress.public_base_url`).
    #[arg(long)]
    url: Option<String>,
    /// Voximplant account id (default: the first configured account).
    #[arg(long)]
    account_id: Option<u64>,
    /// Callback id (default: the current time in milliseconds, so each send is new).
    #[arg(long)]
    callback_id: Option<u64>,
    /// Balance to report.
    #[arg(long, default_value_t = 0.42)]
    balance: f64,
    /// Report that the account reached its credit limit (a critical alert).
    #[arg(long)]
    min_credit: bool,
    /// The generic source to send to (a key of `[ingress.sources]`), for `hook`.
    #[arg(long)]
    source: Option<String>,
    /// JSON body for `hook`, `voximplant-event` and `reamaze` (default: a small sample).
    #[arg(long)]
    body: Option<String>,
    /// Re:amaze channel, for `reamaze`.
    #[arg(long, default_value = "support")]
    channel: String,
    /// Acrobits user name.
    #[arg(long, default_value = "demo")]
    username: String,
    /// Acrobits password (the account's hash is all the configuration holds).
    #[arg(long, env = "RELAY_ACROBITS_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Number to call, for `acrobits-web-callback`.
    #[arg(long, default_value = "+15551231234")]
    target: String,
    /// Number to call back, for `acrobits-web-callback`.
    #[arg(long, default_value = "+15559879876")]
    callback: String,
    /// Which call `plivo-call` plays.
    #[arg(long, value_enum, default_value_t = Scenario::Answered)]
    scenario: Scenario,
    /// Plivo's `From`, for `plivo-call` (default: the customer +15105559999 on an inbound
    /// call, the channel number +15550009999 on the outbound `out-of-order` one).
    #[arg(long)]
    from: Option<String>,
    /// Plivo's `To`, for `plivo-call` (default: the channel number +15550009999 on an inbound
    /// call, the customer +15105559999 on the outbound `out-of-order` one).
    #[arg(long)]
    to: Option<String>,
    /// The agent whose `<Dial>` leg answers in `plivo-call --scenario answered`; in `missed`
    /// it rings together with a colleague (+15550002001) and nobody answers.
    #[arg(long, default_value = "+15550002000")]
    agent: String,
    /// Time between two callbacks of `plivo-call` (e.g. `1s`, `500ms`, `0s`).
    #[arg(long, default_value = "1s", value_parser = relay_core::duration::parse)]
    pause: Duration,
}

pub(crate) async fn run(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    match args.sample {
        Sample::Hook => send_hook(config, args).await,
        Sample::PlivoStatus => plivo::send_status(config, args).await,
        Sample::PlivoCall => plivo::send_call(config, args).await,
        Sample::VoximplantEvent => send_voximplant_event(config, args).await,
        Sample::Reamaze => send_reamaze(config, args).await,
        Sample::AcrobitsWebCallback => send_acrobits(config, args).await,
        Sample::VoximplantMinBalance => {
            let vox = &config.ingress.voximplant;
            let account = match args.account_id {
                Some(id) => vox.accounts.iter().find(|a| a.account_id == id),
                None => vox.accounts.first(),
            }
            .context("no such Voximplant account in [ingress.voximplant.accounts]")?;
            let key = account
                .api_key_env
                .require("ingress.voximplant.accounts.api_key_env")?;
            let salt = match &vox.salt_env {
                Some(s) => s.require("ingress.voximplant.salt_env")?,
                None => "",
            };
            let callback_id = args.callback_id.unwrap_or_else(|| {
                u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or(1)
            });
            let body = relay_signing::voximplant::sample_min_balance(
                account.account_id,
                callback_id,
                key,
                salt,
                args.balance,
                args.min_credit,
            );
            println!("account {}, callback {callback_id}", account.account_id);
            let url = ingress_url(config, args.url, "/v1/voximplant/callbacks");
            post(&url, "application/json", body.to_string(), Vec::new()).await
        }
    }
}

/// Signs and posts a JSON body to `/v1/hooks/{source}` the way that source's sender would.
async fn send_hook(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    use relay_core::config::{SignatureEncoding, SourceScheme};
    use relay_signing::{basic, hmac_header, standard_webhooks, twilio};

    let name = args.source.context("`send hook` needs --source NAME")?;
    let source = config
        .ingress
        .sources
        .get(&name)
        .with_context(|| format!("no source `{name}` in [ingress.sources]"))?;
    let secret = source
        .secret_env
        .require(&format!("ingress.sources.{name}.secret_env"))?;
    let id = relay_core::ids::new_event_id();
    let body = args.body.unwrap_or_else(|| {
        serde_json::json!({"type": "test", "id": id, "sent_by": "relayctl"}).to_string()
    });
    let public = config
        .ingress
        .public_base_url
        .trim_end_matches('/')
        .to_owned();
    let base = args.url.unwrap_or_else(|| public.clone());
    let mut path = format!("/v1/hooks/{name}");
    let mut headers: Vec<(String, String)> = Vec::new();
    match source.scheme {
        SourceScheme::StandardWebhooks => {
            let key = standard_webhooks::Secret::parse(secret)?;
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            let msg_id = format!("msg_{id}");
            headers.push((
                standard_webhooks::SIGNATURE_HEADER.into(),
                standard_webhooks::sign(&key, &msg_id, ts, body.as_bytes()),
            ));
            headers.push((standard_webhooks::ID_HEADER.into(), msg_id));
            headers.push((standard_webhooks::TIMESTAMP_HEADER.into(), ts.to_string()));
        }
        SourceScheme::HmacSha256 => {
            let encoding = match source.encoding {
                SignatureEncoding::Hex => hmac_header::Encoding::Hex,
                SignatureEncoding::Base64 => hmac_header::Encoding::Base64,
            };
            let header = source
                .header
                .clone()
                .context("hmac-sha256 source without `header`")?;
            headers.push((
                header,
                hmac_header::sign(secret.as_bytes(), body.as_bytes(), encoding, &source.prefix),
            ));
        }
        SourceScheme::Twilio => {
            // A JSON body is covered by bodySHA256, and the URL is signed alone.
            path = format!("{path}?bodySHA256={}", twilio::body_hash(body.as_bytes()));
            headers.push((
                twilio::HEADER.into(),
                twilio::sign(secret, &format!("{public}{path}"), &[]),
            ));
        }
        SourceScheme::Basic => {
            let user = source
                .username
                .clone()
                .context("basic source without `username`")?;
            headers.push(("authorization".into(), basic::header(&user, secret)));
        }
    }
    println!("source {name}");
    post(
        &format!("{}{path}", base.trim_end_matches('/')),
        "application/json",
        body,
        headers,
    )
    .await
}

fn form_urlencoded_body(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Posts `body` with `headers` and reports the answer.
async fn post(
    url: &str,
    content_type: &str,
    body: String,
    headers: Vec<(String, String)>,
) -> anyhow::Result<()> {
    println!("POST {url}");
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach relay-ingress at {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{status} {text}");
    if !status.is_success() {
        bail!("relay-ingress refused the request");
    }
    if let Some(summary) = summary(&text) {
        println!("{summary}");
    }
    Ok(())
}

/// What an accepted answer means, and how to follow its events.
fn summary(answer: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_str(answer).ok()?;
    let accepted = answer["accepted"].as_u64()?;
    let duplicates = answer["duplicates"].as_u64().unwrap_or(0);
    let ids: Vec<&str> = answer["events"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut text = format!("published {accepted} event(s), {duplicates} already seen");
    for id in &ids {
        text.push_str(&format!("\n  event {id}"));
    }
    if let Some(first) = ids.first() {
        text.push_str(&format!(
            "\nfollow it: the worker and delivery log it as event_id={first}; an event no handler takes is in `relayctl dead list --queue unrouted`"
        ));
    }
    Some(text)
}

fn ingress_url(config: &Config, url: Option<String>, path: &str) -> String {
    let base = url.unwrap_or_else(|| config.ingress.public_base_url.clone());
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A Standard Webhooks signed call event, as the relay's scenario sends it.
async fn send_voximplant_event(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    use relay_signing::standard_webhooks;
    let secret = config
        .ingress
        .voximplant
        .events_secret_env
        .as_ref()
        .context("no ingress.voximplant.events_secret_env in the configuration")?
        .require("ingress.voximplant.events_secret_env")?;
    let key = standard_webhooks::Secret::parse(secret)?;
    let id = relay_core::ids::new_event_id();
    let body = args.body.unwrap_or_else(|| {
        serde_json::json!({"kind": "ended", "call_id": id, "duration": 42, "hangup_reason": "normal"}).to_string()
    });
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let msg_id = format!("msg_{id}");
    let headers = vec![
        (
            standard_webhooks::SIGNATURE_HEADER.to_owned(),
            standard_webhooks::sign(&key, &msg_id, ts, body.as_bytes()),
        ),
        (standard_webhooks::ID_HEADER.to_owned(), msg_id),
        (
            standard_webhooks::TIMESTAMP_HEADER.to_owned(),
            ts.to_string(),
        ),
    ];
    post(
        &ingress_url(config, args.url, "/v1/voximplant/events"),
        "application/json",
        body,
        headers,
    )
    .await
}

/// A Re:amaze signed request.
async fn send_reamaze(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    use relay_signing::reamaze;
    let secret = config
        .ingress
        .reamaze
        .as_ref()
        .context("no [ingress.reamaze] in the configuration")?
        .secret_env
        .require("ingress.reamaze.secret_env")?;
    let body = args.body.unwrap_or_else(|| serde_json::json!({"id": relay_core::ids::new_event_id(), "body": "hello from relayctl"}).to_string());
    let headers = vec![(
        reamaze::HEADER.to_owned(),
        reamaze::sign(secret.as_bytes(), body.as_bytes()),
    )];
    post(
        &ingress_url(config, args.url, &format!("/v1/reamaze/{}", args.channel)),
        "application/json",
        body,
        headers,
    )
    .await
}

/// An Acrobits web callback in the app's default form encoding.
async fn send_acrobits(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.ingress.acrobits.is_some(),
        "no [ingress.acrobits] in the configuration"
    );
    let password = args
        .password
        .context("give the account's password with --password or RELAY_ACROBITS_PASSWORD")?;
    let params = [
        ("username".to_owned(), args.username),
        ("password".to_owned(), password),
        ("targetNumber".to_owned(), args.target),
        ("callbackNumber".to_owned(), args.callback),
    ];
    post(
        &ingress_url(config, args.url, "/v1/acrobits/web-callback"),
        "application/x-www-form-urlencoded",
        form_urlencoded_body(&params),
        Vec::new(),
    )
    .await
}

#[cfg(test)]
mod summary_tests {
    use super::summary;

    #[test]
    fn an_answer_lists_its_event_ids_and_how_to_follow_them() {
        let text = summary(r#"{"accepted":1,"duplicates":0,"events":["0190-e1"]}"#).unwrap();
        assert!(text.starts_with("published 1 event(s), 0 already seen\n  event 0190-e1"));
        assert!(text.contains("event_id=0190-e1"), "{text}");
        let repeat = summary(r#"{"accepted":0,"duplicates":1,"events":[]}"#).unwrap();
        assert_eq!(repeat, "published 0 event(s), 1 already seen");
        assert_eq!(
            summary("<Response/>"),
            None,
            "XML answers are shown as they are"
        );
    }
}
