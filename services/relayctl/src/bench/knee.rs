//! The end-to-end knee: min-balance callbacks offered at rising rates (open loop) until p99
//! passes 50 ms or the pipeline falls behind, with what each process used at every step, so the
//! stage that saturated is named from measurements rather than guessed.
//!
//! Each step offers `rate` callbacks per second for `step` seconds, then waits for every
//! accepted one at the sink. Per step it records latency (planned send → sink receipt), the
//! depth of the handler queue and of `relay.deliveries` when the last request went out (a
//! backlog means that stage could not keep up), the CPU each process used (cores = CPU seconds
//! / step seconds: the three services, RabbitMQ and the bench itself, which is the load
//! generator and the sink) and their resident memory. The step that breaks the bound names its
//! saturated stage: the queue that grew, else the busiest process.
//!
//! After the sweep, ingress takes a closed loop at 1,024 connections while worker and delivery
//! run, and every service's peak RSS is read (goal: under 64 MiB each).

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use relay_core::routing;
use serde::Serialize;

use super::env::{Service, cpu_seconds, memory_mib};
use super::load::{self, Latency};
use super::sink::RecordingSink;

/// The latency bound of the knee.
pub(crate) const P99_BOUND_MS: f64 = 50.0;
/// A step whose last accepted event reaches the sink more than this after the last send has
/// fallen behind.
const BEHIND_AFTER: Duration = Duration::from_secs(1);
/// Connections of the memory step.
pub(crate) const MANY_CONNECTIONS: usize = 1024;

/// The sweep's settings.
#[derive(Debug, Clone)]
pub(crate) struct Sweep {
    pub(crate) start: u32,
    pub(crate) factor: f64,
    pub(crate) max: u32,
    pub(crate) step: Duration,
    /// Requests of the 1,024-connection memory step.
    pub(crate) many_requests: usize,
}

/// One process's use during a step.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Usage {
    pub(crate) process: String,
    /// CPU seconds per second of the step.
    pub(crate) cores: f64,
    /// Resident memory at the end of the step, MiB.
    pub(crate) rss_mib: f64,
    /// Peak resident memory so far, MiB.
    pub(crate) peak_rss_mib: f64,
}

/// One rate of the sweep.
#[derive(Debug, Serialize)]
pub(crate) struct Step {
    pub(crate) rate: u32,
    pub(crate) seconds: f64,
    pub(crate) sent: usize,
    pub(crate) accepted: usize,
    pub(crate) delivered: usize,
    pub(crate) lost: usize,
    pub(crate) duplicates: usize,
    /// Planned send → sink receipt.
    pub(crate) latency: Latency,
    /// From the last planned send to the last accepted event's arrival.
    pub(crate) drain_ms: f64,
    /// Handler queue and `relay.deliveries` depth when the last request had gone out.
    pub(crate) backlog: Vec<(String, u32)>,
    pub(crate) usage: Vec<Usage>,
    /// Within the bound (p99 ≤ 50 ms, not behind, nothing lost).
    pub(crate) within: bool,
}

/// The sweep's result.
#[derive(Debug, Serialize)]
pub(crate) struct Knee {
    pub(crate) steps: Vec<Step>,
    /// The highest rate within the bound (none: not even the first).
    pub(crate) knee_rate: Option<u32>,
    /// Why the sweep stopped.
    pub(crate) stopped_by: String,
    /// The stage that saturated at the first step past the bound.
    pub(crate) saturated: Option<String>,
    /// Every process at 1,024 ingress connections.
    pub(crate) many_connections: Vec<Usage>,
}

/// A process whose CPU and memory the bench reads.
pub(crate) struct Watched {
    pub(crate) name: String,
    pub(crate) pid: u32,
}

impl Watched {
    pub(crate) fn of(service: &Service) -> Self {
        Self {
            name: service.name.to_owned(),
            pid: service.pid(),
        }
    }

