//! A page's work is bounded, however large the index: 100,000 entries in Redis, and a page
//! returns its `limit` items examining at most its bound of entries (counted, never timed).

#![allow(clippy::unwrap_used)]

mod common;

use common::Env;
use relay_parked::index::{EXAMINE_PER_ITEM, MAX_LIMIT};
use relay_parked::{Facts, Filter, Queue};
use time::OffsetDateTime;

const ENTRIES: i64 = 100_000;
/// One job in this many is for the rare destination.
const RARE: i64 = 50;

fn job(n: i64, at_ms: i64) -> Facts {
    let destination = if n % RARE == 0 { "rare" } else { "common" };
    Facts {
        id: Some(format!("job-{n:06}")),
        queue: Queue::DeadDeliveries,
        reason: Some("http_status".into()),
        broker_reason: None,
        detail: Some("the destination said no".into()),
        status: Some(400),
        attempts: Some(3),
        destination: Some(destination.into()),
        routing_key: None,
        ty: None,
        time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).ok(),
        body_size: 120,
        handler: None,
    }
}

fn destination(name: &str) -> Filter {
    Filter {
        destination: Some(name.into()),
        ..Filter::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_hundred_thousand_entries_examines_at_most_its_bound() {
    let env = Env::redis();
    let index = env.index().await;
    // An hour ago, one entry every 10 ms: job-099999 is the newest.
    let base = OffsetDateTime::now_utc().unix_timestamp() * 1000 - 3_600_000;
    let at = |n: i64| base + n * 10;
    let all: Vec<Facts> = (0..ENTRIES).map(|n| job(n, at(n))).collect();
    for chunk in all.chunks(1000) {
        let added = index.add(chunk).await.unwrap();
        assert_eq!(added.filed, chunk.len());
    }
    assert_eq!(index.count(Queue::DeadDeliveries).await.unwrap(), 100_000);
    let queue = Queue::DeadDeliveries;
    let newest = |n: i64| format!("job-{:06}", ENTRIES - 1 - n);

    // No filter: exactly the entries the page shows are read.
    let page = index
        .page(queue, &Filter::default(), None, 50)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 50);
    assert_eq!(page.examined, 50);
    assert_eq!(page.items[0].id, Some(newest(0)));
    assert_eq!(page.items[49].id, Some(newest(49)));
    let next = page.next.expect("more to come");
    let page = index
        .page(queue, &Filter::default(), Some(&next), 50)
        .await
        .unwrap();
    assert_eq!(
        page.items[0].id,
        Some(newest(50)),
        "the next page starts after the last"
    );

    // A filter most entries match: the page fills well within its bound.
    let page = index
        .page(queue, &destination("common"), None, 50)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 50);
    assert!(page.examined <= 50 * EXAMINE_PER_ITEM, "{}", page.examined);

    // A rare one (1 in 50): the page stops at its bound, short, with a cursor to go on.
    let bound = 50 * EXAMINE_PER_ITEM;
    let page = index
        .page(queue, &destination("rare"), None, 50)
        .await
        .unwrap();
    assert_eq!(page.examined, bound);
    assert_eq!(page.items.len(), bound / RARE as usize);
    assert!(
        page.items
            .iter()
            .all(|f| f.destination.as_deref() == Some("rare"))
    );
    let more = index
        .page(queue, &destination("rare"), page.next.as_ref(), 50)
        .await
        .unwrap();
    assert_eq!(more.examined, bound);
    let last = page.items.last().and_then(|f| f.id.clone()).unwrap();
    let first = more.items[0].id.clone().unwrap();
    assert!(first < last, "{first} follows {last}, none repeated");

    // Nothing matches: still no more than the bound.
    let page = index
        .page(queue, &destination("nobody"), None, 50)
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.examined), (0, bound));
    assert!(page.next.is_some());

    // `since` is a score range: only the newest 100 entries are read, then it ends.
    let since =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(at(ENTRIES - 100)) * 1_000_000).ok();
    let recent = Filter {
        since,
        ..destination("nobody")
    };
    let page = index.page(queue, &recent, None, 50).await.unwrap();
    assert_eq!((page.items.len(), page.examined, page.next), (0, 100, None));

    // A limit past the largest page is the largest page.
    let page = index
        .page(queue, &Filter::default(), None, 100_000)
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.examined), (MAX_LIMIT, MAX_LIMIT));
}
