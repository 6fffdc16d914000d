//! The simulated kubelet and scheduler: Node objects, pod placement by nodeName, nodeSelector,
//! taints and bound claims, and Running status with pod IPs. Containers of configured agent
//! images run as local processes, with their volumes mounted when the pod has claims. Pods
//! that name a kubelet root dir in an annotation get emptyDir folders there.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::KubeletOptions;
use super::handlers::Options;
use super::http::ServerState;
use super::meta;
use super::pod_volumes;
use super::status::{ApiError, Target};
use super::store::{EventType, Key, Store};

pub(crate) use super::process::pod_log;
use super::process::{LocalProcess, start_local_process};

/// Kubelet state shared by the server: options, pod IP counters and local processes.
pub(crate) struct Kubelet {
    pub options: Option<KubeletOptions>,
    /// Next pod IP offset per node.
    next_ip: Mutex<HashMap<String, u32>>,
    /// Local processes by (namespace, pod name).
    pub processes: Mutex<HashMap<(String, String), LocalProcess>>,
}

impl Kubelet {
    pub fn new(options: Option<KubeletOptions>) -> Kubelet {
        Kubelet {
            options,
            next_ip: Mutex::new(HashMap::new()),
            processes: Mutex::new(HashMap::new()),
        }
    }
}

impl ServerState {
    /// Replaces a pod's status through the status path, as a kubelet would.
    pub(crate) fn set_pod_status(
        &self,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<String, String> {
        let resource = self
            .registry()
            .get("", "v1", "pods")
            .expect("built in")
            .clone();
        let mut store = self.lock_store();
        let old = store
            .get(&Key::new("", "pods", namespace, name))
            .ok_or_else(|| format!("pods \"{name}\" not found in namespace {namespace}"))?;
        let mut object = (*old).clone();
        object["status"] = status;
        let options = Options {
            field_manager: "test".to_string(),
            subresource: Some("status".to_string()),
            ..Options::default()
        };
        let stored = super::handlers::write_update(
            self, &mut store, &resource, &old, object, &options, "Update",
        )
        .map_err(|error| error.message)?;
        Ok(stored["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Kills every local process the kubelet started (on server drop).
    pub(crate) fn kill_local_processes(&self) {
        let mut processes = self
            .kubelet
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (_, process) in processes.drain() {
            process.kill();
        }
    }
}

/// Returns the pod CIDR of the node at `index` when its spec leaves it empty: 10.244.<index>.0/24.
fn node_pod_cidr(spec: &super::NodeSpec, index: usize) -> String {
    if spec.pod_cidr.is_empty() {
        format!("10.244.{index}.0/24")
    } else {
        spec.pod_cidr.clone()
    }
}

/// Returns the simulated node's InternalIP, 172.18.0.<index + 2>. The address only appears in
/// Node status, and nothing is ever sent to it.
fn node_address(index: usize) -> String {
    format!("172.18.0.{}", index + 2)
}

/// Creates the configured Node objects (kept when a state folder already has them).
pub(crate) fn register_nodes(state: &ServerState) {
    let Some(options) = &state.kubelet.options else {
        return;
    };
    let resource = state
        .registry()
        .get("", "v1", "nodes")
        .expect("built in")
        .clone();
    let mut store = state.lock_store();
    for (index, spec) in options.nodes.iter().enumerate() {
        if store.contains(&Key::new("", "nodes", "", &spec.name)) {
            continue;
        }
        let mut labels = json!({
            "kubernetes.io/hostname": spec.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        });
        for (key, value) in &spec.labels {
            labels[key] = json!(value);
        }
        let taints: Vec<Value> = spec
            .taints
            .iter()
            .map(|(key, value, effect)| {
                let mut taint = json!({"key": key, "effect": effect});
                if !value.is_empty() {
                    taint["value"] = json!(value);
                }
                taint
            })
            .collect();
        let now = meta::now();
        let mut node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {"podCIDR": node_pod_cidr(spec, index), "podCIDRs": [node_pod_cidr(spec, index)]},
            "status": {
                "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                     "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                     "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}
                ],
                "addresses": [
                    {"type": "InternalIP", "address": node_address(index)},
                    {"type": "Hostname", "address": spec.name}
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": format!("{:032x}", index + 1),
                    "systemUUID": meta::new_uid(),
                    "bootID": meta::new_uid(),
                    "kernelVersion": "6.1.0-test",
                    "osImage": spec.os_image,
                    "containerRuntimeVersion": spec.container_runtime_version,
                    "kubeletVersion": spec.kubelet_version,
                    "kubeProxyVersion": spec.kubelet_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64"
                }
            }
        });
        if !taints.is_empty() {
            node["spec"]["taints"] = Value::Array(taints);
        }
        let options = Options {
            field_manager: "kubelet".to_string(),
            ..Options::default()
        };
        // Status is part of the created object because the kubelet registers it whole.
        let status = node["status"].clone();
        match super::handlers::create_object(state, &mut store, &resource, "", node, &options) {
            Ok(created) => {
                let mut with_status = (*created).clone();
                with_status["status"] = status;
                store.put(
                    Key::new("", "nodes", "", &spec.name),
                    with_status,
                    EventType::Modified,
                );
            }
            Err(error) => eprintln!(
                "test-apiserver: failed to register node {}: {}",
                spec.name, error.message
            ),
        }
    }
}

/// Schedules a new pod shortly after its creation, as the scheduler and kubelet would.
pub(crate) fn pod_created(state: &ServerState, pod: &Arc<Value>) {
    if state.kubelet.options.is_none() {
        return;
    }
    let Some(state) = state.arc() else {
        return;
    };
    let namespace = meta::namespace_of(pod).to_string();
    let name = meta::name_of(pod).to_string();
    let uid = pod["metadata"]["uid"].clone();
    state.runtime.clone().spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        schedule_and_start(&state, &namespace, &name, &uid);
    });
}

