//! Tests of [`super::steps`]: which callbacks make which call.

use super::*;

fn call(scenario: Scenario) -> Call {
    let (from, to) = scenario.default_numbers();
    Call {
        uuid: "019a0000-0000-7000-8000-000000000001".into(),
        from: from.into(),
        to: to.into(),
        agent: "+15550002000".into(),
        start: time::macros::datetime!(2026-12-04 10:00:00 UTC),
        pause: Duration::from_secs(1),
        missed_grace: Some(Duration::from_secs(10)),
    }
}

fn play(scenario: Scenario) -> Vec<Step> {
    let mut n = 0;
    steps(scenario, &call(scenario), &mut || {
        n += 1;
        format!("leg-{n}")
    })
}

fn get<'a>(step: &'a Step, name: &str) -> Option<&'a str> {
    step.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn routes(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.route).collect()
}

#[test]
fn an_answered_call_is_answer_dial_answer_hangup() {
    let steps = play(Scenario::Answered);
    assert_eq!(
        routes(&steps),
        ["/v1/plivo/answer", "/v1/plivo/status", "/v1/plivo/hangup"]
    );
    let [answer, dial, hangup] = &steps[..] else {
        unreachable!()
    };
    for step in &steps {
        assert_eq!(
            get(step, "CallUUID"),
            Some(call(Scenario::Answered).uuid.as_str())
        );
        assert_eq!(get(step, "Direction"), Some("inbound"));
        assert_eq!(get(step, "From"), Some("15105559999"), "Plivo's format");
        assert_eq!(get(step, "To"), Some("15550009999"));
    }
    assert_eq!(get(answer, "CallStatus"), Some("in-progress"));
    assert_eq!(get(dial, "DialAction"), Some("answer"));
    assert_eq!(get(dial, "DialALegUUID"), get(dial, "CallUUID"));
    assert_eq!(get(dial, "DialBLegUUID"), Some("leg-1"));
    assert_eq!(get(dial, "DialBLegTo"), Some("15550002000"));
    assert_eq!(get(hangup, "CallStatus"), Some("completed"));
    assert_eq!(get(hangup, "EndTime"), Some("2026-12-04 10:00:02"));
    assert_eq!(hangup.after, Duration::from_secs(2));
}

#[test]
fn a_missed_call_rings_two_agent_legs_that_hang_up() {
    let steps = play(Scenario::Missed);
    assert_eq!(
        routes(&steps),
        [
            "/v1/plivo/answer",
            "/v1/plivo/status",
            "/v1/plivo/status",
            "/v1/plivo/hangup"
        ]
    );
    let legs: Vec<_> = steps[1..3]
        .iter()
        .map(|s| {
            (
                get(s, "DialAction"),
                get(s, "DialBLegUUID"),
                get(s, "DialBLegTo"),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            (Some("hangup"), Some("leg-1"), Some("15550002000")),
            (Some("hangup"), Some("leg-2"), Some("15550002001"))
        ]
    );
    assert!(steps.iter().all(|s| get(s, "DialAction") != Some("answer")));
    assert_eq!(get(&steps[3], "CallStatus"), Some("completed"));
    assert!(
        steps[3].meaning.ends_with("after missed_grace, 10s"),
        "{}",
        steps[3].meaning
    );
}

#[test]
fn out_of_order_sends_the_hangup_first_and_again_last() {
    let steps = play(Scenario::OutOfOrder);
    assert_eq!(
        routes(&steps),
        [
            "/v1/plivo/hangup",
            "/v1/plivo/answer",
            "/v1/plivo/status",
            "/v1/plivo/hangup"
        ]
    );
    let statuses: Vec<_> = steps.iter().map(|s| get(s, "CallStatus")).collect();
    assert_eq!(
        statuses,
        [
            Some("completed"),
            Some("in-progress"),
            Some("ringing"),
            Some("completed")
        ]
    );
    assert_eq!(steps[0].params, steps[3].params, "the very same hangup");
    let hangup = &steps[0];
    assert_eq!(get(hangup, "Direction"), Some("outbound"));
    assert_eq!(get(hangup, "ALegUUID"), get(hangup, "CallUUID"));
    assert_eq!(
        get(hangup, "From"),
        Some("15550009999"),
        "the channel calls"
    );
    assert_eq!(get(hangup, "To"), Some("15105559999"));
    assert_eq!(get(hangup, "Duration"), Some("65"));
    assert_eq!(get(hangup, "AnswerTime"), Some("2026-12-04 09:58:55"));
    assert_eq!(get(hangup, "EndTime"), Some("2026-12-04 10:00:00"));
}

#[test]
fn numbers_and_times_are_written_as_plivo_writes_them() {
    assert_eq!(plivo_number("+15105559999"), "15105559999");
    assert_eq!(
        plivo_number("sip:alice@phone.plivo.com"),
        "sip:alice@phone.plivo.com"
    );
    let at = time::macros::datetime!(2026-12-04 12:00:05 +02:00);
    assert_eq!(plivo_time(at), "2026-12-04 10:00:05");
}
