//! kubectl-migrate: backs up cluster resources to S3-compatible storage or a folder and
//! restores them into another cluster.

pub mod agent;
pub mod backup;
pub mod cli;
pub mod commands;
pub mod discovery;
pub mod filter;
pub mod format;
pub mod interrupt;
pub mod locations;
pub mod mappings;
pub mod order;
pub mod repo;
pub mod restore;
pub mod sanitize;
pub mod store;
pub mod volumes;
pub mod workload;

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
        Command::Agent(command) => agent::run(command).await,
        Command::Backup(command) => commands::backup::run(&cli.kube, command).await,
        Command::Restore(command) => commands::restore::run(&cli.kube, command).await,
        Command::Location(command) => commands::location::run(command).await,
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
