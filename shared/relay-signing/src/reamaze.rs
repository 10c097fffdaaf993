//! Re:amaze `X-Reamaze-Hmac-SHA256`: `base64(HMAC-SHA256(shared_secret, exact body bytes))`, in
//! both directions (PROTOCOLS.md, seed 004).

use crate::{VerifyError, b64, ct_eq, hmac_sha256};
use base64::Engine;

/// The header name.
pub const HEADER: &str = "X-Reamaze-Hmac-SHA256";

/// The header value for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    b64().encode(hmac_sha256(secret, &[body]))
}

/// Verifies the header value against `body`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), VerifyError> {
    let given = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(VerifyError::Missing)?;
    let expected = sign(secret, body);
    if ct_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"your_shared_secret";
    const BODY: &[u8] = br#"{"id":"1","body":"hello"}"#;
    const SIG: &str = "FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=";

    #[test]
    fn computed_vector() {
        assert_eq!(sign(SECRET, BODY), SIG);
        assert_eq!(verify(SECRET, BODY, Some(SIG)), Ok(()));
    }

    #[test]
    fn negatives() {
        assert_eq!(
            verify(b"other", BODY, Some(SIG)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify(SECRET, b"{}", Some(SIG)), Err(VerifyError::Mismatch));
        assert_eq!(verify(SECRET, BODY, None), Err(VerifyError::Missing));
        assert_eq!(verify(SECRET, BODY, Some("")), Err(VerifyError::Missing));
        assert_eq!(
            verify(SECRET, BODY, Some(&format!("{SIG},{SIG}"))),
            Err(VerifyError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_fails(pos in 0usize..BODY.len(), bit in 0u8..8) {
            let mut body = BODY.to_vec();
            body[pos] ^= 1 << bit;
            prop_assert_eq!(verify(SECRET, &body, Some(SIG)), Err(VerifyError::Mismatch));
        }

        #[test]
        fn numeric_header_text_never_panics_or_verifies(text in crate::test_support::numeric_text()) {
            prop_assert!(verify(SECRET, BODY, Some(&text)).is_err());
        }
    }
}
