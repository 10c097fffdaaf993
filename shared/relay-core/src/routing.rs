//! Broker names (DESIGN.md, "RabbitMQ topology") and routing keys.

/// Topic exchange for every inbound event; routing key `<source>.<type>`.
pub const EVENTS_EXCHANGE: &str = "relay.events";
/// Fanout exchange (and queue of the same name) for events no handler is bound to.
pub const UNROUTED: &str = "relay.unrouted";
/// Exchange (fanout) and quorum queue of outbound jobs.
pub const DELIVERIES: &str = "relay.deliveries";
/// Direct exchange of the parking lots.
pub const DEAD_EXCHANGE: &str = "relay.dead";
/// Parking lot for events a handler could not process.
pub const DEAD_EVENTS_QUEUE: &str = "relay.dead.events";
/// Parking lot for jobs delivery could not deliver.
pub const DEAD_DELIVERIES_QUEUE: &str = "relay.dead.deliveries";
/// Routing key on [`DEAD_EXCHANGE`] towards [`DEAD_EVENTS_QUEUE`].
pub const DEAD_EVENTS_KEY: &str = "events";
/// Routing key on [`DEAD_EXCHANGE`] towards [`DEAD_DELIVERIES_QUEUE`].
pub const DEAD_DELIVERIES_KEY: &str = "deliveries";
/// Quorum queue that receives a copy of everything parked (bound to [`UNROUTED`] and to
/// [`DEAD_EXCHANGE`] with both keys), for the parked index an operator's console pages
/// through. Bounded by length and age: nothing is lost if no console reads it.
pub const PARKED_INDEX_QUEUE: &str = "relay.parked.index";

/// A handler of the worker: its queue and the routing patterns it is bound with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerRoute {
    /// Handler name, e.g. `min-balance-alert`.
    pub name: &'static str,
    /// Binding patterns on [`EVENTS_EXCHANGE`].
    pub patterns: &'static [&'static str],
}

impl HandlerRoute {
    /// The handler's quorum queue, `relay.handler.<name>`.
    pub fn queue(&self) -> String {
        handler_queue(self.name)
    }
}

/// The min-balance alert handler: every Voximplant account callback (`voximplant.<type>`, one
/// word; the scenario's call events are `voximplant.call.<…>`), since each carries the account's
/// `balance`, which resolves a firing alert; `min_balance` callbacks fire it.
pub const MIN_BALANCE_ALERT: HandlerRoute = HandlerRoute {
    name: "min-balance-alert",
    patterns: &["voximplant.*"],
};

/// The call-log handler: every provider's call events, web callbacks, and the outcomes of its
/// own helpdesk messages (which release a session's next message).
pub const CALL_LOG: HandlerRoute = HandlerRoute {
    name: "call-log",
    patterns: &[
        "plivo.call.#",
        "voximplant.call.#",
        "acrobits.web_callback",
        "acrobits.web_callback_refused",
        "relay.delivery.*.call-log",
        "relay.delivery.failed.web-callback",
        "relay.callback.requested",
    ],
};

/// The web-callback handler: an accepted web callback becomes an origination job (Plivo or
/// Voximplant), and the outcomes of its jobs are recorded on the session.
pub const WEB_CALLBACK: HandlerRoute = HandlerRoute {
    name: "web-callback",
    patterns: &[
        "acrobits.web_callback",
        "relay.delivery.*.web-callback",
        CALL_MISSED,
        CALLBACK_ENDED,
    ],
};

/// The call log's event for a web callback's call that reached its end (answered and hung up,
/// unanswered, or failed): the callback no longer counts as in progress.
pub const CALLBACK_ENDED: &str = "relay.callback.ended";

/// The failure-alert handler: every failed delivery (`relay.delivery.failed.<handler>`) and
/// the worker's own observations of the relay's state (`relay.condition.<kind>`: a breaker open
/// too long, a queue too deep).
pub const FAILURE_ALERT: HandlerRoute = HandlerRoute {
    name: "failure-alert",
    patterns: &["relay.delivery.failed.#", "relay.condition.#"],
};

/// Routing key of an observation of the relay's state on [`EVENTS_EXCHANGE`]:
/// `relay.condition.<kind>` (`queue_depth`, `breaker_open`).
pub fn condition_key(kind: &str) -> String {
    format!("relay.condition.{kind}")
}

