//! `dead replay`: send matching parked messages back for another try, with a progress bar on
//! a terminal and a summary line. The replay itself is [`relay_parked::replay()`]: each copy
//! confirmed before the parked one goes, paced to `--rate`, stopping at the first refusal.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use relay_core::config::Config;
use relay_core::routing;
use relay_parked::{Facts, Filter, Progress, Queue, Rate, Replay, Scan};
use tokio_util::sync::CancellationToken;

use super::list::print_facts;

/// What `dead replay` was asked.
pub(crate) struct ReplayArgs {
    pub(crate) queue: Queue,
    pub(crate) filter: Filter,
    pub(crate) limit: Option<usize>,
    pub(crate) rate: Rate,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
}

/// A progress bar on a terminal; nothing otherwise (a log or a pipe gets the summary line).
struct Bar {
    bar: ProgressBar,
    replayed: usize,
}

impl Bar {
    fn new() -> Self {
        let bar = if std::io::stdout().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {pos}/{len} read, {msg} ({elapsed}, eta {eta})",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar, replayed: 0 }
    }
}

impl Progress for Bar {
    fn walked(&mut self, scanned: u32, total: u32) {
        self.bar.set_length(u64::from(total));
        self.bar.set_position(u64::from(scanned));
    }

    fn done(&mut self, _: &Facts) {
        self.replayed += 1;
        self.bar.set_message(format!("{} replayed", self.replayed));
    }

    fn skipped(&mut self, facts: &Facts, why: &str) {
        let id = facts.id.as_deref().unwrap_or("-");
        self.bar.suspend(|| eprintln!("skipped {id}: {why}"));
    }
}

pub(crate) async fn run(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    if args.dry_run {
        return dry_run(config, args).await;
    }
    let queue = args.queue;
    let id = args.filter.id.clone();
    let connected = crate::amqp::broker(config).await?;
    let stop = CancellationToken::new();
    let index = super::index(config, &stop).await;
    let request = Replay {
        queue,
        filter: args.filter,
        limit: args.limit,
        rate: args.rate,
    };
    let mut bar = Bar::new();
    let result =
        relay_parked::replay(config, &connected.broker, index.as_ref(), request, &mut bar).await;
    stop.cancel();
    let done = match result {
        Ok(done) => done,
        Err(error) => {
            bar.bar.abandon();
            return Err(error.into());
        }
    };
    bar.bar.finish_and_clear();
    let secs = done.elapsed.as_secs_f64();
    println!(
        "replayed {replayed} of {total} message(s) in {queue} in {secs:.1}s ({rate:.0}/s); {left} left there",
        replayed = done.replayed,
        total = done.total,
        queue = queue.name(),
        rate = if secs > 0.0 {
            done.replayed as f64 / secs
        } else {
            0.0
        },
        left = (done.total as usize).saturating_sub(done.replayed),
    );
    if done.unbound > 0 {
        println!(
            "{} of them reach no enabled handler in this configuration and are back in {}",
            done.unbound,
            routing::UNROUTED
        );
    }
    if done.unforgotten > 0 {
        eprintln!(
            "note: {} replayed message(s) could not be removed from the parked index (Redis); they expire from it in time",
            done.unforgotten
        );
    }
    if done.skipped > 0 {
        anyhow::bail!(
            "{} message(s) have no routing key to replay them with and stay in {}",
            done.skipped,
            queue.name()
        );
    }
    if let Some(id) = id
        && done.replayed == 0
    {
        anyhow::bail!("no message in {} has id {id}", queue.name());
    }
    Ok(())
}

/// `--dry-run`: what would be replayed, and where.
async fn dry_run(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    let queue = args.queue;
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut scan = Scan::open(&config.amqp.url, queue, args.filter).await?;
    let (mut matched, mut unbound) = (0usize, 0usize);
    while matched < limit {
        let Some(parked) = scan.next().await? else {
            break;
        };
        print_facts(&parked.facts, args.json);
        if relay_parked::route(queue, &parked.facts)
            .is_ok_and(|route| !relay_parked::reaches_a_handler(config, &route))
        {
            unbound += 1;
        }
        matched += 1;
    }
    let total = scan.total();
    scan.close().await?;
    if !args.json {
        println!(
            "would replay {matched} of {total} message(s) in {} (dry run: nothing changed)",
            queue.name()
        );
        if unbound > 0 {
            println!(
                "{unbound} of them reach no enabled handler in this configuration and would land in {}",
                routing::UNROUTED
            );
        }
    }
    Ok(())
}
