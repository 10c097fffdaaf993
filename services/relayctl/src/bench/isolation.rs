//! Two destinations, one stuck (docs/ARCHITECTURE.md, "Delivery isolation"): destination B's
//! delivery throughput alone, then with destination A's jobs queued ahead of B's while A's
//! endpoint holds every request open.
//!
//! Each run pre-loads `relay.deliveries` while relay-delivery is stopped, starts a fresh
//! delivery process and waits for B's last job at the recording sink. A is the
//! [`HoldingSink`]: it answers nothing until released, so delivery keeps at most A's
//! `max_in_flight` requests hung and defers A's other jobs to a delay tier. The ratio of the two
//! runs is what one stuck destination costs the others. At the end A is released, delivery
//! stopped, and the delivery queue and its delay tiers purged, so nothing of A's is left.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lapin::options::QueuePurgeOptions;
use relay_core::routing;

use super::env::{BenchEnv, ISOLATION_A, ISOLATION_B, ISOLATION_B_PATH};
use super::report::{DrainRun, IsolationRun};
use super::sink::{HoldingSink, RecordingSink};

/// Runs the scenario with `jobs` for B in each run and `stuck_jobs` for A ahead of them in the
/// second; relay-delivery must be stopped, and is stopped again at the end.
pub(super) async fn run(
    env: &BenchEnv,
    sink: &RecordingSink,
    stuck: &HoldingSink,
    jobs: usize,
    stuck_jobs: usize,
) -> anyhow::Result<IsolationRun> {
    let max_in_flight = env
        .config
        .destinations
        .get(ISOLATION_A)
        .map_or(0, |d| d.max_in_flight);
    purge_deliveries(env).await?;

    // B alone.
    let (_, queued) = super::scenarios::queue_jobs(env, jobs, ISOLATION_B).await?;
    anyhow::ensure!(queued == jobs, "only {queued} of {jobs} B jobs confirmed");
    let before = sink.at_path(ISOLATION_B_PATH);
    let delivery = env.start("relay-delivery").await?;
    let alone = drain(sink, before, jobs, None).await;
    delivery.stop();
    println!(
        "isolation: B alone: {} of {jobs} jobs in {:.2} s = {:.0}/s",
        alone.delivered, alone.seconds, alone.per_second
    );

    // B behind A's jobs, A stuck.
    purge_deliveries(env).await?;
    let (_, queued) = super::scenarios::queue_jobs(env, stuck_jobs, ISOLATION_A).await?;
    anyhow::ensure!(
        queued == stuck_jobs,
        "only {queued} of {stuck_jobs} A jobs confirmed"
    );
    let (_, queued) = super::scenarios::queue_jobs(env, jobs, ISOLATION_B).await?;
    anyhow::ensure!(queued == jobs, "only {queued} of {jobs} B jobs confirmed");
    let before = sink.at_path(ISOLATION_B_PATH);
    let delivery = env.start("relay-delivery").await?;
    let with_stuck = drain(sink, before, jobs, Some(stuck)).await;
    let held_when_done = stuck.held();
    let deferred = deferrals(env.config.delivery.admin_listen, ISOLATION_A).await;

    // A's held requests answered (503, and every later one at once), so delivery drains and
    // stops at once; then nothing of A's stays queued or parked in a delay tier.
    stuck.release();
    delivery.stop();
    purge_deliveries(env).await?;

    let ratio = with_stuck.per_second / alone.per_second;
    let run = IsolationRun {
        jobs,
        stuck_jobs,
        prefetch: env.config.delivery.prefetch,
        max_in_flight,
        b_alone: alone,
        b_with_a_stuck: with_stuck,
        ratio,
        a_requests: stuck.received(),
        a_held_peak: stuck.peak_held(),
        a_held_when_b_done: held_when_done,
        a_deferred: deferred.as_ref().map(|d| d.values().sum()),
        a_deferred_by_reason: deferred.unwrap_or_default(),
    };
    println!(
        "isolation: B with A stuck: {} of {jobs} jobs in {:.2} s = {:.0}/s; with / alone = {ratio:.2}; \
         A: {stuck_jobs} jobs ahead, {} requests held at most (max_in_flight {max_in_flight}), {} still held when B was done, {} deferrals",
        run.b_with_a_stuck.delivered,
        run.b_with_a_stuck.seconds,
        run.b_with_a_stuck.per_second,
        run.a_held_peak,
        run.a_held_when_b_done,
        run.a_deferred
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
    );
    Ok(run)
}

