//! `dead list` and `dead show`: read the matching messages of a queue and print them, one line
//! (or JSON object) each for `list`, with headers and body for `show`. Nothing is removed.

use relay_core::config::Config;
use relay_parked::show::{body_text, headers_json};
use relay_parked::{Facts, Filter, Parked, Queue, Scan};
use serde::Serialize;
use serde_json::Value;

/// `show` cuts bodies longer than this unless `--full`.
const BODY_LIMIT: usize = 4096;

/// Prints one message's facts: a JSON object, or the text line indented under a header.
pub(crate) fn print_facts(facts: &Facts, json: bool) {
    if json {
        println!("{}", serde_json::to_string(facts).expect("facts serialise"));
    } else {
        println!("  {}", facts.line());
    }
}

/// `dead list`.
pub(crate) async fn list(
    config: &Config,
    queue: Queue,
    filter: Filter,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let filtered = !filter.is_empty();
    let mut scan = Scan::open(&config.amqp.url, queue, filter).await?;
    if !json {
        println!("{}: {} message(s)", queue.name(), scan.total());
    }
    let mut shown = 0;
    while shown < limit {
        let Some(parked) = scan.next().await? else {
            break;
        };
        print_facts(&parked.facts, json);
        shown += 1;
    }
    let more = shown == limit && scan.scanned() < scan.total();
    scan.close().await?;
    if !json {
        match (filtered, more) {
            (_, true) => println!("{shown} shown (--limit {limit}; there may be more)"),
            (true, false) => println!("{shown} match"),
            (false, false) => {}
        }
    }
    Ok(())
}

/// `dead show`.
pub(crate) async fn show(
    config: &Config,
    queue: Queue,
    filter: Filter,
    limit: usize,
    full: bool,
    json: bool,
) -> anyhow::Result<()> {
    let id = filter.id.clone();
    let mut scan = Scan::open(&config.amqp.url, queue, filter).await?;
    let mut shown = 0;
    while shown < limit {
        let Some(parked) = scan.next().await? else {
            break;
        };
        if json {
            println!("{}", show_json(&parked, full));
        } else {
            if shown > 0 {
                println!();
            }
            print!("{}", show_text(&parked, full));
        }
        shown += 1;
    }
    scan.close().await?;
    match id {
        Some(id) if shown == 0 => anyhow::bail!("no message in {} has id {id}", queue.name()),
        _ if shown == 0 && !json => println!("nothing matches in {}", queue.name()),
        _ => {}
    }
    Ok(())
}

fn limit(full: bool) -> Option<usize> {
    (!full).then_some(BODY_LIMIT)
}

/// What `show --json` prints of one message: its facts, then the rest of it.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    facts: &'a Facts,
    headers: Value,
    content_type: Option<String>,
    /// The body as text, cut unless `--full`.
    body: String,
    body_truncated: bool,
}

fn show_json(parked: &Parked, full: bool) -> String {
    let properties = &parked.delivery.properties;
    let (body, body_truncated) = body_text(&parked.delivery.data, false, limit(full));
    let shown = Shown {
        facts: &parked.facts,
        headers: headers_json(properties.headers().as_ref()),
        content_type: properties.content_type().as_ref().map(|s| s.to_string()),
        body,
        body_truncated,
    };
    serde_json::to_string(&shown).expect("a message serialises")
}

fn show_text(parked: &Parked, full: bool) -> String {
    use std::fmt::Write as _;
    let facts = &parked.facts;
    let properties = &parked.delivery.properties;
    let mut out = format!("{}\n", facts.line());
    out.push_str("  headers:\n");
    if let Value::Object(headers) = headers_json(properties.headers().as_ref()) {
        for (key, value) in headers {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            let _ = writeln!(out, "    {key}: {value}");
        }
    }
    let content_type = properties
        .content_type()
        .as_ref()
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    let _ = writeln!(out, "  body ({} bytes, {content_type}):", facts.body_size);
    let (body, cut) = body_text(&parked.delivery.data, true, limit(full));
    for line in body.lines() {
        let _ = writeln!(out, "    {line}");
    }
    if cut {
        let _ = writeln!(
            out,
            "    … cut at {BODY_LIMIT} bytes (--full shows all {})",
            facts.body_size
        );
    }
    out
}