    /// Every process the sweep reads: the services, RabbitMQ (when found) and this bench.
    pub(crate) fn all(services: &[&Service]) -> Vec<Self> {
        let mut all: Vec<Self> = services.iter().map(|s| Self::of(s)).collect();
        if let Some(pid) = broker_pid() {
            all.push(Self {
                name: "rabbitmq".to_owned(),
                pid,
            });
        }
        all.push(Self {
            name: "bench (load + sink)".to_owned(),
            pid: std::process::id(),
        });
        all
    }
}

/// RabbitMQ's Erlang VM on this machine, if there is one.
fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline);
            (text.contains("beam.smp") && text.contains("rabbit")).then_some(pid)
        })
}

/// CPU seconds of each watched process now.
fn cpu_now(watched: &[Watched]) -> Vec<f64> {
    watched.iter().map(|w| cpu_seconds(w.pid)).collect()
}

fn usage(watched: &[Watched], before: &[f64], seconds: f64) -> Vec<Usage> {
    watched
        .iter()
        .zip(before)
        .map(|(w, b)| Usage {
            process: w.name.clone(),
            cores: (cpu_seconds(w.pid) - b) / seconds.max(0.001),
            rss_mib: memory_mib(w.pid, "VmRSS:"),
            peak_rss_mib: memory_mib(w.pid, "VmHWM:"),
        })
        .collect()
}

async fn depth(channel: &lapin::Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map_or(0, |q| q.message_count())
}

/// One step at `rate`.
async fn step(
    url: &str,
    sink: &RecordingSink,
    channel: &lapin::Channel,
    watched: &[Watched],
    rate: u32,
    seconds: Duration,
) -> Step {
    let count = ((f64::from(rate) * seconds.as_secs_f64()).round() as usize).max(1);
    let before_cpu = cpu_now(watched);
    let started = Instant::now();
    let before = sink.arrivals.lock().expect("arrivals lock").by_event.len();
    let sent = load::open_loop(url, load::callbacks(count), rate).await;
    let send_seconds = started.elapsed().as_secs_f64();
    let mut backlog = Vec::new();
    for queue in [
        routing::MIN_BALANCE_ALERT.queue(),
        routing::DELIVERIES.to_owned(),
    ] {
        let d = depth(channel, &queue).await;
        backlog.push((queue, d));
    }
    let usage = usage(watched, &before_cpu, send_seconds);
    let accepted: Vec<&(String, Instant, bool)> = sent.iter().filter(|(_, _, ok)| *ok).collect();
    let last_planned = sent.iter().map(|(_, at, _)| *at).max().unwrap_or(started);
    sink.wait_until(Instant::now() + Duration::from_secs(60), |a| {
        a.by_event.len() >= before + accepted.len()
            && accepted
                .iter()
                .all(|(id, _, _)| a.by_event.contains_key(id))
    })
    .await;
    let a = sink.arrivals.lock().expect("arrivals lock");
    let mut h = load::histogram();
    let (mut delivered, mut duplicates) = (0, 0);
    let mut last_arrival = last_planned;
    for (id, planned, _) in &accepted {
        if let Some((at, times)) = a.by_event.get(id) {
            delivered += 1;
            duplicates += times.saturating_sub(1) as usize;
            last_arrival = last_arrival.max(*at);
            h.saturating_record(at.saturating_duration_since(*planned).as_micros() as u64);
        }
    }
    let latency = Latency::of(&h);
    let drain = last_arrival.saturating_duration_since(last_planned);
    let lost = accepted.len() - delivered;
    Step {
        rate,
        seconds: seconds.as_secs_f64(),
        sent: sent.len(),
        accepted: accepted.len(),
        delivered,
        lost,
        duplicates,
        within: latency.p99_ms <= P99_BOUND_MS
            && drain <= BEHIND_AFTER
            && lost == 0
            && accepted.len() == sent.len(),
        latency,
        drain_ms: drain.as_secs_f64() * 1000.0,
        backlog,
        usage,
    }
}

