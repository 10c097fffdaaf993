//! The runners of the ingress, end-to-end and delivery scenarios that [`run`](super::run)
//! sequences, and the helpers they share with the other scenarios (queued jobs, a throughput
//! line).

use std::time::{Duration, Instant};

use lapin::options::QueuePurgeOptions;
use relay_core::routing;

use super::env::{self, BenchEnv};
use super::load::{self, Latency, Throughput};
use super::report::{DeliveryRun, E2eRun, IngressRun};
use super::{broker, sink};

/// One ingress throughput run at `concurrency`, with the broker baselines beside it.
pub(crate) async fn ingress_run(
    env: &BenchEnv,
    channel: &lapin::Channel,
    ingress: &env::Service,
    url: &str,
    concurrency: usize,
    requests: usize,
    event_size: usize,
) -> anyhow::Result<IngressRun> {
    let cpu_before = ingress.cpu_seconds();
    let run = load::closed_loop(url, load::callbacks(requests), concurrency).await;
    let cpu = ingress.cpu_seconds() - cpu_before;
    print_throughput("ingress", &run);
    channel
        .queue_purge(
            routing::MIN_BALANCE_ALERT.queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await?;
    let queue = format!("relay.bench.baseline-{concurrency}");
    broker::quorum_queue(channel, &queue).await?;
    let publish = broker::publish_confirmed(
        channel,
        broker::Route::Queue(&queue),
        requests,
        event_size,
        concurrency,
    )
    .await?;
    print_throughput("broker publish", &publish);
    let handler_queue = routing::MIN_BALANCE_ALERT.queue();
    let via_relay = broker::publish_confirmed(
        channel,
        broker::Route::RelayEvents("voximplant.min_balance"),
        requests,
        event_size,
        concurrency,
    )
    .await?;
    print_throughput("broker publish via relay.events", &via_relay);
    channel
        .queue_purge(handler_queue.as_str().into(), QueuePurgeOptions::default())
        .await?;
    let consume = broker::consume_acked(&env.channel().await?, &queue, requests, 64).await?;
    println!("  broker consume+ack: {consume:.0} msg/s");
    broker::delete_queue(channel, &queue).await;
    println!(
        "  ingress / broker baseline = {:.2}",
        run.per_second / publish.per_second
    );
    Ok(IngressRun {
        ratio: run.per_second / publish.per_second,
        ingress: run,
        broker_publish: publish,
        broker_publish_via_relay_topology: via_relay,
        broker_consume_per_second: consume,
        ingress_cpu_seconds: cpu,
    })
}

/// The delivery throughput run (relay-delivery stopped before it): `jobs` queued, delivery
/// started and timed until the sink has them all, then the raw consume + ack rate of as many
/// job-sized messages. Returns the run and the delivery process, still running.
pub(crate) async fn delivery_run(
    env: &BenchEnv,
    sink: &sink::RecordingSink,
    channel: &lapin::Channel,
    jobs: usize,
) -> anyhow::Result<(DeliveryRun, env::Service)> {
    let (job_size, jobs_published) = queue_jobs(env, jobs, "alerts").await?;
    let before = sink.total();
    let delivery = env.start("relay-delivery").await?;
    let started = Instant::now();
    sink.wait_until(started + Duration::from_secs(300), |a| {
        a.total >= before + jobs_published as u64
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let delivered = sink.total() - before;
    let raw_queue = "relay.bench.raw";
    broker::quorum_queue(channel, raw_queue).await?;
    broker::publish_confirmed(channel, broker::Route::Queue(raw_queue), jobs, job_size, 64).await?;
    let raw = broker::consume_acked(
        &env.channel().await?,
        raw_queue,
        jobs,
        env.config.delivery.prefetch,
    )
    .await?;
    broker::delete_queue(channel, raw_queue).await;
    let run = DeliveryRun {
        jobs,
        delivered,
        seconds,
        per_second: delivered as f64 / seconds,
        raw_consume_per_second: raw,
        ratio: delivered as f64 / seconds / raw,
    };
    println!(
        "delivery: {} jobs in {:.2} s = {:.0}/s; raw consume+ack {:.0}/s; ratio {:.2}",
        run.delivered, seconds, run.per_second, raw, run.ratio
    );
    Ok((run, delivery))
}

pub(crate) fn print_throughput(what: &str, t: &Throughput) {
    println!(
        "{what}: {} at concurrency {}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, failures {}",
        t.requests,
        t.concurrency,
        t.per_second,
        t.latency.p50_ms,
        t.latency.p99_ms,
        t.latency.p999_ms,
        t.failures
    );
}

/// Size of the CloudEvent ingress publishes for one sample callback.
pub(crate) fn sample_event_size(event_id: &str) -> usize {
    let body = relay_signing::voximplant::sample_min_balance(
        env::ACCOUNT_ID,
        1,
        env::API_KEY,
        env::SALT,
        0.5,
        false,
    );
    relay_ingress::voximplant::parse(&serde_json::to_vec(&body).unwrap_or_default())
        .ok()
        .and_then(|cbs| cbs.first().map(|cb| cb.to_event()))
        .map_or(600, |mut event| {
            event.id = event_id.to_owned();
            serde_json::to_vec(&event).map_or(600, |b| b.len())
        })
}

/// Offers `count` callbacks at `rate`, then waits for every accepted one at the sink.
pub(crate) async fn end_to_end(
    url: &str,
    sink: &sink::RecordingSink,
    rate: u32,
    count: usize,
    duration: Duration,
) -> E2eRun {
    let before = sink.arrivals.lock().expect("arrivals lock").by_event.len();
    let sent = load::open_loop(url, load::callbacks(count), rate).await;
    let accepted: Vec<&(String, Instant, bool)> = sent.iter().filter(|(_, _, ok)| *ok).collect();
    // Wait for the pipeline to drain: every accepted event at the sink, or a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(30) + duration;
    sink.wait_until(deadline, |a| {
        a.by_event.len() >= before + accepted.len()
            && accepted
                .iter()
                .all(|(id, _, _)| a.by_event.contains_key(id))
    })
    .await;
    let a = sink.arrivals.lock().expect("arrivals lock");
    let mut h = load::histogram();
    let (mut delivered, mut duplicates) = (0, 0);
    for (id, planned, _) in &accepted {
        if let Some((at, times)) = a.by_event.get(id) {
            delivered += 1;
            duplicates += times.saturating_sub(1) as usize;
            h.saturating_record(at.saturating_duration_since(*planned).as_micros() as u64);
        }
    }
    E2eRun {
        offered_rate: rate,
        seconds: duration.as_secs_f64(),
        sent: sent.len(),
        accepted: accepted.len(),
        delivered,
        lost: accepted.len() - delivered,
        duplicates,
        latency: Latency::of(&h),
    }
}

/// Publishes `count` delivery jobs for `destination` straight to `relay.deliveries`, through
/// the relay's own job publisher (many in flight at once); returns the job body size and how
/// many the broker confirmed.
pub(crate) async fn queue_jobs(
    env: &BenchEnv,
    count: usize,
    destination: &str,
) -> anyhow::Result<(usize, usize)> {
    let connected = crate::amqp::broker(&env.config).await?;
    let broker = &connected.broker;
    let jobs: Vec<relay_core::DeliveryJob> = (0..count)
        .map(|i| {
            let event_id = relay_core::ids::new_event_id();
            let body = serde_json::json!({"event_id": event_id, "summary": "relay bench job", "balance": 0.5});
            relay_core::DeliveryJob::post(
                relay_core::ids::job_id(&event_id, "bench", i as u32),
                &event_id,
                "bench",
                destination,
                "application/json",
                body.to_string(),
            )
        })
        .collect();
    let size = jobs
        .first()
        .map_or(0, |job| serde_json::to_vec(job).map_or(0, |b| b.len()));
    let mut confirmed = 0;
    for chunk in jobs.chunks(256) {
        let results = futures_util::future::join_all(
            chunk
                .iter()
                .map(|job| relay_amqp::jobs::publish(broker, job)),
        )
        .await;
        confirmed += results.iter().filter(|r| r.is_ok()).count();
    }
    Ok((size, confirmed))
}
