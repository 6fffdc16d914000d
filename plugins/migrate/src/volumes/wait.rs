//! Waiting for an agent pod: success, failure with the reason, or a fast stop when it cannot be
//! scheduled or started, so that no restore waits for hours.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client};

/// Waiting reasons of a container that will not start without a change by the user.
const STUCK_WAITING_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// State of an agent pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    Succeeded,
    /// Ended, or cannot go on, with the reason.
    Failed(String),
    /// Not scheduled; the text is the scheduler's message.
    Unschedulable(String),
    /// Still on its way.
    Pending,
}

/// Classifies a pod from its status; pure, so the rules are testable without a server.
pub fn pod_state(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Pending;
    };
    match status.phase.as_deref() {
        Some("Succeeded") => return PodState::Succeeded,
        Some("Failed") => {
            let mut reason = [status.reason.as_deref(), status.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            for container in status.container_statuses.iter().flatten() {
                if let Some(terminated) =
                    container.state.as_ref().and_then(|s| s.terminated.as_ref())
                {
                    let detail = match &terminated.message {
                        Some(message) => format!("exit code {}: {message}", terminated.exit_code),
                        None => format!("exit code {}", terminated.exit_code),
                    };
                    if !reason.is_empty() {
                        reason.push_str(", ");
                    }
                    reason.push_str(&detail);
                }
            }
            if reason.is_empty() {
                reason = "pod failed".to_string();
            }
            return PodState::Failed(reason);
        }
        _ => {}
    }

    for container in status.container_statuses.iter().flatten() {
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if STUCK_WAITING_REASONS.contains(&reason) {
                let message = waiting.message.as_deref().unwrap_or_default();
                return PodState::Failed(format!("container cannot start: {reason}: {message}"));
            }
        }
    }
    match unschedulable_message(status) {
        Some(message) => PodState::Unschedulable(message),
        None => PodState::Pending,
    }
}

/// State of a restored pod whose emptyDir volumes wait for their data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPodState {
    /// Scheduled, and its volumes are set up on the node: its init container has started.
    Ready { node: String, uid: String },
    /// Ended, or cannot start, with the reason.
    Failed(String),
    /// Not scheduled; the text is the scheduler's message.
    Unschedulable(String),
    /// Still on its way.
    Pending,
}

/// Classifies a restored pod that carries the init container `wait_container`. The kubelet sets
/// up a pod's volumes before its first init container starts, so a started init container
/// (or a Running pod) means the emptyDir folders exist on the node.
pub fn data_pod_state(pod: &Pod, wait_container: &str) -> DataPodState {
    let node = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.node_name.clone())
        .filter(|node| !node.is_empty());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(status) = &pod.status else {
        return DataPodState::Pending;
    };
    let ready = |node: Option<String>| match node {
        Some(node) => DataPodState::Ready {
            node,
            uid: uid.clone(),
        },
        None => DataPodState::Pending,
    };
    match status.phase.as_deref() {
        Some("Failed") => {
            let reason = [status.reason.as_deref(), status.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            return DataPodState::Failed(if reason.is_empty() {
                "pod failed".to_string()
            } else {
                reason
            });
        }
        Some("Running" | "Succeeded") => return ready(node),
        _ => {}
    }

    let wait = status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|container| container.name == wait_container)
        .and_then(|container| container.state.as_ref());
    if let Some(state) = wait {
        if state.running.is_some() || state.terminated.is_some() {
            return ready(node);
        }
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if STUCK_WAITING_REASONS.contains(&reason) {
                let message = waiting.message.as_deref().unwrap_or_default();
                return DataPodState::Failed(format!(
                    "init container {wait_container} cannot start: {reason}: {message}"
                ));
            }
        }
    }
    match unschedulable_message(status) {
        Some(message) => DataPodState::Unschedulable(message),
        None => DataPodState::Pending,
    }
}

