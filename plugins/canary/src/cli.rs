//! Command-line definition of `kubectl canary`.

use clap::{CommandFactory, Parser, Subcommand};
use shared::KubeArgs;
use shared::completion::CompletionArgs;

const EXAMPLES: &str = "\
Examples:
  # Send 10% of the traffic of Ingress web to the Service web-v2
  kubectl canary create web --service web-v2 --weight 10

  # Show every canary in the cluster
  kubectl canary status -A
";

/// Release new versions gradually behind ingress-nginx or Gateway API.
#[derive(Parser, Debug)]
#[command(name = "kubectl-canary", bin_name = "kubectl canary", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `kubectl canary`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a shell completion script for kubectl-canary (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-canary")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
