//! The callbacks of a whole Plivo call, as data: which route gets which form parameters, in
//! which order, and what each one means. [`steps`] is pure; `plivo::send_call` signs and sends.
//!
//! The parameters are the ones the call log reads (services/relay-worker, `call_log/input.rs`)
//! and Plivo sends: numbers as Plivo writes them (E.164 digits without the `+`), times as
//! `YYYY-MM-DD HH:MM:SS` in UTC.
//!
//! * `answered`: inbound. The application answers the caller's leg (`/answer`,
//!   `in-progress`), the `<Dial>` `callbackUrl` reports the agent's leg answering
//!   (`DialAction=answer`), the caller hangs up (`/hangup`, `completed`).
//! * `missed`: inbound. The application answers, two agent legs ring and hang up unanswered
//!   (`DialAction=hangup`), the caller hangs up: one "Missed call" once `missed_grace` is over.
//! * `out-of-order`: outbound (an API call from the channel number to the customer). Its
//!   hangup (`completed`, with `Duration` and `AnswerTime`) arrives first, then the answer,
//!   then a late ringing, then the same hangup again (as Plivo retries): the thread still
//!   reads started, answered, ended.

use std::time::Duration;

use clap::ValueEnum;
use time::OffsetDateTime;
use time::macros::format_description;

/// Which call `relayctl send plivo-call` plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Inbound: the application answers, an agent's leg answers, the caller hangs up.
    Answered,
    /// Inbound: two agent legs ring unanswered, the caller hangs up.
    Missed,
    /// Outbound: the hangup first, then the answer, a late ringing and the hangup again.
    OutOfOrder,
}

/// The customer's number when `--from`/`--to` do not say.
pub(crate) const CUSTOMER: &str = "+15105559999";
/// The company's (channel) number when `--from`/`--to` do not say.
pub(crate) const CHANNEL: &str = "+15550009999";
/// The second agent leg of the `missed` ring group.
pub(crate) const COLLEAGUE: &str = "+15550002001";
/// Talk time of the `out-of-order` call.
const TALK_SECS: u64 = 65;
/// Ringing time of the `out-of-order` call, before the customer answered.
const RING_SECS: u64 = 7;

impl Scenario {
    /// Plivo's `From` and `To` when not given: inbound the customer calls the channel number,
    /// outbound the channel number calls the customer.
    pub(crate) fn default_numbers(self) -> (&'static str, &'static str) {
        match self {
            Self::Answered | Self::Missed => (CUSTOMER, CHANNEL),
            Self::OutOfOrder => (CHANNEL, CUSTOMER),
        }
    }
}

/// One call to play.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The caller's leg (`CallUUID`): the session is `plivo:<uuid>`.
    pub(crate) uuid: String,
    /// Plivo's `From`.
    pub(crate) from: String,
    /// Plivo's `To`.
    pub(crate) to: String,
    /// The agent who answers (or rings, in `missed`).
    pub(crate) agent: String,
    /// When the first callback is sent.
    pub(crate) start: OffsetDateTime,
    /// Time between two callbacks.
    pub(crate) pause: Duration,
    /// How long the call log waits for a late answer before "Missed call", when known.
    pub(crate) missed_grace: Option<Duration>,
}

/// One callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Route path, e.g. `/v1/plivo/answer`.
    pub(crate) route: &'static str,
    /// What it means, in words.
    pub(crate) meaning: String,
    /// When to send it, after the first.
    pub(crate) after: Duration,
    /// The form parameters, in the order sent.
    pub(crate) params: Vec<(String, String)>,
}

/// A number as Plivo writes it in callbacks: E.164 without the `+` (a SIP URI stays as it is).
fn plivo_number(number: &str) -> String {
    number.trim().trim_start_matches('+').to_owned()
}

