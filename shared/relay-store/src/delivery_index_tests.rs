use super::*;
use crate::test_redis::TestRedis;

const TTL: Duration = Duration::from_secs(3600);
/// 2099-01-01T00:00:00Z: far enough ahead that no trim by age touches the tests' records.
pub(super) const BASE_MS: i64 = 4_070_908_800_000;

/// `updated_at` of `ms` after [`BASE_MS`] (under an hour).
pub(super) fn at(ms: i64) -> String {
    format!(
        "2099-01-01T00:{:02}:{:02}.{:03}Z",
        ms / 60_000,
        (ms / 1000) % 60,
        ms % 1000
    )
}

pub(super) fn record(destination: &str, status: DeliveryStatus, ms: i64) -> DeliveryRecord {
    DeliveryRecord {
        status,
        attempts: 1,
        destination: destination.into(),
        last_outcome: "status 200".into(),
        updated_at: at(ms),
        history: Vec::new(),
    }
}

fn query(destination: Option<&str>, status: Option<DeliveryStatus>) -> DeliveryQuery {
    DeliveryQuery {
        destination: destination.map(str::to_owned),
        status,
        limit: 100,
        ..DeliveryQuery::default()
    }
}

async fn ids(store: &Store, query: &DeliveryQuery) -> Vec<String> {
    let page = store.deliveries(query).await.unwrap();
    page.items.into_iter().map(|(id, _)| id).collect()
}

#[test]
fn rfc3339_times_are_read_to_the_millisecond() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(rfc3339_ms("1969-12-31T23:59:59Z"), Some(-1000));
    assert_eq!(rfc3339_ms("2026-12-04T10:00:00Z"), Some(1_796_378_400_000));
    assert_eq!(rfc3339_ms("2000-02-29T12:34:56Z"), Some(951_827_696_000));
    assert_eq!(
        rfc3339_ms("2026-12-04T10:00:00.123456789Z"),
        Some(1_796_378_400_123)
    );
    assert_eq!(
        rfc3339_ms("2026-12-04T12:00:00.5+02:00"),
        Some(1_796_378_400_500)
    );
    assert_eq!(
        rfc3339_ms("2026-12-04T09:30:00-00:30"),
        Some(1_796_378_400_000)
    );
    assert_eq!(rfc3339_ms(&at(61_234)), Some(BASE_MS + 61_234));
    for bad in [
        "",
        "2026-12-04",
        "2026-12-04T10:00:00",
        "2026-12-04X10:00:00Z",
        "yesterday",
    ] {
        assert_eq!(rfc3339_ms(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn records_are_indexed_by_destination_and_status_and_move_between_statuses() {
    let redis = TestRedis::new();
    let store = redis.store().await;
    use DeliveryStatus::{Dead, Delivered, Retrying};
    store
        .finish_attempt("job-1", &record("a", Retrying, 1000), TTL)
        .await
        .unwrap();
    store
        .finish_attempt("job-2", &record("b", Delivered, 2000), TTL)
        .await
        .unwrap();
    store
        .finish_attempt("job-3", &record("a", Dead, 3000), TTL)
        .await
        .unwrap();
    assert_eq!(
        ids(&store, &query(None, None)).await,
        ["job-3", "job-2", "job-1"]
    );
    assert_eq!(
        ids(&store, &query(Some("a"), None)).await,
        ["job-3", "job-1"]
    );
    assert_eq!(
        ids(&store, &query(Some("a"), Some(Retrying))).await,
        ["job-1"]
    );
    assert_eq!(ids(&store, &query(None, Some(Delivered))).await, ["job-2"]);

    // Its retry succeeds: job-1 leaves the retrying sets for the delivered ones, and is newest.
    store
        .finish_attempt("job-1", &record("a", Delivered, 4000), TTL)
        .await
        .unwrap();
    assert_eq!(
        ids(&store, &query(None, None)).await,
        ["job-1", "job-3", "job-2"]
    );
    assert!(
        ids(&store, &query(Some("a"), Some(Retrying)))
            .await
            .is_empty()
    );
    assert!(ids(&store, &query(None, Some(Retrying))).await.is_empty());
    assert_eq!(
        ids(&store, &query(Some("a"), Some(Delivered))).await,
        ["job-1"]
    );
    assert_eq!(
        ids(&store, &query(None, Some(Delivered))).await,
        ["job-1", "job-2"]
    );
    let page = store
        .deliveries(&query(Some("a"), Some(Delivered)))
        .await
        .unwrap();
    assert_eq!(page.items[0].1, record("a", Delivered, 4000));
    assert_eq!(page.next_before_ms, None);
    assert_eq!(
        store.delivery_counts(Some("a")).await.unwrap(),
        DeliveryCounts {
            total: 2,
            retrying: 0,
            delivered: 1,
            dead: 1
        }
    );
    assert_eq!(store.delivery_counts(None).await.unwrap().total, 3);
    assert_eq!(store.delivery_counts(Some("none")).await.unwrap().total, 0);

    // Every index key expires with the records (an emptied one is gone already).
    let mut raw = redis.raw().await;
    for index in ["all", "all:delivered", "dest:a", "dest:a:delivered"] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(store.key(&format!("deliveries:index:{index}")))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 3_600_000, "{index}: {pttl}");
    }
}

#[tokio::test]
async fn entries_older_than_the_ttl_are_trimmed_and_expired_records_skipped() {
    let redis = TestRedis::new();
    let store = redis.store().await;
    let mut old = record("a", DeliveryStatus::Delivered, 0);
    old.updated_at = "2001-01-01T00:00:00Z".into();
    store.finish_attempt("job-old", &old, TTL).await.unwrap();
    store
        .finish_attempt("job-new", &record("a", DeliveryStatus::Delivered, 5), TTL)
        .await
        .unwrap();
    assert_eq!(ids(&store, &query(Some("a"), None)).await, ["job-new"]);

    // A record gone before its index entry: left out, and the page goes on past it.
    store
        .finish_attempt("job-gone", &record("a", DeliveryStatus::Dead, 9), TTL)
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let () = redis::cmd("DEL")
        .arg(store.key("delivery:job-gone"))
        .query_async(&mut raw)
        .await
        .map(|_: i64| ())
        .unwrap();
    let page = store
        .deliveries(&DeliveryQuery {
            limit: 1,
            ..query(Some("a"), None)
        })
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_before_ms, Some(BASE_MS + 9));
    let next = store
        .deliveries(&DeliveryQuery {
            limit: 1,
            before_ms: page.next_before_ms,
            ..query(Some("a"), None)
        })
        .await
        .unwrap();
    assert_eq!(next.items[0].0, "job-new");
}