/// Waits until `jobs` of B's jobs past the `before`th have reached the sink (or a deadline
/// scaled to them); timed from the first request of the run, B's or the stuck destination's, to
/// B's last arrival. Delivery starts sending before its readiness answers, so `before` is
/// counted before it starts.
async fn drain(
    sink: &RecordingSink,
    before: usize,
    jobs: usize,
    stuck: Option<&HoldingSink>,
) -> DrainRun {
    let deadline =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(10 * jobs as u64);
    sink.wait_until(deadline, |a| {
        a.by_path.get(ISOLATION_B_PATH).map_or(0, Vec::len) >= before + jobs
    })
    .await;
    let times = sink.times_at(ISOLATION_B_PATH, before);
    let delivered = times.len().min(jobs);
    let first = times
        .first()
        .copied()
        .into_iter()
        .chain(stuck.and_then(HoldingSink::first_request))
        .min();
    let seconds = match (first, times.get(delivered.saturating_sub(1))) {
        (Some(first), Some(&last)) if delivered > 0 => {
            last.saturating_duration_since(first).as_secs_f64()
        }
        _ => 0.0,
    };
    DrainRun {
        delivered,
        seconds,
        per_second: if seconds > 0.0 {
            delivered as f64 / seconds
        } else {
            0.0
        },
    }
}

/// Empties `relay.deliveries` and the delay tiers (declared first, so each exists).
async fn purge_deliveries(env: &BenchEnv) -> anyhow::Result<()> {
    crate::amqp::declare(&env.config).await?;
    let channel = env.channel().await?;
    let queues = std::iter::once(routing::DELIVERIES.to_owned()).chain(
        env.config
            .amqp
            .retry_tiers
            .iter()
            .map(|&tier| routing::retry_queue(tier)),
    );
    for queue in queues {
        channel
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await?;
    }
    let _ = channel.close(200, "purged".into()).await;
    Ok(())
}

/// `relay_delivery_deferred_total` for `destination` by reason, from delivery's `/metrics` on
/// `admin` (none when it cannot be read; empty when nothing was deferred).
async fn deferrals(admin: SocketAddr, destination: &str) -> Option<BTreeMap<String, u64>> {
    let text = reqwest::Client::new()
        .get(format!("http://{admin}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    Some(parse_counter(
        &text,
        "relay_delivery_deferred_total",
        destination,
    ))
}

/// The values of the Prometheus counter `name` whose `destination` label is `destination`, by
/// their `reason` label.
fn parse_counter(text: &str, name: &str, destination: &str) -> BTreeMap<String, u64> {
    let wanted = format!("destination=\"{destination}\"");
    let mut by_reason = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        if !labels.split(',').any(|l| l.trim() == wanted) {
            continue;
        }
        let reason = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("reason=\""))
            .map_or("", |r| r.trim_end_matches('"'))
            .to_owned();
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        *by_reason.entry(reason).or_default() += value as u64;
    }
    by_reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_destinations_counter_by_reason() {
        let text = "# TYPE relay_delivery_deferred_total counter\n\
            relay_delivery_deferred_total{destination=\"isolation-a\",reason=\"in_flight_limit\"} 184\n\
            relay_delivery_deferred_total{destination=\"isolation-a\",reason=\"breaker_open\"} 3\n\
            relay_delivery_deferred_total{destination=\"isolation-b\",reason=\"in_flight_limit\"} 7\n\
            relay_delivery_deferred_total_other{destination=\"isolation-a\"} 9\n";
        let counts = parse_counter(text, "relay_delivery_deferred_total", "isolation-a");
        assert_eq!(
            counts,
            BTreeMap::from([
                ("breaker_open".to_owned(), 3),
                ("in_flight_limit".to_owned(), 184)
            ])
        );
        assert!(parse_counter(text, "relay_delivery_deferred_total", "none").is_empty());
    }
}
