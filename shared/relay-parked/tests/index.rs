//! The parked index against the real broker and Redis: what is parked in each queue is
//! indexed with the facts a walk of the queue reads; pages come newest first, filtered, from a
//! cursor; a replay and a purge remove the entries of what they acked, and of an id they did
//! not find.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Env, now_secs, park_job, publish};
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use relay_parked::{Facts, Filter, Index, Page, Progress, Queue, Rate, Replay, Scan};

/// Every page of `queue` that `filter` matches, `limit` at a time, following the cursors.
async fn all_pages(index: &Index, queue: Queue, filter: &Filter, limit: usize) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = index
            .page(queue, filter, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.examined <= limit * relay_parked::index::EXAMINE_PER_ITEM);
        after = page.next.clone();
        pages.push(page);
        if after.is_none() {
            return pages;
        }
    }
}

fn ids(items: &[Facts]) -> Vec<String> {
    items.iter().map(|f| f.id.clone().unwrap()).collect()
}

/// What a walk of `queue` reads of its only message.
async fn walked(env: &Env, queue: Queue) -> Facts {
    let mut scan = Scan::open(&env.config.amqp.url, queue, Filter::default())
        .await
        .unwrap();
    let facts = scan.next().await.unwrap().expect("one message").facts;
    assert!(scan.next().await.unwrap().is_none(), "only one");
    scan.close().await.unwrap();
    facts
}

