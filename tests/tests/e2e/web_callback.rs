//! A web callback that really calls back: the softphone's request → the origination request at
//! the provider's API (an HTTP server in the test) → the provider's callbacks → one helpdesk
//! thread. Plivo's legs are signed here exactly as Plivo signs them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use relay_core::config::{
    AcrobitsAccount, AcrobitsSource, AlertFormat, DestinationConfig, FailureAlertConfig,
    NotifierConfig, PlivoOrigination, Provider, Signing, VoximplantOrigination, WebCallbackConfig,
};
use relay_e2e::*;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);
const USER_NUMBER: &str = "+15559879876";
const TARGET: &str = "+15551231234";
const CALLER_ID: &str = "+15550001111";

/// A provider API answering each request with the next scripted (status, body).
struct Api {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
}

impl Api {
    async fn start(script: Vec<(u16, &'static str)>) -> Self {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (tx, received) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let script = script.clone();
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Received {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    let (status, body) = script.lock().unwrap().pop_front().unwrap_or((500, ""));
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}"),
            received,
        }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.received.recv())
            .await
            .expect("an origination request in time")
            .unwrap()
    }
}

/// Plivo and the call log on, an Acrobits account `alice`, origination through `provider`.
fn env(helpdesk: &Helpdesk, provider: Provider) -> TestEnv {
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.plivo();
    env.helpdesk_to(&helpdesk.url);
    let hash = relay_signing::password::hash_argon2("secretW0rd").unwrap();
    env.config.ingress.acrobits = Some(AcrobitsSource {
        accounts: vec![AcrobitsAccount {
            username: "alice".into(),
            password_hash_env: Some(env.secret("TEST_ALICE_HASH", &hash)),
            password_env: None,
        }],
        ..Default::default()
    });
    env.config.worker.web_callback = Some(WebCallbackConfig {
        provider,
        plivo: (provider == Provider::Plivo).then(|| PlivoOrigination {
            destination: "plivo-api".into(),
            auth_id: "MA123".into(),
            caller_id: CALLER_ID.into(),
            ring_timeout: 30,
        }),
        voximplant: (provider == Provider::Voximplant).then(|| VoximplantOrigination {
            destination: "voximplant-api".into(),
            rule_id: 4242,
            caller_id: CALLER_ID.into(),
        }),
        ..Default::default()
    });
    env
}

/// The `plivo-api` destination at `api`: Basic auth with auth id `MA123`.
fn plivo_api(env: &mut TestEnv, api: &Api) {
    let mut plivo_api = DestinationConfig::new(
        &api.url,
        Signing::Basic,
        Some(env.secret("TEST_PLIVO_API_TOKEN", "plivo-api-token")),
    );
    plivo_api.username = Some("MA123".into());
    env.config
        .destinations
        .insert("plivo-api".into(), plivo_api);
}

