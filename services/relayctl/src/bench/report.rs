//! Bench results: JSON, a Markdown section for BENCHMARKS.md, and an SVG chart of end-to-end
//! latency against offered rate (drawn by hand: a few lines of SVG need no plotting crate).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::load::{Latency, Throughput};

/// A chart series: name, colour, and the latency figure it plots.
type Series = (&'static str, &'static str, fn(&Latency) -> f64);

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

#[derive(Debug, Serialize)]
pub(crate) struct DeliveryRun {
    pub(crate) jobs: usize,
    pub(crate) delivered: u64,
    pub(crate) seconds: f64,
    pub(crate) per_second: f64,
    pub(crate) raw_consume_per_second: f64,
    pub(crate) ratio: f64,
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
    pub(crate) ingress: Vec<IngressRun>,
    pub(crate) end_to_end: Vec<E2eRun>,
    /// The lowest offered rate whose p99 exceeded 50 ms (none: not within the rates run).
    pub(crate) p99_over_50ms_at: Option<u32>,
    pub(crate) delivery: DeliveryRun,
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
        end_to_end: Vec<E2eRun>,
        delivery: DeliveryRun,
        services: Vec<ServiceUsage>,
        bad_signatures_at_sink: u64,
    ) -> Self {
        let p99_over_50ms_at = end_to_end
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
        if let Some(run) = end_to_end.iter().find(|r| r.offered_rate == 1000) {
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
        targets.push(Target {
            what: "delivery ≥ 0.5 × raw consume+ack".to_owned(),
            measured: format!("{:.2}", delivery.ratio),
            met: delivery.ratio >= 0.5,
        });
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
            ingress,
            end_to_end,
            p99_over_50ms_at,
            delivery,
            services,
            bad_signatures_at_sink,
            targets,
        }
    }

    pub(crate) fn print_targets(&self) {
        println!("targets (reported, not asserted):");
        for t in &self.targets {
            println!(
                "  [{}] {}: {}",
                if t.met { "met" } else { "MISSED" },
                t.what,
                t.measured
            );
        }
        if self.bad_signatures_at_sink > 0 {
            println!(
                "  WARNING: {} request(s) reached the sink with a bad signature",
                self.bad_signatures_at_sink
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
        let svg = out.join(format!("{stem}-e2e-latency.svg"));
        std::fs::write(&svg, self.chart())?;
        let mut written = format!("{} and {}", json.display(), svg.display());
        if let Some(path) = markdown {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            file.write_all(self.markdown(&svg).as_bytes())?;
            written.push_str(&format!(", appended to {}", path.display()));
        }
        Ok(written)
    }

    fn markdown(&self, svg: &Path) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "\n## relayctl bench: {}, rev {}\n",
            self.date, self.revision
        );
        let _ = writeln!(
            m,
            "Machine: {}. Everything on this one machine: RabbitMQ, Redis, the three services and the load generator.\n",
            self.machine
        );
        let _ = writeln!(m, "Command: `{}`\n", self.command);
        let _ = writeln!(m, "### Ingress vs. the broker's own limit\n");
        let _ = writeln!(
            m,
            "| concurrency | ingress req/s | p50 ms | p99 ms | p99.9 ms | failures | broker publish msg/s | broker p99 ms | ingress / broker | broker via relay.events msg/s | broker consume+ack msg/s | ingress CPU s |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.ingress {
            let _ = writeln!(
                m,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.2} | **{:.2}** | {:.0} | {:.0} | {:.2} |",
                r.ingress.concurrency,
                r.ingress.per_second,
                r.ingress.latency.p50_ms,
                r.ingress.latency.p99_ms,
                r.ingress.latency.p999_ms,
                r.ingress.failures,
                r.broker_publish.per_second,
                r.broker_publish.latency.p99_ms,
                r.ratio,
                r.broker_publish_via_relay_topology.per_second,
                r.broker_consume_per_second,
                r.ingress_cpu_seconds
            );
        }
        let _ = writeln!(m, "\n### End to end (request → worker → delivery → sink)\n");
        let _ = writeln!(
            m,
            "| offered/s | seconds | sent | accepted | delivered | lost | duplicates | p50 ms | p99 ms | max ms |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.end_to_end {
            let _ = writeln!(
                m,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                r.offered_rate,
                r.seconds,
                r.sent,
                r.accepted,
                r.delivered,
                r.lost,
                r.duplicates,
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.max_ms
            );
        }
        let at = self.p99_over_50ms_at.map_or_else(
            || "not within the rates run".to_owned(),
            |r| format!("{r}/s"),
        );
        let _ = writeln!(
            m,
            "\np99 passes 50 ms at: {at}. Chart: [{}]({})\n",
            svg.display(),
            svg.display()
        );
        let d = &self.delivery;
        let _ = writeln!(m, "### Delivery\n");
        let _ = writeln!(
            m,
            "| jobs | delivered | seconds | delivered/s | raw consume+ack msg/s | delivery / raw |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|");
        let _ = writeln!(
            m,
            "| {} | {} | {:.2} | {:.0} | {:.0} | **{:.2}** |\n",
            d.jobs, d.delivered, d.seconds, d.per_second, d.raw_consume_per_second, d.ratio
        );
        let _ = writeln!(m, "### Services and targets\n");
        for s in &self.services {
            let _ = writeln!(
                m,
                "- {}: peak RSS {:.1} MiB, CPU {:.1} s over the run",
                s.service, s.peak_rss_mib, s.cpu_seconds
            );
        }
        for t in &self.targets {
            let _ = writeln!(
                m,
                "- {} {}: {}",
                if t.met { "met:" } else { "**missed**:" },
                t.what,
                t.measured
            );
        }
        m
    }

    /// p50, p99 and max latency against offered rate.
    fn chart(&self) -> String {
        let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 45.0, 40.0, 50.0);
        let runs = &self.end_to_end;
        let max_rate = runs
            .iter()
            .map(|r| f64::from(r.offered_rate))
            .fold(1.0, f64::max);
        let max_ms = runs.iter().map(|r| r.latency.max_ms).fold(50.0, f64::max) * 1.1;
        let x = |rate: f64| left + (w - left - right) * rate / max_rate;
        let y = |ms: f64| h - bottom - (h - top - bottom) * ms / max_ms;
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">relay end-to-end latency vs offered rate ({} rev {})</text>
"#,
            w / 2.0,
            self.date,
            self.revision
        );
        for i in 0..=5 {
            let ms = max_ms * f64::from(i) / 5.0;
            let (gx, gy, lx) = (w - right, y(ms), left - 6.0);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{gx}" y1="{gy:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{lx}" y="{:.1}" text-anchor="end">{ms:.0} ms</text>"##,
                gy + 4.0
            );
        }
        for r in runs {
            let rx = x(f64::from(r.offered_rate));
            let _ = writeln!(
                s,
                r#"<text x="{rx:.1}" y="{}" text-anchor="middle">{}/s</text>"#,
                h - bottom + 18.0,
                r.offered_rate
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="4 4"/><text x="{}" y="{:.1}" fill="#c00" text-anchor="end">50 ms target</text>"##,
            w - right,
            y(50.0),
            y(50.0),
            w - right - 4.0,
            y(50.0) - 4.0
        );
        let series: [Series; 3] = [
            ("p50", "#1f77b4", |l| l.p50_ms),
            ("p99", "#ff7f0e", |l| l.p99_ms),
            ("max", "#7f7f7f", |l| l.max_ms),
        ];
        for (i, (name, colour, value)) in series.iter().enumerate() {
            let points: Vec<String> = runs
                .iter()
                .map(|r| {
                    format!(
                        "{:.1},{:.1}",
                        x(f64::from(r.offered_rate)),
                        y(value(&r.latency))
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
            for p in &points {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#);
            }
            let ly = top + 14.0 + 16.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{}" y="{}" width="12" height="3" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
                left + 10.0,
                ly - 4.0,
                left + 28.0,
                ly
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">offered callbacks per second</text>"#,
            (left + w - right) / 2.0,
            h - 12.0
        );
        s.push_str("</svg>\n");
        s
    }
}
