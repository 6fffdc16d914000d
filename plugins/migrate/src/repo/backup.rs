//! Backup of a folder into a snapshot: walk, chunk, deduplicate, seal, pack and upload.
//!
//! The walk and the chunker run on one thread. Compression and sealing run on `workers`
//! threads. One packer thread fills packs and hands each to an upload task, with at most
//! `uploads` packs in flight. The bounded channels between the stages keep memory at about
//! `(2 * workers) * CHUNK_MAX * 2 + (uploads + 1) * PACK_TARGET_SIZE`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fastcdc::v2020::{Normalization, StreamCDC};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use super::crypto::{ChunkId, MasterKey};
use super::index::{Index, IndexFile, IndexedPack};
use super::pack::{FinishedPack, PACK_TARGET_SIZE, PackBuilder, SealedChunk, pack_key, seal_chunk};
use super::snapshot::{
    ChunkRef, Extent, Node, NodeKind, NodePath, Snapshot, SnapshotStats, SnapshotTags, Tree,
    files_by_path,
};
use super::{Error, Repository, RepositoryBackend};

/// Settings of one backup run.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub tags: SnapshotTags,
    /// Threads that compress and seal chunks.
    pub workers: usize,
    /// Packs uploaded at the same time.
    pub uploads: usize,
    /// Reads every file even when the previous snapshot of the volume has it unchanged.
    pub full: bool,
}

impl BackupOptions {
    /// Options with one worker per CPU and two uploads in flight.
    pub fn new(tags: SnapshotTags) -> Self {
        BackupOptions {
            tags,
            workers: std::thread::available_parallelism().map_or(2, |count| count.get()),
            uploads: 2,
            full: false,
        }
    }
}

/// Backs up the folder `source` and stores a snapshot of it; returns the snapshot id and the
/// snapshot.
pub async fn backup_folder(
    repository: &Repository,
    source: &Path,
    options: &BackupOptions,
) -> Result<(String, Snapshot), Error> {
    let started = Instant::now();
    let metadata = std::fs::symlink_metadata(source)
        .map_err(|error| Error::io(format!("failed to read {}", source.display()), error))?;
    if !metadata.is_dir() {
        return Err(Error::Backend(format!(
            "backup source {} is not a directory",
            source.display()
        )));
    }

    // Find the previous snapshot of the same volume, whose unchanged files are reused.
    let index = Arc::new(repository.load_index().await?);
    let lineage = options.tags.lineage();
    let parent = if options.full {
        None
    } else {
        repository
            .snapshots()
            .await?
            .into_iter()
            .rev()
            .find(|(_, snapshot)| snapshot.tags.lineage() == lineage)
    };
    let parent_tree = match &parent {
        Some((_, snapshot)) => Some(repository.tree(snapshot).await?),
        None => None,
    };

    // Walk and upload on blocking threads; uploads go back to the runtime.
    let pipeline = Pipeline {
        key: repository.key().clone(),
        backend: repository.backend().clone(),
        index,
        runtime: Handle::current(),
        workers: options.workers.max(1),
        uploads: options.uploads.max(1),
    };
    let source_owned = source.to_path_buf();
    let (tree, mut stats, packs) =
        tokio::task::spawn_blocking(move || pipeline.run(&source_owned, parent_tree.as_ref()))
            .await
            .map_err(|error| Error::Backend(format!("backup task failed: {error}")))??;

    // The index goes before the snapshot, so a snapshot never names chunks that are not indexed.
    if !packs.is_empty() {
        repository
            .save_object("index", b"index", &IndexFile { packs })
            .await?;
    }
    let tree_key = repository.save_object("trees", b"tree", &tree).await?;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time: k8s_openapi::jiff::Timestamp::now().to_string(),
        tags: options.tags.clone(),
        source: source.display().to_string(),
        parent: parent.map(|(id, _)| id),
        stats,
        tree: tree_key,
    };
    let snapshot_key = repository
        .save_object("snapshots", b"snapshot", &snapshot)
        .await?;
    let id = snapshot_key.trim_start_matches("snapshots/").to_string();
    Ok((id, snapshot))
}

struct Pipeline {
    key: Arc<MasterKey>,
    backend: Arc<dyn RepositoryBackend>,
    index: Arc<Index>,
    runtime: Handle,
    workers: usize,
    uploads: usize,
}

/// A chunk on its way from the chunker to the sealing workers.
type RawChunk = (ChunkId, Vec<u8>);

