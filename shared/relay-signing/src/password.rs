//! Password checks for softphone web callbacks (Acrobits).
//!
//! Accounts are configured with an argon2 hash (PHC string, `$argon2id$…`), never a plaintext
//! password. The Acrobits app can instead send a salted SHA-1 of the password built with its
//! `nonce` and `sha1` template functions; the exact construction is unconfirmed, so it is a
//! configurable template such as `{nonce}{password}`, and that variant needs the plaintext
//! password as the account's secret.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha1::Digest;

use crate::{SecretError, VerifyError, ct_eq};

/// An argon2id hash of `password` (PHC string, random salt), for configuration.
pub fn hash_argon2(password: &str) -> Result<String, SecretError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| SecretError("argon2 could not hash the password"))
}

/// Checks `password` against an argon2 PHC string (constant-time inside argon2).
pub fn verify_argon2(phc: &str, password: &str) -> Result<(), VerifyError> {
    if password.is_empty() {
        return Err(VerifyError::Missing);
    }
    match Argon2::default().verify_password(password.as_bytes(), phc) {
        Ok(()) => Ok(()),
        Err(argon2::password_hash::Error::PasswordInvalid) => Err(VerifyError::Mismatch),
        Err(_) => Err(VerifyError::Malformed(
            "the configured password hash is not an argon2 PHC string",
        )),
    }
}

/// Whether `phc` is a usable argon2 PHC string (checked at start-up).
pub fn is_argon2_phc(phc: &str) -> bool {
    phc.starts_with("$argon2") && argon2::PasswordHash::new(phc).is_ok()
}

/// Checks a salted SHA-1 (hex, any case): `sha1(template with {nonce} and {password} filled)`.
pub fn verify_salted_sha1(
    template: &str,
    nonce: &str,
    password: &str,
    given_hex: &str,
) -> Result<(), VerifyError> {
    if nonce.is_empty() || given_hex.is_empty() {
        return Err(VerifyError::Missing);
    }
    let input = template
        .replace("{nonce}", nonce)
        .replace("{password}", password);
    let expected = hex::encode(sha1::Sha1::digest(input.as_bytes()));
    if ct_eq(
        expected.as_bytes(),
        given_hex.to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip_and_negatives() {
        let phc = hash_argon2("secretW0rd").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(is_argon2_phc(&phc));
        assert_eq!(verify_argon2(&phc, "secretW0rd"), Ok(()));
        assert_eq!(
            verify_argon2(&phc, "secretW0rD"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify_argon2(&phc, ""), Err(VerifyError::Missing));
        assert!(matches!(
            verify_argon2("plain", "x"),
            Err(VerifyError::Malformed(_))
        ));
        assert!(!is_argon2_phc("$2b$12$bcrypt..."));
    }

    #[test]
    fn salted_sha1_follows_the_template() {
        // sha1("abc" + "secret") = sha1("abcsecret"), computed with `printf abcsecret | sha1sum`.
        let expected = "de0a408ef519cd62e7379039634152874895c50c";
        assert_eq!(hex::encode(sha1::Sha1::digest(b"abcsecret")), expected);
        assert_eq!(
            verify_salted_sha1("{nonce}{password}", "abc", "secret", expected),
            Ok(())
        );
        assert_eq!(
            verify_salted_sha1(
                "{nonce}{password}",
                "abc",
                "secret",
                &expected.to_uppercase()
            ),
            Ok(())
        );
        assert_eq!(
            verify_salted_sha1("{password}{nonce}", "abc", "secret", expected),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_salted_sha1("{nonce}{password}", "abd", "secret", expected),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_salted_sha1("{nonce}{password}", "", "secret", expected),
            Err(VerifyError::Missing)
        );
    }
}
