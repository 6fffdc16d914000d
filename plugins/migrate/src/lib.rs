//! kubectl-migrate: backs up cluster resources to S3-compatible storage or a folder and
//! restores them into another cluster.

pub mod cli;
pub mod repo;
pub mod store;

use std::process::ExitCode;

use shared::Result;

use cli::{Cli, Command};

/// Runs the plugin with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    shared::app::plugin_main("migrate", |cli: &Cli| cli.kube.verbosity, run)
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