/// The call log's event for an inbound call that ended unanswered (its caller may be called
/// back: `[worker.web_callback.missed_calls]`).
pub const CALL_MISSED: &str = "relay.call.missed";

/// Every handler the worker knows. Which of them run is configuration
/// (`Config::enabled_handlers`): a handler's queue is declared only while it is enabled, since
/// a bound queue without a consumer would silently collect events that belong in
/// `relay.unrouted`.
pub const HANDLERS: &[HandlerRoute] = &[MIN_BALANCE_ALERT, CALL_LOG, WEB_CALLBACK, FAILURE_ALERT];

/// Headers exchange that routes a message straight to one handler's queue by its
/// [`HANDLER_HEADER`]: durable handler retries and timers come back through it, to that
/// handler only (going through `relay.events` again would fan them out to every handler).
pub const HANDLERS_EXCHANGE: &str = "relay.handlers";

/// Header naming the handler a retried event or a timer is for. It has no `x-` prefix on
/// purpose: a headers exchange ignores `x-` headers when matching (RabbitMQ 3.x `x-match`
/// `all`/`any`).
pub const HANDLER_HEADER: &str = "relay-handler";

/// `relay.handler-retry.<label>`: a delay tier for a transient handler failure, dead-lettering
/// into [`HANDLERS_EXCHANGE`] when its TTL expires.
pub fn handler_retry_queue(delay: std::time::Duration) -> String {
    format!("relay.handler-retry.{}", crate::duration::label(delay))
}

/// `relay.timer.<handler>.<label>`: a handler's durable timer of one delay (a TTL queue that
/// dead-letters into [`HANDLERS_EXCHANGE`]).
pub fn timer_queue(handler: &str, delay: std::time::Duration) -> String {
    format!("relay.timer.{handler}.{}", crate::duration::label(delay))
}

/// Routing key of a delivery outcome event on [`EVENTS_EXCHANGE`]:
/// `relay.delivery.<succeeded|failed>.<handler>`, so a handler can bind to the outcomes of its
/// own jobs (`relay.delivery.*.call-log`) or to every failure (`relay.delivery.failed.#`).
pub fn outcome_key(succeeded: bool, handler: &str) -> String {
    let what = if succeeded { "succeeded" } else { "failed" };
    format!("relay.delivery.{what}.{handler}")
}

/// `relay.handler.<name>`.
pub fn handler_queue(name: &str) -> String {
    format!("relay.handler.{name}")
}

/// `relay.retry.<label>` for a delay tier, e.g. `relay.retry.30s`.
pub fn retry_queue(delay: std::time::Duration) -> String {
    format!("relay.retry.{}", crate::duration::label(delay))
}

/// Routing key of an event: `<source>.<type>`, e.g. `voximplant.min_balance`.
///
/// Both parts must already be routing-key safe (see [`is_key_word`]).
pub fn event_key(source: &str, ty: &str) -> String {
    format!("{source}.{ty}")
}

/// Whether `word` may stand in a routing key: ASCII letters, digits, `_` and `-`, 1 to 64 long.
/// This excludes `.`, `*` and `#`, which would change what a topic binding matches.
pub fn is_key_word(word: &str) -> bool {
    (1..=64).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_follow_the_design() {
        assert_eq!(MIN_BALANCE_ALERT.queue(), "relay.handler.min-balance-alert");
        assert_eq!(CALL_LOG.queue(), "relay.handler.call-log");
        assert_eq!(
            handler_retry_queue(Duration::from_secs(5)),
            "relay.handler-retry.5s"
        );
        assert_eq!(
            timer_queue("call-log", Duration::from_secs(4 * 3600)),
            "relay.timer.call-log.4h"
        );
        assert_eq!(
            outcome_key(false, "call-log"),
            "relay.delivery.failed.call-log"
        );
        assert_eq!(retry_queue(Duration::from_secs(30)), "relay.retry.30s");
        assert_eq!(retry_queue(Duration::from_millis(200)), "relay.retry.200ms");
        assert_eq!(
            event_key("voximplant", "min_balance"),
            "voximplant.min_balance"
        );
    }

    #[test]
    fn key_words_exclude_topic_syntax() {
        assert!(is_key_word("min_balance"));
        assert!(!is_key_word("a.b"));
        assert!(!is_key_word("#"));
        assert!(!is_key_word("*"));
        assert!(!is_key_word(""));
        assert!(!is_key_word(&"x".repeat(65)));
    }
}
