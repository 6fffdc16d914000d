//! kubectl-bwlimit: pod bandwidth limits through the kubernetes.io/ingress-bandwidth and
//! egress-bandwidth annotations, applied live by a node agent.

pub mod agent;
pub mod cli;
pub mod netlink;
pub mod netns;
pub mod rate;
pub mod shaping;
pub mod tbf;

use std::process::ExitCode;

use shared::Result;

use cli::{Cli, Command};

/// Runs the plugin with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    shared::app::plugin_main("bwlimit", |cli: &Cli| cli.kube.verbosity, run)
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Completion(args) => {
            shared::completion::write_script(
                cli::command_for_scripts(),
                args.shell,
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}
