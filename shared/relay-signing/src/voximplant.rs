//! Voximplant account callbacks: `hash = md5(salt + account_id + api_key + callback_id)`.
//!
//! Plain string concatenation of the security salt (may be empty), the decimal account id, the
//! account's API key and the decimal callback id; lowercase hex. Compared case-insensitively, in
//! constant time (PROTOCOLS.md, seed 000). [`sample_min_balance`] is the other side: a callback
//! body signed this way, for `relayctl send`, benchmarks and tests.

use md5::{Digest, Md5};

use crate::{VerifyError, ct_eq};

/// The expected `hash` of a callback, lowercase hex.
pub fn callback_hash(salt: &str, account_id: u64, api_key: &str, callback_id: u64) -> String {
    let mut md5 = Md5::new();
    md5.update(salt.as_bytes());
    md5.update(account_id.to_string().as_bytes());
    md5.update(api_key.as_bytes());
    md5.update(callback_id.to_string().as_bytes());
    hex::encode(md5.finalize())
}

/// Verifies a callback's `hash` field.
pub fn verify_callback(
    salt: &str,
    account_id: u64,
    api_key: &str,
    callback_id: u64,
    hash: &str,
) -> Result<(), VerifyError> {
    if hash.is_empty() {
        return Err(VerifyError::Missing);
    }
    if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::Malformed("hash must be 32 hex digits"));
    }
    let expected = callback_hash(salt, account_id, api_key, callback_id);
    // The provided value is public; lowering its case leaks nothing about the expected one.
    let given = hash.to_ascii_lowercase();
    if ct_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// A correctly signed `min_balance` callback body, as Voximplant would send it (for `relayctl
/// send`, benchmarks and tests).
pub fn sample_min_balance(
    account_id: u64,
    callback_id: u64,
    api_key: &str,
    salt: &str,
    balance: f64,
    is_min_credit: bool,
) -> serde_json::Value {
    serde_json::json!({
        "callbacks": [{
            "callback_id": callback_id,
            "type": "min_balance",
            "account_id": account_id,
            "account_name": "sample",
            "account_email": "ops@example.com",
            "language_code": "en",
            "balance": balance,
            "currency": "USD",
            "min_balance": { "is_min_credit": is_min_credit, "is_repeated": false },
            "hash": callback_hash(salt, account_id, api_key, callback_id),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_is_md5_of_the_concatenation() {
        // md5("salt" + "100" + "key" + "7") = md5("salt100key7"), computed independently with
        // `printf salt100key7 | md5sum`.
        assert_eq!(
            callback_hash("salt", 100, "key", 7),
            "153ac2b700fee4d6a9760ce0f13512ac"
        );
        // Empty salt: md5("" + "1" + "k" + "2") = md5("1k2").
        assert_eq!(
            callback_hash("", 1, "k", 2),
            "79c23c16a9526a41d610a1457a382b9e"
        );
    }

    #[test]
    fn the_sample_callback_verifies() {
        let body = sample_min_balance(100, 7, "key", "salt", 0.5, true);
        let callback = &body["callbacks"][0];
        let hash = callback["hash"].as_str().unwrap();
        assert_eq!(verify_callback("salt", 100, "key", 7, hash), Ok(()));
        assert_eq!(callback["type"], "min_balance");
        assert_eq!(callback["min_balance"]["is_min_credit"], true);
    }

    #[test]
    fn verifies_case_insensitively() {
        let h = callback_hash("s", 1, "k", 2);
        assert_eq!(verify_callback("s", 1, "k", 2, &h), Ok(()));
        assert_eq!(verify_callback("s", 1, "k", 2, &h.to_uppercase()), Ok(()));
    }

    #[test]
    fn rejects_wrong_inputs() {
        let h = callback_hash("s", 1, "k", 2);
        assert_eq!(
            verify_callback("s", 1, "k", 3, &h),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_callback("s", 2, "k", 2, &h),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_callback("s", 1, "K", 2, &h),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_callback("t", 1, "k", 2, &h),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_callback("s", 1, "k", 2, ""),
            Err(VerifyError::Missing)
        );
        assert!(matches!(
            verify_callback("s", 1, "k", 2, "zz"),
            Err(VerifyError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn any_changed_hex_digit_fails(
            salt in ".{0,40}", account in any::<u64>(), key in ".{1,40}",
            callback in any::<u64>(), pos in 0usize..32, shift in 1usize..16,
        ) {
            let good = callback_hash(&salt, account, &key, callback);
            prop_assert!(verify_callback(&salt, account, &key, callback, &good).is_ok());
            let mut bad = good.into_bytes();
            // Always a different hex digit: shift the original by 1 to 15 places.
            const HEX: &[u8] = b"0123456789abcdef";
            let original = HEX.iter().position(|&h| h == bad[pos]).unwrap();
            bad[pos] = HEX[(original + shift) % 16];
            let bad = String::from_utf8(bad).unwrap();
            prop_assert_eq!(
                verify_callback(&salt, account, &key, callback, &bad),
                Err(VerifyError::Mismatch)
            );
        }

        #[test]
        fn never_panics_on_any_hash_text(hash in ".{0,80}") {
            let _ = verify_callback("s", 1, "k", 2, &hash);
        }

        /// Number-like hash text, and the id limits: no panic, no match.
        #[test]
        fn numeric_hash_text_never_panics_or_verifies(
            text in crate::test_support::numeric_text(),
            account in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            callback in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
        ) {
            prop_assert!(verify_callback("s", account, "k", callback, &text).is_err());
        }
    }
}