impl Pipeline {
    fn run(
        self,
        source: &Path,
        parent: Option<&Tree>,
    ) -> Result<(Tree, SnapshotStats, Vec<IndexedPack>), Error> {
        let (raw_sender, raw_receiver) = sync_channel::<RawChunk>(self.workers * 2);
        let (sealed_sender, sealed_receiver) = sync_channel::<SealedChunk>(self.workers * 2);
        let raw_receiver = Arc::new(Mutex::new(raw_receiver));

        std::thread::scope(|scope| {
            let mut worker_handles = Vec::new();
            for _ in 0..self.workers {
                let receiver = raw_receiver.clone();
                let sender = sealed_sender.clone();
                let key = self.key.clone();
                worker_handles.push(scope.spawn(move || seal_worker(&key, &receiver, &sender)));
            }
            drop(sealed_sender);
            let packer = scope.spawn(|| self.pack_and_upload(sealed_receiver));

            let mut walker = Walker {
                key: &self.key,
                index: &self.index,
                sender: raw_sender,
                parent: parent.map(files_by_path).unwrap_or_default(),
                pending: HashSet::new(),
                hard_links: HashMap::new(),
                nodes: Vec::new(),
                stats: SnapshotStats::default(),
            };
            let walked = walker.walk(source);
            let Walker {
                nodes,
                mut stats,
                sender,
                ..
            } = walker;
            drop(sender);

            // The walker dropped its sender, so the workers and then the packer finish. A
            // failed stage closes its channels, which fails the stages before it: report the
            // latest stage's error, the cause.
            let sealed = worker_handles
                .into_iter()
                .map(|handle| handle.join().expect("seal worker panicked"))
                .collect::<Result<Vec<()>, Error>>();
            let packs = packer.join().expect("packer panicked")?;
            sealed?;
            walked?;
            stats.stored_bytes = packs.iter().map(|pack| pack.size).sum();
            Ok((Tree { nodes }, stats, packs))
        })
    }

    /// Fills packs from sealed chunks and uploads each one as it fills.
    fn pack_and_upload(&self, receiver: Receiver<SealedChunk>) -> Result<Vec<IndexedPack>, Error> {
        let semaphore = Arc::new(Semaphore::new(self.uploads));
        let mut uploads = Vec::new();
        let mut packs = Vec::new();
        let mut builder = PackBuilder::default();

        let filled = || -> Result<(), Error> {
            for chunk in receiver {
                builder.add(chunk);
                if builder.len() >= PACK_TARGET_SIZE {
                    let pack = std::mem::take(&mut builder).finish(&self.key)?;
                    uploads.push(self.start_upload(pack, &semaphore));
                }
                // Stop at the first failed upload; the workers and the walker then see
                // closed channels and stop too.
                self.collect_finished(&mut uploads, &mut packs)?;
            }
            if !builder.is_empty() {
                let pack = std::mem::take(&mut builder).finish(&self.key)?;
                uploads.push(self.start_upload(pack, &semaphore));
            }
            Ok(())
        };
        let filled = filled();

        for upload in uploads {
            let uploaded = self.join_upload(upload);
            if filled.is_ok() {
                packs.push(uploaded?);
            }
        }
        filled.map(|()| packs)
    }

    fn start_upload(&self, pack: FinishedPack, semaphore: &Arc<Semaphore>) -> UploadHandle {
        // Waiting for a permit here blocks the packer, which bounds the packs in memory.
        let permit = self
            .runtime
            .block_on(semaphore.clone().acquire_owned())
            .expect("semaphore is never closed");
        let backend = self.backend.clone();
        self.runtime.spawn(async move {
            let indexed = IndexedPack {
                id: pack.id.clone(),
                size: pack.data.len() as u64,
                blobs: pack.entries,
            };
            backend.put(&pack_key(&pack.id), pack.data).await?;
            drop(permit);
            Ok(indexed)
        })
    }

    fn join_upload(&self, upload: UploadHandle) -> Result<IndexedPack, Error> {
        self.runtime
            .block_on(upload)
            .map_err(|error| Error::Backend(format!("upload task failed: {error}")))?
    }

    /// Moves the uploads that have ended into `packs`, returning the first failure.
    fn collect_finished(
        &self,
        uploads: &mut Vec<UploadHandle>,
        packs: &mut Vec<IndexedPack>,
    ) -> Result<(), Error> {
        let mut position = 0;
        while position < uploads.len() {
            if uploads[position].is_finished() {
                let upload = uploads.swap_remove(position);
                packs.push(self.join_upload(upload)?);
            } else {
                position += 1;
            }
        }
        Ok(())
    }
}

