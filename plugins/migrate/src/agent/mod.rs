//! `kubectl-migrate agent ...`: the volume data mover that runs inside short-lived agent pods
//! (or by hand on a machine), backing a folder up into the location's repository and
//! restoring a snapshot into a folder.
//!
//! Each command prints one JSON object on stdout as its last line (the plugin reads it from
//! the pod log); messages go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;
use shared::{Error, Result};

use crate::cli::S3Args;
use crate::repo::{
    self, BackupOptions, Repository, RestoreOptions, Snapshot, SnapshotTags, StoreBackend,
};
use crate::store::{CredentialSource, S3Options, Store, StoreConfig, StoreUrl};

/// Environment variable that carries the repository password (set from a Secret in pods).
pub const PASSWORD_ENV: &str = "KUBECTL_MIGRATE_PASSWORD";

/// `kubectl-migrate agent ...`
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Back up a folder into the location's volume repository.
    Backup(AgentBackupArgs),
    /// Restore a snapshot from the location's volume repository into a folder.
    Restore(AgentRestoreArgs),
    /// Check every chunk of the repository: decrypt, decompress and rehash.
    Verify(AgentRepositoryArgs),
    /// List the snapshots of the repository as JSON lines.
    Snapshots(AgentRepositoryArgs),
    /// Wait until a restore agent has written the marker file (the init container of a pod
    /// whose emptyDir data is being restored).
    WaitRestored(AgentWaitRestoredArgs),
}

/// The repository to open: location URL, S3 settings and password.
#[derive(Args, Debug, Clone)]
pub struct AgentRepositoryArgs {
    /// Backup location URL (file:///folder or s3://bucket/prefix); the repository is its
    /// `repository/` folder.
    #[arg(long, value_name = "URL")]
    pub location: String,

    #[command(flatten)]
    pub s3: S3Args,

    /// File holding the repository password (trailing newlines ignored); without it the
    /// KUBECTL_MIGRATE_PASSWORD variable is read.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Arguments of `agent backup`.
#[derive(Args, Debug)]
pub struct AgentBackupArgs {
    #[command(flatten)]
    pub repository: AgentRepositoryArgs,

    /// Folder to back up (the mounted volume).
    #[arg(long, value_name = "DIR")]
    pub source: PathBuf,

    /// Name of the backup the snapshot belongs to.
    #[arg(long, value_name = "NAME")]
    pub backup: String,

    /// Namespace of the pod that uses the volume.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Pod that uses the volume.
    #[arg(long, value_name = "POD", default_value = "")]
    pub pod: String,

    /// Volume name in the pod spec.
    #[arg(long, value_name = "NAME")]
    pub volume: String,

    /// PersistentVolumeClaim behind the volume; the previous snapshot of the same claim is
    /// the parent of an incremental backup.
    #[arg(long, value_name = "CLAIM")]
    pub pvc: Option<String>,

    /// Read every file, even those unchanged since the previous snapshot of the volume.
    #[arg(long)]
    pub full: bool,

    /// Threads that compress and encrypt chunks (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// Arguments of `agent restore`.
#[derive(Args, Debug)]
pub struct AgentRestoreArgs {
    #[command(flatten)]
    pub repository: AgentRepositoryArgs,

    /// Folder to restore into (the mounted new volume); it must exist.
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,

    /// Snapshot id, or a unique prefix of it.
    #[arg(long, value_name = "ID", conflicts_with = "backup")]
    pub snapshot: Option<String>,

    /// Backup name; with --volume (and --namespace, --pod when needed) it selects the snapshot.
    #[arg(long, value_name = "NAME", requires = "volume")]
    pub backup: Option<String>,

    /// Namespace of the backed-up pod, to select the snapshot with --backup.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Backed-up pod, to select the snapshot with --backup.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,

    /// Volume name, to select the snapshot with --backup.
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,

    /// File to write after the snapshot is restored, which the waiting init container of the
    /// restored pod looks for; its folder must exist.
    #[arg(long, value_name = "FILE")]
    pub marker: Option<PathBuf>,
}

/// Arguments of `agent wait-restored`.
#[derive(Args, Debug)]
pub struct AgentWaitRestoredArgs {
    /// Marker file the restore agent writes after the last volume of the pod.
    #[arg(long, value_name = "FILE")]
    pub marker: PathBuf,

