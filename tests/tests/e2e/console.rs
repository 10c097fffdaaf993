//! The operator console in a real browser: headless Chromium over WebDriver
//! (`relay_e2e::browser`), the console and the relay in-process against the real RabbitMQ and
//! Redis, the helpdesk and destinations real HTTP servers on loopback. Each test signs in as an
//! operator would, clicks through server-rendered pages, and checks the outcome where it
//! happens (a request reaching the sink, a destination's state in Redis).
//!
//! Screenshots of the pages go to `target/console-screenshots/` (and to `docs/console/` with
//! `RELAY_UPDATE_SCREENSHOTS=1`).

use std::time::Duration;

use relay_e2e::browser::{Browser, CONSOLE_PASSWORD, CONSOLE_USER, start_console};
use relay_e2e::*;

const WAIT: Duration = Duration::from_secs(20);
/// The customer of the played call, and how an operator might type the number.
const CUSTOMER: &str = "15105559999";
const CUSTOMER_TYPED: &str = "+1 510 555 9999";
const CHANNEL: &str = "15550009999";
const AGENT: &str = "15550002000";
const DEAD_DELIVERIES: &str = "relay.dead.deliveries";

/// The console's overview reads the relay's counters from their admin ports.
fn read_rates_of(config: &mut relay_core::config::Config, relay: &Relay) {
    let services = &mut config.console.services;
    services.ingress = Some(format!("http://{}", relay.ingress.admin));
    services.worker = Some(format!("http://{}", relay.worker.admin));
    services.delivery = Some(format!("http://{}", relay.delivery.admin));
}

