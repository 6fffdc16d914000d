//! Command-line definition of `kubectl bwlimit`.

use clap::{CommandFactory, Parser, Subcommand};
use shared::KubeArgs;
use shared::completion::CompletionArgs;

const EXAMPLES: &str = "\
Examples:
  # Limit the pods of Deployment web to 100 Mbit/s in each direction
  kubectl bwlimit set deployment/web --ingress 100M --egress 100M

  # List the pods that have limits
  kubectl bwlimit get -A
";

/// Limit pod bandwidth, at creation through annotations or live through a node agent.
#[derive(Parser, Debug)]
#[command(name = "kubectl-bwlimit", bin_name = "kubectl bwlimit", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `kubectl bwlimit`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a shell completion script for kubectl-bwlimit (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-bwlimit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
