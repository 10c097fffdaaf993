//! Standard Webhooks (<https://www.standardwebhooks.com>): outbound signing for generic webhooks,
//! inbound verification for the relay's own Voximplant scenario.
//!
//! Signed content is `id + "." + timestamp + "." + body`, HMAC-SHA256 keyed with the base64
//! decoding of the secret after its `whsec_` prefix. `webhook-signature` holds space-separated
//! `v1,<base64>` entries (several during a secret rotation); any one matching is enough.
//! Receivers reject timestamps more than five minutes off.

use base64::Engine;

use crate::{SecretError, VerifyError, b64, ct_eq, hmac_sha256};

/// Header carrying the message id.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the unix timestamp in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// Default tolerance between the signed timestamp and the receiver's clock, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// A decoded signing key.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard_webhooks::Secret(..)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretError(
            "a Standard Webhooks secret starts with `whsec_`",
        ))?;
        let key = b64()
            .decode(encoded)
            .map_err(|_| SecretError("the part after `whsec_` is not base64"))?;
        if key.is_empty() {
            return Err(SecretError("the key is empty"));
        }
        Ok(Self(key))
    }
}

/// The `v1,<base64>` signature of a message.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(&secret.0, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", b64().encode(mac))
}

/// Verifies the three headers' values against `body`, at `now` (unix seconds).
pub fn verify(
    secret: &Secret,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(VerifyError::Missing);
    };
    if id.is_empty() {
        return Err(VerifyError::Missing);
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed("webhook-timestamp is not unix seconds"))?;
    if (now - ts).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let expected = sign(secret, id, ts, body);
    let expected = &expected.as_bytes()[3..];
    let mut any_v1 = false;
    let mut matched = false;
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        if let Some(sig) = entry.strip_prefix("v1,") {
            any_v1 = true;
            // Keep comparing after a match so the time does not depend on which entry matched.
            matched |= ct_eq(sig.as_bytes(), expected);
        }
    }
    match (matched, any_v1) {
        (true, _) => Ok(()),
        (false, true) => Err(VerifyError::Mismatch),
        (false, false) => Err(VerifyError::Malformed("no v1 signature")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The vector every reference library tests (PROTOCOLS.md).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        Secret::parse(SECRET).unwrap()
    }

    fn check(sig: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        verify(
            &secret(),
            Some(ID),
            Some(&TS.to_string()),
            Some(sig),
            body,
            now,
            DEFAULT_TOLERANCE_SECS,
        )
    }

    #[test]
    fn official_vector_signs_and_verifies() {
        assert_eq!(sign(&secret(), ID, TS, BODY), SIG);
        assert_eq!(check(SIG, BODY, TS), Ok(()));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let rotated = format!("v1,Zm9vYmFy {SIG} v2,abc");
        assert_eq!(check(&rotated, BODY, TS), Ok(()));
    }

    #[test]
    fn rejects_tampering_and_staleness() {
        assert_eq!(
            check(SIG, br#"{"test": 2432232315}"#, TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check("v1,Zm9vYmFy", BODY, TS), Err(VerifyError::Mismatch));
        assert_eq!(check(SIG, BODY, TS + 301), Err(VerifyError::Stale));
        assert_eq!(check(SIG, BODY, TS - 301), Err(VerifyError::Stale));
        assert_eq!(check(SIG, BODY, TS + 300), Ok(()));
        assert!(matches!(
            check("v2,abc", BODY, TS),
            Err(VerifyError::Malformed(_))
        ));
        let other = Secret::parse("whsec_c2VjcmV0").unwrap();
        assert_eq!(
            verify(
                &other,
                Some(ID),
                Some(&TS.to_string()),
                Some(SIG),
                BODY,
                TS,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&secret(), None, Some("1"), Some(SIG), BODY, TS, 300),
            Err(VerifyError::Missing)
        );
        assert!(matches!(
            verify(&secret(), Some(ID), Some("soon"), Some(SIG), BODY, TS, 300),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert!(Secret::parse("whsec_").is_err());
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_in_the_body_fails(pos in 0usize..BODY.len(), bit in 0u8..8) {
            let mut body = BODY.to_vec();
            body[pos] ^= 1 << bit;
            prop_assert_eq!(check(SIG, &body, TS), Err(VerifyError::Mismatch));
        }

        #[test]
        fn never_panics_on_arbitrary_headers(id in ".{0,40}", ts in ".{0,20}", sig in ".{0,200}") {
            let _ = verify(&secret(), Some(&id), Some(&ts), Some(&sig), BODY, TS, 300);
        }
    }
}