/// Kills the local process of a deleted pod.
pub(crate) fn pod_deleted(state: &ServerState, namespace: &str, name: &str) {
    let process = state
        .kubelet
        .processes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&(namespace.to_string(), name.to_string()));
    if let Some(process) = process {
        process.kill();
    }
}

/// True when the pod tolerates a taint.
fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|toleration| {
        let key_matches = match toleration["key"].as_str() {
            None | Some("") => toleration["operator"] == "Exists",
            Some(key) => taint["key"] == key,
        };
        let value_matches = toleration["operator"] == "Exists"
            || toleration["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("");
        let effect_matches = match toleration["effect"].as_str() {
            None | Some("") => true,
            Some(effect) => taint["effect"] == effect,
        };
        key_matches && value_matches && effect_matches
    })
}

/// Picks a node for a pod, or explains why none fits, in the scheduler's words.
/// `volume_affinities` are the required node affinities of the pod's PersistentVolumes.
fn choose_node(
    pod: &Value,
    nodes: &[Arc<Value>],
    volume_affinities: &[Value],
) -> Result<String, String> {
    if let Some(name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Ok(name.to_string());
    }

    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let selector = pod["spec"]["nodeSelector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut selector_misses = 0;
    let mut taint_misses: Vec<String> = Vec::new();
    let mut unschedulable = 0;
    let mut volume_conflicts = 0;

    // The first node that passes every check wins; the misses explain a failure.
    for node in nodes {
        if node["spec"]["unschedulable"] == json!(true) {
            unschedulable += 1;
            continue;
        }
        let labels = meta::labels(node);
        if !selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
        {
            selector_misses += 1;
            continue;
        }
        let blocking = node["spec"]["taints"].as_array().and_then(|taints| {
            taints
                .iter()
                .filter(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
                .find(|taint| !tolerates(&tolerations, taint))
                .cloned()
        });
        if let Some(taint) = blocking {
            let value = taint["value"]
                .as_str()
                .map(|v| format!(": {v}"))
                .unwrap_or_default();
            taint_misses.push(format!(
                "{{{}{value}}}",
                taint["key"].as_str().unwrap_or("")
            ));
            continue;
        }
        if !volume_affinities
            .iter()
            .all(|affinity| pod_volumes::node_matches(affinity, labels))
        {
            volume_conflicts += 1;
            continue;
        }
        return Ok(meta::name_of(node).to_string());
    }

    let mut reasons = Vec::new();
    if selector_misses > 0 {
        reasons.push(format!(
            "{selector_misses} node(s) didn't match Pod's node affinity/selector"
        ));
    }
    for taint in &taint_misses {
        reasons.push(format!("1 node(s) had untolerated taint {taint}"));
    }
    if volume_conflicts > 0 {
        reasons.push(format!(
            "{volume_conflicts} node(s) had volume node affinity conflict"
        ));
    }
    if unschedulable > 0 {
        reasons.push(format!("{unschedulable} node(s) were unschedulable"));
    }
    Err(unschedulable_message(nodes.len(), &reasons.join(", ")))
}

/// Builds the scheduler's FailedScheduling message from the reasons no node fits.
fn unschedulable_message(node_count: usize, reasons: &str) -> String {
    format!(
        "0/{node_count} nodes are available: {reasons}. preemption: 0/{node_count} nodes are available: {node_count} Preemption is not helpful for scheduling."
    )
}

fn pod_ip(state: &ServerState, node: &Value) -> String {
    let cidr = node["spec"]["podCIDR"].as_str().unwrap_or("10.244.0.0/24");
    let (network, _) =
        super::admission::parse_cidr(cidr).unwrap_or((u32::from(Ipv4Addr::new(10, 244, 0, 0)), 24));
    let mut counters = state
        .kubelet
        .next_ip
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let next = counters.entry(meta::name_of(node).to_string()).or_insert(2);
    let ip = Ipv4Addr::from(network + *next).to_string();
    *next += 1;
    ip
}

fn schedule_and_start(state: &Arc<ServerState>, namespace: &str, name: &str, uid: &Value) {
    let mut store = state.lock_store();
    let key = Key::new("", "pods", namespace, name);
    let Some(pod) = store.get(&key) else {
        return;
    };
    if pod["metadata"]["uid"] != *uid {
        return;
    }
    let nodes = store.list("", "nodes", None);
    let local_dir = local_image_dir(state, &pod);
    // Claims are checked only for pods that run as local processes, because only those
    // mount their volumes. Pods of other images are marked Running whatever their claims.
    let claims = local_dir.is_some() && pod_volumes::has_claims(&pod);

    // The scheduler's VolumeBinding step: every claim bound before a node is picked. A pod
    // with a nodeName skips the scheduler, and the kubelet finds the problem instead.
    let assigned = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|node| !node.is_empty());
    let affinities = if claims && !assigned {
        pod_volumes::check_claims(&store, &pod)
            .map_err(|reason| unschedulable_message(nodes.len(), &reason))
    } else {
        Ok(Vec::new())
    };
    let chosen = affinities.and_then(|affinities| choose_node(&pod, &nodes, &affinities));
    let node_name = match chosen {
        Ok(node) => node,
        Err(message) => {
            mark_unschedulable(state, &mut store, key, &pod, &message);
            return;
        }
    };
    let Some(node) = nodes
        .iter()
        .find(|n| meta::name_of(n) == node_name)
        .cloned()
    else {
        // A nodeName that names no node leaves the pod Pending, as a missing kubelet would.
        return;
    };
    create_empty_dirs(&pod);

    // The kubelet sets up volumes before it creates the pod's sandbox and containers.
    let resolved = claims.then(|| pod_volumes::resolve_mounts(&store, &pod));
    let mounts = match resolved {
        None => None,
        Some(Ok(mounts)) => Some(mounts),
        Some(Err(message)) => {
            let stored = mark_mount_failed(state, &mut store, key, &pod, &node, &message);
            drop(store);
            super::process::enforce_deadline(state, &stored);
            return;
        }
    };

    let stored = mark_running(state, &mut store, key, &pod, &node);
    drop(store);
    let single = pod["spec"]["containers"]
        .as_array()
        .is_some_and(|c| c.len() == 1);
    match (local_dir, single) {
        (Some(dir), true) => start_local_process(state, &stored, &dir, mounts),
        _ => super::process::enforce_deadline(state, &stored),
    }
}

/// Returns the folder of binaries of the local image that the pod's first container uses.
fn local_image_dir(state: &ServerState, pod: &Value) -> Option<PathBuf> {
    let image = pod["spec"]["containers"][0]["image"].as_str().unwrap_or("");
    let options = state.kubelet.options.as_ref()?;
    options
        .local_images
        .iter()
        .find(|(reference, _)| reference == image)
        .map(|(_, dir)| dir.clone())
}

/// Stores the scheduler's verdict that no node fits, with its FailedScheduling event.
fn mark_unschedulable(
    state: &ServerState,
    store: &mut Store,
    key: Key,
    pod: &Value,
    message: &str,
) {
    let mut updated = pod.clone();
    updated["status"]["conditions"] = json!([{
        "type": "PodScheduled", "status": "False", "lastProbeTime": null,
        "lastTransitionTime": meta::now(), "reason": "Unschedulable", "message": message
    }]);
    store.put(key, updated, EventType::Modified);
    record_event(
        state,
        store,
        pod,
        "Warning",
        "FailedScheduling",
        message,
        "default-scheduler",
    );
}

/// Stores a pod that is on its node but whose volumes cannot be set up: Pending with its
/// containers in ContainerCreating, as the kubelet leaves it while it retries, and a
/// FailedMount event. Its activeDeadlineSeconds still apply.
fn mark_mount_failed(
    state: &ServerState,
    store: &mut Store,
    key: Key,
    pod: &Value,
    node: &Value,
    message: &str,
) -> Arc<Value> {
    let now = meta::now();
    let node_name = meta::name_of(node);
    let host_ip = node["status"]["addresses"][0]["address"].clone();
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|container| container["name"].as_str())
        .collect();
    let not_ready = format!("containers with unready status: [{}]", names.join(" "));
    let statuses: Vec<Value> = containers
        .iter()
        .map(|container| {
            json!({
                "name": container["name"], "image": container["image"], "imageID": "",
                "ready": false, "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}
            })
        })
        .collect();
    let mut updated = pod.clone();
    updated["spec"]["nodeName"] = json!(node_name);
    updated["status"] = json!({
        "phase": "Pending",
        "qosClass": pod["status"]["qosClass"],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": now,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
             "reason": "ContainersNotReady", "message": not_ready},
            {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
             "reason": "ContainersNotReady", "message": not_ready},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}
        ],
        "containerStatuses": statuses
    });
    let stored = store.put(key, updated, EventType::Modified);
    record_scheduled(state, store, pod, node_name);
    record_event(
        state,
        store,
        pod,
        "Warning",
        "FailedMount",
        message,
        "kubelet",
    );
    stored
}

