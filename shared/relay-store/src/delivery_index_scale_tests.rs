//! A page's cost does not grow with the index: a million entries, and the commands Redis
//! runs for one page counted on a MONITOR connection.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use super::tests::{BASE_MS, record};
use super::*;
use crate::test_redis::TestRedis;

/// Counts the commands Redis runs on keys under `prefix` (MONITOR, on a connection of its own),
/// between two markers the test sends.
struct Monitor {
    seen: Arc<Mutex<Vec<String>>>,
    stream: std::net::TcpStream,
    prefix: String,
}

impl Monitor {
    async fn start(redis: &TestRedis, prefix: &str) -> Self {
        let address = redis.config.url.trim_start_matches("redis://");
        let mut stream = std::net::TcpStream::connect(address.trim_end_matches('/')).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert_eq!(ok.trim(), "+OK");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (lines, needle) = (seen.clone(), prefix.to_owned());
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.contains(&needle) {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        let monitor = Self {
            seen,
            stream,
            prefix: prefix.to_owned(),
        };
        monitor.mark(redis, "begin").await;
        monitor
    }

    /// Sends a marker command and waits until the monitor has seen it.
    async fn mark(&self, redis: &TestRedis, name: &str) {
        let key = format!("{}monitor:{name}", self.prefix);
        let mut raw = redis.raw().await;
        let _: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        for _ in 0..500 {
            if self.seen.lock().unwrap().iter().any(|l| l.contains(&key)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the monitor never saw {key}");
    }

    /// The commands between the begin marker and now, without the markers.
    async fn stop(self, redis: &TestRedis) -> Vec<String> {
        self.mark(redis, "end").await;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .skip_while(|l| !l.contains("monitor:begin"))
            .skip(1)
            .take_while(|l| !l.contains("monitor:end"))
            .cloned()
            .collect()
    }
}

/// The commands one [`Store::deliveries`] call sends, and the page.
async fn measured(
    redis: &TestRedis,
    store: &Store,
    query: &DeliveryQuery,
) -> (Vec<String>, DeliveryPage) {
    let monitor = Monitor::start(redis, &redis.config.key_prefix).await;
    let page = store.deliveries(query).await.unwrap();
    (monitor.stop(redis).await, page)
}

/// Fills `index` with `count` jobs one millisecond apart from [`BASE_MS`] (`job-0000000` the
/// oldest), 10,000 to a `ZADD`, 10 `ZADD`s to a round trip, and writes the records of `with`.
async fn fill(redis: &TestRedis, store: &Store, index: &str, count: i64, with: &[i64]) {
    let mut raw = redis.raw().await;
    let key = store.key(index);
    let mut n = 0;
    while n < count {
        let mut pipe = redis::pipe();
        for _ in 0..10 {
            let end = (n + 10_000).min(count);
            if n == end {
                break;
            }
            let cmd = pipe.cmd("ZADD").arg(&key);
            for i in n..end {
                cmd.arg(BASE_MS + i).arg(format!("job-{i:07}"));
            }
            cmd.ignore();
            n = end;
        }
        pipe.query_async::<()>(&mut raw).await.unwrap();
    }
    let mut pipe = redis::pipe();
    for &i in with {
        let text = serde_json::to_string(&record("big", DeliveryStatus::Delivered, i % 3_600_000))
            .unwrap();
        pipe.cmd("SET")
            .arg(store.key(&format!("delivery:job-{i:07}")))
            .arg(text)
            .arg("EX")
            .arg(600)
            .ignore();
    }
    pipe.query_async::<()>(&mut raw).await.unwrap();
}

/// A page costs the same two commands, each bounded by the page's size, whether the index
/// holds a thousand jobs or a million.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_million_deliveries_is_two_bounded_commands() {
    const MILLION: i64 = 1_000_000;
    let redis = TestRedis::new();
    let store = redis.store().await;
    let newest: Vec<i64> = (MILLION - 60..MILLION).collect();
    let middle: Vec<i64> = (500_000 - 60..500_000).collect();
    let started = std::time::Instant::now();
    let with: Vec<i64> = newest.iter().chain(&middle).copied().collect();
    fill(&redis, &store, "deliveries:index:all", MILLION, &with).await;
    fill(
        &redis,
        &store,
        "deliveries:index:dest:small",
        1000,
        &(940..1000).collect::<Vec<_>>(),
    )
    .await;
    eprintln!("filled a million-entry index in {:?}", started.elapsed());
    let mut raw = redis.raw().await;
    let size: i64 = redis::cmd("ZCARD")
        .arg(store.key("deliveries:index:all"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(size, MILLION);

    let pages = [
        (
            DeliveryQuery {
                limit: 50,
                ..DeliveryQuery::default()
            },
            MILLION - 1,
        ),
        (
            DeliveryQuery {
                limit: 50,
                before_ms: Some(BASE_MS + 500_000),
                ..DeliveryQuery::default()
            },
            499_999,
        ),
        (
            DeliveryQuery {
                destination: Some("small".into()),
                limit: 50,
                ..DeliveryQuery::default()
            },
            999,
        ),
    ];
    for (query, first) in pages {
        let (commands, page) = measured(&redis, &store, &query).await;
        assert_eq!(page.items.len(), 50);
        assert_eq!(page.items[0].0, format!("job-{first:07}"));
        assert_eq!(page.next_before_ms, Some(BASE_MS + first - 49));
        assert_eq!(commands.len(), 2, "{commands:#?}");
        assert!(
            commands[0].contains(r#""ZREVRANGEBYSCORE""#),
            "{}",
            commands[0]
        );
        assert!(
            commands[0].contains(r#""LIMIT" "0" "51""#),
            "{}",
            commands[0]
        );
        assert!(commands[1].contains(r#""MGET""#), "{}", commands[1]);
        assert_eq!(
            commands[1].matches(":delivery:job-").count(),
            50,
            "{}",
            commands[1]
        );
    }
}
