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

    /// A key of raw bytes, not decoded from a `whsec_` secret: for explaining what a sender
    /// that keys its HMAC with the secret's text (a common mistake) would have signed.
    pub fn from_key_bytes(key: &[u8]) -> Self {
        Self(key.to_vec())
    }
}

/// Exactly the bytes a signature covers: `id + "." + timestamp + "." + body`.
pub fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
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
    // `abs_diff` is exact over the whole i64 range: `(now - ts).abs()` overflows for a
    // timestamp near i64::MIN (a panic in debug builds; in release a wrapped, negative distance
    // that accepted a centuries-old request). A negative tolerance accepts nothing but `now`.
    if now.abs_diff(ts) > u64::try_from(tolerance_secs).unwrap_or(0) {
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
    fn signed_content_and_raw_keys() {
        assert_eq!(
            signed_content(ID, TS, BODY),
            br#"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}"#.to_vec()
        );
        let decoded = b64().decode(&SECRET["whsec_".len()..]).unwrap();
        assert_eq!(sign(&Secret::from_key_bytes(&decoded), ID, TS, BODY), SIG);
        assert_ne!(
            sign(&Secret::from_key_bytes(SECRET.as_bytes()), ID, TS, BODY),
            SIG
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert!(Secret::parse("whsec_").is_err());
    }

    /// A correctly signed timestamp `now - 2^63`: `(now - ts).abs()` overflowed (a panic in
    /// debug builds, a negative difference and an accepted request in release).
    #[test]
    fn a_timestamp_centuries_off_is_stale_at_any_clock() {
        let key = secret();
        let at = |ts: i64, now: i64| {
            verify(
                &key,
                Some(ID),
                Some(&ts.to_string()),
                Some(&sign(&key, ID, ts, BODY)),
                BODY,
                now,
                DEFAULT_TOLERANCE_SECS,
            )
        };
        let centuries_ago = TS + i64::MIN;
        assert_eq!(at(centuries_ago, TS), Err(VerifyError::Stale));
        assert_eq!(at(i64::MIN, i64::MAX), Err(VerifyError::Stale));
        assert_eq!(at(i64::MAX, i64::MIN), Err(VerifyError::Stale));
        assert_eq!(at(i64::MIN, 0), Err(VerifyError::Stale));
        assert_eq!(at(i64::MAX, -1), Err(VerifyError::Stale));
        assert_eq!(at(i64::MIN, i64::MIN), Ok(()));
        assert_eq!(at(i64::MAX, i64::MAX), Ok(()));
        assert_eq!(at(i64::MIN + 300, i64::MIN), Ok(()));
        assert_eq!(at(i64::MAX - 301, i64::MAX), Err(VerifyError::Stale));
    }

    proptest! {
        /// Accepted exactly when the exact distance is within the tolerance, whatever the
        /// clock and the signed timestamp (computed in i128, where nothing overflows).
        #[test]
        fn the_window_holds_for_every_timestamp_and_clock(
            ts in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), TS - 400..TS + 400],
            now in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(TS)],
            tolerance in prop_oneof![Just(DEFAULT_TOLERANCE_SECS), Just(0i64), Just(i64::MAX), Just(-1i64)],
        ) {
            let key = secret();
            let result = verify(&key, Some(ID), Some(&ts.to_string()), Some(&sign(&key, ID, ts, BODY)), BODY, now, tolerance);
            let within = (i128::from(now) - i128::from(ts)).abs() <= i128::from(tolerance.max(0));
            prop_assert_eq!(result, if within { Ok(()) } else { Err(VerifyError::Stale) });
        }

        /// Whatever number-like text the timestamp header holds, nothing panics, and it verifies
        /// only as the integer it spells.
        #[test]
        fn timestamp_header_text_never_panics(
            text in crate::test_support::numeric_text(),
            now in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(TS)],
        ) {
            let key = secret();
            let parsed = text.trim().parse::<i64>().ok();
            let sig = sign(&key, ID, parsed.unwrap_or(TS), BODY);
            let result = verify(&key, Some(ID), Some(&text), Some(&sig), BODY, now, DEFAULT_TOLERANCE_SECS);
            match parsed {
                None => prop_assert!(matches!(result, Err(VerifyError::Malformed(_)))),
                Some(ts) => {
                    let within = (i128::from(now) - i128::from(ts)).abs() <= i128::from(DEFAULT_TOLERANCE_SECS);
                    prop_assert_eq!(result, if within { Ok(()) } else { Err(VerifyError::Stale) });
                }
            }
        }

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
