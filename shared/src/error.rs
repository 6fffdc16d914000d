//! The one error type of the plugins and its mapping to kubectl's exit codes.

use std::fmt;

/// Result with the plugins' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code for a run that ended without an error.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error: a bad flag, argument or value.
pub const EXIT_USAGE: u8 = 2;

/// Error of a plugin command, carrying the exit code it ends the process with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong: an invalid value, a missing argument, conflicting flags.
    #[error("{0}")]
    Usage(String),

    /// No usable kubeconfig or cluster configuration.
    #[error("{0}")]
    Config(String),

    /// A Kubernetes API request failed.
    #[error("{context}: {}", describe_kube_error(.source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },

    /// A local file or stream operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// Any other failure, already worded for the user.
    #[error("{0}")]
    Failed(String),

    /// The command has already reported its outcome and only sets the exit code,
    /// as `verify` does when the measured split disagrees with the expected one.
    #[error("exit status {0}")]
    Exit(u8),
}

impl Error {
    /// Builds a usage error (exit code 2).
    pub fn usage(message: impl fmt::Display) -> Self {
        Error::Usage(message.to_string())
    }

    /// Builds a failure (exit code 1).
    pub fn failed(message: impl fmt::Display) -> Self {
        Error::Failed(message.to_string())
    }

    /// Returns the process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Exit(code) => *code,
            _ => EXIT_FAILURE,
        }
    }

    /// Reports whether the error is a closed stdout, which ends the command quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Returns the HTTP status code when the error is a Status response from the API server.
    pub fn api_status(&self) -> Option<u16> {
        match self {
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            context: "I/O error".to_string(),
            source,
        }
    }
}

/// Formats a kube client error the way kubectl prints server errors:
/// `Error from server (NotFound): ...` for a Status, the cause chain otherwise.
pub fn describe_kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                "Unknown"
            } else {
                status.reason.as_str()
            };
            format!("error from server ({reason}): {}", status.message)
        }
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(inner) = cause {
                let inner_text = inner.to_string();
                if !text.contains(&inner_text) {
                    text.push_str(": ");
                    text.push_str(&inner_text);
                }
                cause = inner.source();
            }
            text
        }
    }
}

/// Adds the failed step's context to lower-level errors.
pub trait ResultExt<T> {
    /// Wraps the error with a description of what was being done, such as
    /// `failed to list deployments.apps in namespace shop`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, kube::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Api {
            context: context(),
            source,
        })
    }
}

impl<T> ResultExt<T> for std::result::Result<T, std::io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_error_exits_two() {
        assert_eq!(Error::usage("bad flag").exit_code(), EXIT_USAGE);
    }

    #[test]
    fn failure_exits_one() {
        assert_eq!(Error::failed("boom").exit_code(), EXIT_FAILURE);
        assert_eq!(
            Error::Config("no kubeconfig".into()).exit_code(),
            EXIT_FAILURE
        );
    }

    #[test]
    fn broken_pipe_detected() {
        let error = Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(error.is_broken_pipe());
        assert!(!Error::failed("x").is_broken_pipe());
    }

    #[test]
    fn api_status_formatted_like_kubectl() {
        let status = kube::core::Status {
            status: Some(kube::core::response::StatusSummary::Failure),
            message: "deployments.apps \"web\" not found".into(),
            reason: "NotFound".into(),
            code: 404,
            metadata: None,
            details: None,
        };
        let error = Error::Api {
            context: "failed to get deployment web".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        assert_eq!(
            error.to_string(),
            "failed to get deployment web: error from server (NotFound): deployments.apps \"web\" not found"
        );
        assert_eq!(error.api_status(), Some(404));
    }
}
