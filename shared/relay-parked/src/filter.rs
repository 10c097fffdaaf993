//! Which parked messages to act on: by id, destination, type, reason and time (relayctl's
//! `--id`, `--destination`, `--type`, `--reason` and `--since`), matched against a message's
//! [`Facts`]. Pure functions, tested without a broker.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Facts;

/// The filters of one selection; a message matches when it passes every one given.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The message id (AMQP `message_id`), exactly.
    pub id: Option<String>,
    /// The job's destination (`x-relay-destination`), exactly.
    pub destination: Option<String>,
    /// A glob over the CloudEvent `type` or the routing key (see [`glob`]).
    pub ty: Option<String>,
    /// The relay's reason (`x-relay-reason`) or the broker's (`x-first-death-reason`).
    pub reason: Option<String>,
    /// Parked at or after this instant.
    pub since: Option<OffsetDateTime>,
}

impl Filter {
    /// Whether no filter is given (every message matches).
    pub fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.destination.is_none()
            && self.ty.is_none()
            && self.reason.is_none()
            && self.since.is_none()
    }

    /// Whether `facts` passes every filter given.
    pub fn matches(&self, facts: &Facts) -> bool {
        let exactly = |wanted: &Option<String>, actual: &Option<String>| match wanted {
            None => true,
            Some(wanted) => actual.as_deref() == Some(wanted.as_str()),
        };
        let ty = match &self.ty {
            None => true,
            Some(pattern) => [&facts.ty, &facts.routing_key]
                .into_iter()
                .flatten()
                .any(|text| glob(pattern, text)),
        };
        let reason = match &self.reason {
            None => true,
            // `broker:<reason>@<queue>` as `list` shows it, or either part's bare reason.
            Some(wanted) => [&facts.reason, &facts.broker_reason]
                .into_iter()
                .flatten()
                .any(|reason| reason == wanted),
        };
        // A message without a time cannot be shown to be recent: `--since` leaves it out.
        let since = match self.since {
            None => true,
            Some(since) => facts.time.is_some_and(|time| time >= since),
        };
        exactly(&self.id, &facts.id)
            && exactly(&self.destination, &facts.destination)
            && ty
            && reason
            && since
    }
}

/// Shell-style glob: `*` matches any run of characters (dots included, so `plivo.call.*` and
/// `com.plivo.*` both work), `?` one character; anything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with one backtrack point (the last `*`): linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether a topic binding `pattern` (`*` one word, `#` zero or more words) routes `key`, as
/// RabbitMQ's topic exchange decides.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn words(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| words(rest, &key[skip..])),
            Some((&word, rest)) => match key.split_first() {
                Some((first, key_rest)) => (word == "*" || word == *first) && words(rest, key_rest),
                None => false,
            },
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    words(&pattern, &key)
}

