//! The `set` and `clear` commands: annotations on pods and pod templates, and with `--live`
//! the limits programmed through the node agent, rolled back per pod when the agent fails.

use std::io::Write;

use kube::Client;
use serde_json::{Map, Value};
use shared::{Error, KubeArgs, Result, ResultExt};

use crate::agent::{AgentAction, AgentReport};
use crate::cli::{AgentPodArgs, ClearArgs, SetArgs, TargetArgs};
use crate::live::{self, AgentPodSettings};
use crate::pods::{self, PodInfo};
use crate::rate::{Rate, human_rate};
use crate::target::{self, Target, WorkloadKind};

/// Rates a `set` or `clear` writes: `remove` deletes both annotations.
#[derive(Debug, Clone, Copy)]
struct Change {
    ingress: Option<Rate>,
    egress: Option<Rate>,
    remove: bool,
}

impl Change {
    fn annotations(&self) -> Map<String, Value> {
        target::annotation_changes(self.ingress, self.egress, self.remove)
    }

    fn describe(&self) -> String {
        if self.remove {
            return "bandwidth annotations removed".to_string();
        }
        let mut parts = Vec::new();
        if let Some(rate) = self.ingress {
            parts.push(format!(
                "ingress {} ({} bit/s)",
                human_rate(rate.bits_per_second()),
                rate.bits_per_second()
            ));
        }
        if let Some(rate) = self.egress {
            parts.push(format!(
                "egress {} ({} bit/s)",
                human_rate(rate.bits_per_second()),
                rate.bits_per_second()
            ));
        }
        parts.join(", ")
    }
}

/// Writes one line to stdout; a closed pipe ends the command quietly.
fn say(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context(|| "failed to write to stdout".to_string())
}

/// Runs `set`.
pub async fn set(kube: &KubeArgs, args: SetArgs) -> Result<()> {
    let change = Change {
        ingress: args.ingress,
        egress: args.egress,
        remove: false,
    };
    let action = AgentAction::Apply {
        ingress: args.ingress,
        egress: args.egress,
        burst: args.burst,
    };
    change_target(
        kube,
        &args.target,
        change,
        args.live.then_some(action),
        &args.agent,
    )
    .await
}

/// Runs `clear`.
pub async fn clear(kube: &KubeArgs, args: ClearArgs) -> Result<()> {
    let change = Change {
        ingress: None,
        egress: None,
        remove: true,
    };
    let action = args.live.then_some(AgentAction::Clear);
    change_target(kube, &args.target, change, action, &args.agent).await
}

async fn change_target(
    kube: &KubeArgs,
    target_args: &TargetArgs,
    change: Change,
    live: Option<AgentAction>,
    agent: &AgentPodArgs,
) -> Result<()> {
    let target = target::parse_target(
        target_args.target.as_deref(),
        target_args.selector.as_deref(),
    )
    .map_err(Error::usage)?;
    let cluster = kube.load().await?;
    let client = cluster.client()?;
    let namespace = cluster.namespace.as_str();

    let pods = match &target {
        Target::Pod(name) => vec![pods::get_pod(&client, namespace, name).await?],
        Target::Selector(selector) => {
            let pods = pods::list_pods(&client, Some(namespace), Some(selector)).await?;
            if pods.is_empty() {
                return Err(Error::failed(format!(
                    "no pods match selector {selector:?} in namespace {namespace}"
                )));
            }
            pods
        }
        Target::Workload { kind, name } => {
            let pods =
                change_workload(&client, namespace, *kind, name, &change, live.is_some()).await?;
            if pods.is_empty() {
                if live.is_some() {
                    eprintln!(
                        "note: {}/{name} has no running pods to program",
                        kind.name()
                    );
                }
                return Ok(());
            }
            pods
        }
    };

    // Check every pod before changing any, so that bad input changes nothing.
    for pod in &pods {
        pods::check_shapeable(pod, live.is_some()).map_err(Error::failed)?;
    }
    let mut failures = Vec::new();
    for pod in &pods {
        if let Err(error) = change_pod(&client, pod, &change, live.as_ref(), agent).await {
            eprintln!("kubectl-bwlimit: error: {error}");
            failures.push(pod.name.clone());
        }
    }
    if live.is_none() && !change.remove {
        eprintln!(
            "note: the CNI bandwidth plugin reads these annotations only when a pod is created: \
             running pods keep their current limits until they are recreated, or pass --live to \
             program them now"
        );
    }
    match failures.len() {
        0 => Ok(()),
        n => Err(Error::failed(format!(
            "{n} of {} pods not changed: {}",
            pods.len(),
            failures.join(", ")
        ))),
    }
}

