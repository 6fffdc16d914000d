//! Locations in a local folder: one file per key, written through a temporary file and a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ObjectInfo, StoreError};

/// Prefix of the temporary files that `put` renames into place; listing skips them.
const TEMP_PREFIX: &str = ".tmp-";

/// A folder holding one file per key.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Uses `root` as the location's folder; it is created on the first write.
    pub fn new(root: PathBuf) -> Self {
        FileStore { root }
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub(super) async fn check(&self, create: bool) -> Result<(), StoreError> {
        let root = self.root.clone();
        blocking(move || {
            if create {
                std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
                    context: format!("failed to create folder {}", root.display()),
                    source,
                })?;
            }
            std::fs::read_dir(&root)
                .map(|_| ())
                .map_err(|source| StoreError::Io {
                    context: format!("failed to open folder {}", root.display()),
                    source,
                })
        })
        .await
    }

    pub(super) async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let bytes = bytes.to_vec();
        blocking(move || write_atomically(&path, |file| file.write_all(&bytes))).await
    }

    pub(super) async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let source = source.to_path_buf();
        blocking(move || {
            let mut input = std::fs::File::open(&source).map_err(|error| StoreError::Io {
                context: format!("failed to open {}", source.display()),
                source: error,
            })?;
            write_atomically(&path, |file| std::io::copy(&mut input, file).map(|_| ()))
        })
        .await
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(self.not_found(key)),
            Err(source) => Err(StoreError::Io {
                context: format!("failed to read {}", path.display()),
                source,
            }),
        }
    }

    pub(super) async fn get_to_file(&self, key: &str, target: &Path) -> Result<(), StoreError> {
        let path = self.path_of(key);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(self.not_found(key));
        }
        tokio::fs::copy(&path, target)
            .await
            .map(|_| ())
            .map_err(|source| StoreError::Io {
                context: format!("failed to copy {} to {}", path.display(), target.display()),
                source,
            })
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk only the deepest folder that the prefix names completely.
            let start = match prefix.rfind('/') {
                Some(end) => root.join(&prefix[..end]),
                None => root.clone(),
            };
            let mut objects = Vec::new();
            walk(&root, &start, &mut objects)?;
            objects.retain(|object| object.key.starts_with(&prefix));
            Ok(objects)
        })
        .await
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StoreError::Io {
                    context: format!("failed to delete {}", path.display()),
                    source,
                });
            }
        }

        // Remove folders left empty, up to the root, so deleted backups leave no trace.
        let mut folder = path.parent().map(Path::to_path_buf);
        while let Some(current) = folder {
            if current == self.root || !current.starts_with(&self.root) {
                break;
            }
            if tokio::fs::remove_dir(&current).await.is_err() {
                break;
            }
            folder = current.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.path_of(key);
        tokio::fs::try_exists(&path)
            .await
            .map_err(|source| StoreError::Io {
                context: format!("failed to check {}", path.display()),
                source,
            })
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            location: format!("file://{}", self.root.display()),
            key: key.to_string(),
        }
    }
}

/// Writes a file through a temporary file in the same folder, synced, then renamed over `path`,
/// so that readers see either the old content or the whole new content.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let io_error = |context: String| move |source| StoreError::Io { context, source };

    std::fs::create_dir_all(folder).map_err(io_error(format!(
        "failed to create folder {}",
        folder.display()
    )))?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(folder)
        .map_err(io_error(format!(
            "failed to create a temporary file in {}",
            folder.display()
        )))?;
    write(temp.as_file_mut())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_error(format!("failed to write {}", path.display())))?;
    temp.persist(path).map_err(|error| StoreError::Io {
        context: format!("failed to rename a temporary file to {}", path.display()),
        source: error.error,
    })?;
    Ok(())
}

fn walk(root: &Path, folder: &Path, objects: &mut Vec<ObjectInfo>) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                context: format!("failed to list {}", folder.display()),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::Io {
            context: format!("failed to list {}", folder.display()),
            source,
        })?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| StoreError::Io {
            context: format!("failed to inspect {}", path.display()),
            source,
        })?;
        if file_type.is_dir() {
            walk(root, &path, objects)?;
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let key: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        objects.push(ObjectInfo {
            key: key.join("/"),
            size,
        });
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(StoreError::Io {
                context: "a file operation task failed".to_string(),
                source: std::io::Error::other(error),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FileStore) {
        let folder = tempfile::tempdir().unwrap();
        let store = FileStore::new(folder.path().join("root"));
        (folder, store)
    }

    #[tokio::test]
    async fn put_then_get_round_trips() {
        let (_folder, store) = store();
        store.put("a/b/c.json", b"{\"x\":1}").await.unwrap();
        assert_eq!(store.get("a/b/c.json").await.unwrap(), b"{\"x\":1}");
        assert!(store.exists("a/b/c.json").await.unwrap());
    }

    #[tokio::test]
    async fn put_replaces_and_leaves_no_temporary_files() {
        let (_folder, store) = store();
        store.put("k", b"old").await.unwrap();
        store.put("k", b"new").await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&store.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k"]);
    }

    #[tokio::test]
    async fn get_of_missing_key_is_not_found() {
        let (_folder, store) = store();
        let error = store.get("missing").await.unwrap_err();
        assert!(error.is_not_found(), "{error}");
    }

    #[tokio::test]
    async fn list_filters_by_string_prefix() {
        let (_folder, store) = store();
        for key in ["backups/a/1", "backups/ab/2", "backups/b/3", "restores/a/4"] {
            store.put(key, b"12345").await.unwrap();
        }
        let mut keys: Vec<String> = store
            .list("backups/a")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        assert_eq!(keys, ["backups/a/1", "backups/ab/2"]);
        let all = store.list("").await.unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|o| o.size == 5));
    }

    #[tokio::test]
    async fn list_skips_temporary_files() {
        let (_folder, store) = store();
        store.put("a/1", b"x").await.unwrap();
        std::fs::write(store.root.join("a/.tmp-partial"), b"half").unwrap();
        assert_eq!(store.list("a/").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn list_of_missing_folder_is_empty() {
        let (_folder, store) = store();
        assert!(store.list("nothing/here").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn delete_removes_empty_folders() {
        let (_folder, store) = store();
        store.put("x/y/z", b"1").await.unwrap();
        store.put("x/keep", b"1").await.unwrap();
        store.delete("x/y/z").await.unwrap();
        assert!(!store.root.join("x/y").exists());
        assert!(store.root.join("x/keep").exists());
        store.delete("x/y/z").await.unwrap();
    }

    #[tokio::test]
    async fn put_file_and_get_to_file_copy_content() {
        let (folder, store) = store();
        let source = folder.path().join("source.bin");
        std::fs::write(&source, vec![7u8; 100_000]).unwrap();
        store.put_file("data/blob", &source).await.unwrap();
        let target = folder.path().join("target.bin");
        store.get_to_file("data/blob", &target).await.unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), vec![7u8; 100_000]);
    }
}
