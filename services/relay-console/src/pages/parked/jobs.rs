//! Replays and purges started from the console: each runs in the background of this process
//! and keeps its progress where its page reads it. A selection of ticked ids is served by one
//! walk of the queue whatever its size; a filtered set goes through `relay_parked`'s own
//! replay and purge. Either way a message leaves its queue only once its copy is confirmed
//! (replay) or the purge acks it, and its index entry goes with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::response::Response;
use relay_parked::{Facts, Filter, Progress, Queue, Rate, Replay, Scan};

use crate::session::Authed;
use crate::state::AppState;
use crate::web::{self, Chrome};

/// Finished jobs kept for their pages (the oldest are dropped beyond it).
const KEPT: usize = 100;

/// Replay or purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Replay,
    Purge,
}

impl Action {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Action::Replay => "replay",
            Action::Purge => "purge",
        }
    }
}

/// Which messages.
pub(crate) enum Selection {
    /// These ids.
    Ids(BTreeSet<String>),
    /// Every message the filter matches.
    Filtered(Filter),
}

/// One job's state, as its page shows it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) user: String,
    pub(crate) action: Action,
    pub(crate) queue: Queue,
    pub(crate) what: String,
    pub(crate) state: &'static str,
    pub(crate) scanned: u32,
    pub(crate) total: u32,
    pub(crate) done: usize,
    pub(crate) skipped: Vec<String>,
    pub(crate) error: Option<String>,
    pub(crate) started: String,
}

impl Job {
    pub(crate) fn new(user: &str, action: Action, queue: Queue, selection: &Selection) -> Self {
        let what = match selection {
            Selection::Ids(ids) => format!("{} ticked message(s)", ids.len()),
            Selection::Filtered(filter) if filter.is_empty() => "every message".to_owned(),
            Selection::Filtered(filter) => format!("the messages matching {}", describe(filter)),
        };
        Self {
            user: user.to_owned(),
            action,
            queue,
            what,
            state: "running",
            scanned: 0,
            total: 0,
            done: 0,
            skipped: Vec::new(),
            error: None,
            started: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

fn describe(filter: &Filter) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("destination", &filter.destination),
        ("type", &filter.ty),
        ("reason", &filter.reason),
        ("id", &filter.id),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name}={v}"));
        }
    }
    if let Some(since) = filter.since {
        parts.push(format!("since={since}"));
    }
    parts.join(" ")
}

/// The jobs of this process.
#[derive(Default)]
pub(crate) struct Replays {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Arc<Mutex<Job>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Replays {
    /// Starts `job` in the background; returns its id.
    pub(crate) fn start(&self, state: AppState, job: Job, selection: Selection) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::new(Mutex::new(job));
        {
            let mut jobs = lock(&self.jobs);
            jobs.insert(id, shared.clone());
            while jobs.len() > KEPT {
                let Some(oldest) = jobs.keys().next().copied() else {
                    break;
                };
                jobs.remove(&oldest);
            }
        }
        tokio::spawn(async move {
            let result = run(&state, &shared, selection).await;
            let mut job = lock(&shared);
            match result {
                Ok(()) => job.state = "done",
                Err(error) => {
                    job.state = "failed";
                    job.error = Some(error);
                }
            }
            tracing::info!(user = %job.user, action = job.action.label(), queue = job.queue.name(), done = job.done, skipped = job.skipped.len(), state = job.state, "console: {} ended", job.action.label());
        });
        id
    }

    /// A copy of job `id`.
    pub(crate) fn get(&self, id: u64) -> Option<Job> {
        lock(&self.jobs).get(&id).map(|job| lock(job).clone())
    }
}

/// Progress into the shared job.
struct Shared<'a>(&'a Mutex<Job>);

