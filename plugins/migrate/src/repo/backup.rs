//! Backup of a folder into a snapshot: walk, chunk, deduplicate, seal, pack and upload.
//!
//! The walk runs on one thread and hands each file to be read to one of `readers` threads,
//! which chunk it and hash the chunks. Compression and sealing run on `workers` threads. One
//! packer thread fills packs and hands each to an upload task, with at most `uploads` packs
//! in flight. The readers' buffers and the bounded channels between the stages keep memory
//! at about `4 * (readers + workers) * CHUNK_MAX + (uploads + 1) * PACK_TARGET_SIZE`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fastcdc::v2020::{FastCDC, Normalization};
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
    /// Threads that read, chunk and hash files, each one file at a time.
    pub readers: usize,
    /// Threads that compress and seal chunks.
    pub workers: usize,
    /// Packs uploaded at the same time.
    pub uploads: usize,
    /// Reads every file even when the previous snapshot of the volume has it unchanged.
    pub full: bool,
}

impl BackupOptions {
    /// Options with two readers, one worker per CPU and two uploads in flight.
    pub fn new(tags: SnapshotTags) -> Self {
        BackupOptions {
            tags,
            readers: 2,
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
        readers: options.readers.max(1),
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
    readers: usize,
    workers: usize,
    uploads: usize,
}

/// A chunk on its way from a reader to the sealing workers.
type RawChunk = (ChunkId, Vec<u8>);

/// A file on its way from the walk to a reader: its node's position in the tree, path and
/// size.
type FileJob = (usize, std::path::PathBuf, u64);

impl Pipeline {
    fn run(
        self,
        source: &Path,
        parent: Option<&Tree>,
    ) -> Result<(Tree, SnapshotStats, Vec<IndexedPack>), Error> {
        let (raw_sender, raw_receiver) = sync_channel::<RawChunk>(self.workers * 2);
        let (sealed_sender, sealed_receiver) = sync_channel::<SealedChunk>(self.workers * 2);
        let (job_sender, job_receiver) = sync_channel::<FileJob>(self.readers * 16);
        // The workers hold the only handles of the chunk receiver and the readers those of the
        // job receiver, so sends into a stage fail once all of its threads have stopped.
        let raw_receiver = Arc::new(Mutex::new(raw_receiver));
        let job_receiver = Arc::new(Mutex::new(job_receiver));
        let pending = Mutex::new(HashSet::new());
        let stopped = AtomicBool::new(false);

        std::thread::scope(|scope| {
            let mut worker_handles = Vec::new();
            for _ in 0..self.workers {
                let receiver = raw_receiver.clone();
                let sender = sealed_sender.clone();
                let key = self.key.clone();
                worker_handles.push(scope.spawn(move || seal_worker(&key, &receiver, &sender)));
            }
            drop(sealed_sender);
            drop(raw_receiver);
            let packer = scope.spawn(|| self.pack_and_upload(sealed_receiver));

            let mut reader_handles = Vec::new();
            for _ in 0..self.readers {
                let mut reader = Reader {
                    key: &self.key,
                    index: &self.index,
                    pending: &pending,
                    sender: raw_sender.clone(),
                    stats: SnapshotStats::default(),
                    buffer: Vec::new(),
                };
                let jobs = job_receiver.clone();
                let stopped = &stopped;
                reader_handles.push(scope.spawn(move || {
                    let read = reader.read_files(&jobs);
                    drop(jobs);
                    if read.is_err() {
                        stopped.store(true, Ordering::Relaxed);
                    }
                    read.map(|extents| (extents, reader.stats))
                }));
            }
            drop(raw_sender);
            drop(job_receiver);

            let mut walker = Walker {
                index: &self.index,
                jobs: job_sender,
                stopped: &stopped,
                parent: parent.map(files_by_path).unwrap_or_default(),
                hard_links: HashMap::new(),
                nodes: Vec::new(),
                stats: SnapshotStats::default(),
            };
            let walked = walker.walk(source);
            let Walker {
                mut nodes,
                mut stats,
                jobs,
                ..
            } = walker;
            drop(jobs);

            // The walker dropped its job sender, so the readers, then the workers and then the
            // packer finish. A failed stage closes its channels, which fails the stages before
            // it: report the latest stage's error, the cause.
            let read = reader_handles
                .into_iter()
                .map(|handle| handle.join().expect("file reader panicked"))
                .collect::<Result<Vec<_>, Error>>();
            let sealed = worker_handles
                .into_iter()
                .map(|handle| handle.join().expect("seal worker panicked"))
                .collect::<Result<Vec<()>, Error>>();
            let packs = packer.join().expect("packer panicked")?;
            sealed?;
            let read = read?;
            walked?;

            for (extents, reader_stats) in read {
                stats.read_bytes += reader_stats.read_bytes;
                stats.new_chunks += reader_stats.new_chunks;
                stats.new_bytes += reader_stats.new_bytes;
                for (position, file_extents) in extents {
                    nodes[position].extents = file_extents;
                }
            }
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

/// The walk over the source folder, producing the tree and handing the files to be read to
/// the readers.
struct Walker<'a> {
    index: &'a Index,
    jobs: SyncSender<FileJob>,
    /// Set by a reader that failed, so the walk stops early.
    stopped: &'a AtomicBool,
    parent: std::collections::BTreeMap<&'a NodePath, &'a Node>,
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
            if self.stopped.load(Ordering::Relaxed) {
                return Err(pipeline_stopped());
            }
            let (node, needs_read) = self.visit(&path, relative.clone(), &metadata)?;
            let is_dir = node.kind == NodeKind::Dir;
            let size = node.size;
            self.nodes.push(node);
            if needs_read {
                let job = (self.nodes.len() - 1, path.clone(), size);
                self.jobs.send(job).map_err(|_| pipeline_stopped())?;
            }

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

    /// Builds the node of one entry. The flag is true for a file that a reader has to chunk,
    /// because the parent snapshot does not have it unchanged.
    fn visit(
        &mut self,
        path: &Path,
        relative: NodePath,
        metadata: &std::fs::Metadata,
    ) -> Result<(Node, bool), Error> {
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
                        return Ok((node, false));
                    }
                    self.hard_links.insert(identity, node.path.clone());
                }
                match self.unchanged_extents(&node) {
                    Some(extents) => {
                        self.stats.unchanged_files += 1;
                        node.extents = extents;
                    }
                    None => return Ok((node, true)),
                }
            }
            _ => self.stats.other_entries += 1,
        }
        Ok((node, false))
    }

    /// Returns the extents of the file in the parent snapshot when its size, mtime and inode
    /// are unchanged and its chunks are indexed.
    fn unchanged_extents(&self, node: &Node) -> Option<Vec<Extent>> {
        let previous = self.parent.get(&node.path)?;
        let unchanged = previous.size == node.size
            && previous.mtime_sec == node.mtime_sec
            && previous.mtime_nsec == node.mtime_nsec
            && previous.inode == node.inode
            && previous
                .extents
                .iter()
                .flat_map(|extent| &extent.chunks)
                .all(|chunk| self.index.contains(&chunk.id));
        unchanged.then(|| previous.extents.clone())
    }
}

fn pipeline_stopped() -> Error {
    Error::Backend("the upload pipeline stopped early".to_string())
}

/// One file reader: chunks files, hashes the chunks and sends the new ones to the workers.
struct Reader<'a> {
    key: &'a MasterKey,
    index: &'a Index,
    /// Chunks sent in this run and not in the index yet, shared by all readers.
    pending: &'a Mutex<HashSet<ChunkId>>,
    sender: SyncSender<RawChunk>,
    /// Only `read_bytes`, `new_chunks` and `new_bytes` are counted here.
    stats: SnapshotStats,
    /// The chunker's buffer.
    buffer: Vec<u8>,
}

