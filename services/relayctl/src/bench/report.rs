//! Bench results: JSON, a Markdown section for BENCHMARKS.md ([`markdown`](super::markdown),
//! its end-to-end tables also on the console), and an SVG chart of end-to-end latency against
//! offered rate ([`chart`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::calls::CALLBACK_OFFSETS_MS;
use super::chart;
use super::load::{Latency, Throughput};

#[derive(Debug, Serialize)]
pub(crate) struct IngressRun {
    pub(crate) ingress: Throughput,
    pub(crate) broker_publish: Throughput,
    /// The same publishes through `relay.events` into the handler queue, with ingress's
    /// properties: what the relay's topology itself costs the broker.
    pub(crate) broker_publish_via_relay_topology: Throughput,
    pub(crate) broker_consume_per_second: f64,
    pub(crate) ratio: f64,
    pub(crate) ingress_cpu_seconds: f64,
}

/// Ingress throughput with Redis stopped, beside Redis up, at one concurrency.
#[derive(Debug, Serialize)]
pub(crate) struct RedisOutage {
    pub(crate) concurrency: usize,
    pub(crate) redis_up: Throughput,
    pub(crate) redis_stopped: Throughput,
}

#[derive(Debug, Serialize)]
pub(crate) struct E2eRun {
    pub(crate) offered_rate: u32,
    pub(crate) seconds: f64,
    pub(crate) sent: usize,
    pub(crate) accepted: usize,
    pub(crate) delivered: usize,
    pub(crate) lost: usize,
    pub(crate) duplicates: usize,
    pub(crate) latency: Latency,
}

/// One rate of the call-event scenario: Plivo calls → call log → delivery → helpdesk.
#[derive(Debug, Serialize)]
pub(crate) struct CallRun {
    /// Offered calls per second (three callbacks each).
    pub(crate) calls_per_second: u32,
    pub(crate) seconds: f64,
    pub(crate) calls: usize,
    pub(crate) callbacks_sent: usize,
    /// Callbacks ingress answered with a 2xx.
    pub(crate) callbacks_accepted: usize,
    /// Helpdesk messages expected: three per call whose callbacks were all accepted.
    pub(crate) messages: usize,
    /// Expected messages that reached the sink (each counted once).
    pub(crate) delivered: usize,
    pub(crate) lost: usize,
    /// Repeated arrivals of expected messages.
    pub(crate) duplicates: usize,
    /// Every message: arrival at the sink − the planned send instant of its callback.
    pub(crate) latency: Latency,
    /// The same by message: `started`, `answered`, `ended`.
    pub(crate) by_message: BTreeMap<String, Latency>,
}

