//! Which URL a signed-URL scheme (Plivo, Twilio) is verified over, and the URLs a sender may
//! have signed instead.
//!
//! The relay verifies over `ingress.public_base_url` + the path and query as called, and reads
//! no proxy header. Behind a proxy the sender's URL can differ in its scheme (TLS terminated in
//! front), host, port (written, omitted, the default one), path prefix (stripped by the proxy)
//! or trailing slash. [`SignedUrl::candidates`] lists those URLs, each with what differs from
//! the relay's, fewest differences first.

use std::collections::BTreeMap;

use relay_signing::url_parts::UrlParts;
use serde::Serialize;

mod forwarded;

use super::capture::{Capture, Target};
use forwarded::forwarded_origin;

/// `scheme://host[:port]prefix`: everything of a URL before the relay's route.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<String>,
    prefix: String,
}

impl Origin {
    fn parse(url: &str) -> Option<Self> {
        let parts = UrlParts::parse(url)?;
        Some(Self {
            scheme: parts.scheme.to_ascii_lowercase(),
            host: parts.host().to_owned(),
            port: parts.port().map(str::to_owned),
            prefix: parts.path.trim_end_matches('/').to_owned(),
        })
    }

    fn text(&self) -> String {
        match &self.port {
            Some(port) => format!("{}://{}:{port}{}", self.scheme, self.host, self.prefix),
            None => format!("{}://{}{}", self.scheme, self.host, self.prefix),
        }
    }

    /// The port a client connects to.
    fn effective_port(&self) -> Option<&str> {
        self.port.as_deref().or_else(|| default_port(&self.scheme))
    }
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    }
}

/// The URL the relay verifies over, with what the capture says about the sender's.
pub(crate) struct SignedUrl {
    /// `public_base_url` + the path and query as called.
    pub(crate) relay: String,
    base: Origin,
    route: String,
    query: String,
    captured: Option<Origin>,
    forwarded: Option<Origin>,
    host: Option<Origin>,
    report: UrlReport,
}

/// What the doctor shows of the URL.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UrlReport {
    /// The URL the relay verified over.
    pub(crate) relay: String,
    /// The URL in the capture, when one was absolute.
    pub(crate) captured: Option<String>,
    /// The proxy headers present and what they imply.
    pub(crate) proxy: Vec<String>,
}

/// A URL the sender may have signed.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The URL.
    pub(crate) url: String,
    /// How it differs from the relay's.
    pub(crate) differences: Vec<String>,
    /// What to change so the relay verifies over it.
    pub(crate) fix: String,
}

impl SignedUrl {
    /// The relay's URL for `target` behind `public_base_url`, with the capture's proxy headers.
    pub(crate) fn new(public_base_url: &str, target: &Target, capture: &Capture) -> Option<Self> {
        let base_text = public_base_url.trim_end_matches('/');
        let base = Origin::parse(base_text)?;
        let relay = format!("{base_text}{}", target.path_and_query());
        let captured = target
            .origin
            .as_deref()
            .and_then(|o| Origin::parse(&format!("{o}{}", target.prefix)));
        let mut proxy = Vec::new();
        let forwarded = forwarded_origin(capture, &base, &mut proxy);
        let host = capture.header("host").and_then(|h| {
            let scheme = captured.as_ref().map_or("http", |c| c.scheme.as_str());
            Origin::parse(&format!("{scheme}://{h}"))
        });
        if let Some(h) = capture.header("host") {
            proxy.push(format!(
                "Host: {h}: the name the relay (or the proxy in front of it) was called by"
            ));
        }
        let url_of = |o: &Origin| format!("{}{}", o.text(), target.path_and_query());
        if let Some(f) = &forwarded {
            let implied = url_of(f);
            proxy.push(if implied == relay {
                format!("together they imply {implied}: the relay's URL")
            } else {
                format!(
                    "together they imply {implied}, not the relay's URL: the relay reads no proxy \
                     header, it verifies over ingress.public_base_url"
                )
            });
        } else if proxy.is_empty() {
            proxy.push(
                "no Host, X-Forwarded-* or Forwarded header: the capture does not show a proxy"
                    .to_owned(),
            );
        }
        let report = UrlReport {
            relay: relay.clone(),
            captured: captured.as_ref().map(url_of),
            proxy,
        };
        Some(Self {
            relay,
            base,
            route: target.route.clone(),
            query: target.query.clone(),
            captured,
            forwarded,
            host,
            report,
        })
    }

    /// What the doctor shows.
    pub(crate) fn report(&self) -> UrlReport {
        self.report.clone()
    }

