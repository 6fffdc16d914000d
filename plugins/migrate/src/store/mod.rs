//! Object storage for backups: local folders (`file://`) and S3 buckets (`s3://BUCKET/PREFIX`)
//! behind one [`Store`] with put, get, list, delete and exists on `/`-separated keys.
//!
//! Keys are relative to the location's root (the folder, or the bucket's prefix), so the same
//! backup layout works on both kinds. Writes are atomic: a file is written to a temporary file in
//! the same folder and renamed over the key, and an S3 PUT replaces the object in one step.

mod credentials;
mod error;
mod file;
mod retry;
mod s3;
mod url;

use std::path::Path;

pub use credentials::{CredentialSource, Credentials, resolve_credentials};
pub use error::StoreError;
pub use file::FileStore;
pub use retry::RetryPolicy;
pub use s3::{Addressing, S3Options, S3Store};
pub use url::StoreUrl;

/// One stored object as listed: its key relative to the location root and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the location root, with `/` separators.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Settings that open a [`Store`]: where it is, how to reach S3, and whether writes are allowed.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The folder or bucket and prefix.
    pub url: StoreUrl,
    /// Endpoint, region, addressing and credentials; used only for `s3://` URLs.
    pub s3: S3Options,
    /// Rejects put and delete when set, for attaching another cluster's backups safely.
    pub read_only: bool,
}

impl StoreConfig {
    /// Builds the settings for a `file://` folder, writable.
    pub fn folder(path: impl Into<std::path::PathBuf>) -> Self {
        StoreConfig {
            url: StoreUrl::File(path.into()),
            s3: S3Options::default(),
            read_only: false,
        }
    }
}

/// A backup location opened for use.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    read_only: bool,
    display: String,
}

#[derive(Debug, Clone)]
enum Backend {
    File(FileStore),
    S3(S3Store),
}

impl Store {
    /// Opens the location that `config` names. No request is sent: call [`Store::check`] to
    /// find a wrong endpoint, bucket or credentials before the real work starts.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let display = config.url.to_string();
        let backend = match &config.url {
            StoreUrl::File(path) => Backend::File(FileStore::new(path.clone())),
            StoreUrl::S3 { bucket, prefix } => {
                Backend::S3(S3Store::new(bucket, prefix, &config.s3)?)
            }
        };
        Ok(Store {
            backend,
            read_only: config.read_only,
            display,
        })
    }

    /// Returns the location as a URL (`file:///...` or `s3://bucket/prefix`).
    pub fn url(&self) -> &str {
        &self.display
    }

    /// Reports whether put and delete are rejected.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Checks that the location can be used: for S3 one LIST request that proves the endpoint,
    /// the credentials and the bucket; for a folder, that it exists or can be created
    /// (read-only folders must exist).
    pub async fn check(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File(store) => store.check(!self.read_only).await,
            Backend::S3(store) => store.check().await,
        }
    }

    /// Stores `bytes` under `key`, replacing any object there, atomically.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        self.ensure_writable(key)?;
        match &self.backend {
            Backend::File(store) => store.put(key, bytes).await,
            Backend::S3(store) => store.put(key, bytes).await,
        }
    }

    /// Stores the content of the local file `source` under `key` without reading it into memory
    /// at once (S3 uses a multipart upload for large files).
    pub async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        validate_key(key)?;
        self.ensure_writable(key)?;
        match &self.backend {
            Backend::File(store) => store.put_file(key, source).await,
            Backend::S3(store) => store.put_file(key, source).await,
        }
    }

    /// Returns the content of `key`; a missing key is [`StoreError::NotFound`].
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        validate_key(key)?;
        match &self.backend {
            Backend::File(store) => store.get(key).await,
            Backend::S3(store) => store.get(key).await,
        }
    }

    /// Writes the content of `key` to the local file `target`, streaming.
    pub async fn get_to_file(&self, key: &str, target: &Path) -> Result<(), StoreError> {
        validate_key(key)?;
        match &self.backend {
            Backend::File(store) => store.get_to_file(key, target).await,
            Backend::S3(store) => store.get_to_file(key, target).await,
        }
    }

    /// Lists every object whose key starts with `prefix` (a plain string prefix, as S3 has it),
    /// sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut objects = match &self.backend {
            Backend::File(store) => store.list(prefix).await?,
            Backend::S3(store) => store.list(prefix).await?,
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Deletes `key`; deleting a missing key succeeds, as it does on S3.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.ensure_writable(key)?;
        match &self.backend {
            Backend::File(store) => store.delete(key).await,
            Backend::S3(store) => store.delete(key).await,
        }
    }

    /// Reports whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        validate_key(key)?;
        match &self.backend {
            Backend::File(store) => store.exists(key).await,
            Backend::S3(store) => store.exists(key).await,
        }
    }

    fn ensure_writable(&self, key: &str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                location: self.display.clone(),
                key: key.to_string(),
            });
        }
        Ok(())
    }
}

/// Checks that a key is a relative `/`-separated path with no empty, `.` or `..` segment, so
/// that a key can never leave the location's folder or prefix.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let invalid = |reason: &'static str| StoreError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("the key is empty"));
    }
    if key.starts_with('/') {
        return Err(invalid("a key must not start with /"));
    }
    if key.contains('\\') || key.contains('\0') {
        return Err(invalid("a key must not contain a backslash or NUL"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(invalid("a key must not contain an empty segment")),
            "." | ".." => return Err(invalid("a key must not contain . or .. segments")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_validation_accepts_nested_paths() {
        assert!(validate_key("backups/b1/manifest.json").is_ok());
        assert!(validate_key("a").is_ok());
    }

    #[test]
    fn key_validation_rejects_escapes() {
        for key in ["", "/abs", "a//b", "a/../b", "./a", "a/", "a\\b"] {
            assert!(validate_key(key).is_err(), "key {key:?} should be rejected");
        }
    }

    #[tokio::test]
    async fn read_only_store_rejects_put_and_delete() {
        let folder = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::folder(folder.path());
        config.read_only = true;
        let store = Store::open(&config).unwrap();

        let error = store.put("a.json", b"{}").await.unwrap_err();
        assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
        let error = store.delete("a.json").await.unwrap_err();
        assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
        assert!(std::fs::read_dir(folder.path()).unwrap().next().is_none());
    }

    #[tokio::test]
    async fn list_is_sorted_by_key() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::folder(folder.path())).unwrap();
        for key in ["b/2", "a/1", "b/1"] {
            store.put(key, b"x").await.unwrap();
        }
        let keys: Vec<String> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["a/1", "b/1", "b/2"]);
    }
}
