//! `kubectl-migrate agent` run directly on local folders: backup, incremental backup and
//! restore into a folder location and an S3 bucket, tamper detection and password checks.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::plugins::{bin_dir, ensure_built};
use testkit::s3::S3Server;

const PASSWORD: &str = "volume-test-password";

/// A location with the arguments that reach it.
struct Location {
    args: Vec<String>,
    /// Folder holding the repository's objects, for tampering with a pack.
    repository_dir: PathBuf,
}

fn folder_location(work: &Path) -> Location {
    let folder = work.join("location");
    Location {
        args: vec!["--location".into(), format!("file://{}", folder.display())],
        repository_dir: folder.join("repository"),
    }
}

fn s3_location(server: &S3Server, work: &Path) -> Location {
    server.create_bucket("volumes");
    let credentials = server.write_credentials_file(work);
    Location {
        args: vec![
            "--location".into(),
            "s3://volumes/cluster-a".into(),
            "--endpoint".into(),
            server.endpoint(),
            "--credentials-file".into(),
            credentials.display().to_string(),
        ],
        repository_dir: server.data_dir().join("volumes/cluster-a/repository"),
    }
}

fn agent(location: &Location, password: &str, args: &[&str]) -> Output {
    ensure_built(&["migrate"]);
    Command::new(bin_dir().join("kubectl-migrate"))
        .arg("agent")
        .args(args)
        .args(&location.args)
        .env("KUBECTL_MIGRATE_PASSWORD", password)
        .output()
        .expect("failed to run kubectl-migrate")
}

fn success_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "agent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("agent printed a result line");
    serde_json::from_str(last).expect("result line is JSON")
}

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
    let status = Command::new("touch")
        .args(["-h", "-d", &format!("@{seconds}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Fills a volume with small and large files, a sparse file, links, odd modes and owners.
fn build_volume(root: &Path) {
    std::fs::create_dir_all(root.join("db/wal")).unwrap();
    for index in 0..40 {
        std::fs::write(
            root.join(format!("db/wal/{index:04}.log")),
            format!("record {index}\n").repeat(50 + index),
        )
        .unwrap();
    }
    std::fs::write(root.join("db/table.dat"), noise(11, 5 * 1024 * 1024)).unwrap();
    std::fs::write(root.join("db/settings.conf"), b"max_connections = 100\n").unwrap();
    std::fs::set_permissions(
        root.join("db/settings.conf"),
        PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(root.join("db/settings.conf"), Some(999), Some(998)).unwrap();
    std::os::unix::fs::symlink("db/settings.conf", root.join("settings")).unwrap();
    std::fs::hard_link(root.join("db/table.dat"), root.join("table.hardlink")).unwrap();

    let mut sparse = std::fs::File::create(root.join("disk.img")).unwrap();
    sparse.write_all(b"boot sector").unwrap();
    sparse.seek(SeekFrom::Start(256 * 1024 * 1024)).unwrap();
    sparse.write_all(b"end").unwrap();
    drop(sparse);

    for (index, path) in [
        "db/settings.conf",
        "db/table.dat",
        "disk.img",
        "settings",
        "db",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(path), 1_700_000_000 + index as i64);
    }
}

/// path -> metadata and content summary; hard-linked files share a group number.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    let mut groups: BTreeMap<u64, usize> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let mut line = format!(
            "mode={:o} owner={}:{} mtime={}.{}",
            metadata.mode(),
            metadata.uid(),
            metadata.gid(),
            metadata.mtime(),
            metadata.mtime_nsec()
        );
        if metadata.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if metadata.file_type().is_symlink() {
            line += &format!(" -> {}", std::fs::read_link(&path).unwrap().display());
        } else {
            let next = groups.len();
            let group = *groups.entry(metadata.ino()).or_insert(next);
            let digest = content_digest(&std::fs::read(&path).unwrap());
            line += &format!(" size={} digest={digest} group={group}", metadata.size());
        }
        let relative = path.strip_prefix(root).unwrap().display().to_string();
        entries.insert(relative, line);
    }
    entries
}