    /// Seconds to wait before giving up with exit status 1.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: u64,

    /// Milliseconds between two checks of the marker.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 1000)]
    pub interval: u64,
}
/// Result line of `agent backup`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct BackupResult {
    pub snapshot: String,
    #[serde(flatten)]
    pub details: Snapshot,
}

/// Runs one agent command.
pub async fn run(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Backup(args) => backup(args).await,
        AgentCommand::Restore(args) => restore(args).await,
        AgentCommand::Verify(args) => verify(args).await,
        AgentCommand::Snapshots(args) => snapshots(args).await,
        AgentCommand::WaitRestored(args) => wait_restored(args).await,
    }
}

async fn backup(args: AgentBackupArgs) -> Result<()> {
    if args.backup.is_empty() || args.volume.is_empty() {
        return Err(Error::usage("--backup and --volume must not be empty"));
    }
    if !args.source.is_dir() {
        return Err(Error::usage(format!(
            "backup source {} is not a directory: pass the mounted volume folder with --source",
            args.source.display()
        )));
    }
    let password = read_password(args.repository.password_file.as_deref())?;
    let backend = open_backend(&args.repository).await?;
    let repository = Repository::open_or_init(backend, &password).await?;

    let mut options = BackupOptions::new(SnapshotTags {
        backup: args.backup,
        namespace: args.namespace,
        pod: args.pod,
        volume: args.volume,
        pvc: args.pvc,
    });
    options.full = args.full;
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    let (id, snapshot) = repo::backup_folder(&repository, &args.source, &options).await?;
    tracing::info!(snapshot = %id, files = snapshot.stats.files, "backup finished");
    print_json(&BackupResult {
        snapshot: id,
        details: snapshot,
    })
}

async fn restore(args: AgentRestoreArgs) -> Result<()> {
    // A missing target means the volume is not mounted; writing there would fill the
    // container's own file system instead of the volume.
    if !args.target.is_dir() {
        return Err(Error::usage(format!(
            "restore target {} is not a directory: mount the volume there or create the folder",
            args.target.display()
        )));
    }
    let password = read_password(args.repository.password_file.as_deref())?;
    let backend = open_backend(&args.repository).await?;
    let repository = Repository::open(backend, &password).await?;

    let (id, snapshot) = match (&args.snapshot, &args.backup) {
        (Some(id), _) => repository.snapshot(id).await?,
        (None, Some(backup)) => select_snapshot(&repository, backup, &args).await?,
        (None, None) => {
            return Err(Error::usage(
                "missing snapshot: pass --snapshot ID, or --backup NAME with --volume",
            ));
        }
    };
    let stats = repo::restore_snapshot(
        &repository,
        &snapshot,
        &args.target,
        &RestoreOptions::default(),
    )
    .await?;
    if let Some(marker) = &args.marker {
        write_marker(marker, &id)?;
    }
    print_json(&serde_json::json!({ "snapshot": id, "restored": stats }))
}

/// Writes the marker file that the restored pod's init container waits for. The caller writes
/// it only after every file of the snapshot is in place.
fn write_marker(marker: &Path, snapshot: &str) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(marker)?;
        writeln!(file, "{}", serde_json::json!({ "snapshot": snapshot }))?;
        file.sync_all()
    };
    write().map_err(|source| Error::Io {
        context: format!("failed to write the marker file {}", marker.display()),
        source,
    })
}

/// Waits until the marker file exists. The marker is left in place, so an init container
/// that runs again (after the pod's sandbox is recreated) passes at once.
async fn wait_restored(args: AgentWaitRestoredArgs) -> Result<()> {
    let timeout = std::time::Duration::from_secs(args.timeout);
    let interval = std::time::Duration::from_millis(args.interval.max(10));
    let started = std::time::Instant::now();
    loop {
        match std::fs::metadata(&args.marker) {
            Ok(_) => {
                eprintln!(
                    "volume data restored: found {} after {}s",
                    args.marker.display(),
                    started.elapsed().as_secs()
                );
                return Ok(());
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    context: format!("failed to check the marker file {}", args.marker.display()),
                    source,
                });
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::failed(format!(
                "timed out after {}s waiting for the volume data of this pod: the marker file {} is missing, so its restore agent pod did not finish. Check the output of `kubectl migrate restore create`; delete this pod to start it without the data",
                args.timeout,
                args.marker.display()
            )));
        }
        tokio::time::sleep(interval).await;
    }
}

