//! A generic "HMAC-SHA256 of the body in a header" scheme, for sources configured by name:
//! a header (e.g. `X-Hub-Signature-256`), hex or base64, an optional prefix (e.g. `sha256=`).

use base64::Engine;

use crate::{VerifyError, b64, ct_eq, hmac_sha256};

/// How the MAC is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase or uppercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// The header value for `body`.
pub fn sign(secret: &[u8], body: &[u8], encoding: Encoding, prefix: &str) -> String {
    let mac = hmac_sha256(secret, &[body]);
    let encoded = match encoding {
        Encoding::Hex => hex::encode(mac),
        Encoding::Base64 => b64().encode(mac),
    };
    format!("{prefix}{encoded}")
}

/// Verifies a header value against `body`.
pub fn verify(
    secret: &[u8],
    body: &[u8],
    encoding: Encoding,
    prefix: &str,
    header: Option<&str>,
) -> Result<(), VerifyError> {
    let value = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(VerifyError::Missing)?;
    let given = value
        .strip_prefix(prefix)
        .ok_or(VerifyError::Malformed("the signature lacks its prefix"))?;
    let mac = hmac_sha256(secret, &[body]);
    let matches = match encoding {
        // Hex is case-insensitive; the given value is public, so lowering it leaks nothing.
        Encoding::Hex => ct_eq(
            hex::encode(mac).as_bytes(),
            given.to_ascii_lowercase().as_bytes(),
        ),
        Encoding::Base64 => ct_eq(b64().encode(mac).as_bytes(), given.as_bytes()),
    };
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const HEX: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn published_hex_vector_with_prefix() {
        assert_eq!(sign(SECRET, BODY, Encoding::Hex, "sha256="), HEX);
        assert_eq!(
            verify(SECRET, BODY, Encoding::Hex, "sha256=", Some(HEX)),
            Ok(())
        );
        assert_eq!(
            verify(
                SECRET,
                BODY,
                Encoding::Hex,
                "sha256=",
                Some(&HEX.to_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(())
        );
    }

    #[test]
    fn base64_and_negatives() {
        let b = sign(SECRET, BODY, Encoding::Base64, "");
        assert_eq!(verify(SECRET, BODY, Encoding::Base64, "", Some(&b)), Ok(()));
        assert_eq!(
            verify(b"other", BODY, Encoding::Base64, "", Some(&b)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                SECRET,
                b"Hello, World?",
                Encoding::Hex,
                "sha256=",
                Some(HEX)
            ),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(SECRET, BODY, Encoding::Hex, "sha256=", Some(&HEX[7..])),
            Err(VerifyError::Malformed(_))
        ));
        assert_eq!(
            verify(SECRET, BODY, Encoding::Hex, "sha256=", None),
            Err(VerifyError::Missing)
        );
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_fails(pos in 0usize..BODY.len(), bit in 0u8..8) {
            let mut body = BODY.to_vec();
            body[pos] ^= 1 << bit;
            prop_assert_eq!(verify(SECRET, &body, Encoding::Hex, "sha256=", Some(HEX)), Err(VerifyError::Mismatch));
        }

        /// Number-like header text (limits, huge digit strings, signs, whitespace): no panic,
        /// no match, in either encoding, with or without a prefix.
        #[test]
        fn numeric_header_text_never_panics_or_verifies(text in crate::test_support::numeric_text()) {
            for (encoding, prefix) in [(Encoding::Hex, "sha256="), (Encoding::Hex, ""), (Encoding::Base64, "")] {
                let prefixed = format!("sha256={text}");
                prop_assert!(verify(SECRET, BODY, encoding, prefix, Some(&text)).is_err());
                prop_assert!(verify(SECRET, BODY, encoding, prefix, Some(&prefixed)).is_err());
            }
        }
    }
}