/// The value of the `href` of `css` as a path (links may be relative or absolute).
async fn href_path(browser: &Browser, css: &str) -> String {
    let href = browser
        .attr(css, "href")
        .await
        .unwrap_or_else(|| panic!("`{css}` has no href"));
    match url::Url::parse(&href) {
        Ok(url) => url.path().to_owned(),
        Err(_) => href,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_user_is_sent_to_sign_in_and_back_after_it() {
    let mut env = TestEnv::new();
    env.console();
    let (console, addr) = start_console(&env.config).await;
    let browser = Browser::start().await;

    browser.goto(&format!("http://{addr}/calls")).await;
    let at = browser.current_url().await;
    assert_eq!(at.path(), "/login", "a page without a session: {at}");
    let next: Vec<(String, String)> = at.query_pairs().into_owned().collect();
    assert_eq!(next, [("next".to_owned(), "/calls".to_owned())], "{at}");
    assert!(browser.exists("form#login input[name=csrf]").await);
    assert_eq!(
        browser
            .attr("form#login input[name=password]", "type")
            .await
            .as_deref(),
        Some("password")
    );
    assert_eq!(browser.cookie("relay_console").await, None);

    // A wrong password: the form again, with the error, and no session.
    browser
        .fill("form#login input[name=username]", CONSOLE_USER)
        .await;
    browser
        .fill("form#login input[name=password]", "not-the-password")
        .await;
    browser.click("#sign-in").await;
    assert_eq!(browser.current_path().await, "/login");
    let error = browser.text("p.error").await;
    assert!(!error.is_empty(), "the error is shown");
    assert_eq!(browser.cookie("relay_console").await, None);

    // The right one: straight back to the page asked for.
    browser
        .fill("form#login input[name=username]", CONSOLE_USER)
        .await;
    browser
        .fill("form#login input[name=password]", CONSOLE_PASSWORD)
        .await;
    browser.click("#sign-in").await;
    assert_eq!(browser.current_path().await, "/calls");
    assert!(browser.cookie("relay_console").await.is_some());
    assert!(!browser.exists("form#login").await);

    // Signing out ends the session: the next page asks to sign in again.
    browser.goto(&format!("http://{addr}/")).await;
    browser.submit("form#logout").await;
    browser.goto(&format!("http://{addr}/destinations")).await;
    assert_eq!(browser.current_path().await, "/login");
    browser.close().await;
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_call_by_number_and_sees_its_helpdesk_messages_delivered() {
    let helpdesk = Helpdesk::start(HELPDESK_SECRET).await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.plivo();
    env.helpdesk_to(&helpdesk.url);
    env.config.worker.call_log.as_mut().unwrap().default_region = Some("US".into());
    env.console();
    let relay = Relay::start(&env.config).await;
    read_rates_of(&mut env.config, &relay);
    let (console, addr) = start_console(&env.config).await;

    // An answered inbound call, signed as Plivo signs it: answer, the agent's leg, hangup.
    let call = uuid::Uuid::now_v7().to_string();
    let inbound = |extra: &[(&'static str, &'static str)]| {
        let mut params: Vec<(String, String)> = [
            ("CallUUID", call.as_str()),
            ("From", CUSTOMER),
            ("To", CHANNEL),
            ("Direction", "inbound"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if extra.iter().any(|(k, _)| *k == "DialAction") {
            params.push(("DialALegUUID".into(), call.clone()));
        }
        params
    };
    for (route, params) in [
        (
            "/v1/plivo/answer",
            inbound(&[("CallStatus", "in-progress")]),
        ),
        (
            "/v1/plivo/status",
            inbound(&[
                ("CallStatus", "in-progress"),
                ("Event", "DialAnswer"),
                ("DialAction", "answer"),
                ("DialBLegStatus", "answer"),
                ("DialBLegUUID", "agent-leg-1"),
                ("DialBLegTo", AGENT),
            ]),
        ),
        (
            "/v1/plivo/hangup",
            inbound(&[("CallStatus", "completed"), ("Duration", "65")]),
        ),
    ] {
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = plivo_callback(relay.addr, route, &pairs).await;
        assert_eq!(response.status(), 200, "{route}");
    }
    let thread = format!("plivo:{call}");
    helpdesk.wait_for_thread(&thread, 3, WAIT).await;

    let browser = Browser::start().await;
    browser.sign_in(addr).await;
    browser.goto(&format!("http://{addr}/calls")).await;
    browser
        .fill("form#search input[name=q]", CUSTOMER_TYPED)
        .await;
    browser.submit("form#search").await;
    assert_eq!(browser.current_path().await, "/calls");
    let link = format!("table#calls tbody tr a.session[href*='{call}']");
    browser
        .reload_until(
            "the call is listed under the customer's number",
            WAIT,
            async |b| b.exists(&link).await,
        )
        .await;
    let rows = browser.text("table#calls tbody").await;
    assert!(
        !rows.contains(&format!("+{CUSTOMER}")),
        "numbers are masked by default: {rows}"
    );
    assert!(rows.contains('•'), "a masked number is shown: {rows}");
    browser.screenshot("calls").await;

    // The session: its timeline, and every helpdesk message delivered.
    let session_path = href_path(&browser, &link).await;
    assert!(session_path.starts_with("/calls/"), "{session_path}");
    browser.click(&link).await;
    assert_eq!(browser.current_path().await, session_path);
    let session_id = session_path.trim_start_matches("/calls/").to_owned();
    let session_id = percent_decoded(&session_id);
    let title = browser.text("h1").await;
    assert!(
        title.contains(&session_id) || title.contains(&call),
        "the title names the session {session_id}: {title}"
    );
    assert!(
        browser.find_all("ol#timeline li").await.len() >= 3,
        "the call's events are on its timeline"
    );
    browser
        .reload_until(
            "the three helpdesk messages are delivered",
            WAIT,
            async |b| {
                let statuses = b.texts("table#messages tbody tr td.status").await;
                statuses.len() == 3 && statuses.iter().all(|s| s.trim() == "delivered")
            },
        )
        .await;
    let attempts = browser.texts("table#messages tbody tr td.attempts").await;
    assert_eq!(attempts.len(), 3);
    let page = browser.text("main").await;
    assert!(
        !page.contains(CUSTOMER),
        "the call page masks the number everywhere, message texts too: {page}"
    );
    browser.screenshot("call").await;

    // One message's delivery: its attempt, answered 200 by the helpdesk.
    let delivery_link = "table#messages tbody tr a.delivery";
    let delivery_path = href_path(&browser, delivery_link).await;
    assert!(delivery_path.starts_with("/deliveries/"), "{delivery_path}");
    browser.click(delivery_link).await;
    assert_eq!(browser.current_path().await, delivery_path);
    let attempts = browser.texts("table#attempts tbody tr").await;
    assert!(!attempts.is_empty(), "the delivery has its attempt");
    assert!(
        attempts.iter().any(|a| a.contains("200")),
        "the helpdesk answered 200: {attempts:?}"
    );
    browser.screenshot("delivery").await;

    // Revealing shows the number as it is.
    browser
        .goto(&format!("http://{addr}/calls?q=%2B{CUSTOMER}&reveal=1"))
        .await;
    let rows = browser.text("table#calls tbody").await;
    assert!(rows.contains(&format!("+{CUSTOMER}")), "revealed: {rows}");

    browser.close().await;
    console.stop().await;
    relay.stop().await;
}

/// `text` with its `%XX` escapes decoded.
fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_delivery_is_replayed_by_clicking_and_reaches_the_sink() {
    // The destination refuses the job with a 400 (parked at once, never retried), then
    // accepts everything.
    let mut sink = Sink::start(&[400]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    env.console();
    let jobs = jobs_for("alerts", 1);
    let job = &jobs[0];
    publish_jobs(&env, &jobs).await;
    let delivery = start_delivery(&env.config).await;
    let refused = sink.next(WAIT).await.expect("the first attempt");
    assert_eq!(refused.header("idempotency-key"), Some(job.id.as_str()));
    env.wait_for_record(&job.id, "dead").await;
    let channel = env.channel().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.queue_len(&channel, DEAD_DELIVERIES).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (console, addr) = start_console(&env.config).await;
    let browser = Browser::start().await;
    browser.sign_in(addr).await;
    browser
        .goto(&format!("http://{addr}/parked?queue={DEAD_DELIVERIES}"))
        .await;
    let row = format!("table#parked tbody tr[data-id='{}']", job.id);
    browser
        .reload_until("the parked job is listed", WAIT, async |b| {
            b.exists(&row).await
        })
        .await;
    assert!(browser.exists("form#replay-filtered").await);
    assert!(browser.exists("form#purge-form input[name=confirm]").await);
    for form in ["#replay-form", "#replay-filtered", "#purge-form"] {
        assert!(
            browser
                .exists(&format!("form{form} input[name=csrf]"))
                .await,
            "{form} carries its CSRF token"
        );
    }
    browser.screenshot("parked").await;

    let checkbox = format!(
        "form#replay-form input[type=checkbox][name=id][value='{}']",
        job.id
    );
    browser.click(&checkbox).await;
    assert_eq!(
        browser.find(&checkbox).await.is_selected().await.ok(),
        Some(true)
    );
    browser.click("#replay-selected").await;
    let path = browser.current_path().await;
    assert!(
        path.starts_with("/parked/jobs/"),
        "a replay job page: {path}"
    );
    browser.wait_for_text("#job-state", "done", WAIT).await;
    let progress = browser.text("#job-progress").await;
    assert!(progress.contains('1'), "one message replayed: {progress}");

    let replayed = sink
        .next(WAIT)
        .await
        .expect("the replayed job reaches the sink");
    assert_eq!(replayed.header("idempotency-key"), Some(job.id.as_str()));
    assert_eq!(&replayed.body[..], br#"{"n":0}"#);
    env.wait_for_record(&job.id, "delivered").await;
    assert_eq!(env.queue_len(&channel, DEAD_DELIVERIES).await, 0);
    assert_eq!(sink.count(), 2, "one refusal, one replay");

    browser.close().await;
    console.stop().await;
    delivery.stop().await;
}

/// The destination `name`'s row on the Destinations page: its toggle's label.
async fn toggle_of(browser: &Browser, name: &str) -> String {
    browser
        .text(&format!(
            "table#destinations tbody tr[data-name='{name}'] button.toggle"
        ))
        .await
}

/// Whether `name` is disabled, as Redis holds it.
async fn disabled(env: &TestEnv, name: &str) -> bool {
    let stop = tokio_util::sync::CancellationToken::new();
    let store = relay_store::Store::start(
        &env.config.redis,
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    assert!(store.wait_connected(WAIT).await);
    let off = store.disabled_destinations().await.unwrap();
    stop.cancel();
    off.contains_key(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    env.console();
    let (console, addr) = start_console(&env.config).await;
    let browser = Browser::start().await;
    browser.sign_in(addr).await;
    browser.goto(&format!("http://{addr}/destinations")).await;
    assert_eq!(toggle_of(&browser, "alerts").await, "Disable");
    let cookie = browser
        .cookie("relay_console")
        .await
        .expect("the session cookie");

    // The operator's own session, but a form that did not come from the console's page.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("http://{addr}/destinations/alerts/disable");
    for body in ["", "csrf=", "csrf=forged-token"] {
        let refused = http
            .post(&url)
            .header("cookie", format!("relay_console={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "body {body:?}");
        let page = refused.text().await.unwrap();
        let problem = page
            .split("<h1 id=\"problem\">")
            .nth(1)
            .and_then(|rest| rest.split("</h1>").next())
            .unwrap_or_else(|| panic!("an h1#problem: {page}"));
        assert!(problem.contains("CSRF"), "{problem}");
    }
    // Without the session cookie it is not even considered.
    let anonymous = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged-token")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert!(!disabled(&env, "alerts").await, "nothing changed in Redis");
    browser.goto(&format!("http://{addr}/destinations")).await;
    assert_eq!(toggle_of(&browser, "alerts").await, "Disable");

    // The same action from the page, with its token, does change it (and back).
    let toggle = "table#destinations tbody tr[data-name='alerts'] button.toggle";
    browser.click(toggle).await;
    assert_eq!(browser.current_path().await, "/destinations");
    assert_eq!(toggle_of(&browser, "alerts").await, "Enable");
    assert!(disabled(&env, "alerts").await);
    browser.click(toggle).await;
    assert_eq!(toggle_of(&browser, "alerts").await, "Disable");
    assert!(!disabled(&env, "alerts").await);

    browser.close().await;
    console.stop().await;
}

/// Checks what every signed-in page has: the navigation, the sign-out form, a CSRF token in
/// every POST form.
async fn check_chrome(browser: &Browser, page: &str) {
    let mut links = Vec::new();
    for a in browser.find_all("header nav a").await {
        let href = a.attr("href").await.unwrap().unwrap_or_default();
        links.push(match url::Url::parse(&href) {
            Ok(url) => url.path().to_owned(),
            Err(_) => href,
        });
    }
    assert_eq!(
        links,
        [
            "/",
            "/calls",
            "/deliveries",
            "/parked",
            "/destinations",
            "/alerts"
        ],
        "{page}: the navigation"
    );
    assert!(
        browser
            .exists("form#logout[method=post][action='/logout'] input[type=hidden][name=csrf]")
            .await,
        "{page}: the sign-out form"
    );
    // Every form that acts (POST) carries the session's token; a GET form (search, filters)
    // changes nothing and would only leak the token into URLs.
    for form in browser.find_all("form").await {
        let method = form.attr("method").await.unwrap().unwrap_or_default();
        if !method.eq_ignore_ascii_case("post") {
            continue;
        }
        let token = form
            .find(fantoccini::Locator::Css("input[type=hidden][name=csrf]"))
            .await;
        let id = form.attr("id").await.unwrap().unwrap_or_default();
        assert!(token.is_ok(), "{page}: form {id:?} has no CSRF token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_for_a_signed_in_operator() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    env.console();
    let relay = Relay::start(&env.config).await;
    read_rates_of(&mut env.config, &relay);

    // One low-balance alert fires and reaches its notifier.
    let response = post_callbacks(relay.addr, min_balance_body(1), &[]).await;
    assert_eq!(response.status(), 200);
    sink.next(WAIT).await.expect("the alert is sent");

    let (console, addr) = start_console(&env.config).await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/login")).await;
    assert!(browser.exists("form#login").await);
    browser.screenshot("login").await;
    browser.sign_in(addr).await;
    assert_eq!(browser.current_path().await, "/");

    // Overview.
    assert_eq!(browser.text("h1").await, "Overview");
    for part in [
        "#events-in",
        "#deliveries-out",
        "table#queues",
        "table#breakers",
        "#redis",
    ] {
        assert!(browser.exists(part).await, "the overview shows {part}");
    }
    let queues = browser.text("table#queues").await;
    assert!(queues.contains(DEAD_DELIVERIES), "{queues}");
    let breakers = browser.text("table#breakers").await;
    assert!(breakers.contains("alerts"), "{breakers}");
    check_chrome(&browser, "overview").await;
    browser.screenshot("overview").await;

    // Destinations.
    browser.click("header nav a[href='/destinations']").await;
    assert_eq!(browser.current_path().await, "/destinations");
    assert!(
        browser
            .exists("table#destinations tbody tr[data-name='alerts'] form[method=post][action='/destinations/alerts/disable'] button.toggle")
            .await
    );
    check_chrome(&browser, "destinations").await;
    browser.screenshot("destinations").await;

    // Alerts: the low balance is firing, and its notice was sent to `alerts`.
    browser.click("header nav a[href='/alerts']").await;
    assert_eq!(browser.current_path().await, "/alerts");
    browser
        .reload_until("the alert is shown firing", WAIT, async |b| {
            b.text("table#firing")
                .await
                .contains("VoximplantLowBalance")
        })
        .await;
    let firing = browser.text("table#firing tbody").await;
    assert!(firing.contains(&ACCOUNT_ID.to_string()), "{firing}");
    assert!(browser.exists("table#resolved").await);
    let notices = browser.text("table#notices tbody").await;
    assert!(
        notices.contains("VoximplantLowBalance") && notices.contains("alerts"),
        "{notices}"
    );
    check_chrome(&browser, "alerts").await;
    browser.screenshot("alerts").await;

    // Deliveries: the alert's delivery is listed.
    browser.click("header nav a[href='/deliveries']").await;
    assert_eq!(browser.current_path().await, "/deliveries");
    browser
        .reload_until("the alert's delivery is listed", WAIT, async |b| {
            !b.find_all("table#deliveries tbody tr").await.is_empty()
        })
        .await;
    let deliveries = browser.text("table#deliveries tbody").await;
    assert!(deliveries.contains("alerts"), "{deliveries}");
    check_chrome(&browser, "deliveries").await;
    browser.screenshot("deliveries").await;

    browser.close().await;
    console.stop().await;
    relay.stop().await;
}
