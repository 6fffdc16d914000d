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

/// Action of the agent.
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
    /// Read the node's CNI configuration and clsact qdiscs; `cni_dir` overrides the folder.
    Check { cni_dir: Option<PathBuf> },
}

impl AgentAction {
    /// Returns the subcommand name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentAction::Apply { .. } => "apply",
            AgentAction::Clear => "clear",
            AgentAction::Show => "show",
            AgentAction::Check { .. } => "check",
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
    /// Error of a failed action. The other fields keep what the agent found before failing.
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
#[serde(rename_all = "camelCase")]
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
        AgentAction::Check { .. } => {
            return Err("check is a node-wide action without a pod".to_string());
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

/// One CNI configuration file of the node, as far as bandwidth is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniFile {
    /// File name inside the CNI configuration folder.
    pub file: String,
    /// Plugin types of the chain, in order.
    pub plugins: Vec<String>,
    /// Whether the chain contains the `bandwidth` plugin.
    pub bandwidth: bool,
    /// Whether that plugin declares `capabilities: {"bandwidth": true}`, without which the
    /// runtime does not pass the annotations to it.
    pub bandwidth_capability: bool,
    /// Read or parse error of the file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Findings of `agent check` on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeCheckReport {
    /// Always `check`.
    pub action: String,
    /// Error that stopped part of the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// CNI configuration folder read.
    pub cni_dir: String,
    /// CNI configuration files, in the order the runtime considers them (by name).
    pub cni_files: Vec<CniFile>,
    /// Interfaces with a clsact qdisc, owned by an eBPF datapath such as Cilium.
    pub clsact_interfaces: Vec<String>,
    /// veth interfaces with a TBF root qdisc.
    pub shaped_interfaces: Vec<String>,
}

/// Reads a CNI configuration (a `.conflist` with a `plugins` chain, or a single-plugin
/// `.conf`) and reports its plugin types and bandwidth support.
pub fn inspect_cni_config(file: &str, text: &str) -> CniFile {
    let mut result = CniFile {
        file: file.to_string(),
        plugins: Vec::new(),
        bandwidth: false,
        bandwidth_capability: false,
        error: None,
    };
    let config: serde_json::Value = match serde_json::from_str(text) {
        Ok(config) => config,
        Err(error) => {
            result.error = Some(format!("invalid JSON: {error}"));
            return result;
        }
    };
    let plugins: Vec<&serde_json::Value> = match config["plugins"].as_array() {
        Some(chain) => chain.iter().collect(),
        None => vec![&config],
    };
    for plugin in plugins {
        let kind = plugin["type"].as_str().unwrap_or("<no type>").to_string();
        if kind == "bandwidth" {
            result.bandwidth = true;
            result.bandwidth_capability |= plugin["capabilities"]["bandwidth"] == true;
        }
        result.plugins.push(kind);
    }
    result
}

/// Reads the node's CNI configuration folder and the qdiscs of the calling thread's
/// namespace (the node's, or `host_netns` when given).
pub async fn check_node(cni_dir: &Path, host_netns: Option<PathBuf>) -> NodeCheckReport {
    let mut report = NodeCheckReport {
        action: "check".to_string(),
        cni_dir: cni_dir.display().to_string(),
        ..NodeCheckReport::default()
    };
    match std::fs::read_dir(cni_dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.ends_with(".conflist") || n.ends_with(".conf") || n.ends_with(".json")
                })
                .collect();
            names.sort();
            for name in names {
                let file = match std::fs::read_to_string(cni_dir.join(&name)) {
                    Ok(text) => inspect_cni_config(&name, &text),
                    Err(error) => CniFile {
                        file: name.clone(),
                        plugins: Vec::new(),
                        bandwidth: false,
                        bandwidth_capability: false,
                        error: Some(error.to_string()),
                    },
                };
                report.cni_files.push(file);
            }
        }
        Err(error) => {
            report.error = Some(format!(
                "failed to read the CNI configuration folder {}: {error}",
                cni_dir.display()
            ));
        }
    }

    let interfaces = match host_netns {
        None => scan_qdiscs().await,
        Some(path) => {
            tokio::task::spawn_blocking(move || netns::block_on_in_netns(&path, scan_qdiscs))
                .await
                .map_err(|e| e.to_string())
                .and_then(|result| result)
                .and_then(|result| result)
        }
    };
    match interfaces {
        Ok((clsact, shaped)) => {
            report.clsact_interfaces = clsact;
            report.shaped_interfaces = shaped;
        }
        Err(error) => report.error = Some(error),
    }
    report
}

/// Lists the interfaces with a clsact qdisc and the veths with a TBF root.
async fn scan_qdiscs() -> Result<(Vec<String>, Vec<String>), String> {
    let netlink = Netlink::connect().map_err(|e| e.to_string())?;
    let mut clsact = Vec::new();
    let mut shaped = Vec::new();
    for link in netlink.links().await.map_err(|e| e.to_string())? {
        let qdiscs = netlink
            .qdiscs(link.index)
            .await
            .map_err(|e| e.to_string())?;
        if qdiscs.iter().any(|q| q.kind == "clsact") {
            clsact.push(link.name.clone());
        }
        if link.kind == "veth" && qdiscs.iter().any(|q| q.kind == "tbf") {
            shaped.push(link.name);
        }
    }
    Ok((clsact, shaped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_with_bandwidth_capability() {
        let text = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[
            {"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}},
            {"type":"bandwidth","capabilities":{"bandwidth":true}}]}"#;
        let file = inspect_cni_config("10-k8s.conflist", text);
        assert_eq!(file.plugins, ["bridge", "portmap", "bandwidth"]);
        assert!(file.bandwidth);
        assert!(file.bandwidth_capability);
    }

    #[test]
    fn bandwidth_without_capability_flagged() {
        let text = r#"{"plugins":[{"type":"ptp"},{"type":"bandwidth"}]}"#;
        let file = inspect_cni_config("a.conflist", text);
        assert!(file.bandwidth);
        assert!(!file.bandwidth_capability);
    }

    #[test]
    fn single_plugin_conf_read() {
        let file = inspect_cni_config("05-cilium.conf", r#"{"type":"cilium-cni"}"#);
        assert_eq!(file.plugins, ["cilium-cni"]);
        assert!(!file.bandwidth);
    }

    #[test]
    fn invalid_json_reported() {
        let file = inspect_cni_config("x.conf", "{");
        assert!(file.error.unwrap().starts_with("invalid JSON"));
    }

    #[test]
    fn report_serializes_camel_case() {
        let report = AgentReport::new(
            &AgentAction::Show,
            &AgentTarget {
                pod_uid: "u".into(),
                netns: None,
                host_netns: None,
            },
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["podUid"], "u");
        assert_eq!(json["action"], "show");
        assert!(json.get("error").is_none());
    }
}
