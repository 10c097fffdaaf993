//! Reading call sessions for the operator console: one session by id with its timeline and
//! messages, and sessions by customer number or most recent first, a page at a time, newest
//! first (the ledger's indexes, `calls:number:{digits}` and `calls:recent`).
//!
//! A page costs two round trips however many calls are indexed. A number is looked up by its
//! digits only: `+1 (555) 010-0000`, `+15550100000` and `15550100000` find the same calls; a
//! national form without the country code (`(555) 010-0000`) does not.

use relay_store::{IndexRange, Result, Store};
use serde::Serialize;
use time::OffsetDateTime;

use super::ledger;
use super::session::{Direction, Session, State};

/// One session in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Session id (and helpdesk thread id).
    pub id: String,
    /// The customer's number.
    pub customer: Option<String>,
    /// The company's number.
    pub channel: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The helpdesk destination of its messages.
    pub destination: String,
    /// When the call began.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl From<&Session> for Summary {
    fn from(session: &Session) -> Self {
        Self {
            id: session.id.clone(),
            customer: session.customer.clone(),
            channel: session.channel.clone(),
            state: session.state,
            direction: session.direction,
            destination: session.destination.clone(),
            started_at: session.started_at,
            ended_at: session.ended_at,
        }
    }
}

/// A page of sessions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SummaryPage {
    /// The sessions (those still in the ledger).
    pub items: Vec<Summary>,
    /// The `before_ms` of the next page (ms since the epoch, by start time); `None` when this
    /// was the last.
    pub next_before_ms: Option<i64>,
}

/// The session `id` (e.g. `plivo:3e82…`), with its timeline and messages; `None` when the
/// ledger does not have it (never seen, or expired).
pub async fn session(store: &Store, id: &str) -> Result<Option<Session>> {
    let Some(text) = store.get_text(&ledger::key(id)).await? else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_str(&text)?))
}

/// The sessions of customer `number` (any format: only its digits count) that started before
/// `before_ms` (ms since the epoch; `None`: the latest), newest first, at most `limit`.
pub async fn by_number(
    store: &Store,
    number: &str,
    before_ms: Option<i64>,
    limit: usize,
) -> Result<SummaryPage> {
    match ledger::number_index(number) {
        Some(index) => page(store, &index, before_ms, limit).await,
        None => Ok(SummaryPage::default()),
    }
}

/// The sessions that started before `before_ms` (ms since the epoch; `None`: the latest),
/// newest first, at most `limit`.
pub async fn recent(store: &Store, before_ms: Option<i64>, limit: usize) -> Result<SummaryPage> {
    page(store, ledger::RECENT, before_ms, limit).await
}

async fn page(
    store: &Store,
    index: &str,
    before_ms: Option<i64>,
    limit: usize,
) -> Result<SummaryPage> {
    let range = IndexRange {
        before_ms,
        after_ms: None,
        limit,
    };
    let page = store.index_page(index, ledger::RECORDS, range).await?;
    let items = page
        .items
        .iter()
        .filter_map(|item| match serde_json::from_str::<Session>(&item.record) {
            Ok(session) => Some(Summary::from(&session)),
            Err(error) => {
                tracing::warn!(%error, session = %item.member, "a call session does not parse");
                None
            }
        })
        .collect();
    Ok(SummaryPage {
        items,
        next_before_ms: page.next_before_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::ledger::number_index;

    #[test]
    fn numbers_are_indexed_by_their_digits() {
        let index = Some("calls:number:15550100000".to_owned());
        for number in [
            "+1 (555) 010-0000",
            "+15550100000",
            "15550100000",
            "1-555-010-0000",
        ] {
            assert_eq!(number_index(number), index, "{number}");
        }
        assert_eq!(number_index("alice"), None);
        assert_eq!(number_index(""), None);
    }
}
