//! Snapshots: what one backup of one volume recorded, and the file tree it refers to.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::crypto::ChunkId;
use super::pack::hex_id;

/// Labels that name the source of a snapshot's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTags {
    /// Name of the backup that made the snapshot.
    pub backup: String,
    pub namespace: String,
    pub pod: String,
    /// Name of the volume in the pod spec.
    pub volume: String,
    /// Claim name when the volume is a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
}

impl SnapshotTags {
    /// Identity used to find the previous snapshot of the same volume: the claim for a PVC
    /// (pods come and go, the claim stays), the pod and volume name for an emptyDir.
    pub fn lineage(&self) -> String {
        match &self.pvc {
            Some(claim) => format!("pvc/{}/{claim}", self.namespace),
            None => format!("pod/{}/{}/{}", self.namespace, self.pod, self.volume),
        }
    }
}

/// Counters of one backup run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub directories: u64,
    /// Other entries: symlinks, FIFOs, devices, sockets.
    pub other_entries: u64,
    /// Logical size of all regular files, holes included.
    pub total_bytes: u64,
    /// Files reused from the parent snapshot without reading them.
    pub unchanged_files: u64,
    /// Bytes read from files that had to be chunked.
    pub read_bytes: u64,
    /// Chunks that were not in the repository yet.
    pub new_chunks: u64,
    /// Plaintext bytes of the new chunks.
    pub new_bytes: u64,
    /// Bytes written to the repository for the new chunks (compressed, sealed, in packs).
    pub stored_bytes: u64,
    pub duration_ms: u64,
}

impl SnapshotStats {
    /// Logical size divided by the new bytes stored for it; infinity when nothing was new.
    pub fn dedup_ratio(&self) -> f64 {
        if self.new_bytes == 0 {
            f64::INFINITY
        } else {
            self.total_bytes as f64 / self.new_bytes as f64
        }
    }
}

/// A snapshot file under `snapshots/`: labels, counters and the id of its tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Creation time, RFC 3339 in UTC.
    pub time: String,
    pub tags: SnapshotTags,
    /// Path the agent read, inside its pod.
    pub source: String,
    /// Snapshot whose unchanged files were reused, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub stats: SnapshotStats,
    /// Key of the tree object under `trees/`.
    pub tree: String,
}

/// All entries of a snapshot, parents before children.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// Type of a file-system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// One file-system entry with its metadata and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Path relative to the volume root, `/`-separated; empty for the root itself.
    pub path: NodePath,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub size: u64,
    pub inode: u64,
    pub nlink: u64,
    /// Device number of character and block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<NodePath>,
    /// Earlier path in the tree with the same inode: restored as a hard link to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardlink_to: Option<NodePath>,
    /// Data regions of a regular file; the gaps between them and up to `size` are holes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extents: Vec<Extent>,
}

/// A data region of a file and the chunks that hold it, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub offset: u64,
    pub chunks: Vec<ChunkRef>,
}

/// A chunk of file data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    #[serde(with = "hex_id")]
    pub id: ChunkId,
    pub length: u32,
}

/// A relative path as raw bytes, because Linux file names need not be UTF-8. Serialized as a
/// string when it is UTF-8 and as `{"hex": "..."}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodePath(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NodePathRepr {
    Text(String),
    Bytes { hex: String },
}

impl Serialize for NodePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => NodePathRepr::Text(text.to_string()),
            Err(_) => NodePathRepr::Bytes {
                hex: hex::encode(&self.0),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NodePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NodePathRepr::deserialize(deserializer)? {
            NodePathRepr::Text(text) => Ok(NodePath(text.into_bytes())),
            NodePathRepr::Bytes { hex } => hex::decode(hex)
                .map(NodePath)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl std::fmt::Display for NodePath {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// Files of a tree by path, for reusing unchanged files in the next backup.
pub fn files_by_path(tree: &Tree) -> BTreeMap<&NodePath, &Node> {
    tree.nodes
        .iter()
        .filter(|node| node.kind == NodeKind::File && node.hardlink_to.is_none())
        .map(|node| (&node.path, node))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_path_round_trips() {
        let path = NodePath(vec![b'a', 0xff, b'b']);
        let text = serde_json::to_string(&path).unwrap();
        assert_eq!(text, r#"{"hex":"61ff62"}"#);
        assert_eq!(serde_json::from_str::<NodePath>(&text).unwrap(), path);
    }

    #[test]
    fn utf8_path_is_a_string() {
        let path = NodePath(b"dir/file".to_vec());
        assert_eq!(serde_json::to_string(&path).unwrap(), r#""dir/file""#);
    }

    #[test]
    fn lineage_prefers_the_claim() {
        let mut tags = SnapshotTags {
            backup: "b1".into(),
            namespace: "shop".into(),
            pod: "db-0".into(),
            volume: "data".into(),
            pvc: Some("data-db-0".into()),
        };
        assert_eq!(tags.lineage(), "pvc/shop/data-db-0");
        tags.pvc = None;
        assert_eq!(tags.lineage(), "pod/shop/db-0/data");
    }
}
