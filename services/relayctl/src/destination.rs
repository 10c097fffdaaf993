//! `relayctl destination`: the configured destinations and whether delivery sends to them. A
//! destination that answered 410 Gone is disabled for every delivery process until an operator
//! enables it again here; its jobs wait in `relay.dead.deliveries` (reason
//! `destination_disabled` or `gone`) for `relayctl dead replay`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use relay_core::config::Config;
use relay_store::{Disabled, Store};

/// `relayctl destination …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DestinationCommand {
    /// Each configured destination: URL, signing, secret source and age, enabled or disabled.
    List,
    /// Send to a destination again (after it answered 410 Gone, or was disabled by hand).
    Enable {
        /// Its name in `[destinations]`.
        name: String,
    },
    /// Stop sending to a destination: its jobs are parked until it is enabled.
    Disable {
        /// Its name in `[destinations]`.
        name: String,
    },
}

/// Runs a `destination` command.
pub(crate) async fn run(config: &Config, command: DestinationCommand) -> anyhow::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let store = Store::start(
        &config.redis,
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    let result = act(config, &store, command).await;
    stop.cancel();
    result
}

async fn act(config: &Config, store: &Store, command: DestinationCommand) -> anyhow::Result<()> {
    anyhow::ensure!(
        store.wait_connected(Duration::from_secs(5)).await,
        "cannot reach Redis (check redis.url)"
    );
    match command {
        DestinationCommand::List => {
            let disabled = store.disabled_destinations().await?;
            print!("{}", render(config, &disabled, SystemTime::now()));
        }
        DestinationCommand::Enable { name } => {
            known(config, &name)?;
            if store.enable_destination(&name).await? {
                println!(
                    "{name} enabled: delivery processes send to it again within delivery.secret_check_interval ({}).\nReplay what was parked meanwhile: relayctl dead replay --destination {name}",
                    relay_core::duration::label(config.delivery.secret_check_interval)
                );
            } else {
                println!("{name} was not disabled");
            }
        }
        DestinationCommand::Disable { name } => {
            known(config, &name)?;
            let disabled = Disabled {
                since: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)?,
                reason: "disabled with relayctl".to_owned(),
            };
            store.disable_destination(&name, &disabled).await?;
            println!(
                "{name} disabled: its jobs are parked until `relayctl destination enable {name}`"
            );
        }
    }
    Ok(())
}

fn known(config: &Config, name: &str) -> anyhow::Result<()> {
    if config.destinations.contains_key(name) {
        return Ok(());
    }
    let names: Vec<&str> = config.destinations.keys().map(String::as_str).collect();
    anyhow::bail!(
        "no destination named `{name}` in the configuration (configured: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// One block per destination. Secrets are described by where they come from and, for a file,
/// how long ago it changed: never by value.
pub(crate) fn render(
    config: &Config,
    disabled: &std::collections::BTreeMap<String, Disabled>,
    now: SystemTime,
) -> String {
    let mut out = String::new();
    if config.destinations.is_empty() {
        out.push_str("no destinations configured\n");
    }
    for (name, d) in &config.destinations {
        let state = match disabled.get(name) {
            Some(off) => format!("DISABLED since {} ({})", off.since, off.reason),
            None => "enabled".to_owned(),
        };
        let signing = serde_json::to_value(d.signing)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(out, "{name}");
        let _ = writeln!(out, "  url        {}", d.url);
        let _ = writeln!(out, "  signing    {signing}");
        let _ = writeln!(out, "  secret     {}", d.secret_source(now));
        let _ = writeln!(out, "  state      {state}");
    }
    let unknown: Vec<&String> = disabled
        .keys()
        .filter(|n| !config.destinations.contains_key(*n))
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(
            out,
            "disabled but not in this configuration: {}",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::{DestinationConfig, EnvSecret, Signing};
    use std::collections::BTreeMap;

    #[test]
    fn the_list_shows_state_and_secret_sources_never_values() {
        let mut config = Config::default();
        config.destinations.insert(
            "helpdesk".into(),
            DestinationConfig::new(
                "http://127.0.0.1:9999/helpdesk",
                Signing::ReamazeHmac,
                Some(EnvSecret::with_value(
                    "RELAY_HELPDESK_SECRET",
                    "top-secret-value",
                )),
            ),
        );
        let mut file = DestinationConfig::new("https://hooks.example/x", Signing::Bearer, None);
        file.secret_file = Some("/nonexistent/relay-secret".into());
        config.destinations.insert("hooks".into(), file);
        let mut disabled = BTreeMap::new();
        disabled.insert(
            "helpdesk".to_owned(),
            Disabled {
                since: "2026-12-04T10:00:00Z".into(),
                reason: "status 410".into(),
            },
        );
        disabled.insert(
            "removed".to_owned(),
            Disabled {
                since: String::new(),
                reason: "status 410".into(),
            },
        );
        let text = render(&config, &disabled, SystemTime::now());
        assert!(
            text.contains("helpdesk\n  url        http://127.0.0.1:9999/helpdesk"),
            "{text}"
        );
        assert!(text.contains("$RELAY_HELPDESK_SECRET (set)"), "{text}");
        assert!(
            text.contains("DISABLED since 2026-12-04T10:00:00Z (status 410)"),
            "{text}"
        );
        assert!(text.contains("signing    bearer"), "{text}");
        assert!(
            text.contains("file /nonexistent/relay-secret (unreadable here)"),
            "{text}"
        );
        assert!(
            text.contains("hooks\n") && text.contains("  state      enabled"),
            "{text}"
        );
        assert!(
            text.contains("not in this configuration: removed"),
            "{text}"
        );
        assert!(!text.contains("top-secret-value"), "{text}");
    }

    #[test]
    fn an_unknown_name_lists_the_configured_ones() {
        let mut config = Config::default();
        config.destinations.insert(
            "helpdesk".into(),
            DestinationConfig::new("http://127.0.0.1:1/x", Signing::None, None),
        );
        let err = known(&config, "helpdsk").unwrap_err().to_string();
        assert!(
            err.contains("`helpdsk`") && err.contains("configured: helpdesk"),
            "{err}"
        );
    }
}
