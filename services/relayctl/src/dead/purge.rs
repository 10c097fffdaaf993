//! `dead purge`: remove matching parked messages for good, after a confirmation.
//!
//! [`relay_parked::purge::select`] takes every message and holds the matching ones; only
//! after the operator confirms (or `--yes`) are they acked, which removes them. Until then
//! nothing has changed: a "no" or an error hands everything back in its order, and so does a
//! crash (in no particular order then: see [`relay_parked::Scan`]).

use std::io::{IsTerminal as _, Write as _};

use relay_core::config::Config;
use relay_parked::{Filter, Queue, Selection};
use tokio_util::sync::CancellationToken;

use super::list::print_facts;

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
    let stop = CancellationToken::new();
    let result = purge(config, args, &stop).await;
    stop.cancel();
    result
}

async fn purge(config: &Config, args: PurgeArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    let queue = args.queue.name();
    let id = args.filter.id.clone();
    // A dry run changes nothing, in the index neither.
    let index = if args.dry_run {
        None
    } else {
        super::index(config, stop).await
    };
    let selection = relay_parked::purge::select(
        &config.amqp.url,
        args.queue,
        args.filter,
        args.limit,
        index,
        &mut (),
    )
    .await?;
    let total = selection.total();
    if selection.is_empty() {
        selection.release().await?;
        if let Some(id) = id {
            anyhow::bail!("no message in {queue} has id {id}");
        }
        println!("nothing matches in {queue}; nothing purged");
        return Ok(());
    }
    if args.dry_run {
        for facts in selection.facts() {
            print_facts(facts, args.json);
        }
        let selected = selection.len();
        selection.release().await?;
        if !args.json {
            println!(
                "would purge {selected} of {total} message(s) in {queue} (dry run: nothing changed)"
            );
        }
        return Ok(());
    }
    if !args.yes {
        match confirm(queue, &selection).await {
            Ok(true) => {}
            Ok(false) => {
                selection.release().await?;
                println!("nothing purged");
                return Ok(());
            }
            Err(error) => {
                selection.release().await?;
                return Err(error);
            }
        }
    }
    let purged = selection.purge(&mut ()).await?;
    println!(
        "purged {} of {total} message(s) in {queue}; {} left there",
        purged.purged,
        (total as usize).saturating_sub(purged.purged)
    );
    if purged.unforgotten > 0 {
        eprintln!(
            "note: {} purged message(s) could not be removed from the parked index (Redis); they expire from it in time",
            purged.unforgotten
        );
    }
    Ok(())
}

/// Lists what is about to go and asks on the terminal; refuses without one.
async fn confirm(queue: &str, selection: &Selection) -> anyhow::Result<bool> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "purging {} message(s) from {queue} needs a confirmation: run it on a terminal or pass --yes",
        selection.len()
    );
    for facts in selection.facts().take(PREVIEW) {
        print_facts(facts, false);
    }
    if selection.len() > PREVIEW {
        println!("  … and {} more", selection.len() - PREVIEW);
    }
    print!(
        "purge these {} message(s) from {queue} for good? [y/N] ",
        selection.len()
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