impl Reader<'_> {
    /// Reads files until the walk ends; returns each file's node position and extents.
    fn read_files(
        &mut self,
        jobs: &Mutex<Receiver<FileJob>>,
    ) -> Result<Vec<(usize, Vec<Extent>)>, Error> {
        let mut files = Vec::new();
        loop {
            let next = jobs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .recv();
            let Ok((position, path, size)) = next else {
                return Ok(files);
            };
            files.push((position, self.file_extents(&path, size)?));
        }
    }

    /// Reads and chunks the data regions of one file.
    fn file_extents(&mut self, path: &Path, size: u64) -> Result<Vec<Extent>, Error> {
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
        for (offset, length) in data_regions(&file, size) {
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
        let mut chunker = Chunker::new(reader, self.key.chunker_seed, &mut self.buffer);
        let mut chunks = Vec::new();
        while let Some(data) = chunker
            .next_chunk()
            .map_err(|error| Error::io(format!("failed to read {}", path.display()), error))?
        {
            let id = self.key.chunk_id(data);
            let length = data.len();
            self.stats.read_bytes += length as u64;
            chunks.push(ChunkRef {
                id,
                length: length as u32,
            });

            let is_new = !self.index.contains(&id)
                && self
                    .pending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(id);
            if is_new {
                self.stats.new_chunks += 1;
                self.stats.new_bytes += length as u64;
                self.sender
                    .send((id, data.to_vec()))
                    .map_err(|_| pipeline_stopped())?;
            }
        }
        Ok(chunks)
    }
}

