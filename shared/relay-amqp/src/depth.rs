//! Queue depths as metrics: `relay_queue_messages{queue}`, the ready messages of each queue
//! the service watches, read every few seconds with a passive declare. Operators alert on
//! `relay.unrouted` and the parking lots filling up; autoscalers can read the same numbers
//! from the broker directly.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use crate::Broker;

/// Reads the depth of every queue in `queues` every `every` until `stop`.
pub fn spawn_gauges(broker: Broker, queues: Vec<String>, every: Duration, stop: CancellationToken) {
    // Every series exists from start-up; the first read follows at once (an interval's first
    // tick is immediate), and a gauge already set keeps its value.
    for queue in &queues {
        metrics::gauge!("relay_queue_messages", "queue" => queue.clone()).increment(0.0);
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut channel: Option<lapin::Channel> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for queue in &queues {
                if channel.as_ref().is_none_or(|c| !c.status().connected()) {
                    channel = broker.open_channel().await.ok();
                }
                let Some(open) = &channel else { break };
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                };
                match open
                    .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                    .await
                {
                    Ok(state) => {
                        metrics::gauge!("relay_queue_messages", "queue" => queue.clone())
                            .set(f64::from(state.message_count()));
                    }
                    // The queue is not there (yet): the probe closed the channel; the next
                    // queue gets a fresh one.
                    Err(_) => channel = None,
                }
            }
        }
    });
}

/// The ready messages of `queue` now, read with a passive declare on a channel of its own
/// (closed afterwards): `None` when the queue does not exist.
pub async fn queue_depth(broker: &Broker, queue: &str) -> Result<Option<u32>, crate::PublishError> {
    let channel = broker.open_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let depth = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .ok()
        .map(|state| state.message_count());
    if channel.status().connected() {
        let _ = channel.close(200, "depth read".into()).await;
    }
    Ok(depth)
}
