//! A headless Chromium driven over WebDriver, for the console's browser tests, and the console
//! itself started in-process.
//!
//! [`Browser::start`] runs Debian's `chromedriver` (installed by `scripts/ensure-browser`) as a
//! child process on a free loopback port and opens one Chromium session on a profile of its
//! own. Dropping the [`Browser`] ends that session (chromedriver closes its Chromium), kills
//! that chromedriver by its PID and removes the profile: no other process is touched.
//!
//! The helpers wait on the page itself (an element appearing, a text changing), polling with
//! a deadline, never sleeping a fixed time; a helper that gives up panics with the page's URL
//! and an excerpt of what it shows.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use relay_core::config::{Config, ConsoleUser};
use tokio_util::sync::CancellationToken;

use crate::{Running, TestEnv};

/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The console user every test environment with a console has.
pub const CONSOLE_USER: &str = "ops";
/// Its password.
pub const CONSOLE_PASSWORD: &str = "test-password";

/// Chromium's flags: headless, no sandbox (tests may run as root in a container), no GPU, no
/// `/dev/shm` (small in containers), nothing fetched in the background, one window size so
/// that screenshots are comparable. The profile directory is added per browser.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// How long chromedriver may take to answer `/status` as ready.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How long an element the page should show may take to appear.
const ELEMENT_WAIT: Duration = Duration::from_secs(5);
/// How long a click or a form may take to bring the next page.
const PAGE_LOAD: Duration = Duration::from_secs(15);
/// How often the page is looked at again while waiting.
const POLL: Duration = Duration::from_millis(50);

