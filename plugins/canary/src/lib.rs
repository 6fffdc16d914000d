//! kubectl-canary: canary releases through ingress-nginx canary annotations and Gateway API
//! HTTPRoute weights.

pub mod annotations;
pub mod cli;
pub mod convert;
pub mod httproute;
pub mod ingress;
pub mod lint;
pub mod routing;
pub mod stats;
pub mod weight;

use std::process::ExitCode;

use shared::Result;

use cli::{Cli, Command};

/// Runs the plugin with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    shared::app::plugin_main("canary", |cli: &Cli| cli.kube.verbosity, run)
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