type UploadHandle = tokio::task::JoinHandle<Result<IndexedPack, Error>>;

fn seal_worker(
    key: &MasterKey,
    receiver: &Mutex<Receiver<RawChunk>>,
    sender: &SyncSender<SealedChunk>,
) -> Result<(), Error> {
    loop {
        let next = receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        let Ok((id, data)) = next else {
            return Ok(());
        };
        let sealed = seal_chunk(key, id, &data)?;
        if sender.send(sealed).is_err() {
            // The packer stopped after a failed upload and reports that error.
            return Ok(());
        }
    }
}

/// The walk over the source folder, producing the tree and feeding new chunks to the workers.
struct Walker<'a> {
    key: &'a MasterKey,
    index: &'a Index,
    sender: SyncSender<RawChunk>,
    parent: std::collections::BTreeMap<&'a NodePath, &'a Node>,
    /// Chunks sent in this run and not in the index yet.
    pending: HashSet<ChunkId>,
    /// First path seen for each (device, inode) of a file with more than one link.
    hard_links: HashMap<(u64, u64), NodePath>,
    nodes: Vec<Node>,
    stats: SnapshotStats,
}

impl Walker<'_> {
    /// Walks `root` depth first in name order; parents come before their children.
    fn walk(&mut self, root: &Path) -> Result<(), Error> {
        let mut pending = vec![(root.to_path_buf(), NodePath::default())];
        while let Some((path, relative)) = pending.pop() {
            let metadata = match std::fs::symlink_metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), "file vanished during the backup, skipped");
                    continue;
                }
                Err(error) => {
                    return Err(Error::io(
                        format!("failed to stat {}", path.display()),
                        error,
                    ));
                }
            };
            let node = self.visit(&path, relative.clone(), &metadata)?;
            let is_dir = node.kind == NodeKind::Dir;
            self.nodes.push(node);

            if is_dir {
                let mut children = read_children(&path)?;
                // Reverse order on the stack, so children are visited in name order.
                children.sort();
                for name in children.into_iter().rev() {
                    let mut child = relative.0.clone();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(name.as_bytes());
                    pending.push((path.join(&name), NodePath(child)));
                }
            }
        }
        Ok(())
    }

    fn visit(
        &mut self,
        path: &Path,
        relative: NodePath,
        metadata: &std::fs::Metadata,
    ) -> Result<Node, Error> {
        let kind = node_kind(metadata);
        let mut node = Node {
            path: relative,
            kind,
            mode: metadata.mode() & 0o7777,
            uid: metadata.uid(),
            gid: metadata.gid(),
            mtime_sec: metadata.mtime(),
            mtime_nsec: metadata.mtime_nsec() as u32,
            size: if kind == NodeKind::File {
                metadata.size()
            } else {
                0
            },
            inode: metadata.ino(),
            nlink: metadata.nlink(),
            rdev: matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice)
                .then(|| metadata.rdev()),
            symlink_target: None,
            hardlink_to: None,
            extents: Vec::new(),
        };

        match kind {
            NodeKind::Dir => self.stats.directories += 1,
            NodeKind::Symlink => {
                let target = std::fs::read_link(path).map_err(|error| {
                    Error::io(format!("failed to read link {}", path.display()), error)
                })?;
                node.symlink_target = Some(NodePath(target.as_os_str().as_bytes().to_vec()));
                self.stats.other_entries += 1;
            }
            NodeKind::File => {
                self.stats.files += 1;
                self.stats.total_bytes += node.size;
                if node.nlink > 1 {
                    let identity = (metadata.dev(), metadata.ino());
                    if let Some(first) = self.hard_links.get(&identity) {
                        node.hardlink_to = Some(first.clone());
                        return Ok(node);
                    }
                    self.hard_links.insert(identity, node.path.clone());
                }
                node.extents = self.file_extents(path, &node)?;
            }
            _ => self.stats.other_entries += 1,
        }
        Ok(node)
    }

    /// Returns the extents of a file: from the parent snapshot when size, mtime and inode
    /// are unchanged and its chunks are indexed, by reading and chunking it otherwise.
    fn file_extents(&mut self, path: &Path, node: &Node) -> Result<Vec<Extent>, Error> {
        if let Some(previous) = self.parent.get(&node.path)
            && previous.size == node.size
            && previous.mtime_sec == node.mtime_sec
            && previous.mtime_nsec == node.mtime_nsec
            && previous.inode == node.inode
            && previous
                .extents
                .iter()
                .flat_map(|extent| &extent.chunks)
                .all(|chunk| self.index.contains(&chunk.id))
        {
            self.stats.unchanged_files += 1;
            return Ok(previous.extents.clone());
        }

        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "file vanished during the backup, stored empty");
                return Ok(Vec::new());
            }
            Err(error) => {
                return Err(Error::io(
                    format!("failed to open {}", path.display()),
                    error,
                ));
            }
        };
        let mut extents = Vec::new();
        for (offset, length) in data_regions(&file, node.size) {
            file.seek(SeekFrom::Start(offset)).map_err(|error| {
                Error::io(format!("failed to seek in {}", path.display()), error)
            })?;
            let chunks = self.chunk_region((&file).take(length), path)?;
            if !chunks.is_empty() {
                extents.push(Extent { offset, chunks });
            }
        }
        Ok(extents)
    }

    fn chunk_region(&mut self, reader: impl Read, path: &Path) -> Result<Vec<ChunkRef>, Error> {
        let chunker = StreamCDC::with_level_and_seed(
            reader,
            super::CHUNK_MIN,
            super::CHUNK_AVERAGE,
            super::CHUNK_MAX,
            Normalization::Level1,
            self.key.chunker_seed,
        );
        let mut chunks = Vec::new();
        for chunk in chunker {
            let chunk = chunk.map_err(|error| {
                Error::Backend(format!("failed to read {}: {error}", path.display()))
            })?;
            let id = self.key.chunk_id(&chunk.data);
            self.stats.read_bytes += chunk.length as u64;
            chunks.push(ChunkRef {
                id,
                length: chunk.length as u32,
            });

            if !self.index.contains(&id) && self.pending.insert(id) {
                self.stats.new_chunks += 1;
                self.stats.new_bytes += chunk.length as u64;
                if self.sender.send((id, chunk.data)).is_err() {
                    return Err(Error::Backend(
                        "the upload pipeline stopped early".to_string(),
                    ));
                }
            }
        }
        Ok(chunks)
    }
}

