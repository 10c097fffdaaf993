//! Dedup marks (`seen:{source}:{key}`) and rate limits (`rate:{key}:{window}`).

use std::time::Duration;

use crate::{Result, Store};

impl Store {
    fn seen_key(&self, source: &str, key: &str) -> String {
        self.key(&format!("seen:{source}:{key}"))
    }

    /// For each key of `source`, whether a dedup mark exists.
    pub async fn seen(&self, source: &str, keys: &[String]) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.seen_key(source, k)).collect();
        self.run("seen", |mut conn| async move {
            let mut pipe = redis::pipe();
            for key in &full {
                pipe.exists(key);
            }
            pipe.query_async::<Vec<bool>>(&mut conn).await
        })
        .await
    }

    /// Writes dedup marks for `keys` of `source`, each expiring after `ttl`. Call only after the
    /// broker confirmed the events they stand for (invariant 1).
    pub async fn mark_seen(&self, source: &str, keys: &[String], ttl: Duration) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|k| self.seen_key(source, k)).collect();
        let ttl = ttl.as_secs().max(1);
        self.run("mark_seen", |mut conn| async move {
            let mut pipe = redis::pipe();
            for key in &full {
                pipe.set_ex(key, 1u8, ttl).ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Counts one hit against `key` (e.g. `acrobits:alice`) in the current `window`, and
    /// returns the hits so far in it. Windows are fixed (aligned to the clock); each counter
    /// expires with its window.
    pub async fn hit_rate(&self, key: &str, window: Duration) -> Result<u64> {
        let secs = window.as_secs().max(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let full = self.key(&format!("rate:{key}:{}", now / secs));
        self.run("hit_rate", |mut conn| async move {
            let (count,): (u64,) = redis::pipe()
                .cmd("INCR")
                .arg(&full)
                .cmd("EXPIRE")
                .arg(&full)
                .arg(secs * 2)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(count)
        })
        .await
    }
}
