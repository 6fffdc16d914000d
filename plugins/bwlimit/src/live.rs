//! Runs the node agent as a short-lived pod on a target pod's node: builds its spec, waits for
//! it to finish, reads its report from the pod log, and deletes it, also on error or Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, HostPathVolumeSource, Pod, PodSpec, ResourceRequirements,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use shared::{Error, Result, ResultExt};

use crate::agent::{AgentAction, AgentReport};
use crate::cli::AgentPodArgs;

/// Label on every agent pod, to find leftovers: `kubectl get pods -A -l` with it.
pub const AGENT_LABEL: &str = "app.kubernetes.io/name";
/// Value of [`AGENT_LABEL`].
pub const AGENT_LABEL_VALUE: &str = "kubectl-bwlimit-agent";
/// Label naming the UID of the pod the agent works on.
pub const TARGET_UID_LABEL: &str = "bwlimit.kubectl-plugins.io/pod-uid";
/// Mount path of the node's CNI configuration inside the agent pod of `check`.
pub const CNI_MOUNT: &str = "/host/etc/cni/net.d";
/// Seconds after which the kubelet stops an agent pod that has not finished.
const ACTIVE_DEADLINE_SECONDS: i64 = 300;
/// Interval between two reads of the agent pod's phase.
const POLL_INTERVAL: Duration = Duration::from_millis(300);

/// Placement and image of an agent pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPodSettings {
    /// Container image.
    pub image: String,
    /// Namespace of the agent pod.
    pub namespace: String,
    /// Node to run on.
    pub node: String,
    /// UID of the target pod, or empty for a node-wide check.
    pub target_uid: String,
    /// Network namespace file passed with `--netns` (tests only).
    pub netns_override: Option<PathBuf>,
    /// Network namespace file passed with `--host-netns` (tests only).
    pub host_netns_override: Option<PathBuf>,
}

impl AgentPodSettings {
    /// Builds the settings for a target pod from the command's flags.
    pub fn new(flags: &AgentPodArgs, pod_namespace: &str, node: &str, target_uid: &str) -> Self {
        AgentPodSettings {
            image: flags.agent_image.clone(),
            namespace: flags
                .agent_namespace
                .clone()
                .unwrap_or_else(|| pod_namespace.to_string()),
            node: node.to_string(),
            target_uid: target_uid.to_string(),
            netns_override: flags.agent_netns_override.clone(),
            host_netns_override: flags.agent_host_netns_override.clone(),
        }
    }
}

/// Returns the agent's command line for an action.
pub fn agent_command(action: &AgentAction, settings: &AgentPodSettings) -> Vec<String> {
    let mut command = vec![
        "kubectl-bwlimit".to_string(),
        "agent".to_string(),
        action.name().to_string(),
    ];
    if let AgentAction::Check { cni_dir } = action {
        if let Some(dir) = cni_dir {
            command.extend(["--cni-dir".to_string(), dir.display().to_string()]);
        }
    } else {
        command.extend(["--pod-uid".to_string(), settings.target_uid.clone()]);
    }
    if let AgentAction::Apply {
        ingress,
        egress,
        burst,
    } = action
    {
        // Exact bit/s, so that the agent parses the same number the plugin validated.
        if let Some(rate) = ingress {
            command.extend(["--ingress".to_string(), rate.bits_per_second().to_string()]);
        }
        if let Some(rate) = egress {
            command.extend(["--egress".to_string(), rate.bits_per_second().to_string()]);
        }
        if let Some(bytes) = burst {
            command.extend(["--burst".to_string(), bytes.to_string()]);
        }
    }
    if let Some(path) = settings
        .netns_override
        .as_ref()
        .filter(|_| !matches!(action, AgentAction::Check { .. }))
    {
        command.extend(["--netns".to_string(), path.display().to_string()]);
    }
    if let Some(path) = &settings.host_netns_override {
        command.extend(["--host-netns".to_string(), path.display().to_string()]);
    }
    command
}