/// The end-to-end scenarios of one run, side by side.
#[derive(Debug, Serialize)]
pub(crate) struct EndToEnd {
    /// Min-balance callbacks → signed alert.
    #[serde(rename = "end_to_end")]
    pub(crate) min_balance: Vec<E2eRun>,
    /// Call events → helpdesk messages.
    #[serde(rename = "end_to_end_calls")]
    pub(crate) calls: Vec<CallRun>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DeliveryRun {
    pub(crate) jobs: usize,
    pub(crate) delivered: u64,
    pub(crate) seconds: f64,
    pub(crate) per_second: f64,
    pub(crate) raw_consume_per_second: f64,
    pub(crate) ratio: f64,
}

/// One drain of the isolation scenario's destination B.
#[derive(Debug, Serialize)]
pub(crate) struct DrainRun {
    /// B's jobs that reached the sink.
    pub(crate) delivered: usize,
    /// From the first request delivery sent in the run (to either destination) to B's last
    /// arrival.
    pub(crate) seconds: f64,
    pub(crate) per_second: f64,
}

/// Two destinations, one stuck: B's delivery throughput alone, then with A's jobs queued ahead
/// of B's and A holding every request open.
#[derive(Debug, Serialize)]
pub(crate) struct IsolationRun {
    /// B's jobs in each run.
    pub(crate) jobs: usize,
    /// A's jobs queued ahead of B's in the second run.
    pub(crate) stuck_jobs: usize,
    /// `delivery.prefetch`.
    pub(crate) prefetch: u16,
    /// Both destinations' `max_in_flight`.
    pub(crate) max_in_flight: u32,
    pub(crate) b_alone: DrainRun,
    pub(crate) b_with_a_stuck: DrainRun,
    /// B with A stuck / B alone (jobs/s).
    pub(crate) ratio: f64,
    /// Requests A's endpoint received (each held until the end of the run).
    pub(crate) a_requests: u64,
    /// The most of A's requests held open at once (at most `max_in_flight` if the limit holds).
    pub(crate) a_held_peak: u64,
    /// A's requests still held when B's last job arrived.
    pub(crate) a_held_when_b_done: u64,
    /// `relay_delivery_deferred_total` for A when B's last job arrived (each deferral of a job
    /// counts; none: delivery's /metrics could not be read).
    pub(crate) a_deferred: Option<u64>,
    /// The same by reason.
    pub(crate) a_deferred_by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ServiceUsage {
    pub(crate) service: String,
    pub(crate) peak_rss_mib: f64,
    pub(crate) cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) measured: String,
    pub(crate) met: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) date: String,
    pub(crate) revision: String,
    pub(crate) machine: String,
    pub(crate) command: String,
    pub(crate) quick: bool,
    /// The scenarios run (`--only`; all by default).
    pub(crate) scenarios: Vec<String>,
    pub(crate) ingress: Vec<IngressRun>,
    /// Ingress with its Redis stopped, beside the same run with Redis up.
    pub(crate) redis_outage: Option<RedisOutage>,
    #[serde(flatten)]
    pub(crate) end_to_end: EndToEnd,
    /// The lowest offered rate whose p99 exceeded 50 ms (none: not within the rates run).
    pub(crate) p99_over_50ms_at: Option<u32>,
    pub(crate) delivery: Option<DeliveryRun>,
    /// Delivery to one destination beside another that is stuck.
    pub(crate) isolation: Option<IsolationRun>,
    /// The end-to-end knee sweep and memory at 1,024 connections.
    pub(crate) knee: Option<super::knee::Knee>,
    pub(crate) services: Vec<ServiceUsage>,
    pub(crate) bad_signatures_at_sink: u64,
    pub(crate) targets: Vec<Target>,
}

fn revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "-".to_owned(), |s| s.trim().to_owned())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1_048_576.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

impl Results {
    pub(crate) fn new(
        command: String,
        quick: bool,
        ingress: Vec<IngressRun>,
        end_to_end: EndToEnd,
        delivery: Option<DeliveryRun>,
        services: Vec<ServiceUsage>,
        bad_signatures_at_sink: u64,
    ) -> Self {
        let p99_over_50ms_at = end_to_end
            .min_balance
            .iter()
            .find(|r| r.latency.p99_ms > 50.0)
            .map(|r| r.offered_rate);
        let mut targets = Vec::new();
        for run in &ingress {
            targets.push(Target {
                what: format!(
                    "ingress ≥ 0.6 × broker baseline at concurrency {}",
                    run.ingress.concurrency
                ),
                measured: format!("{:.2}", run.ratio),
                met: run.ratio >= 0.6,
            });
        }
        if let Some(run) = end_to_end
            .min_balance
            .iter()
            .find(|r| r.offered_rate == 1000)
        {
            targets.push(Target {
                what: format!(
                    "end-to-end p99 ≤ 50 ms at 1,000/s for {:.0} s, zero loss",
                    run.seconds
                ),
                measured: format!(
                    "p99 {:.2} ms, {} lost, {} duplicates",
                    run.latency.p99_ms, run.lost, run.duplicates
                ),
                met: run.latency.p99_ms <= 50.0 && run.lost == 0 && run.seconds >= 60.0,
            });
        }
        if let Some(delivery) = &delivery {
            targets.push(Target {
                what: "delivery ≥ 0.5 × raw consume+ack".to_owned(),
                measured: format!("{:.2}", delivery.ratio),
                met: delivery.ratio >= 0.5,
            });
        }
        for s in &services {
            targets.push(Target {
                what: format!("{} peak RSS ≤ 64 MiB", s.service),
                measured: format!("{:.1} MiB", s.peak_rss_mib),
                met: s.peak_rss_mib <= 64.0,
            });
        }
        Self {
            date: time::OffsetDateTime::now_utc().date().to_string(),
            revision: revision(),
            machine: machine(),
            command,
            quick,
            scenarios: Vec::new(),
            ingress,
            redis_outage: None,
            end_to_end,
            p99_over_50ms_at,
            delivery,
            isolation: None,
            knee: None,
            services,
            bad_signatures_at_sink,
            targets,
        }
    }

