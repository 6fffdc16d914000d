//! Storage under a repository: the object interface the engine needs and its local-folder form.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use super::Error;
use crate::store::{Store, StoreError};

/// Object storage holding one repository. Keys are `/`-separated paths relative to the
/// repository root (`data/3f/3fa9...`, `snapshots/...`); objects are written whole and never
/// changed afterwards, so a backend needs no locking.
pub trait RepositoryBackend: Send + Sync {
    /// Reads a whole object; a missing key is [`Error::NotFound`].
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>>;

    /// Writes an object, replacing any object under the same key.
    fn put<'a>(&'a self, key: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), Error>>;

    /// Lists the keys that start with `prefix` (a folder such as `index/`), in any order.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, Error>>;

    /// Deletes an object; deleting a missing key succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Describes where the repository lives, for messages (`/backups/repository`, `s3://...`).
    fn describe(&self) -> String;
}

/// A repository in a local folder: each key is a file below `root`.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// Uses `root` as the repository folder; it is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        if key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(Error::Backend(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

impl RepositoryBackend for LocalBackend {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::read(&path).await {
                Ok(data) => Ok(data),
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    Err(Error::NotFound(path.display().to_string()))
                }
                Err(error) => Err(io_error("failed to read", &path, error)),
            }
        })
    }

    fn put<'a>(&'a self, key: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let parent = path.parent().unwrap_or(&self.root).to_path_buf();
            tokio::fs::create_dir_all(&parent)
                .await
                .map_err(|error| io_error("failed to create", &parent, error))?;

            // Write to a temporary name and rename, so a reader never sees half an object.
            let temporary = parent.join(format!(
                ".{}.tmp-{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            tokio::fs::write(&temporary, &data)
                .await
                .map_err(|error| io_error("failed to write", &temporary, error))?;
            tokio::fs::rename(&temporary, &path)
                .await
                .map_err(|error| io_error("failed to rename into", &path, error))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        Box::pin(async move {
            let root = self.root.clone();
            let prefix = prefix.to_string();
            tokio::task::spawn_blocking(move || list_folder(&root, &prefix))
                .await
                .map_err(|error| Error::Backend(format!("listing task failed: {error}")))?
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
                Err(error) => Err(io_error("failed to delete", &path, error)),
            }
        })
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// A repository inside a backup location: the keys live under `repository/` of the location's
/// folder or bucket prefix, beside the resource backups.
#[derive(Debug, Clone)]
pub struct StoreBackend {
    store: Store,
}

impl StoreBackend {
    /// Uses the `repository/` folder of an opened location.
    pub fn new(store: Store) -> Self {
        StoreBackend { store }
    }

    fn full_key(key: &str) -> String {
        format!("{}/{key}", super::REPOSITORY_FOLDER)
    }
}

fn store_error(error: StoreError) -> Error {
    match error {
        StoreError::NotFound { location, key } => Error::NotFound(format!("{location}/{key}")),
        other => Error::Backend(other.to_string()),
    }
}

impl RepositoryBackend for StoreBackend {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            self.store
                .get(&Self::full_key(key))
                .await
                .map_err(store_error)
        })
    }

    fn put<'a>(&'a self, key: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.store
                .put(&Self::full_key(key), &data)
                .await
                .map_err(store_error)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        Box::pin(async move {
            let folder = Self::full_key("");
            let objects = self
                .store
                .list(&Self::full_key(prefix))
                .await
                .map_err(store_error)?;
            Ok(objects
                .into_iter()
                .filter_map(|object| object.key.strip_prefix(&folder).map(str::to_string))
                .collect())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.store
                .delete(&Self::full_key(key))
                .await
                .map_err(store_error)
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}/{}",
            self.store.url().trim_end_matches('/'),
            super::REPOSITORY_FOLDER
        )
    }
}

/// Lists the files below `root` whose key starts with `prefix`, skipping temporary files.
fn list_folder(root: &Path, prefix: &str) -> Result<Vec<String>, Error> {
    // Start the walk at the deepest folder named in the prefix.
    let folder_part = match prefix.rfind('/') {
        Some(end) => &prefix[..end],
        None => "",
    };
    let start = root.join(folder_part);
    let mut keys = Vec::new();
    let mut pending = vec![(start, folder_part.to_string())];
    while let Some((folder, key_prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error("failed to list", &folder, error)),
        };
        for entry in entries {
            let entry = entry.map_err(|error| io_error("failed to list", &folder, error))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let key = if key_prefix.is_empty() {
                name
            } else {
                format!("{key_prefix}/{name}")
            };
            let file_type = entry
                .file_type()
                .map_err(|error| io_error("failed to stat", &entry.path(), error))?;
            if file_type.is_dir() {
                pending.push((entry.path(), key));
            } else if key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

fn io_error(action: &str, path: &Path, error: std::io::Error) -> Error {
    Error::Backend(format!("{action} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_backend_round_trip() {
        let folder = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(folder.path().join("repository"));

        backend.put("data/ab/abcd", b"pack".to_vec()).await.unwrap();
        backend.put("index/1", b"index".to_vec()).await.unwrap();

        assert_eq!(backend.get("data/ab/abcd").await.unwrap(), b"pack");
        assert_eq!(backend.list("data/").await.unwrap(), vec!["data/ab/abcd"]);
        assert_eq!(backend.list("index/").await.unwrap(), vec!["index/1"]);
        backend.delete("index/1").await.unwrap();
        assert!(matches!(
            backend.get("index/1").await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn local_backend_rejects_parent_keys() {
        let folder = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(folder.path());
        assert!(backend.get("../etc/passwd").await.is_err());
    }
}