/// Builds the agent pod. It runs on the target's node in the node's network and PID
/// namespaces, never privileged, tolerating every taint, and never restarted. It gets only
/// NET_ADMIN (netlink changes), SYS_ADMIN (`setns` into the pod's network namespace) and
/// SYS_PTRACE (opening another process's `/proc/<pid>/ns/net`). With `mount_cni_config` the node's `/etc/cni/net.d` is
/// mounted read-only at [`CNI_MOUNT`].
pub fn agent_pod(settings: &AgentPodSettings, command: Vec<String>, mount_cni_config: bool) -> Pod {
    let mut labels = BTreeMap::from([
        (AGENT_LABEL.to_string(), AGENT_LABEL_VALUE.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "kubectl-bwlimit".to_string(),
        ),
    ]);
    if !settings.target_uid.is_empty() {
        labels.insert(TARGET_UID_LABEL.to_string(), settings.target_uid.clone());
    }
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity("10m".to_string())),
        ("memory".to_string(), Quantity("32Mi".to_string())),
    ]);

    Pod {
        metadata: ObjectMeta {
            generate_name: Some("bwlimit-agent-".to_string()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(settings.node.clone()),
            host_network: Some(true),
            host_pid: Some(true),
            restart_policy: Some("Never".to_string()),
            active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".to_string()),
                ..Toleration::default()
            }]),
            containers: vec![Container {
                name: "agent".to_string(),
                image: Some(settings.image.clone()),
                command: Some(command),
                security_context: Some(SecurityContext {
                    privileged: Some(false),
                    allow_privilege_escalation: Some(false),
                    run_as_user: Some(0),
                    capabilities: Some(Capabilities {
                        add: Some(vec![
                            "NET_ADMIN".to_string(),
                            "SYS_ADMIN".to_string(),
                            "SYS_PTRACE".to_string(),
                        ]),
                        drop: Some(vec!["ALL".to_string()]),
                    }),
                    ..SecurityContext::default()
                }),
                resources: Some(ResourceRequirements {
                    requests: Some(resources.clone()),
                    limits: Some(resources),
                    ..ResourceRequirements::default()
                }),
                volume_mounts: mount_cni_config.then(|| {
                    vec![VolumeMount {
                        name: "cni-config".to_string(),
                        mount_path: CNI_MOUNT.to_string(),
                        read_only: Some(true),
                        ..VolumeMount::default()
                    }]
                }),
                ..Container::default()
            }],
            volumes: mount_cni_config.then(|| {
                vec![Volume {
                    name: "cni-config".to_string(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/etc/cni/net.d".to_string(),
                        type_: Some("Directory".to_string()),
                    }),
                    ..Volume::default()
                }]
            }),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Finds the agent's report in its log: the last line that is a JSON object with an
/// `action` field. The log also contains the agent's stderr, so other lines are skipped.
pub fn report_from_log(log: &str) -> Option<serde_json::Value> {
    log.lines()
        .rev()
        .filter(|line| line.trim_start().starts_with('{'))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|value| value["action"].is_string())
}

/// Deletes the agent pod when dropped, unless [`PodGuard::delete`] already did.
struct PodGuard {
    api: Api<Pod>,
    name: Option<String>,
}

impl PodGuard {
    async fn delete(&mut self) -> Result<()> {
        let Some(name) = self.name.take() else {
            return Ok(());
        };
        match self.api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error).context(|| format!("failed to delete agent pod {name}")),
        }
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        // Reached only when the command ends before `delete` ran (an early return or a
        // cancelled future); finish the deletion on the runtime in the background.
        if let Some(name) = self.name.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let api = self.api.clone();
            handle.spawn(async move {
                if let Err(error) = api.delete(&name, &DeleteParams::background()).await {
                    tracing::warn!(pod = %name, %error, "failed to delete agent pod");
                }
            });
        }
    }
}

/// Runs one agent pod for a pod-level action and returns its report.
pub async fn run_agent(
    client: &kube::Client,
    settings: &AgentPodSettings,
    action: &AgentAction,
    timeout: Duration,
) -> Result<AgentReport> {
    let report = run_agent_raw(client, settings, action, timeout).await?;
    serde_json::from_value(report).map_err(|e| {
        Error::failed(format!(
            "invalid report from the agent on node {}: {e}",
            settings.node
        ))
    })
}

/// Runs one agent pod to completion and returns its JSON report. The pod is deleted
/// afterwards, also when waiting fails, times out or Ctrl-C interrupts it. A report with an
/// `error` field is returned as that error.
pub async fn run_agent_raw(
    client: &kube::Client,
    settings: &AgentPodSettings,
    action: &AgentAction,
    timeout: Duration,
) -> Result<serde_json::Value> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &settings.namespace);
    let mount_cni_config = matches!(action, AgentAction::Check { cni_dir: None });
    let pod = agent_pod(settings, agent_command(action, settings), mount_cni_config);
    let created = api.create(&PostParams::default(), &pod).await.context(|| {
        format!(
            "failed to create the agent pod in namespace {} (the namespace must admit \
             hostNetwork/hostPID pods with NET_ADMIN, see --agent-namespace)",
            settings.namespace
        )
    })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(pod = %name, node = %settings.node, "started agent pod");
    let mut guard = PodGuard {
        api: api.clone(),
        name: Some(name.clone()),
    };

    let outcome = tokio::select! {
        outcome = wait_and_read(&api, &name, timeout) => outcome,
        _ = tokio::signal::ctrl_c() => Err(Error::failed(format!(
            "interrupted while agent pod {name} was running"
        ))),
    };
    let deleted = guard.delete().await;

    let (phase, log) = outcome?;
    deleted?;
    match report_from_log(&log) {
        Some(report) => match report["error"].as_str() {
            Some(error) => Err(Error::failed(format!(
                "agent on node {} failed: {error}",
                settings.node
            ))),
            None => Ok(report),
        },
        None => Err(Error::failed(format!(
            "agent pod {name} on node {} ended in phase {phase} without a report; its log ends with: {}",
            settings.node,
            log_tail(&log)
        ))),
    }
}

