//! Keys of a repository: the password-wrapped master key, blob sealing and chunk ids.
//!
//! The master key is random and never leaves the process in clear. Each key file stores it
//! sealed with XChaCha20-Poly1305 under a key-encryption key derived from the password with
//! Argon2id, whose salt and cost parameters sit beside it in the key file.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use super::Error;

/// Length of the random nonce in front of every sealed blob.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag after every sealed blob.
pub const TAG_LEN: usize = 16;

/// Argon2id memory cost in KiB for new key files (64 MiB).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes for new key files.
const ARGON2_ITERATIONS: u32 = 3;

/// Identifier of a chunk: keyed BLAKE3 of its plaintext, so ids reveal nothing about the
/// content to someone without the key.
pub type ChunkId = [u8; 32];

/// The secrets of a repository, created once at `init`.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKey {
    /// XChaCha20-Poly1305 key for every blob, index, snapshot and pack header.
    #[serde(with = "hex_array")]
    pub encryption: [u8; 32],
    /// BLAKE3 key for chunk ids.
    #[serde(with = "hex_array")]
    pub chunk_id: [u8; 32],
    /// Seed mixed into the FastCDC gear table, so chunk boundaries differ per repository.
    pub chunker_seed: u64,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("MasterKey(..)")
    }
}

/// A key file as stored under `keys/`: the master key sealed by a password-derived key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    #[serde(with = "hex::serde")]
    pub salt: Vec<u8>,
    /// Nonce, ciphertext and tag of the JSON-encoded [`MasterKey`].
    #[serde(with = "hex::serde")]
    pub sealed_master_key: Vec<u8>,
}

impl MasterKey {
    /// Creates a new random master key.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 8];
        random_fill(&mut seed)?;
        let mut key = MasterKey {
            encryption: [0; 32],
            chunk_id: [0; 32],
            chunker_seed: u64::from_le_bytes(seed),
        };
        random_fill(&mut key.encryption)?;
        random_fill(&mut key.chunk_id)?;
        Ok(key)
    }

    /// Computes the id of a chunk's plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        *blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes()
    }

    /// Encrypts `plaintext` with a fresh random nonce. `context` is authenticated but not
    /// stored, so a blob only opens under the same context (its chunk id or object kind).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        seal_with(&self.encryption, plaintext, context)
    }

    /// Seals a blob in place. Its first [`NONCE_LEN`] bytes are reserved for the nonce and the
    /// rest is the plaintext. The result has the same layout as [`MasterKey::seal`].
    pub fn seal_in_place(&self, blob: &mut Vec<u8>, context: &[u8]) -> Result<(), Error> {
        let (nonce, plaintext) = blob.split_at_mut(NONCE_LEN);
        random_fill(nonce)?;
        let tag = XChaCha20Poly1305::new((&self.encryption).into())
            .encrypt_in_place_detached(XNonce::from_slice(nonce), context, plaintext)
            .map_err(|_| Error::Corrupt("encryption failed".to_string()))?;
        blob.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts and authenticates a blob made by [`MasterKey::seal`]; `None` when the
    /// blob was changed, truncated or sealed under another key or context.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.encryption, sealed, context)
    }

    /// Wraps this key under `password` into a new key file.
    pub fn wrap(&self, password: &[u8]) -> Result<KeyFile, Error> {
        let mut salt = vec![0u8; 16];
        random_fill(&mut salt)?;
        let mut key_file = KeyFile {
            kdf: "argon2id".to_string(),
            memory_kib: ARGON2_MEMORY_KIB,
            iterations: ARGON2_ITERATIONS,
            parallelism: 1,
            salt,
            sealed_master_key: Vec::new(),
        };
        let wrapping_key = derive_wrapping_key(&key_file, password)?;
        let plaintext = serde_json::to_vec(self)
            .map_err(|error| Error::Corrupt(format!("failed to encode the master key: {error}")))?;
        key_file.sealed_master_key = seal_with(&wrapping_key, &plaintext, b"master-key")?;
        Ok(key_file)
    }

    /// Unwraps the master key from a key file; `Ok(None)` when the password does not fit.
    pub fn unwrap(key_file: &KeyFile, password: &[u8]) -> Result<Option<Self>, Error> {
        let wrapping_key = derive_wrapping_key(key_file, password)?;
        let Some(plaintext) = open_with(&wrapping_key, &key_file.sealed_master_key, b"master-key")
        else {
            return Ok(None);
        };
        let key = serde_json::from_slice(&plaintext)
            .map_err(|error| Error::Corrupt(format!("invalid master key: {error}")))?;
        Ok(Some(key))
    }
}

