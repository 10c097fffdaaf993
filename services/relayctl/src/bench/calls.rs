//! End to end for call events: Plivo calls offered at a fixed rate through ingress, the
//! call-log handler and delivery to the bench helpdesk, one Re:amaze message per transition.
//!
//! Each call is an inbound call answered by an agent, as three signed callbacks (V3 over
//! `ingress.public_base_url` + path, form-encoded) at fixed offsets from the call's planned
//! start ([`CALLBACK_OFFSETS_MS`]):
//!
//! | offset | callback | message |
//! |---|---|---|
//! | 0 ms | `/v1/plivo/answer`: the caller's leg in progress | "Call started" |
//! | +20 ms | `/v1/plivo/status`: the Dial callback of the agent leg answering | "Call answered by …" |
//! | +40 ms | `/v1/plivo/hangup`: the caller's leg completed | "Call ended - duration: …" |
//!
//! A message's latency runs from the planned send instant of the callback that caused it to its
//! arrival at the sink. A session has one message in flight at a time, so a message that is
//! due while the previous one of its call is still on its way waits for that delivery's
//! outcome: a late "answered" or "ended" includes that wait.
//!
//! Every callback is signed before the run starts, so signing is no part of the offered load.
//! One unmeasured call warms the path up first. A call's messages are expected when all three
//! of its callbacks were accepted; each is counted by its deterministic `id` at the sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_signing::plivo;
use relay_worker::handlers::call_log::message::message_id;

use super::env::PLIVO_TOKEN;
use super::load::{self, Latency, Planned};
use super::report::CallRun;
use super::sink::RecordingSink;

/// When each of a call's callbacks is sent, after the call's planned start.
pub(crate) const CALLBACK_OFFSETS_MS: [u64; 3] = [0, 20, 40];
/// The route of each callback, in the same order.
const ROUTES: [&str; 3] = ["answer", "status", "hangup"];
/// The message (its key in the session) each callback makes, in the same order.
const MESSAGES: [&str; 3] = ["started", "answered", "ended"];
/// The caller (numbers without `+`: no region is configured, so they are shown as they came).
const CUSTOMER: &str = "15105559999";
/// The company's number the caller called.
const CHANNEL: &str = "15550009999";
/// The agent whose leg answers.
const AGENT: &str = "15550002000";

/// A callback of the plan: the call's index and the callback's (0: answer, 1: dial answer,
/// 2: hangup).
type Key = (usize, usize);

/// Runs each of `rates` (calls per second) for `duration`, after one call that warms the path
/// up, and prints each result.
pub(crate) async fn runs(
    ingress_url: &str,
    sink: &RecordingSink,
    rates: &[u32],
    duration: Duration,
) -> Vec<CallRun> {
    // One call first, not measured: the call path's cold start (its first connections and
    // declarations) would otherwise show up in the first rate's tail.
    run(ingress_url, sink, 1, 1, Duration::ZERO).await;
    let mut runs = Vec::with_capacity(rates.len());
    for &rate in rates {
        let calls = ((f64::from(rate) * duration.as_secs_f64()).round() as usize).max(1);
        let r = run(ingress_url, sink, rate, calls, duration).await;
        println!(
            "e2e calls {rate}/s for {:.0}s: {} calls, {} of {} callbacks accepted, {} messages, {} delivered, {} lost, {} duplicates; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            duration.as_secs_f64(),
            r.calls,
            r.callbacks_accepted,
            r.callbacks_sent,
            r.messages,
            r.delivered,
            r.lost,
            r.duplicates,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms
        );
        runs.push(r);
    }
    runs
}

