//! `relayctl delivery show ID`: what delivery recorded of a job, read from Redis (the same
//! record relay-delivery serves at `GET /v1/deliveries/{id}` on its admin port): where it stands,
//! and one row per attempt (number, time, outcome, status or error, latency, the start of the
//! response). `--json` prints the record as the admin route does.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Subcommand;
use relay_core::config::Config;
use relay_store::{AttemptEntry, DeliveryRecord, MAX_HISTORY};

/// Characters of a response excerpt shown in the table (`--json` shows all of it).
const EXCERPT_WIDTH: usize = 60;

/// `relayctl delivery …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeliveryCommand {
    /// Show a job's record: status, attempts, and every attempt's time, outcome, status or
    /// error, latency and response excerpt.
    Show {
        /// The job id (the `Idempotency-Key` / `webhook-id` the destination saw).
        job_id: String,
        /// Print the record as JSON (the shape of `GET /v1/deliveries/{id}`).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `delivery` command.
pub(crate) async fn run(config: &Config, command: DeliveryCommand) -> anyhow::Result<()> {
    match command {
        DeliveryCommand::Show { job_id, json } => {
            let record = read(config, &job_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                print!("{}", render(&job_id, &record));
            }
            Ok(())
        }
    }
}

/// The record of `job_id`, or an error that says why there is none.
async fn read(config: &Config, job_id: &str) -> anyhow::Result<DeliveryRecord> {
    let stop = tokio_util::sync::CancellationToken::new();
    let store = relay_store::Store::start(
        &config.redis,
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    let connected = store.wait_connected(Duration::from_secs(5)).await;
    let record = if connected {
        Some(store.delivery(job_id).await)
    } else {
        None
    };
    stop.cancel();
    let Some(record) = record else {
        anyhow::bail!("cannot reach Redis (check redis.url)");
    };
    record?.ok_or_else(|| {
        anyhow::anyhow!(
            "no record of job {job_id} (never attempted, or older than redis.delivery_record_ttl)"
        )
    })
}

/// The human view of a record: a summary, then a table of its attempts.
pub(crate) fn render(job_id: &str, record: &DeliveryRecord) -> String {
    let mut out = String::new();
    let status = serde_json::to_value(record.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = writeln!(out, "job          {job_id}");
    let _ = writeln!(out, "destination  {}", record.destination);
    let _ = writeln!(
        out,
        "status       {status} after {} attempt(s), last: {}",
        record.attempts,
        printable(&record.last_outcome, usize::MAX)
    );
    let _ = writeln!(out, "updated      {}", time_of(&record.updated_at));
    if record.history.is_empty() {
        let _ = writeln!(out, "\nno attempts recorded");
        return out;
    }
    let _ = writeln!(out);
    let header = [
        "#",
        "time",
        "outcome",
        "status/error",
        "latency",
        "response",
    ];
    let rows: Vec<[String; 6]> = record
        .history
        .iter()
        .enumerate()
        .map(|(i, e)| row(i, e))
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            match i {
                // Numbers align right.
                0 | 4 => text.push_str(&format!("{}{cell}  ", " ".repeat(pad))),
                5 => text.push_str(cell),
                _ => text.push_str(&format!("{cell}{}  ", " ".repeat(pad))),
            }
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
    let recorded = record.history.len();
    if recorded == MAX_HISTORY && record.attempts as usize > recorded {
        let _ = writeln!(out, "(only the latest {MAX_HISTORY} attempts are kept)");
    }
    out
}

/// One attempt's cells.
fn row(index: usize, e: &AttemptEntry) -> [String; 6] {
    let number = if e.attempt == 0 {
        index + 1
    } else {
        e.attempt as usize
    };
    let result = match (e.status, &e.error) {
        (Some(status), Some(error)) => format!("{status} {}", printable(error, EXCERPT_WIDTH)),
        (Some(status), None) => status.to_string(),
        (None, Some(error)) => printable(error, EXCERPT_WIDTH),
        (None, None) => "-".to_owned(),
    };
    [
        number.to_string(),
        time_of(&e.at),
        e.outcome.clone(),
        result,
        format!("{} ms", e.latency_ms),
        e.response_excerpt
            .as_deref()
            .map_or_else(|| "-".to_owned(), |text| printable(text, EXCERPT_WIDTH)),
    ]
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), or as it is when it does not parse.
fn time_of(text: &str) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| printable(text, 40))
}

/// `text` on one line, without control characters (a response body is the destination's: it
/// must not move the cursor or recolour the terminal), cut to `width` characters with `…`.
fn printable(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut last_space = false;
    for c in text.chars() {
        if shown == width {
            out.push('…');
            break;
        }
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        // Runs of blanks (a pretty-printed body's indentation) collapse to one.
        if c == ' ' && (last_space || out.is_empty()) {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
        shown += 1;
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use relay_store::DeliveryStatus;

    use super::*;

    fn attempt(
        n: u32,
        status: Option<u16>,
        error: Option<&str>,
        excerpt: Option<&str>,
    ) -> AttemptEntry {
        AttemptEntry {
            attempt: n,
            at: format!("2026-12-04T10:00:0{n}.123456789Z"),
            outcome: if status == Some(200) {
                "delivered"
            } else {
                "retryable"
            }
            .to_owned(),
            status,
            error: error.map(str::to_owned),
            latency_ms: 1200 * u64::from(n),
            response_excerpt: excerpt.map(str::to_owned),
        }
    }

    fn record(history: Vec<AttemptEntry>) -> DeliveryRecord {
        DeliveryRecord {
            status: DeliveryStatus::Delivered,
            attempts: 3,
            destination: "alerts".into(),
            last_outcome: "status 200".into(),
            updated_at: "2026-12-04T10:00:03.5Z".into(),
            history,
        }
    }

    #[test]
    fn one_row_per_attempt_under_the_summary() {
        let long = format!("{{\n  \"error\": \"{}\"\n}}", "x".repeat(200));
        let record = record(vec![
            attempt(1, Some(503), None, Some(&long)),
            attempt(2, None, Some("timeout"), None),
            attempt(3, Some(200), None, Some("ok")),
        ]);
        let text = render("job-1", &record);
        let expected = "\
job          job-1
destination  alerts
status       delivered after 3 attempt(s), last: status 200
updated      2026-12-04 10:00:03.500

#  time                     outcome    status/error  latency  response
1  2026-12-04 10:00:01.123  retryable  503           1200 ms  { \"error\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…
2  2026-12-04 10:00:02.123  retryable  timeout       2400 ms  -
3  2026-12-04 10:00:03.123  delivered  200           3600 ms  ok
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn a_record_without_attempts_says_so() {
        let text = render("job-2", &record(Vec::new()));
        assert!(text.ends_with("\nno attempts recorded\n"), "{text}");
        assert!(!text.contains("latency"), "{text}");
    }

    #[test]
    fn a_response_cannot_drive_the_terminal() {
        let record = record(vec![attempt(
            1,
            Some(500),
            None,
            Some("a\u{1b}[2Jb\r\nc\u{7}"),
        )]);
        let text = render("job-3", &record);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 7, "{text}");
        assert!(text.contains("a [2Jb c"), "{text}");
    }

    #[test]
    fn a_trimmed_history_says_older_attempts_are_gone() {
        let history = (1..=MAX_HISTORY as u32)
            .map(|n| attempt(n, Some(503), None, None))
            .collect();
        let mut record = record(history);
        record.attempts = MAX_HISTORY as u32 + 4;
        let text = render("job-4", &record);
        assert!(text.ends_with(&format!(
            "(only the latest {MAX_HISTORY} attempts are kept)\n"
        )));
    }
}