/// Waits until a restored pod is scheduled and its volumes are set up, and returns its node
/// and UID. A failure, a long unschedulable state or the total limit ends the wait with the
/// reason and the pod's warning events.
pub async fn wait_for_data_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    wait_container: &str,
    limits: WaitLimits,
) -> Result<(String, String), String> {
    let classify = |pod: &Pod| match data_pod_state(pod, wait_container) {
        DataPodState::Ready { node, uid } => Step::Done((node, uid)),
        DataPodState::Failed(reason) => Step::Failed(reason),
        DataPodState::Unschedulable(message) => Step::Unschedulable(message),
        DataPodState::Pending => Step::Pending,
    };
    let timed_out = |seconds| {
        format!(
            "was not scheduled with its volumes set up within {seconds}s: raise --volume-timeout"
        )
    };
    poll_pod(client, namespace, name, limits, classify, timed_out).await
}

/// Limits of one wait.
#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    /// Time a pod may stay unschedulable before the wait fails (volume provisioning can
    /// make a pod unschedulable for a few seconds).
    pub unschedulable: Duration,
    /// Time the whole pod may take.
    pub total: Duration,
    /// Time between two reads of the pod.
    pub poll: Duration,
}

/// Waits until the pod succeeds. A failure, a long unschedulable state or the total limit
/// ends the wait with the reason and the pod's warning events.
pub async fn wait_for_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    limits: WaitLimits,
) -> Result<(), String> {
    let classify = |pod: &Pod| match pod_state(pod) {
        PodState::Succeeded => Step::Done(()),
        PodState::Failed(reason) => Step::Failed(reason),
        PodState::Unschedulable(message) => Step::Unschedulable(message),
        PodState::Pending => Step::Pending,
    };
    let timed_out = |seconds| format!("did not finish within {seconds}s: raise --volume-timeout");
    poll_pod(client, namespace, name, limits, classify, timed_out).await
}

/// Returns the scheduler's message when the pod is marked Unschedulable.
fn unschedulable_message(status: &k8s_openapi::api::core::v1::PodStatus) -> Option<String> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|condition| {
            condition.type_ == "PodScheduled"
                && condition.status == "False"
                && condition.reason.as_deref() == Some("Unschedulable")
        })
        .map(|condition| condition.message.clone().unwrap_or_default())
}

/// Outcome of one read of a pod during a wait.
enum Step<T> {
    Done(T),
    Failed(String),
    Unschedulable(String),
    Pending,
}

/// Reads the pod every `limits.poll` until `classify` reports it done, failed, or
/// unschedulable for longer than `limits.unschedulable`, or `limits.total` has passed.
/// `timed_out` words the total limit's message from its seconds.
async fn poll_pod<T>(
    client: &Client,
    namespace: &str,
    name: &str,
    limits: WaitLimits,
    classify: impl Fn(&Pod) -> Step<T>,
    timed_out: impl Fn(u64) -> String,
) -> Result<T, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut unschedulable_since: Option<Instant> = None;

    loop {
        let pod = pods
            .get(name)
            .await
            .map_err(|error| format!("failed to read pod {namespace}/{name}: {error}"))?;
        let failure = match classify(&pod) {
            Step::Done(value) => return Ok(value),
            Step::Failed(reason) => Some(format!("pod {namespace}/{name} failed: {reason}")),
            Step::Unschedulable(message) => {
                let since = *unschedulable_since.get_or_insert_with(Instant::now);
                (since.elapsed() >= limits.unschedulable)
                    .then(|| format!("pod {namespace}/{name} cannot be scheduled: {message}"))
            }
            Step::Pending => {
                unschedulable_since = None;
                None
            }
        };
        let failure = failure.or_else(|| {
            (started.elapsed() >= limits.total).then(|| {
                format!(
                    "pod {namespace}/{name} {}",
                    timed_out(limits.total.as_secs())
                )
            })
        });
        if let Some(message) = failure {
            return Err(with_events(client, namespace, name, message).await);
        }
        tokio::time::sleep(limits.poll).await;
    }
}

