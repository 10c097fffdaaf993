//! Reports this process's open destination breakers to Redis (`breakers:open`, see
//! [`relay_store::OpenBreaker`]), so that the worker can alert on a breaker open too long: the
//! breakers themselves live only in each delivery process's memory.
//!
//! Every `delivery.breaker_report_interval` the open breakers (destination → open since, unix
//! ms) replace this process's report. An idle process writes nothing: a report is written only
//! while something is open, or to delete the previous one once nothing is. On shutdown the
//! report is deleted; a process that dies without doing so stops refreshing it, and the reader
//! drops it once stale. Redis away costs a debug line per report: the store's own breaker
//! logs the outage once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use relay_store::Store;
use tokio_util::sync::CancellationToken;

use crate::destination::Destination;

/// Reports the open breakers of `destinations` as `instance` every `interval` until `stop`,
/// then deletes the report.
pub(crate) async fn run(
    destinations: Arc<HashMap<String, Destination>>,
    store: Store,
    instance: String,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut reporter = Reporter::new(instance);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        reporter.report(&store, &collect(&destinations)).await;
    }
    // Nothing open any more, as far as the others should know.
    reporter.report(&store, &BTreeMap::new()).await;
}

/// This process's name in the report: its host name (the pod's, in Kubernetes) and its pid.
pub(crate) fn instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "delivery".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The destinations whose breaker is open (half-open included), with since when (unix ms).
fn collect(destinations: &HashMap<String, Destination>) -> BTreeMap<String, i64> {
    destinations
        .values()
        .filter_map(|d| Some((d.name.clone(), d.breaker.open_since_ms()?)))
        .collect()
}

/// Writes reports, skipping those that would change nothing in Redis.
struct Reporter {
    instance: String,
    /// Whether Redis may hold a non-empty report of ours: after one was written, or when a
    /// write failed (the previous report may still be there).
    reported: bool,
    /// Whether an error other than Redis being away was logged since the last success.
    warned: bool,
}

impl Reporter {
    fn new(instance: String) -> Self {
        Self {
            instance,
            reported: false,
            warned: false,
        }
    }