/// Annotates one pod and, with `live`, programs it through the agent. When the agent fails,
/// the pod's previous annotations are restored, so that the pod stays as it was.
async fn change_pod(
    client: &Client,
    pod: &PodInfo,
    change: &Change,
    live: Option<&AgentAction>,
    agent: &AgentPodArgs,
) -> Result<()> {
    pods::patch_pod(client, pod, &target::pod_patch(change.annotations())).await?;
    let Some(action) = live else {
        return say(&format!(
            "pod/{} annotated: {}",
            pod.name,
            change.describe()
        ));
    };

    let node = pod.node.clone().unwrap_or_default();
    let settings = AgentPodSettings::new(agent, &pod.namespace, &node, &pod.uid);
    match live::run_agent(client, &settings, action, agent.agent_timeout).await {
        Ok(report) if change.remove => say(&format!(
            "pod/{} annotations removed and limits cleared on node {node}: {}",
            pod.name,
            describe_report(&report)
        )),
        Ok(report) => say(&format!(
            "pod/{} annotated and programmed on node {node}: {}",
            pod.name,
            describe_report(&report)
        )),
        Err(error) => {
            let restore = target::restore_patch(&pod.annotations);
            let restored = pods::patch_pod(client, pod, &restore).await;
            let mut message = format!("pod/{}: {error}", pod.name);
            match restored {
                Ok(()) => message.push_str(" (annotations restored)"),
                Err(restore_error) => message.push_str(&format!(
                    "; restoring the annotations also failed: {restore_error}"
                )),
            }
            Err(Error::failed(message))
        }
    }
}

/// Summarises what the agent found and programmed.
pub fn describe_report(report: &AgentReport) -> String {
    let host = report
        .host_interface
        .as_ref()
        .map_or("?".to_string(), |i| i.name.clone());
    let Some(state) = &report.state else {
        return format!("host interface {host}");
    };
    let ingress = state
        .ingress
        .map_or("none".to_string(), |p| human_rate(p.rate_bits()));
    let egress = match (&state.egress, &state.ifb) {
        (Some(params), Some(ifb)) => format!("{} (through {ifb})", human_rate(params.rate_bits())),
        _ => "none".to_string(),
    };
    format!("host interface {host}, ingress {ingress}, egress {egress}")
}

/// Annotates a workload's pod template and returns the pods that still need a change: its
/// running pods for `live`, or for a started Job, whose template is immutable, its pods.
async fn change_workload(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    change: &Change,
    live: bool,
) -> Result<Vec<PodInfo>> {
    let object = pods::get_workload(client, namespace, kind, name).await?;
    if object.data["spec"]["template"]["spec"]["hostNetwork"] == true {
        return Err(Error::failed(format!(
            "{}/{name} runs hostNetwork pods: they share the node's network interfaces, so no \
             per-pod limit can apply",
            kind.name()
        )));
    }
    let selector = pods::selector_string(&object.data["spec"]["selector"])
        .map_err(|e| Error::failed(format!("{}/{name}: {e}", kind.name())))?;

    let patch = target::template_patch(change.annotations());
    let patched = pods::patch_workload(client, namespace, kind, name, &patch).await;
    if kind == WorkloadKind::Job && patched.as_ref().err().and_then(Error::api_status) == Some(422)
    {
        // The API server rejects pod template changes of a Job once it has started, so the
        // Job's own pods carry the annotations instead.
        eprintln!(
            "note: the pod template of job/{name} is immutable once the Job has started: \
             annotating its pods instead, and pods it creates later get no limit"
        );
        let pods = pods::list_pods(client, Some(namespace), Some(&selector)).await?;
        if pods.is_empty() {
            return Err(Error::failed(format!(
                "job/{name} has no pods to annotate and its pod template is immutable"
            )));
        }
        return Ok(pods
            .into_iter()
            .filter(|p| !live || p.phase == "Running")
            .collect());
    }
    patched?;

    say(&format!(
        "{}/{name} pod template annotated: {}",
        kind.name(),
        change.describe()
    ))?;
    if kind.rolls_pods() {
        eprintln!(
            "note: the {} replaces its pods to apply the new template",
            kind.name()
        );
    } else if !live {
        eprintln!(
            "note: a {} does not replace its pods when its template changes: running pods keep \
             their limits unless --live programs them",
            kind.name()
        );
    }
    if !live {
        return Ok(Vec::new());
    }
    let pods = pods::list_pods(client, Some(namespace), Some(&selector)).await?;
    Ok(pods.into_iter().filter(|p| p.phase == "Running").collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::InterfaceRef;
    use crate::rate::parse_rate;
    use crate::shaping::ShapingState;
    use crate::tbf::TbfParams;

    #[test]
    fn change_describes_rates_both_ways() {
        let change = Change {
            ingress: Some(parse_rate("20M").unwrap()),
            egress: Some(parse_rate("1Mi").unwrap()),
            remove: false,
        };
        assert_eq!(
            change.describe(),
            "ingress 20Mbit/s (20000000 bit/s), egress 1048.576kbit/s (1048576 bit/s)"
        );
    }

    #[test]
    fn report_summary_names_interfaces() {
        let params = TbfParams {
            rate_bytes: 2_500_000,
            burst_bytes: 12_500,
            limit_bytes: 90_000,
        };
        let report = AgentReport {
            action: "apply".into(),
            pod_uid: "u".into(),
            error: None,
            netns: None,
            pod_interface: None,
            host_interface: Some(InterfaceRef {
                name: "veth1".into(),
                index: 3,
            }),
            requested: None,
            previous: None,
            state: Some(ShapingState {
                ingress: Some(params),
                egress: Some(params),
                ifb: Some("bwl0".into()),
                qdiscs: vec![],
                filters: vec![],
            }),
        };
        assert_eq!(
            describe_report(&report),
            "host interface veth1, ingress 20Mbit/s, egress 20Mbit/s (through bwl0)"
        );
    }
}