/// Stores a pod as Running on its node, with a pod IP and running containers.
fn mark_running(
    state: &ServerState,
    store: &mut Store,
    key: Key,
    pod: &Value,
    node: &Value,
) -> Arc<Value> {
    let now = meta::now();
    let node_name = meta::name_of(node);
    let host_ip = node["status"]["addresses"][0]["address"].clone();
    let ip = pod_ip(state, node);
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|container| {
            json!({
                "name": container["name"],
                "image": container["image"],
                "imageID": format!("{}@sha256:{}", container["image"].as_str().unwrap_or(""), "0".repeat(64)),
                "containerID": format!("containerd://{}", meta::new_uid().replace('-', "")),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}}
            })
        })
        .collect();
    let mut updated = pod.clone();
    updated["spec"]["nodeName"] = json!(node_name);
    updated["status"] = json!({
        "phase": "Running",
        "qosClass": pod["status"]["qosClass"],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}
        ],
        "containerStatuses": statuses
    });
    let stored = store.put(key, updated, EventType::Modified);
    super::endpoints::sync(store, meta::namespace_of(pod));
    record_scheduled(state, store, pod, node_name);
    stored
}

fn record_scheduled(state: &ServerState, store: &mut Store, pod: &Value, node_name: &str) {
    let message = format!(
        "Successfully assigned {}/{} to {node_name}",
        meta::namespace_of(pod),
        meta::name_of(pod)
    );
    record_event(
        state,
        store,
        pod,
        "Normal",
        "Scheduled",
        &message,
        "default-scheduler",
    );
}

