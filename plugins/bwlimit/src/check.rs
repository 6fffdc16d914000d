//! The `check` command: whether the cluster honours bandwidth annotations, as far as the API
//! shows (CNI daemon sets, Cilium's bandwidth manager) and, with `--node`, as far as an agent
//! on that node can read (the CNI chain and clsact qdiscs).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use shared::{Error, KubeArgs, Result, ResultExt};

use crate::agent::{AgentAction, NodeCheckReport};
use crate::cli::CheckArgs;
use crate::live::{self, AgentPodSettings};

/// Severity of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Limits may not apply, or may conflict.
    Warning,
    /// Limits cannot apply.
    Problem,
}

/// One line of the check's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// Finding and its meaning for the limits.
    pub text: String,
}

fn finding(level: Level, text: impl Into<String>) -> Finding {
    Finding {
        level,
        text: text.into(),
    }
}

/// Known CNI daemon sets, by name prefix, and what they mean for the annotations.
const CNI_DAEMON_SETS: [(&str, &str); 8] = [
    ("cilium", "Cilium"),
    ("calico-node", "Calico"),
    ("kube-flannel", "Flannel"),
    ("kindnet", "kindnet"),
    ("weave-net", "Weave Net"),
    ("aws-node", "Amazon VPC CNI"),
    ("antrea-agent", "Antrea"),
    ("kube-router", "kube-router"),
];

/// Names the CNI plugins whose daemon sets are present.
pub fn detect_cni(daemon_sets: &[String]) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = CNI_DAEMON_SETS
        .iter()
        .filter(|(prefix, _)| daemon_sets.iter().any(|name| name.starts_with(prefix)))
        .map(|(_, product)| *product)
        .collect();
    found.dedup();
    found
}

/// Judges Cilium's `cilium-config` setting `enable-bandwidth-manager`. Cilium's bandwidth
/// manager guide (Documentation/gettingstarted/bandwidth-manager.rst) states that it enforces
/// only the egress annotation.
pub fn judge_cilium(bandwidth_manager: Option<&str>) -> Finding {
    match bandwidth_manager {
        Some("true") => finding(
            Level::Warning,
            "Cilium's bandwidth manager is enabled: Cilium enforces kubernetes.io/egress-bandwidth \
             itself with eBPF and ignores kubernetes.io/ingress-bandwidth, and its clsact hooks \
             conflict with the ifb redirect --live uses",
        ),
        _ => finding(
            Level::Warning,
            "Cilium without its bandwidth manager: the annotations apply only if the bandwidth \
             plugin is chained in Cilium's CNI configuration (check with --node)",
        ),
    }
}

/// Judges what an agent found on a node.
pub fn judge_node(node: &str, report: &NodeCheckReport) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(error) = &report.error {
        findings.push(finding(Level::Problem, format!("node {node}: {error}")));
    }
    // The runtime uses the first configuration file in name order.
    match report.cni_files.iter().find(|f| f.error.is_none()) {
        None => findings.push(finding(
            Level::Problem,
            format!("node {node}: no readable CNI configuration in {}", report.cni_dir),
        )),
        Some(file) if file.bandwidth && file.bandwidth_capability => findings.push(finding(
            Level::Ok,
            format!(
                "node {node}: {} chains {} with the bandwidth capability",
                file.file,
                file.plugins.join(" -> ")
            ),
        )),
        Some(file) if file.bandwidth => findings.push(finding(
            Level::Problem,
            format!(
                "node {node}: {} has the bandwidth plugin without capabilities {{\"bandwidth\": true}}, \
                 so the runtime never passes the annotations to it",
                file.file
            ),
        )),
        Some(file) => findings.push(finding(
            Level::Problem,
            format!(
                "node {node}: {} chains {} without the bandwidth plugin: annotations have no effect \
                 at pod creation; only --live limits apply",
                file.file,
                file.plugins.join(" -> ")
            ),
        )),
    }
    if !report.clsact_interfaces.is_empty() {
        findings.push(finding(
            Level::Warning,
            format!(
                "node {node}: clsact qdiscs on {} (an eBPF datapath): --live cannot shape egress on \
                 these interfaces",
                report.clsact_interfaces.join(", ")
            ),
        ));
    }
    findings
}

