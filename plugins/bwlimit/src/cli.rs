//! Command-line definition of `kubectl bwlimit`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand};
use shared::completion::CompletionArgs;
use shared::{KubeArgs, OutputArgs};

use crate::rate::{self, Rate};

const EXAMPLES: &str = "\
Examples:
  # Limit the pods of Deployment web to 100 Mbit/s in each direction (rolls the pods)
  kubectl bwlimit set deployment/web --ingress 100M --egress 100M

  # Limit a running pod now, without restarting it
  kubectl bwlimit set pod/web-0 --ingress 20M --egress 20M --live

  # List the pods that have limits, and check the qdiscs on their nodes
  kubectl bwlimit get -A --verify

  # Remove the limits of the pods labelled app=batch, also from the running pods
  kubectl bwlimit clear -l app=batch --live

  # Check whether the cluster's CNI chain honours the limits
  kubectl bwlimit check
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
    /// Set the kubernetes.io/ingress-bandwidth and egress-bandwidth annotations, and with
    /// --live program the limits on the running pods now.
    Set(SetArgs),
    /// List pods with bandwidth limits; --verify reads the qdiscs on their nodes.
    #[command(visible_alias = "list")]
    Get(GetArgs),
    /// Remove the bandwidth annotations, and with --live the programmed limits.
    Clear(ClearArgs),
    /// Check whether the cluster can honour the limits: the CNI bandwidth plugin, Cilium,
    /// and clsact qdiscs that would conflict.
    Check(CheckArgs),
    /// Run the node agent (started by the plugin in a pod on the target pod's node).
    Agent(AgentArgs),
    /// Write a shell completion script for kubectl-bwlimit (bash, zsh or fish).
    Completion(CompletionArgs),
}

/// Pods or workload a command changes.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("what").required(true).args(["target", "selector"])))]
pub struct TargetArgs {
    /// pod/NAME, or deployment|statefulset|daemonset|replicaset|job/NAME for the pod template.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    /// Label selector of the pods to change, such as app=web.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// Settings of the node agent pods.
#[derive(Args, Debug, Clone)]
pub struct AgentPodArgs {
    /// Container image of the node agent.
    #[arg(long, value_name = "IMAGE", default_value_t = shared::agent::default_agent_image())]
    pub agent_image: String,

    /// Namespace of the agent pods [default: the target pod's namespace]. It must allow
    /// privileged pods (hostNetwork, hostPID, NET_ADMIN).
    #[arg(long, value_name = "NAMESPACE")]
    pub agent_namespace: Option<String>,

    /// Time to wait for each agent pod to finish, such as 90s or 2m.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub agent_timeout: Duration,

    /// Testing only: pass this network namespace file to the agent instead of letting it find
    /// the pod's namespace from the pod UID.
    #[arg(long, value_name = "PATH", hide = true)]
    pub agent_netns_override: Option<PathBuf>,

    /// Testing only: make the agent treat this network namespace as the node's.
    #[arg(long, value_name = "PATH", hide = true)]
    pub agent_host_netns_override: Option<PathBuf>,

    /// Testing only: make `check`'s agent read this folder as the node's CNI configuration
    /// instead of mounting /etc/cni/net.d.
    #[arg(long, value_name = "DIR", hide = true)]
    pub agent_cni_dir_override: Option<PathBuf>,
}

/// Arguments of `set`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("rates").required(true).multiple(true).args(["ingress", "egress"])))]
pub struct SetArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Limit of traffic into the pod, in bit/s as a Kubernetes quantity (240M, 1.5G, 512Ki).
    #[arg(long, value_name = "RATE", value_parser = rate::parse_rate)]
    pub ingress: Option<Rate>,

    /// Limit of traffic out of the pod, in bit/s as a Kubernetes quantity.
    #[arg(long, value_name = "RATE", value_parser = rate::parse_rate)]
    pub egress: Option<Rate>,

    /// Token bucket size in bytes for --live (such as 64Ki) [default: 5 ms at the rate, at
    /// least four 1518-byte frames]. Annotations carry no burst.
    #[arg(long, value_name = "SIZE", value_parser = rate::parse_burst, requires = "live")]
    pub burst: Option<u64>,

    /// Also program the limits on the running pods now, through a node agent pod.
    #[arg(long)]
    pub live: bool,

    #[command(flatten)]
    pub agent: AgentPodArgs,
}

/// Arguments of `get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// List pods in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Label selector of the pods to list.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Read the qdiscs on each pod's host interface through a node agent and compare them
    /// with the annotations.
    #[arg(long)]
    pub verify: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub agent: AgentPodArgs,
}

/// Arguments of `clear`.
#[derive(Args, Debug, Clone)]
pub struct ClearArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Also remove the programmed limits from the running pods now, through a node agent pod.
    #[arg(long)]
    pub live: bool,

    #[command(flatten)]
    pub agent: AgentPodArgs,
}

/// Arguments of `check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Node on which an agent reads the CNI configuration and the qdiscs [default: none, only
    /// the API checks run].
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,

    #[command(flatten)]
    pub agent: AgentPodArgs,
}

/// Arguments of `agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub action: AgentCommand,
}

