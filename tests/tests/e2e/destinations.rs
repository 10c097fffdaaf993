//! Destinations as an operator lives with them: a secret rotated in its file while delivery
//! runs, two secrets active at once, the `voximplant-jwt` profile (its token and its reading of
//! a 200 that says "error"), and a destination that answered 410 Gone staying off until it is
//! enabled again. The destinations are HTTP servers in the test; each check that a signature or
//! token verifies is made independently of the relay's own signing code.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{KeyInit, Mac};
use relay_amqp::headers;
use relay_core::config::{DestinationConfig, Signing};
use relay_e2e::*;
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(15);
const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_bm90IHRoZSBvdGhlciBvbmUgYXQgYWxs";

/// One scripted answer.
struct Answer {
    status: u16,
    body: &'static str,
    /// Held until the test calls [`Peer::release`].
    held: bool,
}

fn answer(status: u16, body: &'static str) -> Answer {
    Answer {
        status,
        body,
        held: false,
    }
}

/// A destination answering a script (then 200 `ok`), reporting every request.
struct Peer {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
    release: watch::Sender<bool>,
    count: Arc<Mutex<usize>>,
}

impl Peer {
    async fn start(script: Vec<Answer>) -> Self {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (tx, received) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        let count = Arc::new(Mutex::new(0));
        let app = axum::Router::new().fallback({
            let count = count.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let script = script.clone();
                let tx = tx.clone();
                let mut released = released.clone();
                let count = count.clone();
                async move {
                    *count.lock().unwrap() += 1;
                    let _ = tx.send(Received {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    let next = script.lock().unwrap().pop_front();
                    let next = next.unwrap_or(answer(200, "ok"));
                    if next.held {
                        let _ = released.wait_for(|r| *r).await;
                    }
                    (StatusCode::from_u16(next.status).unwrap(), next.body)
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/hook"),
            received,
            release,
            count,
        }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.received.recv())
            .await
            .expect("a request in time")
            .expect("the peer runs")
    }

    fn release(&self) {
        self.release.send_replace(true);
    }

    fn count(&self) -> usize {
        *self.count.lock().unwrap()
    }
}

/// Whether `request` carries a Standard Webhooks signature made with `secret`, recomputed from
/// the specification (HMAC-SHA256 over `id.timestamp.body`, base64, `v1,` prefix, several
/// space-separated).
fn signed_with(secret: &str, request: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = request.header("webhook-id").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    request
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

fn temp_file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "relay-e2e-secret-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_changed_between_two_attempts_signs_the_second_with_the_new_secret_only() {
    let mut peer = Peer::start(vec![Answer {
        status: 503,
        body: "busy",
        held: true,
    }])
    .await;
    let path = temp_file(OLD);
    let mut env = TestEnv::new();
    env.config.delivery.secret_check_interval = Duration::from_millis(50);
    let mut d = DestinationConfig::new(&peer.url, Signing::StandardWebhooks, None);
    d.secret_file = Some(path.clone());
    env.config
        .destinations
        .insert("rotation-file".to_owned(), d);
    let job = jobs_for("rotation-file", 1).remove(0);
    publish_jobs(&env, std::slice::from_ref(&job)).await;
    let delivery = start_delivery(&env.config).await;

    let first = peer.next().await;
    assert!(signed_with(OLD, &first) && !signed_with(NEW, &first));
    let agent = first.header("user-agent").unwrap();
    assert_eq!(agent, format!("relay/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(
        first.header("idempotency-key"),
        Some(job.idempotency_key.as_str())
    );

    // Rotated while the first attempt is still in flight; Kubernetes swaps the whole file.
    std::fs::write(&path, format!("{NEW}\n")).unwrap();
    let reloaded =
        r#"relay_destination_secret_reloads_total{destination="rotation-file",result="reloaded"}"#;
    until("the new secret file is loaded", || metric(reloaded) >= 1.0).await;
    peer.release();

    let second = peer.next().await;
    assert_eq!(second.header("webhook-id"), first.header("webhook-id"));
    assert!(
        signed_with(NEW, &second),
        "the second attempt verifies with the new secret"
    );
    assert!(!signed_with(OLD, &second), "and not with the old one");
    assert_eq!(
        env.wait_for_record(&job.id, "delivered").await["attempts"],
        2
    );
    delivery.stop().await;
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_active_standard_webhooks_secrets_each_verify_the_same_request() {
    let mut peer = Peer::start(Vec::new()).await;
    let mut env = TestEnv::new();
    let secret = env.secret("TEST_ROTATING_SECRET", &format!("{NEW} {OLD}"));
    env.config.destinations.insert(
        "rotation-env".to_owned(),
        DestinationConfig::new(&peer.url, Signing::StandardWebhooks, Some(secret)),
    );
    let job = jobs_for("rotation-env", 1).remove(0);
    publish_jobs(&env, std::slice::from_ref(&job)).await;
    let delivery = start_delivery(&env.config).await;

    let request = peer.next().await;
    assert!(
        signed_with(NEW, &request),
        "a receiver that knows the new secret"
    );
    assert!(
        signed_with(OLD, &request),
        "a receiver still on the old one"
    );
    assert!(!signed_with(
        "whsec_c29tZXRoaW5nIGVsc2UgZW50aXJlbHk=",
        &request
    ));
    env.wait_for_record(&job.id, "delivered").await;
    delivery.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voximplant_jwt_requests_carry_a_verifiable_token_and_a_200_with_an_error_is_a_failure() {
    let ok = r#"{"result": 1, "media_session_access_url": "https://media.example/session/1"}"#;
    let refused = r#"{"error": {"code": 100, "msg": "Invalid rule_id"}}"#;
    let mut peer = Peer::start(vec![answer(200, ok), answer(200, refused)]).await;
    let key_file = serde_json::json!({
        "result": {
            "account_email": "ops@example.com",
            "account_id": 4242,
            "key_id": "key-e2e",
            "private_key": VOX_PRIVATE,
        }
    });
    let path = temp_file(&key_file.to_string());
    let mut env = TestEnv::new();
    let mut d = DestinationConfig::new(&peer.url, Signing::VoximplantJwt, None);
    d.secret_file = Some(path.clone());
    env.config.destinations.insert("vox-api".to_owned(), d);

    // Outcome events, as a handler would bind to them.
    let channel = env.channel().await;
    let outcomes = env.outcome_queue(&channel).await;

    let mut jobs = jobs_for("vox-api", 2);
    for job in &mut jobs {
        job.report_outcome = true;
    }
    // One at a time, so the script's answers go to the jobs in order.
    publish_jobs(&env, &jobs[..1]).await;
    let delivery = start_delivery(&env.config).await;
    let first = peer.next().await;
    env.wait_for_record(&jobs[0].id, "delivered").await;
    publish_jobs(&env, &jobs[1..]).await;
    let _second = peer.next().await;

    let token = first
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("a bearer token");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is a number (the account id), as Voximplant's SDKs send it; checked below.
    validation.set_required_spec_claims(&["exp"]);
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        token.as_bytes(),
        &jsonwebtoken::DecodingKey::from_rsa_pem(VOX_PUBLIC.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the token verifies with the account's public key");
    assert_eq!(decoded.header.kid.as_deref(), Some("key-e2e"));
    let claims = &decoded.claims;
    assert_eq!(
        claims["iss"], 4242,
        "the account id, as a number like Voximplant's SDKs send"
    );
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 3600, "{lifetime}");

    // The 200 with an error is parked, not retried, and reported as failed.
    let dead = env
        .next_message(&channel, "relay.dead.deliveries", WAIT)
        .await
        .expect("the refused job is parked");
    let table = dead.delivery.properties.headers().as_ref();
    assert_eq!(
        headers::get_str(table, headers::REASON).as_deref(),
        Some("refused")
    );
    assert_eq!(headers::get_int(table, headers::STATUS), Some(200));
    env.wait_for_record(&jobs[1].id, "dead").await;

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = env
            .next_message(&channel, &outcomes, WAIT)
            .await
            .expect("an outcome event");
        let event: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
        seen.push(event["data"].clone());
    }
    let succeeded = seen.iter().find(|d| d["succeeded"] == true).unwrap();
    assert_eq!(succeeded["job_id"], jobs[0].id.as_str());
    assert!(
        succeeded["response_excerpt"]
            .as_str()
            .unwrap()
            .contains("media_session_access_url"),
        "the provider's answer reaches the handler: {succeeded}"
    );
    let failed = seen.iter().find(|d| d["succeeded"] == false).unwrap();
    assert_eq!(failed["job_id"], jobs[1].id.as_str());
    assert_eq!(failed["reason"], "refused");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("Invalid rule_id"),
        "{failed}"
    );
    assert_eq!(peer.count(), 2, "never retried");
    delivery.stop().await;
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_answered_410_stays_off_until_enabled_and_its_jobs_are_parked() {
    let mut peer = Peer::start(vec![answer(410, "gone")]).await;
    let mut env = TestEnv::new();
    env.config.delivery.secret_check_interval = Duration::from_millis(50);
    env.config.destinations.insert(
        "gone-hooks".to_owned(),
        DestinationConfig::new(&peer.url, Signing::None, None),
    );
    let jobs = jobs_for("gone-hooks", 3);
    publish_jobs(&env, &jobs[..1]).await;
    let delivery = start_delivery(&env.config).await;
    peer.next().await;
    let channel = env.channel().await;
    let dead = env
        .next_message(&channel, "relay.dead.deliveries", WAIT)
        .await
        .expect("the 410 job is parked");
    let table = dead.delivery.properties.headers().as_ref();
    assert_eq!(
        headers::get_str(table, headers::REASON).as_deref(),
        Some("gone")
    );
    let disabled = r#"relay_destination_disabled{destination="gone-hooks"}"#;
    assert_eq!(metric(disabled), 1.0);

    // Recorded for every delivery process, through Redis.
    let stop = tokio_util::sync::CancellationToken::new();
    let store = relay_store::Store::start(
        &env.config.redis,
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    assert!(store.wait_connected(WAIT).await);
    let off = store.disabled_destinations().await.unwrap();
    assert_eq!(off["gone-hooks"].reason, "status 410");

    // The next job is parked without a request.
    publish_jobs(&env, &jobs[1..2]).await;
    let parked = env
        .next_message(&channel, "relay.dead.deliveries", WAIT)
        .await
        .expect("a job for the disabled destination is parked");
    let table = parked.delivery.properties.headers().as_ref();
    assert_eq!(
        headers::get_str(table, headers::REASON).as_deref(),
        Some("destination_disabled")
    );
    assert_eq!(peer.count(), 1, "nothing sent while disabled");

    let (ok, listed) = env.relayctl(&["destination", "list"]).await;
    assert!(ok, "{listed}");
    assert!(
        listed.contains("DISABLED since") && listed.contains("(status 410)"),
        "{listed}"
    );
    let (ok, enabled) = env.relayctl(&["destination", "enable", "gone-hooks"]).await;
    assert!(ok && enabled.contains("gone-hooks enabled"), "{enabled}");
    assert!(store.disabled_destinations().await.unwrap().is_empty());
    until("delivery sees the destination enabled", || {
        metric(disabled) == 0.0
    })
    .await;
    publish_jobs(&env, &jobs[2..]).await;
    peer.next().await;
    env.wait_for_record(&jobs[2].id, "delivered").await;
    assert_eq!(peer.count(), 2);
    stop.cancel();
    delivery.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_delivery_read_its_secret_files_at_once() {
    let peer = Peer::start(Vec::new()).await;
    let path = temp_file(OLD);
    let mut env = TestEnv::new();
    // Far longer than the test: only the signal can make it read the file again.
    env.config.delivery.secret_check_interval = Duration::from_secs(3600);
    let mut d = DestinationConfig::new(&peer.url, Signing::StandardWebhooks, None);
    d.secret_file = Some(path.clone());
    env.config.destinations.insert("hup-hooks".to_owned(), d);
    let delivery = env.spawn("relay-delivery").await;
    let series =
        r#"relay_destination_secret_reloads_total{destination="hup-hooks",result="reloaded"}"#;
    let reloads = || delivery.metric(series);
    assert_eq!(reloads().await, 0.0);
    std::fs::write(&path, format!("{NEW} {OLD}\n")).unwrap();
    delivery.hangup();
    let deadline = tokio::time::Instant::now() + WAIT;
    while reloads().await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP never reloaded the secrets"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(&delivery.log).unwrap();
    assert!(log.contains("SIGHUP"), "the reload is logged");
    assert!(!log.contains("MfKQ9r8"), "never the secret");
    delivery.terminate();
    std::fs::remove_file(&path).unwrap();
}
