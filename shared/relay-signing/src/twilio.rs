//! Twilio's `X-Twilio-Signature`, for generic sources that sign the Twilio way.
//!
//! `base64(HMAC-SHA1(auth_token, url + params))` where `params` is, for each parameter name in
//! sorted order, the name followed by each of its distinct values in sorted order. Twilio signs
//! inconsistently with respect to ports, so a signature is valid over the URL without its port or
//! with the scheme's default port added (a written port is kept). A JSON body is covered by a
//! `bodySHA256` query parameter (hex SHA-256 of the body) and the URL is then signed alone
//! (twilio-python `RequestValidator`).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use sha2::Digest;

use crate::url_parts::UrlParts;
use crate::{VerifyError, b64, ct_any, ct_eq};

/// The header name.
pub const HEADER: &str = "X-Twilio-Signature";

/// The signature of `url` with form `params`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(&signed_content(url, params));
    b64().encode(mac.finalize().into_bytes())
}

/// Exactly the bytes the signature of `url` with form `params` covers: the URL, then each
/// name in sorted order followed by each of its distinct values in sorted order. Two requests
/// with the same signed content verify with the same signature, whatever their wire order.
pub fn signed_content(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut grouped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        grouped.entry(k.as_str()).or_default().insert(v.as_str());
    }
    let mut content = url.as_bytes().to_vec();
    for (k, values) in grouped {
        for v in values {
            content.extend_from_slice(k.as_bytes());
            content.extend_from_slice(v.as_bytes());
        }
    }
    content
}

/// The `bodySHA256` value of a raw body: lowercase hex SHA-256.
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(body))
}

