//! The state machine, driven without I/O: examples, then properties over random inputs.

use super::*;
use proptest::prelude::*;

fn settings() -> Settings {
    Settings {
        failures: 3,
        ratio: 0.5,
        min_requests: 10,
        window: Duration::from_secs(30),
        cool_down: Duration::from_secs(10),
    }
}

/// Drives the machine like the I/O layer does, collecting the transitions.
struct Drive {
    state: State,
    now: Instant,
    transitions: Vec<Transition>,
}

impl Drive {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: State::closed(now),
            now,
            transitions: Vec::new(),
        }
    }

    fn step(&mut self, input: Input) -> Option<Decision> {
        let (state, effects) = next(self.state, input, self.now, &settings());
        self.state = state;
        self.transitions.extend(effects.transition);
        effects.decision
    }

    fn wait(&mut self, d: Duration) {
        self.now += d;
    }
}

#[test]
fn failures_in_a_row_open_it_and_a_success_resets_the_count() {
    let mut b = Drive::new();
    for input in [false, false, true, false, false] {
        b.step(if input {
            Input::Answered { probe: false }
        } else {
            Input::Failed { probe: false }
        });
    }
    assert!(
        b.transitions.is_empty(),
        "two, a success, two: still closed"
    );
    b.step(Input::Failed { probe: false });
    assert_eq!(b.transitions, [Transition::Opened(Cause::InARow(3))]);
    assert_eq!(
        b.step(Input::Request),
        Some(Decision::Wait {
            remaining: Duration::from_secs(10)
        })
    );
}

#[test]
fn a_failure_ratio_in_one_window_opens_it() {
    let mut b = Drive::new();
    // Alternating failures never make three in a row; the tenth attempt reaches the
    // window's minimum with half of them failed.
    for i in 0..9 {
        b.step(if i % 2 == 0 {
            Input::Failed { probe: false }
        } else {
            Input::Answered { probe: false }
        });
    }
    assert!(b.transitions.is_empty());
    b.step(Input::Failed { probe: false });
    assert_eq!(
        b.transitions,
        [Transition::Opened(Cause::Ratio {
            failures: 6,
            attempts: 10
        })]
    );
}

#[test]
fn failures_of_an_old_window_do_not_count() {
    let mut b = Drive::new();
    for i in 0..9 {
        b.step(if i % 2 == 0 {
            Input::Failed { probe: false }
        } else {
            Input::Answered { probe: false }
        });
    }
    b.wait(Duration::from_secs(31));
    b.step(Input::Answered { probe: false });
    b.step(Input::Failed { probe: false });
    assert!(b.transitions.is_empty(), "a fresh window: 1 of 2");
}

#[test]
fn after_the_cool_down_one_probe_goes_and_decides() {
    let mut b = Drive::new();
    for _ in 0..3 {
        b.step(Input::Failed { probe: false });
    }
    b.wait(Duration::from_secs(4));
    assert_eq!(
        b.step(Input::Request),
        Some(Decision::Wait {
            remaining: Duration::from_secs(6)
        })
    );
    // A request sent before it opened, failing late, changes nothing.
    b.step(Input::Failed { probe: false });
    b.wait(Duration::from_secs(6));
    assert_eq!(b.step(Input::Request), Some(Decision::Probe));
    assert_eq!(
        b.step(Input::Request),
        Some(Decision::Wait {
            remaining: Duration::ZERO
        }),
        "one probe at a time"
    );
    b.step(Input::Failed { probe: true });
    assert_eq!(
        b.step(Input::Request),
        Some(Decision::Wait {
            remaining: Duration::from_secs(10)
        })
    );
    b.wait(Duration::from_secs(10));
    assert_eq!(b.step(Input::Request), Some(Decision::Probe));
    b.step(Input::ProbeUnsent);
    assert_eq!(
        b.step(Input::Request),
        Some(Decision::Probe),
        "an unsent probe lets the next job probe"
    );
    b.step(Input::Answered { probe: true });
    assert_eq!(b.step(Input::Request), Some(Decision::Send));
    assert_eq!(
        b.transitions,
        [
            Transition::Opened(Cause::InARow(3)),
            Transition::HalfOpened,
            Transition::Reopened,
            Transition::HalfOpened,
            Transition::Closed,
        ]
    );
}

/// What the I/O layer may do next.
#[derive(Debug, Clone)]
enum Op {
    /// A job asks to send.
    Request,
    /// The request out longest finishes (answered or failed).
    Finish(bool),
    /// An admitted probe is not sent after all.
    Unsent,
    /// Time passes (ms).
    Wait(u64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            3 => Just(Op::Request),
            3 => any::<bool>().prop_map(Op::Finish),
            1 => Just(Op::Unsent),
            2 => (0u64..15_000).prop_map(Op::Wait),
        ],
        0..200,
    )
}

