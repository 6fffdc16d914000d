//! End-to-end tests of the repository engine on local folders.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use super::*;

const PASSWORD: &[u8] = b"correct horse battery staple";

fn tags(volume: &str) -> SnapshotTags {
    SnapshotTags {
        backup: "nightly-1".into(),
        namespace: "shop".into(),
        pod: "db-0".into(),
        volume: volume.into(),
        pvc: Some(format!("{volume}-db-0")),
    }
}

/// Deterministic pseudo-random bytes (xorshift), so test data does not compress away.
fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn set_mtime(path: &Path, seconds: i64) {
    let time = nix::sys::time::TimeSpec::new(seconds, 123_456_789);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Builds a tree with every kind of entry the engine keeps.
fn build_source(root: &Path) {
    std::fs::create_dir_all(root.join("config/nested")).unwrap();
    std::fs::write(root.join("config/app.yaml"), "replicas: 3\n".repeat(100)).unwrap();
    std::fs::write(root.join("config/nested/empty"), b"").unwrap();
    std::fs::write(root.join("large.bin"), noise(1, 9 * 1024 * 1024 + 17)).unwrap();
    std::fs::write(root.join("secret.key"), b"key material").unwrap();
    std::fs::set_permissions(root.join("secret.key"), PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(root.join("config/nested"), PermissionsExt::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("config/app.yaml", root.join("current")).unwrap();
    std::os::unix::fs::symlink("missing-target", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("secret.key"), root.join("config/secret-link")).unwrap();
    nix::unistd::mkfifo(
        &root.join("events.fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();

    // A 64 MiB sparse file with data at both ends.
    let mut sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.write_all(&noise(2, 8192)).unwrap();
    sparse
        .seek(SeekFrom::Start(64 * 1024 * 1024 - 4096))
        .unwrap();
    sparse.write_all(&noise(3, 4096)).unwrap();
    drop(sparse);

    for (index, entry) in [
        "config/app.yaml",
        "large.bin",
        "secret.key",
        "sparse.img",
        "current",
        "config/nested",
        "config",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(entry), 1_600_000_000 + index as i64 * 1000);
    }
}

/// Describes a tree as path -> (type, mode, uid, gid, mtime, size, link target, content hash,
/// inode group), the inode group numbering hard-linked files alike.
fn describe_tree(root: &Path) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    let mut inodes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let relative = path.strip_prefix(root).unwrap().display().to_string();
        let file_type = metadata.file_type();
        let mut line = format!(
            "mode={:o} uid={} gid={} mtime={}.{}",
            metadata.mode(),
            metadata.uid(),
            metadata.gid(),
            metadata.mtime(),
            metadata.mtime_nsec()
        );
        if file_type.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            children.sort();
            pending.extend(children);
        } else if file_type.is_symlink() {
            line.push_str(&format!(
                " link={}",
                std::fs::read_link(&path).unwrap().display()
            ));
        } else if file_type.is_file() {
            let next_group = inodes.len();
            let group = *inodes.entry(metadata.ino()).or_insert(next_group);
            let content = std::fs::read(&path).unwrap();
            line.push_str(&format!(
                " size={} blake3={} links={} group={group}",
                metadata.size(),
                blake3::hash(&content),
                metadata.nlink()
            ));
        }
        entries.insert(relative, line);
    }
    entries
}

async fn local_repository(folder: &Path) -> Repository {
    let backend = Arc::new(LocalBackend::new(folder.join(REPOSITORY_FOLDER)));
    Repository::open_or_init(backend, PASSWORD).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_returns_equal_tree() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    build_source(&source);
    let repository = local_repository(&work.path().join("location")).await;

    let (_, snapshot) = backup_folder(&repository, &source, &BackupOptions::new(tags("data")))
        .await
        .unwrap();
    let target = work.path().join("restored");
    restore_snapshot(&repository, &snapshot, &target, &RestoreOptions::default())
        .await
        .unwrap();

    let expected = describe_tree(&source);
    let restored = describe_tree(&target);
    for (path, line) in &expected {
        assert_eq!(restored.get(path), Some(line), "entry {path:?} differs");
    }
    assert_eq!(restored.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_keeps_holes() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    build_source(&source);
    let repository = local_repository(&work.path().join("location")).await;

    let (_, snapshot) = backup_folder(&repository, &source, &BackupOptions::new(tags("data")))
        .await
        .unwrap();
    let target = work.path().join("restored");
    restore_snapshot(&repository, &snapshot, &target, &RestoreOptions::default())
        .await
        .unwrap();

    let restored = std::fs::metadata(target.join("sparse.img")).unwrap();
    assert_eq!(restored.len(), 64 * 1024 * 1024);
    assert!(
        restored.blocks() * 512 <= 1024 * 1024,
        "sparse file allocates {} bytes",
        restored.blocks() * 512
    );
    // The hole was neither read nor stored.
    assert!(snapshot.stats.read_bytes < 12 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_backup_skips_unchanged_files() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    build_source(&source);
    let repository = local_repository(&work.path().join("location")).await;
    let options = BackupOptions::new(tags("data"));
    let (first_id, first) = backup_folder(&repository, &source, &options).await.unwrap();

    std::fs::write(source.join("secret.key"), b"rotated key").unwrap();
    let (_, second) = backup_folder(&repository, &source, &options).await.unwrap();

    assert_eq!(second.parent.as_deref(), Some(first_id.as_str()));
    assert_eq!(first.stats.unchanged_files, 0);
    // Six files, of which secret.key (and its hard link) changed.
    assert_eq!(second.stats.files, first.stats.files);
    assert_eq!(second.stats.unchanged_files, 4);
    assert_eq!(second.stats.read_bytes, "rotated key".len() as u64);
    assert_eq!(second.stats.new_chunks, 1);

    let target = work.path().join("restored");
    restore_snapshot(&repository, &second, &target, &RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(describe_tree(&target), describe_tree(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_across_volumes_and_namespaces() {
    let work = tempfile::tempdir().unwrap();
    let first_source = work.path().join("first");
    let second_source = work.path().join("second");
    std::fs::create_dir_all(&first_source).unwrap();
    std::fs::create_dir_all(&second_source).unwrap();
    let shared = noise(7, 6 * 1024 * 1024);
    std::fs::write(first_source.join("blob"), &shared).unwrap();
    std::fs::write(second_source.join("copy"), &shared).unwrap();
    let repository = local_repository(&work.path().join("location")).await;

    let (_, first) = backup_folder(
        &repository,
        &first_source,
        &BackupOptions::new(tags("data")),
    )
    .await
    .unwrap();
    let mut other = tags("logs");
    other.namespace = "billing".into();
    let (_, second) = backup_folder(&repository, &second_source, &BackupOptions::new(other))
        .await
        .unwrap();

    assert_eq!(first.stats.new_bytes, shared.len() as u64);
    assert_eq!(second.stats.new_bytes, 0);
    assert_eq!(second.stats.new_chunks, 0);
    assert_eq!(second.parent, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressible_data_is_stored_smaller() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        source.join("log.txt"),
        "GET /index.html 200\n".repeat(200_000),
    )
    .unwrap();
    let repository = local_repository(&work.path().join("location")).await;

    let (_, snapshot) = backup_folder(&repository, &source, &BackupOptions::new(tags("data")))
        .await
        .unwrap();
    assert!(snapshot.stats.stored_bytes * 20 < snapshot.stats.new_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    local_repository(&location).await;

    let backend = Arc::new(LocalBackend::new(location.join(REPOSITORY_FOLDER)));
    let error = Repository::open(backend, b"not the password")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "wrong repository password: check --password-file or KUBECTL_MIGRATE_PASSWORD"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_is_not_stored_in_clear() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let repository = local_repository(&location).await;
    let secret = hex::encode(repository.key().encryption);

    for entry in std::fs::read_dir(location.join("repository/keys")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_chunk_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    build_source(&source);
    let location = work.path().join("location");
    let repository = local_repository(&location).await;
    let (_, snapshot) = backup_folder(&repository, &source, &BackupOptions::new(tags("data")))
        .await
        .unwrap();
    let clean = verify_repository(&repository).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(
        clean.chunks,
        repository.load_index().await.unwrap().chunk_count() as u64
    );

    // Flip one byte inside the first blob of the first pack.
    let index = repository.load_index().await.unwrap();
    let (id, location_of_chunk) = index
        .iter()
        .find(|(_, location)| location.entry.offset == 0)
        .map(|(id, location)| (*id, *location))
        .unwrap();
    let pack = index.pack_id(location_of_chunk.pack).to_string();
    let pack_path = location.join("repository").join(pack::pack_key(&pack));
    let mut bytes = std::fs::read(&pack_path).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&pack_path, bytes).unwrap();

    let report = verify_repository(&repository).await.unwrap();
    let chunk_problem = format!(
        "chunk {} in pack {pack} is damaged or was modified: authentication failed",
        hex::encode(id)
    );
    assert!(
        report.problems.contains(&chunk_problem),
        "{:?}",
        report.problems
    );

    let error = restore_snapshot(
        &repository,
        &snapshot,
        &work.path().join("restored"),
        &RestoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.to_string(), chunk_problem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_missing_folder_fails() {
    let work = tempfile::tempdir().unwrap();
    let repository = local_repository(&work.path().join("location")).await;
    let error = backup_folder(
        &repository,
        &work.path().join("absent"),
        &BackupOptions::new(tags("data")),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("absent"), "{error}");
}

/// A local backend whose pack uploads fail, as when a bucket fills up mid-backup.
struct FailingPacks(LocalBackend);

impl RepositoryBackend for FailingPacks {
    fn get<'a>(&'a self, key: &'a str) -> futures::future::BoxFuture<'a, Result<Vec<u8>, Error>> {
        self.0.get(key)
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        data: Vec<u8>,
    ) -> futures::future::BoxFuture<'a, Result<(), Error>> {
        if key.starts_with("data/") {
            return Box::pin(async move {
                Err(Error::Backend(format!("failed to write {key}: disk full")))
            });
        }
        self.0.put(key, data)
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<String>, Error>> {
        self.0.list(prefix)
    }

    fn delete<'a>(&'a self, key: &'a str) -> futures::future::BoxFuture<'a, Result<(), Error>> {
        self.0.delete(key)
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upload_stops_backup() {
    // More data than the pipeline's channels and one pack hold, so every stage has to notice
    // the failure instead of waiting on a full channel.
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir(&source).unwrap();
    for file in 0..48 {
        std::fs::write(
            source.join(format!("file-{file:02}")),
            noise(2 * file + 1, 1 << 20),
        )
        .unwrap();
    }
    let backend = Arc::new(FailingPacks(LocalBackend::new(
        work.path().join(REPOSITORY_FOLDER),
    )));
    let repository = Repository::open_or_init(backend, PASSWORD).await.unwrap();

    let options = BackupOptions::new(tags("data"));
    let backup = backup_folder(&repository, &source, &options);
    let error = tokio::time::timeout(std::time::Duration::from_secs(120), backup)
        .await
        .expect("backup hung after a failed upload")
        .unwrap_err();
    assert!(error.to_string().contains("disk full"), "{error}");
    assert!(repository.snapshots().await.unwrap().is_empty());
}
