//! The console's pages over HTTP, without a browser: paging and filters of the deliveries
//! page against real delivery records, and what an action without its CSRF token leaves
//! unchanged. (Masking is checked on a real call in `call_log.rs`; the browser tests are in
//! `console.rs`.)

use std::collections::BTreeSet;

use relay_core::config::{DestinationConfig, Signing};
use relay_e2e::browser::start_console;
use relay_e2e::operator::{Operator, Page};
use relay_e2e::*;

/// The job ids a deliveries page lists.
fn listed(page: &Page) -> Vec<String> {
    page.html
        .split("class=\"delivery\" href=\"/deliveries/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The link to the next page, if any.
fn older(page: &Page) -> Option<String> {
    let start = page.html.find("<div class=\"pager\"><a href=\"")? + 28;
    let end = page.html[start..].find('"')?;
    Some(
        page.html[start..start + end]
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deliveries_and_parked_pages_page_newest_first_and_filter_like_relayctl() {
    let accepting = Sink::start(&[]).await;
    let refusing = Sink::start(&[400, 400, 400]).await;
    let mut env = TestEnv::new();
    env.console();
    env.config.destinations.insert(
        "accepting".into(),
        DestinationConfig::new(&accepting.url, Signing::None, None),
    );
    env.config.destinations.insert(
        "refusing".into(),
        DestinationConfig::new(&refusing.url, Signing::None, None),
    );
    let delivery = start_delivery(&env.config).await;
    let ok_jobs = jobs_for("accepting", 55);
    let bad_jobs = jobs_for("refusing", 3);
    publish_jobs(&env, &ok_jobs).await;
    publish_jobs(&env, &bad_jobs).await;
    for job in &ok_jobs {
        env.wait_for_record(&job.id, "delivered").await;
    }
    for job in &bad_jobs {
        env.wait_for_record(&job.id, "dead").await;
    }
    let (console, addr) = start_console(&env.config).await;
    let operator = Operator::sign_in(addr).await;

    // 55 delivered: pages of at most 50, newest first, none twice, the pager's links followed
    // to the end. (A page ends at a millisecond boundary, so it may hold a few fewer than 50,
    // and the pager may offer one last, empty page.)
    let first = operator.get("/deliveries?destination=accepting").await;
    assert_eq!(first.status, 200);
    let mut seen = listed(&first);
    assert!(
        (41..=50).contains(&seen.len()),
        "a first page of up to 50: {}",
        seen.len()
    );
    let mut pages = 1;
    let mut next = older(&first);
    while let Some(link) = next {
        let page = operator.get(&link).await;
        assert_eq!(page.status, 200);
        let items = listed(&page);
        assert!(items.len() <= 50, "{}", items.len());
        seen.extend(items);
        pages += 1;
        assert!(pages <= 56, "the pager ends");
        next = older(&page);
    }
    assert!(pages >= 2, "55 deliveries take two pages at least");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no delivery twice");
    let expected: BTreeSet<&String> = ok_jobs.iter().map(|j| &j.id).collect();
    assert_eq!(unique, expected, "every delivery listed");
    assert!(
        first
            .html
            .contains("55 in the index: 55 delivered, 0 retrying, 0 dead")
    );

    // Filters: by status across destinations, by both, and a combination with nothing.
    let dead = operator.get("/deliveries?status=dead").await;
    let dead: BTreeSet<String> = listed(&dead).into_iter().collect();
    let refused: BTreeSet<String> = bad_jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(dead, refused);
    let both = operator
        .get("/deliveries?destination=refusing&status=dead")
        .await;
    assert_eq!(listed(&both).len(), 3);
    let none = operator
        .get("/deliveries?destination=accepting&status=dead")
        .await;
    assert!(listed(&none).is_empty() && none.html.contains("No delivery matches."));
    let bad = operator.get("/deliveries?status=lost").await;
    assert_eq!(bad.status, 400);

    // One delivery: its attempt with the status the sink answered.
    let job = &bad_jobs[0].id;
    let shown = operator.get(&format!("/deliveries/{job}")).await;
    assert_eq!(shown.status, 200);
    assert!(
        shown.html.contains("<td class=\"http-status\">400</td>"),
        "{}",
        shown.html
    );
    assert!(
        shown.html.contains("sink answered 400"),
        "the response excerpt, on request"
    );

    // The parked page lists them too, from the parked index the console fills, with the same
    // filters as `relayctl dead list`.
    let parked_ids = |page: &Page| -> BTreeSet<String> {
        page.html
            .split("<tr data-id=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let page = operator
            .get("/parked?queue=relay.dead.deliveries&destination=refusing")
            .await;
        if parked_ids(&page) == refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the parked jobs were never listed: {:?}",
            parked_ids(&page)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let other = operator
        .get("/parked?queue=relay.dead.deliveries&destination=accepting")
        .await;
    assert!(parked_ids(&other).is_empty());
    let by_reason = operator
        .get("/parked?queue=relay.dead.deliveries&reason=http_status")
        .await;
    assert_eq!(parked_ids(&by_reason), refused);
    // relay.unrouted holds the delivery outcome events no handler of this test takes, never
    // the parked jobs.
    let elsewhere = operator.get("/parked?queue=relay.unrouted").await;
    assert!(parked_ids(&elsewhere).is_disjoint(&refused));
    let unknown = operator.get("/parked?queue=relay.deliveries").await;
    assert_eq!(unknown.status, 400, "only a parking queue");

    console.stop().await;
    delivery.stop().await;
    drop((accepting, refusing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_without_its_csrf_token_is_refused_and_changes_nothing() {
    let mut env = TestEnv::new();
    env.console();
    env.config.destinations.insert(
        "helpdesk".into(),
        DestinationConfig::new("http://127.0.0.1:1/x", Signing::None, None),
    );
    let (console, addr) = start_console(&env.config).await;
    let operator = Operator::sign_in(addr).await;

    for form in [vec![], vec![("csrf", "not-the-token")]] {
        let refused = operator.post("/destinations/helpdesk/disable", &form).await;
        assert_eq!(refused.status, 403, "{form:?}");
        assert!(refused.html.contains("CSRF"));
    }
    let page = operator.get("/destinations").await;
    assert!(
        page.html.contains("enabled, breaker closed"),
        "still enabled"
    );

    // With the token it is done, and undone.
    let done = operator
        .post(
            "/destinations/helpdesk/disable",
            &[("csrf", &operator.csrf)],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(
        operator
            .get("/destinations")
            .await
            .html
            .contains("disabled in the console by ops")
    );
    let undone = operator
        .post("/destinations/helpdesk/enable", &[("csrf", &operator.csrf)])
        .await;
    assert_eq!(undone.status, 303);
    assert!(
        operator
            .get("/destinations")
            .await
            .html
            .contains("enabled, breaker closed")
    );

    // A purge must name its queue, whatever the token.
    let unconfirmed = operator
        .post(
            "/parked/purge",
            &[
                ("csrf", &operator.csrf),
                ("scope", "filtered"),
                ("queue", "relay.unrouted"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status, 400);
    console.stop().await;
}
