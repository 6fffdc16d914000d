//! Volume repository against restic on the same generated tree and the same kind of location
//! (a local folder, then a local S3 server): first backup, unchanged re-backup, re-backup after 1% of the files change,
//! and restore. Prints seconds and repository sizes for both and our/restic ratios.
//!
//! Run with `cargo bench -p kubectl-migrate --bench volumes`. `VOLUMES_BENCH_MIB` sets the tree
//! size (default 1024). `VOLUMES_BENCH_LOCATIONS` lists the location kinds (default
//! `folder,s3`; s3 uses a local s3s-fs server on 127.0.0.1). restic is found on PATH
//! (`RESTIC` overrides it) and skipped when missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use kubectl_migrate::repo::{
    self, BackupOptions, Repository, RestoreOptions, SnapshotTags, StoreBackend,
};
use kubectl_migrate::store::{
    Addressing, CredentialSource, S3Options, Store, StoreConfig, StoreUrl,
};
use testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};

const PASSWORD: &str = "benchmark-password";
const SEED: u64 = 0x5eed_2026;

/// xorshift64* generator: fixed seed, same tree on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, limit: u64) -> u64 {
        self.next() % limit
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let value = self.next().to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
    }
}

/// Text that zstd compresses about 4:1: log lines with random numbers.
fn log_text(random: &mut Random, length: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(length + 128);
    while text.len() < length {
        let line = format!(
            "2026-12-04T10:{:02}:{:02}Z INFO request id={} path=/api/v1/items/{} status=200 bytes={}\n",
            random.below(60),
            random.below(60),
            random.next(),
            random.below(100_000),
            random.below(65_536)
        );
        text.extend_from_slice(line.as_bytes());
    }
    text.truncate(length);
    text
}

fn file_content(random: &mut Random, length: usize) -> Vec<u8> {
    if random.below(2) == 0 {
        log_text(random, length)
    } else {
        let mut data = vec![0u8; length];
        random.fill(&mut data);
        data
    }
}

/// Writes the tree: 70% of the bytes in large files (8 to 52 MiB) and the rest in small files
/// (1 to 64 KiB) spread over 100 folders. Half of the files are compressible text.
fn generate_tree(root: &Path, total_mib: u64) -> Vec<PathBuf> {
    let mut random = Random(SEED);
    let mut files = Vec::new();
    let total = total_mib * 1024 * 1024;
    let large_budget = total * 7 / 10;

    let mut written = 0;
    let mut index = 0;
    while written < large_budget {
        let size = ((8 + random.below(45)) * 1024 * 1024).min(large_budget - written);
        let path = root.join(format!("large/file-{index:02}.bin"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file_content(&mut random, size as usize)).unwrap();
        files.push(path);
        written += size;
        index += 1;
    }
    while written < total {
        let size = (1024 + random.below(63 * 1024)).min(total - written);
        let path = root.join(format!("small/dir-{:03}/file-{index:06}.dat", index % 100));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file_content(&mut random, size as usize)).unwrap();
        files.push(path);
        written += size;
        index += 1;
    }
    files
}

/// Rewrites 1% of the files (chosen with the fixed seed) with new content of the same kind.
fn change_one_percent(files: &[PathBuf]) -> usize {
    let mut random = Random(SEED ^ 0xff);
    let count = files.len().div_ceil(100);
    for _ in 0..count {
        let path = &files[random.below(files.len() as u64) as usize];
        let length = std::fs::metadata(path).unwrap().len() as usize;
        std::fs::write(path, file_content(&mut random, length)).unwrap();
    }
    count
}

fn folder_size(root: &Path) -> u64 {
    let mut size = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                size += metadata.len();
            }
        }
    }
    size
}

/// Seconds of each phase and the repository size after each backup.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    first: f64,
    unchanged: f64,
    changed: f64,
    restore: f64,
    size_first: u64,
    size_final: u64,
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed().as_secs_f64())
}

/// The location kind both tools write to.
enum Target<'a> {
    Folder,
    S3(&'a S3Server),
}

fn run_ours(
    runtime: &tokio::runtime::Runtime,
    work: &Path,
    source: &Path,
    files: &[PathBuf],
    target: &Target,
) -> Figures {
    let (config, location) = match target {
        Target::Folder => {
            let folder = work.join("ours");
            (StoreConfig::folder(&folder), folder)
        }
        Target::S3(server) => {
            let config = StoreConfig {
                url: StoreUrl::parse("s3://bench/ours").unwrap(),
                s3: S3Options {
                    endpoint: Some(server.endpoint()),
                    addressing: Addressing::Path,
                    credentials: CredentialSource::File {
                        path: server.write_credentials_file(work),
                        profile: "default".into(),
                    },
                    ..S3Options::default()
                },
                read_only: false,
            };
            (config, server.data_dir().join("bench/ours"))
        }
    };
    let store = Store::open(&config).unwrap();
    let backend = Arc::new(StoreBackend::new(store));
    let repository = runtime
        .block_on(Repository::open_or_init(backend, PASSWORD.as_bytes()))
        .unwrap();
    let tags = SnapshotTags {
        backup: "bench".into(),
        namespace: "bench".into(),
        pod: "bench-0".into(),
        volume: "data".into(),
        pvc: Some("data-bench-0".into()),
    };
    let options = BackupOptions::new(tags);
    let backup = || {
        runtime
            .block_on(repo::backup_folder(&repository, source, &options))
            .unwrap()
            .1
    };

    let mut figures = Figures::default();
    let (snapshot, seconds) = timed(backup);
    figures.first = seconds;
    figures.size_first = folder_size(&location);
    eprintln!(
        "ours: first backup {seconds:.2} s, stats {:?}",
        snapshot.stats
    );

    let (snapshot, seconds) = timed(backup);
    figures.unchanged = seconds;
    eprintln!(
        "ours: unchanged re-backup {seconds:.2} s, stats {:?}",
        snapshot.stats
    );

    change_one_percent(files);
    let (snapshot, seconds) = timed(backup);
    figures.changed = seconds;
    figures.size_final = folder_size(&location);
    eprintln!(
        "ours: re-backup after 1% changed {seconds:.2} s, stats {:?}",
        snapshot.stats
    );

    let restored = work.join("ours-restore");
    let (_, seconds) = timed(|| {
        runtime
            .block_on(repo::restore_snapshot(
                &repository,
                &snapshot,
                &restored,
                &RestoreOptions::default(),
            ))
            .unwrap()
    });
    figures.restore = seconds;
    std::fs::remove_dir_all(&restored).unwrap();
    figures
}

