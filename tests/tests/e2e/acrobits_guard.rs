//! The web callback under attack, end to end: the toll-fraud guard (denied and invalid
//! numbers, every limit, repeats, Redis down) and the login (lockouts without hashing, a flood
//! of bad logins against an ingress process with bounded memory), each refusal in the format
//! the app reads.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use relay_core::config::{AcrobitsAccount, AcrobitsSource};
use relay_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// argon2 is slow on purpose: hash once for the whole suite.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| relay_signing::password::hash_argon2("secretW0rd").unwrap())
}

/// An environment whose web callback has two accounts (`alice` and `bob`, both with the
/// password `secretW0rd`), numbers allowed under +1 and +44 (the default deny-list on top),
/// every limit and lockout off, a password check waiting as long as it takes (tests running
/// in parallel share the CPU; the flood test restores the default), and then `change` applied.
fn guard_env(change: impl FnOnce(&mut AcrobitsSource)) -> TestEnv {
    let mut env = TestEnv::new();
    let accounts = ["alice", "bob"]
        .map(|name| AcrobitsAccount {
            username: name.into(),
            password_hash_env: Some(env.secret(
                &format!("TEST_{}_HASH", name.to_uppercase()),
                password_hash(),
            )),
            password_env: None,
        })
        .to_vec();
    let mut source = AcrobitsSource {
        allowed_prefixes: vec!["+1".into(), "+44".into()],
        rate_limit_per_minute: 0,
        rate_limit_per_day: 0,
        target_limit_per_minute: 0,
        target_limit_per_day: 0,
        global_limit_per_minute: 0,
        global_limit_per_day: 0,
        max_concurrent_per_account: 0,
        login_failures_per_user: 0,
        login_failures_per_address: 0,
        hash_queue_wait: Duration::from_secs(30),
        accounts,
        ..AcrobitsSource::default()
    };
    change(&mut source);
    env.config.ingress.acrobits = Some(source);
    env
}

/// How the app sends its request and reads the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// POST JSON, answer in JSON.
    Json,
    /// GET with a query string, `Accept: application/xml`.
    Xml,
    /// POST form, answer as a form.
    Form,
}

/// One web callback request.
struct Call<'a> {
    user: &'a str,
    password: &'a str,
    target: &'a str,
    callback: &'a str,
}

impl Call<'_> {
    fn alice(target: &str) -> Call<'_> {
        Call {
            user: "alice",
            password: "secretW0rd",
            target,
            callback: "+15559879876",
        }
    }
}

/// What the app gets back.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    message: String,
    /// The problem type (not in XML, which carries the message only).
    ty: Option<String>,
}

async fn send(
    client: &reqwest::Client,
    addr: SocketAddr,
    format: Format,
    call: &Call<'_>,
) -> Answer {
    let url = format!("http://{addr}/v1/acrobits/web-callback");
    let params = [
        ("username", call.user),
        ("password", call.password),
        ("targetNumber", call.target),
        ("callbackNumber", call.callback),
    ];
    let request = match format {
        Format::Json => client
            .post(&url)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "username": call.user, "password": call.password,
                    "targetNumber": call.target, "callbackNumber": call.callback,
                })
                .to_string(),
            ),
        Format::Xml => client
            .get(format!(
                "{url}?{}",
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params)
                    .finish()
            ))
            .header("accept", "application/xml"),
        Format::Form => client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params)
                    .finish(),
            ),
    };
    let response = request.send().await.expect("ingress answers");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after").map(|v| v.parse().expect("Retry-After in seconds"));
    let body = response.text().await.unwrap();
    let (message, ty) = match format {
        Format::Json => {
            assert_eq!(content_type, "application/json", "{body}");
            let value: Value = serde_json::from_str(&body).unwrap();
            (
                value["message"].as_str().unwrap_or_default().to_owned(),
                value["type"].as_str().map(str::to_owned),
            )
        }
        Format::Xml => {
            assert_eq!(content_type, "application/xml", "{body}");
            let message = body
                .strip_prefix("<message>")
                .and_then(|b| b.strip_suffix("</message>"))
                .unwrap_or_else(|| panic!("an XML message: {body}"));
            (message.to_owned(), None)
        }
        Format::Form => {
            assert_eq!(content_type, "application/x-www-form-urlencoded", "{body}");
            let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            (get("message").unwrap_or_default(), get("type"))
        }
    };
    Answer {
        status,
        retry_after,
        message,
        ty,
    }
}

