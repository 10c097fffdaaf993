//! `relayctl verify`: the signature doctor. Reads a captured request (a `curl` command line, or
//! its method, URL, headers and body) and explains, for a configured source, what the relay
//! verifies it against: the URL signed over, the parameters in signed order, the canonical
//! string (secrets masked), the expected and received signatures and the header checked. On a
//! mismatch it tries the usual variants (another URL behind a proxy, a re-encoded body, a stale
//! timestamp, the other Plivo token, …) and says which one would have verified.
//!
//! The verdict is the relay's own: each scheme's check is relay-signing's, called as
//! relay-ingress calls it. Exit code 0 when the capture verifies, 1 when not, 2 on a usage
//! error (bad arguments, an unreadable capture, a source that is not configured).

mod acrobits;
mod body;
mod capture;
mod curl;
mod hmac;
mod hooks;
mod plivo;
mod report;
mod standard_webhooks;
mod twilio;
mod urls;
mod voximplant;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use relay_core::config::Config;

use capture::Capture;
use report::{Cause, Report};
use urls::Candidate;

/// What `relayctl verify` reads.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The source to verify for: `plivo`, `voximplant`, `acrobits`, `reamaze`, or the name of a
    /// generic source (`[ingress.sources.<name>]`).
    #[arg(long)]
    source: String,
    /// A file holding the request as a `curl` command line ("Copy as cURL"); `-` reads it from
    /// standard input.
    #[arg(long, conflicts_with_all = ["method", "url", "header", "body", "body_file"])]
    curl: Option<PathBuf>,
    /// The request's method (default: POST with a body, else GET).
    #[arg(long)]
    method: Option<String>,
    /// The URL called, absolute as the sender called it, or only its path and query.
    #[arg(long)]
    url: Option<String>,
    /// A request header, `Name: value`; repeat for more.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    header: Vec<String>,
    /// The request body, exactly as sent.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// A file holding the request body, exactly as sent.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// The clock for timestamp windows, in unix seconds (default: now).
    #[arg(long)]
    now: Option<i64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the doctor; an `Err` is a usage error (exit code 2).
pub(crate) fn run(config: &Config, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let capture = read_capture(&args)?;
    let now = args
        .now
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let report = diagnose(config, &args.source, &capture, now)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The capture the arguments describe.
fn read_capture(args: &VerifyArgs) -> anyhow::Result<Capture> {
    if let Some(path) = &args.curl {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        // `@file` data is found beside the command's file, as when it is run from there.
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        let read = move |name: &str| std::fs::read(dir.join(name));
        let command = curl::parse(&text).context("cannot read the curl command")?;
        return command
            .into_capture(&read)
            .context("cannot read the curl command");
    }
    if args.url.is_none() && args.body.is_none() && args.body_file.is_none() {
        bail!("give the captured request: --curl FILE, or --url (with --header, --body)");
    }
    let body = match (&args.body, &args.body_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => Vec::new(),
    };
    Capture::from_parts(args.method.clone(), args.url.clone(), &args.header, body)
        .map_err(anyhow::Error::msg)
}

/// The report for `source`; an `Err` when the source is not configured or lacks its secret.
pub(crate) fn diagnose(
    config: &Config,
    source: &str,
    capture: &Capture,
    now: i64,
) -> anyhow::Result<Report> {
    let ingress = &config.ingress;
    let off = |section: &str| {
        format!("no [ingress.{section}] in the configuration: the relay answers 404 unknown-source")
    };
    let mut report = match source {
        "plivo" => {
            let plivo = ingress.plivo.as_ref().with_context(|| off("plivo"))?;
            plivo::diagnose(plivo, &ingress.public_base_url, capture)?
        }
        "voximplant" => voximplant::diagnose(&ingress.voximplant, capture, now)?,
        "acrobits" => {
            let acrobits = ingress.acrobits.as_ref().with_context(|| off("acrobits"))?;
            acrobits::diagnose(acrobits, capture)?
        }
        "reamaze" => {
            let reamaze = ingress.reamaze.as_ref().with_context(|| off("reamaze"))?;
            hooks::reamaze(reamaze, capture)?
        }
        name => {
            let Some(hook) = ingress.sources.get(name) else {
                let names: Vec<&str> = ingress.sources.keys().map(String::as_str).collect();
                bail!(
                    "no source `{name}`: plivo, voximplant, acrobits, reamaze or one of \
                     [ingress.sources] ({})",
                    if names.is_empty() {
                        "none configured".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
            };
            hooks::generic(name, hook, &ingress.public_base_url, capture, now)?
        }
    };
    report.notes.splice(0..0, capture.notes.iter().cloned());
    Ok(report)
}

/// `POST https://… (application/json, 123 bytes)`.
fn request_line(capture: &Capture) -> String {
    format!(
        "{} {} ({}, {} bytes)",
        capture.method,
        capture
            .url
            .as_deref()
            .map_or_else(|| "(no URL captured)".to_owned(), capture::display_url),
        capture
            .media_type()
            .unwrap_or_else(|| "no Content-Type".to_owned()),
        capture.body.len()
    )
}

/// The cause for a URL that verifies where the relay's does not.
fn url_cause(candidate: &Candidate, others: usize) -> Cause {
    let also = if others > 0 {
        format!("; {others} other URLs verify too")
    } else {
        String::new()
    };
    Cause::new(
        "url-mismatch",
        format!(
            "it verifies over {}: {}{also}",
            candidate.url,
            candidate.differences.join(", ")
        ),
        Some(candidate.fix.clone()),
    )
    .summarised(format!("the URL signed is {}", candidate.url))
}

/// The cause for a form whose `+` was signed as a literal `+`.
fn plus_cause() -> Cause {
    Cause::new(
        "body-re-encoded",
        "it verifies with the body's `+` read as a literal `+` (%2B): the sender signed a `+` \
         (a phone number) that the body carries unencoded, which form encoding reads as a space",
        Some(
            "capture the body exactly as sent; whatever re-encodes it on the way must keep %2B"
                .to_owned(),
        ),
    )
}

/// Where relay-ingress refuses a hook's media type before any signature is checked.
fn media_note(capture: &Capture, report: &mut Report) {
    let Some(media) = capture.media_type() else {
        return;
    };
    let json = matches!(
        media.as_str(),
        "application/json" | "text/json" | "text/plain" | ""
    ) || (media.starts_with("application/") && media.ends_with("+json"));
    if !json && !capture.is_form() {
        report.notes.push(format!(
            "the relay answers 415: this route reads JSON or a form, not `{media}`"
        ));
    }
}

/// A note when the capture's route is not `expected`.
fn route_note(capture: &Capture, expected: &str, report: &mut Report) {
    if let Some(target) = capture.target()
        && target.route.trim_end_matches('/') != expected
    {
        report.notes.push(format!(
            "the capture calls {}, not {expected}: this report checks {expected}'s scheme",
            target.route
        ));
    }
}

#[cfg(test)]
mod tests;
