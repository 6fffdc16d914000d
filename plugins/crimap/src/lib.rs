//! kubectl-crimap: maps docker commands to crictl, shows node runtimes and finds workloads
//! that depend on Docker.

pub mod argv;
pub mod cli;
pub mod crictl;
pub mod docker;
pub mod mapping;
pub mod nodes;
pub mod scan;
pub mod translation;

use std::io::IsTerminal;
use std::process::ExitCode;

use shared::{Error, OutputFormat, Result};

use cli::{Cli, Command, TableArgs, TranslateArgs, TranslationFormat};
use translation::Translation;

/// Runs the plugin with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    shared::app::plugin_main("crimap", |cli: &Cli| cli.kube.verbosity, run)
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Docker(args) => print_translation(docker::translate(&args.args)?, &args),
        Command::Crictl(args) => print_translation(crictl::translate(&args.args)?, &args),
        Command::Table(args) => print_table(&args),
        Command::Nodes(args) => nodes::run(&cli.kube, &args).await,
        Command::Scan(args) => scan::run(&cli.kube, &args).await,
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

fn print_translation(translation: Translation, args: &TranslateArgs) -> Result<()> {
    match args.output {
        TranslationFormat::Text => shared::output::print(&translation.render()),
        TranslationFormat::Json => {
            shared::output::print_structured(&translation, OutputFormat::Json)
        }
        TranslationFormat::Yaml => {
            shared::output::print_structured(&translation, OutputFormat::Yaml)
        }
    }
}

fn print_table(args: &TableArgs) -> Result<()> {
    let rows = mapping::rows(args.category);
    match args.output.output {
        OutputFormat::Table | OutputFormat::Wide => {
            // Wrap to the terminal's width on a terminal; a pipe gets unwrapped lines.
            let width = std::io::stdout()
                .is_terminal()
                .then(|| comfy_table::Table::new().width())
                .flatten();
            shared::output::print(&mapping::render(&rows, width))
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&rows, args.output.output)
        }
        OutputFormat::Name => Err(Error::usage(
            "invalid output format name for kubectl crimap table: use table, json or yaml",
        )),
    }
}
