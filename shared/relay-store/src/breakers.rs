//! The destination breakers open in each delivery process, so that the worker can alert on one
//! that has stayed open too long. A breaker lives in its process's memory
//! (relay-delivery `breaker`); each process reports the ones it has open.
//!
//! One hash, `{prefix}breakers:open`, field = the reporting process (its instance name), value
//! = JSON `{"seen_at_ms": …, "open": {destination: open since}}`, times in unix milliseconds of
//! the writer's wall clock. A process rewrites its field while something is open and deletes it
//! when nothing is; the key's TTL ([`REPORT_TTL`]) is renewed on each write. A process that died
//! stops refreshing its field: [`Store::open_breakers`] skips a report older than its `fresh`
//! and deletes it (only if it is still the report it read, so a refresh written meanwhile is
//! kept).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// How long the hash outlives its last report (every report of a live process is far
/// younger: it rewrites its own every `delivery.breaker_report_interval`).
const REPORT_TTL: Duration = Duration::from_secs(86_400);

/// Deletes each field of KEYS[1] still holding the value that was read.
/// ARGV: field, value, field, value, …. Returns how many were deleted.
static DELETE_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local deleted = 0
        for i = 1, #ARGV, 2 do
            if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
                deleted = deleted + redis.call('HDEL', KEYS[1], ARGV[i])
            end
        end
        return deleted
        ",
    )
});

/// One delivery process's open breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBreaker {
    /// The destination whose breaker is open.
    pub destination: String,
    /// The delivery process that has it open.
    pub instance: String,
    /// Unix ms when it opened.
    pub open_since_ms: i64,
}

/// A process's report as stored: `M` is borrowed to write, owned to read.
#[derive(Serialize, Deserialize)]
struct Report<M> {
    seen_at_ms: i64,
    open: M,
}

impl Store {
    fn breakers_key(&self) -> String {
        self.key("breakers:open")
    }

