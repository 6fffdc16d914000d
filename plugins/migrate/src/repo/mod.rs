//! The volume-data repository: content-defined chunks, deduplicated by keyed hash, compressed
//! with zstd, sealed with XChaCha20-Poly1305 and stored in pack files with an index.
//!
//! Object layout below `<location>/repository/` (described in docs/repository-format.md):
//! `config` (format version, in clear), `keys/<id>` (master key wrapped by a password-derived
//! key), `data/<xx>/<pack>`, `index/<id>`, `snapshots/<id>` and `trees/<id>`. Every object is
//! written once under a new name and never changed, so concurrent writers need no lock.

pub mod backend;
mod backup;
pub mod crypto;
mod index;
pub mod pack;
mod restore;
pub mod snapshot;
mod verify;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use backend::{LocalBackend, RepositoryBackend, StoreBackend};
pub use backup::{BackupOptions, backup_folder};
pub use crypto::{KeyFile, MasterKey};
pub use index::Index;
pub use restore::{RestoreOptions, RestoreStats, restore_snapshot};
pub use snapshot::{Snapshot, SnapshotStats, SnapshotTags, Tree};
pub use verify::{VerifyReport, verify_repository, verify_snapshots};

/// Format version written to `config`; readers reject other versions.
pub const FORMAT_VERSION: u32 = 1;

/// Average, minimum and maximum chunk sizes of the FastCDC chunker.
pub const CHUNK_AVERAGE: u32 = 1024 * 1024;
pub const CHUNK_MIN: u32 = 256 * 1024;
pub const CHUNK_MAX: u32 = 4 * 1024 * 1024;

/// Folder of the repository inside a backup location.
pub const REPOSITORY_FOLDER: &str = "repository";

/// Error of a repository operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wrong repository password: check --password-file or KUBECTL_MIGRATE_PASSWORD")]
    WrongPassword,

    #[error("no volume repository at {0}: a backup with volume data creates it")]
    NotInitialized(String),

    #[error("a volume repository already exists at {0}")]
    AlreadyInitialized(String),

    #[error("object not found: {0}")]
    NotFound(String),

    #[error("{0}")]
    Backend(String),

    #[error("repository data is corrupt: {0}")]
    Corrupt(String),

    #[error("chunk {chunk} in pack {pack} is damaged or was modified: {reason}")]
    Tampered {
        pack: String,
        chunk: String,
        reason: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("snapshot {0} not found in the repository")]
    SnapshotNotFound(String),
}

impl Error {
    pub(crate) fn io(context: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}

impl From<Error> for shared::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Io { context, source } => shared::Error::Io { context, source },
            other => shared::Error::failed(other),
        }
    }
}

/// Runs CPU-heavy work (key derivation) off the async threads.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Backend(format!("background task failed: {error}")))?
}

/// The clear-text `config` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepositoryConfig {
    pub version: u32,
    /// Random id of the repository, hex.
    pub id: String,
    pub chunk_min: u32,
    pub chunk_average: u32,
    pub chunk_max: u32,
}

/// An opened repository: its storage, its unwrapped master key and its settings.
#[derive(Clone)]
pub struct Repository {
    backend: Arc<dyn RepositoryBackend>,
    key: Arc<MasterKey>,
    config: RepositoryConfig,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Repository")
            .field("location", &self.backend.describe())
            .field("id", &self.config.id)
            .finish()
    }
}

impl Repository {
    /// Creates a new repository with a random master key wrapped under `password`.
    pub async fn init(backend: Arc<dyn RepositoryBackend>, password: &[u8]) -> Result<Self, Error> {
        match backend.get("config").await {
            Ok(_) => return Err(Error::AlreadyInitialized(backend.describe())),
            Err(Error::NotFound(_)) => {}
            Err(error) => return Err(error),
        }

        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|error| Error::Backend(format!("the system random source failed: {error}")))?;
        let config = RepositoryConfig {
            version: FORMAT_VERSION,
            id: hex::encode(id),
            chunk_min: CHUNK_MIN,
            chunk_average: CHUNK_AVERAGE,
            chunk_max: CHUNK_MAX,
        };
        let key = MasterKey::generate()?;
        let key_file = {
            let key = key.clone();
            let password = password.to_vec();
            run_blocking(move || key.wrap(&password)).await?
        };

        // The key goes first: a config without a key would make the repository unusable.
        let key_bytes = serde_json::to_vec_pretty(&key_file).expect("key file encodes");
        let key_name = hex::encode(Sha256::digest(&key_bytes));
        backend.put(&format!("keys/{key_name}"), key_bytes).await?;
        let config_bytes = serde_json::to_vec_pretty(&config).expect("config encodes");
        backend.put("config", config_bytes).await?;