#[tokio::test]
async fn paging_by_cursor_is_newest_first_without_repeats_or_gaps() {
    let redis = TestRedis::new();
    let store = redis.store().await;
    // 40 jobs over 25 milliseconds: ties, one of them longer than a page.
    let mut times = Vec::new();
    for n in 0..40i64 {
        let ms = if (10..17).contains(&n) {
            10
        } else {
            n / 2 * 2 + 100
        };
        times.push((format!("job-{n:02}"), ms));
        store
            .finish_attempt(
                &format!("job-{n:02}"),
                &record("d", DeliveryStatus::Delivered, ms),
                TTL,
            )
            .await
            .unwrap();
    }
    for limit in [1, 3, 5, 40, 100] {
        let mut seen: Vec<(String, i64)> = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = store
                .deliveries(&DeliveryQuery {
                    destination: Some("d".into()),
                    before_ms: before,
                    limit,
                    ..DeliveryQuery::default()
                })
                .await
                .unwrap();
            for (id, record) in page.items {
                seen.push((id, rfc3339_ms(&record.updated_at).unwrap() - BASE_MS));
            }
            pages += 1;
            assert!(pages <= 40, "paging never ends");
            match page.next_before_ms {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert!(
            seen.windows(2).all(|w| w[0].1 >= w[1].1),
            "limit {limit}: not newest first: {seen:?}"
        );
        let mut got = seen.clone();
        got.sort();
        let mut expected = times.clone();
        expected.sort();
        assert_eq!(got, expected, "limit {limit}: repeats or gaps");
    }
    // A window by time: strictly after 100 and strictly before 110.
    let window = store
        .deliveries(&DeliveryQuery {
            before_ms: Some(BASE_MS + 110),
            after_ms: Some(BASE_MS + 100),
            ..query(None, None)
        })
        .await
        .unwrap();
    assert_eq!(window.items.len(), 8, "{:?}", window.items);
}
