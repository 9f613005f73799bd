//! The content digest that names components and vouches for AOT artifacts (SHA-256, lower-case
//! hex). One function, so the loader that checks an artifact and the store that records it can
//! never disagree on how a digest is spelled.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
