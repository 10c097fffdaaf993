use super::*;
use proptest::prelude::*;
use relay_core::config::AgentConfig;
use serde_json::Value;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-04 10:00:00 UTC);

fn rules() -> Rules {
    let mut rules = Rules {
        default_destination: "helpdesk".into(),
        recordings: true,
        ..Rules::default()
    };
    rules
        .channels
        .insert("+15550001000".into(), "brand-b".into());
    rules
        .contacts
        .insert("+15105559999".into(), "John Doe".into());
    rules.agents.insert(
        "+15550002000".into(),
        AgentConfig {
            name: "Alice".into(),
            email: Some("alice@example.com".into()),
        },
    );
    rules
}

fn input(kind: Kind, secs: i64) -> Input {
    Input {
        session: "plivo:a".into(),
        at: T0 + time::Duration::seconds(secs),
        direction: Some(Direction::Inbound),
        customer: Some("+15105559999".into()),
        channel: Some("+15550009999".into()),
        kind,
    }
}

fn ended(status: EndStatus, secs: i64) -> Input {
    input(
        Kind::Ended {
            status,
            duration: None,
            answered: None,
            cause: None,
        },
        secs,
    )
}

fn answered_by_alice(secs: i64) -> Input {
    input(
        Kind::Answered {
            by: Some("+15550002000".into()),
        },
        secs,
    )
}

/// Runs `inputs` in order, settling every message at once as delivered (as the helpdesk
/// would), and returns the texts the helpdesk received plus the final session.
fn run(inputs: &[Input]) -> (Vec<String>, Session) {
    let rules = rules();
    let mut session: Option<Session> = None;
    let mut received = Vec::new();
    for i in inputs {
        let step = apply(session.clone(), i, &rules);
        if step.stale {
            continue;
        }
        let mut s = step.session;
        while let Some(head) = s.head().cloned() {
            received.push(head.text.clone());
            assert!(settle(&mut s, head.seq, true, T0));
        }
        session = Some(s);
    }
    (received, session.expect("some input created the session"))
}

#[test]
fn an_answered_inbound_call_is_started_answered_ended() {
    let (texts, session) = run(&[
        input(Kind::Ringing, 0),
        answered_by_alice(5),
        ended(EndStatus::Completed, 5 + 30 * 60 + 5),
    ]);
    assert_eq!(
        texts,
        [
            "Call started - from +15105559999",
            "Call answered by Alice",
            "Call ended - duration: 0:30:05"
        ]
    );
    assert_eq!(session.state, State::Ended);
    assert_eq!(session.delivered, 3);
    assert_eq!(
        session.last_sent.as_ref().map(|s| s.text.as_str()),
        Some("Call ended - duration: 0:30:05")
    );
}

#[test]
fn the_helpdesk_json_follows_the_seed() {
    let rules = rules();
    let step = apply(None, &answered_by_alice(5), &rules);
    let answered = &step.session.outbox[1];
    let body: Value = serde_json::from_str(&answered.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "id": message::message_id("plivo:a", "answered"),
            "direction": "inbound",
            "to": {"name": "Alice", "phone": "+15550009999"},
            "from": {"name": "John Doe", "phone": "+15105559999"},
            "body": "Call answered by Alice",
            "created_at": "2026-12-04T10:00:05+0000",
            "thread_id": "plivo:a",
            "assignee": {"email": "alice@example.com"},
        })
    );
    assert_eq!(answered.id, body["id"]);
    assert_eq!(step.session.destination, "helpdesk");
}

#[test]
fn outbound_calls_put_the_customer_in_to_and_route_by_channel() {
    let mut call = input(Kind::Answered { by: None }, 3);
    call.direction = Some(Direction::Outbound);
    call.customer = Some("+15105559999".into());
    call.channel = Some("+15550001000".into());
    let step = apply(None, &call, &rules());
    let body: Value = serde_json::from_str(&step.session.outbox[0].body).unwrap();
    assert_eq!(body["direction"], "outbound");
    assert_eq!(body["to"]["phone"], "+15105559999");
    assert_eq!(body["from"]["phone"], "+15550001000");
    assert_eq!(body["body"], "Call started - to +15105559999");
    assert_eq!(step.session.outbox[1].text, "Call answered by John Doe");
    assert_eq!(step.session.destination, "brand-b");
}

