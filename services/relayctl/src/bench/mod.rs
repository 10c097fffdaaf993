//! `relayctl bench`: the relay measured on this machine, side by side with RabbitMQ's own limit.
//!
//! It starts what it needs (a throwaway vhost and key prefix, the three services as child
//! processes, a verifying sink in this process), runs bounded scenarios on loopback, and writes
//! the results as JSON, an SVG chart and a Markdown section appended to BENCHMARKS.md. Speed is
//! proven here, never by timing assertions in tests; `--quick` is the CI smoke run (tiny counts,
//! nothing appended, no thresholds).
//!
//! 1. Ingress throughput (closed loop) at each concurrency, with the broker baseline (the same
//!    number and size of persistent, confirmed messages published with lapin) in the same run.
//! 2. End to end at fixed offered rates through worker and delivery to the sink: latency from the
//!    planned send instant to the sink's receipt, and a zero-loss check. Min-balance callbacks
//!    (→ a signed alert), then call events (three Plivo callbacks per call → three helpdesk
//!    messages, [`calls`]); a rejected call callback or a lost or repeated helpdesk message
//!    fails the bench.
//! 3. Delivery throughput against the sink, beside the raw consume + ack rate.
//! 4. Delivery isolation ([`isolation`]): one destination's delivery throughput alone, then
//!    behind the jobs of another whose endpoint never answers.
//! 5. The knee ([`knee`]): end-to-end rates swept upward until p99 passes 50 ms or events fall
//!    behind, with each process's CPU and memory per step and the stage that saturated; then
//!    every service's memory at 1,024 ingress connections.
//!
//! `--only` runs some of them (e.g. `--only isolation` to rerun one); the default is all.

mod broker;
mod calls;
mod chart;
mod env;
mod isolation;
mod knee;
mod knee_report;
mod load;
mod markdown;
mod outage;
mod report;
mod scenarios;
mod sink;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use relay_core::config::Config;

use env::{BenchEnv, HELPDESK_SECRET, WEBHOOK_SECRET};
use report::{EndToEnd, Results, ServiceUsage};
use scenarios::{delivery_run, end_to_end, ingress_run, print_throughput, sample_event_size};

/// A scenario `--only` can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Ingress throughput beside the broker baseline.
    Ingress,
    /// Ingress with its Redis stopped (measures Redis up first when `ingress` is not run).
    Outage,
    /// Min-balance callbacks end to end.
    E2e,
    /// Call events end to end.
    Calls,
    /// Delivery throughput beside raw consume + ack.
    Delivery,
    /// One destination's delivery throughput alone and beside a stuck one.
    Isolation,
    /// End-to-end rates swept upward to the knee; memory at 1,024 connections.
    Knee,
}

impl Scenario {
    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    }
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Smoke run for CI: tiny counts, a few seconds, nothing appended to BENCHMARKS.md.
    #[arg(long)]
    quick: bool,
    /// Requests per ingress throughput run (and messages per baseline run).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrencies of the ingress throughput runs.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    concurrency: Vec<usize>,
    /// Offered rates (callbacks per second) of the end-to-end runs.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000")]
    rates: Vec<u32>,
    /// Offered rates (calls per second, three callbacks each) of the call-event end-to-end runs.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200")]
    call_rates: Vec<u32>,
    /// How long each end-to-end rate is sustained.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Jobs in the delivery throughput run (and destination B's jobs in each isolation run).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs of the stuck destination A queued ahead of B's in the isolation run (more than
    /// delivery's prefetch).
    #[arg(long, default_value_t = 200)]
    stuck_jobs: usize,
    /// First rate of the knee sweep (callbacks per second).
    #[arg(long, default_value_t = 500)]
    knee_start: u32,
    /// Each knee step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.4)]
    knee_factor: f64,
    /// The sweep stops at this rate even within the bound.
    #[arg(long, default_value_t = 50_000)]
    knee_max: u32,
    /// How long each knee step is sustained.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    knee_step: Duration,
    /// Requests of the 1,024-connection memory run.
    #[arg(long, default_value_t = 20_000)]
    many_requests: usize,
    /// Run only these scenarios (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Directory for the JSON, the chart and the services' logs.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Runtime worker threads of each service (`TOKIO_WORKER_THREADS`; default one per core).
    #[arg(long)]
    service_threads: Option<usize>,
    /// Markdown file the results section is appended to (not with --quick).
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    relay_core::duration::parse(text)
}

