//! Restore of a snapshot into a folder, keeping modes, ownership, links, mtimes and holes.
//!
//! The order matters. Entries are created first, files at their full size so that unwritten
//! ranges stay holes. Then the data is written pack by pack, so each pack is fetched once.
//! Then hard links are made. The metadata comes last: ownership before mode because chown
//! clears setuid bits, mtimes after content, and directories deepest first so that creating
//! their children does not change their mtime again.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

use super::crypto::{ChunkId, MasterKey};
use super::pack::{BlobEntry, blob_bytes, open_chunk, pack_key};
use super::snapshot::{Node, NodeKind, NodePath, Snapshot};
use super::{Error, Repository};

/// Block size below which zero runs are written instead of skipped.
const SPARSE_BLOCK: usize = 4096;

/// Settings of one restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Packs fetched at the same time.
    pub parallel_packs: usize,
    /// Sets owner and group from the snapshot; only root may give files away.
    pub restore_ownership: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            parallel_packs: 2,
            restore_ownership: nix::unistd::geteuid().is_root(),
        }
    }
}

/// Counters of one restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreStats {
    pub files: u64,
    pub directories: u64,
    pub other_entries: u64,
    /// Bytes written (zero blocks skipped as holes are not counted).
    pub written_bytes: u64,
    pub packs: u64,
    pub duration_ms: u64,
}

/// Targets of one chunk: (file path, offset in the file) for every place it appears.
type ChunkTargets = HashMap<ChunkId, Vec<(Arc<PathBuf>, u64)>>;

/// Restores a snapshot into `target`, which is created when missing. Existing entries with
/// the same names are replaced; other entries in `target` are left alone.
pub async fn restore_snapshot(
    repository: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreStats, Error> {
    let started = Instant::now();
    let tree = repository.tree(snapshot).await?;
    let index = repository.load_index().await?;
    let nodes = Arc::new(tree.nodes);

    // Create the entries and plan which chunk goes where.
    let target = target.to_path_buf();
    let (mut stats, targets) = {
        let nodes = nodes.clone();
        let target = target.clone();
        run_blocking(move || create_entries(&target, &nodes)).await?
    };
    let mut by_pack: BTreeMap<u32, Vec<BlobEntry>> = BTreeMap::new();
    for id in targets.keys() {
        let location = index.get(id).ok_or_else(|| {
            Error::Corrupt(format!(
                "chunk {} of the snapshot is not in the index",
                hex::encode(id)
            ))
        })?;
        by_pack
            .entry(location.pack)
            .or_default()
            .push(location.entry);
    }

    // Fetch each pack once and write its chunks wherever they belong.
    let targets = Arc::new(targets);
    let key = repository.key().clone();
    let backend = repository.backend().clone();
    let written: Vec<u64> = futures::stream::iter(by_pack)
        .map(|(position, entries)| {
            let pack = index.pack_id(position).to_string();
            let backend = backend.clone();
            let key = key.clone();
            let targets = targets.clone();
            async move {
                let data = backend.get(&pack_key(&pack)).await?;
                run_blocking(move || write_pack(&key, &pack, &data, &entries, &targets)).await
            }
        })
        .buffer_unordered(options.parallel_packs.max(1))
        .try_collect()
        .await?;
    stats.packs = written.len() as u64;
    stats.written_bytes = written.iter().sum();

    // Links and metadata last.
    let restore_ownership = options.restore_ownership;
    run_blocking(move || {
        create_hard_links(&target, &nodes)?;
        apply_metadata(&target, &nodes, restore_ownership)
    })
    .await?;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    Ok(stats)
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Backend(format!("restore task failed: {error}")))?
}

fn full_path(target: &Path, path: &NodePath) -> PathBuf {
    if path.0.is_empty() {
        target.to_path_buf()
    } else {
        target.join(std::ffi::OsStr::from_bytes(&path.0))
    }
}

/// Creates directories, empty files of full size, symlinks and special files; returns the
/// counters and the chunk targets of every file.
fn create_entries(target: &Path, nodes: &[Node]) -> Result<(RestoreStats, ChunkTargets), Error> {
    let mut stats = RestoreStats::default();
    let mut targets: ChunkTargets = HashMap::new();
    std::fs::create_dir_all(target)
        .map_err(|error| Error::io(format!("failed to create {}", target.display()), error))?;

    for node in nodes {
        if node
            .path
            .0
            .split(|byte| *byte == b'/')
            .any(|part| part == b".." || part.is_empty())
            && !node.path.0.is_empty()
        {
            return Err(Error::Corrupt(format!(
                "unsafe path {:?} in snapshot",
                node.path.to_string()
            )));
        }
        let path = full_path(target, &node.path);
        let failed = |action: &str, error| {
            Error::io(format!("failed to {action} {}", path.display()), error)
        };

        if node.kind != NodeKind::Dir {
            remove_existing(&path)?;
        }
        match node.kind {
            NodeKind::Dir => {
                stats.directories += 1;
                match std::fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(error)
                        if error.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                    Err(error) => return Err(failed("create directory", error)),
                }
                // Owner write access until the metadata pass sets the real mode.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                    .map_err(|error| failed("set permissions of", error))?;
            }
            NodeKind::File if node.hardlink_to.is_some() => stats.files += 1,
            NodeKind::File => {
                stats.files += 1;
                let file = std::fs::File::create(&path).map_err(|error| failed("create", error))?;
                file.set_len(node.size)
                    .map_err(|error| failed("resize", error))?;
                let path = Arc::new(path.clone());
                for extent in &node.extents {
                    let mut offset = extent.offset;
                    for chunk in &extent.chunks {
                        targets
                            .entry(chunk.id)
                            .or_default()
                            .push((path.clone(), offset));
                        offset += chunk.length as u64;
                    }
                }
            }
            NodeKind::Symlink => {
                stats.other_entries += 1;
                let link = node.symlink_target.clone().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link.0), &path)
                    .map_err(|error| failed("create symlink", error))?;
            }
            NodeKind::Fifo => {
                stats.other_entries += 1;
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(|errno| failed("create FIFO", errno.into()))?;
            }
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                stats.other_entries += 1;
                let kind = if node.kind == NodeKind::CharDevice {
                    nix::sys::stat::SFlag::S_IFCHR
                } else {
                    nix::sys::stat::SFlag::S_IFBLK
                };
                let created = nix::sys::stat::mknod(
                    &path,
                    kind,
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                    node.rdev.unwrap_or(0),
                );
                if let Err(errno) = created {
                    // Only root (CAP_MKNOD) can create device nodes; the rest of the volume
                    // is still worth restoring.
                    tracing::warn!(path = %path.display(), %errno, "device node not restored");
                }
            }
            NodeKind::Socket => {
                // A socket is recreated by the program that listens on it.
                stats.other_entries += 1;
            }
        }
    }
    Ok((stats, targets))
}

