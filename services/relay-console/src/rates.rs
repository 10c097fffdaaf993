//! Events in and deliveries out per second, for the overview: every [`EVERY`] the console
//! reads ingress's and delivery's `/metrics` and keeps the last two readings of
//! `relay_ingress_events_total` and of `relay_delivery_attempts_total{outcome="delivered"}`.
//! A service it cannot read shows as unknown, never as zero.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::config::Config;
use tokio_util::sync::CancellationToken;

/// How often the counters are read.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// One service's counter, read twice.
#[derive(Debug, Clone, Copy, Default)]
struct Readings {
    last: Option<(Instant, f64)>,
    rate: Option<f64>,
}

impl Readings {
    fn record(&mut self, at: Instant, value: Option<f64>) {
        let Some(value) = value else {
            *self = Self::default();
            return;
        };
        if let Some((then, before)) = self.last {
            let seconds = at.duration_since(then).as_secs_f64();
            // A counter that went down is a restarted service: no rate until the next reading.
            self.rate = (seconds > 0.0 && value >= before).then(|| (value - before) / seconds);
        }
        self.last = Some((at, value));
    }
}

/// The latest rates.
#[derive(Clone, Default)]
pub(crate) struct Rates {
    inner: Arc<Mutex<(Readings, Readings)>>,
}

impl Rates {
    /// Starts reading the services named by `config` (their admin URLs) until `stop`.
    pub(crate) fn start(config: &Config, stop: CancellationToken) -> Self {
        let rates = Self::default();
        let [(_, ingress), _, (_, delivery)] = config.console.service_urls(config);
        let task = rates.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default();
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let events = read(&client, &ingress, "relay_ingress_events_total", None).await;
                let delivered = read(
                    &client,
                    &delivery,
                    "relay_delivery_attempts_total",
                    Some(("outcome", "delivered")),
                )
                .await;
                let now = Instant::now();
                let mut guard = task.lock();
                guard.0.record(now, events);
                guard.1.record(now, delivered);
            }
        });
        rates
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Readings, Readings)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Events in per second and deliveries out per second, where known.
    pub(crate) fn now(&self) -> (Option<f64>, Option<f64>) {
        let guard = self.lock();
        (guard.0.rate, guard.1.rate)
    }
}

async fn read(
    client: &reqwest::Client,
    base: &str,
    metric: &str,
    label: Option<(&str, &str)>,
) -> Option<f64> {
    let text = client
        .get(format!("{}/metrics", base.trim_end_matches('/')))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    Some(sum(&text, metric, label))
}

/// The sum of every series of `metric` (with `label`, when given) in a Prometheus text page.
pub(crate) fn sum(text: &str, metric: &str, label: Option<(&str, &str)>) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let name_end = series.find('{').unwrap_or(series.len());
            if &series[..name_end] != metric {
                return None;
            }
            if let Some((key, wanted)) = label
                && !series.contains(&format!("{key}=\"{wanted}\""))
            {
                return None;
            }
            value.parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_by_name_and_label() {
        let text = "# HELP x\nrelay_delivery_attempts_total{destination=\"a\",outcome=\"delivered\"} 3\nrelay_delivery_attempts_total{destination=\"b\",outcome=\"delivered\"} 4\nrelay_delivery_attempts_total{destination=\"a\",outcome=\"retryable\"} 9\nrelay_delivery_attempts_total_other 100\n";
        assert_eq!(
            sum(
                text,
                "relay_delivery_attempts_total",
                Some(("outcome", "delivered"))
            ),
            7.0
        );
        assert_eq!(sum(text, "relay_delivery_attempts_total", None), 16.0);
    }

    #[test]
    fn a_rate_needs_two_readings_and_a_restart_resets_it() {
        let mut r = Readings::default();
        let t0 = Instant::now();
        r.record(t0, Some(10.0));
        assert_eq!(r.rate, None);
        r.record(t0 + Duration::from_secs(5), Some(60.0));
        assert_eq!(r.rate, Some(10.0));
        r.record(t0 + Duration::from_secs(10), Some(5.0));
        assert_eq!(r.rate, None);
        r.record(t0 + Duration::from_secs(15), None);
        assert!(r.last.is_none());
    }
}
