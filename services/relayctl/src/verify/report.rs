//! What the doctor found, for a terminal (a verdict line, then the details) or as JSON.
//!
//! Nothing in a report is a secret: keys are named by their environment variable and length
//! ([`key_label`]), passwords by their length; signatures, nonces and canonical strings are
//! shown, since they are what the sender put on the wire.

use std::fmt::Write as _;

use serde::Serialize;

use super::urls::UrlReport;

/// Everything the doctor says about one capture.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// Whether the relay accepts the capture's signature (or credentials).
    pub(crate) verified: bool,
    /// One line: the verdict and, when it fails, the likely cause.
    pub(crate) verdict: String,
    /// The `--source` checked.
    pub(crate) source: String,
    /// The scheme of that source.
    pub(crate) scheme: String,
    /// The keys used, masked.
    pub(crate) keys: Vec<String>,
    /// The request as the relay reads it: method, URL, media type, body size.
    pub(crate) request: String,
    /// The URL signed over, for signed-URL schemes.
    pub(crate) url: Option<UrlReport>,
    /// The parameters in the order the signature covers them.
    pub(crate) params: Vec<Param>,
    /// What the parameters are, for the terminal.
    #[serde(skip)]
    pub(crate) params_heading: &'static str,
    /// Which parameter each role was read from (Acrobits' configured names).
    pub(crate) read_as: Vec<Labelled>,
    /// The canonical strings, secrets masked.
    pub(crate) canonical: Vec<Labelled>,
    /// Each signature (or credential) checked.
    pub(crate) checks: Vec<Check>,
    /// Variants tried on a mismatch: those that verify, or why none does.
    pub(crate) causes: Vec<Cause>,
    /// What else the doctor noticed.
    pub(crate) notes: Vec<String>,
}

/// One parameter.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Param {
    /// Where it was read: `query`, `form`, `json`, `callbacks[0]`, ….
    pub(crate) from: String,
    /// Its name (empty for a derived value such as a timestamp's age).
    pub(crate) name: String,
    /// Its value (masked where it is a password).
    pub(crate) value: String,
}

/// A labelled text.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Labelled {
    /// What the text is.
    pub(crate) label: String,
    /// The text.
    pub(crate) text: String,
}

/// One signature or credential check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    /// The header (or field) checked.
    pub(crate) header: String,
    /// What the capture carries.
    pub(crate) received: Option<String>,
    /// What the relay computed (canonical layout).
    pub(crate) expected: Option<String>,
    /// `verifies`, or why not.
    pub(crate) result: String,
}

/// A cause of a mismatch, found by trying a variant.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Cause {
    /// A stable slug: `url-mismatch`, `wrong-secret`, `body-re-encoded`, `stale-timestamp`,
    /// `main-account-token`, `header`, ….
    pub(crate) kind: String,
    /// A few words for the verdict line.
    pub(crate) summary: String,
    /// What was found.
    pub(crate) detail: String,
    /// What to change, when known.
    pub(crate) fix: Option<String>,
}

impl Cause {
    pub(crate) fn new(kind: &str, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            summary: summary(kind).to_owned(),
            detail: detail.into(),
            fix,
        }
    }

    /// The same cause with `summary` on the verdict line.
    pub(crate) fn summarised(mut self, summary: impl Into<String>) -> Self {
        self.summary = summary.into();
        self
    }
}

/// The verdict's words for a kind of cause.
fn summary(kind: &str) -> &'static str {
    match kind {
        "url-mismatch" => "the URL signed is not the relay's (a proxy in front?)",
        "wrong-token" => "wrong token: no variant verifies",
        "wrong-secret" => "wrong secret: no variant verifies",
        "wrong-key" => "wrong API key or salt",
        "body-re-encoded" => "the body was re-encoded on the way",
        "stale-timestamp" => "stale timestamp",
        "main-account-token" => "Ma-V3 vs V3: the main account's token",
        "v2-disabled" => "a V2 signature, and V2 is not accepted",
        "method" => "the capture's method is not the one signed",
        "missing-header" | "missing-body-hash" => "the signature is missing",
        "header" => "the signature is in another header",
        "encoding" => "the signature's encoding differs",
        "prefix" => "the signature's prefix differs",
        "secret-encoding" => "the sender uses the secret's text as the key",
        "salt" => "the salt differs",
        "unknown-account" => "the account is not configured",
        "malformed" => "the body cannot be read",
        "wrong-password" | "wrong-user" => "wrong credentials",
        "unknown-user" => "unknown user",
        "password-scheme" | "sha1-template" => "the password scheme differs",
        _ => "see the diagnosis",
    }
}

