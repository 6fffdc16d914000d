//! Pack files: sealed chunks laid end to end, followed by a sealed header that lists them.
//!
//! Layout: `blob 0 | blob 1 | ... | sealed header | header length (u32, little-endian)`.
//! Each blob is `nonce | ciphertext | tag` of one chunk, authenticated with the chunk id as
//! associated data, so a blob moved to another id fails to open. The plaintext of a blob is
//! one format byte (0 = stored, 1 = zstd) followed by the payload.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;
use super::crypto::{ChunkId, MasterKey, NONCE_LEN, TAG_LEN};

/// Size at which a pack is closed and uploaded.
pub const PACK_TARGET_SIZE: usize = 16 * 1024 * 1024;

/// zstd level for chunks: level 3 is zstd's default and keeps backups CPU-light.
const ZSTD_LEVEL: i32 = 3;

const FORMAT_STORED: u8 = 0;
const FORMAT_ZSTD: u8 = 1;
const HEADER_CONTEXT: &[u8] = b"pack-header";

/// One blob listed in a pack header and in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    #[serde(with = "hex_id")]
    pub id: ChunkId,
    /// Byte offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the chunk's plaintext.
    pub raw_length: u32,
}

/// A chunk compressed and sealed, ready to be appended to a pack.
#[derive(Debug)]
pub struct SealedChunk {
    pub id: ChunkId,
    pub raw_length: u32,
    pub sealed: Vec<u8>,
}

/// Compresses (when that makes it smaller) and seals one chunk.
pub fn seal_chunk(key: &MasterKey, id: ChunkId, plaintext: &[u8]) -> Result<SealedChunk, Error> {
    // One zstd context and output buffer per thread: a fresh context costs more than
    // compressing a small chunk.
    thread_local! {
        static COMPRESSION: RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
            const { RefCell::new(None) };
    }

    COMPRESSION.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (compressor, compressed) = match cell.as_mut() {
            Some(state) => state,
            None => {
                let compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|error| {
                    Error::Corrupt(format!("failed to create a zstd context: {error}"))
                })?;
                cell.insert((compressor, Vec::new()))
            }
        };
        compressed.clear();
        compressed.reserve(zstd::zstd_safe::compress_bound(plaintext.len()));
        compressor
            .compress_to_buffer(plaintext, compressed)
            .map_err(|error| Error::Corrupt(format!("zstd compression failed: {error}")))?;

        let (format, payload) = if compressed.len() < plaintext.len() {
            (FORMAT_ZSTD, compressed.as_slice())
        } else {
            (FORMAT_STORED, plaintext)
        };
        let mut sealed = Vec::with_capacity(NONCE_LEN + 1 + payload.len() + TAG_LEN);
        sealed.resize(NONCE_LEN, 0);
        sealed.push(format);
        sealed.extend_from_slice(payload);
        key.seal_in_place(&mut sealed, &id)?;
        Ok(SealedChunk {
            id,
            raw_length: plaintext.len() as u32,
            sealed,
        })
    })
}

/// Opens, decompresses and rehashes one sealed chunk; errors name the chunk and its pack.
pub fn open_chunk(
    key: &MasterKey,
    entry: &BlobEntry,
    sealed: &[u8],
    pack: &str,
) -> Result<Vec<u8>, Error> {
    let chunk = hex::encode(entry.id);
    let framed = key.open(sealed, &entry.id).ok_or_else(|| Error::Tampered {
        pack: pack.to_string(),
        chunk: chunk.clone(),
        reason: "authentication failed".to_string(),
    })?;

    let plaintext = match framed.split_first() {
        Some((&FORMAT_STORED, payload)) => payload.to_vec(),
        Some((&FORMAT_ZSTD, payload)) => zstd::bulk::decompress(payload, entry.raw_length as usize)
            .map_err(|error| Error::Tampered {
                pack: pack.to_string(),
                chunk: chunk.clone(),
                reason: format!("zstd decompression failed: {error}"),
            })?,
        _ => {
            return Err(Error::Tampered {
                pack: pack.to_string(),
                chunk,
                reason: "unknown blob format".to_string(),
            });
        }
    };

    if plaintext.len() != entry.raw_length as usize || key.chunk_id(&plaintext) != entry.id {
        return Err(Error::Tampered {
            pack: pack.to_string(),
            chunk,
            reason: "content does not match the chunk id".to_string(),
        });
    }
    Ok(plaintext)
}

