//! The toll-fraud guard of an authenticated request, at ingress so that the app hears the
//! answer at once: both numbers E.164 and allowed, the callback limits, and repeats.
//!
//! - **Numbers**: both legs are originated and paid for, so both must parse as E.164
//!   ([`relay_core::phone`]), start with an `allowed_prefixes` entry (when any is set) and with
//!   no `denied_prefixes` entry (premium-rate and satellite ranges); a denial wins.
//! - **Limits** (Redis, shared by every replica; [`relay_store::Limit`]): per account per
//!   minute and per day, per target number per minute and per day, all accounts together per
//!   minute and per day, and callbacks in progress per account (a sliding window of
//!   `concurrent_window` whose members the worker removes when a call ends or fails). All
//!   are checked and counted in one atomic step; a refused request counts nowhere.
//! - **Repeats**: a softphone that sends the same request again (same account, callback number
//!   and target within `duplicate_window`) finds the first one's claim
//!   (`seen:acrobits:callback:…`, `SET NX`) and gets success again without a second event.
//!   Its event id derives from the request and the window it falls in, so even a repeat that
//!   gets past the claim (a publish that timed out but was stored) collapses downstream.
//!
//! Everything here needs Redis: without it, callbacks are refused (they cost money; docs/ARCHITECTURE.md,
//! invariant 2's one exception).

use std::time::Duration;

use axum::http::StatusCode;
use relay_core::config::AcrobitsSource;
use relay_core::{ids, phone};
use relay_store::Limit;

use super::reply::{Refusal, types};

/// How long a claim waits for its request's publish before it lapses (a request that died
/// midway must not block its repeats for the whole window).
const PENDING_TTL: Duration = Duration::from_secs(30);

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Both numbers in E.164, or the refusal the app shows.
pub(super) fn numbers(
    config: &AcrobitsSource,
    target: Option<&str>,
    callback: Option<&str>,
) -> Result<(String, String), Refusal> {
    let parse = |raw: Option<&str>, what: &str| {
        raw.and_then(phone::normalize_e164).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                types::INVALID_NUMBER,
                "invalid_number",
                format!("The {what} is not a valid international number."),
            )
        })
    };
    let target = parse(target, "number to call")?;
    let callback = parse(callback, "callback number")?;
    for number in [&target, &callback] {
        destination(config, number)?;
    }
    Ok((target, callback))
}

/// Whether calls to `number` (E.164) are allowed: within `allowed_prefixes` (when set) and
/// within no `denied_prefixes`.
fn destination(config: &AcrobitsSource, number: &str) -> Result<(), Refusal> {
    let refuse = |reason| {
        Refusal::new(
            StatusCode::FORBIDDEN,
            types::DESTINATION_NOT_ALLOWED,
            "destination_not_allowed",
            "Calls to this destination are not allowed.",
        )
        .because(reason)
    };
    config.number_policy(number).map_err(refuse)
}

/// Which callback limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    AccountMinute,
    AccountDay,
    TargetMinute,
    TargetDay,
    GlobalMinute,
    GlobalDay,
    InProgress,
}

impl Scope {
    /// The `reason` label and the app's message.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::AccountMinute => (
                "account_per_minute",
                "Too many callback requests, please wait a minute.",
            ),
            Self::AccountDay => (
                "account_per_day",
                "You have reached today's callback limit.",
            ),
            Self::TargetMinute => (
                "target_per_minute",
                "Too many callbacks to this number, please wait a minute.",
            ),
            Self::TargetDay => ("target_per_day", "Too many callbacks to this number today."),
            Self::GlobalMinute => (
                "global_per_minute",
                "The callback service is busy, please try again in a minute.",
            ),
            Self::GlobalDay => (
                "global_per_day",
                "The callback service has reached its daily limit.",
            ),
            Self::InProgress => (
                "account_in_progress",
                "Your earlier callbacks are still in progress, please wait.",
            ),
        }
    }

    /// The 429 the app shows, with `Retry-After`.
    pub(super) fn refusal(self, retry_after: Duration) -> Refusal {
        let (reason, message) = self.describe();
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            types::RATE_LIMITED,
            "rate_limited",
            message,
        )
        .because(reason)
        .retry_after(retry_after)
    }
}