#[test]
fn a_hangup_before_the_answer_still_makes_an_ordered_thread() {
    let mut hangup = input(
        Kind::Ended {
            status: EndStatus::Completed,
            duration: Some(65),
            answered: Some(None),
            cause: None,
        },
        100,
    );
    hangup.direction = Some(Direction::Outbound);
    let late_answer = input(Kind::Answered { by: None }, 35);
    let late_ringing = input(Kind::Ringing, 30);
    let (texts, session) = run(&[hangup, late_answer, late_ringing]);
    assert_eq!(
        texts,
        [
            "Call started - to +15105559999",
            "Call answered by John Doe",
            "Call ended - duration: 0:01:05"
        ]
    );
    assert_eq!(session.state, State::Ended);
}

#[test]
fn late_and_repeated_events_change_nothing() {
    let rules = rules();
    let first = apply(None, &input(Kind::Ringing, 0), &rules);
    assert!(first.created && !first.stale);
    let again = apply(
        Some(first.session.clone()),
        &input(Kind::Ringing, 0),
        &rules,
    );
    assert!(again.stale);
    assert_eq!(again.session, first.session);
    let over = apply(Some(first.session), &ended(EndStatus::Completed, 9), &rules);
    let late = apply(Some(over.session.clone()), &input(Kind::Ringing, 1), &rules);
    assert!(late.stale);
    assert_eq!(late.session, over.session);
}

#[test]
fn an_unanswered_inbound_call_is_one_missed_call_whatever_the_agent_legs_do() {
    let (texts, session) = run(&[
        input(Kind::Ringing, 0),
        input(Kind::AppAnswered, 1),
        input(Kind::LegEnded, 20),
        input(Kind::LegEnded, 21),
        ended(EndStatus::Completed, 25),
        ended(EndStatus::Completed, 25),
        input(Kind::LegEnded, 26),
        input(Kind::Settle, 35),
        input(Kind::Settle, 36),
    ]);
    assert_eq!(texts, ["Call started - from +15105559999", "Missed call"]);
    assert_eq!(session.state, State::Missed);
    let missed = &session.last_sent.unwrap();
    assert_eq!(missed.text, "Missed call");
}

#[test]
fn an_unanswered_ending_waits_its_grace_for_a_late_answer() {
    let rules = rules();
    // The caller's hangup overtakes the agent's answer: held, not yet "Missed call".
    let held = apply(None, &ended(EndStatus::Completed, 60), &rules);
    assert!(held.grace_started && held.created);
    assert_eq!(held.session.state, State::Ringing);
    assert_eq!(held.session.outbox.len(), 1, "only the start so far");
    let (texts, session) = run(&[
        ended(EndStatus::Completed, 60),
        answered_by_alice(5),
        input(Kind::Settle, 70),
    ]);
    assert_eq!(
        texts,
        [
            "Call started - from +15105559999",
            "Call answered by Alice",
            "Call ended - duration: 0:00:55"
        ]
    );
    assert_eq!(session.state, State::Ended);
    // An answer after the grace is over is too late: the call stays missed.
    let (texts, _) = run(&[
        ended(EndStatus::Completed, 60),
        input(Kind::Settle, 70),
        answered_by_alice(5),
    ]);
    assert_eq!(texts, ["Call started - from +15105559999", "Missed call"]);
    // The end timer settles a held ending too.
    let (texts, _) = run(&[
        ended(EndStatus::Completed, 60),
        input(Kind::EndTimer, 4 * 3600),
    ]);
    assert_eq!(texts, ["Call started - from +15105559999", "Missed call"]);
}

#[test]
fn outbound_calls_that_nobody_answers_say_why() {
    let mut busy = ended(EndStatus::Busy, 4);
    busy.direction = Some(Direction::Outbound);
    let (texts, _) = run(&[busy]);
    assert_eq!(texts[1], "Call not answered (busy)");
    let failed = input(
        Kind::Ended {
            status: EndStatus::Failed,
            duration: None,
            answered: None,
            cause: Some("Invalid Destination Address".into()),
        },
        2,
    );
    let (texts, session) = run(&[failed]);
    assert_eq!(texts[1], "Call failed: Invalid Destination Address");
    assert_eq!(session.state, State::Failed);
}

