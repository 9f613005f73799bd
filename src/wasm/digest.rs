//! The digests of the WASM loader: SHA-256 names a component (its identity, computed once when
//! the pool loads it), and XXH3-128 is the checksum of an AOT artifact (computed on every cold
//! load, so it must be fast). One module, so the loader that checks an artifact and the store
//! that records it can never disagree on how a digest is spelled.
//!
//! Why a non-cryptographic checksum is enough for artifacts: it detects corruption and
//! truncation. Tampering is kept out by the directory check (`aot::OwnDir`), not by the hash:
//! whoever can rewrite an artifact there can rewrite the manifest beside it too, so a
//! collision-resistant hash would add nothing but time (SHA-256 of a 1 MB artifact: ~0.7 ms
//! here; XXH3: ~0.05 ms).

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex XXH3-128 of `bytes` (32 digits).
pub(crate) fn checksum_hex(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_is_32_hex_digits_and_changes_with_one_bit() {
        let a = super::checksum_hex(b"abc");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::checksum_hex(b"abd"));
        assert_eq!(a, super::checksum_hex(b"abc"));
    }

    #[test]
    fn known_digest() {
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
