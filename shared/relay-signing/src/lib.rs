//! Every verification and signing scheme the relay speaks, as pure functions over raw bytes.
//!
//! No I/O and no clock: callers pass `now` where a scheme has a time window, so every rule is
//! testable with the providers' official vectors (`../shared/PROTOCOLS.md`). Every comparison of
//! a signature or hash is constant-time ([`ct_eq`]); errors never echo a secret or the expected
//! value.

pub mod basic;
pub mod digest;
pub mod hmac_header;
pub mod password;
pub mod plivo;
pub mod reamaze;
pub mod standard_webhooks;
pub mod twilio;
pub mod url_parts;
pub mod voximplant;

#[cfg(test)]
mod test_support;

use subtle::ConstantTimeEq;

/// Why a request does not verify. Deliberately coarse: the caller answers 401 either way, and a
/// finer reason must never reveal what the right value would have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature (or one of its companion headers) is absent.
    #[error("signature missing")]
    Missing,
    /// The signature header is present but not in the scheme's format.
    #[error("signature malformed: {0}")]
    Malformed(&'static str),
    /// The signature does not match.
    #[error("signature does not match")]
    Mismatch,
    /// The signed timestamp is outside the accepted window.
    #[error("timestamp outside the accepted window")]
    Stale,
}

/// A secret that cannot be used for its scheme (checked at start-up, never per request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret: {0}")]
pub struct SecretError(pub &'static str);

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Equality of two secrets (passwords, user names) that takes the same time whatever their
/// lengths: their SHA-256 digests are compared in constant time, so neither a difference in
/// length nor the position of the first differing byte shows. (`ct_eq` tells lengths apart,
/// which is public for signatures but not for a password.)
pub fn ct_eq_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (x, y) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    bool::from(x.as_slice().ct_eq(y.as_slice()))
}

/// Whether any `given` signature equals any `expected` one. Every pair is compared in constant
/// time and none is skipped, so timing reveals neither which candidate matched nor how close a
/// wrong one came (the number of candidates is public).
pub(crate) fn ct_any(expected: &[String], given: &[&str]) -> bool {
    let mut matched = false;
    for e in expected {
        for g in given {
            matched |= ct_eq(e.as_bytes(), g.as_bytes());
        }
    }
    matched
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn secrets_compare_by_content_whatever_their_lengths() {
        assert!(ct_eq_secret(b"s3cret", b"s3cret"));
        assert!(!ct_eq_secret(b"s3cret", b"s3cre"));
        assert!(!ct_eq_secret(b"s3cret", b"s3cret-and-more"));
        assert!(!ct_eq_secret(b"", b"x"));
        assert!(ct_eq_secret(b"", b""));
    }
}