/// The limits an accepted callback of `username` to `target` counts against, under
/// `rate:acrobits:…`; those set to 0 are left out.
pub(super) fn limits(config: &AcrobitsSource, username: &str, target: &str) -> Vec<(Limit, Scope)> {
    let fixed = |name: String, max: u32, window, scope| {
        (max > 0).then(|| (Limit::fixed(name, u64::from(max), window), scope))
    };
    [
        fixed(
            format!("acrobits:account:minute:{username}"),
            config.rate_limit_per_minute,
            MINUTE,
            Scope::AccountMinute,
        ),
        fixed(
            format!("acrobits:account:day:{username}"),
            config.rate_limit_per_day,
            DAY,
            Scope::AccountDay,
        ),
        fixed(
            format!("acrobits:target:minute:{target}"),
            config.target_limit_per_minute,
            MINUTE,
            Scope::TargetMinute,
        ),
        fixed(
            format!("acrobits:target:day:{target}"),
            config.target_limit_per_day,
            DAY,
            Scope::TargetDay,
        ),
        fixed(
            "acrobits:global:minute".to_owned(),
            config.global_limit_per_minute,
            MINUTE,
            Scope::GlobalMinute,
        ),
        fixed(
            "acrobits:global:day".to_owned(),
            config.global_limit_per_day,
            DAY,
            Scope::GlobalDay,
        ),
        (config.max_concurrent_per_account > 0).then(|| {
            (
                Limit::sliding(
                    AcrobitsSource::in_progress_counter(username),
                    u64::from(config.max_concurrent_per_account),
                    config.concurrent_window,
                ),
                Scope::InProgress,
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The claim of one callback request: its key (after the prefix), and the event id an
/// accepted request of this content gets within the current `duplicate_window`.
pub(super) struct Repeat {
    pub(super) key: String,
    pub(super) event_id: String,
}

/// What a claim holds: `pending:{event id}` while its request publishes, then
/// `done:{event id}` for the rest of the window.
pub(super) enum Claimed {
    /// A repeat of a request that was accepted.
    Done,
    /// A repeat of a request still being published.
    Pending,
}

impl Repeat {
    pub(super) fn new(username: &str, callback: &str, target: &str, window: Duration) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let bucket = now / window.as_secs().max(1);
        Self {
            key: format!("seen:acrobits:callback:{username}:{callback}:{target}"),
            event_id: ids::derived_event_id(
                "acrobits",
                &[username, callback, target, &bucket.to_string()],
            ),
        }
    }

    /// What the claim holds while the request publishes, and for how long.
    pub(super) fn pending(&self, window: Duration) -> (String, Duration) {
        (
            format!("pending:{}", self.event_id),
            PENDING_TTL.min(window),
        )
    }

    /// What the claim holds once the request was accepted.
    pub(super) fn done(&self) -> String {
        format!("done:{}", self.event_id)
    }

    /// Reads what another request's claim holds.
    pub(super) fn read(held: &str) -> Claimed {
        if held.starts_with("done:") {
            Claimed::Done
        } else {
            Claimed::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AcrobitsSource {
        AcrobitsSource {
            allowed_prefixes: vec!["+1".into(), "+44".into()],
            ..AcrobitsSource::default()
        }
    }

    fn reason(result: Result<(String, String), Refusal>) -> &'static str {
        result.err().map_or("accepted", |r| r.reason)
    }

    #[test]
    fn every_limits_reason_has_its_series_from_start_up() {
        let scopes = [
            Scope::AccountMinute,
            Scope::AccountDay,
            Scope::TargetMinute,
            Scope::TargetDay,
            Scope::GlobalMinute,
            Scope::GlobalDay,
            Scope::InProgress,
        ];
        for scope in scopes {
            // The match fails to compile when a scope is added: add it to the list above.
            match scope {
                Scope::AccountMinute
                | Scope::AccountDay
                | Scope::TargetMinute
                | Scope::TargetDay
                | Scope::GlobalMinute
                | Scope::GlobalDay
                | Scope::InProgress => {}
            }
            let refusal = scope.refusal(Duration::from_secs(1));
            assert!(super::super::reply::REASONS.contains(&refusal.reason));
            assert!(super::super::reply::OUTCOMES.contains(&refusal.outcome));
        }
    }

    #[test]
    fn numbers_are_normalised_then_allowed_or_denied() {
        let c = config();
        assert_eq!(
            numbers(&c, Some("+1 (555) 123-1234"), Some("0044 20 7946 0958")).unwrap(),
            ("+15551231234".to_owned(), "+442079460958".to_owned())
        );
        assert_eq!(
            reason(numbers(&c, Some("5551231234"), Some("+15559879876"))),
            "invalid_number"
        );
        assert_eq!(
            reason(numbers(&c, Some("+15551231234"), None)),
            "invalid_number"
        );
        // Outside the allowed prefixes, either leg.
        assert_eq!(
            reason(numbers(&c, Some("+4915112345678"), Some("+15559879876"))),
            "destination_not_allowed"
        );
        assert_eq!(
            reason(numbers(&c, Some("+15559879876"), Some("+4915112345678"))),
            "destination_not_allowed"
        );
        // Denied wins over allowed: NANP premium rate, UK 09, either leg.
        assert_eq!(
            reason(numbers(&c, Some("+19005551234"), Some("+15559879876"))),
            "destination_denied"
        );
        assert_eq!(
            reason(numbers(&c, Some("+15559879876"), Some("+449098790000"))),
            "destination_denied"
        );
        let status = numbers(&c, Some("+19005551234"), Some("+15559879876"))
            .unwrap_err()
            .status;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn the_default_deny_list_covers_satellite_and_international_networks() {
        let c = AcrobitsSource::default();
        for number in [
            "+881631234567",
            "+882345678901",
            "+88321234567",
            "+870772123456",
        ] {
            assert!(
                destination(&c, number).is_err(),
                "{number} should be denied"
            );
        }
        assert!(destination(&c, "+15551231234").is_ok());
    }

    #[test]
    fn limits_are_named_per_scope_and_zero_turns_one_off() {
        let mut c = config();
        let all = limits(&c, "alice", "+15551231234");
        let names: Vec<&str> = all.iter().map(|(l, _)| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "acrobits:account:minute:alice",
                "acrobits:account:day:alice",
                "acrobits:target:minute:+15551231234",
                "acrobits:target:day:+15551231234",
                "acrobits:global:minute",
                "acrobits:global:day",
                "acrobits:in-progress:alice",
            ]
        );
        assert_eq!(all[6].0.kind, relay_store::Window::Sliding);
        c.target_limit_per_day = 0;
        c.max_concurrent_per_account = 0;
        let scopes: Vec<Scope> = limits(&c, "alice", "+1")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert!(!scopes.contains(&Scope::TargetDay) && !scopes.contains(&Scope::InProgress));
    }

    #[test]
    fn a_limit_refusal_says_when_to_come_back() {
        let refusal = Scope::TargetDay.refusal(Duration::from_millis(1500));
        assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.retry_after, Some(2), "rounded up");
        assert_eq!(refusal.reason, "target_per_day");
        assert_eq!(
            Scope::GlobalMinute
                .refusal(Duration::from_millis(1))
                .retry_after,
            Some(1)
        );
    }

    #[test]
    fn a_repeat_gets_the_same_key_and_event_id_within_its_window() {
        let window = Duration::from_secs(3600);
        let a = Repeat::new("alice", "+15559879876", "+15551231234", window);
        let b = Repeat::new("alice", "+15559879876", "+15551231234", window);
        assert_eq!(
            (a.key.as_str(), a.event_id.as_str()),
            (b.key.as_str(), b.event_id.as_str())
        );
        let other = Repeat::new("alice", "+15559879876", "+15551239999", window);
        assert_ne!(a.key, other.key);
        assert_ne!(a.event_id, other.event_id);
        assert!(matches!(Repeat::read(&a.done()), Claimed::Done));
        assert!(matches!(
            Repeat::read(&a.pending(window).0),
            Claimed::Pending
        ));
        assert_eq!(a.pending(Duration::from_secs(5)).1, Duration::from_secs(5));
    }

    proptest::proptest! {
        /// Whatever the input, an accepted pair is two canonical E.164 numbers within the
        /// policy.
        #[test]
        fn accepted_numbers_are_canonical_and_within_policy(
            target in "[+0-9 ()-]{0,20}",
            callback in "\\+1[0-9]{10}",
        ) {
            let c = config();
            if let Ok((t, cb)) = numbers(&c, Some(&target), Some(&callback)) {
                for n in [&t, &cb] {
                    proptest::prop_assert_eq!(phone::normalize_e164(n), Some(n.clone()));
                    proptest::prop_assert!(n.starts_with("+1") || n.starts_with("+44"));
                    proptest::prop_assert!(!c.denied_prefixes.iter().any(|p| n.starts_with(p.as_str())));
                }
            }
        }
    }
}