/// One headless Chromium with its own chromedriver and profile.
pub struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    /// The WebDriver session, until it is ended.
    session: Option<String>,
    /// Chromium's profile and chromedriver's log.
    dir: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port, waits until it is ready and opens a
    /// Chromium session. Panics (telling to run `scripts/ensure-browser`) when chromedriver or
    /// Chromium is not installed.
    pub async fn start() -> Self {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).is_file(),
                "{binary} is missing: run scripts/ensure-browser to install Chromium and \
                 chromedriver (Debian's chromium and chromium-driver) for the console's browser tests"
            );
        }
        let dir = std::env::temp_dir().join(format!(
            "relay-e2e-browser-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).expect("create the browser profile directory");
        let log = dir.join("chromedriver.log");
        let port = free_port();
        let driver = match Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                panic!("cannot run {CHROMEDRIVER} ({e}): run scripts/ensure-browser to install it")
            }
        };
        // From here on a panic drops `guard`, which kills the driver and removes `dir`.
        let mut guard = DriverGuard {
            driver: Some(driver),
            dir: dir.clone(),
        };
        wait_for_driver(port, &mut guard, &log).await;

        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::rustls()
            .expect("the TLS roots of the WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver did not open a Chromium session: {e}\n{}",
                    tail(&log)
                )
            });
        let session = client.session_id().await.expect("the WebDriver session id");
        let driver = guard.driver.take().expect("the driver is still ours");
        Self {
            client,
            driver,
            port,
            session,
            dir,
        }
    }

    /// The WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The first element matching `css`, waiting up to a few seconds for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + ELEMENT_WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("no element `{css}` on the page\n{}", self.describe().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every element matching `css` now (none is not an error).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("cannot look for `{css}`: {e}"))
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// Types `text` into the field `css` (emptied first).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear `{css}`: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    /// Clicks the element `css`; a click on a link or a submit button returns once the next
    /// page has loaded.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        let navigates = navigates(&element).await;
        let page = self.page().await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
        if navigates {
            self.wait_for_next_page(page, &format!("clicking `{css}`"))
                .await;
        }
    }

    /// Submits the form `form_css` as a user would: clicks its submit button, or presses Enter
    /// in its first field when it has none; returns once the next page has loaded.
    pub async fn submit(&self, form_css: &str) {
        let form = self.find(form_css).await;
        let page = self.page().await;
        let button = form
            .find(Locator::Css(
                "button[type=submit], button:not([type]), input[type=submit]",
            ))
            .await;
        match button {
            Ok(button) => button.click().await,
            Err(_) => {
                let field = form
                    .find(Locator::Css("input:not([type=hidden])"))
                    .await
                    .unwrap_or_else(|e| panic!("`{form_css}` has no button and no field: {e}"));
                field.send_keys(&fantoccini::key::Key::Enter).await
            }
        }
        .unwrap_or_else(|e| panic!("cannot submit `{form_css}`: {e}"));
        self.wait_for_next_page(page, &format!("submitting `{form_css}`"))
            .await;
    }

    /// The current document's root element, to tell when it has been replaced.
    async fn page(&self) -> Element {
        self.client
            .find(Locator::Css("html"))
            .await
            .unwrap_or_else(|e| panic!("the page has no root element: {e}"))
    }

    /// Waits until `before` (a root element) has gone, i.e. the browser left that page: the
    /// server may take its time (a sign-in hashes the password), and WebDriver does not wait
    /// for a form's answer by itself.
    async fn wait_for_next_page(&self, before: Element, what: &str) {
        let deadline = tokio::time::Instant::now() + PAGE_LOAD;
        while before.tag_name().await.is_ok() {
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{what} did not lead to another page within {PAGE_LOAD:?}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
        // Commands after a navigation wait for the new document to load; this one makes sure
        // it has begun to exist.
        let _ = self.page().await;
    }

    /// The visible text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("cannot read `{css}`: {e}"))
    }

    /// The visible texts of every element matching `css`, in page order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.find_all(css).await {
            texts.push(
                element
                    .text()
                    .await
                    .unwrap_or_else(|e| panic!("cannot read `{css}`: {e}")),
            );
        }
        texts
    }

    /// The attribute `name` of the element `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("cannot read `{name}` of `{css}`: {e}"))
    }

    /// Waits until the element `css` shows a text containing `needle` (the page may reload
    /// itself meanwhile), and returns that text; panics after `timeout` with what it showed.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            // A page that refreshes itself may replace the element between find and read.
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = Some(text);
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "`{css}` never showed {needle:?} within {timeout:?} (last: {last:?})\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reloads the page until `done` holds of it, for pages that show background work without
    /// refreshing themselves; panics after `timeout` with `what`.
    pub async fn reload_until<F>(&self, what: &str, timeout: Duration, mut done: F)
    where
        F: AsyncFnMut(&Self) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(self).await {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "never within {timeout:?}: {what}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.client
                .refresh()
                .await
                .unwrap_or_else(|e| panic!("cannot reload the page: {e}"));
        }
    }

    /// The current URL.
    pub async fn current_url(&self) -> url::Url {
        self.client
            .current_url()
            .await
            .expect("the browser's current URL")
    }

    /// The path of the current URL (without its query).
    pub async fn current_path(&self) -> String {
        self.current_url().await.path().to_owned()
    }

    /// The value of the cookie `name` the browser holds for the current page, if any.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .expect("the browser's cookies")
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// Saves a PNG of the window as `target/console-screenshots/<name>.png`, and also as
    /// `docs/console/<name>.png` when `RELAY_UPDATE_SCREENSHOTS=1`. Returns the first path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("cannot take the screenshot {name}: {e}"));
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_relative() { root.join(t) } else { t })
            .unwrap_or_else(|| root.join("target"));
        let mut dirs = vec![target.join("console-screenshots")];
        if std::env::var("RELAY_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            dirs.push(root.join("docs/console"));
        }
        for dir in &dirs {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let path = dir.join(format!("{name}.png"));
            std::fs::write(&path, &png)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        dirs[0].join(format!("{name}.png"))
    }

    /// Signs in to the console at `console` as [`CONSOLE_USER`] and waits for the page it
    /// lands on.
    pub async fn sign_in(&self, console: SocketAddr) {
        self.goto(&format!("http://{console}/login")).await;
        self.fill("form#login input[name=username]", CONSOLE_USER)
            .await;
        self.fill("form#login input[name=password]", CONSOLE_PASSWORD)
            .await;
        self.click("#sign-in").await;
        assert_ne!(
            self.current_path().await,
            "/login",
            "signing in failed\n{}",
            self.describe().await
        );
    }

    /// Ends the WebDriver session (Chromium closes) now rather than on drop.
    pub async fn close(mut self) {
        if self.session.take().is_some() {
            let _ = self.client.clone().close().await;
        }
    }

    /// The URL and the start of the page's text, for failure messages.
    async fn describe(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let excerpt: String = text.chars().take(1500).collect();
        format!("page {url}:\n{excerpt}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver closes its Chromium when the session ends; killing the driver alone
        // would leave Chromium running. Synchronous, as drop cannot await.
        if let Some(session) = self.session.take() {
            delete_session(self.port, &session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills the chromedriver (by its PID) and removes the directory if start-up fails half-way.
struct DriverGuard {
    driver: Option<Child>,
    dir: PathBuf,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether clicking `element` leaves the page: a link with an `href`, or a button that
/// submits its form.
async fn navigates(element: &Element) -> bool {
    let tag = element
        .tag_name()
        .await
        .unwrap_or_default()
        .to_ascii_lowercase();
    let kind = element
        .attr("type")
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match tag.as_str() {
        "a" => element.attr("href").await.ok().flatten().is_some(),
        "button" => kind.is_empty() || kind == "submit",
        "input" => kind == "submit" || kind == "image",
        _ => false,
    }
}

/// Waits until chromedriver on `port` reports ready, or panics with its log.
async fn wait_for_driver(port: u16, guard: &mut DriverGuard, log: &Path) {
    let url = format!("http://127.0.0.1:{port}/status");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + DRIVER_START;
    loop {
        if let Some(driver) = guard.driver.as_mut()
            && let Ok(Some(status)) = driver.try_wait()
        {
            panic!("chromedriver exited at start ({status})\n{}", tail(log));
        }
        if let Ok(response) = http.get(&url).send().await
            && let Ok(status) = response.json::<serde_json::Value>().await
            && status["value"]["ready"] == true
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver on port {port} was not ready within {DRIVER_START:?}\n{}",
            tail(log)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `DELETE /session/<id>` to chromedriver, over a plain blocking connection (bounded).
fn delete_session(port: u16, session: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // The answer comes once Chromium has quit; the connection then closes.
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The end of chromedriver's log, for failure messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    format!(
        "chromedriver log ({}):\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

impl TestEnv {
    /// Configures `[console]`: on loopback port 0, with the user [`CONSOLE_USER`] whose
    /// password is [`CONSOLE_PASSWORD`].
    pub fn console(&mut self) {
        let hash = relay_signing::password::hash_argon2(CONSOLE_PASSWORD)
            .expect("hash the console password");
        let password_hash_env = self.secret("RELAY_TEST_CONSOLE_HASH", &hash);
        self.config.console.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        self.config.console.users = vec![ConsoleUser {
            name: CONSOLE_USER.into(),
            password_hash_env,
        }];
    }
}

/// Starts relay-console on `config` (see [`TestEnv::console`]) and waits until it is ready;
/// returns it and the address of its pages (which also serves `/readyz`). Set
/// `config.console.services` to the relay's admin addresses for the overview's rates.
pub async fn start_console(config: &Config) -> (Running, SocketAddr) {
    let console = relay_console::Console::build(config.clone())
        .await
        .expect("console builds");
    let addr = console.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            console.run_until_stopped(stop).await.expect("console runs");
        }
    });
    let running = Running {
        stop,
        task,
        admin: addr,
    };
    running.wait_ready().await;
    (running, addr)
}