impl Progress for Shared<'_> {
    fn walked(&mut self, scanned: u32, total: u32) {
        let mut job = lock(self.0);
        job.scanned = scanned;
        job.total = total;
    }

    fn done(&mut self, _facts: &Facts) {
        lock(self.0).done += 1;
    }

    fn skipped(&mut self, facts: &Facts, why: &str) {
        let id = facts.id.clone().unwrap_or_else(|| "-".to_owned());
        lock(self.0).skipped.push(format!("{id}: {why}"));
    }
}

async fn run(state: &AppState, job: &Mutex<Job>, selection: Selection) -> Result<(), String> {
    let (action, queue) = {
        let j = lock(job);
        (j.action, j.queue)
    };
    let config = state.config();
    let index = super::index(state);
    let rate = Rate::per_second(config.console.replay_rate)
        .ok_or("console.replay_rate must be positive")?;
    let mut progress = Shared(job);
    match (action, selection) {
        (Action::Replay, Selection::Filtered(filter)) => {
            let request = Replay {
                queue,
                filter,
                limit: None,
                rate,
            };
            relay_parked::replay(config, state.broker(), Some(&index), request, &mut progress)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        (Action::Purge, Selection::Filtered(filter)) => {
            let selected = relay_parked::purge::select(
                &config.amqp.url,
                queue,
                filter,
                None,
                Some(index),
                &mut progress,
            )
            .await
            .map_err(|e| e.to_string())?;
            selected
                .purge(&mut progress)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        (action, Selection::Ids(ids)) => {
            by_ids(state, action, queue, ids, rate, &mut progress).await
        }
    }
}

/// One walk over `queue` that replays or purges the messages of `ids`.
async fn by_ids(
    state: &AppState,
    action: Action,
    queue: Queue,
    mut ids: BTreeSet<String>,
    rate: Rate,
    progress: &mut Shared<'_>,
) -> Result<(), String> {
    let index = super::index(state);
    let mut scan = Scan::open(&state.config().amqp.url, queue, Filter::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut dealt = Vec::new();
    let interval = rate.interval();
    let mut next = tokio::time::Instant::now();
    let result: Result<(), String> = async {
        while !ids.is_empty() {
            let Some(parked) = scan.next().await.map_err(|e| e.to_string())? else {
                break;
            };
            progress.walked(scan.scanned(), scan.total());
            let Some(id) = parked.facts.id.clone().filter(|id| ids.contains(id)) else {
                continue;
            };
            if action == Action::Replay {
                let route = match relay_parked::route(queue, &parked.facts) {
                    Ok(route) => route,
                    Err(why) => {
                        progress.skipped(&parked.facts, &why);
                        ids.remove(&id);
                        continue;
                    }
                };
                next = next.max(tokio::time::Instant::now());
                tokio::time::sleep_until(next).await;
                next += interval;
                relay_parked::publish(state.broker(), &parked, &route)
                    .await
                    .map_err(|e| format!("{id} was not replayed (the broker refused it): {e}"))?;
            }
            scan.ack(&parked).await.map_err(|e| e.to_string())?;
            progress.done(&parked.facts);
            ids.remove(&id);
            dealt.push(id);
        }
        Ok(())
    }
    .await;
    let finished = scan.finished() || ids.is_empty();
    scan.close().await.map_err(|e| e.to_string())?;
    // What was dealt with leaves the index; so does an id the whole walk did not meet (it is
    // no longer parked: replayed or purged elsewhere, or expired).
    if finished {
        dealt.extend(ids.iter().cloned());
        for id in &ids {
            lock(progress.0)
                .skipped
                .push(format!("{id}: no longer in {}", queue.name()));
        }
    }
    if let Err(error) = index.forget(queue, &dealt).await {
        tracing::warn!(%error, "console: index entries were not removed; they expire by themselves");
    }
    result
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    job: Job,
    running: bool,
}

/// The page of `job`.
pub(crate) fn page(authed: &Authed, job: Job) -> Response {
    web::render(JobPage {
        chrome: Chrome::new(authed, "/parked"),
        running: job.state == "running",
        job,
    })
}
