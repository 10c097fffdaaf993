//! The bench's own relay: a throwaway vhost and key prefix, the three services as child
//! processes (so their CPU and memory are theirs alone), configured by a generated file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use relay_core::config::{
    CallLogConfig, Config, DestinationConfig, EnvSecret, LogFormat, PlivoSource, Signing,
    VoximplantAccount,
};

use super::sink::HELPDESK_PATH;

/// The bench account's id.
pub(crate) const ACCOUNT_ID: u64 = 100_001;
/// Its API key (bench only).
pub(crate) const API_KEY: &str = "bench-api-key";
/// The callback salt (bench only).
pub(crate) const SALT: &str = "bench-salt";
/// The alert destination's signing secret (bench only).
pub(crate) const WEBHOOK_SECRET: &str = "whsec_YmVuY2gtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWFi";
/// The Plivo auth token the call callbacks are signed with (bench only).
pub(crate) const PLIVO_TOKEN: &str = "bench-plivo-token";
/// The helpdesk destination's Re:amaze signing secret (bench only).
pub(crate) const HELPDESK_SECRET: &str = "bench-helpdesk-secret";

/// The isolation scenario's healthy destination (the recording sink, this path).
pub(crate) const ISOLATION_B: &str = "isolation-b";
/// The isolation scenario's stuck destination (the holding sink).
pub(crate) const ISOLATION_A: &str = "isolation-a";
/// The path of [`ISOLATION_B`] at the recording sink.
pub(crate) const ISOLATION_B_PATH: &str = "/isolation-b";
/// How long delivery waits for the stuck destination: longer than any bench run, so its
/// requests stay held until the bench releases them and what the scenario measures is the
/// in-flight limit alone (not the attempt timeout and the breaker it would then open).
const STUCK_TIMEOUT: Duration = Duration::from_secs(1800);

/// Every bench secret: the environment variable the configuration names, and its value.
const SECRETS: [(&str, &str); 5] = [
    ("RELAY_BENCH_SALT", SALT),
    ("RELAY_BENCH_API_KEY", API_KEY),
    ("RELAY_BENCH_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("RELAY_BENCH_PLIVO_TOKEN", PLIVO_TOKEN),
    ("RELAY_BENCH_HELPDESK_SECRET", HELPDESK_SECRET),
];

/// A running relay service.
pub(crate) struct Service {
    pub(crate) name: &'static str,
    child: Child,
}

impl Service {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds used so far (user + system), from `/proc`.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Peak resident memory so far, in MiB (`VmHWM`).
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        memory_mib(self.pid(), "VmHWM:")
    }

    /// SIGTERM, then wait for the drain (killed after 30 s).
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drop kills it.
    }
}

impl Drop for Service {
    /// A service still running when its handle goes (the bench stopping early on an error) is
    /// killed, so the bench never leaves one behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU seconds process `pid` used so far (user + system), from `/proc`; 0 once it is gone.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks_per_second()
}

/// A memory figure of process `pid` in MiB: `field` of `/proc/<pid>/status` (`VmRSS:`,
/// `VmHWM:`); 0 once it is gone.
pub(crate) fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// USER_HZ: 100 on every Linux this runs on; `getconf` confirms when available (asked once).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    *TICKS
}