/// What the request carried.
pub enum Body<'a> {
    /// Form parameters (signed with the URL).
    Form(&'a [(String, String)]),
    /// A raw body (JSON), covered by the URL's `bodySHA256` parameter.
    Raw(&'a [u8]),
}

/// The two URLs a signature is accepted over ([`verify`]): `url` without its port, and `url`
/// with the scheme's default port when none is written (else as written). `None` when `url` is
/// not absolute.
pub fn signed_urls(url: &str) -> Option<[String; 2]> {
    url_variants(url)
}

/// The URL without its port, and with the default port when none is written.
fn url_variants(url: &str) -> Option<[String; 2]> {
    let parts = UrlParts::parse(url)?;
    let rest = |authority: &str| {
        let mut out = format!("{}://{authority}{}", parts.scheme, parts.path);
        if !parts.query.is_empty() {
            out.push('?');
            out.push_str(parts.query);
        }
        out
    };
    let without = rest(parts.host());
    let with = match (parts.port(), parts.default_port()) {
        (Some(_), _) | (None, None) => url.to_owned(),
        (None, Some(port)) => rest(&format!("{}:{port}", parts.host())),
    };
    Some([without, with])
}

/// Verifies the header against the public `url` and the request's body.
pub fn verify(
    auth_token: &str,
    url: &str,
    body: Body<'_>,
    header: Option<&str>,
) -> Result<(), VerifyError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(VerifyError::Missing)?;
    let variants =
        url_variants(url).ok_or(VerifyError::Malformed("the public URL is not absolute"))?;
    let no_params: &[(String, String)] = &[];
    let params = match body {
        Body::Form(params) => params,
        Body::Raw(raw) => {
            let parts = UrlParts::parse(url)
                .ok_or(VerifyError::Malformed("the public URL is not absolute"))?;
            let claimed = parts
                .query_pairs()
                .into_iter()
                .find(|(k, _)| k == "bodySHA256")
                .map(|(_, v)| v)
                .ok_or(VerifyError::Malformed(
                    "a raw body needs the bodySHA256 query parameter",
                ))?;
            let actual = body_hash(raw);
            if !ct_eq(actual.as_bytes(), claimed.to_ascii_lowercase().as_bytes()) {
                return Err(VerifyError::Mismatch);
            }
            no_params
        }
    };
    let expected: Vec<String> = variants
        .iter()
        .map(|variant| sign(auth_token, variant, params))
        .collect();
    if ct_any(&expected, &[header]) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // twilio-python tests/unit/test_request_validator.py.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn official_vector() {
        assert_eq!(sign(TOKEN, URL, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(
            verify(
                TOKEN,
                URL,
                Body::Form(&params()),
                Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            ),
            Ok(())
        );
    }

    #[test]
    fn port_variants() {
        let p = params();
        // removes_port_on_https: a URL with a port verifies a signature made without it.
        let with_port = URL.replace(".com", ".com:1234");
        assert_eq!(
            verify(
                TOKEN,
                &with_port,
                Body::Form(&p),
                Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            ),
            Ok(())
        );
        // removes_port_on_http: the signature of the http URL with port 1234 as written.
        let http_port = with_port.replace("https", "http");
        assert_eq!(
            verify(
                TOKEN,
                &http_port,
                Body::Form(&p),
                Some("Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
            ),
            Ok(())
        );
        // adds_port_on_https / adds_port_on_http: signed with the default port.
        assert_eq!(
            verify(
                TOKEN,
                URL,
                Body::Form(&p),
                Some("kvajT1Ptam85bY51eRf/AJRuM3w=")
            ),
            Ok(())
        );
        let http = URL.replace("https", "http");
        assert_eq!(
            verify(
                TOKEN,
                &http,
                Body::Form(&p),
                Some("0ZXoZLH/DfblKGATFgpif+LLRf4=")
            ),
            Ok(())
        );
    }

    #[test]
    fn duplicate_params_sort_their_values() {
        let p: Vec<(String, String)> = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(sign(TOKEN, URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn json_body_by_body_sha256() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(hex::encode(sha2::Sha256::digest(body)), hash);
        let url = format!("{URL}&bodySHA256={hash}");
        assert_eq!(
            verify(
                TOKEN,
                &url,
                Body::Raw(body),
                Some("a9nBmqA0ju/hNViExpshrM61xv4=")
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                TOKEN,
                &url,
                Body::Raw(b"{}"),
                Some("a9nBmqA0ju/hNViExpshrM61xv4=")
            ),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(
                TOKEN,
                URL,
                Body::Raw(body),
                Some("a9nBmqA0ju/hNViExpshrM61xv4=")
            ),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn negatives() {
        let p = params();
        let sig = Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(
            verify("54321", URL, Body::Form(&p), sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                TOKEN,
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                Body::Form(&p),
                sig
            ),
            Err(VerifyError::Mismatch)
        );
        let mut extra = p.clone();
        extra.push(("Extra".into(), "1".into()));
        assert_eq!(
            verify(TOKEN, URL, Body::Form(&extra), sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(TOKEN, URL, Body::Form(&p), None),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            verify(
                TOKEN,
                URL,
                Body::Form(&p),
                Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=,x")
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn signed_urls_drop_the_port_or_add_the_default() {
        assert_eq!(
            signed_urls(URL).unwrap(),
            [URL.to_owned(), URL.replace(".com", ".com:443")]
        );
        let with_port = "http://mycompany.com:1234/myapp.php";
        assert_eq!(
            signed_urls(with_port).unwrap(),
            [
                "http://mycompany.com/myapp.php".to_owned(),
                with_port.to_owned()
            ]
        );
        assert!(signed_urls("/myapp.php").is_none());
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_in_a_value_fails(index in 0usize..5, pos in 0usize..8, bit in 0u8..7) {
            let mut p = params();
            let mut value = p[index].1.clone().into_bytes();
            let pos = pos % value.len();
            value[pos] ^= 1 << bit;
            prop_assume!(value.is_ascii());
            p[index].1 = String::from_utf8(value).unwrap();
            prop_assert_eq!(verify(TOKEN, URL, Body::Form(&p), Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")), Err(VerifyError::Mismatch));
        }

        #[test]
        fn never_panics(url in ".{0,60}", body in proptest::collection::vec(any::<u8>(), 0..64), sig in ".{0,40}") {
            let _ = verify(TOKEN, &url, Body::Raw(&body), Some(&sig));
            let _ = verify(TOKEN, &url, Body::Form(&[]), Some(&sig));
        }

        /// Number-like text as the signature or as the `bodySHA256` parameter: no panic, no match.
        #[test]
        fn numeric_header_text_never_panics_or_verifies(text in crate::test_support::numeric_text()) {
            prop_assert!(verify(TOKEN, URL, Body::Form(&params()), Some(&text)).is_err());
            let url = format!("{URL}&bodySHA256={text}");
            let body: &[u8] = b"{}";
            prop_assert!(verify(TOKEN, &url, Body::Raw(body), Some(&text)).is_err());
        }
    }
}