/// Runs restic on `repository` (a folder or an `s3:` spec), panicking with its stderr on failure.
fn restic(binary: &Path, repository: &str, environment: &[(String, String)], args: &[&str]) {
    let output = Command::new(binary)
        .args(["--repo", repository, "--quiet", "--no-cache"])
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .envs(environment.iter().cloned())
        .output()
        .expect("failed to run restic");
    assert!(
        output.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_restic(
    binary: &Path,
    work: &Path,
    source: &Path,
    files: &[PathBuf],
    target: &Target,
) -> Figures {
    let (spec, environment, repository) = match target {
        Target::Folder => {
            let folder = work.join("restic");
            (folder.display().to_string(), Vec::new(), folder)
        }
        Target::S3(server) => (
            format!("s3:{}/bench/restic", server.endpoint()),
            vec![
                ("AWS_ACCESS_KEY_ID".to_string(), ACCESS_KEY.to_string()),
                ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET_KEY.to_string()),
            ],
            server.data_dir().join("bench/restic"),
        ),
    };
    let restic = |args: &[&str]| restic(binary, &spec, &environment, args);
    restic(&["init"]);
    let source_text = source.to_str().unwrap();
    let backup = || restic(&["backup", source_text]);

    let first = timed(backup).1;
    let size_first = folder_size(&repository);
    let unchanged = timed(backup).1;
    change_one_percent(files);
    let changed = timed(backup).1;
    let size_final = folder_size(&repository);

    let restored = work.join("restic-restore");
    let target_text = restored.to_str().unwrap().to_string();
    let restore = timed(|| restic(&["restore", "latest", "--target", &target_text])).1;
    std::fs::remove_dir_all(&restored).unwrap();
    Figures {
        first,
        unchanged,
        changed,
        restore,
        size_first,
        size_final,
    }
}

/// A table row: its label and the figure it shows.
type Row = (&'static str, fn(&Figures) -> f64);

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes --bench; any other argument filters by name, which has no meaning here.
    let total_mib: u64 = std::env::var("VOLUMES_BENCH_MIB")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1024);
    let kinds = std::env::var("VOLUMES_BENCH_LOCATIONS").unwrap_or_else(|_| "folder,s3".into());
    let restic_binary = std::env::var_os("RESTIC")
        .map(PathBuf::from)
        .or_else(|| which("restic"));
    let runtime = tokio::runtime::Runtime::new().unwrap();

    for kind in kinds.split(',') {
        let server = (kind == "s3").then(|| {
            let server = S3Server::start();
            server.create_bucket("bench");
            server
        });
        let target = match &server {
            Some(server) => Target::S3(server),
            None => Target::Folder,
        };
        run_kind(&runtime, kind, &target, total_mib, restic_binary.as_deref());
    }
}

/// Runs both tools against one location kind and prints the table.
fn run_kind(
    runtime: &tokio::runtime::Runtime,
    kind: &str,
    target: &Target,
    total_mib: u64,
    restic_binary: Option<&Path>,
) {
    let work = tempfile::tempdir().unwrap();

    // Each tool gets a freshly generated copy of the same tree, so both see the same 1% change.
    let ours_source = work.path().join("source-ours");
    let (files, seconds) = timed(|| generate_tree(&ours_source, total_mib));
    eprintln!(
        "{kind}: generated {} files, {total_mib} MiB, in {seconds:.1} s",
        files.len()
    );
    let ours = run_ours(runtime, work.path(), &ours_source, &files, target);
    std::fs::remove_dir_all(&ours_source).unwrap();

    let theirs = restic_binary.map(|binary| {
        let source = work.path().join("source-restic");
        let files = generate_tree(&source, total_mib);
        let figures = run_restic(binary, work.path(), &source, &files, target);
        std::fs::remove_dir_all(&source).unwrap();
        figures
    });

    println!(
        "volume repository vs restic, {total_mib} MiB tree, {} files, {kind} repository",
        files.len()
    );
    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "phase", "ours", "restic", "ratio"
    );
    let rows: [Row; 6] = [
        ("first backup (s)", |f| f.first),
        ("unchanged re-backup (s)", |f| f.unchanged),
        ("re-backup after 1% changed (s)", |f| f.changed),
        ("restore (s)", |f| f.restore),
        ("repository after first (MiB)", |f| mib(f.size_first)),
        ("repository after third (MiB)", |f| mib(f.size_final)),
    ];
    for (name, value) in rows {
        match &theirs {
            Some(theirs) => println!(
                "{name:<34} {:>10.2} {:>10.2} {:>8.2}",
                value(&ours),
                value(theirs),
                value(&ours) / value(theirs)
            ),
            None => println!("{name:<34} {:>10.2} {:>10} {:>8}", value(&ours), "-", "-"),
        }
    }
    if theirs.is_none() {
        println!("restic not found on PATH: its column is empty");
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|folder| folder.join(name))
        .find(|path| path.is_file())
}