/// Pod annotation naming a folder that plays the kubelet root dir for this pod: the kubelet
/// creates its emptyDir folders there, as a real kubelet does under /var/lib/kubelet, before the
/// pod is Running. Without it no folder is created.
pub const KUBELET_ROOT_ANNOTATION: &str = "test-apiserver.kubectl-plugins.io/kubelet-root-dir";

/// Creates `<root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>` (mode 0777, as the
/// kubelet does) for each emptyDir volume of a pod annotated with [`KUBELET_ROOT_ANNOTATION`].
fn create_empty_dirs(pod: &Value) {
    use std::os::unix::fs::PermissionsExt;

    let Some(root) = pod["metadata"]["annotations"][KUBELET_ROOT_ANNOTATION].as_str() else {
        return;
    };
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for volume in volumes.iter().filter(|v| v.get("emptyDir").is_some()) {
        let name = volume["name"].as_str().unwrap_or("");
        let folder = empty_dir_folder(root, uid, name);
        let created = std::fs::create_dir_all(&folder).and_then(|()| {
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777))
        });
        if let Err(error) = created {
            eprintln!(
                "test-apiserver: failed to create emptyDir folder {}: {error}",
                folder.display()
            );
        }
    }
}

/// Returns `<root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>`.
pub(crate) fn empty_dir_folder(root: &str, uid: &str, volume: &str) -> PathBuf {
    Path::new(root)
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~empty-dir")
        .join(volume)
}

/// Records a core/v1 Event about an object.
pub(crate) fn record_event(
    state: &ServerState,
    store: &mut Store,
    object: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let resource = state
        .registry()
        .get("", "v1", "events")
        .expect("built in")
        .clone();
    let namespace = meta::namespace_of(object).to_string();
    let now = meta::now();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{}.", meta::name_of(object)), "namespace": namespace},
        "involvedObject": {
            "kind": object["kind"], "namespace": namespace, "name": object["metadata"]["name"],
            "uid": object["metadata"]["uid"], "apiVersion": object["apiVersion"],
            "resourceVersion": object["metadata"]["resourceVersion"]
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": kind,
        "reportingComponent": component,
        "reportingInstance": ""
    });
    let options = Options {
        field_manager: component.to_string(),
        ..Options::default()
    };
    if let Err(error) =
        super::handlers::create_object(state, store, &resource, &namespace, event, &options)
    {
        eprintln!(
            "test-apiserver: failed to record event {reason}: {}",
            error.message
        );
    }
}

/// Returns an error for a log request about a pod that does not exist.
pub(crate) fn pod_not_found(name: &str) -> ApiError {
    ApiError::not_found(Target {
        group: "",
        resource: "pods",
        name,
    })
}
