//! The queues that hold what the relay parked.

use std::fmt;
use std::str::FromStr;

use relay_core::routing;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A queue of parked messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// `relay.dead.deliveries`: jobs delivery gave up on.
    DeadDeliveries,
    /// `relay.dead.events`: events a handler could not process.
    DeadEvents,
    /// `relay.unrouted`: events no enabled handler takes.
    Unrouted,
}

impl Queue {
    /// Every queue of parked messages.
    pub const ALL: [Queue; 3] = [Queue::DeadDeliveries, Queue::DeadEvents, Queue::Unrouted];

    /// The queue's name on the broker (`relay.dead.deliveries`); what `list --json` prints.
    pub fn name(self) -> &'static str {
        match self {
            Queue::DeadDeliveries => routing::DEAD_DELIVERIES_QUEUE,
            Queue::DeadEvents => routing::DEAD_EVENTS_QUEUE,
            Queue::Unrouted => routing::UNROUTED,
        }
    }

    /// The queue's short name, as `relayctl dead --queue` takes it (`dead-deliveries`,
    /// `dead-events`, `unrouted`); fit for a URL.
    pub fn slug(self) -> &'static str {
        match self {
            Queue::DeadDeliveries => "dead-deliveries",
            Queue::DeadEvents => "dead-events",
            Queue::Unrouted => "unrouted",
        }
    }

    /// The queue named `name` on the broker.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.name() == name)
    }

    /// Where a copy that reached `relay.parked.index` is parked, from the exchange and routing
    /// key it was delivered with: `relay.dead` with the key of one of its lots, or
    /// `relay.unrouted`, which a message also reaches as the alternate exchange of
    /// `relay.events` and `relay.handlers` (it then keeps the exchange it was published to).
    pub fn of_copy(exchange: &str, routing_key: &str) -> Option<Self> {
        match (exchange, routing_key) {
            (routing::DEAD_EXCHANGE, routing::DEAD_DELIVERIES_KEY) => Some(Queue::DeadDeliveries),
            (routing::DEAD_EXCHANGE, routing::DEAD_EVENTS_KEY) => Some(Queue::DeadEvents),
            (routing::UNROUTED | routing::EVENTS_EXCHANGE | routing::HANDLERS_EXCHANGE, _) => {
                Some(Queue::Unrouted)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no queue of parked messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is no queue of parked messages: dead-deliveries, dead-events or unrouted")]
pub struct UnknownQueue(String);

impl FromStr for Queue {
    type Err = UnknownQueue;

    /// The short name (`dead-deliveries`) or the broker's name (`relay.dead.deliveries`).
    fn from_str(text: &str) -> Result<Self, UnknownQueue> {
        Self::ALL
            .into_iter()
            .find(|queue| queue.slug() == text || queue.name() == text)
            .ok_or_else(|| UnknownQueue(text.to_owned()))
    }
}

/// As its name on the broker.
impl Serialize for Queue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// From its name on the broker (or its short name).
impl<'de> Deserialize<'de> for Queue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_parse_from_either_name_and_serialise_as_the_brokers() {
        for queue in Queue::ALL {
            assert_eq!(queue.slug().parse(), Ok(queue));
            assert_eq!(queue.name().parse(), Ok(queue));
            assert_eq!(Queue::from_name(queue.name()), Some(queue));
            let json = serde_json::to_string(&queue).unwrap();
            assert_eq!(json, format!("\"{}\"", queue.name()));
            assert_eq!(serde_json::from_str::<Queue>(&json).unwrap(), queue);
        }
        assert_eq!(
            "dead-deliveries".parse::<Queue>().map(Queue::name),
            Ok("relay.dead.deliveries")
        );
        assert!("deliveries".parse::<Queue>().is_err());
        assert_eq!(Queue::from_name("dead-events"), None);
    }

    #[test]
    fn a_copy_is_placed_by_its_exchange_and_key() {
        assert_eq!(
            Queue::of_copy("relay.dead", "deliveries"),
            Some(Queue::DeadDeliveries)
        );
        assert_eq!(
            Queue::of_copy("relay.dead", "events"),
            Some(Queue::DeadEvents)
        );
        for exchange in ["relay.unrouted", "relay.events", "relay.handlers"] {
            assert_eq!(
                Queue::of_copy(exchange, "shop.order"),
                Some(Queue::Unrouted)
            );
        }
        assert_eq!(Queue::of_copy("relay.dead", "other"), None);
        assert_eq!(Queue::of_copy("", "relay.parked.index"), None);
    }
}
