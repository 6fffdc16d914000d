//! Command-line definition of `kubectl crimap`.

use clap::{CommandFactory, Parser, Subcommand};
use shared::KubeArgs;
use shared::completion::CompletionArgs;

const EXAMPLES: &str = "\
Examples:
  # Translate a docker command
  kubectl crimap docker logs -f --tail 100 web

  # Show each node's container runtime
  kubectl crimap nodes
";

/// Map docker commands to crictl and find what still depends on Docker.
#[derive(Parser, Debug)]
#[command(name = "kubectl-crimap", bin_name = "kubectl crimap", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `kubectl crimap`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a shell completion script for kubectl-crimap (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-crimap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
