//! kubectl-canary: canary releases through ingress-nginx canary annotations and Gateway API
//! HTTPRoute weights.
//!
//! The pure modules (`annotations`, `routing`, `httproute`, `ingress`, `lint`, `convert`,
//! `stats`, `weight`) decide; `cluster` and `commands` fetch and write.

pub mod annotations;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod convert;
pub mod httproute;
pub mod ingress;
pub mod lint;
pub mod routing;
pub mod stats;
pub mod target;
pub mod verify;
pub mod weight;

use std::process::ExitCode;

use shared::Result;

use cli::{Cli, Command};
use commands::connect;

/// Runs the plugin with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    shared::app::plugin_main("canary", |cli: &Cli| cli.kube.verbosity, run)
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Completion(args) => {
            shared::completion::write_script(
                cli::command_for_scripts(),
                args.shell,
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Convert(args) => commands::convert::run(args),
        Command::Verify(args) => commands::verify::run(args, cli.kube.namespace.as_deref()).await,
        Command::Create(args) => commands::create::run(&connect(&cli.kube).await?, args).await,
        Command::SetWeight(args) => {
            commands::modify::set_weight(&connect(&cli.kube).await?, args).await
        }
        Command::SetHeader(args) => {
            commands::modify::set_header(&connect(&cli.kube).await?, args).await
        }
        Command::SetCookie(args) => {
            commands::modify::set_cookie(&connect(&cli.kube).await?, args).await
        }
        Command::ClearRules(args) => {
            commands::modify::clear_rules(&connect(&cli.kube).await?, args).await
        }
        Command::Abort(args) => commands::modify::abort(&connect(&cli.kube).await?, args).await,
        Command::Status(args) => commands::status::status(&connect(&cli.kube).await?, args).await,
        Command::Lint(args) => commands::status::lint(&connect(&cli.kube).await?, args).await,
        Command::Promote(args) => commands::promote::run(&connect(&cli.kube).await?, args).await,
        Command::Rollout(args) => commands::rollout::run(&connect(&cli.kube).await?, args).await,
        Command::Explain(args) => commands::explain::run(&connect(&cli.kube).await?, args).await,
    }
}