/// A `since` as an operator writes it: a duration back from `now` (`90s`, `30m`, `2h`, `7d`)
/// or an RFC 3339 time.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(time);
    }
    let ago = relay_core::duration::parse(text).map_err(|_| {
        format!(
            "`{text}` is neither a duration (90s, 30m, 2h, 7d) nor an RFC 3339 time \
             (2025-01-31T12:00:00Z)"
        )
    })?;
    now.checked_sub(time::Duration::try_from(ago).map_err(|_| format!("`{text}` is too long"))?)
        .ok_or_else(|| format!("`{text}` is too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn facts() -> Facts {
        Facts {
            id: Some("job-1".into()),
            queue: crate::Queue::DeadDeliveries,
            reason: Some("http_status".into()),
            broker_reason: None,
            detail: None,
            status: Some(400),
            attempts: Some(1),
            destination: Some("helpdesk".into()),
            routing_key: Some("plivo.call.ringing".into()),
            ty: Some("com.plivo.call.ringing".into()),
            time: Some(datetime!(2025-03-01 12:00 UTC)),
            body_size: 10,
            handler: None,
        }
    }

    #[test]
    fn no_filter_matches_everything() {
        assert!(Filter::default().is_empty());
        assert!(Filter::default().matches(&facts()));
    }

    #[test]
    fn every_given_filter_must_match() {
        let both = Filter {
            destination: Some("helpdesk".into()),
            reason: Some("http_status".into()),
            ..Filter::default()
        };
        assert!(!both.is_empty());
        assert!(both.matches(&facts()));
        let other_reason = Filter {
            reason: Some("attempts_exhausted".into()),
            ..both.clone()
        };
        assert!(!other_reason.matches(&facts()));
        let other_destination = Filter {
            destination: Some("alerts".into()),
            ..both
        };
        assert!(!other_destination.matches(&facts()));
    }

    #[test]
    fn id_and_destination_match_exactly() {
        let id = |id: &str| Filter {
            id: Some(id.into()),
            ..Filter::default()
        };
        assert!(id("job-1").matches(&facts()));
        assert!(!id("job").matches(&facts()));
        let mut without = facts();
        without.destination = None;
        let destination = Filter {
            destination: Some("helpdesk".into()),
            ..Filter::default()
        };
        assert!(!destination.matches(&without), "no destination, no match");
    }

    #[test]
    fn type_matches_the_cloudevent_type_or_the_routing_key() {
        let ty = |pattern: &str| Filter {
            ty: Some(pattern.into()),
            ..Filter::default()
        };
        assert!(ty("plivo.call.*").matches(&facts()), "routing key");
        assert!(ty("com.plivo.*").matches(&facts()), "CloudEvent type");
        assert!(ty("*.ringing").matches(&facts()));
        assert!(!ty("voximplant.*").matches(&facts()));
        let mut job = facts();
        job.ty = None;
        job.routing_key = None;
        assert!(!ty("*").matches(&job), "nothing to match against");
    }

    #[test]
    fn reason_matches_the_relays_or_the_brokers() {
        let reason = |r: &str| Filter {
            reason: Some(r.into()),
            ..Filter::default()
        };
        let mut parked = facts();
        parked.reason = Some("broker:delivery_limit@relay.handler.call-log".into());
        parked.broker_reason = Some("delivery_limit".into());
        assert!(reason("delivery_limit").matches(&parked));
        assert!(reason("broker:delivery_limit@relay.handler.call-log").matches(&parked));
        assert!(!reason("expired").matches(&parked));
        assert!(!reason("delivery").matches(&parked), "whole words only");
    }

    #[test]
    fn since_keeps_what_was_parked_at_or_after_it() {
        let since = |time| Filter {
            since: Some(time),
            ..Filter::default()
        };
        assert!(since(datetime!(2025-03-01 12:00 UTC)).matches(&facts()));
        assert!(since(datetime!(2025-03-01 11:00 UTC)).matches(&facts()));
        assert!(!since(datetime!(2025-03-01 12:00:01 UTC)).matches(&facts()));
        let mut timeless = facts();
        timeless.time = None;
        assert!(!since(datetime!(2000-01-01 0:00 UTC)).matches(&timeless));
    }

    #[test]
    fn globs() {
        assert!(glob("plivo.call.*", "plivo.call.ringing"));
        assert!(glob("plivo.call.*", "plivo.call."));
        assert!(glob("plivo.call.*", "plivo.call.a.b"), "`*` crosses dots");
        assert!(!glob("plivo.call.*", "plivo.calls"));
        assert!(glob("*", ""));
        assert!(glob("*min*", "voximplant.min_balance"));
        assert!(glob("v?ximplant.*", "voximplant.x"));
        assert!(!glob("v?ximplant", "vximplant"));
        assert!(glob("a*b*c", "a-b-b-c"));
        assert!(!glob("a*b*c", "a-b-b-"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(glob("ü*", "über"), "characters, not bytes");
    }

    #[test]
    fn topic_patterns_route_as_rabbitmq_does() {
        assert!(topic_matches("plivo.call.#", "plivo.call.ringing"));
        assert!(topic_matches("plivo.call.#", "plivo.call"));
        assert!(topic_matches("plivo.call.#", "plivo.call.a.b"));
        assert!(!topic_matches("plivo.call.#", "plivo.status"));
        assert!(topic_matches(
            "relay.delivery.*.call-log",
            "relay.delivery.failed.call-log"
        ));
        assert!(!topic_matches(
            "relay.delivery.*.call-log",
            "relay.delivery.call-log"
        ));
        assert!(topic_matches(
            "voximplant.min_balance",
            "voximplant.min_balance"
        ));
        assert!(!topic_matches(
            "voximplant.min_balance",
            "voximplant.min_balance.x"
        ));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#.ringing", "plivo.call.ringing"));
        assert!(!topic_matches("*", ""));
    }

    #[test]
    fn since_reads_durations_back_from_now_and_rfc3339_times() {
        let now = datetime!(2025-03-01 12:00 UTC);
        assert_eq!(parse_since("2h", now), Ok(datetime!(2025-03-01 10:00 UTC)));
        assert_eq!(
            parse_since("90s", now),
            Ok(datetime!(2025-03-01 11:58:30 UTC))
        );
        assert_eq!(parse_since("7d", now), Ok(datetime!(2025-02-22 12:00 UTC)));
        assert_eq!(
            parse_since("2025-02-28T23:30:00+01:00", now),
            Ok(datetime!(2025-02-28 22:30 UTC))
        );
        assert_eq!(
            parse_since(" 2025-02-28T22:30:00Z ", now),
            Ok(datetime!(2025-02-28 22:30 UTC))
        );
        for bad in ["2x", "yesterday", "", "2025-02-28", "-2h"] {
            let error = parse_since(bad, now).expect_err(bad);
            assert!(error.contains("neither a duration"), "{bad}: {error}");
        }
    }
}