    /// Replaces the report with `open`, unless both are empty.
    async fn report(&mut self, store: &Store, open: &BTreeMap<String, i64>) {
        if open.is_empty() && !self.reported {
            return;
        }
        match store.report_open_breakers(&self.instance, open).await {
            Ok(()) => {
                self.reported = !open.is_empty();
                self.warned = false;
            }
            Err(error) => {
                self.reported = true;
                if error.means_unavailable() {
                    tracing::debug!(%error, "open breakers not reported");
                } else if !self.warned {
                    tracing::warn!(%error, "open breakers not reported; retrying every report interval");
                    self.warned = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use relay_core::config::{Config, DestinationConfig, RedisConfig, Signing};

    use super::*;
    use crate::breaker::{Decision, Input};

    /// Two destinations, `a` and `b`, with closed breakers.
    fn destinations() -> Arc<HashMap<String, Destination>> {
        let mut config = Config::default();
        for name in ["a", "b"] {
            config.destinations.insert(
                name.into(),
                DestinationConfig::new(format!("http://127.0.0.1:1/{name}"), Signing::None, None),
            );
        }
        Arc::new(crate::destination::from_config(&config).unwrap())
    }

    fn open(destination: &Destination) {
        for _ in 0..destination.config.breaker_failures {
            destination
                .breaker
                .record(Input::Failed { probe: false }, Instant::now());
        }
        assert!(destination.breaker.open_since_ms().is_some());
    }

    fn close(destination: &Destination) {
        let later = Instant::now() + destination.config.breaker_cool_down;
        assert_eq!(destination.breaker.admit(later), Decision::Probe);
        destination
            .breaker
            .record(Input::Answered { probe: true }, later);
        assert!(destination.breaker.open_since_ms().is_none());
    }

    fn unix_ms() -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    #[test]
    fn only_open_breakers_are_collected_with_since_when() {
        let destinations = destinations();
        assert!(collect(&destinations).is_empty(), "all closed");
        let before = unix_ms();
        open(&destinations["a"]);
        let collected = collect(&destinations);
        assert_eq!(collected.keys().collect::<Vec<_>>(), ["a"]);
        assert!((before..=unix_ms()).contains(&collected["a"]));
        close(&destinations["a"]);
        assert!(collect(&destinations).is_empty(), "closed again");
    }

    #[test]
    fn the_instance_is_named_by_host_and_pid() {
        let instance = instance();
        let (host, pid) = instance.rsplit_once('-').unwrap();
        assert!(!host.is_empty());
        assert_eq!(pid, std::process::id().to_string());
    }

    /// A store on the real Redis at 127.0.0.1:6379 under a key prefix of its own, deleted on
    /// drop.
    struct TestRedis {
        config: RedisConfig,
        stop: CancellationToken,
    }

    impl TestRedis {
        fn new() -> Self {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            Self {
                config: RedisConfig {
                    key_prefix: format!("relay-test:report-{}-{nanos}:", std::process::id()),
                    ..Default::default()
                },
                stop: CancellationToken::new(),
            }
        }

        async fn store(&self) -> Store {
            let store = Store::start(
                &self.config,
                &relay_telemetry::Readiness::new(),
                self.stop.clone(),
            );
            assert!(store.wait_connected(Duration::from_secs(5)).await);
            store
        }
    }

    impl Drop for TestRedis {
        fn drop(&mut self) {
            self.stop.cancel();
            let _ = relay_store::purge_prefix(&self.config.url, &self.config.key_prefix);
        }
    }

    /// Waits up to 5 s for the reported open breakers to be `expected` (destination, since).
    async fn until_reported(store: &Store, expected: &[(&str, i64)]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen: Vec<(String, i64)> = store
                .open_breakers(Duration::from_secs(60))
                .await
                .unwrap()
                .into_iter()
                .map(|b| (b.destination, b.open_since_ms))
                .collect();
            let wanted: Vec<(String, i64)> =
                expected.iter().map(|&(d, ms)| (d.to_owned(), ms)).collect();
            if seen == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "reported {seen:?}, not {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn open_breakers_are_reported_until_they_close_and_the_report_goes_on_shutdown() {
        let redis = TestRedis::new();
        let (store, worker) = (redis.store().await, redis.store().await);
        let destinations = destinations();
        let stop = CancellationToken::new();
        let instance = "delivery-test-1".to_owned();
        let task = tokio::spawn(run(
            destinations.clone(),
            store,
            instance.clone(),
            Duration::from_millis(20),
            stop.clone(),
        ));

        // An idle process writes nothing: a report put under its name is left alone.
        let planted = BTreeMap::from([("planted".to_owned(), 1)]);
        worker
            .report_open_breakers(&instance, &planted)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        until_reported(&worker, &[("planted", 1)]).await;
        worker
            .report_open_breakers(&instance, &BTreeMap::new())
            .await
            .unwrap();

        open(&destinations["a"]);
        let since = destinations["a"].breaker.open_since_ms().unwrap();
        until_reported(&worker, &[("a", since)]).await;

        // Once it closes, the report is deleted.
        close(&destinations["a"]);
        until_reported(&worker, &[]).await;

        // Open again, then shut down: the report goes with the process.
        open(&destinations["b"]);
        let since = destinations["b"].breaker.open_since_ms().unwrap();
        until_reported(&worker, &[("b", since)]).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        until_reported(&worker, &[]).await;
    }

    #[tokio::test]
    async fn without_redis_reporting_carries_on_and_stops() {
        let stop = CancellationToken::new();
        let config = RedisConfig {
            url: "redis://127.0.0.1:1".to_owned(),
            ..Default::default()
        };
        let store = Store::start(&config, &relay_telemetry::Readiness::new(), stop.clone());
        let destinations = destinations();
        open(&destinations["a"]);
        let task = tokio::spawn(run(
            destinations,
            store,
            "delivery-test-2".to_owned(),
            Duration::from_millis(10),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished(), "still reporting");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