fn derive_wrapping_key(key_file: &KeyFile, password: &[u8]) -> Result<[u8; 32], Error> {
    if key_file.kdf != "argon2id" {
        return Err(Error::Corrupt(format!(
            "unsupported key derivation {:?} in key file, expected argon2id",
            key_file.kdf
        )));
    }
    let params = Params::new(
        key_file.memory_kib,
        key_file.iterations,
        key_file.parallelism,
        Some(32),
    )
    .map_err(|error| Error::Corrupt(format!("invalid argon2 parameters in key file: {error}")))?;
    let mut output = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, &key_file.salt, &mut output)
        .map_err(|error| Error::Corrupt(format!("argon2 key derivation failed: {error}")))?;
    Ok(output)
}

fn seal_with(key: &[u8; 32], plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    random_fill(&mut nonce)?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .map_err(|_| Error::Corrupt("encryption failed".to_string()))?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

fn open_with(key: &[u8; 32], sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .ok()
}

fn random_fill(buffer: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buffer)
        .map_err(|error| Error::Backend(format!("the system random source failed: {error}")))
}

/// Serde form of a fixed-size byte array as a hex string.
mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_unwrap_returns_same_key() {
        let key = MasterKey::generate().unwrap();
        let key_file = key.wrap(b"secret").unwrap();

        let unwrapped = MasterKey::unwrap(&key_file, b"secret").unwrap().unwrap();
        assert_eq!(unwrapped.encryption, key.encryption);
        assert_eq!(unwrapped.chunk_id, key.chunk_id);
        assert_eq!(unwrapped.chunker_seed, key.chunker_seed);
    }

    #[test]
    fn unwrap_with_wrong_password_is_none() {
        let key = MasterKey::generate().unwrap();
        let key_file = key.wrap(b"secret").unwrap();
        assert!(MasterKey::unwrap(&key_file, b"guess").unwrap().is_none());
    }

    #[test]
    fn key_file_holds_no_clear_key() {
        let key = MasterKey::generate().unwrap();
        let text = serde_json::to_string(&key.wrap(b"secret").unwrap()).unwrap();
        assert!(!text.contains(&hex::encode(key.encryption)));
    }

    #[test]
    fn sealed_blob_fails_after_one_bit_flip() {
        let key = MasterKey::generate().unwrap();
        let mut sealed = key.seal(b"chunk data", b"id").unwrap();
        assert_eq!(key.open(&sealed, b"id").unwrap(), b"chunk data");

        sealed[NONCE_LEN + 2] ^= 1;
        assert!(key.open(&sealed, b"id").is_none());
    }

    #[test]
    fn sealed_blob_fails_under_other_context() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"chunk data", b"id-1").unwrap();
        assert!(key.open(&sealed, b"id-2").is_none());
    }

    #[test]
    fn chunk_ids_depend_on_the_key() {
        let first = MasterKey::generate().unwrap();
        let second = MasterKey::generate().unwrap();
        assert_ne!(first.chunk_id(b"same"), second.chunk_id(b"same"));
        assert_eq!(first.chunk_id(b"same"), first.chunk_id(b"same"));
    }
}