async fn select_snapshot(
    repository: &Repository,
    backup: &str,
    args: &AgentRestoreArgs,
) -> Result<(String, Snapshot)> {
    let matching: Vec<_> = repository
        .snapshots()
        .await?
        .into_iter()
        .filter(|(_, snapshot)| {
            let tags = &snapshot.tags;
            tags.backup == backup
                && Some(&tags.volume) == args.volume.as_ref()
                && args
                    .namespace
                    .as_ref()
                    .is_none_or(|ns| *ns == tags.namespace)
                && args.pod.as_ref().is_none_or(|pod| *pod == tags.pod)
        })
        .collect();
    match <[_; 1]>::try_from(matching) {
        Ok([only]) => Ok(only),
        Err(matching) if matching.is_empty() => Err(Error::failed(format!(
            "no snapshot of volume {} in backup {backup}: list them with `kubectl-migrate agent snapshots`",
            args.volume.as_deref().unwrap_or_default()
        ))),
        Err(matching) => Err(Error::usage(format!(
            "{} snapshots of volume {} in backup {backup}: add --namespace and --pod, or pass --snapshot",
            matching.len(),
            args.volume.as_deref().unwrap_or_default()
        ))),
    }
}

async fn verify(args: AgentRepositoryArgs) -> Result<()> {
    let password = read_password(args.password_file.as_deref())?;
    let backend = open_backend(&args).await?;
    let repository = Repository::open(backend, &password).await?;
    let report = repo::verify_repository(&repository).await?;
    for problem in &report.problems {
        eprintln!("kubectl-migrate: {problem}");
    }
    print_json(&report)?;
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "repository check found {} problems: the damaged snapshots cannot be restored in full",
            report.problems.len()
        )))
    }
}

async fn snapshots(args: AgentRepositoryArgs) -> Result<()> {
    let password = read_password(args.password_file.as_deref())?;
    let backend = open_backend(&args).await?;
    let repository = Repository::open(backend, &password).await?;
    for (id, snapshot) in repository.snapshots().await? {
        print_json(&BackupResult {
            snapshot: id,
            details: snapshot,
        })?;
    }
    Ok(())
}

/// Reads the password from `file`, else from KUBECTL_MIGRATE_PASSWORD.
pub fn read_password(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut password = match file {
        Some(path) => std::fs::read(path).map_err(|source| Error::Io {
            context: format!("failed to read the password file {}", path.display()),
            source,
        })?,
        None => std::env::var_os(PASSWORD_ENV)
            .map(|value| std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec())
            .ok_or_else(|| {
                Error::usage(format!(
                    "missing repository password: pass --password-file or set {PASSWORD_ENV}"
                ))
            })?,
    };
    while matches!(password.last(), Some(b'\n' | b'\r')) {
        password.pop();
    }
    if password.is_empty() {
        return Err(Error::usage(format!(
            "the repository password is empty: put it in --password-file or {PASSWORD_ENV}"
        )));
    }
    Ok(password)
}

/// Opens the location named by `args` as a repository backend.
pub async fn open_backend(args: &AgentRepositoryArgs) -> Result<Arc<dyn repo::RepositoryBackend>> {
    let url = StoreUrl::parse(&args.location).map_err(Error::usage)?;
    let defaults = S3Options::default();
    let credentials = match &args.s3.credentials_file {
        Some(path) => CredentialSource::File {
            path: path.clone(),
            profile: args.s3.profile.clone().unwrap_or_else(|| "default".into()),
        },
        None => CredentialSource::Environment,
    };
    let config = StoreConfig {
        url,
        s3: S3Options {
            endpoint: args.s3.endpoint.clone(),
            region: args.s3.region.clone().unwrap_or(defaults.region.clone()),
            addressing: args.s3.addressing.unwrap_or(defaults.addressing),
            credentials,
            ..defaults
        },
        read_only: false,
    };
    let store = Store::open(&config).map_err(Error::failed)?;
    Ok(Arc::new(StoreBackend::new(store)))
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let line = serde_json::to_string(value).map_err(Error::failed)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").map_err(|source| Error::Io {
        context: "failed to write to stdout".to_string(),
        source,
    })
}