/// Waits until the pod has finished, then returns its phase and log.
async fn wait_and_read(api: &Api<Pod>, name: &str, timeout: Duration) -> Result<(String, String)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let phase = loop {
        let pod = api
            .get(name)
            .await
            .context(|| format!("failed to read agent pod {name}"))?;
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            break phase;
        }
        if let Some(reason) = image_problem(&pod) {
            return Err(Error::failed(format!(
                "agent pod {name} cannot start: {reason}: check --agent-image"
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "timed out after {}s waiting for agent pod {name} (phase {}): raise --agent-timeout \
                 or check the node",
                timeout.as_secs(),
                if phase.is_empty() { "unknown" } else { &phase }
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };

    let log = api
        .logs(name, &LogParams::default())
        .await
        .context(|| format!("failed to read the log of agent pod {name}"))?;
    Ok((phase, log))
}

/// Returns the waiting reason of a container that cannot start because of its image.
fn image_problem(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|status| {
        let waiting = status.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        matches!(
            reason,
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName"
        )
        .then(|| match &waiting.message {
            Some(message) => format!("{reason}: {message}"),
            None => reason.to_string(),
        })
    })
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(3).collect();
    if lines.is_empty() {
        return "(empty log)".to_string();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::parse_rate;

    fn settings() -> AgentPodSettings {
        AgentPodSettings {
            image: "example.test/agent:1".into(),
            namespace: "shop".into(),
            node: "node-2".into(),
            target_uid: "uid-1".into(),
            netns_override: None,
            host_netns_override: None,
        }
    }

    #[test]
    fn command_carries_exact_rates() {
        let action = AgentAction::Apply {
            ingress: Some(parse_rate("1.5M").unwrap()),
            egress: None,
            burst: Some(65_536),
        };
        assert_eq!(
            agent_command(&action, &settings()),
            [
                "kubectl-bwlimit",
                "agent",
                "apply",
                "--pod-uid",
                "uid-1",
                "--ingress",
                "1500000",
                "--burst",
                "65536"
            ]
        );
    }

    #[test]
    fn command_passes_test_overrides() {
        let mut settings = settings();
        settings.netns_override = Some("/run/netns/a".into());
        settings.host_netns_override = Some("/run/netns/b".into());
        let command = agent_command(&AgentAction::Show, &settings);
        assert_eq!(
            command[3..],
            [
                "--pod-uid",
                "uid-1",
                "--netns",
                "/run/netns/a",
                "--host-netns",
                "/run/netns/b"
            ]
        );
    }

    #[test]
    fn pod_runs_on_node_with_host_namespaces() {
        let pod = agent_pod(&settings(), vec!["kubectl-bwlimit".into()], false);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-2"));
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(spec.host_pid, Some(true));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.active_deadline_seconds, Some(ACTIVE_DEADLINE_SECONDS));
        let tolerations = spec.tolerations.unwrap();
        assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
        assert_eq!(tolerations[0].key, None);
    }

    #[test]
    fn pod_has_only_needed_capabilities() {
        let pod = agent_pod(&settings(), vec![], false);
        let container = &pod.spec.unwrap().containers[0];
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.privileged, Some(false));
        let capabilities = security.capabilities.as_ref().unwrap();
        assert_eq!(
            capabilities.add.as_deref().unwrap(),
            ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]
        );
        assert_eq!(capabilities.drop.as_deref().unwrap(), ["ALL"]);
        assert_eq!(container.image.as_deref(), Some("example.test/agent:1"));
    }

    #[test]
    fn pod_labelled_for_lookup() {
        let pod = agent_pod(&settings(), vec![], false);
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[AGENT_LABEL], AGENT_LABEL_VALUE);
        assert_eq!(labels[TARGET_UID_LABEL], "uid-1");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn check_pod_mounts_cni_config_read_only() {
        let action = AgentAction::Check { cni_dir: None };
        let pod = agent_pod(&settings(), agent_command(&action, &settings()), true);
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.containers[0].command.as_deref().unwrap(),
            ["kubectl-bwlimit", "agent", "check"]
        );
        let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(mount.mount_path, CNI_MOUNT);
        assert_eq!(mount.read_only, Some(true));
        let volume = &spec.volumes.unwrap()[0];
        assert_eq!(volume.host_path.as_ref().unwrap().path, "/etc/cni/net.d");
    }

    #[test]
    fn report_found_after_other_lines() {
        let log = "2026-01-01 WARN something\n{\"action\":\"show\",\"podUid\":\"u\"}\nkubectl-bwlimit: error: x\n";
        let report = report_from_log(log).unwrap();
        assert_eq!(report["action"], "show");
        assert_eq!(report["podUid"], "u");
        assert!(report_from_log("no json here\n{broken\n{\"other\":1}").is_none());
    }
}