    /// Replaces `instance`'s report of its open breakers (destination → open since, unix ms),
    /// stamped now. An empty map deletes the instance's report.
    pub async fn report_open_breakers(
        &self,
        instance: &str,
        open: &BTreeMap<String, i64>,
    ) -> Result<()> {
        let key = self.breakers_key();
        let instance = instance.to_owned();
        if open.is_empty() {
            return self
                .run("report_open_breakers", |mut conn| async move {
                    redis::cmd("HDEL")
                        .arg(&key)
                        .arg(instance)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await;
        }
        let value = serde_json::to_string(&Report {
            seen_at_ms: now_ms(),
            open,
        })?;
        self.run("report_open_breakers", |mut conn| async move {
            redis::pipe()
                .cmd("HSET")
                .arg(&key)
                .arg(instance)
                .arg(value)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(REPORT_TTL.as_secs())
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Every instance's open breakers whose report is at most `fresh` old (a process that died
    /// stops refreshing; its stale report is deleted here). Sorted by instance, then
    /// destination. A report that does not parse is deleted like a stale one: its writer, if
    /// alive, rewrites it at its next report.
    pub async fn open_breakers(&self, fresh: Duration) -> Result<Vec<OpenBreaker>> {
        let key = self.breakers_key();
        let read = key.clone();
        let raw: BTreeMap<String, String> = self
            .run("open_breakers", |mut conn| async move {
                redis::cmd("HGETALL")
                    .arg(&read)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let oldest = now_ms().saturating_sub(i64::try_from(fresh.as_millis()).unwrap_or(i64::MAX));
        let mut open = Vec::new();
        let mut stale = Vec::new();
        for (instance, text) in raw {
            match serde_json::from_str::<Report<BTreeMap<String, i64>>>(&text) {
                Ok(report) if report.seen_at_ms >= oldest => {
                    open.extend(report.open.into_iter().map(|(destination, open_since_ms)| {
                        OpenBreaker {
                            destination,
                            instance: instance.clone(),
                            open_since_ms,
                        }
                    }));
                }
                _ => stale.push((instance, text)),
            }
        }
        if !stale.is_empty() {
            let mut invocation = DELETE_UNCHANGED.prepare_invoke();
            invocation.key(&key);
            for (instance, text) in &stale {
                invocation.arg(instance).arg(text);
            }
            self.run("open_breakers", |mut conn| async move {
                invocation.invoke_async::<i64>(&mut conn).await.map(drop)
            })
            .await?;
        }
        Ok(open)
    }
}

/// Now, in unix milliseconds of this machine's wall clock.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;

    const FRESH: Duration = Duration::from_secs(60);

    fn open(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
        entries.iter().map(|&(d, ms)| (d.to_owned(), ms)).collect()
    }

    fn breaker(destination: &str, instance: &str, open_since_ms: i64) -> OpenBreaker {
        OpenBreaker {
            destination: destination.into(),
            instance: instance.into(),
            open_since_ms,
        }
    }

    async fn fields(redis: &TestRedis, store: &Store) -> Vec<String> {
        let mut raw = redis.raw().await;
        redis::cmd("HKEYS")
            .arg(store.breakers_key())
            .query_async(&mut raw)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_processs_report_is_read_back_and_a_new_one_replaces_it() {
        let redis = TestRedis::new();
        let (a, b, worker) = (
            redis.store().await,
            redis.store().await,
            redis.store().await,
        );
        assert!(worker.open_breakers(FRESH).await.unwrap().is_empty());

        a.report_open_breakers("a-1", &open(&[("helpdesk", 1_000), ("crm", 2_000)]))
            .await
            .unwrap();
        b.report_open_breakers("b-2", &open(&[("helpdesk", 1_500)]))
            .await
            .unwrap();
        assert_eq!(
            worker.open_breakers(FRESH).await.unwrap(),
            [
                breaker("crm", "a-1", 2_000),
                breaker("helpdesk", "a-1", 1_000),
                breaker("helpdesk", "b-2", 1_500),
            ]
        );

        // The key is where the documentation says, with its TTL.
        let mut raw = redis.raw().await;
        let key = format!("{}breakers:open", redis.config.key_prefix);
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= REPORT_TTL.as_secs() as i64, "{ttl}");

        // A new report replaces the whole of the old one: crm closed, helpdesk still open.
        a.report_open_breakers("a-1", &open(&[("helpdesk", 1_000)]))
            .await
            .unwrap();
        assert_eq!(
            worker.open_breakers(FRESH).await.unwrap(),
            [
                breaker("helpdesk", "a-1", 1_000),
                breaker("helpdesk", "b-2", 1_500),
            ]
        );
    }

    #[tokio::test]
    async fn an_empty_report_deletes_the_processs_report_and_no_other() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        store
            .report_open_breakers("a-1", &open(&[("helpdesk", 1_000)]))
            .await
            .unwrap();
        store
            .report_open_breakers("b-2", &open(&[("crm", 2_000)]))
            .await
            .unwrap();
        store
            .report_open_breakers("a-1", &BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(
            store.open_breakers(FRESH).await.unwrap(),
            [breaker("crm", "b-2", 2_000)]
        );
        assert_eq!(fields(&redis, &store).await, ["b-2"]);
        // Deleting what is not there is no error.
        store
            .report_open_breakers("a-1", &BTreeMap::new())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_stale_report_is_skipped_and_deleted() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        store
            .report_open_breakers("live", &open(&[("helpdesk", 1_000)]))
            .await
            .unwrap();
        // A process that died an hour ago, and one whose entry cannot be read.
        let mut raw = redis.raw().await;
        let dead = serde_json::to_string(&Report {
            seen_at_ms: now_ms() - 3_600_000,
            open: open(&[("crm", 2_000)]),
        })
        .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(store.breakers_key())
            .arg("dead")
            .arg(dead)
            .arg("odd")
            .arg("{not json")
            .query_async(&mut raw)
            .await
            .unwrap();

        assert_eq!(
            store.open_breakers(FRESH).await.unwrap(),
            [breaker("helpdesk", "live", 1_000)]
        );
        assert_eq!(fields(&redis, &store).await, ["live"], "stale ones deleted");

        // With no freshness allowed, every report is stale once a moment has passed.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            store
                .open_breakers(Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(fields(&redis, &store).await.is_empty());
    }

    #[tokio::test]
    async fn a_stale_report_refreshed_meanwhile_is_kept() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let key = store.breakers_key();
        let mut raw = redis.raw().await;
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("a-1")
            .arg("fresh value")
            .query_async(&mut raw)
            .await
            .unwrap();
        // The value read was an older one: the script leaves the refreshed report alone.
        let mut invocation = DELETE_UNCHANGED.prepare_invoke();
        invocation.key(&key).arg("a-1").arg("old value");
        let deleted: i64 = invocation.invoke_async(&mut raw).await.unwrap();
        assert_eq!(deleted, 0);
        assert_eq!(fields(&redis, &store).await, ["a-1"]);
    }
}
