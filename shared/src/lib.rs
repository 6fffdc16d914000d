//! Common library of the kubectl plugins: kubectl's global flags, kubeconfig loading, output
//! formats, the error type with its exit codes, logging and shell completion.

pub mod agent;
pub mod app;
pub mod completion;
pub mod error;
pub mod kubeconfig;
pub mod logging;
pub mod output;
pub mod progress;

pub use app::run_plugin;
pub use error::{Error, Result, ResultExt};
pub use kubeconfig::{ClusterTarget, KubeArgs};
pub use output::{OutputArgs, OutputFormat, Table};