fn content_digest(data: &[u8]) -> String {
    // A short FNV-1a digest is enough to tell contents apart in a test.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in data {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

fn backup_args<'a>(source: &'a str, backup: &'a str) -> Vec<&'a str> {
    vec![
        "backup",
        "--source",
        source,
        "--backup",
        backup,
        "--namespace",
        "shop",
        "--pod",
        "db-0",
        "--volume",
        "data",
        "--pvc",
        "data-db-0",
    ]
}

/// Backs up, changes two files, backs up again, restores both snapshots and compares.
fn round_trip(location: &Location, work: &Path) {
    let volume = work.join("volume");
    build_volume(&volume);
    let source = volume.display().to_string();

    let first = success_json(&agent(
        location,
        PASSWORD,
        &backup_args(&source, "nightly-1"),
    ));
    // 40 log segments, table.dat, settings.conf, disk.img and the hard link to table.dat.
    assert_eq!(first["stats"]["files"], 44);
    assert_eq!(first["stats"]["unchanged_files"], 0);
    let first_tree = describe(&volume);

    std::fs::write(volume.join("db/wal/0003.log"), "rewritten\n").unwrap();
    std::fs::write(volume.join("db/wal/9999.log"), "new segment\n").unwrap();
    let second = success_json(&agent(
        location,
        PASSWORD,
        &backup_args(&source, "nightly-2"),
    ));
    assert_eq!(second["parent"], first["snapshot"]);
    assert_eq!(second["stats"]["files"], 45);
    // 43 files with content before, one rewritten; the hard link is counted but never read.
    assert_eq!(second["stats"]["unchanged_files"], 42);
    assert_eq!(
        second["stats"]["read_bytes"],
        ("rewritten\n".len() + "new segment\n".len()) as u64
    );

    let target = work.join("restored-2");
    std::fs::create_dir(&target).unwrap();
    let restored = agent(
        location,
        PASSWORD,
        &[
            "restore",
            "--target",
            target.to_str().unwrap(),
            "--snapshot",
            second["snapshot"].as_str().unwrap(),
        ],
    );
    success_json(&restored);
    assert_eq!(describe(&target), describe(&volume));
    let sparse = std::fs::metadata(target.join("disk.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1024 * 1024,
        "disk.img allocates {} bytes",
        sparse.blocks() * 512
    );

    let target = work.join("restored-1");
    std::fs::create_dir(&target).unwrap();
    let restored = agent(
        location,
        PASSWORD,
        &[
            "restore",
            "--target",
            target.to_str().unwrap(),
            "--backup",
            "nightly-1",
            "--volume",
            "data",
        ],
    );
    success_json(&restored);
    assert_eq!(describe(&target), first_tree);
}

#[test]
fn folder_location_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let location = folder_location(work.path());
    round_trip(&location, work.path());
}

#[test]
fn s3_location_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let server = S3Server::start();
    let location = s3_location(&server, work.path());
    round_trip(&location, work.path());
    assert!(location.repository_dir.join("config").exists());
}

#[test]
fn wrong_password_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let location = folder_location(work.path());
    let volume = work.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("file"), b"data").unwrap();
    let source = volume.display().to_string();
    success_json(&agent(&location, PASSWORD, &backup_args(&source, "b1")));

    let output = agent(&location, "guessed", &backup_args(&source, "b2"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "kubectl-migrate: error: wrong repository password: check --password-file or KUBECTL_MIGRATE_PASSWORD"
    );
    let snapshots = agent(&location, PASSWORD, &["snapshots"]);
    assert_eq!(
        String::from_utf8_lossy(&snapshots.stdout).lines().count(),
        1
    );
}

#[test]
fn missing_password_is_a_usage_error() {
    ensure_built(&["migrate"]);
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(bin_dir().join("kubectl-migrate"))
        .args(["agent", "snapshots", "--location"])
        .arg(format!("file://{}", work.path().display()))
        .env_remove("KUBECTL_MIGRATE_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains(
        "missing repository password: pass --password-file or set KUBECTL_MIGRATE_PASSWORD"
    ));
}

