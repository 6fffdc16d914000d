//! kubectl-bwlimit: pod bandwidth limits through the kubernetes.io/ingress-bandwidth and
//! egress-bandwidth annotations, applied live by a node agent.

pub mod agent;
pub mod check;
pub mod cli;
pub mod commands;
pub mod get;
pub mod live;
pub mod netlink;
pub mod netns;
pub mod pods;
pub mod rate;
pub mod shaping;
pub mod target;
pub mod tbf;

use std::io::Write;
use std::process::ExitCode;

use shared::{Error, Result, ResultExt};

use agent::{AgentAction, AgentTarget};
use cli::{AgentCommand, AgentPodTarget, Cli, Command};

/// Runs the plugin with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    shared::app::plugin_main("bwlimit", |cli: &Cli| cli.kube.verbosity, run)
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Set(args) => commands::set(&cli.kube, args).await,
        Command::Get(args) => get::get(&cli.kube, args).await,
        Command::Clear(args) => commands::clear(&cli.kube, args).await,
        Command::Check(args) => check::check(&cli.kube, args).await,
        Command::Agent(args) => run_agent(args.action).await,
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

fn agent_target(target: AgentPodTarget) -> AgentTarget {
    AgentTarget {
        pod_uid: target.pod_uid,
        netns: target.netns,
        host_netns: target.host_netns,
    }
}

/// Runs an agent action and prints its report as one JSON line; a failed action also exits 1
/// with the error on stderr.
async fn run_agent(command: AgentCommand) -> Result<()> {
    let report = match command {
        AgentCommand::Apply(args) => {
            let action = AgentAction::Apply {
                ingress: args.ingress,
                egress: args.egress,
                burst: args.burst,
            };
            to_json(&agent::run(action, agent_target(args.target)).await)?
        }
        AgentCommand::Clear(target) => {
            to_json(&agent::run(AgentAction::Clear, agent_target(target)).await)?
        }
        AgentCommand::Show(target) => {
            to_json(&agent::run(AgentAction::Show, agent_target(target)).await)?
        }
        AgentCommand::Check(args) => {
            to_json(&agent::check_node(&args.cni_dir, args.host_netns).await)?
        }
    };

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}").context(|| "failed to write to stdout".to_string())?;
    stdout
        .flush()
        .context(|| "failed to write to stdout".to_string())?;
    match report["error"].as_str() {
        Some(error) => Err(Error::failed(error)),
        None => Ok(()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::failed(format!("failed to encode the report: {e}")))
}
