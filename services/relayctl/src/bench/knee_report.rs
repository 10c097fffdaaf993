//! The knee's part of the results: its targets, its Markdown tables (the sweep, and memory at
//! 1,024 connections) and the runs its chart plots.

use std::fmt::Write as _;

use super::knee::{Knee, MANY_CONNECTIONS, P99_BOUND_MS};
use super::report::{E2eRun, Target};

impl Knee {
    /// The goals: the knee at half of ingress's best rate or more, and every service
    /// under 64 MiB at 1,024 connections and at the knee.
    pub(crate) fn targets(&self, ingress_max: Option<f64>) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some(max) = ingress_max {
            let knee = f64::from(self.knee_rate.unwrap_or(0));
            targets.push(Target {
                what: format!(
                    "end-to-end knee (p99 ≤ {P99_BOUND_MS} ms) ≥ 0.5 × ingress's best rate ({max:.0}/s)"
                ),
                measured: format!(
                    "{:.0}/s = {:.2}; stopped by {}; saturated: {}",
                    knee,
                    knee / max,
                    self.stopped_by,
                    self.saturated.as_deref().unwrap_or("-")
                ),
                met: knee >= 0.5 * max,
            });
        }
        for u in &self.many_connections {
            if u.process.starts_with("relay-") {
                targets.push(Target {
                    what: format!(
                        "{} peak RSS < 64 MiB through the sweep and {MANY_CONNECTIONS} connections",
                        u.process
                    ),
                    measured: format!("{:.1} MiB", u.peak_rss_mib),
                    met: u.peak_rss_mib < 64.0,
                });
            }
        }
        targets
    }

    /// The sweep as end-to-end runs, for the latency chart.
    pub(crate) fn runs(&self) -> Vec<E2eRun> {
        self.steps
            .iter()
            .map(|s| E2eRun {
                offered_rate: s.rate,
                seconds: s.seconds,
                sent: s.sent,
                accepted: s.accepted,
                delivered: s.delivered,
                lost: s.lost,
                duplicates: s.duplicates,
                latency: s.latency.clone(),
            })
            .collect()
    }

    /// The sweep and memory tables.
    pub(crate) fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "\n### End-to-end knee (min-balance callbacks, open loop, rates rising)\n"
        );
        let processes: Vec<&str> = self
            .steps
            .first()
            .map(|s| s.usage.iter().map(|u| u.process.as_str()).collect())
            .unwrap_or_default();
        let _ = write!(
            m,
            "| offered/s | accepted | delivered | lost | p50 ms | p99 ms | drain ms | backlog at end |"
        );
        for p in &processes {
            let _ = write!(m, " {p} cores / RSS MiB |");
        }
        let _ = writeln!(m);
        let _ = writeln!(m, "|{}", "---|".repeat(8 + processes.len()));
        for s in &self.steps {
            let backlog = s
                .backlog
                .iter()
                .map(|(q, d)| format!("{q} {d}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mark = if s.within { "" } else { " ✗" };
            let _ = write!(
                m,
                "| {}{mark} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {backlog} |",
                s.rate,
                s.accepted,
                s.delivered,
                s.lost,
                s.latency.p50_ms,
                s.latency.p99_ms,
                s.drain_ms
            );
            for u in &s.usage {
                let _ = write!(m, " {:.2} / {:.0} |", u.cores, u.rss_mib);
            }
            let _ = writeln!(m);
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let _ = writeln!(
            m,
            "\nCPU per event: µs of CPU each process spent per offered callback. The machine's \
             {cores} cores hold {cores} × 1,000,000 / rate µs per event in all; a stage whose \
             cost stays flat as the rate rises is doing work per event, one that falls is \
             amortising wake-ups.\n"
        );
        let _ = write!(m, "| offered/s |");
        for p in &processes {
            let _ = write!(m, " {p} |");
        }
        let _ = writeln!(m, " all |");
        let _ = writeln!(m, "|{}", "---|".repeat(2 + processes.len()));
        for s in &self.steps {
            let rate = f64::from(s.rate.max(1));
            let _ = write!(m, "| {} |", s.rate);
            for u in &s.usage {
                let _ = write!(m, " {:.0} |", u.cores / rate * 1e6);
            }
            let all: f64 = s.usage.iter().map(|u| u.cores).sum();
            let _ = writeln!(m, " {:.0} |", all / rate * 1e6);
        }
        let knee = self
            .knee_rate
            .map_or_else(|| "below the first rate".to_owned(), |r| format!("{r}/s"));
        let _ = writeln!(
            m,
            "\nKnee: **{knee}**. Stopped by: {}. Saturated: {}.\n",
            self.stopped_by,
            self.saturated.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            m,
            "### Memory at {MANY_CONNECTIONS} ingress connections (worker and delivery running)\n"
        );
        let _ = writeln!(m, "| process | peak RSS MiB | RSS MiB after | cores |");
        let _ = writeln!(m, "|---|---|---|---|");
        for u in &self.many_connections {
            let _ = writeln!(
                m,
                "| {} | {:.1} | {:.1} | {:.2} |",
                u.process, u.peak_rss_mib, u.rss_mib, u.cores
            );
        }
        m
    }
}
