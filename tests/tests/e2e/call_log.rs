//! The call log end to end: signed provider callbacks in, the exact Re:amaze JSON with a valid
//! `X-Reamaze-Hmac-SHA256` out, one ordered thread per call.

use std::time::Duration;

use relay_core::config::AgentConfig;
use relay_e2e::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

const WAIT: Duration = Duration::from_secs(20);
const CUSTOMER: &str = "15105559999";
const CHANNEL: &str = "15550009999";
const AGENT: &str = "15550002000";

/// An environment with Plivo, the scenario events route and the call log to `helpdesk`;
/// `sequential` makes the call log take one event at a time, so that a later event proves the
/// earlier ones were handled.
fn env(helpdesk: &Helpdesk, sequential: bool) -> TestEnv {
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.plivo();
    env.voximplant_events();
    env.helpdesk_to(&helpdesk.url);
    let log = env.config.worker.call_log.as_mut().unwrap();
    log.default_region = Some("US".into());
    // An unanswered ending waits this long for a late agent answer before it is missed.
    log.missed_grace = Duration::from_secs(1);
    log.contacts
        .insert(format!("+{CUSTOMER}"), "John Doe".into());
    log.agents.insert(
        format!("+{AGENT}"),
        AgentConfig {
            name: "Alice".into(),
            email: Some("alice@example.com".into()),
        },
    );
    if sequential {
        log.prefetch = Some(1);
    }
    env
}

/// A call id of its own for each test run (the ledger lives in the test's key prefix, but
/// ingress dedup marks and ids are clearer unique).
fn call_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn send(addr: std::net::SocketAddr, route: &str, params: &[(&str, &str)]) {
    let response = plivo_callback(addr, route, params).await;
    assert_eq!(response.status(), 200, "{route} {params:?}");
}

fn inbound<'a>(call: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![
        ("CallUUID", call),
        ("From", CUSTOMER),
        ("To", CHANNEL),
        ("Direction", "inbound"),
    ];
    params.extend_from_slice(extra);
    params
}

/// The caller's leg answered by the application (`Call started`).
async fn app_answers(addr: std::net::SocketAddr, call: &str) {
    send(
        addr,
        "/v1/plivo/answer",
        &inbound(call, &[("CallStatus", "in-progress")]),
    )
    .await;
}

/// Alice's agent leg answers (Dial callbackUrl), then the caller hangs up.
async fn agent_answers_then_hangup(addr: std::net::SocketAddr, call: &str) {
    send(
        addr,
        "/v1/plivo/status",
        &inbound(
            call,
            &[
                ("DialAction", "answer"),
                ("DialALegUUID", call),
                ("DialBLegUUID", "agent"),
                ("DialBLegTo", AGENT),
            ],
        ),
    )
    .await;
    send(
        addr,
        "/v1/plivo/hangup",
        &inbound(call, &[("CallStatus", "completed")]),
    )
    .await;
}

fn plivo_time(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap()
}

fn seed_time(text: &str) -> OffsetDateTime {
    let iso = format!("{}Z", text.trim_end_matches("+0000"));
    OffsetDateTime::parse(&iso, &Rfc3339).unwrap()
}

