//! The `voximplant-jwt` profile: a service-account token for Voximplant's HTTP API, and the
//! reading of its answers.
//!
//! The key file is what Voximplant's `CreateKey` returns (saved as is, `{"result": {...}}`, or
//! its inner object): `account_id`, `key_id` and an RSA `private_key` in PEM. The token is RS256
//! with the header `kid` = key id and the claims `iss` = account id, `iat` and `exp` (at most an
//! hour after `iat`, PROTOCOLS.md); it is minted once and reused until [`RENEW_BEFORE`] its
//! expiry, so a request never carries a token about to lapse.
//!
//! Voximplant answers a failed API call with HTTP 200 and `{"error": {"code": …, "msg": …}}`:
//! [`api_error`] finds it, and delivery treats it as a refusal (not retried: an origination
//! retried blindly could ring a phone twice).

use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Lifetime of a minted token: the most Voximplant accepts.
pub(crate) const LIFETIME: i64 = 3600;
/// A cached token is replaced when less than this is left of it.
pub(crate) const RENEW_BEFORE: i64 = 600;

/// A parsed service-account key, with its current token.
pub(crate) struct Key {
    account_id: serde_json::Value,
    key_id: String,
    encoding: EncodingKey,
    cached: Mutex<Option<Token>>,
}

#[derive(Clone)]
struct Token {
    value: Arc<str>,
    expires: i64,
}

#[derive(Deserialize)]
struct KeyFile {
    account_id: serde_json::Value,
    key_id: String,
    private_key: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Saved {
    Wrapped { result: KeyFile },
    Bare(KeyFile),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a serde_json::Value,
    iat: i64,
    exp: i64,
}

impl Key {
    /// Parses a key file. Errors name what is wrong, never the key.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let saved: Saved = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a Voximplant key file (JSON with account_id, key_id, private_key): {}",
                // serde's message names the field or the position, not the content.
                e.classify_name()
            )
        })?;
        let file = match saved {
            Saved::Wrapped { result } => result,
            Saved::Bare(file) => file,
        };
        if !(file.account_id.is_u64() || file.account_id.is_string()) {
            return Err("account_id must be a number or a string".to_owned());
        }
        if file.key_id.is_empty() {
            return Err("key_id is empty".to_owned());
        }
        let encoding = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| "private_key is not an RSA private key in PEM".to_owned())?;
        Ok(Self {
            account_id: file.account_id,
            key_id: file.key_id,
            encoding,
            cached: Mutex::new(None),
        })
    }

    /// A token valid at `now` (unix seconds) for at least [`RENEW_BEFORE`].
    pub(crate) fn token(&self, now: i64) -> Result<Arc<str>, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = cached.as_ref()
            && token.expires - now > RENEW_BEFORE
        {
            return Ok(token.value.clone());
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.account_id,
            iat: now,
            exp: now + LIFETIME,
        };
        let value: Arc<str> = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| format!("could not sign the Voximplant token: {e}"))?
            .into();
        *cached = Some(Token {
            value: value.clone(),
            expires: now + LIFETIME,
        });
        Ok(value)
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "not valid JSON"
            }
            serde_json::error::Category::Data => "a field is missing or of the wrong type",
        }
    }
}

/// The error a 2xx Voximplant answer carries in its body, if any, as `code N: message`.
pub(crate) fn api_error(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    if !error.is_object() {
        return None;
    }
    let code = error.get("code").map(ToString::to_string);
    let msg = error
        .get("msg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    Some(match code {
        Some(code) => format!("Voximplant API error {code}: {msg}"),
        None => format!("Voximplant API error: {msg}"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    /// A throwaway 2048-bit key made for these tests (openssl genrsa), never used anywhere else.
    pub(crate) const PRIVATE_PEM: &str = include_str!("../tests/fixtures/voximplant-test-key.pem");
    pub(crate) const PUBLIC_PEM: &str =
        include_str!("../tests/fixtures/voximplant-test-key.pub.pem");

    pub(crate) fn key_file(wrapped: bool) -> String {
        let inner = serde_json::json!({
            "account_email": "ops@example.com",
            "account_id": 4242,
            "key_id": "1f2e3d4c-0000-4000-8000-000000000001",
            "private_key": PRIVATE_PEM,
        });
        if wrapped {
            serde_json::json!({ "result": inner }).to_string()
        } else {
            inner.to_string()
        }
    }

    #[derive(Deserialize)]
    struct Seen {
        iss: u64,
        iat: i64,
        exp: i64,
    }

    #[test]
    fn the_token_verifies_with_the_public_key_and_carries_kid_iss_iat_exp() {
        for wrapped in [true, false] {
            let key = Key::parse(&key_file(wrapped)).unwrap();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let token = key.token(now).unwrap();
            let decoding = DecodingKey::from_rsa_pem(PUBLIC_PEM.as_bytes()).unwrap();
            let mut validation = Validation::new(Algorithm::RS256);
            // `iss` is a number (the account id), as Voximplant's SDKs send it; checked below.
            validation.set_required_spec_claims(&["exp"]);
            let data =
                jsonwebtoken::decode::<Seen>(token.as_bytes(), &decoding, &validation).unwrap();
            assert_eq!(
                data.header.kid.as_deref(),
                Some("1f2e3d4c-0000-4000-8000-000000000001")
            );
            assert_eq!(data.claims.iss, 4242);
            assert_eq!(data.claims.iat, now);
            assert!(data.claims.exp > now && data.claims.exp - data.claims.iat <= 3600);
        }
    }

    #[test]
    fn the_token_is_reused_until_shortly_before_it_expires() {
        let key = Key::parse(&key_file(true)).unwrap();
        let first = key.token(1_000_000).unwrap();
        assert_eq!(
            key.token(1_000_000 + LIFETIME - RENEW_BEFORE - 1).unwrap(),
            first
        );
        let renewed = key.token(1_000_000 + LIFETIME - RENEW_BEFORE).unwrap();
        assert_ne!(renewed, first);
    }

    #[test]
    fn bad_key_files_are_refused_without_quoting_them() {
        for (text, expect) in [
            ("{", "not valid JSON"),
            (r#"{"account_id": 1, "key_id": "k"}"#, "missing"),
            (
                r#"{"account_id": 1, "key_id": "k", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"}"#,
                "not an RSA private key",
            ),
            (
                r#"{"account_id": [1], "key_id": "k", "private_key": "x"}"#,
                "account_id",
            ),
        ] {
            let err = Key::parse(text).err().unwrap();
            assert!(err.contains(expect), "{text}: {err}");
            assert!(!err.contains("AAAA"));
        }
    }

    #[test]
    fn an_error_body_is_found_and_a_result_is_not() {
        assert_eq!(
            api_error(br#"{"error": {"code": 100, "msg": "Invalid rule_id"}}"#).as_deref(),
            Some("Voximplant API error 100: Invalid rule_id")
        );
        assert_eq!(
            api_error(br#"{"result": 1, "media_session_access_url": "https://x"}"#),
            None
        );
        assert_eq!(api_error(b"not json"), None);
        assert_eq!(api_error(br#"{"error": "text"}"#), None);
    }
}