    /// Adds the knee and its targets.
    pub(crate) fn add_knee(&mut self, knee: super::knee::Knee) {
        let ingress_max = self
            .ingress
            .iter()
            .map(|r| r.ingress.per_second)
            .reduce(f64::max);
        self.targets.extend(knee.targets(ingress_max));
        self.knee = Some(knee);
    }

    pub(crate) fn print_targets(&self) {
        if self.quick {
            // A smoke run's few hundred requests say nothing about speed: no verdicts.
            println!("targets: not judged in a --quick run (run `relayctl bench` for the figures)");
        } else {
            self.print_verdicts();
        }
        if self.bad_signatures_at_sink > 0 {
            println!(
                "  WARNING: {} request(s) reached the sink with a bad signature",
                self.bad_signatures_at_sink
            );
        }
    }

    fn print_verdicts(&self) {
        println!("targets (reported, not asserted):");
        for t in &self.targets {
            println!(
                "  [{}] {}: {}",
                if t.met { "met" } else { "MISSED" },
                t.what,
                t.measured
            );
        }
    }

    /// Writes `bench.json` and `e2e-latency.svg` into `out`, and appends the Markdown section
    /// to `markdown` when given. Returns what was written.
    pub(crate) fn write(&self, out: &Path, markdown: Option<&Path>) -> anyhow::Result<String> {
        std::fs::create_dir_all(out)?;
        // Full runs keep their own files, so every BENCHMARKS.md section links to its chart.
        let stem = if self.quick {
            "bench-quick".to_owned()
        } else {
            format!("bench-{}-{}", self.date, self.revision)
        };
        let json = out.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let mut written = json.display().to_string();
        // The chart only when the end-to-end scenario ran (`--only` may leave it out).
        let svg = (!self.end_to_end.min_balance.is_empty())
            .then(|| out.join(format!("{stem}-e2e-latency.svg")));
        if let Some(svg) = &svg {
            std::fs::write(
                svg,
                chart::e2e_latency(&self.end_to_end.min_balance, &self.date, &self.revision),
            )?;
            written.push_str(&format!(" and {}", svg.display()));
        }
        if let Some(knee) = &self.knee {
            let path = out.join(format!("{stem}-knee.svg"));
            std::fs::write(
                &path,
                chart::e2e_latency(&knee.runs(), &self.date, &self.revision),
            )?;
            written.push_str(&format!(" and {}", path.display()));
        }
        if let Some(path) = markdown {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            file.write_all(self.markdown(svg.as_deref()).as_bytes())?;
            written.push_str(&format!(", appended to {}", path.display()));
        }
        Ok(written)
    }

    /// Why the isolation scenario failed, if it did: B's jobs not all delivered (alone or
    /// beside the stuck A), or more of A's requests held at once than its in-flight limit.
    pub(crate) fn isolation_failure(&self) -> Option<String> {
        let i = self.isolation.as_ref()?;
        let mut problems = Vec::new();
        for (label, run) in [("alone", &i.b_alone), ("with A stuck", &i.b_with_a_stuck)] {
            if run.delivered < i.jobs {
                problems.push(format!(
                    "B {label}: {} of {} jobs delivered",
                    run.delivered, i.jobs
                ));
            }
        }
        if i.a_held_peak > u64::from(i.max_in_flight) {
            problems.push(format!(
                "A held {} requests at once, above its max_in_flight {}",
                i.a_held_peak, i.max_in_flight
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Why the call-event scenario failed its zero-loss check, if it did: a callback ingress
    /// did not accept, a message that never arrived, or one that arrived twice.
    pub(crate) fn call_failure(&self) -> Option<String> {
        let problems: Vec<String> = self
            .end_to_end
            .calls
            .iter()
            .filter(|r| {
                r.callbacks_accepted < r.callbacks_sent
                    || r.callbacks_sent < CALLBACK_OFFSETS_MS.len() * r.calls
                    || r.lost > 0
                    || r.duplicates > 0
            })
            .map(|r| {
                format!(
                    "{} calls/s: {} of {} callbacks accepted, {} of {} messages lost, {} duplicates",
                    r.calls_per_second,
                    r.callbacks_accepted,
                    CALLBACK_OFFSETS_MS.len() * r.calls,
                    r.lost,
                    r.messages,
                    r.duplicates
                )
            })
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}