#[test]
fn tampered_chunk_is_detected() {
    let work = tempfile::tempdir().unwrap();
    let location = folder_location(work.path());
    let volume = work.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("payload"), noise(5, 3 * 1024 * 1024)).unwrap();
    let source = volume.display().to_string();
    let backup = success_json(&agent(&location, PASSWORD, &backup_args(&source, "b1")));
    let clean = success_json(&agent(&location, PASSWORD, &["verify"]));
    assert!(clean["chunks"].as_u64().unwrap() >= 2);

    // Flip one byte of the first blob of the only pack.
    let packs: Vec<PathBuf> = walk_files(&location.repository_dir.join("data"));
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    bytes[100] ^= 0x80;
    std::fs::write(&packs[0], bytes).unwrap();
    let pack = packs[0].file_name().unwrap().to_str().unwrap();

    let verify = agent(&location, PASSWORD, &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        stderr.contains(&format!(
            "in pack {pack} is damaged or was modified: authentication failed"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pack {pack}: content does not match its name")),
        "{stderr}"
    );
    assert!(
        stderr.contains("repository check found 2 problems"),
        "{stderr}"
    );

    let target = work.path().join("restored");
    std::fs::create_dir(&target).unwrap();
    let restore = agent(
        &location,
        PASSWORD,
        &[
            "restore",
            "--target",
            target.to_str().unwrap(),
            "--snapshot",
            backup["snapshot"].as_str().unwrap(),
        ],
    );
    assert_eq!(restore.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&restore.stderr).contains(pack));
}

fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                files.push(entry.path());
            }
        }
    }
    files
}

fn wait_restored(marker: &Path, timeout: &str) -> Output {
    ensure_built(&["migrate"]);
    Command::new(bin_dir().join("kubectl-migrate"))
        .args(["agent", "wait-restored", "--marker"])
        .arg(marker)
        .args(["--timeout", timeout, "--interval", "50"])
        .output()
        .expect("failed to run kubectl-migrate")
}

#[test]
fn wait_restored_passes_on_marker() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("restored");
    std::fs::write(&marker, "{}\n").unwrap();
    let started = std::time::Instant::now();
    let output = wait_restored(&marker, "30");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The marker stays, so an init container that runs again passes at once.
    assert!(marker.exists());
}

#[test]
fn wait_restored_sees_marker_written_later() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("restored");
    let writer = {
        let marker = marker.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            std::fs::write(&marker, "{}\n").unwrap();
        })
    };
    let output = wait_restored(&marker, "30");
    writer.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn wait_restored_times_out_without_marker() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("restored");
    let started = std::time::Instant::now();
    let output = wait_restored(&marker, "1");
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    assert!(elapsed >= std::time::Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "timed out after 1s waiting for the volume data of this pod: the marker file {} is missing",
            marker.display()
        )),
        "{stderr}"
    );
}

#[test]
fn restore_writes_marker_after_data() {
    let work = tempfile::tempdir().unwrap();
    let location = folder_location(work.path());
    let volume = work.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("payload"), noise(7, 100_000)).unwrap();
    let source = volume.display().to_string();
    let backup = success_json(&agent(&location, PASSWORD, &backup_args(&source, "b1")));
    let snapshot = backup["snapshot"].as_str().unwrap();

    let target = work.path().join("restored");
    let state = work.path().join("state");
    std::fs::create_dir(&target).unwrap();
    std::fs::create_dir(&state).unwrap();
    let marker = state.join("restored");
    let restore = agent(
        &location,
        PASSWORD,
        &[
            "restore",
            "--target",
            target.to_str().unwrap(),
            "--snapshot",
            snapshot,
            "--marker",
            marker.to_str().unwrap(),
        ],
    );
    success_json(&restore);
    assert_eq!(
        std::fs::read(target.join("payload")).unwrap(),
        noise(7, 100_000)
    );
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(text.contains(snapshot), "{text}");
    assert!(!target.join("restored").exists());
}
