//! `relayctl send`: correctly signed sample callbacks.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use relay_core::config::Config;

/// Which sample to send.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Sample {
    /// A Voximplant `min_balance` account callback.
    VoximplantMinBalance,
}

#[derive(Args)]
pub(crate) struct SendArgs {
    /// The sample.
    sample: Sample,
    /// relay-ingress base URL (default: `ingress.public_base_url`).
    #[arg(long)]
    url: Option<String>,
    /// Voximplant account id (default: the first configured account).
    #[arg(long)]
    account_id: Option<u64>,
    /// Callback id (default: the current time in milliseconds, so each send is new).
    #[arg(long)]
    callback_id: Option<u64>,
    /// Balance to report.
    #[arg(long, default_value_t = 0.42)]
    balance: f64,
    /// Report that the account reached its credit limit (a critical alert).
    #[arg(long)]
    min_credit: bool,
}

pub(crate) async fn run(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    match args.sample {
        Sample::VoximplantMinBalance => {
            let vox = &config.ingress.voximplant;
            let account = match args.account_id {
                Some(id) => vox.accounts.iter().find(|a| a.account_id == id),
                None => vox.accounts.first(),
            }
            .context("no such Voximplant account in [ingress.voximplant.accounts]")?;
            let key = account
                .api_key_env
                .require("ingress.voximplant.accounts.api_key_env")?;
            let salt = match &vox.salt_env {
                Some(s) => s.require("ingress.voximplant.salt_env")?,
                None => "",
            };
            let callback_id = args.callback_id.unwrap_or_else(|| {
                u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or(1)
            });
            let body = relay_ingress::voximplant::sample_min_balance(
                account.account_id,
                callback_id,
                key,
                salt,
                args.balance,
                args.min_credit,
            );
            let base = args
                .url
                .unwrap_or_else(|| config.ingress.public_base_url.clone());
            let url = format!("{}/v1/voximplant/callbacks", base.trim_end_matches('/'));
            println!(
                "POST {url} (account {}, callback {callback_id})",
                account.account_id
            );
            let response = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?)
                .send()
                .await
                .with_context(|| format!("cannot reach relay-ingress at {url}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            println!("{status} {text}");
            if !status.is_success() {
                bail!("relay-ingress refused the callback");
            }
            Ok(())
        }
    }
}
