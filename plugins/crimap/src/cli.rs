//! Command-line definition of `kubectl crimap`.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use shared::completion::CompletionArgs;
use shared::{KubeArgs, OutputArgs};

use crate::mapping::Category;

const EXAMPLES: &str = "\
Examples:
  # Translate a docker command
  kubectl crimap docker logs -f --tail 100 web

  # Translate a crictl command back to docker
  kubectl crimap crictl ps --name web --state running

  # Show the mapping of image commands
  kubectl crimap table --category image

  # Show each node's container runtime
  kubectl crimap nodes

  # Find workloads in all namespaces that depend on Docker, failing CI when any do
  kubectl crimap scan -A --exit-code

  # Scan manifest files instead of the cluster
  kubectl crimap scan -f deploy/ -R
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
    /// Translate one docker command line, flags included, into crictl (or nerdctl/ctr).
    #[command(
        after_help = "Plugin flags go before the docker command: kubectl crimap docker -o json ps -a"
    )]
    Docker(TranslateArgs),

    /// Translate one crictl command line, flags included, into docker.
    #[command(
        after_help = "Plugin flags go before the crictl command: kubectl crimap crictl -o json ps -a"
    )]
    Crictl(TranslateArgs),

    /// Print the docker-to-crictl mapping table.
    Table(TableArgs),

    /// Show each node's container runtime, kubelet version and OS image, flagging Docker.
    Nodes(NodesArgs),

    /// Find workloads or manifests that depend on Docker.
    Scan(ScanArgs),

    /// Write a shell completion script for kubectl-crimap (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Output format of a translation.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TranslationFormat {
    /// Command lines, then notes as `#` comments, ready to paste into a shell.
    #[default]
    Text,
    /// JSON object with input, equivalent, commands and notes.
    Json,
    /// The same object as YAML.
    Yaml,
}

/// Arguments of `docker` and `crictl`.
#[derive(clap::Args, Debug)]
pub struct TranslateArgs {
    /// Output format: text, json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = TranslationFormat::Text, value_name = "FORMAT")]
    pub output: TranslationFormat,

    /// The command line without the tool name, e.g. `logs -f --tail 100 web`.
    #[arg(
        value_name = "ARGS",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// Arguments of `table`.
#[derive(clap::Args, Debug)]
pub struct TableArgs {
    /// Show only one category of commands.
    #[arg(long, value_enum, value_name = "CATEGORY")]
    pub category: Option<Category>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `nodes`.
#[derive(clap::Args, Debug)]
pub struct NodesArgs {
    /// Label selector to filter nodes, e.g. node-role.kubernetes.io/worker=.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `scan`.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Scan workloads in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "filename")]
    pub all_namespaces: bool,

    /// Manifest file or folder to scan instead of the cluster (YAML or JSON; repeatable; - reads stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR", value_hint = clap::ValueHint::AnyPath)]
    pub filename: Vec<PathBuf>,

    /// Scan folders given with -f recursively.
    #[arg(short = 'R', long, requires = "filename")]
    pub recursive: bool,

    /// Label selector for the workloads scanned in the cluster.
    #[arg(
        short = 'l',
        long,
        value_name = "SELECTOR",
        conflicts_with = "filename"
    )]
    pub selector: Option<String>,

    /// Exit with status 1 when anything depends on Docker, for CI.
    #[arg(long)]
    pub exit_code: bool,

    #[command(flatten)]
    pub output: OutputArgs,
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

    #[test]
    fn docker_args_keep_their_flags() {
        let cli = Cli::try_parse_from([
            "kubectl-crimap",
            "docker",
            "-o",
            "json",
            "ps",
            "-a",
            "-o",
            "x",
        ])
        .unwrap();
        let Command::Docker(args) = cli.command else {
            panic!("not the docker command");
        };
        assert_eq!(args.output, TranslationFormat::Json);
        assert_eq!(args.args, ["ps", "-a", "-o", "x"]);
    }

    #[test]
    fn docker_args_may_start_with_unknown_flag() {
        let cli = Cli::try_parse_from(["kubectl-crimap", "crictl", "--bogus"]).unwrap();
        let Command::Crictl(args) = cli.command else {
            panic!("not the crictl command");
        };
        assert_eq!(args.args, ["--bogus"]);
    }

    #[test]
    fn scan_recursive_needs_filename() {
        assert!(Cli::try_parse_from(["kubectl-crimap", "scan", "-R"]).is_err());
    }
}