fn any_settings() -> impl Strategy<Value = Settings> {
    (1u32..6, 1u32..=10, 1u32..20, 1u64..60, 1u64..20).prop_map(
        |(failures, tenths, min_requests, window, cool_down)| Settings {
            failures,
            ratio: f64::from(tenths) / 10.0,
            min_requests,
            window: Duration::from_secs(window),
            cool_down: Duration::from_secs(cool_down),
        },
    )
}

fn kind(state: State) -> &'static str {
    state.name()
}

proptest! {
    /// Driven as the I/O layer drives it, over any sequence of requests, outcomes and
    /// pauses: a transition is reported exactly when the state's kind changes and names
    /// that change; nothing is sent while open; at most one probe is ever out; a probe
    /// goes only after a full cool-down; only a probe's answer closes an open breaker; and
    /// [`waiting`] foretells every wait.
    #[test]
    fn the_machine_keeps_its_promises(settings in any_settings(), ops in ops()) {
        let mut now = Instant::now();
        let mut state = State::closed(now);
        // Requests out, oldest first: whether each is the probe.
        let mut out: std::collections::VecDeque<bool> = Default::default();
        let mut opened_at: Option<Instant> = None;
        for op in ops {
            let input = match op {
                Op::Request => Input::Request,
                Op::Finish(answered) => match out.pop_front() {
                    Some(probe) if answered => Input::Answered { probe },
                    Some(probe) => Input::Failed { probe },
                    None => continue,
                },
                Op::Unsent => match out.iter().position(|probe| *probe) {
                    Some(i) => {
                        out.remove(i);
                        Input::ProbeUnsent
                    }
                    None => continue,
                },
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    continue;
                }
            };
            let before = state;
            let peek = waiting(state, now);
            let (after, effects) = next(state, input, now, &settings);
            state = after;

            // The look without asking agrees with the answer.
            if input == Input::Request {
                let told = match effects.decision {
                    Some(Decision::Wait { remaining }) => Some(remaining),
                    _ => None,
                };
                prop_assert_eq!(peek, told);
            }

            // A transition exactly when the kind changes, naming that change.
            match effects.transition {
                None => prop_assert_eq!(kind(before), kind(after)),
                Some(t) => {
                    let expected = match t {
                        Transition::Opened(_) => ("closed", "open"),
                        Transition::HalfOpened => ("open", "half_open"),
                        Transition::Closed => ("half_open", "closed"),
                        Transition::Reopened => ("half_open", "open"),
                    };
                    prop_assert_eq!((kind(before), kind(after)), expected);
                }
            }
            if matches!(effects.transition, Some(Transition::Opened(_) | Transition::Reopened)) {
                opened_at = Some(now);
            }
            if matches!(effects.transition, Some(Transition::Closed)) {
                prop_assert!(
                    matches!(input, Input::Answered { probe: true }),
                    "only a probe's answer closes it"
                );
            }

            // Exactly one decision per request, none otherwise.
            prop_assert_eq!(effects.decision.is_some(), input == Input::Request);
            match effects.decision {
                Some(Decision::Send) => {
                    prop_assert_eq!(kind(before), "closed");
                    out.push_back(false);
                }
                Some(Decision::Probe) => {
                    let since = opened_at.expect("a probe follows an opening");
                    prop_assert!(now.duration_since(since) >= settings.cool_down);
                    prop_assert!(!out.iter().any(|probe| *probe), "one probe at a time");
                    out.push_back(true);
                }
                Some(Decision::Wait { remaining }) => {
                    prop_assert!(kind(before) != "closed");
                    prop_assert!(remaining <= settings.cool_down);
                }
                None => {}
            }
        }
    }

    /// `breaker_failures` failures in a row always open a closed breaker, and answers alone
    /// never do.
    #[test]
    fn failures_open_and_answers_never_do(settings in any_settings(), answers in 0usize..100) {
        let now = Instant::now();
        let mut state = State::closed(now);
        for _ in 0..answers {
            let (after, effects) = next(state, Input::Answered { probe: false }, now, &settings);
            prop_assert_eq!(effects.transition, None);
            state = after;
        }
        let mut opened = false;
        for _ in 0..settings.failures {
            let (after, effects) = next(state, Input::Failed { probe: false }, now, &settings);
            opened |= matches!(effects.transition, Some(Transition::Opened(_)));
            state = after;
        }
        prop_assert!(opened);
        prop_assert_eq!(kind(state), "open");
    }
}
