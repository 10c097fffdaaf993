//! Versioned records updated by compare-and-set: the state machines' storage (call sessions,
//! alert state). The caller loads a record, applies its pure transition and writes the result
//! only if nobody changed the record meanwhile; on a conflict it loads again and reapplies.
//!
//! A multiplexed connection cannot use `WATCH`/`MULTI` safely (the watch would cover every
//! caller sharing the connection), so the compare-and-set is one Lua script: atomic on the
//! server, one round trip.

use std::sync::LazyLock;
use std::time::Duration;

use crate::{Result, Store};

/// `SET key new PX ttl` if the key still holds `expected` (`absent` = it must not exist).
static COMPARE_AND_SET: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        local matches
        if ARGV[1] == 'absent' then
            matches = (current == false)
        else
            matches = (current ~= false and current == ARGV[2])
        end
        if matches then
            redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
            return 1
        end
        return 0
        ",
    )
});

impl Store {
    /// The text stored under `suffix` (the key without the prefix), if any.
    pub async fn get_text(&self, suffix: &str) -> Result<Option<String>> {
        let key = self.key(suffix);
        self.run("ledger_get", |mut conn| async move {
            redis::cmd("GET").arg(&key).query_async(&mut conn).await
        })
        .await
    }

    /// Writes `new` under `suffix`, expiring after `ttl`, only if the key still holds
    /// `expected` (`None`: only if it does not exist). `Ok(false)` on a conflict.
    pub async fn compare_and_set(
        &self,
        suffix: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let key = self.key(suffix);
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (mode, old) = match expected {
            None => ("absent", ""),
            Some(old) => ("equals", old),
        };
        let mut invocation = COMPARE_AND_SET.prepare_invoke();
        invocation.key(&key).arg(mode).arg(old).arg(new).arg(ttl);
        self.run("ledger_cas", |mut conn| async move {
            invocation
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|n| n == 1)
        })
        .await
    }
}

/// What a change function decides for one record.
pub enum Change<T, R> {
    /// Leave the record as it is; `R` goes back to the caller.
    Keep(R),
    /// Write this record; `R` goes back to the caller.
    Write(T, R),
}

/// The outcome of [`Store::update_json`].
pub struct Updated<T, R> {
    /// The record before (`None`: there was none, or it could not be read).
    pub before: Option<T>,
    /// The record written, when the change wrote one.
    pub written: Option<T>,
    /// What the change function said.
    pub note: R,
}

/// Why [`Store::update_json`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Redis could not be asked.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// Other writers changed the record this many times in a row.
    #[error("the record kept changing under {0} concurrent updates")]
    Conflicts(u32),
}

/// How many locks [`Stripes`] has.
pub(crate) const STRIPES: usize = 256;

/// Per-process locks of records, by key hash. Compare-and-set alone makes a burst of `n`
/// updates of one record cost O(n²) round trips (each round lets one writer through and sends
/// the others back to read again); queued on a lock they cost O(n), and compare-and-set is
/// left to settle races between processes.
///
/// Each lock also keeps the last record its holder read or wrote ([`Known`]): the next update
/// of the same key starts from it and compare-and-sets against it, one round trip instead of
/// two (load, then write). Compare-and-set still checks it, so a record another process
/// changed, or one that expired, is found out and loaded again.
pub(crate) struct Stripes(Box<[tokio::sync::Mutex<Option<Known>>]>);

/// The text of one record as this process last saw it under its lock (`None`: absent).
pub(crate) struct Known {
    key: String,
    raw: Option<String>,
}

impl Stripes {
    pub(crate) fn new() -> Self {
        Self(
            (0..STRIPES)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
        )
    }

    fn of(&self, key: &str) -> &tokio::sync::Mutex<Option<Known>> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        &self.0[(hasher.finish() % STRIPES as u64) as usize]
    }
}