/// A pack being filled.
#[derive(Debug, Default)]
pub struct PackBuilder {
    data: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack: its name (SHA-256 of the bytes, hex), bytes and blob list.
#[derive(Debug)]
pub struct FinishedPack {
    pub id: String,
    pub data: Vec<u8>,
    pub entries: Vec<BlobEntry>,
}

impl PackBuilder {
    /// Appends a sealed chunk.
    pub fn add(&mut self, chunk: SealedChunk) {
        self.entries.push(BlobEntry {
            id: chunk.id,
            offset: self.data.len() as u32,
            length: chunk.sealed.len() as u32,
            raw_length: chunk.raw_length,
        });
        self.data.extend_from_slice(&chunk.sealed);
    }

    /// Bytes of blobs added so far.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Reports whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the sealed header and names the pack.
    pub fn finish(mut self, key: &MasterKey) -> Result<FinishedPack, Error> {
        let header = serde_json::to_vec(&self.entries)
            .map_err(|error| Error::Corrupt(format!("failed to encode a pack header: {error}")))?;
        let sealed_header = key.seal(&header, HEADER_CONTEXT)?;
        self.data.extend_from_slice(&sealed_header);
        self.data
            .extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
        let id = hex::encode(Sha256::digest(&self.data));
        Ok(FinishedPack {
            id,
            data: self.data,
            entries: self.entries,
        })
    }
}

/// Reads the blob list from a whole pack.
pub fn read_header(key: &MasterKey, pack: &str, data: &[u8]) -> Result<Vec<BlobEntry>, Error> {
    let corrupt = |reason: &str| Error::Corrupt(format!("pack {pack}: {reason}"));
    if data.len() < 4 {
        return Err(corrupt("shorter than its header length field"));
    }
    let (body, length_bytes) = data.split_at(data.len() - 4);
    let header_length = u32::from_le_bytes(length_bytes.try_into().expect("4 bytes")) as usize;
    if header_length > body.len() {
        return Err(corrupt("header length exceeds the pack size"));
    }
    let header = key
        .open(&body[body.len() - header_length..], HEADER_CONTEXT)
        .ok_or_else(|| corrupt("header failed authentication"))?;
    serde_json::from_slice(&header).map_err(|error| corrupt(&format!("invalid header: {error}")))
}

/// Returns the sealed bytes of one blob of a pack, checking the bounds.
pub fn blob_bytes<'a>(data: &'a [u8], entry: &BlobEntry, pack: &str) -> Result<&'a [u8], Error> {
    let start = entry.offset as usize;
    let end = start + entry.length as usize;
    data.get(start..end).ok_or_else(|| Error::Tampered {
        pack: pack.to_string(),
        chunk: hex::encode(entry.id),
        reason: format!("blob range {start}..{end} is outside the pack"),
    })
}

/// Object key of a pack: `data/<first two hex digits>/<id>`.
pub fn pack_key(id: &str) -> String {
    format!("data/{}/{id}", &id[..2])
}

/// Serde form of a chunk id as a hex string.
pub mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(id))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut id = [0u8; 32];
        hex::decode_to_slice(&text, &mut id).map_err(serde::de::Error::custom)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_pack(key: &MasterKey) -> FinishedPack {
        let mut builder = PackBuilder::default();
        for text in ["first chunk", "second chunk second chunk second chunk"] {
            let id = key.chunk_id(text.as_bytes());
            builder.add(seal_chunk(key, id, text.as_bytes()).unwrap());
        }
        builder.finish(key).unwrap()
    }

    #[test]
    fn pack_header_lists_every_blob() {
        let key = MasterKey::generate().unwrap();
        let pack = sample_pack(&key);

        let entries = read_header(&key, &pack.id, &pack.data).unwrap();
        assert_eq!(entries, pack.entries);
        let blob = blob_bytes(&pack.data, &entries[1], &pack.id).unwrap();
        let plaintext = open_chunk(&key, &entries[1], blob, &pack.id).unwrap();
        assert_eq!(plaintext, b"second chunk second chunk second chunk");
    }

    #[test]
    fn tampered_blob_names_pack_and_chunk() {
        let key = MasterKey::generate().unwrap();
        let mut pack = sample_pack(&key);
        let entry = pack.entries[0];
        pack.data[entry.offset as usize + 30] ^= 0x40;

        let blob = blob_bytes(&pack.data, &entry, &pack.id).unwrap();
        let error = open_chunk(&key, &entry, blob, &pack.id).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&pack.id), "{message}");
        assert!(message.contains(&hex::encode(entry.id)), "{message}");
    }

    #[test]
    fn incompressible_chunk_is_stored() {
        let key = MasterKey::generate().unwrap();
        let mut noise = vec![0u8; 4096];
        getrandom::fill(&mut noise).unwrap();
        let sealed = seal_chunk(&key, key.chunk_id(&noise), &noise).unwrap();
        assert!(sealed.sealed.len() <= noise.len() + 1 + 24 + 16);
    }
}