/// Runs `check`.
pub async fn check(kube: &KubeArgs, args: CheckArgs) -> Result<()> {
    let cluster = kube.load().await?;
    let client = cluster.client()?;
    let mut findings = Vec::new();

    let daemon_sets: Api<DaemonSet> = Api::all(client.clone());
    match daemon_sets.list(&ListParams::default()).await {
        Ok(list) => {
            let names: Vec<String> = list
                .items
                .iter()
                .filter_map(|d| d.metadata.name.clone())
                .collect();
            let cni = detect_cni(&names);
            if cni.is_empty() {
                findings.push(finding(
                    Level::Warning,
                    "no known CNI daemon set found: check the node's CNI chain with --node",
                ));
            } else {
                findings.push(finding(Level::Ok, format!("CNI: {}", cni.join(", "))));
            }
            if cni.contains(&"Cilium") {
                let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
                let config = config_maps
                    .get_opt("cilium-config")
                    .await
                    .context(|| "failed to read ConfigMap kube-system/cilium-config".to_string())?;
                let value = config
                    .as_ref()
                    .and_then(|c| c.data.as_ref())
                    .and_then(|d| d.get("enable-bandwidth-manager").cloned());
                findings.push(judge_cilium(value.as_deref()));
            }
        }
        Err(error) => findings.push(finding(
            Level::Warning,
            format!("cannot list daemon sets ({error}): the CNI plugin is unknown"),
        )),
    }

    if let Some(node) = &args.node {
        let namespace = args
            .agent
            .agent_namespace
            .clone()
            .unwrap_or_else(|| cluster.namespace.clone());
        let mut settings = AgentPodSettings::new(&args.agent, &namespace, node, "");
        settings.netns_override = None;
        let action = AgentAction::Check {
            cni_dir: args.agent.agent_cni_dir_override.clone(),
        };
        let raw =
            live::run_agent_raw(&client, &settings, &action, args.agent.agent_timeout).await?;
        let report: NodeCheckReport = serde_json::from_value(raw)
            .map_err(|e| Error::failed(format!("invalid check report from node {node}: {e}")))?;
        findings.extend(judge_node(node, &report));
    }

    let mut text = String::new();
    for item in &findings {
        let label = match item.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "problem",
        };
        text.push_str(&format!("{label:<8} {}\n", item.text));
    }
    shared::output::print(&text)?;
    if findings.iter().any(|f| f.level == Level::Problem) {
        return Err(Error::Exit(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::CniFile;

    fn file(plugins: &[&str], bandwidth: bool, capability: bool) -> CniFile {
        CniFile {
            file: "10-net.conflist".into(),
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
            bandwidth,
            bandwidth_capability: capability,
            error: None,
        }
    }

    fn report(files: Vec<CniFile>, clsact: &[&str]) -> NodeCheckReport {
        NodeCheckReport {
            action: "check".into(),
            error: None,
            cni_dir: "/host/etc/cni/net.d".into(),
            cni_files: files,
            clsact_interfaces: clsact.iter().map(|c| c.to_string()).collect(),
            shaped_interfaces: vec![],
        }
    }

    #[test]
    fn cni_detected_by_daemon_set_name() {
        let names = vec![
            "cilium".to_string(),
            "cilium-envoy".into(),
            "kube-proxy".into(),
        ];
        assert_eq!(detect_cni(&names), ["Cilium"]);
        assert!(detect_cni(&["kube-proxy".to_string()]).is_empty());
    }

    #[test]
    fn chain_with_capability_is_ok() {
        let findings = judge_node(
            "n1",
            &report(vec![file(&["ptp", "bandwidth"], true, true)], &[]),
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].level, Level::Ok);
        assert_eq!(
            findings[0].text,
            "node n1: 10-net.conflist chains ptp -> bandwidth with the bandwidth capability"
        );
    }

    #[test]
    fn missing_capability_is_a_problem() {
        let findings = judge_node(
            "n1",
            &report(vec![file(&["ptp", "bandwidth"], true, false)], &[]),
        );
        assert_eq!(findings[0].level, Level::Problem);
        assert!(findings[0].text.contains("without capabilities"));
    }

    #[test]
    fn chain_without_bandwidth_is_a_problem() {
        let findings = judge_node(
            "n1",
            &report(vec![file(&["cilium-cni"], false, false)], &["lxc1"]),
        );
        assert_eq!(findings[0].level, Level::Problem);
        assert_eq!(findings[1].level, Level::Warning);
        assert!(findings[1].text.contains("clsact qdiscs on lxc1"));
    }

    #[test]
    fn cilium_bandwidth_manager_flagged() {
        assert!(
            judge_cilium(Some("true"))
                .text
                .contains("bandwidth manager is enabled")
        );
        assert!(
            judge_cilium(None)
                .text
                .contains("without its bandwidth manager")
        );
    }
}
