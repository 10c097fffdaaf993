//! Ingress with its Redis stopped, beside the same run with Redis up (issue "Hardening":
//! an outage must cost next to nothing once the store's breaker is open).

use lapin::options::QueuePurgeOptions;
use relay_core::routing;
use relay_store::PrivateRedis;

use super::load::{self, Throughput};
use super::report::RedisOutage;
use super::scenarios::print_throughput;

/// Requests sent (not measured) after Redis is killed, so the breaker has opened before the
/// measured run: the first few requests of an outage each wait out one `op_timeout`.
const WARM_UP: usize = 200;

/// Kills the bench's Redis, measures ingress at `concurrency`, starts Redis again.
pub(super) async fn ingress_without_redis(
    url: &str,
    redis: &mut PrivateRedis,
    channel: &lapin::Channel,
    concurrency: usize,
    requests: usize,
    up: &Throughput,
) -> anyhow::Result<RedisOutage> {
    redis.kill();
    let _ = load::closed_loop(url, load::callbacks(WARM_UP), concurrency).await;
    let down = load::closed_loop(url, load::callbacks(requests), concurrency).await;
    print_throughput("ingress, Redis stopped", &down);
    println!(
        "  Redis stopped / up = {:.2} (req/s), p99 {:.2} ms / {:.2} ms",
        down.per_second / up.per_second,
        down.latency.p99_ms,
        up.latency.p99_ms
    );
    // Nothing consumes yet: what was published must not reach the end-to-end runs.
    channel
        .queue_purge(
            routing::MIN_BALANCE_ALERT.queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await?;
    redis.resume().await;
    Ok(RedisOutage {
        concurrency,
        redis_up: up.clone(),
        redis_stopped: down,
    })
}