fn assert_unique_ids(helpdesk: &Helpdesk) {
    let mut ids: Vec<String> = helpdesk
        .accepted()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "a message reached the helpdesk twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_inbound_call_becomes_one_thread_in_the_helpdesk() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let env = env(&helpdesk, false);
    let relay = Relay::start(&env.config).await;
    let a = call_id();
    let thread = format!("plivo:{a}");

    send(
        relay.addr,
        "/v1/plivo/answer",
        &inbound(&a, &[("CallStatus", "in-progress"), ("Event", "StartApp")]),
    )
    .await;
    send(
        relay.addr,
        "/v1/plivo/status",
        &inbound(
            &a,
            &[
                ("CallStatus", "in-progress"),
                ("Event", "DialAnswer"),
                ("DialAction", "answer"),
                ("DialBLegStatus", "answer"),
                ("DialALegUUID", &a),
                ("DialBLegUUID", "agent-leg-1"),
                ("DialBLegTo", AGENT),
            ],
        ),
    )
    .await;
    helpdesk.wait_for_thread(&thread, 2, WAIT).await;
    let answered_at = seed_time(helpdesk.thread(&thread)[1]["created_at"].as_str().unwrap());
    let end = plivo_time(answered_at + Duration::from_secs(30 * 60 + 5));
    send(
        relay.addr,
        "/v1/plivo/hangup",
        &inbound(
            &a,
            &[
                ("CallStatus", "completed"),
                ("Duration", "1900"),
                ("EndTime", &end),
                ("HangupCauseName", "Normal Hangup"),
            ],
        ),
    )
    .await;
    helpdesk.wait_for_thread(&thread, 3, WAIT).await;

    assert_eq!(
        helpdesk.texts(&thread),
        [
            "Call started - from +15105559999",
            "Call answered by Alice",
            "Call ended - duration: 0:30:05"
        ]
    );
    let ended = &helpdesk.thread(&thread)[2];
    assert_eq!(
        ended,
        &json!({
            "id": ended["id"],
            "direction": "inbound",
            "to": {"name": "Alice", "phone": "+15550009999"},
            "from": {"name": "John Doe", "phone": "+15105559999"},
            "body": "Call ended - duration: 0:30:05",
            "created_at": format!("{}+0000", end.replace(' ', "T")),
            "thread_id": thread,
            "assignee": {"email": "alice@example.com"},
        })
    );
    assert_eq!(helpdesk.bad_signatures(), 0, "every request verified");
    assert_unique_ids(&helpdesk);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_and_a_missed_call_with_its_agent_legs() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let env = env(&helpdesk, true);
    let relay = Relay::start(&env.config).await;

    // Outbound (API call): the customer is `To`, the channel `From`; Duration is talk time.
    let out = call_id();
    let outbound = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(String, String)> = vec![
            ("CallUUID".into(), out.clone()),
            ("ALegUUID".into(), out.clone()),
            ("From".into(), CHANNEL.into()),
            ("To".into(), CUSTOMER.into()),
            ("Direction".into(), "outbound".into()),
        ];
        p.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        p
    };
    for (route, extra) in [
        ("/v1/plivo/status", vec![("CallStatus", "ringing")]),
        ("/v1/plivo/answer", vec![("CallStatus", "in-progress")]),
        (
            "/v1/plivo/hangup",
            vec![("CallStatus", "completed"), ("Duration", "65")],
        ),
    ] {
        let params = outbound(&extra);
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        send(relay.addr, route, &refs).await;
    }
    let thread = format!("plivo:{out}");
    helpdesk.wait_for_thread(&thread, 3, WAIT).await;
    assert_eq!(
        helpdesk.texts(&thread),
        [
            "Call started - to +15105559999",
            "Call answered by John Doe",
            "Call ended - duration: 0:01:05"
        ]
    );
    let first = &helpdesk.thread(&thread)[0];
    assert_eq!(first["direction"], "outbound");
    assert_eq!(
        first["to"],
        json!({"name": "John Doe", "phone": "+15105559999"})
    );
    assert_eq!(first["from"], json!({"phone": "+15550009999"}));

    // Missed: two agents rang and neither answered; the caller hung up. Then a late ringing
    // of an agent leg, and a recording as a barrier (events are handled one at a time here).
    let missed = call_id();
    send(
        relay.addr,
        "/v1/plivo/answer",
        &inbound(&missed, &[("CallStatus", "in-progress")]),
    )
    .await;
    for leg in ["agent-1", "agent-2"] {
        send(
            relay.addr,
            "/v1/plivo/status",
            &inbound(
                &missed,
                &[
                    ("Event", "DialHangup"),
                    ("DialAction", "hangup"),
                    ("DialALegUUID", &missed),
                    ("DialBLegUUID", leg),
                    ("DialBLegStatus", "hangup"),
                ],
            ),
        )
        .await;
    }
    send(
        relay.addr,
        "/v1/plivo/hangup",
        &inbound(&missed, &[("CallStatus", "completed"), ("Duration", "40")]),
    )
    .await;
    send(
        relay.addr,
        "/v1/plivo/status",
        &[
            ("CallUUID", "agent-3"),
            ("ALegUUID", &missed),
            ("Direction", "outbound"),
            ("CallStatus", "ringing"),
        ],
    )
    .await;
    send(
        relay.addr,
        "/v1/plivo/status",
        &[
            ("CallUUID", &missed),
            ("RecordUrl", "https://media.example.com/r1.mp3"),
            ("RecordingID", "r1"),
        ],
    )
    .await;
    let thread = format!("plivo:{missed}");
    helpdesk.wait_for_thread(&thread, 3, WAIT).await;
    // The recording may come before or after "Missed call" (which waits out its grace
    // period for a late answer); the start comes first and the miss exactly once.
    let texts = helpdesk.texts(&thread);
    assert_eq!(texts[0], "Call started - from +15105559999");
    let mut rest = texts[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, ["Missed call", "Recording available"]);
    let recording = helpdesk
        .thread(&thread)
        .into_iter()
        .find(|m| m["body"] == "Recording available")
        .unwrap();
    assert_eq!(
        recording["attachments"],
        json!(["https://media.example.com/r1.mp3"])
    );
    assert_unique_ids(&helpdesk);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_and_repeated_callbacks_never_move_a_thread_backwards() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let env = env(&helpdesk, true);
    let relay = Relay::start(&env.config).await;
    let a = call_id();
    let thread = format!("plivo:{a}");
    let outbound = |status: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(String, String)> = vec![
            ("CallUUID".into(), a.clone()),
            ("ALegUUID".into(), a.clone()),
            ("From".into(), CHANNEL.into()),
            ("To".into(), CUSTOMER.into()),
            ("Direction".into(), "outbound".into()),
            ("CallStatus".into(), status.into()),
        ];
        p.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        p
    };
    let post = |route: &'static str, params: Vec<(String, String)>| {
        let addr = relay.addr;
        async move {
            let refs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            send(addr, route, &refs).await;
        }
    };
    // The hangup first (three times, as Plivo retries), then the answer, then a late ringing.
    let hangup = outbound(
        "completed",
        &[("Duration", "65"), ("AnswerTime", "2026-12-04 10:00:00")],
    );
    for _ in 0..3 {
        post("/v1/plivo/hangup", hangup.clone()).await;
    }
    post("/v1/plivo/answer", outbound("in-progress", &[])).await;
    post("/v1/plivo/status", outbound("ringing", &[])).await;
    post(
        "/v1/plivo/status",
        vec![
            ("CallUUID".into(), a.clone()),
            (
                "RecordUrl".into(),
                "https://media.example.com/r2.mp3".into(),
            ),
            ("RecordingID".into(), "r2".into()),
        ],
    )
    .await;
    helpdesk.wait_for_thread(&thread, 4, WAIT).await;
    assert_eq!(
        helpdesk.texts(&thread),
        [
            "Call started - to +15105559999",
            "Call answered by John Doe",
            "Call ended - duration: 0:01:05",
            "Recording available"
        ]
    );
    assert_unique_ids(&helpdesk);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_events_and_web_callbacks_make_threads_too() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut env = env(&helpdesk, false);
    env.config.ingress.acrobits = Some(relay_core::config::AcrobitsSource {
        accounts: vec![relay_core::config::AcrobitsAccount {
            username: "alice".into(),
            password_hash_env: Some(env.secret(
                "TEST_ALICE_HASH",
                &relay_signing::password::hash_argon2("secretW0rd").unwrap(),
            )),
            password_env: None,
        }],
        ..Default::default()
    });
    let relay = Relay::start(&env.config).await;

    let session = uuid::Uuid::now_v7().simple().to_string();
    for (kind, extra) in [
        ("started", json!({"time": "2026-12-04T10:00:00Z"})),
        (
            "answered",
            json!({"agent": "+15550002000", "time": "2026-12-04T10:00:07Z"}),
        ),
        (
            "ended",
            json!({"duration": 95, "time": "2026-12-04T10:01:42Z"}),
        ),
    ] {
        let mut body = json!({"kind": kind, "session_id": session, "direction": "inbound",
                              "from": "+15105559999", "to": "+15550009999"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = voximplant_event(relay.addr, &body).await;
        assert_eq!(response.status(), 200);
    }
    let thread = format!("voximplant:{session}");
    helpdesk.wait_for_thread(&thread, 3, WAIT).await;
    assert_eq!(
        helpdesk.texts(&thread),
        [
            "Call started - from +15105559999",
            "Call answered by Alice",
            "Call ended - duration: 0:01:35"
        ]
    );
    assert_eq!(
        helpdesk.thread(&thread)[2]["created_at"],
        "2026-12-04T10:01:42+0000",
        "the provider's time, not the relay's"
    );

    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/acrobits/web-callback?username=alice&password=secretW0rd&targetNumber=%2B15551231234&callbackNumber=%2B15559879876",
            relay.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    helpdesk
        .wait_until(WAIT, "the callback request", |h| {
            h.accepted()
                .iter()
                .any(|m| m["body"] == "Callback requested by alice to +15551231234")
        })
        .await;
    let request: Value = helpdesk
        .accepted()
        .into_iter()
        .find(|m| m["body"] == "Callback requested by alice to +15551231234")
        .unwrap();
    assert!(
        request["thread_id"]
            .as_str()
            .unwrap()
            .starts_with("callback:")
    );
    assert_eq!(request["direction"], "outbound");
    assert_eq!(request["to"]["phone"], "+15551231234");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_thread_waits_alone_while_other_sessions_flow() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut env = env(&helpdesk, false);
    // Retried for as long as the test holds the thread.
    env.config
        .destinations
        .get_mut("helpdesk")
        .unwrap()
        .max_attempts = 10_000;
    let relay = Relay::start(&env.config).await;
    let (a, b) = (call_id(), call_id());
    let (thread_a, thread_b) = (format!("plivo:{a}"), format!("plivo:{b}"));
    helpdesk.fail(&thread_a);

    for call in [&a, &b] {
        app_answers(relay.addr, call).await;
        agent_answers_then_hangup(relay.addr, call).await;
    }
    // B's whole thread arrives while A's first message keeps failing.
    helpdesk.wait_for_thread(&thread_b, 3, WAIT).await;
    helpdesk
        .wait_until(WAIT, "A's first message retried", |h| {
            h.refused(&thread_a).len() >= 2
        })
        .await;
    assert!(helpdesk.thread(&thread_a).is_empty());
    let tried: Vec<Value> = helpdesk.refused(&thread_a);
    assert!(
        tried
            .iter()
            .all(|m| m["body"] == "Call started - from +15105559999"),
        "only A's first message is in flight: {tried:#?}"
    );

    helpdesk.release(&thread_a);
    helpdesk.wait_for_thread(&thread_a, 3, WAIT).await;
    let texts = helpdesk.texts(&thread_a);
    assert_eq!(
        texts[..2],
        ["Call started - from +15105559999", "Call answered by Alice"]
    );
    assert!(texts[2].starts_with("Call ended - duration: "), "{texts:?}");
    assert_unique_ids(&helpdesk);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_timer_closes_a_silent_call_after_a_worker_restart() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut env = env(&helpdesk, false);
    env.config.worker.call_log.as_mut().unwrap().end_after = Duration::from_secs(2);
    let relay = Relay::start(&env.config).await;
    let a = call_id();
    let thread = format!("plivo:{a}");
    send(
        relay.addr,
        "/v1/plivo/answer",
        &inbound(&a, &[("CallStatus", "in-progress")]),
    )
    .await;
    helpdesk.wait_for_thread(&thread, 1, WAIT).await;

    // The worker goes away; the timer fires into its queue meanwhile and waits there.
    relay.worker.stop().await;
    let channel = env.channel().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.queue_len(&channel, "relay.handler.call-log").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timer never fired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker = start_worker(&env.config).await;
    helpdesk.wait_for_thread(&thread, 2, WAIT).await;
    assert_eq!(
        helpdesk.texts(&thread),
        [
            "Call started - from +15105559999",
            "Call ended (no hangup received)"
        ]
    );
    worker.stop().await;
    relay.delivery.stop().await;
    relay.ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_session_loses_nothing_and_repeats_nothing() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let env = env(&helpdesk, false);
    let (ingress, addr) = start_ingress(&env.config).await;
    let delivery = start_delivery(&env.config).await;
    ingress.wait_ready().await;
    let worker = env.spawn("relay-worker").await;

    let calls: Vec<String> = (0..6).map(|_| call_id()).collect();
    for call in &calls {
        app_answers(addr, call).await;
    }
    // Everything else of every call, then kill -9 while the worker is busy with it.
    for call in &calls {
        agent_answers_then_hangup(addr, call).await;
    }
    worker.kill();
    let worker = env.spawn("relay-worker").await;

    for call in &calls {
        let thread = format!("plivo:{call}");
        helpdesk.wait_for_thread(&thread, 3, WAIT).await;
        let texts = helpdesk.texts(&thread);
        assert_eq!(texts[0], "Call started - from +15105559999");
        assert_eq!(texts[1], "Call answered by Alice");
        assert!(texts[2].starts_with("Call ended - duration: "), "{texts:?}");
    }
    assert_unique_ids(&helpdesk);
    worker.terminate();
    delivery.stop().await;
    ingress.stop().await;
}

/// What the operator console reads: the call found by its customer's number in another format,
/// its timeline with the events received, and each message delivered with its job id, whose
/// delivery record exists and is listed under the helpdesk's deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_finds_a_call_by_number_with_its_timeline_and_deliveries() {
    use relay_store::{DeliveryQuery, DeliveryStatus, Store};
    use relay_worker::handlers::call_log::{EventLabel, Happened, MessageStatus, State, lookup};

    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let env = env(&helpdesk, true);
    let relay = Relay::start(&env.config).await;
    let a = call_id();
    let id = format!("plivo:{a}");
    app_answers(relay.addr, &a).await;
    agent_answers_then_hangup(relay.addr, &a).await;
    helpdesk.wait_for_thread(&id, 3, WAIT).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let store = Store::start(
        &env.config.redis,
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    assert!(store.wait_connected(WAIT).await, "redis reachable");
    // The last outcome settles the last message shortly after the helpdesk accepted it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let session = loop {
        let session = lookup::session(&store, &id).await.unwrap();
        if let Some(s) = session.filter(|s| {
            s.messages.len() == 3
                && s.messages
                    .iter()
                    .all(|m| m.status == MessageStatus::Delivered)
        }) {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the messages never all settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    for number in ["+1 (510) 555-9999", "15105559999", "+15105559999"] {
        let page = lookup::by_number(&store, number, None, 10).await.unwrap();
        let found: Vec<&str> = page.items.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(found, [id.as_str()], "{number}");
        let summary = &page.items[0];
        assert_eq!(summary.customer.as_deref(), Some("+15105559999"));
        assert_eq!(summary.channel.as_deref(), Some("+15550009999"));
        assert_eq!(summary.state, State::Ended);
        assert_eq!(summary.destination, "helpdesk");
        assert!(summary.started_at.is_some());
    }
    let recent = lookup::recent(&store, None, 10).await.unwrap();
    assert_eq!(recent.items[0].id, id);
    assert!(
        lookup::by_number(&store, "+1 555 000 0000", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let events: Vec<(EventLabel, State, State)> = session
        .timeline
        .iter()
        .filter_map(|entry| match &entry.what {
            Happened::Event {
                event, from, to, ..
            } => Some((*event, *from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(events[0].1, State::New, "{events:?}");
    assert!(events.contains(&(EventLabel::Answered, State::Ringing, State::Answered)));
    assert_eq!(
        events.last(),
        Some(&(EventLabel::Ended, State::Answered, State::Ended))
    );
    let texts: Vec<&str> = session.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, helpdesk.texts(&id));
    let mut jobs = Vec::new();
    for message in &session.messages {
        let made = session.timeline.iter().any(
            |e| matches!(&e.what, Happened::Message { job_id, .. } if *job_id == message.job_id),
        );
        assert!(made, "message {} is on the timeline", message.seq);
        let record = store.delivery(&message.job_id).await.unwrap();
        let record = record.unwrap_or_else(|| panic!("no delivery record of {}", message.job_id));
        assert_eq!(record.status, DeliveryStatus::Delivered);
        assert_eq!(record.destination, "helpdesk");
        jobs.push(message.job_id.clone());
    }
    let listed = store
        .deliveries(&DeliveryQuery {
            destination: Some("helpdesk".into()),
            status: Some(DeliveryStatus::Delivered),
            limit: 50,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    // Newest first: by the records' own times (two written in one millisecond may come in
    // either order).
    let times: Vec<time::OffsetDateTime> = listed
        .items
        .iter()
        .map(|(_, r)| {
            time::OffsetDateTime::parse(
                &r.updated_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let mut listed: Vec<String> = listed.items.into_iter().map(|(job, _)| job).collect();
    listed.sort();
    jobs.sort();
    assert_eq!(listed, jobs, "every message's delivery is listed");
    stop.cancel();
    relay.stop().await;
}