/// The stage a step past the bound saturated: a queue that backed up names its consumer; else
/// the busiest process.
fn saturated(step: &Step) -> String {
    let backed_up = step
        .backlog
        .iter()
        .filter(|(_, d)| f64::from(*d) > f64::from(step.rate) * 0.05)
        .max_by_key(|(_, d)| *d);
    if let Some((queue, depth)) = backed_up {
        let stage = if queue == routing::DELIVERIES {
            "relay-delivery"
        } else {
            "relay-worker"
        };
        return format!("{stage} ({depth} messages waiting in {queue} at the end of the step)");
    }
    if step.accepted < step.sent {
        return format!(
            "relay-ingress ({} of {} requests refused)",
            step.sent - step.accepted,
            step.sent
        );
    }
    let busiest = step.usage.iter().max_by(|a, b| a.cores.total_cmp(&b.cores));
    let total: f64 = step.usage.iter().map(|u| u.cores).sum();
    match busiest {
        Some(u) => format!(
            "{} ({:.2} cores; all processes {:.2} of {} cores)",
            u.process,
            u.cores,
            total,
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        None => "unknown".to_owned(),
    }
}

/// Sweeps rates upward from `sweep.start`; then the 1,024-connection memory step.
pub(crate) async fn sweep(
    url: &str,
    sink: &RecordingSink,
    channel: &lapin::Channel,
    services: &[&Service],
    sweep: &Sweep,
) -> Knee {
    let watched = Watched::all(services);
    let mut steps: Vec<Step> = Vec::new();
    let mut rate = sweep.start.max(1);
    let stopped_by = loop {
        let s = step(url, sink, channel, &watched, rate, sweep.step).await;
        println!(
            "knee {rate}/s: p50 {:.2} ms, p99 {:.2} ms, drain {:.0} ms, {} lost; backlog {}; {}",
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.drain_ms,
            s.lost,
            s.backlog
                .iter()
                .map(|(q, d)| format!("{q} {d}"))
                .collect::<Vec<_>>()
                .join(", "),
            s.usage
                .iter()
                .map(|u| format!("{} {:.2} cores {:.0} MiB", u.process, u.cores, u.rss_mib))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let within = s.within;
        let reason = if s.latency.p99_ms > P99_BOUND_MS {
            format!(
                "p99 {:.1} ms > {P99_BOUND_MS} ms at {rate}/s",
                s.latency.p99_ms
            )
        } else if s.lost > 0 || s.accepted < s.sent {
            format!(
                "{} refused, {} lost at {rate}/s",
                s.sent - s.accepted,
                s.lost
            )
        } else {
            format!(
                "fell behind at {rate}/s (last event {:.0} ms after the last send)",
                s.drain_ms
            )
        };
        steps.push(s);
        if !within {
            break reason;
        }
        let next = (f64::from(rate) * sweep.factor).round() as u32;
        if next > sweep.max {
            break format!("reached --knee-max {}/s within the bound", sweep.max);
        }
        rate = next.max(rate + 1);
    };
    let knee_rate = steps.iter().filter(|s| s.within).map(|s| s.rate).max();
    let saturated = steps.last().filter(|s| !s.within).map(saturated);
    // Memory at 1,024 connections, with worker and delivery handling what ingress accepts.
    let before_cpu = cpu_now(&watched);
    let started = Instant::now();
    let before = sink.arrivals.lock().expect("arrivals lock").by_event.len();
    let run = load::closed_loop(url, load::callbacks(sweep.many_requests), MANY_CONNECTIONS).await;
    let seconds = started.elapsed().as_secs_f64();
    let many_connections = usage(&watched, &before_cpu, seconds);
    println!(
        "{MANY_CONNECTIONS} connections: {:.0} req/s, p99 {:.2} ms, {} failures; {}",
        run.per_second,
        run.latency.p99_ms,
        run.failures,
        many_connections
            .iter()
            .map(|u| format!("{} peak {:.1} MiB", u.process, u.peak_rss_mib))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let accepted = run.requests - run.failures;
    sink.wait_until(Instant::now() + Duration::from_secs(120), |a| {
        a.by_event.len() >= before + accepted
    })
    .await;
    Knee {
        steps,
        knee_rate,
        stopped_by,
        saturated,
        many_connections,
    }
}