/// A time as Plivo writes it in callbacks.
fn plivo_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The callbacks of `call` in `scenario`, in the order they are sent; `leg_id` makes the id of
/// each agent leg (Plivo's `DialBLegUUID`).
pub(crate) fn steps(
    scenario: Scenario,
    call: &Call,
    leg_id: &mut dyn FnMut() -> String,
) -> Vec<Step> {
    let (from, to) = (plivo_number(&call.from), plivo_number(&call.to));
    let at = |n: u32| call.pause * n;
    let time_at = |n: u32| plivo_time(call.start + at(n));
    let whole_secs = |n: u32| at(n).as_secs().to_string();
    match scenario {
        Scenario::Answered | Scenario::Missed => {
            let inbound = |extra: &[(&str, &str)]| {
                let mut params = pairs(&[
                    ("CallUUID", &call.uuid),
                    ("From", &from),
                    ("To", &to),
                    ("Direction", "inbound"),
                ]);
                params.extend(pairs(extra));
                params
            };
            let dial = |action: &str, agent: &str, leg: &str| {
                let (event, status) = match action {
                    "answer" => ("DialAnswer", "answer"),
                    _ => ("DialHangup", "hangup"),
                };
                let mut params = inbound(&[
                    ("CallStatus", "in-progress"),
                    ("Event", event),
                    ("DialAction", action),
                    ("DialALegUUID", &call.uuid),
                    ("DialBLegUUID", leg),
                    ("DialBLegFrom", &from),
                    ("DialBLegTo", &plivo_number(agent)),
                    ("DialBLegStatus", status),
                ]);
                if action == "hangup" {
                    params.extend(pairs(&[
                        ("DialBLegHangupCause", "NO_ANSWER"),
                        ("DialBLegDuration", "0"),
                        ("DialBLegBillDuration", "0"),
                    ]));
                }
                params
            };
            let answer = Step {
                route: "/v1/plivo/answer",
                meaning: format!(
                    "the application answers the caller's leg (inbound from {}, in-progress)",
                    call.from
                ),
                after: at(0),
                params: inbound(&[
                    ("CallStatus", "in-progress"),
                    ("Event", "StartApp"),
                    ("StartTime", &time_at(0)),
                ]),
            };
            let hangup = |n: u32, meaning: String| Step {
                route: "/v1/plivo/hangup",
                meaning,
                after: at(n),
                params: inbound(&[
                    ("CallStatus", "completed"),
                    ("Event", "Hangup"),
                    ("StartTime", &time_at(0)),
                    ("AnswerTime", &time_at(0)),
                    ("EndTime", &time_at(n)),
                    ("Duration", &whole_secs(n)),
                    ("BillDuration", &whole_secs(n)),
                    ("HangupCause", "NORMAL_CLEARING"),
                    ("HangupCauseName", "Normal Hangup"),
                    ("HangupCauseCode", "4000"),
                    ("HangupSource", "Caller"),
                ]),
            };
            if scenario == Scenario::Answered {
                vec![
                    answer,
                    Step {
                        route: "/v1/plivo/status",
                        meaning: format!(
                            "<Dial> callbackUrl: the agent's leg to {} answers",
                            call.agent
                        ),
                        after: at(1),
                        params: dial("answer", &call.agent, &leg_id()),
                    },
                    hangup(2, "the caller hangs up (completed)".to_owned()),
                ]
            } else {
                let grace = call.missed_grace.map_or_else(
                    || "missed_grace".to_owned(),
                    |g| format!("missed_grace, {}", relay_core::duration::label(g)),
                );
                let mut steps = vec![answer];
                for (n, agent) in [(1, call.agent.as_str()), (2, COLLEAGUE)] {
                    steps.push(Step {
                        route: "/v1/plivo/status",
                        meaning: format!(
                            "<Dial> callbackUrl: agent leg {n} of 2, to {agent}, hangs up unanswered"
                        ),
                        after: at(n),
                        params: dial("hangup", agent, &leg_id()),
                    });
                }
                steps.push(hangup(
                    3,
                    format!(
                        "the caller hangs up unanswered (completed); \"Missed call\" after {grace}"
                    ),
                ));
                steps
            }
        }
        Scenario::OutOfOrder => {
            let ended = call.start;
            let answered = ended - Duration::from_secs(TALK_SECS);
            let started = answered - Duration::from_secs(RING_SECS);
            let outbound = |extra: &[(&str, &str)]| {
                let mut params = pairs(&[
                    ("CallUUID", &call.uuid),
                    ("ALegUUID", &call.uuid),
                    ("From", &from),
                    ("To", &to),
                    ("Direction", "outbound"),
                ]);
                params.extend(pairs(extra));
                params
            };
            let talk = TALK_SECS.to_string();
            let hangup = outbound(&[
                ("CallStatus", "completed"),
                ("Event", "Hangup"),
                ("StartTime", &plivo_time(started)),
                ("AnswerTime", &plivo_time(answered)),
                ("EndTime", &plivo_time(ended)),
                ("Duration", &talk),
                ("BillDuration", &talk),
                ("HangupCause", "NORMAL_CLEARING"),
                ("HangupCauseName", "Normal Hangup"),
                ("HangupCauseCode", "4000"),
                ("HangupSource", "Callee"),
            ]);
            vec![
                Step {
                    route: "/v1/plivo/hangup",
                    meaning: format!(
                        "the hangup first: outbound to {}, completed after {TALK_SECS}s of talk",
                        call.to
                    ),
                    after: at(0),
                    params: hangup.clone(),
                },
                Step {
                    route: "/v1/plivo/answer",
                    meaning: "the answer, late (in-progress): changes nothing".to_owned(),
                    after: at(1),
                    params: outbound(&[("CallStatus", "in-progress"), ("Event", "StartApp")]),
                },
                Step {
                    route: "/v1/plivo/status",
                    meaning: "the ringing, later still: changes nothing".to_owned(),
                    after: at(2),
                    params: outbound(&[
                        ("CallStatus", "ringing"),
                        ("StartTime", &plivo_time(started)),
                    ]),
                },
                Step {
                    route: "/v1/plivo/hangup",
                    meaning: "the same hangup again (a provider retry): a duplicate".to_owned(),
                    after: at(3),
                    params: hangup,
                },
            ]
        }
    }
}

#[cfg(test)]
#[path = "plivo_call_tests.rs"]
mod tests;