fn no_id_copies() -> f64 {
    let text = relay_telemetry::metrics_handle().render();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(r#"relay_parked_index_copies_total{outcome="no_id"} "#)
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_job_a_dead_event_and_an_unrouted_event_are_indexed_with_their_facts() {
    relay_telemetry::metrics_handle();
    let env = Env::broker().await;
    let index = env.index().await;
    env.run_indexer(index.clone()).await;
    let channel = env.channel().await;

    // A job, parked by the relay.
    park_job(&channel, "job-1", "alerts", now_secs() - 10).await;
    // An event the broker parks by itself: rejected from a queue that dead-letters to
    // relay.dead, as a handler's queue does.
    let mut args = FieldTable::default();
    let text = |v: &str| AMQPValue::LongString(LongString::from(v));
    args.insert("x-dead-letter-exchange".into(), text("relay.dead"));
    args.insert("x-dead-letter-routing-key".into(), text("events"));
    channel
        .queue_declare("test.handler".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let event = br#"{"specversion":"1.0","id":"ev-1","type":"com.plivo.call.ringing"}"#;
    let properties = BasicProperties::default().with_message_id("ev-1".into());
    publish(&channel, "", "test.handler", properties, event).await;
    let got = channel
        .basic_get("test.handler".into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("the event");
    got.delivery
        .acker
        .nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await
        .unwrap();
    // An event no handler takes, through relay.events' alternate exchange.
    let properties = BasicProperties::default()
        .with_message_id("shop-1".into())
        .with_timestamp(now_secs() - 5);
    let body = br#"{"type":"com.shop.order_paid"}"#;
    publish(
        &channel,
        "relay.events",
        "shop.order_paid",
        properties,
        body,
    )
    .await;
    // And a copy the index cannot file: no id.
    let before = no_id_copies();
    publish(
        &channel,
        "relay.dead",
        "events",
        BasicProperties::default(),
        b"{}",
    )
    .await;

    for queue in [Queue::DeadDeliveries, Queue::DeadEvents, Queue::Unrouted] {
        env.wait_indexed(&index, queue, 1).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while no_id_copies() < before + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the id-less copy is counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let first = |queue| {
        let index = &index;
        async move {
            let page = index
                .page(queue, &Filter::default(), None, 10)
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1, "{queue}");
            page.items.into_iter().next().unwrap()
        }
    };
    let job = first(Queue::DeadDeliveries).await;
    assert_eq!(job.id.as_deref(), Some("job-1"));
    assert_eq!(job.reason.as_deref(), Some("http_status"));
    assert_eq!(job.destination.as_deref(), Some("alerts"));
    assert_eq!((job.status, job.attempts), (Some(400), Some(3)));
    let event = first(Queue::DeadEvents).await;
    assert_eq!(event.id.as_deref(), Some("ev-1"));
    assert_eq!(
        event.reason.as_deref(),
        Some("broker:rejected@test.handler")
    );
    assert_eq!(event.broker_reason.as_deref(), Some("rejected"));
    assert_eq!(event.ty.as_deref(), Some("com.plivo.call.ringing"));
    let unrouted = first(Queue::Unrouted).await;
    assert_eq!(unrouted.routing_key.as_deref(), Some("shop.order_paid"));
    assert_eq!(unrouted.ty.as_deref(), Some("com.shop.order_paid"));
    assert!(unrouted.time.is_some());

    // The very facts a walk of the queue reads (the id-less one is still in relay.dead.events:
    // it is the index that leaves it out).
    assert_eq!(walked(&env, Queue::DeadDeliveries).await, job);
    assert_eq!(walked(&env, Queue::Unrouted).await, unrouted);
    let ev_1 = Filter {
        id: Some("ev-1".into()),
        ..Filter::default()
    };
    let mut scan = Scan::open(&env.config.amqp.url, Queue::DeadEvents, ev_1)
        .await
        .unwrap();
    assert_eq!(scan.next().await.unwrap().unwrap().facts, event);
    scan.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_pages_newest_first_with_a_filter_and_a_cursor() {
    let env = Env::broker().await;
    let index = env.index().await;
    // This one runs the indexer in relay-amqp's consumer loop, as a service may.
    env.run_indexer_on_broker(index.clone()).await;
    let channel = env.channel().await;
    let start = now_secs() - 100;
    for n in 0..30u64 {
        let destination = if n % 3 == 0 { "helpdesk" } else { "alerts" };
        park_job(&channel, &format!("job-{n:02}"), destination, start + n).await;
    }
    env.wait_indexed(&index, Queue::DeadDeliveries, 30).await;
    let job = |n: u64| format!("job-{n:02}");

    let pages = all_pages(&index, Queue::DeadDeliveries, &Filter::default(), 7).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [7, 7, 7, 7, 2]);
    let every: Vec<String> = pages.iter().flat_map(|p| ids(&p.items)).collect();
    assert_eq!(
        every,
        (0..30).rev().map(job).collect::<Vec<_>>(),
        "newest first"
    );

    let helpdesk = Filter {
        destination: Some("helpdesk".into()),
        ..Filter::default()
    };
    let pages = all_pages(&index, Queue::DeadDeliveries, &helpdesk, 4).await;
    let found: Vec<String> = pages.iter().flat_map(|p| ids(&p.items)).collect();
    let expected: Vec<String> = (0..30).rev().filter(|n| n % 3 == 0).map(job).collect();
    assert_eq!(found, expected, "each once, in order, across pages");

    let recent = Filter {
        since: time::OffsetDateTime::from_unix_timestamp((start + 20) as i64).ok(),
        ..Filter::default()
    };
    let page = index
        .page(Queue::DeadDeliveries, &recent, None, 50)
        .await
        .unwrap();
    assert_eq!(
        ids(&page.items),
        (20..30).rev().map(job).collect::<Vec<_>>()
    );
    assert_eq!(page.examined, 10, "older entries are never read");
    assert_eq!(page.next, None);

    let by_id = Filter {
        id: Some(job(5)),
        ..Filter::default()
    };
    let page = index
        .page(Queue::DeadDeliveries, &by_id, None, 50)
        .await
        .unwrap();
    assert_eq!((ids(&page.items), page.next), (vec![job(5)], None));
}

/// Counts what an operation reports.
#[derive(Default)]
struct Counted {
    walked: u32,
    done: Vec<String>,
}

impl Progress for Counted {
    fn walked(&mut self, scanned: u32, _: u32) {
        self.walked = scanned;
    }

    fn done(&mut self, facts: &Facts) {
        self.done.push(facts.id.clone().unwrap_or_default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_and_a_purge_remove_their_entries_and_those_of_ids_not_parked() {
    let env = Env::broker().await;
    let index = env.index().await;
    env.run_indexer(index.clone()).await;
    let channel = env.channel().await;
    for (id, destination) in [
        ("job-a", "alerts"),
        ("job-b", "helpdesk"),
        ("job-c", "helpdesk"),
        ("job-d", "alerts"),
    ] {
        park_job(&channel, id, destination, now_secs()).await;
    }
    env.wait_indexed(&index, Queue::DeadDeliveries, 4).await;
    let listed = |index: Index| async move {
        let page = index
            .page(Queue::DeadDeliveries, &Filter::default(), None, 50)
            .await
            .unwrap();
        let mut ids = ids(&page.items);
        ids.sort();
        ids
    };

    let helpdesk = Filter {
        destination: Some("helpdesk".into()),
        ..Filter::default()
    };
    let mut progress = Counted::default();
    let url = &env.config.amqp.url;
    let selection = relay_parked::purge::select(
        url,
        Queue::DeadDeliveries,
        helpdesk,
        None,
        Some(index.clone()),
        &mut progress,
    )
    .await
    .unwrap();
    assert_eq!(selection.len(), 2);
    let purged = selection.purge(&mut progress).await.unwrap();
    assert_eq!((purged.purged, purged.total, purged.unforgotten), (2, 4, 0));
    assert_eq!(progress.done, ["job-b", "job-c"]);
    assert_eq!(progress.walked, 3, "the walk took up to job-c");
    assert_eq!(listed(index.clone()).await, ["job-a", "job-d"]);

    let stop = tokio_util::sync::CancellationToken::new();
    let broker = relay_amqp::Broker::start(
        relay_amqp::BrokerSettings::from_config(&env.config, "relay-parked-test"),
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    assert!(broker.wait_connected(Duration::from_secs(10)).await);
    let by_id = |id: &str| Replay {
        queue: Queue::DeadDeliveries,
        filter: Filter {
            id: Some(id.to_owned()),
            ..Filter::default()
        },
        limit: None,
        rate: Rate::per_second(1000.0).unwrap(),
    };
    let done = relay_parked::replay(&env.config, &broker, Some(&index), by_id("job-a"), &mut ())
        .await
        .unwrap();
    assert_eq!((done.replayed, done.unforgotten), (1, 0));
    assert_eq!(listed(index.clone()).await, ["job-d"]);

    // Entries of messages that are not (or no longer) in the queue: acting on them by id
    // walks the whole queue, finds nothing, and removes them.
    let mut ghost = Scan::open(url, Queue::DeadDeliveries, Filter::default())
        .await
        .unwrap();
    let mut facts = ghost.next().await.unwrap().unwrap().facts;
    ghost.close().await.unwrap();
    for id in ["ghost-1", "ghost-2"] {
        facts.id = Some(id.to_owned());
        index.add(std::slice::from_ref(&facts)).await.unwrap();
    }
    assert_eq!(listed(index.clone()).await, ["ghost-1", "ghost-2", "job-d"]);
    let done = relay_parked::replay(
        &env.config,
        &broker,
        Some(&index),
        by_id("ghost-1"),
        &mut (),
    )
    .await
    .unwrap();
    assert_eq!(done.replayed, 0);
    let ghost = Filter {
        id: Some("ghost-2".into()),
        ..Filter::default()
    };
    let selection = relay_parked::purge::select(
        url,
        Queue::DeadDeliveries,
        ghost,
        None,
        Some(index.clone()),
        &mut (),
    )
    .await
    .unwrap();
    assert!(selection.is_empty());
    selection.release().await.unwrap();
    assert_eq!(listed(index.clone()).await, ["job-d"]);
    let mut raw = env.raw().await;
    let prefix = &env.config.redis.key_prefix;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}parked:facts:*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        left,
        [format!("{prefix}parked:facts:relay.dead.deliveries:job-d")],
        "records go with their entries"
    );
    stop.cancel();
}