#[test]
fn the_end_timer_closes_an_open_session_once() {
    let (texts, session) = run(&[
        input(Kind::Ringing, 0),
        answered_by_alice(3),
        input(Kind::EndTimer, 4 * 3600),
        input(Kind::EndTimer, 4 * 3600),
        ended(EndStatus::Completed, 4 * 3600 + 9),
    ]);
    assert_eq!(texts.last().unwrap(), "Call ended (no hangup received)");
    assert_eq!(texts.len(), 3);
    assert_eq!(session.state, State::Ended);
    // A timer for a session the ledger no longer has creates nothing.
    let step = apply(None, &input(Kind::EndTimer, 5), &rules());
    assert!(step.stale && !step.created);
}

#[test]
fn recordings_are_announced_once_each_after_the_call() {
    let recording = |url: &str| {
        input(
            Kind::Recording {
                url: url.to_owned(),
            },
            40,
        )
    };
    let (texts, session) = run(&[
        input(Kind::Ringing, 0),
        answered_by_alice(3),
        ended(EndStatus::Completed, 30),
        recording("https://r.example/1.mp3"),
        recording("https://r.example/1.mp3"),
        recording("https://r.example/2.mp3"),
    ]);
    assert_eq!(texts.len(), 5);
    assert_eq!(texts[3], "Recording available");
    assert_eq!(session.recordings.len(), 2);
    let rules = Rules {
        recordings: false,
        ..rules()
    };
    let step = apply(
        Some(session.clone()),
        &recording("https://r.example/3.mp3"),
        &rules,
    );
    assert!(step.session.outbox.is_empty());
}

#[test]
fn a_recording_attaches_its_url() {
    let rules = rules();
    let step = apply(
        None,
        &input(
            Kind::Recording {
                url: "https://r.example/1.mp3".into(),
            },
            40,
        ),
        &rules,
    );
    let body: Value = serde_json::from_str(&step.session.outbox[1].body).unwrap();
    assert_eq!(
        body["attachments"],
        serde_json::json!(["https://r.example/1.mp3"])
    );
}

#[test]
fn web_callbacks_are_requested_then_called_or_refused() {
    let mut requested = input(
        Kind::Requested {
            user: "demo".into(),
            target: "+15551231234".into(),
            thread: None,
        },
        0,
    );
    requested.customer = Some("+15551231234".into());
    requested.channel = None;
    let (texts, session) = run(&[requested.clone(), requested.clone()]);
    assert_eq!(texts, ["Callback requested by demo to +15551231234"]);
    assert_eq!(session.state, State::Requested);
    assert_eq!(session.direction, Direction::Outbound);
    let refused = Input {
        kind: Kind::Refused {
            user: "demo".into(),
            reason: "Calls to this destination are not allowed.".into(),
        },
        ..requested
    };
    let (texts, session) = run(&[refused]);
    assert_eq!(
        texts,
        ["Callback refused: Calls to this destination are not allowed."]
    );
    assert_eq!(session.state, State::Failed);
}

#[test]
fn only_the_head_settles_and_repeats_are_ignored() {
    let rules = rules();
    let mut s = apply(None, &answered_by_alice(1), &rules).session;
    assert_eq!(s.outbox.len(), 2);
    assert!(!settle(&mut s, 2, true, T0), "not the head");
    assert!(settle(&mut s, 1, true, T0));
    assert!(!settle(&mut s, 1, true, T0), "a repeat");
    assert!(settle(&mut s, 2, false, T0));
    assert_eq!((s.delivered, s.undeliverable), (1, 1));
    assert!(s.outbox.is_empty());
}

/// The rank of a state message's transition key (recordings are not state messages).
fn rank(key: &str) -> Option<u8> {
    match key {
        "requested" => Some(1),
        "started" => Some(2),
        "answered" => Some(3),
        "ended" | "missed" | "failed" | "refused" => Some(4),
        _ => None,
    }
}

fn event_pool() -> Vec<Input> {
    vec![
        input(Kind::Settle, 80),
        input(Kind::Ringing, 0),
        input(Kind::AppAnswered, 1),
        answered_by_alice(5),
        input(Kind::LegEnded, 6),
        ended(EndStatus::Completed, 60),
        input(
            Kind::Recording {
                url: "https://r.example/1.mp3".into(),
            },
            70,
        ),
        input(Kind::EndTimer, 4 * 3600),
        input(
            Kind::OriginationFailed {
                reason: "insufficient balance".into(),
            },
            2,
        ),
    ]
}

