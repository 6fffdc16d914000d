//! Full check of a repository: every pack read, every chunk opened, decompressed and rehashed,
//! and every chunk that a snapshot names found in the index.

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::crypto::ChunkId;
use super::pack::{BlobEntry, blob_bytes, open_chunk, pack_key, read_header};
use super::{Error, Repository};

/// Packs read at the same time during a check.
const PARALLEL_PACKS: usize = 2;

/// Outcome of a repository check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: u64,
    pub packs: u64,
    pub chunks: u64,
    /// Plaintext bytes of the checked chunks.
    pub bytes: u64,
    /// One line per problem found, naming the pack, chunk or snapshot.
    pub problems: Vec<String>,
}

/// Checks every chunk of the repository. Damage is listed in the report; only a failure to
/// read the repository at all is an error.
pub async fn verify_repository(repository: &Repository) -> Result<VerifyReport, Error> {
    verify_snapshots(repository, None).await
}

/// Checks the snapshots with the given ids and every chunk they refer to, or the whole
/// repository when `only` is `None`.
pub async fn verify_snapshots(
    repository: &Repository,
    only: Option<&[String]>,
) -> Result<VerifyReport, Error> {
    let index = repository.load_index().await?;
    let mut report = VerifyReport::default();
    let mut referenced: HashSet<ChunkId> = HashSet::new();

    // Every chunk a snapshot refers to must be indexed.
    for (id, snapshot) in repository.snapshots().await? {
        if only.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        report.snapshots += 1;
        let tree = match repository.tree(&snapshot).await {
            Ok(tree) => tree,
            Err(error) => {
                report.problems.push(format!("snapshot {id}: {error}"));
                continue;
            }
        };
        for node in &tree.nodes {
            for chunk in node.extents.iter().flat_map(|extent| &extent.chunks) {
                referenced.insert(chunk.id);
                if !index.contains(&chunk.id) {
                    report.problems.push(format!(
                        "snapshot {id}: chunk {} of {} is missing from the index",
                        hex::encode(chunk.id),
                        node.path
                    ));
                }
            }
        }
    }

    // Every indexed chunk must open and match its id.
    let mut by_pack: BTreeMap<u32, Vec<BlobEntry>> = BTreeMap::new();
    for (id, location) in index.iter() {
        if only.is_some() && !referenced.contains(id) {
            continue;
        }
        by_pack
            .entry(location.pack)
            .or_default()
            .push(location.entry);
    }
    let key = repository.key().clone();
    let backend = repository.backend().clone();
    let results: Vec<PackCheck> = futures::stream::iter(by_pack)
        .map(|(position, entries)| {
            let pack = index.pack_id(position).to_string();
            let key = key.clone();
            let backend = backend.clone();
            async move {
                let data = match backend.get(&pack_key(&pack)).await {
                    Ok(data) => data,
                    Err(error) => {
                        return Ok(PackCheck {
                            problems: vec![format!("pack {pack}: {error}")],
                            ..PackCheck::default()
                        });
                    }
                };
                tokio::task::spawn_blocking(move || check_pack(&key, &pack, &data, &entries))
                    .await
                    .map_err(|error| Error::Backend(format!("check task failed: {error}")))
            }
        })
        .buffer_unordered(PARALLEL_PACKS)
        .try_collect()
        .await?;

    for check in results {
        report.packs += 1;
        report.chunks += check.chunks;
        report.bytes += check.bytes;
        report.problems.extend(check.problems);
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct PackCheck {
    chunks: u64,
    bytes: u64,
    problems: Vec<String>,
}

fn check_pack(key: &super::MasterKey, pack: &str, data: &[u8], entries: &[BlobEntry]) -> PackCheck {
    let mut check = PackCheck::default();
    if hex::encode(Sha256::digest(data)) != pack {
        check
            .problems
            .push(format!("pack {pack}: content does not match its name"));
    }
    match read_header(key, pack, data) {
        Ok(header) => {
            for entry in entries {
                if !header.contains(entry) {
                    check.problems.push(format!(
                        "pack {pack}: header does not list chunk {}",
                        hex::encode(entry.id)
                    ));
                }
            }
        }
        Err(error) => check.problems.push(error.to_string()),
    }

    for entry in entries {
        let opened =
            blob_bytes(data, entry, pack).and_then(|blob| open_chunk(key, entry, blob, pack));
        match opened {
            Ok(plaintext) => {
                check.chunks += 1;
                check.bytes += plaintext.len() as u64;
            }
            Err(error) => check.problems.push(error.to_string()),
        }
    }
    check
}
