//! The request's parameters, wherever the app put them.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use serde_json::Value;

use super::reply::Refusal;

/// The request's parameters: query, then a form or JSON body (numbers become text).
pub(super) fn parameters(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Refusal> {
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.contains("json") {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                crate::problem::types::MALFORMED_BODY,
                "malformed",
                format!("The request body is not JSON: {e}"),
            )
        })?;
        let object = value.as_object().ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                crate::problem::types::MALFORMED_BODY,
                "malformed",
                "The request body must be a JSON object.",
            )
        })?;
        for (k, v) in object {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            params.push((k.clone(), text));
        }
    } else {
        // The app's default is form encoding, also when it sends no Content-Type.
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(params)
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
