use super::*;
use serde_json::json;
use time::macros::datetime;

const RECEIVED: OffsetDateTime = datetime!(2026-12-04 10:00:00 UTC);

fn plivo_event(route: &str, data: Value) -> CloudEvent {
    let mut event = CloudEvent::new(
        "e".into(),
        format!("plivo/{route}"),
        "com.plivo.call.x".into(),
        data,
    );
    event.time = RECEIVED;
    event
}

fn read_plivo(route: &str, key: &str, data: Value) -> Option<Input> {
    read(&plivo_event(route, data), key, Some("US")).unwrap()
}

#[test]
fn an_inbound_callers_leg_is_the_session_and_its_app_answer_is_not_a_person() {
    let answer = read_plivo(
        "answer",
        "plivo.call.answered",
        json!({"CallUUID": "A", "From": "15105559999", "To": "+1 555 000 9999",
               "Direction": "inbound", "CallStatus": "in-progress", "Event": "StartApp"}),
    )
    .unwrap();
    assert_eq!(answer.session, "plivo:A");
    assert_eq!(answer.kind, Kind::AppAnswered);
    assert_eq!(answer.direction, Some(Direction::Inbound));
    assert_eq!(answer.customer.as_deref(), Some("+15105559999"));
    assert_eq!(answer.channel.as_deref(), Some("+15550009999"));
}

#[test]
fn an_inbound_hangup_is_not_proof_of_an_answer() {
    let hangup = read_plivo(
        "hangup",
        "plivo.call.completed",
        json!({"CallUUID": "A", "From": "+15105559999", "To": "+15550009999",
               "Direction": "inbound", "CallStatus": "completed", "Duration": "40",
               "EndTime": "2026-12-04 10:05:00", "HangupCauseName": "Normal Hangup"}),
    )
    .unwrap();
    assert_eq!(hangup.at, datetime!(2026-12-04 10:05:00 UTC));
    assert_eq!(
        hangup.kind,
        Kind::Ended {
            status: EndStatus::Completed,
            duration: None,
            answered: None,
            cause: Some("Normal Hangup".into()),
        }
    );
}

#[test]
fn the_dial_callback_reports_the_agent_on_the_callers_session() {
    let answered = read_plivo(
        "status",
        "plivo.call.answered",
        json!({"CallUUID": "A", "DialALegUUID": "A", "DialBLegUUID": "B", "DialAction": "answer",
               "DialBLegStatus": "answer", "DialBLegTo": "15550002000", "From": "+15105559999",
               "To": "+15550009999", "Direction": "inbound", "CallStatus": "in-progress",
               "Event": "DialAnswer"}),
    )
    .unwrap();
    assert_eq!(answered.session, "plivo:A");
    assert_eq!(
        answered.kind,
        Kind::Answered {
            by: Some("+15550002000".into())
        }
    );
    let hung_up = read_plivo(
        "status",
        "plivo.call.completed",
        json!({"CallUUID": "A", "DialALegUUID": "A", "DialBLegUUID": "C", "DialAction": "hangup",
               "Event": "DialHangup"}),
    )
    .unwrap();
    assert_eq!(hung_up.kind, Kind::LegEnded);
    let action = read_plivo(
        "status",
        "plivo.call.status",
        json!({"CallUUID": "A", "DialALegUUID": "A", "DialBLegUUID": "", "DialStatus": "no-answer"}),
    )
    .unwrap();
    assert_eq!(action.kind, Kind::LegEnded);
}

#[test]
fn agent_legs_belong_to_the_first_leg_and_never_end_it() {
    let agent_answer = read_plivo(
        "status",
        "plivo.call.answered",
        json!({"CallUUID": "B", "ALegUUID": "A", "From": "+15105559999",
               "To": "sip:alice@phone.plivo.com", "Direction": "outbound",
               "CallStatus": "in-progress"}),
    )
    .unwrap();
    assert_eq!(agent_answer.session, "plivo:A");
    assert_eq!(
        agent_answer.kind,
        Kind::Answered {
            by: Some("sip:alice@phone.plivo.com".into())
        }
    );
    assert_eq!(
        agent_answer.direction, None,
        "an agent leg says nothing of the call's direction"
    );
    assert_eq!(agent_answer.customer, None);
    let agent_no_answer = read_plivo(
        "hangup",
        "plivo.call.no-answer",
        json!({"CallUUID": "C", "ALegUUID": "A", "Direction": "outbound",
               "CallStatus": "no-answer"}),
    )
    .unwrap();
    assert_eq!(agent_no_answer.kind, Kind::LegEnded);
}

#[test]
fn an_outbound_first_leg_answered_is_the_customer_and_its_duration_is_talk_time() {
    let answered = read_plivo(
        "answer",
        "plivo.call.answered",
        json!({"CallUUID": "A", "ALegUUID": "A", "ALegRequestUUID": "R", "From": "15550001000",
               "To": "15105559999", "Direction": "outbound", "CallStatus": "in-progress"}),
    )
    .unwrap();
    assert_eq!(answered.kind, Kind::Answered { by: None });
    assert_eq!(answered.customer.as_deref(), Some("+15105559999"));
    assert_eq!(answered.channel.as_deref(), Some("+15550001000"));
    let hangup = read_plivo(
        "hangup",
        "plivo.call.completed",
        json!({"CallUUID": "A", "ALegUUID": "A", "From": "15550001000", "To": "15105559999",
               "Direction": "outbound", "CallStatus": "completed", "Duration": "65",
               "AnswerTime": "2026-12-04 09:58:55+00:00"}),
    )
    .unwrap();
    assert_eq!(
        hangup.kind,
        Kind::Ended {
            status: EndStatus::Completed,
            duration: Some(65),
            answered: Some(Some(datetime!(2026-12-04 09:58:55 UTC))),
            cause: None,
        }
    );
    let busy = read_plivo(
        "hangup",
        "plivo.call.busy",
        json!({"CallUUID": "A", "Direction": "outbound", "CallStatus": "busy", "Duration": "0"}),
    )
    .unwrap();
    assert!(matches!(
        busy.kind,
        Kind::Ended {
            status: EndStatus::Busy,
            answered: None,
            ..
        }
    ));
}

