//! Event and job ids.
//!
//! Fresh events get a time-ordered UUIDv7. Where the provider names the event uniquely
//! (Voximplant `callback_id`, Plivo `CallUUID` + event, `webhook-id`) the id is a UUIDv5 of that
//! name instead, so a duplicate that slips past the Redis mark (Redis down, two retries racing)
//! still carries the same id, and the jobs derived from it collapse at delivery (docs/ARCHITECTURE.md,
//! invariant 3).

use uuid::Uuid;

/// The relay's UUIDv5 namespace (a fixed random UUID; never change it, ids would stop matching).
const NAMESPACE: Uuid = Uuid::from_u128(0x6f3c_9a52_0d8e_4b1a_9c4e_51b7_2f0a_d3e1);

/// A new time-ordered event id.
pub fn new_event_id() -> String {
    Uuid::now_v7().to_string()
}

/// The event id of a provider event that has its own unique name, e.g.
/// `derived_event_id("voximplant", &["1234", "99"])`.
pub fn derived_event_id(source: &str, parts: &[&str]) -> String {
    let mut name = String::with_capacity(64);
    name.push_str("event/");
    name.push_str(source);
    for part in parts {
        // A separator that cannot appear in the parts would need escaping; a length prefix
        // keeps ("a/b", "c") and ("a", "b/c") apart without one.
        name.push('/');
        name.push_str(&part.len().to_string());
        name.push(':');
        name.push_str(part);
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The id of the `ordinal`-th job that `handler` produced for `event_id`: the same inputs always
/// give the same id, so a redelivered event produces jobs that delivery recognises.
pub fn job_id(event_id: &str, handler: &str, ordinal: u32) -> String {
    let name = format!("job/{event_id}/{handler}/{ordinal}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        let a = derived_event_id("voximplant", &["1", "2"]);
        assert_eq!(a, derived_event_id("voximplant", &["1", "2"]));
        assert_ne!(a, derived_event_id("voximplant", &["1", "3"]));
        assert_ne!(a, derived_event_id("plivo", &["1", "2"]));
        // Part boundaries matter.
        assert_ne!(
            derived_event_id("s", &["a/b", "c"]),
            derived_event_id("s", &["a", "b/c"])
        );
    }

    #[test]
    fn job_ids_derive_from_event_handler_and_ordinal() {
        let e = new_event_id();
        assert_eq!(job_id(&e, "h", 0), job_id(&e, "h", 0));
        assert_ne!(job_id(&e, "h", 0), job_id(&e, "h", 1));
        assert_ne!(job_id(&e, "h", 0), job_id(&e, "g", 0));
    }

    #[test]
    fn fresh_ids_are_time_ordered() {
        let a = new_event_id();
        let b = new_event_id();
        assert!(a < b, "{a} should sort before {b}");
    }
}