/// Offers `calls` calls at `rate` calls per second, then waits for every message their
/// accepted callbacks make at the sink.
async fn run(
    ingress_url: &str,
    sink: &RecordingSink,
    rate: u32,
    calls: usize,
    duration: Duration,
) -> CallRun {
    let ids: Vec<String> = (0..calls)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let plan = plan(ingress_url, &ids, rate);
    let before = sink
        .arrivals
        .lock()
        .expect("arrivals lock")
        .by_message
        .len();
    let sent = load::open_loop_plan(plan).await;
    // A call's messages are expected only when all three of its callbacks were accepted.
    let mut accepted = vec![0; calls];
    for ((call, _), _, ok) in &sent {
        accepted[*call] += usize::from(*ok);
    }
    let expected: Vec<(String, usize, Instant)> = sent
        .iter()
        .filter(|((call, _), _, _)| accepted[*call] == ROUTES.len())
        .map(|((call, leg), planned, _)| {
            let session = format!("plivo:{}", ids[*call]);
            (message_id(&session, MESSAGES[*leg]), *leg, *planned)
        })
        .collect();
    // Every expected message at the sink, or a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(30) + duration;
    sink.wait_until(deadline, |a| {
        a.by_message.len() >= before + expected.len()
            && expected
                .iter()
                .all(|(id, _, _)| a.by_message.contains_key(id))
    })
    .await;

    let a = sink.arrivals.lock().expect("arrivals lock");
    let mut all = load::histogram();
    let mut by_leg = [load::histogram(), load::histogram(), load::histogram()];
    let (mut delivered, mut duplicates) = (0, 0);
    for (id, leg, planned) in &expected {
        if let Some((at, times)) = a.by_message.get(id) {
            delivered += 1;
            duplicates += times.saturating_sub(1) as usize;
            let micros = at.saturating_duration_since(*planned).as_micros() as u64;
            all.saturating_record(micros);
            by_leg[*leg].saturating_record(micros);
        }
    }
    CallRun {
        calls_per_second: rate,
        seconds: duration.as_secs_f64(),
        calls,
        callbacks_sent: sent.len(),
        callbacks_accepted: accepted.iter().sum(),
        messages: expected.len(),
        delivered,
        lost: expected.len() - delivered,
        duplicates,
        latency: Latency::of(&all),
        by_message: MESSAGES
            .iter()
            .zip(&by_leg)
            .map(|(name, h)| ((*name).to_owned(), Latency::of(h)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Every callback of `calls` (by call id) at `rate` calls per second, in time order.
fn plan(ingress_url: &str, calls: &[String], rate: u32) -> Vec<Planned<Key>> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let urls: [Arc<str>; 3] = ROUTES.map(|route| format!("{ingress_url}/v1/plivo/{route}").into());
    let mut plan: Vec<Planned<Key>> = Vec::with_capacity(calls.len() * ROUTES.len());
    for (i, call) in calls.iter().enumerate() {
        let start = interval.mul_f64(i as f64);
        for (leg, params) in callbacks(call).into_iter().enumerate() {
            let (headers, body) = signed(&urls[leg], &params);
            plan.push(Planned {
                at: start + Duration::from_millis(CALLBACK_OFFSETS_MS[leg]),
                key: (i, leg),
                url: urls[leg].clone(),
                headers,
                body,
            });
        }
    }
    // Stable: a call's callbacks keep their order when two fall on the same instant.
    plan.sort_by_key(|p| p.at);
    plan
}

/// The form parameters of the three callbacks of the inbound call `call` (to [`ROUTES`]).
fn callbacks(call: &str) -> [Vec<(String, String)>; 3] {
    let params = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [
            ("CallUUID", call),
            ("From", CUSTOMER),
            ("To", CHANNEL),
            ("Direction", "inbound"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let agent_leg = format!("{call}-agent");
    [
        params(&[("CallStatus", "in-progress"), ("Event", "StartApp")]),
        params(&[
            ("CallStatus", "in-progress"),
            ("Event", "DialAnswer"),
            ("DialAction", "answer"),
            ("DialBLegStatus", "answer"),
            ("DialALegUUID", call),
            ("DialBLegUUID", &agent_leg),
            ("DialBLegTo", AGENT),
        ]),
        params(&[
            ("CallStatus", "completed"),
            ("HangupCauseName", "Normal Hangup"),
        ]),
    ]
}

/// Headers and form body of a callback to `url`, signed with `X-Plivo-Signature-V3` as Plivo
/// signs it.
fn signed(url: &str, params: &[(String, String)]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    let signature = plivo::sign_v3(PLIVO_TOKEN, url, plivo::Method::Post, params, &nonce)
        .expect("a signable callback");
    // The URL's query serializer is `application/x-www-form-urlencoded`.
    let mut form = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
    form.query_pairs_mut().extend_pairs(params);
    let body = form.query().unwrap_or_default().as_bytes().to_vec();
    let headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (plivo::NONCE_V3, nonce),
        (plivo::SIGNATURE_V3, signature),
    ];
    (headers, body)
}
