//! Release tasks of the workspace: build and pack the four plugins, render and validate their
//! krew manifests, and install a plugin from its archive the way krew does.

pub mod archive;
pub mod dist;
pub mod install;
pub mod manifest;
pub mod platform;
pub mod plugins;

use std::path::PathBuf;

/// Error of a release task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// Step that failed, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Any other failure, already worded for the user.
    #[error("{0}")]
    Failed(String),

    /// A manifest broke krew's rules; each entry names the field and the fix.
    #[error("invalid krew manifest {}:\n  {}", .path.display(), .problems.join("\n  "))]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// One line per broken rule.
        problems: Vec<String>,
    },
}

/// Result with the release tasks' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to I/O errors.
pub trait IoContext<T> {
    /// Wraps the error with what was being done.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

/// Returns the workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}
