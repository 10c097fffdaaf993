//! HTTP Basic credentials (RFC 7617), compared in constant time.

use base64::Engine;

use crate::{VerifyError, b64, ct_eq_secret};

/// Verifies an `Authorization` header value against `username` and `password`.
pub fn verify(header: Option<&str>, username: &str, password: &str) -> Result<(), VerifyError> {
    let value = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(VerifyError::Missing)?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or(VerifyError::Malformed("expected `Basic <credentials>`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::Malformed("expected the Basic scheme"));
    }
    let decoded = b64()
        .decode(encoded.trim())
        .map_err(|_| VerifyError::Malformed("credentials are not base64"))?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(VerifyError::Malformed("credentials lack a `:`"))?;
    let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    // Both compared, always: which half was wrong must not show in the timing.
    // Digests, so that neither the configured name's nor the password's length shows.
    let user_ok = ct_eq_secret(user, username.as_bytes());
    let pass_ok = ct_eq_secret(pass, password.as_bytes());
    if user_ok & pass_ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The user name and password of an `Authorization: Basic` value, decoded (for explaining a
/// request; [`verify`] decides).
pub fn credentials(header: &str) -> Result<(Vec<u8>, Vec<u8>), VerifyError> {
    let (scheme, encoded) = header
        .trim()
        .split_once(' ')
        .ok_or(VerifyError::Malformed("expected `Basic <credentials>`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::Malformed("expected the Basic scheme"));
    }
    let decoded = b64()
        .decode(encoded.trim())
        .map_err(|_| VerifyError::Malformed("credentials are not base64"))?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(VerifyError::Malformed("credentials lack a `:`"))?;
    Ok((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// The header value for `username` and `password`.
pub fn header(username: &str, password: &str) -> String {
    format!("Basic {}", b64().encode(format!("{username}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7617_example() {
        // RFC 7617 §2: Aladdin / open sesame.
        assert_eq!(
            header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(
            verify(
                Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
                "Aladdin",
                "open sesame"
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                Some("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
                "Aladdin",
                "open sesame"
            ),
            Ok(())
        );
    }

    #[test]
    fn credentials_decode_the_rfc_example() {
        assert_eq!(
            credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Ok((b"Aladdin".to_vec(), b"open sesame".to_vec()))
        );
        assert!(credentials("Bearer abc").is_err());
        assert!(credentials("Basic dXNlcg==").is_err());
    }

    #[test]
    fn negatives() {
        let good = header("u", "p:with:colons");
        assert_eq!(verify(Some(&good), "u", "p:with:colons"), Ok(()));
        assert_eq!(verify(Some(&good), "u", "p"), Err(VerifyError::Mismatch));
        assert_eq!(
            verify(Some(&good), "v", "p:with:colons"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify(None, "u", "p"), Err(VerifyError::Missing));
        assert!(matches!(
            verify(Some("Bearer abc"), "u", "p"),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some("Basic !!!"), "u", "p"),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some("Basic dXNlcg=="), "u", "p"),
            Err(VerifyError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_single_bit_flip_in_the_credentials_fails(pos in 0usize..16, bit in 0u8..7) {
            let good = header("alice", "secretW0rd");
            let encoded = good.strip_prefix("Basic ").unwrap();
            let mut raw = base64::Engine::decode(&crate::b64(), encoded).unwrap();
            let pos = pos % raw.len();
            raw[pos] ^= 1 << bit;
            let flipped = format!("Basic {}", base64::Engine::encode(&crate::b64(), &raw));
            proptest::prop_assert!(verify(Some(&flipped), "alice", "secretW0rd").is_err());
        }

        #[test]
        fn never_panics(header_value in ".{0,80}") {
            let _ = verify(Some(&header_value), "u", "p");
        }

        #[test]
        fn numeric_header_text_never_panics_or_verifies(text in crate::test_support::numeric_text()) {
            let basic = format!("Basic {text}");
            proptest::prop_assert!(verify(Some(&text), "u", "p").is_err());
            proptest::prop_assert!(verify(Some(&basic), "u", "p").is_err());
        }
    }
}