proptest! {
    /// Any permutation and duplication of a session's events: the messages delivered are a
    /// strictly increasing subsequence of the state order ending in exactly one terminal, and
    /// no message id comes twice.
    #[test]
    fn messages_follow_the_state_order_whatever_the_arrival_order(
        picks in proptest::collection::vec(0usize..9, 1..24),
    ) {
        let pool = event_pool();
        let mut inputs: Vec<Input> = picks.iter().map(|&i| pool[i].clone()).collect();
        // Whatever came, the session's timers fire in the end.
        inputs.push(input(Kind::Settle, 5 * 3600));
        inputs.push(input(Kind::EndTimer, 5 * 3600));
        let rules = rules();
        let mut session: Option<Session> = None;
        let mut delivered: Vec<Pending> = Vec::new();
        for i in &inputs {
            let step = apply(session.clone(), i, &rules);
            let mut s = step.session;
            if step.stale {
                continue;
            }
            while let Some(head) = s.head().cloned() {
                delivered.push(head.clone());
                settle(&mut s, head.seq, true, T0);
            }
            session = Some(s);
        }
        let ranks: Vec<u8> = delivered.iter().filter_map(|p| rank(&p.key)).collect();
        prop_assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
        let terminals = ranks.iter().filter(|&&r| r == 4).count();
        // Every session that began ends exactly once.
        prop_assert_eq!(terminals, usize::from(session.is_some()));
        if terminals == 1 {
            let last_state = delivered.iter().rposition(|p| rank(&p.key).is_some()).unwrap();
            prop_assert_eq!(rank(&delivered[last_state].key), Some(4));
        }
        let mut ids: Vec<&str> = delivered.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), before, "a message id came twice");
    }

    /// The transition never panics and never leaves a terminal state, whatever it is fed.
    #[test]
    fn terminal_states_are_final(picks in proptest::collection::vec(0usize..9, 1..30)) {
        let pool = event_pool();
        let rules = rules();
        let mut session: Option<Session> = None;
        let mut was_terminal = false;
        for &i in &picks {
            let step = apply(session.clone(), &pool[i], &rules);
            if !step.stale {
                if was_terminal {
                    prop_assert!(step.session.state.is_terminal());
                }
                was_terminal = step.session.state.is_terminal();
                session = Some(step.session);
            }
        }
    }
}

#[test]
fn a_failed_origination_closes_a_requested_callback_once_and_never_a_placed_call() {
    let requested = Input {
        kind: Kind::Requested {
            user: "alice".into(),
            target: "+15557654321".into(),
            thread: None,
        },
        ..input(Kind::Ringing, 0)
    };
    let failed = input(
        Kind::OriginationFailed {
            reason: "insufficient balance".into(),
        },
        3,
    );
    let (texts, _) = run(&[requested.clone(), failed.clone(), failed.clone()]);
    assert_eq!(
        texts,
        [
            "Callback requested by alice to +15557654321",
            "Callback failed: insufficient balance"
        ]
    );
    // Once the user's leg rings the provider placed the call: a late failure changes nothing.
    let (placed, _) = run(&[requested, input(Kind::Ringing, 1), failed]);
    assert!(
        !placed.iter().any(|t| t.starts_with("Callback failed")),
        "{placed:?}"
    );
}

#[test]
fn a_callback_for_a_missed_call_is_logged_in_the_missed_calls_thread() {
    let requested = Input {
        kind: Kind::Requested {
            user: "missed-call".into(),
            target: "+15105559999".into(),
            thread: Some("plivo:missed-1".into()),
        },
        ..input(Kind::Ringing, 0)
    };
    let step = apply(None, &requested, &rules());
    let head = step.session.head().expect("a message");
    let body: serde_json::Value = serde_json::from_str(&head.body).unwrap();
    assert_eq!(body["thread_id"], "plivo:missed-1");
    assert_eq!(step.session.thread.as_deref(), Some("plivo:missed-1"));
}

/// The timeline and the messages with their delivery status.
#[path = "timeline_tests.rs"]
mod timeline;
