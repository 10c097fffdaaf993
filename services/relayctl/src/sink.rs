//! `relayctl sink`: a local receiver that verifies what delivery sends and prints it.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use clap::Args;
use relay_core::config::{Config, Signing};
use relay_signing::{reamaze, standard_webhooks};

#[derive(Args)]
pub(crate) struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9999")]
    listen: SocketAddr,
    /// Status to answer (e.g. 503 to watch retries, 400 to watch a dead letter).
    #[arg(long, default_value_t = 200)]
    status: u16,
}

/// The secrets the sink checks, by destination name.
struct Keys {
    webhooks: Vec<(String, standard_webhooks::Secret)>,
    reamaze: Vec<(String, Vec<u8>)>,
}

pub(crate) async fn run(config: &Config, args: SinkArgs) -> anyhow::Result<()> {
    let mut keys = Keys {
        webhooks: Vec::new(),
        reamaze: Vec::new(),
    };
    for (name, d) in &config.destinations {
        // From the environment or the destination's file, as delivery reads it: several
        // secrets separated by whitespace during a rotation, any one of which may verify.
        let text = match (&d.secret_env, &d.secret_file) {
            (Some(env), _) => env.value().map(str::to_owned),
            (None, Some(path)) => std::fs::read_to_string(path).ok(),
            (None, None) => None,
        };
        let Some(text) = text else {
            continue;
        };
        for secret in text.split_whitespace() {
            match d.signing {
                Signing::StandardWebhooks => {
                    if let Ok(key) = standard_webhooks::Secret::parse(secret) {
                        keys.webhooks.push((name.clone(), key));
                    }
                }
                Signing::ReamazeHmac => keys
                    .reamaze
                    .push((name.clone(), secret.as_bytes().to_vec())),
                _ => {}
            }
        }
    }
    let keys = std::sync::Arc::new(keys);
    let status = StatusCode::from_u16(args.status)?;
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let keys = keys.clone();
            async move {
                let verdict = verify(&keys, &headers, &body);
                let time = time::OffsetDateTime::now_utc();
                println!("{time} {method} {uri} → {} [{verdict}]", status.as_u16());
                if let Some(id) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
                    println!("  idempotency-key: {id}");
                }
                if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                    println!("  traceparent: {tp}");
                }
                println!("  {}", String::from_utf8_lossy(&body));
                status
            }
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "sink listening on http://{} (answering {status}); Ctrl-C to stop",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(relay_telemetry::shutdown::on_signal().cancelled_owned())
        .await?;
    Ok(())
}

fn verify(keys: &Keys, headers: &HeaderMap, body: &[u8]) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header(standard_webhooks::SIGNATURE_HEADER).is_some() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (name, key) in &keys.webhooks {
            let result = standard_webhooks::verify(
                key,
                header(standard_webhooks::ID_HEADER),
                header(standard_webhooks::TIMESTAMP_HEADER),
                header(standard_webhooks::SIGNATURE_HEADER),
                body,
                now,
                standard_webhooks::DEFAULT_TOLERANCE_SECS,
            );
            if result.is_ok() {
                return format!("standard-webhooks signature verified for destination `{name}`");
            }
        }
        return "standard-webhooks signature does NOT verify with any configured secret".to_owned();
    }
    if let Some(value) = header(reamaze::HEADER) {
        for (name, key) in &keys.reamaze {
            if reamaze::verify(key, body, Some(value)).is_ok() {
                return format!("X-Reamaze-Hmac-SHA256 verified for destination `{name}`");
            }
        }
        return "X-Reamaze-Hmac-SHA256 does NOT verify with any configured secret".to_owned();
    }
    "unsigned".to_owned()
}
