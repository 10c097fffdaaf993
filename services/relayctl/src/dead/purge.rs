//! `dead purge`: remove matching parked messages for good.
//!
//! The walk takes every message and holds them all; only after the operator confirms (or
//! `--yes`) are the matching ones acked, which removes them. Until then nothing has changed: a
//! "no" or an error hands everything back in its order, and so does a crash (in no particular
//! order then: see [`super::scan`]).

use std::io::{IsTerminal as _, Write as _};

use relay_core::config::Config;

use super::Queue;
use super::filter::Filter;
use super::list::print_facts;
use super::scan::{Parked, Scan};

/// How many of the messages to purge are listed before the question.
const PREVIEW: usize = 20;

/// What `dead purge` was asked.
pub(crate) struct PurgeArgs {
    pub(crate) queue: Queue,
    pub(crate) filter: Filter,
    pub(crate) limit: Option<usize>,
    pub(crate) yes: bool,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
}

pub(crate) async fn run(config: &Config, args: PurgeArgs) -> anyhow::Result<()> {
    let queue = args.queue.name();
    let id = args.filter.id.clone();
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut scan = Scan::open(config, args.queue, args.filter).await?;
    let mut held: Vec<Parked> = Vec::new();
    while held.len() < limit {
        let Some(mut parked) = scan.next().await? else {
            break;
        };
        // Only its facts are needed from here on.
        parked.delivery.data = Vec::new();
        held.push(parked);
    }
    let total = scan.total;
    if held.is_empty() {
        scan.close().await?;
        if let Some(id) = id {
            anyhow::bail!("no message in {queue} has id {id}");
        }
        println!("nothing matches in {queue}; nothing purged");
        return Ok(());
    }
    if args.dry_run {
        for parked in &held {
            print_facts(&parked.facts, args.json);
        }
        scan.close().await?;
        if !args.json {
            println!(
                "would purge {} of {total} message(s) in {queue} (dry run: nothing changed)",
                held.len()
            );
        }
        return Ok(());
    }
    if !args.yes {
        match confirm(queue, &held).await {
            Ok(true) => {}
            Ok(false) => {
                scan.close().await?;
                println!("nothing purged");
                return Ok(());
            }
            Err(error) => {
                scan.close().await?;
                return Err(error);
            }
        }
    }
    for parked in &held {
        scan.ack(parked).await?;
    }
    scan.close().await?;
    println!(
        "purged {} of {total} message(s) in {queue}; {} left there",
        held.len(),
        (total as usize).saturating_sub(held.len())
    );
    Ok(())
}

/// Lists what is about to go and asks on the terminal; refuses without one.
async fn confirm(queue: &str, held: &[Parked]) -> anyhow::Result<bool> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "purging {} message(s) from {queue} needs a confirmation: run it on a terminal or pass --yes",
        held.len()
    );
    for parked in held.iter().take(PREVIEW) {
        print_facts(&parked.facts, false);
    }
    if held.len() > PREVIEW {
        println!("  … and {} more", held.len() - PREVIEW);
    }
    print!(
        "purge these {} message(s) from {queue} for good? [y/N] ",
        held.len()
    );
    std::io::stdout().flush()?;
    // Read off the async threads: the broker connection keeps its heartbeats meanwhile.
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