/// Splits a stream into FastCDC chunks with the repository's sizes and seed. It finds the
/// same cut points as fastcdc's `StreamCDC` but keeps a buffer of several maximum-size chunks,
/// so each byte is moved about once instead of once per chunk cut before it.
struct Chunker<'a, R> {
    source: R,
    /// Reused from file to file; allocated on first use.
    buffer: &'a mut Vec<u8>,
    /// Unconsumed bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    seed: u64,
}

impl<'a, R: Read> Chunker<'a, R> {
    const BUFFER_SIZE: usize = 4 * super::CHUNK_MAX as usize;

    fn new(source: R, seed: u64, buffer: &'a mut Vec<u8>) -> Self {
        Chunker {
            source,
            buffer,
            start: 0,
            end: 0,
            eof: false,
            seed,
        }
    }

    /// Returns the next chunk, or `None` at the end of the stream.
    fn next_chunk(&mut self) -> std::io::Result<Option<&[u8]>> {
        let max_length = super::CHUNK_MAX as usize;
        if self.end - self.start < max_length && !self.eof {
            self.fill()?;
        }
        if self.start == self.end {
            return Ok(None);
        }

        // The cut is searched in at most one maximum-size chunk, as StreamCDC does.
        let window = &self.buffer[self.start..self.end.min(self.start + max_length)];
        let fastcdc = FastCDC::with_level_and_seed(
            window,
            super::CHUNK_MIN,
            super::CHUNK_AVERAGE,
            super::CHUNK_MAX,
            Normalization::Level1,
            self.seed,
        );
        let (_, length) = fastcdc.cut(0, window.len());
        let chunk = self.start..self.start + length;
        self.start += length;
        Ok(Some(&self.buffer[chunk]))
    }

    /// Moves the unconsumed bytes to the front and reads until the buffer is full or the
    /// stream ends.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            *self.buffer = vec![0; Self::BUFFER_SIZE];
        }
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < self.buffer.len() {
            match self.source.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(read) => self.end += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
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

    /// Returns at most 7,000 bytes per read, so the chunker has to refill its buffer often.
    struct ShortReads<'a>(&'a [u8]);

    impl Read for ShortReads<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let length = buffer.len().min(self.0.len()).min(7_000);
            buffer[..length].copy_from_slice(&self.0[..length]);
            self.0 = &self.0[length..];
            Ok(length)
        }
    }

    #[test]
    fn chunker_cuts_like_stream_cdc() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..23_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let seed = 0x1234_5678;

        let expected: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::with_level_and_seed(
            data.as_slice(),
            super::super::CHUNK_MIN,
            super::super::CHUNK_AVERAGE,
            super::super::CHUNK_MAX,
            Normalization::Level1,
            seed,
        )
        .map(|chunk| chunk.unwrap().data)
        .collect();
        let mut buffer = Vec::new();
        let mut chunker = Chunker::new(ShortReads(&data), seed, &mut buffer);
        let mut chunks = Vec::new();
        while let Some(chunk) = chunker.next_chunk().unwrap() {
            chunks.push(chunk.to_vec());
        }

        assert!(expected.len() > 10, "{} chunks", expected.len());
        assert_eq!(chunks.len(), expected.len());
        assert!(chunks == expected, "chunk boundaries differ");
    }

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
