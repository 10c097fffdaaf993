use super::*;

fn events(session: &Session) -> Vec<(EventLabel, State, State)> {
    session
        .timeline
        .iter()
        .filter_map(|entry| match &entry.what {
            Happened::Event {
                event, from, to, ..
            } => Some((*event, *from, *to)),
            _ => None,
        })
        .collect()
}

/// The timeline in short: `ringing New→Ringing`, `message 1`, `settled 1 delivered`, …
fn outline(session: &Session) -> Vec<String> {
    session
        .timeline
        .iter()
        .map(|entry| match &entry.what {
            Happened::Event {
                event, from, to, ..
            } => format!("{event:?} {from:?}→{to:?}"),
            Happened::Message { seq, .. } => format!("message {seq}"),
            Happened::Settled { seq, status, .. } => format!("settled {seq} {status:?}"),
        })
        .collect()
}

#[test]
fn each_transition_is_an_event_followed_by_its_message_and_its_settlement() {
    let (_, session) = run(&[
        input(Kind::Ringing, 0),
        answered_by_alice(5),
        input(Kind::LegEnded, 6),
        ended(EndStatus::Completed, 65),
    ]);
    assert_eq!(
        outline(&session),
        [
            "Ringing New→Ringing",
            "message 1",
            "settled 1 Delivered",
            "Answered Ringing→Answered",
            "message 2",
            "settled 2 Delivered",
            "Ended Answered→Ended",
            "message 3",
            "settled 3 Delivered",
        ]
    );
    let times: Vec<i64> = session
        .timeline
        .iter()
        .filter(|e| matches!(e.what, Happened::Event { .. }))
        .map(|e| (e.at - T0).whole_seconds())
        .collect();
    assert_eq!(times, [0, 5, 65], "each event at its input's time");
    let Happened::Event { detail, .. } = &session.timeline[3].what else {
        panic!("not an event");
    };
    assert_eq!(detail.as_deref(), Some("by +15550002000"));

    // Each message with its job id (its delivery record's key) and status.
    assert_eq!(session.messages.len(), 3);
    for (note, key) in session
        .messages
        .iter()
        .zip(["started", "answered", "ended"])
    {
        assert_eq!(note.key, key);
        assert_eq!(note.id, message::message_id("plivo:a", key));
        assert_eq!(
            note.job_id,
            relay_core::ids::job_id(&note.id, "call-log", 0)
        );
        assert_eq!(note.status, MessageStatus::Delivered);
        assert_eq!(note.settled_at, Some(T0));
    }
    assert_eq!(session.messages[2].text, "Call ended - duration: 0:01:00");
    let Happened::Message { job_id, text, .. } = &session.timeline[7].what else {
        panic!("not a message");
    };
    assert_eq!(job_id, &session.messages[2].job_id);
    assert_eq!(text, &session.messages[2].text);
}

#[test]
fn one_input_that_makes_several_messages_is_one_event_before_them() {
    let rules = rules();
    let step = apply(None, &ended(EndStatus::Busy, 30), &rules);
    assert_eq!(
        outline(&step.session),
        ["Ended New→Missed", "message 1", "message 2"]
    );
    assert!(
        step.session
            .messages
            .iter()
            .all(|m| m.status == MessageStatus::Pending && m.settled_at.is_none())
    );
}

#[test]
fn a_held_ending_and_its_grace_timer_are_both_on_the_timeline() {
    let (_, session) = run(&[ended(EndStatus::Completed, 60), input(Kind::Settle, 70)]);
    assert_eq!(
        events(&session),
        [
            (EventLabel::Ended, State::New, State::Ringing),
            (EventLabel::Settle, State::Ringing, State::Missed),
        ]
    );
    let Happened::Event { detail, .. } = &session.timeline[0].what else {
        panic!("not an event");
    };
    assert_eq!(detail.as_deref(), Some("completed; held for a late answer"));
}

#[test]
fn stale_and_repeated_inputs_add_nothing() {
    let rules = rules();
    let recording = input(
        Kind::Recording {
            url: "https://r.example/1.mp3".into(),
        },
        40,
    );
    let mut session = apply(None, &input(Kind::Ringing, 0), &rules).session;
    session = apply(Some(session), &recording, &rules).session;
    let before = session.clone();
    for repeat in [
        input(Kind::Ringing, 0),
        input(Kind::Ringing, 9),
        recording,
        input(Kind::LegEnded, 41),
        input(Kind::Settle, 50),
    ] {
        let step = apply(Some(before.clone()), &repeat, &rules);
        assert_eq!(step.session.timeline, before.timeline, "{:?}", repeat.kind);
        assert_eq!(step.session.messages, before.messages, "{:?}", repeat.kind);
    }
}