    /// The URLs a sender may have signed instead of the relay's, fewest differences first.
    pub(crate) fn candidates(&self) -> Vec<Candidate> {
        let origins: Vec<&Origin> = [
            Some(&self.base),
            self.captured.as_ref(),
            self.forwarded.as_ref(),
            self.host.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let prefixes: Vec<&str> = origins
            .iter()
            .map(|o| o.prefix.as_str())
            .chain([""])
            .collect();
        let ports: Vec<Option<&str>> = origins.iter().map(|o| o.port.as_deref()).collect();
        let toggled = match self.route.strip_suffix('/') {
            Some(without) => without.to_owned(),
            None => format!("{}/", self.route),
        };
        let mut found: BTreeMap<String, Candidate> = BTreeMap::new();
        for origin in &origins {
            for scheme in ["http", "https"] {
                let port_choices = ports.iter().copied().chain([None, default_port(scheme)]);
                for port in port_choices {
                    for prefix in &prefixes {
                        for route in [&self.route, &toggled] {
                            let o = Origin {
                                scheme: scheme.to_owned(),
                                host: origin.host.clone(),
                                port: port.map(str::to_owned),
                                prefix: (*prefix).to_owned(),
                            };
                            let candidate = self.candidate(&o, route);
                            if candidate.url != self.relay {
                                found.entry(candidate.url.clone()).or_insert(candidate);
                            }
                        }
                    }
                }
            }
        }
        let mut list: Vec<Candidate> = found.into_values().collect();
        list.sort_by_key(|c| c.differences.len());
        list
    }

    fn candidate(&self, o: &Origin, route: &str) -> Candidate {
        let b = &self.base;
        let mut differences = Vec::new();
        if o.scheme != b.scheme {
            let proxy = self
                .forwarded
                .as_ref()
                .filter(|f| f.scheme == o.scheme)
                .map_or("", |_| ", as X-Forwarded-Proto/Forwarded says");
            differences.push(format!(
                "scheme {} instead of {}{proxy} (TLS ends at a proxy in front)",
                o.scheme, b.scheme
            ));
        }
        if !o.host.eq_ignore_ascii_case(&b.host) {
            differences.push(format!("host {} instead of {}", o.host, b.host));
        }
        if o.port != b.port {
            let text = match (&o.port, &b.port) {
                (Some(p), None) if o.effective_port() == b.effective_port() => {
                    format!("the default port :{p} written out")
                }
                (None, Some(p)) if o.effective_port() == b.effective_port() => {
                    format!("no port instead of the default :{p}")
                }
                (Some(p), Some(q)) => format!("port {p} instead of {q}"),
                (Some(p), None) => format!("port {p} instead of none"),
                (None, Some(q)) => format!("no port instead of {q}"),
                (None, None) => String::new(),
            };
            differences.push(text);
        }
        if o.prefix != b.prefix {
            differences.push(match (o.prefix.is_empty(), b.prefix.is_empty()) {
                (false, true) => format!(
                    "the path prefix {} (a proxy strips it before the relay)",
                    o.prefix
                ),
                (true, false) => format!("no path prefix instead of {}", b.prefix),
                _ => format!("path prefix {} instead of {}", o.prefix, b.prefix),
            });
        }
        let slash = route != self.route;
        if slash {
            differences.push(if route.ends_with('/') {
                "a trailing slash the request that reached the relay lacks".to_owned()
            } else {
                "no trailing slash, while the request that reached the relay has one".to_owned()
            });
        }
        let url = format!(
            "{}{route}{}",
            o.text(),
            if self.query.is_empty() {
                String::new()
            } else {
                format!("?{}", self.query)
            }
        );
        let base_fix = format!("set ingress.public_base_url = \"{}\"", o.text());
        let slash_fix = format!(
            "configure the sender with the URL exactly as it reaches the relay ({}{}); \
             something between them (a proxy rule, a redirect) changes the trailing slash",
            o.text(),
            self.route
        );
        let fix = match (slash, differences.len()) {
            (false, _) => base_fix,
            (true, 1) => slash_fix,
            (true, _) => format!("{base_fix}, and {slash_fix}"),
        };
        Candidate {
            url,
            differences,
            fix,
        }
    }
}

/// The first candidate that `verifies`, and how many others do too.
pub(crate) fn first_verifying(
    candidates: &[Candidate],
    verifies: impl Fn(&str) -> bool,
) -> Option<(Candidate, usize)> {
    let mut matching = candidates.iter().filter(|c| verifies(&c.url));
    let first = matching.next()?.clone();
    Some((first, matching.count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_url(base: &str, url: &str, headers: &[(&str, &str)]) -> SignedUrl {
        let capture = Capture {
            url: Some(url.to_owned()),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Capture::default()
        };
        SignedUrl::new(base, &capture.target().unwrap(), &capture).unwrap()
    }

    #[test]
    fn the_relay_url_is_the_public_base_url_and_the_path_as_called() {
        let s = signed_url(
            "http://127.0.0.1:8080/",
            "https://x.example/v1/plivo/status?a=1",
            &[],
        );
        assert_eq!(s.relay, "http://127.0.0.1:8080/v1/plivo/status?a=1");
        assert_eq!(
            s.report().captured.as_deref(),
            Some("https://x.example/v1/plivo/status?a=1")
        );
    }

    #[test]
    fn candidates_cover_scheme_port_prefix_and_slash() {
        let s = signed_url(
            "http://relay.example",
            "/v1/hooks/t",
            &[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Prefix", "/in"),
            ],
        );
        let urls: Vec<String> = s.candidates().into_iter().map(|c| c.url).collect();
        for expected in [
            "https://relay.example/v1/hooks/t",
            "http://relay.example:80/v1/hooks/t",
            "https://relay.example:443/in/v1/hooks/t",
            "http://relay.example/v1/hooks/t/",
        ] {
            assert!(
                urls.contains(&expected.to_owned()),
                "{expected} in {urls:?}"
            );
        }
        assert!(!urls.contains(&s.relay));
        let first = &s.candidates()[0];
        assert_eq!(first.differences.len(), 1, "{first:?}");
        let https = s
            .candidates()
            .into_iter()
            .find(|c| c.url == "https://relay.example/v1/hooks/t")
            .unwrap();
        assert_eq!(
            https.fix,
            "set ingress.public_base_url = \"https://relay.example\""
        );
        assert!(
            https.differences[0].contains("X-Forwarded-Proto"),
            "{https:?}"
        );
    }
}
