//! A captured request: method, URL, headers and body bytes, from a `curl` command line
//! ([`super::curl`]) or from `--method`, `--url`, `--header` and `--body`.

/// One captured request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capture {
    /// Upper-case method.
    pub(crate) method: String,
    /// The URL as captured: absolute, or only the path and query; `None` when not given.
    pub(crate) url: Option<String>,
    /// Headers in their order, names as written.
    pub(crate) headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub(crate) body: Vec<u8>,
    /// What reading the capture assumed or skipped.
    pub(crate) notes: Vec<String>,
}

/// Where the captured URL puts the relay's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `scheme://authority` when the URL is absolute.
    pub(crate) origin: Option<String>,
    /// The path before the relay's route (`/relay` of `/relay/v1/plivo/status`): a proxy in
    /// front must strip it, since the relay's routes start at `/v1/`.
    pub(crate) prefix: String,
    /// The path from `/v1/` on, as the relay is called.
    pub(crate) route: String,
    /// The query without its `?`.
    pub(crate) query: String,
}

impl Target {
    /// The path and query as the relay sees them.
    pub(crate) fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.route.clone()
        } else {
            format!("{}?{}", self.route, self.query)
        }
    }
}

impl Capture {
    /// A capture from the command line's parts; each header is `Name: value`.
    pub(crate) fn from_parts(
        method: Option<String>,
        url: Option<String>,
        headers: &[String],
        body: Vec<u8>,
    ) -> Result<Self, String> {
        let mut parsed = Vec::with_capacity(headers.len());
        for line in headers {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("--header `{line}` is not `Name: value`"))?;
            parsed.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let method = method.map_or_else(
            || if body.is_empty() { "GET" } else { "POST" }.to_owned(),
            |m| m.to_ascii_uppercase(),
        );
        Ok(Self {
            method,
            url,
            headers: parsed,
            body,
            notes: Vec::new(),
        })
    }

    /// The first value of header `name` (any case), as the relay reads it.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times header `name` appears.
    pub(crate) fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The media type of the body, lowercase, without parameters.
    pub(crate) fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Whether the relay reads the body as a form (its Content-Type says so).
    pub(crate) fn is_form(&self) -> bool {
        self.media_type().as_deref() == Some("application/x-www-form-urlencoded")
    }

    /// The URL split around the relay's route; `None` when no URL was captured.
    pub(crate) fn target(&self) -> Option<Target> {
        let url = self.url.as_deref()?;
        let (origin, rest) = match relay_signing::url_parts::UrlParts::parse(url) {
            Some(parts) => (
                Some(format!(
                    "{}://{}",
                    parts.scheme,
                    without_userinfo(parts.authority)
                )),
                (parts.path, parts.query),
            ),
            None => {
                let without_fragment = url.split('#').next().unwrap_or_default();
                let (path, query) = without_fragment
                    .split_once('?')
                    .unwrap_or((without_fragment, ""));
                (None, (path, query))
            }
        };
        let (path, query) = rest;
        let start = path.find("/v1/").unwrap_or(0);
        Some(Target {
            origin,
            prefix: path[..start].to_owned(),
            route: path[start..].to_owned(),
            query: query.to_owned(),
        })
    }

    /// The body as text for display: UTF-8 (lossy), cut after `limit` characters.
    pub(crate) fn body_text(&self, limit: usize) -> String {
        shown(&String::from_utf8_lossy(&self.body), limit)
    }
}

/// The authority without `user:password@` (curl sends those as `Authorization`, not in the URL).
fn without_userinfo(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// `url` with its `user:password@` hidden, for display.
pub(crate) fn display_url(url: &str) -> String {
    match relay_signing::url_parts::UrlParts::parse(url) {
        Some(parts) if parts.authority.contains('@') => url.replacen(
            parts.authority,
            &format!("<credentials hidden>@{}", without_userinfo(parts.authority)),
            1,
        ),
        _ => url.to_owned(),
    }
}

/// `text` cut after `limit` characters, saying how much was left out.
pub(crate) fn shown(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        text.to_owned()
    } else {
        let head: String = text.chars().take(limit).collect();
        format!("{head}… ({} more characters)", count - limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(url: &str) -> Capture {
        Capture {
            url: Some(url.to_owned()),
            ..Capture::default()
        }
    }

    #[test]
    fn the_route_starts_at_v1_and_a_prefix_is_kept_apart() {
        let target = capture("https://example.com/relay/v1/plivo/status/?a=1")
            .target()
            .unwrap();
        assert_eq!(target.origin.as_deref(), Some("https://example.com"));
        assert_eq!(target.prefix, "/relay");
        assert_eq!(target.route, "/v1/plivo/status/");
        assert_eq!(target.path_and_query(), "/v1/plivo/status/?a=1");
        let with_user = capture("https://u:secret@example.com/v1/hooks/shop")
            .target()
            .unwrap();
        assert_eq!(with_user.origin.as_deref(), Some("https://example.com"));
        assert_eq!(
            display_url("https://u:secret@example.com/x"),
            "https://<credentials hidden>@example.com/x"
        );
        let relative = capture("/v1/hooks/shop").target().unwrap();
        assert_eq!((relative.origin, relative.prefix), (None, String::new()));
    }

    #[test]
    fn headers_are_read_in_any_case_first_one_wins() {
        let c = Capture::from_parts(
            None,
            None,
            &["X-A: 1".to_owned(), "x-a: 2".to_owned()],
            b"x".to_vec(),
        )
        .unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(c.header("X-a"), Some("1"));
        assert_eq!(c.header_count("x-A"), 2);
        assert!(Capture::from_parts(None, None, &["nocolon".to_owned()], Vec::new()).is_err());
    }
}
