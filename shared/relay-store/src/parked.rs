//! The parked index: which messages sit in the parking lots (`relay.dead.*`, `relay.unrouted`),
//! with a small record of each, so that an operator's console pages through them without
//! walking a queue. relay-parked fills it and reads it; this module only keeps it.
//!
//! Keys, per queue (`{queue}` is the queue's name, e.g. `relay.dead.deliveries`):
//! * `parked:index:{queue}`: a sorted set, member = message id, score = when it was parked (ms
//!   since the epoch). Read newest first, from a cursor (score and id, [`Store::parked_after`]),
//!   never by offset. It expires a retention after its last write, and every write trims it:
//!   entries older than the retention go (`ZREMRANGEBYSCORE`, cheap: from the low end only),
//!   and so do those beyond its most entries (`ZREMRANGEBYRANK`).
//! * `parked:facts:{queue}:{id}`: the message's record (JSON, never its body), expiring a
//!   retention after it was parked.
//!
//! A record and its entry are written together, and forgotten together, in one `MULTI`.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Result, Store};

/// One parked message to file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEntry {
    /// The message id.
    pub id: String,
    /// When it was parked (ms since the epoch): its score.
    pub at_ms: i64,
    /// Its record (JSON).
    pub record: String,
}

/// How long a queue's entries are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedKeep {
    /// An entry older than this (by its score) is trimmed, and its record expires then.
    pub retention: Duration,
    /// The newest this many entries are kept.
    pub max_entries: u64,
}

