//! The repository index: where each chunk is stored (pack, offset, length).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Error;
use super::crypto::ChunkId;
use super::pack::BlobEntry;

/// One index file under `index/`: the packs one backup run wrote and their blobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
}

/// A pack and the blobs it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: String,
    /// Size of the pack object in bytes.
    pub size: u64,
    pub blobs: Vec<BlobEntry>,
}

/// Location of a chunk: the pack's position in [`Index::packs`] and the blob entry.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLocation {
    pub pack: u32,
    pub entry: BlobEntry,
}

/// All index files of a repository merged in memory.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<String>,
    pack_sizes: Vec<u64>,
    chunks: HashMap<ChunkId, ChunkLocation>,
}

impl Index {
    /// Adds the packs of one index file; `name` is used in error messages.
    pub fn merge_file(&mut self, name: &str, json: &[u8]) -> Result<(), Error> {
        let file: IndexFile = serde_json::from_slice(json)
            .map_err(|error| Error::Corrupt(format!("{name}: {error}")))?;
        for pack in file.packs {
            self.add_pack(&pack);
        }
        Ok(())
    }

    /// Adds one pack's blobs; a chunk already indexed in another pack keeps its first place.
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        let position = self.packs.len() as u32;
        self.packs.push(pack.id.clone());
        self.pack_sizes.push(pack.size);
        for entry in &pack.blobs {
            self.chunks.entry(entry.id).or_insert(ChunkLocation {
                pack: position,
                entry: *entry,
            });
        }
    }

    /// Returns where a chunk is stored.
    pub fn get(&self, id: &ChunkId) -> Option<&ChunkLocation> {
        self.chunks.get(id)
    }

    /// Reports whether a chunk is stored.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.chunks.contains_key(id)
    }

    /// Returns the id of the pack at a position.
    pub fn pack_id(&self, position: u32) -> &str {
        &self.packs[position as usize]
    }

    /// Number of indexed chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Number of indexed packs.
    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Sum of the pack sizes, in bytes.
    pub fn stored_bytes(&self) -> u64 {
        self.pack_sizes.iter().sum()
    }

    /// Iterates over the chunks and their locations.
    pub fn iter(&self) -> impl Iterator<Item = (&ChunkId, &ChunkLocation)> {
        self.chunks.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(byte: u8, offset: u32) -> BlobEntry {
        BlobEntry {
            id: [byte; 32],
            offset,
            length: 10,
            raw_length: 20,
        }
    }

    #[test]
    fn first_pack_of_a_chunk_wins() {
        let mut index = Index::default();
        index.add_pack(&IndexedPack {
            id: "p1".into(),
            size: 100,
            blobs: vec![entry(1, 0), entry(2, 10)],
        });
        index.add_pack(&IndexedPack {
            id: "p2".into(),
            size: 50,
            blobs: vec![entry(2, 0)],
        });

        let location = index.get(&[2; 32]).unwrap();
        assert_eq!(index.pack_id(location.pack), "p1");
        assert_eq!(location.entry.offset, 10);
        assert_eq!(index.chunk_count(), 2);
        assert_eq!(index.stored_bytes(), 150);
    }
}