/// Routing keys of everything ingress published so far (read from `relay.unrouted`).
async fn published(env: &TestEnv, channel: &lapin::Channel) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Some(m) = env
        .next_message(channel, "relay.unrouted", Duration::from_millis(300))
        .await
    {
        let event: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        out.push((m.delivery.routing_key.to_string(), event));
    }
    out
}

fn callbacks(events: &[(String, Value)]) -> Vec<&Value> {
    events
        .iter()
        .filter(|(key, _)| key == "acrobits.web_callback")
        .map(|(_, event)| event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_invalid_numbers_are_refused_in_the_apps_format() {
    let env = guard_env(|_| {});
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;
    let client = reqwest::Client::new();

    // NANP premium rate: within the allowed +1, denied all the same.
    let premium = send(&client, addr, Format::Json, &Call::alice("+19005551234")).await;
    assert_eq!(premium.status, 403, "{premium:?}");
    assert_eq!(
        premium.ty.as_deref(),
        Some("urn:relay:problem:destination-not-allowed")
    );
    assert_eq!(
        premium.message,
        "Calls to this destination are not allowed."
    );
    // UK premium rate (09), as XML.
    let uk = send(&client, addr, Format::Xml, &Call::alice("+449098790000")).await;
    assert_eq!(uk.status, 403, "{uk:?}");
    assert_eq!(uk.message, "Calls to this destination are not allowed.");
    // A satellite network on the callback leg, as a form.
    let satellite = Call {
        callback: "+881631234567",
        ..Call::alice("+15551231234")
    };
    let satellite = send(&client, addr, Format::Form, &satellite).await;
    assert_eq!(satellite.status, 403, "{satellite:?}");
    assert_eq!(
        satellite.ty.as_deref(),
        Some("urn:relay:problem:destination-not-allowed")
    );
    // Not a number at all, and not international.
    for (format, target) in [(Format::Json, "12345"), (Format::Form, "555-123-1234")] {
        let invalid = send(&client, addr, format, &Call::alice(target)).await;
        assert_eq!(invalid.status, 400, "{invalid:?}");
        assert_eq!(
            invalid.ty.as_deref(),
            Some("urn:relay:problem:invalid-number")
        );
        assert_eq!(
            invalid.message,
            "The number to call is not a valid international number."
        );
    }
    let invalid_xml = send(&client, addr, Format::Xml, &Call::alice("+1555")).await;
    assert_eq!(invalid_xml.status, 400);
    assert_eq!(
        invalid_xml.message,
        "The number to call is not a valid international number."
    );
    // A number that passes.
    let fine = send(&client, addr, Format::Json, &Call::alice("+15551231234")).await;
    assert_eq!(
        (fine.status, fine.message.as_str()),
        (200, "Calling you back, please wait.")
    );

    // One callback published; each refusal of the authenticated user reported once.
    let events = published(&env, &channel).await;
    assert_eq!(callbacks(&events).len(), 1, "{events:?}");
    let reasons: Vec<&str> = events
        .iter()
        .filter(|(key, _)| key == "acrobits.web_callback_refused")
        .map(|(_, e)| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_refuses_with_429_retry_after_and_its_own_message() {
    struct Case {
        name: &'static str,
        set: fn(&mut AcrobitsSource),
        /// The request that fills the limit, then the one it refuses.
        first: Call<'static>,
        second: Call<'static>,
        message: &'static str,
        /// Retry-After at most.
        within: u64,
        format: Format,
    }
    let bob = |target: &'static str| Call {
        user: "bob",
        ..Call::alice(target)
    };
    let cases = [
        Case {
            name: "account per minute",
            set: |s| s.rate_limit_per_minute = 1,
            first: Call::alice("+15551230001"),
            second: Call::alice("+15551230002"),
            message: "Too many callback requests, please wait a minute.",
            within: 60,
            format: Format::Json,
        },
        Case {
            name: "account per day",
            set: |s| s.rate_limit_per_day = 1,
            first: Call::alice("+15551230001"),
            second: Call::alice("+15551230002"),
            message: "You have reached today's callback limit.",
            within: 86_400,
            format: Format::Xml,
        },
        Case {
            name: "target per minute",
            set: |s| s.target_limit_per_minute = 1,
            first: Call::alice("+15551230001"),
            second: bob("+15551230001"),
            message: "Too many callbacks to this number, please wait a minute.",
            within: 60,
            format: Format::Form,
        },
        Case {
            name: "target per day",
            set: |s| s.target_limit_per_day = 1,
            first: Call::alice("+15551230001"),
            second: bob("+15551230001"),
            message: "Too many callbacks to this number today.",
            within: 86_400,
            format: Format::Json,
        },
        Case {
            name: "all accounts per minute",
            set: |s| s.global_limit_per_minute = 1,
            first: Call::alice("+15551230001"),
            second: bob("+15551230002"),
            message: "The callback service is busy, please try again in a minute.",
            within: 60,
            format: Format::Xml,
        },
        Case {
            name: "all accounts per day",
            set: |s| s.global_limit_per_day = 1,
            first: Call::alice("+15551230001"),
            second: bob("+15551230002"),
            message: "The callback service has reached its daily limit.",
            within: 86_400,
            format: Format::Form,
        },
        Case {
            name: "callbacks in progress",
            set: |s| {
                s.max_concurrent_per_account = 1;
                s.concurrent_window = Duration::from_secs(600);
            },
            first: Call::alice("+15551230001"),
            second: Call::alice("+15551230002"),
            message: "Your earlier callbacks are still in progress, please wait.",
            within: 600,
            format: Format::Json,
        },
    ];
    let client = reqwest::Client::new();
    for case in cases {
        let env = guard_env(case.set);
        let (ingress, addr) = start_ingress(&env.config).await;
        ingress.wait_ready().await;
        let first = send(&client, addr, case.format, &case.first).await;
        assert_eq!(first.status, 200, "{}: {first:?}", case.name);
        let refused = send(&client, addr, case.format, &case.second).await;
        assert_eq!(refused.status, 429, "{}: {refused:?}", case.name);
        assert_eq!(refused.message, case.message, "{}", case.name);
        let wait = refused.retry_after.expect("Retry-After");
        assert!(
            (1..=case.within).contains(&wait),
            "{}: Retry-After {wait}",
            case.name
        );
        if case.format != Format::Xml {
            assert_eq!(
                refused.ty.as_deref(),
                Some("urn:relay:problem:rate-limited"),
                "{}",
                case.name
            );
        }
        ingress.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_within_the_window_succeeds_again_and_publishes_once() {
    // One callback a minute: a repeat that counted would be refused.
    let env = guard_env(|s| s.rate_limit_per_minute = 1);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let channel = env.channel().await;
    let client = reqwest::Client::new();
    for format in [Format::Form, Format::Json, Format::Xml] {
        // The app sends the same numbers however it formats them.
        let call = Call {
            target: if format == Format::Json {
                "+1 (555) 123-1234"
            } else {
                "+15551231234"
            },
            ..Call::alice("")
        };
        let answer = send(&client, addr, format, &call).await;
        assert_eq!(
            (answer.status, answer.message.as_str()),
            (200, "Calling you back, please wait."),
            "{format:?}"
        );
    }
    // Several repeats at once, after the first was accepted: each succeeds, none publishes.
    let repeats = (0..5).map(|_| {
        let client = client.clone();
        async move { send(&client, addr, Format::Json, &Call::alice("+15551231234")).await }
    });
    for answer in futures_util::future::join_all(repeats).await {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    // Another target is a new callback, which the limit of one a minute refuses: the repeats
    // did not count.
    let other = send(&client, addr, Format::Json, &Call::alice("+15557654321")).await;
    assert_eq!(other.status, 429, "{other:?}");

    let events = published(&env, &channel).await;
    let callbacks = callbacks(&events);
    assert_eq!(
        callbacks.len(),
        1,
        "one event for all the repeats: {events:?}"
    );
    assert_eq!(callbacks[0]["data"]["target"], "+15551231234");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_web_callbacks_fail_closed_while_other_routes_accept() {
    let mut redis = PrivateRedis::start().await;
    let mut env = guard_env(|_| {});
    env.config.redis.url = redis.url();
    env.config.redis.probe_interval = Duration::from_millis(50);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let client = reqwest::Client::new();
    let ok = send(&client, addr, Format::Json, &Call::alice("+15551231234")).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    redis.kill();
    for (i, format) in [Format::Json, Format::Xml, Format::Form]
        .into_iter()
        .enumerate()
    {
        let target = format!("+1555123120{i}");
        let refused = send(&client, addr, format, &Call::alice(&target)).await;
        assert_eq!(refused.status, 503, "{format:?}: {refused:?}");
        assert_eq!(refused.message, "Callback service temporarily unavailable");
        assert!(refused.retry_after.is_some(), "{refused:?}");
        if format != Format::Xml {
            assert_eq!(
                refused.ty.as_deref(),
                Some("urn:relay:problem:callback-unavailable")
            );
        }
        // Meanwhile a Voximplant callback is accepted (Redis only accelerates it).
        let vox = post_callbacks(addr, min_balance_body(7000 + i as u64), &[]).await;
        assert_eq!(vox.status(), 200);
    }

    // Redis is back: callbacks are accepted again once the breaker closes.
    redis.resume().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = send(&client, addr, Format::Json, &Call::alice("+15551239999")).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "callbacks never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ingress.stop().await;
}

/// The value of `series` in the metrics of the service behind `admin`, 0 when absent.
async fn child_metric(admin: SocketAddr, series: &str) -> f64 {
    series_value(&admin_metrics(admin).await, series)
}

const ARGON2_CHECKS: &str = r#"relay_ingress_acrobits_password_checks_total{scheme="argon2"}"#;

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_refuse_without_hashing_and_a_success_resets_the_name() {
    let mut env = guard_env(|s| {
        s.login_failures_per_user = 3;
        s.login_failures_per_address = 6;
        s.login_lockout = Duration::from_secs(600);
    });
    env.config.ingress.listen = free_port();
    let addr = env.config.ingress.listen;
    // A process of its own: its metrics count only this test's password checks.
    let ingress = env.spawn("relay-ingress").await;
    let client = reqwest::Client::new();
    let wrong = Call {
        password: "wrong",
        ..Call::alice("+15551231234")
    };
    let checks = || child_metric(ingress.admin, ARGON2_CHECKS);

    for _ in 0..2 {
        assert_eq!(send(&client, addr, Format::Json, &wrong).await.status, 401);
    }
    // The right password: accepted, and the name's two failures forgiven.
    let right = send(&client, addr, Format::Json, &Call::alice("+15551231234")).await;
    assert_eq!(right.status, 200, "{right:?}");
    assert_eq!(checks().await, 3.0);
    for _ in 0..3 {
        let refused = send(&client, addr, Format::Json, &wrong).await;
        assert_eq!(refused.status, 401, "three more fit after the reset");
        assert_eq!(refused.message, "Wrong user name or password.");
    }
    assert_eq!(checks().await, 6.0);

    // The name is locked: the fourth guess, and even the right password, are refused unhashed.
    let locked = send(&client, addr, Format::Xml, &wrong).await;
    assert_eq!(locked.status, 429, "{locked:?}");
    assert_eq!(
        locked.message,
        "Too many failed sign-in attempts, please try again later."
    );
    let wait = locked.retry_after.expect("Retry-After");
    assert!((1..=600).contains(&wait), "Retry-After {wait}");
    let right = send(&client, addr, Format::Json, &Call::alice("+15551231234")).await;
    assert_eq!(right.status, 429, "{right:?}");
    assert_eq!(right.ty.as_deref(), Some("urn:relay:problem:login-locked"));
    assert_eq!(checks().await, 6.0, "no hash for a locked-out name");

    // The address has counted 5 failures (the success forgave the name's, not the address's,
    // and did not count itself): one more from another name fills it.
    let mallory = |user| Call {
        user,
        password: "guess",
        ..Call::alice("+15551231234")
    };
    assert_eq!(
        send(&client, addr, Format::Form, &mallory("mallory"))
            .await
            .status,
        401,
        "an unknown name is checked like a known one"
    );
    assert_eq!(checks().await, 7.0);
    let address_locked = send(&client, addr, Format::Form, &mallory("mallory2")).await;
    assert_eq!(address_locked.status, 429, "{address_locked:?}");
    assert_eq!(
        address_locked.ty.as_deref(),
        Some("urn:relay:problem:login-locked")
    );
    let bob = Call {
        user: "bob",
        ..Call::alice("+15551231234")
    };
    assert_eq!(
        send(&client, addr, Format::Form, &bob).await.status,
        429,
        "every name from a locked-out address"
    );
    assert_eq!(checks().await, 7.0, "no hash for a locked-out address");
    assert_eq!(
        child_metric(
            ingress.admin,
            r#"relay_ingress_callbacks_refused_total{reason="locked_out_address"}"#
        )
        .await,
        2.0
    );
    ingress.terminate();
}

/// The pid of this test process's child that listens on `admin` (a service started with
/// `TestEnv::spawn`): its socket's inode, found among the child's open files.
fn pid_listening_on(admin: SocketAddr) -> u32 {
    let port = format!(":{:04X}", admin.port());
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, …, st (0A = LISTEN), …, inode
            if cols.len() > 9 && cols[1].ends_with(&port) && cols[3] == "0A" {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let parent = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(str::trim);
        if parent != Some(me.as_str()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.to_string_lossy() == *i)
            {
                return pid;
            }
        }
    }
    panic!("no child of this test listens on {admin}");
}

/// `VmHWM` (peak resident memory) of `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

/// What the flood may cost at most: the process before it plus, per permitted argon2 check,
/// its 19 MiB block and change, plus 48 MiB for 256 connections and the allocator's slack.
/// Before the bound, 128 such requests took 2.58 GB.
fn memory_bound(before: u64, permits: usize) -> u64 {
    before + permits as u64 * 24 * 1024 * 1024 + 48 * 1024 * 1024
}

// The measured figures are printed (`--nocapture`): they are part of what the test reports.
#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_logins_keeps_memory_bounded_and_other_routes_answering() {
    const FLOOD: usize = 256;
    // Lockouts off: what bounds the cost here is the hashing limit alone, at its defaults.
    let mut env = guard_env(|s| {
        s.hash_concurrency = AcrobitsSource::default().hash_concurrency;
        s.hash_queue_wait = AcrobitsSource::default().hash_queue_wait;
    });
    env.config.ingress.listen = free_port();
    let addr = env.config.ingress.listen;
    let permits = env.config.ingress.acrobits.as_ref().unwrap().hash_permits();
    let ingress = env.spawn("relay-ingress").await;
    let pid = pid_listening_on(ingress.admin);
    // Warm the process (one check of each kind) so that "before" is a working process.
    let client = reqwest::Client::new();
    assert_eq!(
        send(&client, addr, Format::Json, &Call::alice("+15551231234"))
            .await
            .status,
        200
    );
    assert_eq!(
        post_callbacks(addr, min_balance_body(1), &[])
            .await
            .status(),
        200
    );
    let before = peak_rss(pid);

    let started = Instant::now();
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            // A client each: 256 connections at once, as 256 attackers would open.
            let client = reqwest::Client::new();
            tokio::spawn(async move {
                let user = format!("attacker{i}");
                let call = Call {
                    user: &user,
                    password: "guess",
                    ..Call::alice("+15551231234")
                };
                send(&client, addr, Format::Json, &call).await
            })
        })
        .collect();
    // Meanwhile another route keeps answering.
    let mut latencies = Vec::new();
    let mut id = 100;
    while !flood.iter().all(tokio::task::JoinHandle::is_finished) {
        let t = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            post_callbacks(addr, min_balance_body(id), &[]),
        )
        .await
        .expect("a Voximplant callback answers within 5 s during the flood");
        assert_eq!(response.status(), 200);
        latencies.push(t.elapsed());
        id += 1;
    }
    let mut unauthorized = 0;
    let mut busy = 0;
    for answer in futures_util::future::join_all(flood).await {
        let answer = answer.unwrap();
        match answer.status {
            401 => unauthorized += 1,
            503 => {
                assert_eq!(answer.ty.as_deref(), Some("urn:relay:problem:busy"));
                assert_eq!(
                    answer.message,
                    "The service is busy, please try again shortly."
                );
                assert_eq!(answer.retry_after, Some(1));
                busy += 1;
            }
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    let flood_took = started.elapsed();
    let peak = peak_rss(pid);
    let checks = child_metric(ingress.admin, ARGON2_CHECKS).await;
    let bound = memory_bound(before, permits);
    latencies.sort();
    println!(
        "flood of {FLOOD} bad logins ({permits} argon2 permits): {unauthorized} × 401, \
         {busy} × 503 in {flood_took:?}; argon2 checks {checks}; peak RSS (VmHWM) {} MiB \
         (before the flood {} MiB, bound {} MiB); Voximplant callbacks meanwhile: {} answered, \
         median {:?}, max {:?}",
        peak / (1024 * 1024),
        before / (1024 * 1024),
        bound / (1024 * 1024),
        latencies.len(),
        latencies.get(latencies.len() / 2),
        latencies.last(),
    );
    assert_eq!(unauthorized + busy, FLOOD);
    assert!(busy > 0, "the flood outran the hashing slots: some got 503");
    assert_eq!(
        checks,
        (unauthorized + 1) as f64,
        "only the admitted requests were hashed (plus the warm-up)"
    );
    assert!(!latencies.is_empty(), "the other route was exercised");
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound of {} MiB",
        peak / (1024 * 1024),
        bound / (1024 * 1024)
    );
    ingress.terminate();
}