#[test]
fn a_settlement_reported_twice_is_noted_once() {
    let rules = rules();
    let mut s = apply(None, &answered_by_alice(1), &rules).session;
    let later = T0 + time::Duration::seconds(3);
    assert!(settle(&mut s, 1, false, later));
    let noted = s.clone();
    assert!(!settle(&mut s, 1, false, later));
    assert!(!settle(&mut s, 1, true, later));
    assert_eq!(s, noted);
    assert_eq!(
        outline(&s),
        [
            "Answered New→Answered",
            "message 1",
            "message 2",
            "settled 1 Undeliverable"
        ]
    );
    assert_eq!(s.timeline[3].at, later);
    assert_eq!(s.messages[0].status, MessageStatus::Undeliverable);
    assert_eq!(s.messages[0].settled_at, Some(later));
    assert_eq!(s.messages[1].status, MessageStatus::Pending);
}

#[test]
fn the_timeline_and_the_messages_keep_only_the_latest() {
    let mut inputs = vec![input(Kind::Ringing, 0), answered_by_alice(3)];
    inputs.extend((0..120).map(|n| {
        input(
            Kind::Recording {
                url: format!("https://r.example/{n}.mp3"),
            },
            10 + n,
        )
    }));
    let (texts, session) = run(&inputs);
    assert_eq!(texts.len(), 122);
    assert_eq!(session.timeline.len(), MAX_TIMELINE);
    assert_eq!(session.messages.len(), MAX_MESSAGES);
    // The oldest went: the last message is kept, the first is not.
    assert_eq!(session.messages.last().map(|m| m.seq), Some(122));
    assert_eq!(session.messages[0].seq, 122 - MAX_MESSAGES as u32 + 1);
    assert!(!events(&session).iter().any(|e| e.0 == EventLabel::Ringing));
    assert_eq!(outline(&session).last().unwrap(), "settled 122 Delivered");
}

#[test]
fn a_record_written_before_the_timeline_existed_still_loads() {
    let (_, session) = run(&[input(Kind::Ringing, 0)]);
    let mut json: Value = serde_json::to_value(&session).unwrap();
    let object = json.as_object_mut().unwrap();
    object.remove("timeline");
    object.remove("messages");
    let old: Session = serde_json::from_value(json).unwrap();
    assert!(old.timeline.is_empty() && old.messages.is_empty());
    assert_eq!(old.state, State::Ringing);
    // And a timeline round-trips through its JSON.
    let text = serde_json::to_string(&session).unwrap();
    assert_eq!(serde_json::from_str::<Session>(&text).unwrap(), session);
    assert!(
        text.contains(r#""type":"event","event":"ringing""#),
        "{text}"
    );
}

proptest! {
    /// Whatever the events and their order: an input applied a second time changes nothing
    /// (its timeline and messages included), an input that changed the session added exactly
    /// one event entry, and a settlement reported twice is noted once.
    #[test]
    fn the_timeline_is_idempotent(
        picks in proptest::collection::vec(0usize..9, 1..24),
        settles in proptest::collection::vec(any::<bool>(), 24),
    ) {
        let pool = event_pool();
        let rules = rules();
        let mut session: Option<Session> = None;
        for (n, &i) in picks.iter().enumerate() {
            let step = apply(session.clone(), &pool[i], &rules);
            if step.stale {
                if let Some(before) = &session {
                    prop_assert_eq!(&step.session.timeline, &before.timeline);
                }
                continue;
            }
            let before_events = session.as_ref().map_or(0, |s| events(s).len());
            let changed = session.as_ref().is_none_or(|s| {
                (s.state, s.outbox.len(), s.recordings.len(), s.pending_end.is_some())
                    != (
                        step.session.state,
                        step.session.outbox.len(),
                        step.session.recordings.len(),
                        step.session.pending_end.is_some(),
                    )
            });
            prop_assert_eq!(
                events(&step.session).len(),
                before_events + usize::from(changed)
            );
            let mut s = step.session;
            let again = apply(Some(s.clone()), &pool[i], &rules);
            prop_assert_eq!(&again.session.timeline, &s.timeline);
            prop_assert_eq!(&again.session.messages, &s.messages);
            prop_assert!(again.stale || again.session == s);
            if settles[n] && let Some(head) = s.head().cloned() {
                prop_assert!(settle(&mut s, head.seq, true, T0));
                let noted = s.clone();
                prop_assert!(!settle(&mut s, head.seq, true, T0));
                prop_assert_eq!(&s, &noted);
            }
            session = Some(s);
        }
    }
}