#[test]
fn recordings_repeated_parameters_and_the_relays_own_sessions() {
    let recording = read_plivo(
        "status",
        "plivo.call.status",
        json!({"CallUUID": "A", "RecordUrl": "https://media.plivo.com/r.mp3", "RecordingID": "r1"}),
    )
    .unwrap();
    assert_eq!(
        recording.kind,
        Kind::Recording {
            url: "https://media.plivo.com/r.mp3".into()
        }
    );
    // A repeated form parameter arrives as an array: its last value counts.
    let repeated = read_plivo(
        "status",
        "plivo.call.ringing",
        json!({"CallUUID": "A", "CallStatus": ["in-progress", "ringing"], "Direction": "inbound"}),
    )
    .unwrap();
    assert_eq!(repeated.kind, Kind::Ringing);
    let callback_leg = read_plivo(
        "answer",
        "plivo.call.answered",
        json!({"CallUUID": "A", "session": "callback:0193", "Direction": "outbound",
               "CallStatus": "in-progress"}),
    )
    .unwrap();
    assert_eq!(callback_leg.session, "callback:0193");
    assert_eq!(
        read_plivo("status", "plivo.call.status", json!({"From": "+1"})),
        None,
        "no call id: nothing to log"
    );
}

#[test]
fn voximplant_scenario_events_follow_the_documented_contract() {
    let event = |data: Value| {
        let mut e = CloudEvent::new(
            "e".into(),
            "voximplant/scenario".into(),
            "com.voximplant.call.x".into(),
            data,
        );
        e.time = RECEIVED;
        e
    };
    let started = read(
        &event(
            json!({"kind": "started", "session_id": "77", "direction": "inbound",
                      "from": "+15105559999", "to": "+15550009999",
                      "time": "2026-12-04T09:59:00Z"}),
        ),
        "voximplant.call.started",
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(started.session, "voximplant:77");
    assert_eq!(started.kind, Kind::Ringing);
    assert_eq!(started.at, datetime!(2026-12-04 09:59:00 UTC));
    assert_eq!(started.customer.as_deref(), Some("+15105559999"));
    let ended = read(
        &event(json!({"kind": "ended", "session_id": 77, "duration": 12.6,
                      "time": 1_764_842_400_000_i64})),
        "voximplant.call.ended",
        None,
    )
    .unwrap()
    .unwrap();
    assert!(matches!(
        ended.kind,
        Kind::Ended {
            duration: Some(12),
            ..
        }
    ));
    assert_eq!(ended.at.unix_timestamp(), 1_764_842_400);
    let no_session = read(
        &event(json!({"kind": "started"})),
        "voximplant.call.started",
        None,
    );
    assert!(no_session.unwrap_err().contains("session_id"));
}

#[test]
fn web_callbacks_are_sessions_of_their_own() {
    let mut event = CloudEvent::new(
        "e-1".into(),
        "acrobits/demo".into(),
        "com.acrobits.web_callback".into(),
        json!({"username": "demo", "target": "+15551231234", "callback": "+15559879876",
               "session_id": "callback:0193"}),
    );
    event.time = RECEIVED;
    let input = read(&event, "acrobits.web_callback", None)
        .unwrap()
        .unwrap();
    assert_eq!(input.session, "callback:0193");
    assert_eq!(
        input.kind,
        Kind::Requested {
            user: "demo".into(),
            target: "+15551231234".into(),
            thread: None,
        }
    );
    event.data = json!({"target": "+1"});
    assert!(read(&event, "acrobits.web_callback", None).is_err());
    event.data = json!([1]);
    assert!(read(&event, "acrobits.web_callback", None).is_err());
}

#[test]
fn provider_times_in_every_shape() {
    let at = datetime!(2020-04-08 11:34:33 UTC);
    assert_eq!(parse_time("2020-04-08 11:34:33"), Some(at));
    assert_eq!(parse_time("2020-04-08 11:34:33.238707"), Some(at));
    assert_eq!(
        parse_time("2020-04-08 17:04:33+05:30"),
        Some(at),
        "an offset is honoured"
    );
    assert_eq!(parse_time("2020-04-08T11:34:33Z"), Some(at));
    assert_eq!(parse_time("1586345673"), Some(at));
    assert_eq!(parse_time("1586345673000"), Some(at));
    for bad in ["", "yesterday", "-5", "NaN", "inf", "2020-13-40 99:99:99"] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn no_plivo_form_makes_the_reader_panic(
        pairs in proptest::collection::btree_map(
            "CallUUID|ALegUUID|DialALegUUID|DialAction|DialStatus|DialBLegUUID|CallStatus|Direction|From|To|Duration|AnswerTime|EndTime|RecordUrl|session",
            ".{0,24}",
            0..10,
        ),
        route in "answer|hangup|status",
    ) {
        let data: serde_json::Map<String, Value> =
            pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let _ = read(&plivo_event(&route, Value::Object(data)), "plivo.call.x", Some("US"));
    }

    #[test]
    fn no_time_text_makes_the_parser_panic(text in ".{0,40}") {
        let _ = parse_time(&text);
    }
}
