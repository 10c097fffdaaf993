//! Purging: removing matching parked messages for good.
//!
//! [`select`] walks the queue and holds every message it takes, so nothing has changed until
//! [`Selection::purge`] acks the matching ones, which removes them. [`Selection::release`]
//! (an operator's "no", an error) hands everything back in its order, and so does a crash (in
//! no particular order then: see [`crate::Scan`]). Only the facts of the selected messages are
//! kept while they wait: their bodies are dropped as they are taken.

use crate::index::{Forget, Index};
use crate::{Facts, Filter, Parked, Progress, Queue, Result, Scan};

/// The messages a purge would remove, held until it is confirmed or released.
pub struct Selection {
    scan: Scan,
    held: Vec<Parked>,
    index: Option<Index>,
    /// An id asked for and not met in the whole queue: no longer parked.
    gone: Option<String>,
}

/// What a purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Messages removed.
    pub purged: usize,
    /// Messages in the queue when the walk began.
    pub total: u32,
    /// Index entries that could not be removed (Redis away): the console may still list
    /// them until they expire.
    pub unforgotten: usize,
}

/// Walks `queue` (on the broker at `amqp_url`) and holds the messages `filter` matches, at
/// most `limit` of them, reporting the walk to `progress`. `index`, when given, is where the
/// selection's entries are removed once purged (and an id asked for and not met in the whole
/// queue, once purged or released).
pub async fn select(
    amqp_url: &str,
    queue: Queue,
    filter: Filter,
    limit: Option<usize>,
    index: Option<Index>,
    progress: &mut dyn Progress,
) -> Result<Selection> {
    let id = filter.id.clone();
    let limit = limit.unwrap_or(usize::MAX);
    let mut scan = Scan::open(amqp_url, queue, filter).await?;
    let mut held: Vec<Parked> = Vec::new();
    while held.len() < limit {
        let Some(mut parked) = scan.next().await? else {
            break;
        };
        // Only its facts are needed from here on.
        parked.delivery.data = Vec::new();
        held.push(parked);
        progress.walked(scan.scanned(), scan.total());
    }
    let gone = id.filter(|_| held.is_empty() && scan.finished());
    Ok(Selection {
        scan,
        held,
        index,
        gone,
    })
}

impl Selection {
    /// The queue walked.
    pub fn queue(&self) -> Queue {
        self.scan.queue()
    }

    /// Messages in the queue when the walk began.
    pub fn total(&self) -> u32 {
        self.scan.total()
    }

    /// How many messages are selected.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no message is selected.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The facts of the selected messages, in queue order.
    pub fn facts(&self) -> impl ExactSizeIterator<Item = &Facts> {
        self.held.iter().map(|parked| &parked.facts)
    }

    /// Removes every selected message for good (and its index entry), hands the rest back.
    pub async fn purge(mut self, progress: &mut dyn Progress) -> Result<Purged> {
        let queue = self.queue();
        let mut forget = Forget::new(self.index.as_ref(), queue);
        let result = ack_all(&mut self.scan, &self.held, &mut forget, progress).await;
        if let Some(id) = self.gone.take() {
            forget.unless_met(id, &self.scan);
        }
        let unforgotten = forget.finish().await;
        result?;
        let (total, purged) = (self.scan.total(), self.held.len());
        self.scan.close().await?;
        Ok(Purged {
            purged,
            total,
            unforgotten,
        })
    }

    /// Removes nothing: hands every message back to the queue, in its order. An id asked for
    /// and not met in the whole queue still leaves the index.
    pub async fn release(mut self) -> Result<()> {
        let mut forget = Forget::new(self.index.as_ref(), self.scan.queue());
        if let Some(id) = self.gone.take() {
            forget.unless_met(id, &self.scan);
        }
        forget.finish().await;
        self.scan.close().await
    }
}

async fn ack_all(
    scan: &mut Scan,
    held: &[Parked],
    forget: &mut Forget<'_>,
    progress: &mut dyn Progress,
) -> Result<()> {
    for parked in held {
        scan.ack(parked).await?;
        forget.push(&parked.facts).await;
        progress.done(&parked.facts);
    }
    Ok(())
}