/// Subcommands of `agent`.
#[derive(Subcommand, Debug, Clone)]
pub enum AgentCommand {
    /// Program the limits on the pod's host-side veth.
    Apply(AgentApplyArgs),
    /// Remove the limits from the pod's host-side veth.
    Clear(AgentPodTarget),
    /// Print the qdiscs on the pod's host-side veth.
    Show(AgentPodTarget),
    /// Print the node's CNI configuration as far as it concerns bandwidth, and clsact qdiscs.
    Check(AgentCheckArgs),
}

/// The pod an agent action works on.
#[derive(Args, Debug, Clone)]
pub struct AgentPodTarget {
    /// UID of the pod; its processes are found in /proc/*/cgroup.
    #[arg(long, value_name = "UID")]
    pub pod_uid: String,

    /// Network namespace file of the pod, instead of finding it from the pod UID.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,

    /// Testing only: the network namespace to treat as the node's [default: the agent's own].
    #[arg(long, value_name = "PATH", hide = true)]
    pub host_netns: Option<PathBuf>,
}

/// Arguments of `agent apply`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("rates").required(true).multiple(true).args(["ingress", "egress"])))]
pub struct AgentApplyArgs {
    #[command(flatten)]
    pub target: AgentPodTarget,

    /// Limit of traffic into the pod, in bit/s.
    #[arg(long, value_name = "RATE", value_parser = rate::parse_rate)]
    pub ingress: Option<Rate>,

    /// Limit of traffic out of the pod, in bit/s.
    #[arg(long, value_name = "RATE", value_parser = rate::parse_rate)]
    pub egress: Option<Rate>,

    /// Token bucket size in bytes.
    #[arg(long, value_name = "SIZE", value_parser = rate::parse_burst)]
    pub burst: Option<u64>,
}

/// Arguments of `agent check`.
#[derive(Args, Debug, Clone)]
pub struct AgentCheckArgs {
    /// Folder of the node's CNI configuration, as mounted into the agent pod.
    #[arg(long, value_name = "DIR", default_value = "/host/etc/cni/net.d")]
    pub cni_dir: PathBuf,

    /// Testing only: the network namespace to treat as the node's [default: the agent's own].
    #[arg(long, value_name = "PATH", hide = true)]
    pub host_netns: Option<PathBuf>,
}

fn parse_timeout(value: &str) -> Result<Duration, String> {
    let duration = shared::kubeconfig::parse_duration(value)
        .map_err(|e| format!("{e}: use a duration such as 90s or 2m"))?;
    if duration.is_zero() {
        return Err("the agent timeout must be above zero".to_string());
    }
    Ok(duration)
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-bwlimit")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-bwlimit").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn set_parses_rates_in_bits() {
        let cli = parse(&["set", "pod/web", "--ingress", "240M", "--egress", "1Mi"]).unwrap();
        let Command::Set(args) = cli.command else {
            panic!("not set")
        };
        assert_eq!(args.ingress.unwrap().bits_per_second(), 240_000_000);
        assert_eq!(args.egress.unwrap().bits_per_second(), 1_048_576);
        assert!(!args.live);
    }

    #[test]
    fn set_rejects_invalid_rate() {
        let error = parse(&["set", "pod/web", "--ingress", "10K"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().contains("invalid rate \"10K\""),
            "{error}"
        );
    }

    #[test]
    fn set_needs_a_rate() {
        let error = parse(&["set", "pod/web"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn set_needs_target_or_selector() {
        assert!(parse(&["set", "--ingress", "1M"]).is_err());
        assert!(parse(&["set", "-l", "app=web", "--ingress", "1M"]).is_ok());
        assert!(parse(&["set", "pod/a", "-l", "app=web", "--ingress", "1M"]).is_err());
    }

    #[test]
    fn burst_requires_live() {
        assert!(parse(&["set", "pod/a", "--ingress", "1M", "--burst", "64Ki"]).is_err());
        let cli = parse(&[
            "set",
            "pod/a",
            "--ingress",
            "1M",
            "--burst",
            "64Ki",
            "--live",
        ])
        .unwrap();
        let Command::Set(args) = cli.command else {
            panic!("not set")
        };
        assert_eq!(args.burst, Some(65_536));
    }

    #[test]
    fn list_is_an_alias_of_get() {
        let cli = parse(&["list", "-A", "--verify"]).unwrap();
        let Command::Get(args) = cli.command else {
            panic!("not get")
        };
        assert!(args.all_namespaces);
        assert!(args.verify);
    }

    #[test]
    fn agent_timeout_rejects_zero() {
        let error = parse(&["get", "--agent-timeout", "0s"]).unwrap_err();
        assert!(error.to_string().contains("above zero"), "{error}");
    }

    #[test]
    fn agent_apply_parses() {
        let cli = parse(&[
            "agent",
            "apply",
            "--pod-uid",
            "u1",
            "--netns",
            "/run/netns/x",
            "--ingress",
            "1000000",
        ])
        .unwrap();
        let Command::Agent(AgentArgs {
            action: AgentCommand::Apply(args),
        }) = cli.command
        else {
            panic!("not agent apply")
        };
        assert_eq!(args.target.pod_uid, "u1");
        assert_eq!(args.ingress.unwrap().bits_per_second(), 1_000_000);
        assert_eq!(args.egress, None);
    }
}
