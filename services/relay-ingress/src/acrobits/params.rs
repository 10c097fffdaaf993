//! The request's parameters, wherever the app put them.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use serde_json::Value;

use super::reply::Refusal;

/// One parameter of a web-callback request, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// `query`, `json` or `form`.
    pub from: &'static str,
    /// Its name.
    pub name: String,
    /// Its value (JSON numbers and booleans as text).
    pub value: String,
}

/// Why the body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// A JSON content type with a body that is not JSON.
    #[error("The request body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("The request body must be a JSON object.")]
    NotAnObject,
}

/// The parameters exactly as the route reads them: the query, then a JSON body (strings,
/// numbers, booleans) when the content type says JSON, else a form body (the app's default,
/// also without a content type). Public so that `relayctl verify` reads a capture the same way.
pub fn read(
    query: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<Parameter>, ParameterError> {
    let pairs = |from: &'static str, bytes: &[u8]| -> Vec<Parameter> {
        form_urlencoded::parse(bytes)
            .map(|(k, v)| Parameter {
                from,
                name: k.into_owned(),
                value: v.into_owned(),
            })
            .collect()
    };
    let mut params = pairs("query", query.as_bytes());
    if body.is_empty() {
        return Ok(params);
    }
    if content_type.to_ascii_lowercase().contains("json") {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ParameterError::NotJson(e.to_string()))?;
        let object = value.as_object().ok_or(ParameterError::NotAnObject)?;
        for (k, v) in object {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            params.push(Parameter {
                from: "json",
                name: k.clone(),
                value: text,
            });
        }
    } else {
        params.extend(pairs("form", body));
    }
    Ok(params)
}

/// The request's parameters as (name, value), or the refusal for an unreadable body.
pub(super) fn parameters(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    read(uri.query().unwrap_or_default(), content_type, body)
        .map(|params| params.into_iter().map(|p| (p.name, p.value)).collect())
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                crate::problem::types::MALFORMED_BODY,
                "malformed",
                e.to_string(),
            )
        })
}

pub(super) fn first<'a>(params: &'a [(String, String)], names: &[String]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    proptest::proptest! {
        #[test]
        fn parameters_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            json in proptest::prelude::any::<bool>(),
            query in "[a-zA-Z0-9=&%+]{0,60}",
        ) {
            let uri: Uri = format!("/v1/acrobits/web-callback?{query}").parse().unwrap();
            let ct = if json { "application/json" } else { "application/x-www-form-urlencoded" };
            let _ = parameters(&uri, &headers(&[(header::CONTENT_TYPE, ct)]), &body);
        }
    }
}
