//! Paging the index: newest first, from a cursor, with a bound on the work of one page.
//!
//! A page reads the queue's sorted set from its cursor in chunks (one round trip each,
//! O(log n) whatever the index holds: relay-store's `parked_after`) and the chunk's records
//! with one `MGET`, and keeps the records the filter matches. A `since` filter is also a
//! score range, so older entries are never read; the other filters are checked on the records.
//! A page examines at most [`EXAMINE_PER_ITEM`] entries per item asked for: a filter that
//! matches rarely yields a short (even empty) page with a cursor to go on from, never a page
//! that reads the whole index.

use std::fmt;
use std::str::FromStr;

use relay_store::StoreError;

use super::{Index, Record, ms};
use crate::{Facts, Filter, Queue};

/// Most items one page returns, whatever it is asked.
pub const MAX_LIMIT: usize = 500;

/// Index entries a page examines at most, per item asked for.
pub const EXAMINE_PER_ITEM: usize = 20;

/// Entries read at once while a filter is checked on records.
const CHUNK: usize = 200;

/// A position in a queue's index: just after the entry parked at `at_ms` with `id` (entries of
/// one millisecond are ordered by id). It stays valid when that entry is removed.
///
/// Written as text (for a URL) as `{at_ms}.{id in lower-case hex}`, e.g. `1740830400000.6a6f62`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// When the entry was parked (ms since the epoch).
    pub at_ms: i64,
    /// The entry's message id.
    pub id: String,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.at_ms)?;
        self.id.bytes().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A text that is no [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor of the parked index")]
pub struct BadCursor;

impl FromStr for Cursor {
    type Err = BadCursor;

    /// The text [`Cursor`]'s `Display` writes, and only that.
    fn from_str(text: &str) -> Result<Self, BadCursor> {
        let (at, hex) = text.split_once('.').ok_or(BadCursor)?;
        let at_ms: i64 = at.parse().map_err(|_| BadCursor)?;
        if hex.len() % 2 != 0 {
            return Err(BadCursor);
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(hex.get(i..i + 2).ok_or(BadCursor)?, 16).map_err(|_| BadCursor)
            })
            .collect::<Result<Vec<u8>, BadCursor>>()?;
        let cursor = Cursor {
            at_ms,
            id: String::from_utf8(bytes).map_err(|_| BadCursor)?,
        };
        // One text per cursor: no `+5`, `05` or upper-case hex.
        (cursor.to_string() == text)
            .then_some(cursor)
            .ok_or(BadCursor)
    }
}

/// One page of a queue's index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The matching messages, newest first.
    pub items: Vec<Facts>,
    /// Where the next page starts; `None` when the index holds nothing further that could
    /// match. A short page with a `next` stopped at its bound of work.
    pub next: Option<Cursor>,
    /// Index entries read for this page (with their records): its work.
    pub examined: usize,
}

impl Index {
    /// Up to `limit` (1 to [`MAX_LIMIT`]) messages of `queue` that `filter` matches, newest
    /// first, after `after` (from the newest when `None`). Examines at most
    /// `limit` × [`EXAMINE_PER_ITEM`] entries.
    ///
    /// A filter by id reads that one record and nothing else: a page of one at most, and no
    /// next page.
    pub async fn page(
        &self,
        queue: Queue,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        if let Some(id) = &filter.id {
            return self.by_id(queue, filter, id, after.is_some()).await;
        }
        let budget = limit * EXAMINE_PER_ITEM;
        let min = filter.since.map_or(i64::MIN, ms).max(self.oldest_ms(queue));
        // Without a filter to check, every entry with a record is an item: read no more than
        // the page needs.
        let selective =
            filter.destination.is_some() || filter.ty.is_some() || filter.reason.is_some();
        let mut page = Page::default();
        let mut cursor = after.cloned();
        loop {
            let missing = limit - page.items.len();
            let want = if selective {
                missing.max(CHUNK)
            } else {
                missing
            }
            .min(budget - page.examined);
            let after = cursor.as_ref().map(|c| (c.at_ms, c.id.as_str()));
            let entries = self
                .store
                .parked_after(queue.name(), after, min, want)
                .await?;
            let end = entries.len() < want;
            let ids: Vec<String> = entries.iter().map(|(id, _)| id.clone()).collect();
            let records = self.store.parked_records(queue.name(), &ids).await?;
            let count = entries.len();
            page.examined += count;
            for (i, ((id, at_ms), record)) in entries.into_iter().zip(records).enumerate() {
                cursor = Some(Cursor { at_ms, id });
                // A record gone (expired before the set was trimmed) or unreadable: no item.
                let facts = record.as_deref().and_then(Record::decode);
                if let Some(facts) = facts.filter(|facts| filter.matches(facts)) {
                    page.items.push(facts);
                    if page.items.len() == limit {
                        let last = end && i + 1 == count;
                        page.next = if last { None } else { cursor };
                        return Ok(page);
                    }
                }
            }
            if end {
                return Ok(page);
            }
            if page.examined >= budget {
                page.next = cursor;
                return Ok(page);
            }
        }
    }

    async fn by_id(
        &self,
        queue: Queue,
        filter: &Filter,
        id: &str,
        later: bool,
    ) -> Result<Page, StoreError> {
        if later {
            return Ok(Page::default());
        }
        let records = self
            .store
            .parked_records(queue.name(), &[id.to_owned()])
            .await?;
        let items = records
            .into_iter()
            .flatten()
            .filter_map(|text| Record::decode(&text))
            .filter(|facts| filter.matches(facts))
            .collect();
        Ok(Page {
            items,
            next: None,
            examined: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursors_read_as_they_are_written() {
        let cursor = Cursor {
            at_ms: 1_740_830_400_000,
            id: "job-1".into(),
        };
        assert_eq!(cursor.to_string(), "1740830400000.6a6f622d31");
        assert_eq!("1740830400000.6a6f622d31".parse(), Ok(cursor));
        let empty = Cursor {
            at_ms: 0,
            id: String::new(),
        };
        assert_eq!("0.".parse(), Ok(empty));
        for bad in [
            "", "1", ".00", "x.00", "1.0", "1.zz", "+1.00", "01.00", "1.6A", "1.ff", " 1.00",
        ] {
            assert_eq!(bad.parse::<Cursor>(), Err(BadCursor), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_cursor_round_trips_through_its_text(at_ms in any::<i64>(), id in any::<String>()) {
            let cursor = Cursor { at_ms, id };
            let text = cursor.to_string();
            prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
            prop_assert_eq!(text.parse::<Cursor>(), Ok(cursor));
        }

        #[test]
        fn any_text_reads_as_a_cursor_only_if_it_is_written_so(text in any::<String>()) {
            if let Ok(cursor) = text.parse::<Cursor>() {
                prop_assert_eq!(cursor.to_string(), text);
            }
        }

        #[test]
        fn cursor_like_texts_never_panic(at in "-?[0-9]{1,20}", hex in "[0-9a-fA-F]{0,12}") {
            let text = format!("{at}.{hex}");
            if let Ok(cursor) = text.parse::<Cursor>() {
                prop_assert_eq!(cursor.to_string(), text);
            }
        }
    }
}
