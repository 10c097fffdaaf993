//! The string `X-Plivo-Signature-V3` signs before `"." + nonce`, built from a request parsed
//! once ([`SignedRequest`]) so that the caller reads its parameters from exactly what was
//! verified.
//!
//! plivo-python (`plivo/utils/signature_v3.py`) and plivo-node (`lib/utils/v3Security.js`), the
//! two SDKs that model repeated keys, agree on them: every value is kept, URL-decoded, and the
//! values of a key are sorted (byte order, which is code-point order). The single-valued SDKs
//! (plivo-go, -ruby, -java, -dotnet) sign one value of a repeated key, or fail; a candidate that
//! covers only some values would let a captured request be replayed with one more value, so
//! none is accepted. Research and vectors: `research/plivo-v3-repeated-keys.md`.

use crate::url_parts::UrlParts;

use super::Method;

/// A Plivo callback as V3 signs it: the public URL it was sent to, its query and its POST form
/// decoded once, every value of every key kept.
///
/// Both parameter lists are held in the order the signature covers them: keys sorted, a key's
/// values sorted. Their wire order is not signed (the SDKs sort before signing), so whoever
/// reads them gets the same view whatever order the sender chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The URL as given, for the legacy GET layout that signs its text.
    url: String,
    /// `scheme://authority/path` as written (port, trailing slash and escapes kept).
    base: String,
    method: Method,
    /// The URL's query, decoded (`+` is a space), sorted.
    query: Vec<(String, String)>,
    /// The POST form (or, for GET, parameters given apart from the URL), decoded, sorted.
    form: Vec<(String, String)>,
}

impl SignedRequest {
    /// The request to `url` with `form` parameters (a POST body, or for GET parameters given
    /// apart from the URL's query; the relay itself passes a GET's URL whole and no form).
    /// `None` when `url` is not absolute.
    pub fn new(url: &str, method: Method, mut form: Vec<(String, String)>) -> Option<Self> {
        let parts = UrlParts::parse(url)?;
        let base = format!("{}://{}{}", parts.scheme, parts.authority, parts.path);
        let mut query = parts.query_pairs();
        query.sort_unstable();
        form.sort_unstable();
        Some(Self {
            url: url.to_owned(),
            base,
            method,
            query,
            form,
        })
    }

    /// The request to `url` with a form-encoded `body` (read only for POST).
    pub fn from_body(url: &str, method: Method, body: &[u8]) -> Option<Self> {
        let form = match method {
            Method::Get => Vec::new(),
            Method::Post => form_urlencoded::parse(body).into_owned().collect(),
        };
        Self::new(url, method, form)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL's query parameters, decoded, in signed order (keys, then a key's values, sorted).
    pub fn query(&self) -> &[(String, String)] {
        &self.query
    }

    /// The form parameters, decoded, in signed order.
    pub fn form(&self) -> &[(String, String)] {
        &self.form
    }

    /// The strings V3 may sign before the nonce, canonical first.
    ///
    /// Canonical (plivo-python, plivo-node, and every SDK when no key repeats): for GET,
    /// `base` then, when there is any parameter, `"?"` and the URL's query and the separate
    /// parameters together (both kept when a key is in each, as plivo-node does), sorted, as
    /// `k=v` joined by `&`; for POST, `base`, then `"?"` when there is a query or a form, the
    /// sorted query as `k=v&…`, `"."` when there are both, and the sorted form as `kv`
    /// concatenated. Other layouts, each over every value: for GET with separate parameters
    /// the legacy one of plivo-go and plivo-ruby (the URL's text with its slashes trimmed, `/?`
    /// or `&`, then `k=v&` per parameter, the last `&` kept, which their old GET vector signs);
    /// for a POST with a query and no form, also with the `.` (plivo-java).
    pub fn base_strings(&self) -> Vec<String> {
        let mut candidates = Vec::with_capacity(2);
        match self.method {
            Method::Get => {
                let mut merged: Vec<&(String, String)> =
                    self.query.iter().chain(&self.form).collect();
                merged.sort_unstable();
                candidates.push(if merged.is_empty() {
                    self.base.clone()
                } else {
                    format!("{}?{}", self.base, query_string(merged))
                });
                if !self.form.is_empty() {
                    let joiner = if self.query.is_empty() { "/?" } else { "&" };
                    let mut legacy = format!("{}{joiner}", self.url.trim_matches('/'));
                    for (k, v) in &self.form {
                        legacy.push_str(k);
                        legacy.push('=');
                        legacy.push_str(v);
                        legacy.push('&');
                    }
                    candidates.push(legacy);
                }
            }
            Method::Post => {
                let body: String = self.form.iter().map(|(k, v)| format!("{k}{v}")).collect();
                match (self.query.is_empty(), body.is_empty()) {
                    (true, true) => candidates.push(self.base.clone()),
                    (true, false) => candidates.push(format!("{}?{body}", self.base)),
                    (false, false) => candidates.push(format!(
                        "{}?{}.{body}",
                        self.base,
                        query_string(&self.query)
                    )),
                    (false, true) => {
                        let with_query = format!("{}?{}", self.base, query_string(&self.query));
                        candidates.push(format!("{with_query}."));
                        candidates.insert(0, with_query);
                    }
                }
            }
        }
        candidates
    }
}

/// Sorted pairs as `k=v` joined by `&`, neither re-encoded: a repeated key gives `k=v1&k=v2`.
fn query_string<'a>(pairs: impl IntoIterator<Item = &'a (String, String)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}