/// Appends the pod's warning events (taints, missing claims, image pulls) to a message.
async fn with_events(client: &Client, namespace: &str, name: &str, message: String) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.name={name}");
    let Ok(list) = events.list(&ListParams::default().fields(&selector)).await else {
        return message;
    };
    let warnings: Vec<String> = list
        .items
        .iter()
        .filter(|event| event.type_.as_deref() == Some("Warning"))
        .filter(|event| event.involved_object.name.as_deref() == Some(name))
        .map(|event| {
            format!(
                "{}: {}",
                event.reason.as_deref().unwrap_or("Event"),
                event.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if warnings.is_empty() {
        message
    } else {
        format!("{message} (events: {})", warnings.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn succeeded_pod() {
        assert_eq!(
            pod_state(&pod(serde_json::json!({"phase": "Succeeded"}))),
            PodState::Succeeded
        );
    }

    #[test]
    fn failed_pod_reports_exit_message() {
        let state = pod_state(&pod(serde_json::json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "agent", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "message": "wrong repository password"}}}]
        })));
        assert_eq!(
            state,
            PodState::Failed("exit code 1: wrong repository password".into())
        );
    }

    #[test]
    fn deadline_exceeded_names_the_reason() {
        let state = pod_state(&pod(serde_json::json!({
            "phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified deadline"
        })));
        assert_eq!(
            state,
            PodState::Failed(
                "DeadlineExceeded: Pod was active on the node longer than the specified deadline"
                    .into()
            )
        );
    }

    #[test]
    fn unschedulable_pod_carries_scheduler_message() {
        let state = pod_state(&pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}."}]
        })));
        assert_eq!(
            state,
            PodState::Unschedulable(
                "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}.".into()
            )
        );
    }

    #[test]
    fn image_pull_failure_fails_fast() {
        let state = pod_state(&pod(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "agent", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]
        })));
        assert_eq!(
            state,
            PodState::Failed(
                "container cannot start: ImagePullBackOff: Back-off pulling image".into()
            )
        );
    }

    const WAIT: &str = "kubectl-migrate-restore-wait";

    fn data_pod(node: Option<&str>, status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "new-uid"},
            "spec": {"nodeName": node, "containers": []},
            "status": status
        }))
        .unwrap()
    }

    fn init_status(state: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"phase": "Pending", "initContainerStatuses": [
            {"name": WAIT, "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}
        ]})
    }

    #[test]
    fn data_pod_ready_when_init_container_runs() {
        let pod = data_pod(
            Some("node-2"),
            init_status(serde_json::json!({"running": {}})),
        );
        assert_eq!(
            data_pod_state(&pod, WAIT),
            DataPodState::Ready {
                node: "node-2".into(),
                uid: "new-uid".into()
            }
        );
    }

    #[test]
    fn data_pod_pending_while_volumes_are_set_up() {
        let pod = data_pod(
            Some("node-2"),
            init_status(serde_json::json!({"waiting": {"reason": "PodInitializing"}})),
        );
        assert_eq!(data_pod_state(&pod, WAIT), DataPodState::Pending);
    }

    #[test]
    fn data_pod_running_counts_as_ready() {
        let pod = data_pod(Some("node-1"), serde_json::json!({"phase": "Running"}));
        assert!(matches!(
            data_pod_state(&pod, WAIT),
            DataPodState::Ready { .. }
        ));
    }

    #[test]
    fn data_pod_without_node_is_pending() {
        let pod = data_pod(None, serde_json::json!({"phase": "Pending"}));
        assert_eq!(data_pod_state(&pod, WAIT), DataPodState::Pending);
    }

    #[test]
    fn data_pod_image_pull_failure_names_init_container() {
        let pod = data_pod(
            Some("node-1"),
            init_status(
                serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
            ),
        );
        assert_eq!(
            data_pod_state(&pod, WAIT),
            DataPodState::Failed(
                "init container kubectl-migrate-restore-wait cannot start: ErrImagePull: not found"
                    .into()
            )
        );
    }

    #[test]
    fn data_pod_unschedulable_carries_message() {
        let pod = data_pod(
            None,
            serde_json::json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"}]}),
        );
        assert_eq!(
            data_pod_state(&pod, WAIT),
            DataPodState::Unschedulable("0/1 nodes are available".into())
        );
    }

    #[test]
    fn running_pod_is_pending() {
        assert_eq!(
            pod_state(&pod(serde_json::json!({"phase": "Running"}))),
            PodState::Pending
        );
    }
}
