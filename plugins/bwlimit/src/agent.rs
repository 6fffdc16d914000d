//! `kubectl-bwlimit agent`: the node agent. It finds a pod's host-side veth from the pod's
//! network namespace and programs, clears or reads its shaping over netlink, then prints one
//! JSON line to stdout that the plugin reads from the pod log.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::netlink::{Link, Netlink};
use crate::netns::{self, PodInterface};
use crate::rate::Rate;
use crate::shaping::{self, Limits, ShapingState};
use crate::tbf::TbfParams;

/// What the agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// Program these limits.
    Apply {
        ingress: Option<Rate>,
        egress: Option<Rate>,
        burst: Option<u64>,
    },
    /// Remove the shaping.
    Clear,
    /// Read the shaping.
    Show,
}

impl AgentAction {
    /// Returns the subcommand name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentAction::Apply { .. } => "apply",
            AgentAction::Clear => "clear",
            AgentAction::Show => "show",
        }
    }
}

/// The pod the agent works on and where to look for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    /// UID of the pod, used to find its processes in `/proc/*/cgroup`.
    pub pod_uid: String,
    /// Network namespace file of the pod; found from the UID when `None`.
    pub netns: Option<PathBuf>,
    /// Network namespace to treat as the node's; the agent's own when `None`.
    pub host_netns: Option<PathBuf>,
}

/// An interface named in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceRef {
    /// Interface name.
    pub name: String,
    /// Interface index in its namespace.
    pub index: u32,
}

/// The JSON line the agent prints: what it found and what is programmed, or the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    /// `apply`, `clear` or `show`.
    pub action: String,
    /// UID of the pod.
    pub pod_uid: String,
    /// Why the agent failed; the other fields hold what it found before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Network namespace file of the pod.
    #[serde(default)]
    pub netns: Option<String>,
    /// The pod's interface inside its namespace.
    #[serde(default)]
    pub pod_interface: Option<InterfaceRef>,
    /// The host-side veth.
    #[serde(default)]
    pub host_interface: Option<InterfaceRef>,
    /// Limits requested by `apply`, as programmed before reading back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<RequestedLimits>,
    /// Shaping before `clear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ShapingState>,
    /// Shaping after the action.
    #[serde(default)]
    pub state: Option<ShapingState>,
}

/// The TBF settings `apply` programmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedLimits {
    /// TBF on the host-side veth (traffic into the pod).
    pub ingress: Option<TbfParams>,
    /// TBF on the ifb device (traffic out of the pod).
    pub egress: Option<TbfParams>,
}

impl AgentReport {
    fn new(action: &AgentAction, target: &AgentTarget) -> AgentReport {
        AgentReport {
            action: action.name().to_string(),
            pod_uid: target.pod_uid.clone(),
            error: None,
            netns: None,
            pod_interface: None,
            host_interface: None,
            requested: None,
            previous: None,
            state: None,
        }
    }
}

/// Runs one agent action and returns its report; a failure is recorded in `report.error`.
pub async fn run(action: AgentAction, target: AgentTarget) -> AgentReport {
    let mut report = AgentReport::new(&action, &target);
    if let Err(error) = run_steps(&action, &target, &mut report).await {
        report.error = Some(error);
    }
    report
}

async fn run_steps(
    action: &AgentAction,
    target: &AgentTarget,
    report: &mut AgentReport,
) -> Result<(), String> {
    let pod_netns = match &target.netns {
        Some(path) => path.clone(),
        None => netns::pod_netns_from_uid(Path::new("/proc"), &target.pod_uid)?,
    };
    report.netns = Some(pod_netns.display().to_string());
    let host_netns = target
        .host_netns
        .clone()
        .unwrap_or_else(|| PathBuf::from(netns::SELF_NETNS));
    if netns::same_namespace(&pod_netns, &host_netns)? {
        return Err(format!(
            "pod {} uses the node's network namespace (hostNetwork): it shares the node's \
             interfaces and cannot be shaped per pod",
            target.pod_uid
        ));
    }

    match &target.host_netns {
        None => act_in_current_netns(action, pod_netns, report).await,
        Some(host) => {
            let host = host.clone();
            let action = action.clone();
            let mut inner = report.clone();
            let (result, inner) = tokio::task::spawn_blocking(move || {
                netns::block_on_in_netns(&host, || async {
                    let result = act_in_current_netns(&action, pod_netns, &mut inner).await;
                    (result, inner)
                })
            })
            .await
            .map_err(|e| format!("the namespace task failed: {e}"))??;
            *report = inner;
            result
        }
    }
}

/// Runs the action with the calling thread's network namespace as the node's.
async fn act_in_current_netns(
    action: &AgentAction,
    pod_netns: PathBuf,
    report: &mut AgentReport,
) -> Result<(), String> {
    let (netlink, pod, veth) = locate(pod_netns).await?;
    report.pod_interface = Some(InterfaceRef {
        name: pod.name.clone(),
        index: pod.index,
    });
    report.host_interface = Some(InterfaceRef {
        name: veth.name.clone(),
        index: veth.index,
    });

    match action {
        AgentAction::Apply {
            ingress,
            egress,
            burst,
        } => {
            let limits = Limits {
                ingress: ingress.map(|rate| TbfParams::for_rate(rate, *burst)),
                egress: egress.map(|rate| TbfParams::for_rate(rate, *burst)),
            };
            report.requested = Some(RequestedLimits {
                ingress: limits.ingress,
                egress: limits.egress,
            });
            report.state = Some(shaping::apply(&netlink, &veth, &limits).await?);
        }
        AgentAction::Clear => {
            report.previous = Some(shaping::clear(&netlink, &veth).await?);
            report.state = Some(
                shaping::read_state(&netlink, &veth)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        AgentAction::Show => {
            report.state = Some(
                shaping::read_state(&netlink, &veth)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(())
}

/// Finds the pod's interface inside `pod_netns` and its veth peer in the calling thread's
/// namespace, and returns a netlink connection of the calling thread's namespace.
pub async fn locate(pod_netns: PathBuf) -> Result<(Netlink, PodInterface, Link), String> {
    let pod = tokio::task::spawn_blocking(move || {
        netns::block_on_in_netns(&pod_netns, || async {
            let netlink = Netlink::connect().map_err(|e| e.to_string())?;
            netns::pod_interface(&netlink).await
        })
    })
    .await
    .map_err(|e| format!("the namespace task failed: {e}"))???;

    let netlink = Netlink::connect().map_err(|e| e.to_string())?;
    let veth = netns::host_veth(&netlink, &pod).await?;
    Ok((netlink, pod, veth))
}