/// Pages the index from a cursor: up to `ARGV[1]` entries scored at least `ARGV[2]`, newest
/// first, after the position (`ARGV[3]` score, `ARGV[4]` id) if one is given.
///
/// Members of equal score are ordered by their bytes, descending. When the cursor's entry is
/// still there with its score, its rank is the position (`ZREVRANK`). When it is gone (replayed,
/// purged) or moved, the position is found as if it were there: after every entry scored
/// higher, then a binary search among the entries of equal score. So a page costs O(log n),
/// however many entries share one millisecond. Ids are compared byte by byte, as the sorted
/// set does (Lua's own `<` follows the server's locale).
const AFTER: &str = r"
local key, count, min = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local function below(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local start = 0
if ARGV[3] then
  local s, id = ARGV[3], ARGV[4]
  local score = redis.call('ZSCORE', key, id)
  if score and tonumber(score) == tonumber(s) then
    start = redis.call('ZREVRANK', key, id) + 1
  else
    start = redis.call('ZCOUNT', key, '(' .. s, '+inf')
    local stop = start + redis.call('ZCOUNT', key, s, s)
    while start < stop do
      local mid = math.floor((start + stop) / 2)
      if below(redis.call('ZREVRANGE', key, mid, mid)[1], id) then
        stop = mid
      else
        start = mid + 1
      end
    end
  end
end
local got = redis.call('ZREVRANGE', key, start, start + count - 1, 'WITHSCORES')
local out = {}
for i = 1, #got, 2 do
  if tonumber(got[i + 1]) < min then break end
  out[#out + 1] = got[i]
  out[#out + 1] = got[i + 1]
end
return out
";

static AFTER_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(AFTER));

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    fn parked_index_key(&self, queue: &str) -> String {
        self.key(&format!("parked:index:{queue}"))
    }

    fn parked_facts_key(&self, queue: &str, id: &str) -> String {
        self.key(&format!("parked:facts:{queue}:{id}"))
    }

    /// Files `entries` of `queue` in one `MULTI`: each record (expiring a retention after its
    /// entry's time) and its entry; then trims the index (see the module's documentation) and
    /// renews its expiry. Entries already past the retention are left out.
    pub async fn parked_add(
        &self,
        queue: &str,
        entries: &[ParkedEntry],
        keep: ParkedKeep,
    ) -> Result<()> {
        let index = self.parked_index_key(queue);
        let retention = millis(keep.retention).max(1);
        let oldest = now_ms().saturating_sub(retention);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for entry in entries.iter().filter(|e| e.at_ms >= oldest) {
            pipe.cmd("SET")
                .arg(self.parked_facts_key(queue, &entry.id))
                .arg(&entry.record)
                .arg("PXAT")
                .arg(entry.at_ms.saturating_add(retention))
                .ignore();
            pipe.cmd("ZADD")
                .arg(&index)
                .arg(entry.at_ms)
                .arg(&entry.id)
                .ignore();
        }
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&index)
            .arg("-inf")
            .arg(format!("({oldest}"))
            .ignore();
        let beyond = -i64::try_from(keep.max_entries).unwrap_or(i64::MAX) - 1;
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(&index)
            .arg(0)
            .arg(beyond)
            .ignore();
        pipe.cmd("PEXPIRE").arg(&index).arg(retention).ignore();
        self.run("parked_add", |mut conn| async move {
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Removes `ids` of `queue` from the index, records included, in one `MULTI`.
    pub async fn parked_forget(&self, queue: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let index = self.parked_index_key(queue);
        let records: Vec<String> = ids
            .iter()
            .map(|id| self.parked_facts_key(queue, id))
            .collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("ZREM").arg(&index).arg(ids).ignore();
        pipe.cmd("DEL").arg(&records).ignore();
        self.run("parked_forget", |mut conn| async move {
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Entries of `queue` scored at least `min_ms`.
    pub async fn parked_count(&self, queue: &str, min_ms: i64) -> Result<u64> {
        let index = self.parked_index_key(queue);
        self.run("parked_count", |mut conn| async move {
            redis::cmd("ZCOUNT")
                .arg(&index)
                .arg(min_ms)
                .arg("+inf")
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// Up to `count` entries of `queue` (id, score), newest first, scored at least `min_ms`,
    /// after the position `after` (score, id) when given, whether that entry is still there or
    /// not. One round trip, O(log n + count) (see [`AFTER`]); fewer than `count` means the end.
    pub async fn parked_after(
        &self,
        queue: &str,
        after: Option<(i64, &str)>,
        min_ms: i64,
        count: usize,
    ) -> Result<Vec<(String, i64)>> {
        let index = self.parked_index_key(queue);
        let mut invocation = AFTER_SCRIPT.key(index);
        invocation.arg(count).arg(min_ms);
        if let Some((score, id)) = after {
            invocation.arg(score).arg(id);
        }
        let flat: Vec<(String, f64)> = self
            .run("parked_after", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        // Scores are whole milliseconds, exact in an f64 until the year 287,000.
        #[allow(clippy::cast_possible_truncation)]
        Ok(flat
            .into_iter()
            .map(|(id, score)| (id, score as i64))
            .collect())
    }

    /// The records of `ids` of `queue`, in order; `None` where a record is gone (expired or
    /// forgotten). One `MGET`.
    pub async fn parked_records(&self, queue: &str, ids: &[String]) -> Result<Vec<Option<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.parked_facts_key(queue, id))
            .collect();
        self.run("parked_records", |mut conn| async move {
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;

    const QUEUE: &str = "relay.dead.events";
    const KEEP: ParkedKeep = ParkedKeep {
        retention: Duration::from_secs(86_400),
        max_entries: 1000,
    };

    fn entry(id: &str, at_ms: i64) -> ParkedEntry {
        ParkedEntry {
            id: id.to_owned(),
            at_ms,
            record: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    fn ids(entries: &[(String, i64)]) -> Vec<&str> {
        entries.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[tokio::test]
    async fn entries_page_newest_first_from_a_cursor_even_one_that_is_gone() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let now = now_ms();
        // Four share one millisecond: they come by id, descending.
        let entries = [
            entry("a", now - 3),
            entry("t1", now - 2),
            entry("t2", now - 2),
            entry("t3", now - 2),
            entry("t4", now - 2),
            entry("z", now - 1),
        ];
        store.parked_add(QUEUE, &entries, KEEP).await.unwrap();
        let all = store.parked_after(QUEUE, None, 0, 10).await.unwrap();
        assert_eq!(ids(&all), ["z", "t4", "t3", "t2", "t1", "a"]);
        assert_eq!(all[0].1, now - 1);

        let next = store
            .parked_after(QUEUE, Some((now - 2, "t3")), 0, 2)
            .await
            .unwrap();
        assert_eq!(ids(&next), ["t2", "t1"], "after a cursor that is there");
        store
            .parked_forget(QUEUE, &["t3".to_owned()])
            .await
            .unwrap();
        let next = store
            .parked_after(QUEUE, Some((now - 2, "t3")), 0, 10)
            .await
            .unwrap();
        assert_eq!(ids(&next), ["t2", "t1", "a"], "after a cursor that is gone");
        let next = store
            .parked_after(QUEUE, Some((now - 2, "t35")), 0, 10)
            .await
            .unwrap();
        assert_eq!(ids(&next), ["t2", "t1", "a"], "between two ids of one time");
        let next = store
            .parked_after(QUEUE, Some((now, "zz")), 0, 10)
            .await
            .unwrap();
        assert_eq!(
            ids(&next),
            ["z", "t4", "t2", "t1", "a"],
            "before the newest"
        );
        let recent = store.parked_after(QUEUE, None, now - 2, 10).await.unwrap();
        assert_eq!(ids(&recent), ["z", "t4", "t2", "t1"], "at least min_ms");
        assert_eq!(store.parked_count(QUEUE, 0).await.unwrap(), 5);
        assert_eq!(store.parked_count(QUEUE, now - 1).await.unwrap(), 1);

        let records = store
            .parked_records(QUEUE, &["z".to_owned(), "t3".to_owned()])
            .await
            .unwrap();
        assert_eq!(records, [Some("{\"id\":\"z\"}".to_owned()), None]);
    }

    #[tokio::test]
    async fn writes_trim_by_age_and_length_and_expire_records() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let now = now_ms();
        let keep = ParkedKeep {
            retention: Duration::from_secs(60),
            max_entries: 3,
        };
        let old = entry("old", now - 120_000);
        store.parked_add(QUEUE, &[old], keep).await.unwrap();
        assert_eq!(store.parked_count(QUEUE, 0).await.unwrap(), 0, "too old");
        let fresh: Vec<ParkedEntry> = (0..5).map(|n| entry(&format!("n{n}"), now + n)).collect();
        store.parked_add(QUEUE, &fresh, keep).await.unwrap();
        let kept = store.parked_after(QUEUE, None, 0, 10).await.unwrap();
        assert_eq!(ids(&kept), ["n4", "n3", "n2"], "the newest three");

        let mut raw = redis.raw().await;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(store.parked_facts_key(QUEUE, "n4"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 60_010, "{ttl}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(store.parked_index_key(QUEUE))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    }
}
