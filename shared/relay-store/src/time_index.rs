//! Time indexes: ids in Redis sorted sets scored by a time in milliseconds, read a page at a
//! time newest first and joined with their JSON records by one `MGET`, so that a page costs
//! the same whether an index holds a thousand ids or a million.
//!
//! The cursor of the next page is a time (`before_ms`), so a page never ends inside one
//! millisecond: it stops before a millisecond it could not finish, and the next page starts
//! with it. Two indexes are built on these: the delivery index ([`crate::delivery_index`],
//! written with each delivery record) and the call log's indexes of sessions by number and
//! start time (through [`Store::index_add`] and [`Store::index_page`]).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Result, Store};

/// The most items one page returns, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;

/// The most items of one millisecond one page returns when more than a page's worth share it
/// (the cursor is a time, so a page never ends inside one millisecond): the rest of that
/// millisecond is not shown.
pub const MAX_TIES: usize = 1000;

/// One id to file in a time index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index's key without the store's prefix, e.g. `calls:recent`.
    pub index: String,
    /// The id.
    pub member: String,
    /// Its time, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// Which part of a time index to read, newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexRange {
    /// Only entries strictly before this time (ms since the epoch): the cursor of the next
    /// page. `None`: from the newest.
    pub before_ms: Option<i64>,
    /// Only entries strictly after this time (ms since the epoch). `None`: back to the oldest.
    pub after_ms: Option<i64>,
    /// At most this many entries (1 to [`MAX_PAGE`]).
    pub limit: usize,
}

/// One entry of a page, with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexItem {
    /// The id.
    pub member: String,
    /// Its time (ms since the epoch).
    pub at_ms: i64,
    /// Its record's text.
    pub record: String,
}

/// A page of a time index, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexPage {
    /// The entries whose record still exists. Fewer than the limit when records expired before
    /// the index was trimmed: `next_before_ms` says whether more may follow.
    pub items: Vec<IndexItem>,
    /// The `before_ms` of the next page; `None` when this was the last.
    pub next_before_ms: Option<i64>,
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `duration` in whole milliseconds.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Where a page ends: the entries it keeps and the cursor of the next page.
enum Cut {
    /// Keep the first `n` entries; the next page starts before `next` (if any).
    Keep(usize, Option<i64>),
    /// More than a page of entries share the time `at`: show that millisecond alone.
    Ties(i64),
}

/// Ends a page of `limit` in `scores` (up to `limit + 1` scores, newest first) where a time
/// changes, so that the cursor (a time) neither repeats nor skips an entry.
fn cut(scores: &[i64], limit: usize) -> Cut {
    if scores.len() <= limit {
        return Cut::Keep(scores.len(), None);
    }
    let last = scores[limit - 1];
    if scores[limit] != last {
        return Cut::Keep(limit, Some(last));
    }
    // The entry after the page shares the last one's time: end the page before that time.
    let keep = scores[..limit].iter().take_while(|&&s| s != last).count();
    match keep {
        0 => Cut::Ties(last),
        n => Cut::Keep(n, Some(scores[n - 1])),
    }
}

impl Store {
    /// Files `entries` in their time indexes in one `MULTI`, then trims every index touched:
    /// entries older than `keep` (by time) and beyond the `max_len` newest go, and the index
    /// expires `keep` after this write.
    pub async fn index_add(
        &self,
        entries: &[IndexEntry],
        keep: Duration,
        max_len: usize,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut indexes = BTreeSet::new();
        for entry in entries {
            let key = self.key(&entry.index);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(entry.at_ms)
                .arg(&entry.member)
                .ignore();
            indexes.insert(key);
        }
        let oldest = now_ms().saturating_sub(millis(keep));
        let beyond = -isize::try_from(max_len).unwrap_or(isize::MAX) - 1;
        for key in &indexes {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(key)
                .arg("-inf")
                .arg(format!("({oldest}"))
                .ignore();
            pipe.cmd("ZREMRANGEBYRANK")
                .arg(key)
                .arg(0)
                .arg(beyond)
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(key)
                .arg(millis(keep).max(1))
                .ignore();
        }
        self.run("index_add", |mut conn| async move {
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// A page of the time index `index`, newest first, each entry with the record stored under
    /// `records` + its id (e.g. `call:` + a session id). Two round trips whatever the index's
    /// size (`ZREVRANGEBYSCORE … LIMIT`, then one `MGET`); a third when more than a page of
    /// entries share one millisecond. Entries whose record is gone are left out.
    pub async fn index_page(
        &self,
        index: &str,
        records: &str,
        range: IndexRange,
    ) -> Result<IndexPage> {
        let key = self.key(index);
        let limit = range.limit.clamp(1, MAX_PAGE);
        let max = range
            .before_ms
            .map_or_else(|| "+inf".to_owned(), |b| format!("({b}"));
        let min = range
            .after_ms
            .map_or_else(|| "-inf".to_owned(), |a| format!("({a}"));
        let mut entries = self.range(&key, &max, &min, limit + 1).await?;
        let scores: Vec<i64> = entries.iter().map(|(_, s)| *s).collect();
        let next_before_ms = match cut(&scores, limit) {
            Cut::Keep(n, next) => {
                entries.truncate(n);
                next
            }
            Cut::Ties(at) => {
                entries = self
                    .range(&key, &at.to_string(), &at.to_string(), MAX_TIES)
                    .await?;
                Some(at)
            }
        };
        if entries.is_empty() {
            return Ok(IndexPage {
                items: Vec::new(),
                next_before_ms,
            });
        }
        let keys: Vec<String> = entries
            .iter()
            .map(|(member, _)| self.key(&format!("{records}{member}")))
            .collect();
        let texts: Vec<Option<String>> = self
            .run("index_records", |mut conn| async move {
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
            })
            .await?;
        let items = entries
            .into_iter()
            .zip(texts)
            .filter_map(|((member, at_ms), text)| {
                text.map(|record| IndexItem {
                    member,
                    at_ms,
                    record,
                })
            })
            .collect();
        Ok(IndexPage {
            items,
            next_before_ms,
        })
    }

    /// Up to `count` entries of `key` from `max` down to `min` (Redis score bounds), with
    /// their times.
    async fn range(
        &self,
        key: &str,
        max: &str,
        min: &str,
        count: usize,
    ) -> Result<Vec<(String, i64)>> {
        let entries: Vec<(String, f64)> = self
            .run("index_page", |mut conn| async move {
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(key)
                    .arg(max)
                    .arg(min)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(count)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        // Scores are whole milliseconds: exact in an f64 for some 285,000 years.
        Ok(entries
            .into_iter()
            .map(|(member, score)| (member, score as i64))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_ends_where_the_time_changes() {
        let keep = |cut: Cut| match cut {
            Cut::Keep(n, next) => (n, next),
            Cut::Ties(at) => panic!("ties at {at}"),
        };
        assert_eq!(keep(cut(&[9, 8, 7], 3)), (3, None));
        assert_eq!(keep(cut(&[9, 8, 7, 6], 3)), (3, Some(7)));
        // The entry after the page shares the last one's time: that time goes to the next page.
        assert_eq!(keep(cut(&[9, 8, 7, 7], 3)), (2, Some(8)));
        assert_eq!(keep(cut(&[9, 7, 7, 7], 3)), (1, Some(9)));
        assert!(matches!(cut(&[7, 7, 7, 7], 3), Cut::Ties(7)));
    }
}
