//! Command-line definition of `kubectl migrate`.

use clap::{CommandFactory, Parser, Subcommand};
use shared::KubeArgs;
use shared::completion::CompletionArgs;

const EXAMPLES: &str = "\
Examples:
  # Back up the namespace shop into the default local folder
  kubectl migrate backup create shop-1 --include-namespaces shop

  # Restore it into the cluster of the current context, under a new namespace name
  kubectl migrate restore create --from-backup shop-1 --namespace-mappings shop:shop-new
";

/// Back up Kubernetes resources and restore them into another cluster.
#[derive(Parser, Debug)]
#[command(name = "kubectl-migrate", bin_name = "kubectl migrate", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `kubectl migrate`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a shell completion script for kubectl-migrate (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-migrate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