/// The bench's isolated relay environment.
pub(crate) struct BenchEnv {
    pub(crate) vhost: String,
    pub(crate) config: Config,
    pub(crate) config_path: PathBuf,
    pub(crate) ingress_url: String,
    bin_dir: PathBuf,
    log_dir: PathBuf,
    /// `TOKIO_WORKER_THREADS` for the services (None: tokio's default, one per core).
    pub(crate) service_threads: Option<usize>,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl BenchEnv {
    /// Creates the vhost and writes the configuration; `sink` receives the alerts and the
    /// helpdesk messages (and the isolation scenario's healthy destination), `stuck` is the
    /// isolation scenario's destination that never answers. Ingress takes Voximplant and Plivo
    /// callbacks; the worker runs the min-balance alert and the call log (its defaults: an
    /// answered call's messages never wait for `missed_grace`).
    pub(crate) fn create(
        sink: SocketAddr,
        stuck: SocketAddr,
        out_dir: &Path,
        redis_url: &str,
    ) -> anyhow::Result<Self> {
        let bin_dir = std::env::current_exe()?
            .parent()
            .context("relayctl has no directory")?
            .to_path_buf();
        for name in ["relay-ingress", "relay-worker", "relay-delivery"] {
            if !bin_dir.join(name).exists() {
                bail!(
                    "{name} is not next to relayctl in {}; build the workspace binaries first (cargo build --release --bins)",
                    bin_dir.display()
                );
            }
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let vhost = format!("relay-bench-{id}");
        relay_amqp::vhost::create(&vhost, "guest")?;

        let mut config = Config::default();
        config.amqp.url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
        // A Redis of the bench's own, so the outage run can stop it without disturbing anyone.
        config.redis.url = redis_url.to_owned();
        config.redis.key_prefix = format!("relay-bench:{id}:");
        config.telemetry.log_format = LogFormat::Json;
        config.telemetry.log_filter = "warn".to_owned();
        config.ingress.listen = free_port()?;
        config.ingress.admin_listen = free_port()?;
        config.ingress.public_base_url = format!("http://{}", config.ingress.listen);
        config.worker.admin_listen = free_port()?;
        config.delivery.admin_listen = free_port()?;
        config.ingress.voximplant.salt_env = Some(EnvSecret::with_value("RELAY_BENCH_SALT", SALT));
        config.ingress.voximplant.accounts = vec![VoximplantAccount {
            account_id: ACCOUNT_ID,
            api_key_env: EnvSecret::with_value("RELAY_BENCH_API_KEY", API_KEY),
        }];
        // No throttle: the scenario counts one alert at the sink per callback of one account.
        config.worker.min_balance_alert = Some(relay_core::config::MinBalanceAlertConfig {
            throttle: std::time::Duration::ZERO,
            ..Default::default()
        });
        config.destinations.insert(
            "alerts".to_owned(),
            DestinationConfig::new(
                format!("http://{sink}/alerts"),
                Signing::StandardWebhooks,
                Some(EnvSecret::with_value(
                    "RELAY_BENCH_WEBHOOK_SECRET",
                    WEBHOOK_SECRET,
                )),
            ),
        );
        config.ingress.plivo = Some(PlivoSource {
            auth_token_env: EnvSecret::with_value("RELAY_BENCH_PLIVO_TOKEN", PLIVO_TOKEN),
            main_auth_token_env: None,
            accept_v2: false,
            default_answer_xml: "<Response><Hangup/></Response>".to_owned(),
        });
        config.worker.call_log = Some(CallLogConfig::default());
        config.destinations.insert(
            "helpdesk".to_owned(),
            DestinationConfig::new(
                format!("http://{sink}{HELPDESK_PATH}"),
                Signing::ReamazeHmac,
                Some(EnvSecret::with_value(
                    "RELAY_BENCH_HELPDESK_SECRET",
                    HELPDESK_SECRET,
                )),
            ),
        );
        // The isolation scenario: B signed like the alerts (the sink verifies it), A unsigned
        // (the holding sink reads nothing); both with the default in-flight limit.
        config.destinations.insert(
            ISOLATION_B.to_owned(),
            DestinationConfig::new(
                format!("http://{sink}{ISOLATION_B_PATH}"),
                Signing::StandardWebhooks,
                Some(EnvSecret::with_value(
                    "RELAY_BENCH_WEBHOOK_SECRET",
                    WEBHOOK_SECRET,
                )),
            ),
        );
        let mut stuck = DestinationConfig::new(format!("http://{stuck}/"), Signing::None, None);
        stuck.timeout = STUCK_TIMEOUT;
        config.destinations.insert(ISOLATION_A.to_owned(), stuck);
        std::fs::create_dir_all(out_dir)?;
        let config_path = out_dir.join("bench-relay.toml");
        std::fs::write(&config_path, toml::to_string(&config)?)?;
        Ok(Self {
            vhost,
            ingress_url: config.ingress.public_base_url.clone(),
            config,
            config_path,
            bin_dir,
            log_dir: out_dir.to_path_buf(),
            service_threads: None,
        })
    }

    /// Starts `name` and waits until its `/readyz` answers 200.
    pub(crate) async fn start(&self, name: &'static str) -> anyhow::Result<Service> {
        let admin = match name {
            "relay-ingress" => self.config.ingress.admin_listen,
            "relay-worker" => self.config.worker.admin_listen,
            _ => self.config.delivery.admin_listen,
        };
        let log = std::fs::File::create(self.log_dir.join(format!("{name}.log")))?;
        let mut command = Command::new(self.bin_dir.join(name));
        command.env_remove("TOKIO_WORKER_THREADS");
        if let Some(threads) = self.service_threads {
            command.env("TOKIO_WORKER_THREADS", threads.to_string());
        }
        let child = command
            .env("RELAY_CONFIG", &self.config_path)
            .envs(SECRETS)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let service = Service { name, child };
        let client = reqwest::Client::new();
        let url = format!("http://{admin}/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(service);
            }
            if Instant::now() > deadline {
                service.stop();
                bail!(
                    "{name} did not become ready; see {}",
                    self.log_dir.join(format!("{name}.log")).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A channel on the bench vhost (the connection lives as long as the process).
    pub(crate) async fn channel(&self) -> anyhow::Result<lapin::Channel> {
        crate::dead::channel(&self.config).await
    }
}

impl Drop for BenchEnv {
    fn drop(&mut self) {
        if let Err(e) = relay_amqp::vhost::delete(&self.vhost) {
            eprintln!("bench cleanup: {e}");
        }
        let _ = std::fs::remove_file(&self.config_path);
        // The keys live in the bench's own Redis, which keeps nothing on disk and stops with
        // the bench.
    }
}
