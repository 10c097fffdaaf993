//! Splitting a URL into its raw parts, exactly as providers' SDKs see it.
//!
//! Signed-URL schemes sign the URL *text*: a general URL parser would normalise it (an empty
//! path becomes `/`, default ports vanish, escapes change) and break signatures that the
//! providers compute over the raw form. This keeps every part as written.

/// The raw parts of `scheme://authority/path?query#fragment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `https`.
    pub scheme: &'a str,
    /// Host with its port, if written (`example.com:8443`).
    pub authority: &'a str,
    /// Path as written, possibly empty.
    pub path: &'a str,
    /// Query without the `?`, possibly empty.
    pub query: &'a str,
}

impl<'a> UrlParts<'a> {
    /// Splits an absolute URL; `None` when it has no `scheme://`.
    pub fn parse(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        Some(Self {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// Host without port.
    pub fn host(&self) -> &'a str {
        self.split_port().0
    }

    /// The port, when written.
    pub fn port(&self) -> Option<&'a str> {
        self.split_port().1
    }

    fn split_port(&self) -> (&'a str, Option<&'a str>) {
        // An IPv6 literal holds colons inside brackets; only a colon after them starts a port.
        let search_from = self.authority.rfind(']').map_or(0, |i| i + 1);
        match self.authority[search_from..].rfind(':') {
            Some(i) => {
                let at = search_from + i;
                (&self.authority[..at], Some(&self.authority[at + 1..]))
            }
            None => (self.authority, None),
        }
    }

    /// The scheme's default port.
    pub fn default_port(&self) -> Option<&'static str> {
        match self.scheme.to_ascii_lowercase().as_str() {
            "https" => Some("443"),
            "http" => Some("80"),
            _ => None,
        }
    }

    /// Decoded query pairs, in order (`+` is a space, as in form encoding).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_part_raw() {
        let u = UrlParts::parse("https://example.com:8443/a/b.xml?x=1&y=%20#frag").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.authority, "example.com:8443");
        assert_eq!((u.host(), u.port()), ("example.com", Some("8443")));
        assert_eq!(u.path, "/a/b.xml");
        assert_eq!(u.query, "x=1&y=%20");
        assert_eq!(
            u.query_pairs(),
            vec![("x".into(), "1".into()), ("y".into(), " ".into())]
        );
    }

    #[test]
    fn empty_path_stays_empty() {
        let u = UrlParts::parse("https://answer.url").unwrap();
        assert_eq!((u.authority, u.path, u.query), ("answer.url", "", ""));
        let q = UrlParts::parse("https://answer.url?a=1").unwrap();
        assert_eq!((q.authority, q.path, q.query), ("answer.url", "", "a=1"));
    }

    #[test]
    fn ipv6_hosts_and_junk() {
        let u = UrlParts::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host(), u.port()), ("[::1]", Some("8080")));
        assert_eq!(UrlParts::parse("http://[::1]/x").unwrap().port(), None);
        assert!(UrlParts::parse("no-scheme").is_none());
        assert!(UrlParts::parse("://x").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_text_splits_without_panicking_and_reassembles(url in ".{0,80}") {
            if let Some(u) = UrlParts::parse(&url) {
                let _ = (u.host(), u.port(), u.default_port(), u.query_pairs());
                let rebuilt = format!("{}://{}{}{}{}", u.scheme, u.authority, u.path, if u.query.is_empty() { "" } else { "?" }, u.query);
                let without_fragment = url.split('#').next().unwrap_or_default();
                let with_empty_query = format!("{rebuilt}?");
                let reassembles = without_fragment == rebuilt || without_fragment == with_empty_query;
                proptest::prop_assert!(reassembles, "{} != {}", without_fragment, rebuilt);
            }
        }
    }
}