impl Report {
    /// An empty report for `source` with `scheme`.
    pub(crate) fn new(source: &str, scheme: &str, request: String) -> Self {
        Self {
            verified: false,
            verdict: String::new(),
            source: source.to_owned(),
            scheme: scheme.to_owned(),
            keys: Vec::new(),
            request,
            url: None,
            params: Vec::new(),
            params_heading: "Parameters, in signed order",
            read_as: Vec::new(),
            canonical: Vec::new(),
            checks: Vec::new(),
            causes: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a canonical string.
    pub(crate) fn canonical(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.canonical.push(Labelled {
            label: label.into(),
            text: text.into(),
        });
    }

    /// Sets the verdict from the checks and the first cause.
    pub(crate) fn conclude(&mut self, verified: bool, what: &str) {
        self.verified = verified;
        self.verdict = if verified {
            format!("VERIFIED: {what}")
        } else {
            match self.causes.first() {
                Some(cause) => format!("NOT VERIFIED: {what}. Likely cause: {}", cause.summary),
                None => format!("NOT VERIFIED: {what}"),
            }
        };
    }

    /// The report for a terminal.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.verdict);
        let _ = writeln!(out);
        row(
            &mut out,
            "source",
            &format!("{} ({})", self.source, self.scheme),
        );
        for key in &self.keys {
            row(&mut out, "key", key);
        }
        row(&mut out, "request", &self.request);
        if let Some(url) = &self.url {
            heading(
                &mut out,
                "Signed URL (ingress.public_base_url + the path and query as called)",
            );
            row(&mut out, "relay", &url.relay);
            row(
                &mut out,
                "captured",
                url.captured
                    .as_deref()
                    .unwrap_or("(no absolute URL in the capture)"),
            );
            for line in &url.proxy {
                row(&mut out, "proxy", line);
            }
        }
        if !self.params.is_empty() {
            heading(&mut out, self.params_heading);
            for p in &self.params {
                if p.name.is_empty() {
                    row(&mut out, &p.from, &p.value);
                } else {
                    row(&mut out, &p.from, &format!("{}={}", p.name, p.value));
                }
            }
        }
        if !self.read_as.is_empty() {
            heading(&mut out, "Read as (the configured parameter names)");
            for r in &self.read_as {
                row(&mut out, &r.label, &r.text);
            }
        }
        if !self.canonical.is_empty() {
            heading(&mut out, "Canonical string (secrets masked)");
            for c in &self.canonical {
                row(&mut out, &c.label, &c.text);
            }
        }
        if !self.checks.is_empty() {
            heading(&mut out, "Checked");
            for c in &self.checks {
                row(&mut out, "checked", &c.header);
                row(
                    &mut out,
                    "received",
                    c.received.as_deref().unwrap_or("(absent)"),
                );
                if let Some(expected) = &c.expected {
                    row(&mut out, "expected", expected);
                }
                row(&mut out, "result", &c.result);
            }
        }
        if !self.causes.is_empty() {
            heading(&mut out, "Diagnosis");
            for c in &self.causes {
                row(&mut out, &c.kind, &c.detail);
                if let Some(fix) = &c.fix {
                    row(&mut out, "fix", fix);
                }
            }
        }
        if !self.notes.is_empty() {
            heading(&mut out, "Notes");
            for n in &self.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
        out
    }
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}");
}

/// `  label      text`, continuation lines indented under the text.
fn row(out: &mut String, label: &str, text: &str) {
    let mut lines = text.lines();
    let _ = writeln!(out, "  {label:<18} {}", lines.next().unwrap_or_default());
    for line in lines {
        let _ = writeln!(out, "  {:<18} {line}", "");
    }
}

/// A key named by its variable and length, never its value.
pub(crate) fn key_label(what: &str, var: &str, value: &str) -> String {
    format!(
        "{what}: ${var} ({} characters, not shown)",
        value.chars().count()
    )
}

/// A secret inside a canonical string: `<what $VAR, N characters>`.
pub(crate) fn masked(what: &str, var: &str, value: &str) -> String {
    format!("<{what} ${var}, {} characters>", value.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_comes_first_and_names_the_first_cause() {
        let mut r = Report::new("shop", "hmac-sha256", "POST /v1/hooks/shop".to_owned());
        r.causes
            .push(Cause::new("wrong-secret", "no variant verifies", None));
        assert_eq!(r.causes[0].summary, "wrong secret: no variant verifies");
        r.conclude(false, "X-Sig does not match");
        let text = r.render();
        assert!(
            text.starts_with("NOT VERIFIED: X-Sig does not match. Likely cause: wrong secret"),
            "{text}"
        );
        assert!(text.contains("\nDiagnosis\n  wrong-secret"), "{text}");
        assert_eq!(
            key_label("key", "V", "abc"),
            "key: $V (3 characters, not shown)"
        );
    }
}