impl Store {
    /// Applies `change` to the JSON record under `suffix` atomically: load, apply, write only
    /// if nobody wrote meanwhile (compare-and-set), else load again, at most `max_conflicts`
    /// times (calling `on_conflict` each time). A record this version cannot read (written by
    /// a newer one, or damaged) is logged and treated as absent: starting over beats parking
    /// every later event that touches it. The state machines' storage (call sessions, alert
    /// state) is this one loop.
    pub async fn update_json<T, R>(
        &self,
        suffix: &str,
        ttl: Duration,
        max_conflicts: u32,
        on_conflict: impl Fn(),
        change: impl Fn(Option<T>) -> Change<T, R>,
    ) -> Result<Updated<T, R>, UpdateError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    {
        let mut known = self.inner.records.of(suffix).lock().await;
        // What this process last saw of the record, if the lock's memory is of this key: a
        // guess, checked by the compare-and-set (or, for a change that writes nothing, by a load).
        let mut guess = known.take().filter(|k| k.key == suffix).map(|k| k.raw);
        let remember = |known: &mut Option<Known>, raw: Option<String>| {
            *known = Some(Known {
                key: suffix.to_owned(),
                raw,
            });
        };
        let mut conflicts = 0;
        while conflicts < max_conflicts {
            let guessed = guess.is_some();
            let raw = match guess.take() {
                Some(raw) => raw,
                None => self.get_text(suffix).await?,
            };
            let before = match raw.as_deref().map(serde_json::from_str::<T>) {
                None => None,
                Some(Ok(record)) => Some(record),
                Some(Err(error)) => {
                    tracing::warn!(%error, key = suffix, "unreadable record; starting it afresh");
                    None
                }
            };
            let (after, note) = match change(before.clone()) {
                // Nothing to write, decided on a guess: decide again on the record itself.
                Change::Keep(_) if guessed => continue,
                Change::Keep(note) => {
                    remember(&mut known, raw);
                    return Ok(Updated {
                        before,
                        written: None,
                        note,
                    });
                }
                Change::Write(after, note) => (after, note),
            };
            let text = serde_json::to_string(&after).map_err(crate::StoreError::from)?;
            if self
                .compare_and_set(suffix, raw.as_deref(), &text, ttl)
                .await?
            {
                remember(&mut known, Some(text));
                return Ok(Updated {
                    before,
                    written: Some(after),
                    note,
                });
            }
            // A wrong guess (at most one per update) is no conflict: load and try again.
            if !guessed {
                conflicts += 1;
                on_conflict();
            }
        }
        Err(UpdateError::Conflicts(max_conflicts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;
    use std::sync::atomic::{AtomicU32, Ordering};

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn concurrent_updates_each_land_once_and_conflicts_are_retried() {
        let redis = TestRedis::new();
        let (a, b) = (redis.store().await, redis.store().await);
        let conflicts = AtomicU32::new(0);
        let add = |store: Store, n: u64| {
            let conflicts = &conflicts;
            async move {
                for _ in 0..n {
                    store
                        .update_json(
                            "counter",
                            TTL,
                            1_000,
                            || {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            },
                            |count: Option<u64>| Change::Write(count.unwrap_or(0) + 1, ()),
                        )
                        .await
                        .unwrap();
                }
            }
        };
        tokio::join!(add(a.clone(), 50), add(b, 50));
        let last = a
            .update_json(
                "counter",
                TTL,
                1,
                || {},
                |count: Option<u64>| Change::Keep(count),
            )
            .await
            .unwrap();
        assert_eq!(last.note, Some(100), "no update lost");
        assert!(last.written.is_none(), "Keep writes nothing");
    }

    #[tokio::test]
    async fn an_unreadable_record_starts_afresh_and_a_hopeless_race_gives_up() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        store
            .compare_and_set("record", None, "{not json", TTL)
            .await
            .unwrap();
        let updated = store
            .update_json(
                "record",
                TTL,
                3,
                || {},
                |before: Option<Vec<u8>>| Change::Write(vec![1], before.is_none()),
            )
            .await
            .unwrap();
        assert!(updated.note, "the damaged record read as absent");
        assert_eq!(updated.written, Some(vec![1]));
        // A change that always collides (another writer each time) gives up after its budget.
        let tries = AtomicU32::new(0);
        let writes = AtomicU32::new(0);
        let key = store.key("record");
        let other = std::sync::Mutex::new(
            redis::Client::open(redis.config.url.as_str())
                .unwrap()
                .get_connection()
                .unwrap(),
        );
        let result = store
            .update_json(
                "record",
                TTL,
                3,
                || {
                    tries.fetch_add(1, Ordering::Relaxed);
                },
                |_: Option<Vec<u8>>| {
                    // Someone else writes between this read and our compare-and-set (a new
                    // value each time).
                    let n = writes.fetch_add(1, Ordering::Relaxed);
                    let _: () = redis::cmd("SET")
                        .arg(&key)
                        .arg(format!("[{n}]"))
                        .query(&mut *other.lock().unwrap())
                        .unwrap();
                    Change::Write(vec![0], ())
                },
            )
            .await;
        assert!(matches!(result, Err(UpdateError::Conflicts(3))));
        assert_eq!(tries.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_remembered_record_saves_a_load_and_a_stale_one_is_found_out() {
        let redis = TestRedis::new();
        let (a, b) = (redis.store().await, redis.store().await);
        let add = |store: Store| async move {
            store
                .update_json(
                    "n",
                    TTL,
                    1,
                    || panic!("no conflict expected"),
                    |n: Option<u64>| Change::Write(n.unwrap_or(0) + 1, n),
                )
                .await
                .unwrap()
                .note
        };
        assert_eq!(add(a.clone()).await, None);
        assert_eq!(add(a.clone()).await, Some(1), "from what a wrote");
        // b changes it behind a's back: a's remembered 2 is stale, its write is refused and it
        // loads the record (with a budget of one conflict: a wrong guess is none).
        assert_eq!(add(b.clone()).await, Some(2));
        assert_eq!(add(a.clone()).await, Some(3));
        // A change that writes nothing is decided on the stored record, never on a guess.
        assert_eq!(add(b.clone()).await, Some(4));
        let seen = a
            .update_json("n", TTL, 1, || {}, |n: Option<u64>| Change::Keep(n))
            .await
            .unwrap();
        assert_eq!(seen.note, Some(5));
        // Expired or deleted meanwhile: found out too.
        a.release_claim("n").await.unwrap();
        assert_eq!(add(a).await, None);
    }
}