fn read_children(path: &Path) -> Result<Vec<std::ffi::OsString>, Error> {
    let entries = std::fs::read_dir(path)
        .map_err(|error| Error::io(format!("failed to list {}", path.display()), error))?;
    entries
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|error| Error::io(format!("failed to list {}", path.display()), error))
}

fn node_kind(metadata: &std::fs::Metadata) -> NodeKind {
    use std::os::unix::fs::FileTypeExt;
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        NodeKind::Dir
    } else if file_type.is_symlink() {
        NodeKind::Symlink
    } else if file_type.is_fifo() {
        NodeKind::Fifo
    } else if file_type.is_char_device() {
        NodeKind::CharDevice
    } else if file_type.is_block_device() {
        NodeKind::BlockDevice
    } else if file_type.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// Returns the data regions of a file as (offset, length), found with SEEK_DATA/SEEK_HOLE
/// so that holes of sparse files are neither read nor stored. File systems without hole
/// support report the whole file as one region.
pub(crate) fn data_regions(file: &File, size: u64) -> Vec<(u64, u64)> {
    use nix::errno::Errno;
    use nix::unistd::{Whence, lseek};

    let mut regions = Vec::new();
    let mut position: u64 = 0;
    while position < size {
        let data = match lseek(file, position as i64, Whence::SeekData) {
            Ok(offset) => offset as u64,
            // ENXIO: no data after `position`, the rest of the file is a hole.
            Err(Errno::ENXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        if data >= size {
            break;
        }
        let hole = match lseek(file, data as i64, Whence::SeekHole) {
            Ok(offset) => (offset as u64).min(size),
            Err(_) => size,
        };
        regions.push((data, hole - data));
        position = hole;
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn data_regions_skip_holes() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("sparse");
        let mut file = File::create(&path).unwrap();
        file.write_all(&[7u8; 4096]).unwrap();
        file.seek(SeekFrom::Start(64 * 1024 * 1024)).unwrap();
        file.write_all(&[9u8; 4096]).unwrap();
        drop(file);

        let file = File::open(&path).unwrap();
        let size = file.metadata().unwrap().len();
        let regions = data_regions(&file, size);
        let data: u64 = regions.iter().map(|(_, length)| length).sum();
        assert!(data < 1024 * 1024, "regions {regions:?} cover the hole");
        assert_eq!(regions.first().unwrap().0, 0);
        assert_eq!(regions.last().unwrap().0 + regions.last().unwrap().1, size);
    }
}