async fn request_callback(relay: &Relay) {
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/acrobits/web-callback?username=alice&password=secretW0rd&targetNumber=%2B15551231234&callbackNumber=%2B15559879876",
            relay.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

/// The path and query of `url` (the relay's public URL, as Plivo calls it).
fn path_and_query(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    assert!(url.as_str().starts_with(PUBLIC_BASE), "{url}");
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plivo_web_callback_calls_the_user_then_dials_the_target_in_one_thread() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut api = Api::start(vec![(
        201,
        r#"{"message": "call fired", "request_uuid": "9834029e-58b6-11e1-b8b7-a5bd0e4e126f", "api_id": "97ceeb52"}"#,
    )])
    .await;
    let mut env = env(&helpdesk, Provider::Plivo);
    plivo_api(&mut env, &api);
    let relay = Relay::start(&env.config).await;
    request_callback(&relay).await;

    // The Call API request: the user first, from the account's number, Basic auth.
    let call = api.next().await;
    assert_eq!(call.path, "/v1/Account/MA123/Call/");
    let basic = base64::engine::general_purpose::STANDARD.encode("MA123:plivo-api-token");
    assert_eq!(
        call.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(call.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["from"], CALLER_ID);
    assert_eq!(body["to"], USER_NUMBER);
    assert_eq!(body["answer_method"], "POST");
    let answer = body["answer_url"].as_str().unwrap();
    let session = url::Url::parse(answer)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "session")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(session.starts_with("callback:"), "{session}");

    // The user answers: Plivo asks the answer URL (signed over it, query included).
    let a_leg = uuid::Uuid::now_v7().to_string();
    let leg = |status: &'static str| {
        vec![
            ("CallUUID", a_leg.clone()),
            ("Direction", "outbound".to_owned()),
            ("From", CALLER_ID.to_owned()),
            ("To", USER_NUMBER.to_owned()),
            ("CallStatus", status.to_owned()),
        ]
    };
    let params = leg("in-progress");
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = plivo_callback(relay.addr, &path_and_query(answer), &pairs).await;
    assert_eq!(response.status(), 200);
    let xml = response.text().await.unwrap();
    assert!(
        xml.starts_with(&format!("<Response><Dial callerId=\"{CALLER_ID}\" callbackUrl=\"{PUBLIC_BASE}/v1/plivo/status?session=")),
        "{xml}"
    );
    assert!(
        xml.ends_with(&format!("<Number>{TARGET}</Number></Dial></Response>")),
        "{xml}"
    );

    // The target answers (the Dial's callback), then the call ends after 95 s.
    let status_path = format!(
        "/v1/plivo/status?session={}",
        form_urlencoded::byte_serialize(session.as_bytes()).collect::<String>()
    );
    let b_leg = uuid::Uuid::now_v7().to_string();
    let dial = [
        ("CallUUID", a_leg.as_str()),
        ("DialAction", "answer"),
        ("DialBLegTo", TARGET),
        ("DialBLegUUID", b_leg.as_str()),
    ];
    assert_eq!(
        plivo_callback(relay.addr, &status_path, &dial)
            .await
            .status(),
        200
    );
    let mut params = leg("completed");
    params.push(("Duration", "95".to_owned()));
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hangup = path_and_query(body["hangup_url"].as_str().unwrap());
    assert_eq!(
        plivo_callback(relay.addr, &hangup, &pairs).await.status(),
        200
    );

    helpdesk
        .wait_until(WAIT, "the call ended in the callback's thread", |h| {
            h.texts(&session)
                .iter()
                .any(|t| t.starts_with("Call ended"))
        })
        .await;
    let texts = helpdesk.texts(&session);
    assert_eq!(
        texts.first().map(String::as_str),
        Some("Callback requested by alice to +15551231234"),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("Call answered")),
        "{texts:?}"
    );
    assert_eq!(
        texts.last().map(String::as_str),
        Some("Call ended - duration: 0:01:35")
    );

    // The provider's call id is kept on the session.
    let mut redis = env.redis().await;
    let key = format!("{}origination:{session}", env.config.redis.key_prefix);
    let deadline = tokio::time::Instant::now() + WAIT;
    let kept: Value = loop {
        let text: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if let Some(text) = text {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "origination never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(kept["call_id"], "9834029e-58b6-11e1-b8b7-a5bd0e4e126f");
    assert_eq!(kept["provider"], "plivo");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voximplant_web_callback_starts_the_scenario_and_its_refusal_reaches_the_thread() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut ops = Sink::start(&[]).await;
    let mut api = Api::start(vec![(
        200,
        r#"{"error": {"code": 100, "msg": "Invalid rule_id"}}"#,
    )])
    .await;
    let mut env = env(&helpdesk, Provider::Voximplant);
    let key_file = json!({"result": {"account_id": 4242, "key_id": "key-web-callback", "private_key": VOX_PRIVATE}});
    let path =
        std::env::temp_dir().join(format!("relay-e2e-vox-{}", uuid::Uuid::now_v7().simple()));
    std::fs::write(&path, key_file.to_string()).unwrap();
    let mut vox_api = DestinationConfig::new(&api.url, Signing::VoximplantJwt, None);
    vox_api.secret_file = Some(path.clone());
    env.config
        .destinations
        .insert("voximplant-api".into(), vox_api);
    // The refusal raises a failure alert too.
    env.config.destinations.insert(
        "ops".into(),
        DestinationConfig::new(&ops.url, Signing::None, None),
    );
    env.config.worker.failure_alert = Some(FailureAlertConfig {
        notifiers: vec![NotifierConfig {
            destination: "ops".into(),
            format: AlertFormat::Webhook,
        }],
        group_wait: Duration::from_millis(200),
        ..Default::default()
    });
    let relay = Relay::start(&env.config).await;
    request_callback(&relay).await;

    let start = api.next().await;
    assert_eq!(start.path, "/platform_api/StartScenarios");
    let token = start
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Value>(
        token.as_bytes(),
        &jsonwebtoken::DecodingKey::from_rsa_pem(VOX_PUBLIC.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the token verifies with the account's public key")
    .claims;
    assert_eq!(claims["iss"], 4242);
    let form: Vec<(String, String)> = form_urlencoded::parse(&start.body).into_owned().collect();
    assert_eq!(form[0], ("rule_id".into(), "4242".into()));
    let custom: Value = serde_json::from_str(&form[1].1).unwrap();
    assert_eq!(custom["callback"], USER_NUMBER);
    assert_eq!(custom["target"], TARGET);
    assert_eq!(custom["caller_id"], CALLER_ID);
    assert_eq!(
        custom["events_url"],
        format!("{PUBLIC_BASE}/v1/voximplant/events")
    );
    let session = custom["session"].as_str().unwrap().to_owned();

    helpdesk
        .wait_until(WAIT, "the failure in the callback's thread", |h| {
            h.texts(&session).len() >= 2
        })
        .await;
    assert_eq!(
        helpdesk.texts(&session),
        [
            "Callback requested by alice to +15551231234",
            "Callback failed: Invalid rule_id"
        ]
    );
    let got = ops.next(WAIT).await.expect("a failure alert");
    let alert: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(alert["alertname"], "RelayDeliveryFailed");
    assert_eq!(alert["labels"]["destination"], "voximplant-api");
    assert_eq!(alert["facts"]["handler"], "web-callback");
    assert_eq!(alert["facts"]["event_type"], "com.acrobits.web_callback");
    assert!(
        alert["facts"]["response_excerpt"]
            .as_str()
            .unwrap()
            .contains("Invalid rule_id"),
        "{alert}"
    );
    relay.stop().await;
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_call_is_called_back_once_a_day_in_its_own_thread() {
    const CALLER: &str = "+15105559999";
    const CHANNEL: &str = "+15550009999";
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut api = Api::start(vec![(
        201,
        r#"{"message": "call fired", "request_uuid": "cb-1", "api_id": "a1"}"#,
    )])
    .await;
    let mut env = env(&helpdesk, Provider::Plivo);
    env.config.worker.call_log.as_mut().unwrap().missed_grace = Duration::from_millis(300);
    env.config
        .worker
        .web_callback
        .as_mut()
        .unwrap()
        .missed_calls = Some(relay_core::config::MissedCallbacks {
        channels: vec![CHANNEL.into()],
        hours: "00:00-24:00".into(),
        time_zone: "UTC".into(),
        per_caller_per_day: 1,
        user: "missed-call".into(),
        first_number: None,
    });
    plivo_api(&mut env, &api);
    let relay = Relay::start(&env.config).await;

    // Two calls from the same caller, each answered by the application and hung up unanswered.
    let mut threads = Vec::new();
    for _ in 0..2 {
        let call = uuid::Uuid::now_v7().to_string();
        let leg = |extra: &[(&'static str, &'static str)]| {
            let mut p = vec![
                ("CallUUID", call.clone()),
                ("From", CALLER.to_owned()),
                ("To", CHANNEL.to_owned()),
                ("Direction", "inbound".to_owned()),
            ];
            p.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            p
        };
        for (route, extra) in [
            ("/v1/plivo/answer", vec![("CallStatus", "in-progress")]),
            (
                "/v1/plivo/hangup",
                vec![("CallStatus", "completed"), ("Duration", "20")],
            ),
        ] {
            let params = leg(&extra);
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(
                plivo_callback(relay.addr, route, &pairs).await.status(),
                200
            );
        }
        let thread = format!("plivo:{call}");
        helpdesk
            .wait_until(WAIT, "the missed call", |h| {
                h.texts(&thread).iter().any(|t| t == "Missed call")
            })
            .await;
        threads.push(thread);
    }

    // The first is called back: the team's line first, then the caller, logged in its thread.
    let call = api.next().await;
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["to"], CHANNEL, "the team's side is called first");
    let answer = url::Url::parse(body["answer_url"].as_str().unwrap()).unwrap();
    let target = answer
        .query_pairs()
        .find(|(k, _)| k == "target")
        .map(|(_, v)| v.into_owned());
    assert_eq!(target.as_deref(), Some(CALLER), "then the caller");
    helpdesk
        .wait_until(WAIT, "the callback in the missed call's thread", |h| {
            h.texts(&threads[0])
                .iter()
                .any(|t| t == "Callback requested by missed-call to +15105559999")
        })
        .await;

    // The second missed call the same day is not called back (per_caller_per_day = 1): its
    // decision is recorded as capped, and no second request reached the API.
    let mut redis = env.redis().await;
    let key = format!(
        "{}missed-callback:{}",
        env.config.redis.key_prefix, threads[1]
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let decision = loop {
        let text: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if let Some(text) = text {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second missed call was never decided"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(decision, "capped");
    assert!(api.received.try_recv().is_err(), "no second origination");
    assert!(
        !helpdesk
            .texts(&threads[1])
            .iter()
            .any(|t| t.starts_with("Callback requested")),
        "{:?}",
        helpdesk.texts(&threads[1])
    );
    relay.stop().await;
}

/// A web callback to `target`; the status ingress answered.
async fn callback_to(relay: &Relay, target: &str) -> u16 {
    let target = form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>();
    reqwest::Client::new()
        .get(format!(
            "http://{}/v1/acrobits/web-callback?username=alice&password=secretW0rd&targetNumber={target}&callbackNumber=%2B15559879876",
            relay.addr
        ))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Requests callbacks to fresh targets until one is accepted (a refusal counts nowhere).
async fn until_accepted(relay: &Relay, what: &str) {
    // Never the same target twice: a repeat within the duplicate window is answered with
    // success and originates nothing.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2000);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status = callback_to(relay, &format!("+1555123{n:04}")).await;
        if status == 200 {
            return;
        }
        assert_eq!(status, 429, "{what}: only the in-progress cap refuses");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_stops_counting_as_in_progress_when_its_call_ends_or_fails() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut api = Api::start(vec![
        (
            201,
            r#"{"message": "call fired", "request_uuid": "cb-slot-1", "api_id": "a1"}"#,
        ),
        (400, r#"{"error": "invalid number"}"#),
        (
            201,
            r#"{"message": "call fired", "request_uuid": "cb-slot-3", "api_id": "a3"}"#,
        ),
    ])
    .await;
    let mut env = env(&helpdesk, Provider::Plivo);
    plivo_api(&mut env, &api);
    let acrobits = env.config.ingress.acrobits.as_mut().unwrap();
    acrobits.max_concurrent_per_account = 1;
    let relay = Relay::start(&env.config).await;

    // One callback in progress: the next is refused.
    assert_eq!(callback_to(&relay, "+15551231001").await, 200);
    let call = api.next().await;
    assert_eq!(callback_to(&relay, "+15551231002").await, 429);

    // Its call ends (Plivo's hangup of the user's leg): the slot is free again.
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    let hangup = path_and_query(body["hangup_url"].as_str().unwrap());
    let a_leg = uuid::Uuid::now_v7().to_string();
    let pairs = [
        ("CallUUID", a_leg.as_str()),
        ("Direction", "outbound"),
        ("From", CALLER_ID),
        ("To", USER_NUMBER),
        ("CallStatus", "no-answer"),
    ];
    assert_eq!(
        plivo_callback(relay.addr, &hangup, &pairs).await.status(),
        200
    );
    until_accepted(&relay, "after the call ended").await;

    // That one's origination fails (the API answers 400): its slot comes back too.
    let _refused = api.next().await;
    until_accepted(&relay, "after the origination failed").await;
    let _placed = api.next().await;
    relay.stop().await;
}