fn remove_existing(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
    .map_err(|error| Error::io(format!("failed to replace {}", path.display()), error))
}

/// Opens the needed chunks of one pack and writes them; returns the bytes written.
fn write_pack(
    key: &MasterKey,
    pack: &str,
    data: &[u8],
    entries: &[BlobEntry],
    targets: &ChunkTargets,
) -> Result<u64, Error> {
    let mut written = 0;
    for entry in entries {
        let plaintext = open_chunk(key, entry, blob_bytes(data, entry, pack)?, pack)?;
        for (path, offset) in targets.get(&entry.id).into_iter().flatten() {
            let file = OpenOptions::new()
                .write(true)
                .open(path.as_path())
                .map_err(|error| Error::io(format!("failed to open {}", path.display()), error))?;
            written += write_sparse(&file, &plaintext, *offset)
                .map_err(|error| Error::io(format!("failed to write {}", path.display()), error))?;
        }
    }
    Ok(written)
}

/// Writes `data` at `offset`, skipping file-system blocks that are all zero so that they
/// stay holes (the file was created at full size, so skipped ranges read as zero).
fn write_sparse(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<u64> {
    let mut written = 0;
    let mut position = 0;
    while position < data.len() {
        // Align block ends to the file offset so that whole blocks can stay unallocated.
        let file_position = offset + position as u64;
        let to_boundary = SPARSE_BLOCK - (file_position % SPARSE_BLOCK as u64) as usize;
        let end = (position + to_boundary).min(data.len());
        let block = &data[position..end];
        if block.iter().any(|byte| *byte != 0) {
            file.write_all_at(block, file_position)?;
            written += block.len() as u64;
        }
        position = end;
    }
    Ok(written)
}

fn create_hard_links(target: &Path, nodes: &[Node]) -> Result<(), Error> {
    for node in nodes {
        if let Some(first) = &node.hardlink_to {
            let path = full_path(target, &node.path);
            let original = full_path(target, first);
            std::fs::hard_link(&original, &path).map_err(|error| {
                Error::io(
                    format!(
                        "failed to link {} to {}",
                        path.display(),
                        original.display()
                    ),
                    error,
                )
            })?;
        }
    }
    Ok(())
}

/// Sets ownership, modes and mtimes: every other entry first, then directories deepest first.
fn apply_metadata(target: &Path, nodes: &[Node], restore_ownership: bool) -> Result<(), Error> {
    let (directories, others): (Vec<&Node>, Vec<&Node>) =
        nodes.iter().partition(|node| node.kind == NodeKind::Dir);
    for node in others.into_iter().chain(directories.into_iter().rev()) {
        let skipped = matches!(node.kind, NodeKind::Socket)
            || (matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice)
                && !full_path(target, &node.path).exists());
        if skipped || node.hardlink_to.is_some() {
            continue;
        }
        apply_node_metadata(&full_path(target, &node.path), node, restore_ownership)?;
    }
    Ok(())
}

fn apply_node_metadata(path: &Path, node: &Node, restore_ownership: bool) -> Result<(), Error> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;

    let failed = |action: &str, error: std::io::Error| {
        Error::io(format!("failed to {action} {}", path.display()), error)
    };
    if restore_ownership {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(|error| failed("change owner of", error))?;
    }
    if node.kind != NodeKind::Symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))
            .map_err(|error| failed("set permissions of", error))?;
    }
    // The snapshot has no access time; it is set to the mtime.
    let mtime = TimeSpec::new(node.mtime_sec, node.mtime_nsec as i64);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| failed("set times of", errno.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_stay_holes() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("file");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1024 * 1024).unwrap();

        let mut data = vec![0u8; 1024 * 1024];
        data[10] = 1;
        let written = write_sparse(&file, &data, 0).unwrap();
        assert_eq!(written, SPARSE_BLOCK as u64);
        assert!(file.metadata().unwrap().blocks() * 512 <= 64 * 1024);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
