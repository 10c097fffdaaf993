//! Content digests: a stable name for a signed request that carries no id of its own, so that a
//! replay of it (the same signed content again) is recognised as the same event.

use sha2::Digest;

/// Lowercase hex SHA-256 of `parts`, each preceded by its length (8 bytes, big-endian): moving
/// bytes from one part to the next (from a URL into a body) changes the digest.
pub fn content_digest(parts: &[&[u8]]) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_parts_are_kept_apart() {
        // SHA-256 of the 8-byte length 3 then "abc", computed with
        // `printf '\0\0\0\0\0\0\0\3abc' | sha256sum`.
        assert_eq!(
            content_digest(&[b"abc"]),
            "c3494ca1a2cf8eeb8a11ded316fb55b83c3bbbedb6313cd50415251e5d09e12f"
        );
        assert_ne!(
            content_digest(&[b"ab", b"c"]),
            content_digest(&[b"a", b"bc"])
        );
        assert_ne!(content_digest(&[b"abc"]), content_digest(&[b"abc", b""]));
        assert_eq!(content_digest(&[]).len(), 64);
    }
}