pub(crate) async fn run(_config: &Config, mut args: BenchArgs) -> anyhow::Result<()> {
    if args.quick {
        args.requests = 400;
        args.concurrency = vec![16];
        args.rates = vec![100];
        args.call_rates = vec![25];
        args.duration = Duration::from_secs(2);
        args.jobs = 200;
        args.stuck_jobs = 200;
        args.knee_start = 100;
        args.knee_factor = 2.0;
        args.knee_max = 200;
        args.knee_step = Duration::from_secs(1);
        args.many_requests = 2 * knee::MANY_CONNECTIONS;
    }
    anyhow::ensure!(
        args.requests > 0 && args.jobs > 0 && args.stuck_jobs > 0,
        "--requests, --jobs and --stuck-jobs must be positive"
    );
    anyhow::ensure!(
        !args.concurrency.is_empty()
            && !args.concurrency.contains(&0)
            && !args.rates.contains(&0)
            && !args.call_rates.contains(&0)
            && args.knee_factor > 1.0,
        "concurrency and rates must be positive"
    );
    let only = args.only.clone();
    let want = |scenario: Scenario| only.is_empty() || only.contains(&scenario);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let sink = sink::RecordingSink::start(WEBHOOK_SECRET, HELPDESK_SECRET).await?;
    let stuck = sink::HoldingSink::start().await?;
    let mut redis = relay_store::PrivateRedis::start().await;
    let mut env = BenchEnv::create(sink.addr, stuck.addr, &args.out, &redis.url())?;
    env.service_threads = args.service_threads;
    let url = format!("{}/v1/voximplant/callbacks", env.ingress_url);
    let channel = env.channel().await?;
    println!(
        "bench: vhost {}, results in {}",
        env.vhost,
        args.out.display()
    );

    let needs_ingress = [
        Scenario::Ingress,
        Scenario::Outage,
        Scenario::E2e,
        Scenario::Calls,
        Scenario::Knee,
    ]
    .into_iter()
    .any(want);
    let ingress = if needs_ingress {
        Some(env.start("relay-ingress").await?)
    } else {
        None
    };

    // 1. Ingress alone (nothing consumes, so only ingress and the broker work), then the broker
    //    doing the same publishes without the relay.
    let mut ingress_runs = Vec::new();
    if let Some(ingress) = ingress.as_ref().filter(|_| want(Scenario::Ingress)) {
        let event_size = load::callbacks(1)
            .first()
            .map(|(id, _)| sample_event_size(id))
            .unwrap_or(600);
        for &concurrency in &args.concurrency {
            ingress_runs.push(
                ingress_run(
                    &env,
                    &channel,
                    ingress,
                    &url,
                    concurrency,
                    args.requests,
                    event_size,
                )
                .await?,
            );
        }
    }

    // 1b. Ingress again with its Redis stopped, then Redis back for the rest.
    let redis_outage = if want(Scenario::Outage) {
        let concurrency = args.concurrency[0];
        let up = match ingress_runs.first() {
            Some(run) => run.ingress.clone(),
            None => {
                // Run without the ingress scenario: Redis up measured here, at the same
                // concurrency and count.
                let up = load::closed_loop(&url, load::callbacks(args.requests), concurrency).await;
                print_throughput("ingress", &up);
                up
            }
        };
        Some(
            outage::ingress_without_redis(
                &url,
                &mut redis,
                &channel,
                concurrency,
                args.requests,
                &up,
            )
            .await?,
        )
    } else {
        None
    };

    // 2. End to end at fixed rates: min-balance callbacks, then calls.
    let (mut worker, mut delivery) = (None, None);
    if want(Scenario::E2e) || want(Scenario::Calls) || want(Scenario::Knee) {
        worker = Some(env.start("relay-worker").await?);
        delivery = Some(env.start("relay-delivery").await?);
    }
    let mut e2e_runs = Vec::new();
    if want(Scenario::E2e) {
        for &rate in &args.rates {
            let count = ((f64::from(rate) * args.duration.as_secs_f64()).round() as usize).max(1);
            let run = end_to_end(&url, &sink, rate, count, args.duration).await;
            println!(
                "e2e {rate}/s for {:.0}s: {} sent, {} accepted, {} delivered, {} lost, {} duplicates; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                args.duration.as_secs_f64(),
                run.sent,
                run.accepted,
                run.delivered,
                run.lost,
                run.duplicates,
                run.latency.p50_ms,
                run.latency.p99_ms,
                run.latency.max_ms
            );
            e2e_runs.push(run);
        }
    }
    let call_runs = if want(Scenario::Calls) {
        calls::runs(&env.ingress_url, &sink, &args.call_rates, args.duration).await
    } else {
        Vec::new()
    };

    // 2b. The knee, with all three running.
    let knee = match (&ingress, &worker, &delivery) {
        (Some(i), Some(w), Some(d)) if want(Scenario::Knee) => {
            let sweep = knee::Sweep {
                start: args.knee_start,
                factor: args.knee_factor,
                max: args.knee_max,
                step: args.knee_step,
                many_requests: args.many_requests,
            };
            Some(knee::sweep(&url, &sink, &channel, &[i, w, d], &sweep).await)
        }
        _ => None,
    };

    // 3. Delivery alone: jobs queued while it is stopped, then drained; beside it, the raw
    //    consume + ack rate of the same number of job-sized messages.
    let delivery_run = if want(Scenario::Delivery) {
        if let Some(running) = delivery.take() {
            running.stop();
        }
        let (run, started) = delivery_run(&env, &sink, &channel, args.jobs).await?;
        delivery = Some(started);
        Some(run)
    } else {
        None
    };

    let usage: Vec<ServiceUsage> = [&ingress, &worker, &delivery]
        .into_iter()
        .flatten()
        .map(|s| ServiceUsage {
            service: s.name.to_owned(),
            peak_rss_mib: s.peak_rss_mib(),
            cpu_seconds: s.cpu_seconds(),
        })
        .collect();
    for u in &usage {
        println!(
            "{}: peak RSS {:.1} MiB, CPU {:.1} s",
            u.service, u.peak_rss_mib, u.cpu_seconds
        );
    }
    for service in [delivery, worker, ingress].into_iter().flatten() {
        service.stop();
    }

    // 4. Isolation, with every other service stopped: delivery processes of its own.
    let isolation = if want(Scenario::Isolation) {
        Some(isolation::run(&env, &sink, &stuck, args.jobs, args.stuck_jobs).await?)
    } else {
        None
    };
    stuck.close().await;

    let mut results = Results::new(
        command,
        args.quick,
        ingress_runs,
        EndToEnd {
            min_balance: e2e_runs,
            calls: call_runs,
        },
        delivery_run,
        usage,
        sink.arrivals.lock().map_or(0, |a| a.bad_signatures),
    );
    results.scenarios = Scenario::value_variants()
        .iter()
        .copied()
        .filter(|&s| want(s))
        .map(Scenario::name)
        .collect();
    results.redis_outage = redis_outage;
    results.isolation = isolation;
    if let Some(knee) = knee {
        results.add_knee(knee);
    }
    results.print_end_to_end();
    results.print_targets();
    let written = results.write(&args.out, (!args.quick).then_some(args.markdown.as_path()))?;
    println!("wrote {written}");
    let failures: Vec<String> = [
        results
            .call_failure()
            .map(|f| format!("call events failed their zero-loss check: {f}")),
        results
            .isolation_failure()
            .map(|f| format!("delivery isolation failed: {f}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}
