//! The Markdown of the results: the section appended to BENCHMARKS.md, and its end-to-end and
//! isolation tables on the console. Scenarios left out by `--only` leave their section out.

use std::fmt::Write as _;
use std::path::Path;

use super::calls::CALLBACK_OFFSETS_MS;
use super::report::Results;

impl Results {
    /// Prints the end-to-end tables of both scenarios, and the isolation table (those that ran).
    pub(crate) fn print_end_to_end(&self) {
        if !self.end_to_end.min_balance.is_empty() {
            println!("{}", self.min_balance_table());
        }
        if !self.end_to_end.calls.is_empty() {
            print!("{}", self.calls_table());
        }
        if let Some(table) = self.isolation_table() {
            print!("{table}");
        }
        if let Some(knee) = &self.knee {
            print!("{}", knee.markdown());
        }
    }

    /// The section appended to BENCHMARKS.md; `svg` is the chart it links to (none when the
    /// end-to-end scenario did not run).
    pub(super) fn markdown(&self, svg: Option<&Path>) -> String {
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
        if !self.ingress.is_empty() {
            m.push_str(&self.ingress_table());
        }
        if let Some(o) = &self.redis_outage {
            let _ = writeln!(
                m,
                "\n### Ingress with Redis stopped (concurrency {})\n\nThe bench's own Redis killed; the store's breaker skips it after its first failures.\n",
                o.concurrency
            );
            let _ = writeln!(
                m,
                "| Redis | req/s | p50 ms | p99 ms | p99.9 ms | failures |"
            );
            let _ = writeln!(m, "|---|---|---|---|---|---|");
            for (label, t) in [("up", &o.redis_up), ("stopped", &o.redis_stopped)] {
                let _ = writeln!(
                    m,
                    "| {label} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                    t.per_second, t.latency.p50_ms, t.latency.p99_ms, t.latency.p999_ms, t.failures
                );
            }
            let _ = writeln!(
                m,
                "\nStopped / up: {:.2} of the throughput.",
                o.redis_stopped.per_second / o.redis_up.per_second
            );
        }
        if let Some(svg) = svg {
            m.push_str(&self.min_balance_table());
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
        }
        if !self.end_to_end.calls.is_empty() {
            m.push_str(&self.calls_table());
        }
        if let Some(d) = &self.delivery {
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
        }
        if let Some(table) = self.isolation_table() {
            m.push_str(&table);
        }
        if let Some(knee) = &self.knee {
            m.push_str(&knee.markdown());
            let _ = writeln!(
                m,
                "Chart: bench-{}-{}-knee.svg beside the JSON.\n",
                self.date, self.revision
            );
        }
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

    /// The ingress table (Markdown).
    fn ingress_table(&self) -> String {
        let mut m = String::new();
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
        m
    }

    /// The isolation table (Markdown), when the scenario ran.
    fn isolation_table(&self) -> Option<String> {
        let i = self.isolation.as_ref()?;
        let mut m = String::new();
        let _ = writeln!(m, "### Delivery isolation (one destination stuck)\n");
        let _ = writeln!(
            m,
            "{} jobs for destination B pre-loaded in `relay.deliveries` and drained by relay-delivery: alone, then behind {} jobs \
             for a destination A that holds every request open until the run ends (prefetch {}, `max_in_flight` {} each). \
             Time: from delivery's first request of the run to B's last arrival.\n",
            i.jobs, i.stuck_jobs, i.prefetch, i.max_in_flight
        );
        let _ = writeln!(
            m,
            "| B alone jobs/s | B with A stuck jobs/s | with / alone | A requests held (peak) | A deferrals |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|");
        let deferred = i.a_deferred.map_or_else(
            || "-".to_owned(),
            |n| {
                let reasons: Vec<String> = i
                    .a_deferred_by_reason
                    .iter()
                    .map(|(reason, n)| format!("{reason} {n}"))
                    .collect();
                if reasons.is_empty() {
                    n.to_string()
                } else {
                    format!("{n} ({})", reasons.join(", "))
                }
            },
        );
        let _ = writeln!(
            m,
            "| {:.0} | {:.0} | **{:.2}** | {} | {deferred} |\n",
            i.b_alone.per_second, i.b_with_a_stuck.per_second, i.ratio, i.a_held_peak
        );
        Some(m)
    }

    /// The min-balance end-to-end table (Markdown).
    fn min_balance_table(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "\n### End to end (request → worker → delivery → sink)\n");
        let _ = writeln!(
            m,
            "| offered/s | seconds | sent | accepted | delivered | lost | duplicates | p50 ms | p99 ms | max ms |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.end_to_end.min_balance {
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
        m
    }

    /// The call-event end-to-end table (Markdown).
    fn calls_table(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "### End to end, call events (Plivo callbacks → call log → delivery → helpdesk)\n"
        );
        let [answer, dial, hangup] = CALLBACK_OFFSETS_MS;
        let _ = writeln!(
            m,
            "Each call: the caller's leg answered, an agent's Dial answer and the hangup, sent at +{answer}, +{dial} and +{hangup} ms; \
             they make three helpdesk messages, one in flight per call at a time. Latency: a message's arrival − the planned \
             send instant of the callback that caused it.\n"
        );
        let _ = writeln!(
            m,
            "| calls/s | seconds | calls | callbacks | accepted | messages | delivered | lost | duplicates | p50 ms | p99 ms | max ms |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.end_to_end.calls {
            let _ = writeln!(
                m,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                r.calls_per_second,
                r.seconds,
                r.calls,
                r.callbacks_sent,
                r.callbacks_accepted,
                r.messages,
                r.delivered,
                r.lost,
                r.duplicates,
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.max_ms
            );
        }
        m.push('\n');
        m
    }
}
