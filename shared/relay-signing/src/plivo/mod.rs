//! Plivo callback signatures: `X-Plivo-Signature-V3` (and `-Ma-V3` with the main account's
//! token) and the older `X-Plivo-Signature-V2`.
//!
//! V3 signs `url' + "." + nonce` with HMAC-SHA256 and the auth token, base64, where `url'` is
//! built from the public URL Plivo called and the parameters ([`SignedRequest::base_strings`];
//! PROTOCOLS.md): `base = scheme://host[:port]/path` as written, then the query and the
//! parameters URL-decoded, never re-encoded, keys sorted by bytes and **every value of a
//! repeated key kept, its values sorted** (plivo-python and plivo-node): `k=v1&k=v2` in a query,
//! `kv1kv2` in a POST body. The header may carry several signatures separated by commas: any
//! match is enough. The official SDKs differ in a few corners (GET layout, a POST with a query
//! and no params); each of their layouts is accepted as long as it covers every value.
//!
//! Verify a [`SignedRequest`] and read the parameters from it, never from a second parse: the
//! check and the handler then cannot see different values.
//!
//! V2 signs `scheme://host[:port]/path + nonce` (the query dropped).

mod canonical;

pub use canonical::SignedRequest;

use base64::Engine;

use crate::url_parts::UrlParts;
use crate::{VerifyError, b64, ct_any, hmac_sha256};

/// V3 signature header.
pub const SIGNATURE_V3: &str = "X-Plivo-Signature-V3";
/// V3 signature with the main account's token.
pub const SIGNATURE_MA_V3: &str = "X-Plivo-Signature-Ma-V3";
/// V3 nonce header.
pub const NONCE_V3: &str = "X-Plivo-Signature-V3-Nonce";
/// V2 signature header.
pub const SIGNATURE_V2: &str = "X-Plivo-Signature-V2";
/// V2 nonce header.
pub const NONCE_V2: &str = "X-Plivo-Signature-V2-Nonce";

/// The request method, which changes how V3 lays out the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Parameters in the query string.
    Get,
    /// Parameters in a form body.
    Post,
}

impl SignedRequest {
    /// The canonical V3 signature of this request (what relayctl sends).
    pub fn sign_v3(&self, auth_token: &str, nonce: &str) -> String {
        let base = self.base_strings().into_iter().next().unwrap_or_default();
        v3_mac(auth_token, &base, nonce)
    }

    /// Verifies a V3 header (one or several comma-separated signatures) against this request.
    pub fn verify_v3(
        &self,
        auth_token: &str,
        nonce: Option<&str>,
        header: Option<&str>,
    ) -> Result<(), VerifyError> {
        let (nonce, given) = nonce_and_signatures(nonce, header)?;
        let expected: Vec<String> = self
            .base_strings()
            .iter()
            .map(|base| v3_mac(auth_token, base, nonce))
            .collect();
        if ct_any(&expected, &given) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// The strings V3 may sign before the nonce, canonical first ([`SignedRequest::base_strings`]);
/// `None` when `url` is not absolute.
pub fn v3_base_strings(
    url: &str,
    method: Method,
    params: &[(String, String)],
) -> Option<Vec<String>> {
    SignedRequest::new(url, method, params.to_vec()).map(|r| r.base_strings())
}

/// The canonical V3 signature of a request; `params` may repeat a key.
pub fn sign_v3(
    auth_token: &str,
    url: &str,
    method: Method,
    params: &[(String, String)],
    nonce: &str,
) -> Option<String> {
    SignedRequest::new(url, method, params.to_vec()).map(|r| r.sign_v3(auth_token, nonce))
}

/// The V3 signature of one base string (one of [`SignedRequest::base_strings`]) with `nonce`:
/// what a sender signing that layout puts in the header. For explaining a request (relayctl
/// verify); verification compares against every layout at once.
pub fn sign_v3_base(auth_token: &str, base: &str, nonce: &str) -> String {
    v3_mac(auth_token, base, nonce)
}

fn v3_mac(auth_token: &str, base: &str, nonce: &str) -> String {
    b64().encode(hmac_sha256(
        auth_token.as_bytes(),
        &[base.as_bytes(), b".", nonce.as_bytes()],
    ))
}

/// Verifies a V3 header (one or several comma-separated signatures) against the request.
pub fn verify_v3(
    auth_token: &str,
    url: &str,
    method: Method,
    params: &[(String, String)],
    nonce: Option<&str>,
    header: Option<&str>,
) -> Result<(), VerifyError> {
    // The headers first: a request without them is `Missing` whatever its URL.
    nonce_and_signatures(nonce, header)?;
    SignedRequest::new(url, method, params.to_vec())
        .ok_or(VerifyError::Malformed("the public URL is not absolute"))?
        .verify_v3(auth_token, nonce, header)
}

/// The V2 signature of a request.
pub fn sign_v2(auth_token: &str, url: &str, nonce: &str) -> Option<String> {
    let parts = UrlParts::parse(url)?;
    let base = format!("{}://{}{}", parts.scheme, parts.authority, parts.path);
    Some(b64().encode(hmac_sha256(
        auth_token.as_bytes(),
        &[base.as_bytes(), nonce.as_bytes()],
    )))
}

/// Verifies a V2 header.
pub fn verify_v2(
    auth_token: &str,
    url: &str,
    nonce: Option<&str>,
    header: Option<&str>,
) -> Result<(), VerifyError> {
    let (nonce, given) = nonce_and_signatures(nonce, header)?;
    let expected = sign_v2(auth_token, url, nonce)
        .ok_or(VerifyError::Malformed("the public URL is not absolute"))?;
    if ct_any(&[expected], &given) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The nonce and the comma-separated signatures of a header, both required.
fn nonce_and_signatures<'a>(
    nonce: Option<&'a str>,
    header: Option<&'a str>,
) -> Result<(&'a str, Vec<&'a str>), VerifyError> {
    let nonce = nonce
        .filter(|n| !n.is_empty())
        .ok_or(VerifyError::Missing)?;
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(VerifyError::Missing)?;
    Ok((nonce, header.split(',').map(str::trim).collect()))
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
