//! Fetching the pods and workloads a command targets, and the checks that decide whether a
//! pod can be shaped.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use shared::{Error, Result, ResultExt};

use crate::target::{AnnotatedLimits, WorkloadKind};

/// Fields of a pod that the commands use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, which the agent uses to find the pod's processes.
    pub uid: String,
    /// Node the pod runs on, if scheduled.
    pub node: Option<String>,
    /// `status.phase`, empty when unknown.
    pub phase: String,
    /// Whether the pod uses the node's network namespace.
    pub host_network: bool,
    /// The pod's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl PodInfo {
    /// Extracts the fields from a pod object.
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let spec = pod.spec.as_ref();
        PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()),
            phase: pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        }
    }

    /// Returns the limits in the pod's annotations.
    pub fn limits(&self) -> AnnotatedLimits {
        AnnotatedLimits::from_annotations(Some(&self.annotations))
    }
}

/// Checks that a pod can carry limits: never a hostNetwork pod, and for `--live` a Running
/// pod with a node.
pub fn check_shapeable(pod: &PodInfo, live: bool) -> Result<(), String> {
    if pod.host_network {
        return Err(format!(
            "pod/{} uses hostNetwork: it shares the node's network interfaces, so no per-pod \
             limit can apply (the CNI plugin is not called for it either)",
            pod.name
        ));
    }
    if live {
        if pod.phase != "Running" {
            let phase = if pod.phase.is_empty() {
                "not yet scheduled"
            } else {
                &pod.phase
            };
            return Err(format!(
                "pod/{} is {phase}, not Running: --live programs running pods only; without \
                 --live the annotations apply when the pod's network is set up",
                pod.name
            ));
        }
        if pod.node.is_none() {
            return Err(format!(
                "pod/{} has no node yet: --live needs a scheduled pod",
                pod.name
            ));
        }
    }
    Ok(())
}

/// Converts a workload's `spec.selector` into label selector syntax (`a=b,c in (d,e)`).
pub fn selector_string(selector: &Value) -> Result<String, String> {
    let mut terms = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (key, value) in labels {
            terms.push(format!("{key}={}", value.as_str().unwrap_or_default()));
        }
    }
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let term = match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => return Err(format!("unsupported selector operator {other:?}")),
        };
        terms.push(term);
    }
    if terms.is_empty() {
        return Err("the workload has an empty selector".to_string());
    }
    Ok(terms.join(","))
}

/// Returns the API resource of a workload kind.
pub fn workload_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
        WorkloadKind::Job => ApiResource::erase::<Job>(&()),
    }
}

/// Reads one pod.
pub async fn get_pod(client: &Client, namespace: &str, name: &str) -> Result<PodInfo> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(pod)) => Ok(PodInfo::from_pod(&pod)),
        Ok(None) => Err(Error::failed(format!(
            "pod/{name} not found in namespace {namespace}: check the name and -n"
        ))),
        Err(error) => {
            Err(error).context(|| format!("failed to read pod/{name} in namespace {namespace}"))
        }
    }
}

/// Lists pods in one namespace or in all (`namespace` None), optionally by label selector.
pub async fn list_pods(
    client: &Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<PodInfo>> {
    let api: Api<Pod> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let where_ = namespace.map_or("all namespaces".to_string(), |n| format!("namespace {n}"));
    let pods = api
        .list(&params)
        .await
        .context(|| format!("failed to list pods in {where_}"))?;
    let mut infos: Vec<PodInfo> = pods.items.iter().map(PodInfo::from_pod).collect();
    infos.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(infos)
}

/// Reads a workload as a dynamic object.
pub async fn get_workload(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &workload_resource(kind));
    match api.get_opt(name).await {
        Ok(Some(object)) => Ok(object),
        Ok(None) => Err(Error::failed(format!(
            "{}/{name} not found in namespace {namespace}: check the name and -n",
            kind.name()
        ))),
        Err(error) => Err(error).context(|| {
            format!(
                "failed to read {}/{name} in namespace {namespace}",
                kind.name()
            )
        }),
    }
}

/// Applies a JSON merge patch to a workload.
pub async fn patch_workload(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    patch: &Value,
) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &workload_resource(kind));
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .context(|| {
            format!(
                "failed to annotate the pod template of {}/{name}",
                kind.name()
            )
        })?;
    Ok(())
}

/// Applies a JSON merge patch to a pod.
pub async fn patch_pod(client: &Client, pod: &PodInfo, patch: &Value) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    api.patch(&pod.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .context(|| {
            format!(
                "failed to annotate pod/{} in namespace {}",
                pod.name, pod.namespace
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(phase: &str, host_network: bool) -> PodInfo {
        PodInfo {
            namespace: "shop".into(),
            name: "web-0".into(),
            uid: "u".into(),
            node: Some("node-1".into()),
            phase: phase.into(),
            host_network,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn host_network_pods_rejected() {
        let error = check_shapeable(&pod("Running", true), false).unwrap_err();
        assert!(
            error.starts_with("pod/web-0 uses hostNetwork: it shares the node's network"),
            "{error}"
        );
    }

    #[test]
    fn live_needs_running_pod() {
        assert_eq!(check_shapeable(&pod("Running", false), true), Ok(()));
        assert_eq!(check_shapeable(&pod("Pending", false), false), Ok(()));
        let error = check_shapeable(&pod("Pending", false), true).unwrap_err();
        assert!(
            error.starts_with("pod/web-0 is Pending, not Running"),
            "{error}"
        );
        let error = check_shapeable(&pod("", false), true).unwrap_err();
        assert!(error.contains("not yet scheduled"), "{error}");
    }

    #[test]
    fn selectors_convert_to_text() {
        let selector = json!({
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        });
        assert_eq!(
            selector_string(&selector),
            Ok("app=web,tier=front,env in (a,b),!canary".to_string())
        );
        assert!(selector_string(&json!({})).is_err());
    }

    #[test]
    fn pod_fields_extracted() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "n", "uid": "1",
                         "annotations": {"kubernetes.io/ingress-bandwidth": "1M"}},
            "spec": {"nodeName": "node-1", "hostNetwork": true, "containers": []},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let info = PodInfo::from_pod(&pod);
        assert_eq!(info.node.as_deref(), Some("node-1"));
        assert!(info.host_network);
        assert_eq!(info.phase, "Running");
        assert!(info.limits().ingress.unwrap().is_ok());
    }
}