        Ok(Repository {
            backend,
            key: Arc::new(key),
            config,
        })
    }

    /// Opens an existing repository, trying `password` on each key file.
    pub async fn open(backend: Arc<dyn RepositoryBackend>, password: &[u8]) -> Result<Self, Error> {
        let config_bytes = match backend.get("config").await {
            Ok(bytes) => bytes,
            Err(Error::NotFound(_)) => return Err(Error::NotInitialized(backend.describe())),
            Err(error) => return Err(error),
        };
        let config: RepositoryConfig = serde_json::from_slice(&config_bytes)
            .map_err(|error| Error::Corrupt(format!("invalid config: {error}")))?;
        if config.version != FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "repository format version {} is not supported, this build reads version {FORMAT_VERSION}",
                config.version
            )));
        }

        for key_name in backend.list("keys/").await? {
            let bytes = backend.get(&key_name).await?;
            let key_file: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|error| Error::Corrupt(format!("invalid key file {key_name}: {error}")))?;
            let password = password.to_vec();
            let unwrapped = run_blocking(move || MasterKey::unwrap(&key_file, &password)).await?;
            if let Some(key) = unwrapped {
                return Ok(Repository {
                    backend,
                    key: Arc::new(key),
                    config,
                });
            }
        }
        Err(Error::WrongPassword)
    }

    /// Opens the repository, creating it first when the location has none.
    ///
    /// NOTE: two processes that both find no repository both create one, and the location
    /// then holds two master keys under the same password. `backup create` therefore creates
    /// the repository before it starts any agent pod.
    pub async fn open_or_init(
        backend: Arc<dyn RepositoryBackend>,
        password: &[u8],
    ) -> Result<Self, Error> {
        match Repository::open(backend.clone(), password).await {
            Err(Error::NotInitialized(_)) => Repository::init(backend, password).await,
            other => other,
        }
    }

    /// Returns the storage of the repository.
    pub fn backend(&self) -> &Arc<dyn RepositoryBackend> {
        &self.backend
    }

    /// Returns the repository's settings.
    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    pub(crate) fn key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    /// Loads every index file into one index.
    pub async fn load_index(&self) -> Result<Index, Error> {
        let mut index = Index::default();
        for name in self.backend.list("index/").await? {
            let bytes = self.backend.get(&name).await?;
            let file = self.open_object(&bytes, b"index", &name)?;
            index.merge_file(&name, &file)?;
        }
        Ok(index)
    }

    /// Lists every snapshot with its id, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<(String, Snapshot)>, Error> {
        let mut snapshots = Vec::new();
        for name in self.backend.list("snapshots/").await? {
            let bytes = self.backend.get(&name).await?;
            let snapshot: Snapshot = self.decode_object(&bytes, b"snapshot", &name)?;
            let id = name.trim_start_matches("snapshots/").to_string();
            snapshots.push((id, snapshot));
        }
        snapshots.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(snapshots)
    }

    /// Loads one snapshot by id (a unique prefix of it is enough).
    pub async fn snapshot(&self, id: &str) -> Result<(String, Snapshot), Error> {
        let mut matches: Vec<_> = self
            .snapshots()
            .await?
            .into_iter()
            .filter(|(snapshot_id, _)| snapshot_id.starts_with(id))
            .collect();
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(Error::SnapshotNotFound(id.to_string())),
            count => Err(Error::Backend(format!(
                "snapshot id prefix {id:?} matches {count} snapshots: give more digits"
            ))),
        }
    }

    /// Loads the tree of a snapshot.
    pub async fn tree(&self, snapshot: &Snapshot) -> Result<Tree, Error> {
        let bytes = self.backend.get(&snapshot.tree).await?;
        self.decode_object(&bytes, b"tree", &snapshot.tree)
    }

    /// Seals a JSON value into a new object under `folder/` and returns its key.
    pub(crate) async fn save_object<T: Serialize>(
        &self,
        folder: &str,
        context: &[u8],
        value: &T,
    ) -> Result<String, Error> {
        let json = serde_json::to_vec(value)
            .map_err(|error| Error::Corrupt(format!("failed to encode {folder}: {error}")))?;
        let compressed = zstd::bulk::compress(&json, 3)
            .map_err(|error| Error::Corrupt(format!("zstd compression failed: {error}")))?;
        let sealed = self.key.seal(&compressed, context)?;
        let key = format!("{folder}/{}", hex::encode(Sha256::digest(&sealed)));
        self.backend.put(&key, sealed).await?;
        Ok(key)
    }

    fn open_object(&self, sealed: &[u8], context: &[u8], name: &str) -> Result<Vec<u8>, Error> {
        let compressed = self
            .key
            .open(sealed, context)
            .ok_or_else(|| Error::Corrupt(format!("{name} failed authentication")))?;
        zstd::stream::decode_all(compressed.as_slice())
            .map_err(|error| Error::Corrupt(format!("{name}: zstd decompression failed: {error}")))
    }

    fn decode_object<T: for<'de> Deserialize<'de>>(
        &self,
        sealed: &[u8],
        context: &[u8],
        name: &str,
    ) -> Result<T, Error> {
        let json = self.open_object(sealed, context, name)?;
        serde_json::from_slice(&json).map_err(|error| Error::Corrupt(format!("{name}: {error}")))
    }
}
