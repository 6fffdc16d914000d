//! Host folders behind the volumes of a pod that the simulated kubelet runs as a local process:
//! claims resolved through their PersistentVolume to a `hostPath` or `local` path, hostPath
//! volumes, and emptyDir folders.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::meta;
use super::store::{Key, Store};

/// What a container mount shows: a host path, or an emptyDir kept inside the private root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountSource {
    Host(PathBuf),
    /// An emptyDir of a pod without the kubelet root annotation. It lives in the process's
    /// private root and disappears with it.
    PrivateEmptyDir(String),
}

/// One entry of a container's `volumeMounts`, resolved on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub source: MountSource,
    /// Absolute path inside the container.
    pub container_path: String,
    pub read_only: bool,
}

/// True when a pod has at least one `persistentVolumeClaim` volume.
pub(crate) fn has_claims(pod: &Value) -> bool {
    volumes(pod)
        .iter()
        .any(|volume| volume.get("persistentVolumeClaim").is_some())
}

fn volumes(pod: &Value) -> Vec<Value> {
    pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn claim_names(pod: &Value) -> Vec<(String, String)> {
    volumes(pod)
        .iter()
        .filter_map(|volume| {
            let claim = volume["persistentVolumeClaim"]["claimName"].as_str()?;
            Some((
                volume["name"].as_str().unwrap_or("").to_string(),
                claim.to_string(),
            ))
        })
        .collect()
}

/// Why a claim cannot be mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClaimProblem {
    NotFound,
    /// Neither `spec.volumeName` nor a PersistentVolume whose `spec.claimRef` names the claim.
    Unbound,
    VolumeNotFound(String),
    /// `spec.volumeName` names a PersistentVolume whose claimRef names another claim.
    BoundElsewhere {
        volume: String,
        other: String,
    },
}

impl ClaimProblem {
    /// Returns the reason as the scheduler's VolumeBinding plugin states it.
    fn scheduler_reason(&self, claim: &str) -> String {
        match self {
            ClaimProblem::NotFound => format!("persistentvolumeclaim \"{claim}\" not found"),
            ClaimProblem::Unbound => "pod has unbound immediate PersistentVolumeClaims".to_string(),
            ClaimProblem::VolumeNotFound(volume) => {
                format!("persistentvolume \"{volume}\" not found")
            }
            ClaimProblem::BoundElsewhere { volume, other } => {
                format!("persistentvolume \"{volume}\" is bound to claim {other}, not to {claim}")
            }
        }
    }

    /// Returns the reason as the kubelet's volume manager states it in a FailedMount event.
    fn kubelet_reason(&self, namespace: &str, claim: &str) -> String {
        let detail = match self {
            ClaimProblem::NotFound => {
                format!("persistentvolumeclaims \"{claim}\" not found")
            }
            ClaimProblem::Unbound => {
                "the claim is not bound: it has no spec.volumeName and no PersistentVolume has a claimRef to it".to_string()
            }
            ClaimProblem::VolumeNotFound(volume) => {
                format!("persistentvolumes \"{volume}\" not found")
            }
            ClaimProblem::BoundElsewhere { volume, other } => {
                format!("PersistentVolume {volume} is bound to claim {other}")
            }
        };
        format!("error processing PVC {namespace}/{claim}: {detail}")
    }
}

/// Finds the PersistentVolume of a claim: the one `spec.volumeName` names, or else one whose
/// `spec.claimRef` names the claim (a volume pre-bound by an admin, which the PV controller
/// would bind). A claimRef with a uid binds only the claim of that uid.
fn claim_volume(store: &Store, namespace: &str, claim: &str) -> Result<Arc<Value>, ClaimProblem> {
    let pvc = store
        .get(&Key::new("", "persistentvolumeclaims", namespace, claim))
        .ok_or(ClaimProblem::NotFound)?;
    let refers_to_claim = |volume: &Value| {
        let reference = &volume["spec"]["claimRef"];
        reference["namespace"] == namespace
            && reference["name"] == claim
            && reference["uid"]
                .as_str()
                .is_none_or(|uid| pvc["metadata"]["uid"] == uid)
    };

    if let Some(name) = pvc["spec"]["volumeName"].as_str().filter(|n| !n.is_empty()) {
        let volume = store
            .get(&Key::new("", "persistentvolumes", "", name))
            .ok_or_else(|| ClaimProblem::VolumeNotFound(name.to_string()))?;
        let reference = &volume["spec"]["claimRef"];
        if reference.is_object() && !refers_to_claim(&volume) {
            return Err(ClaimProblem::BoundElsewhere {
                volume: name.to_string(),
                other: format!(
                    "{}/{}",
                    reference["namespace"].as_str().unwrap_or(""),
                    reference["name"].as_str().unwrap_or("")
                ),
            });
        }
        return Ok(volume);
    }
    store
        .list("", "persistentvolumes", None)
        .into_iter()
        .find(|volume| refers_to_claim(volume))
        .ok_or(ClaimProblem::Unbound)
}

/// Checks the claims of a pod as the scheduler does before it picks a node, and returns the
/// `spec.nodeAffinity.required` terms of their volumes (a `local` volume must have one).
/// The error is the reason for the FailedScheduling message.
pub(crate) fn check_claims(store: &Store, pod: &Value) -> Result<Vec<Value>, String> {
    let namespace = meta::namespace_of(pod);
    let mut affinities = Vec::new();
    for (_, claim) in claim_names(pod) {
        let volume = claim_volume(store, namespace, &claim)
            .map_err(|problem| problem.scheduler_reason(&claim))?;
        let required = &volume["spec"]["nodeAffinity"]["required"];
        if required.is_object() {
            affinities.push(required.clone());
        }
    }
    Ok(affinities)
}

/// True when a node's labels satisfy a `nodeSelector` of `nodeSelectorTerms`: any one term,
/// with all of its `matchExpressions` (In, NotIn, Exists, DoesNotExist, Gt, Lt).
pub(crate) fn node_matches(selector: &Value, labels: &Value) -> bool {
    let terms = selector["nodeSelectorTerms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    terms.iter().any(|term| {
        term["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|expression| expression_matches(expression, labels))
    })
}

fn expression_matches(expression: &Value, labels: &Value) -> bool {
    let label = labels[expression["key"].as_str().unwrap_or("")].as_str();
    let values: Vec<&str> = expression["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let number = |text: &str| text.parse::<i64>().ok();
    match expression["operator"].as_str().unwrap_or("") {
        "In" => label.is_some_and(|label| values.contains(&label)),
        "NotIn" => label.is_none_or(|label| !values.contains(&label)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" => {
            matches!((label.and_then(number), values.first().and_then(|v| number(v))), (Some(l), Some(v)) if l > v)
        }
        "Lt" => {
            matches!((label.and_then(number), values.first().and_then(|v| number(v))), (Some(l), Some(v)) if l < v)
        }
        _ => false,
    }
}

/// Resolves the `volumeMounts` of the pod's first container to host paths, as the kubelet
/// sets up volumes before a container starts. hostPath types `DirectoryOrCreate` and
/// `FileOrCreate` are created here. The error is the message of a FailedMount event.
pub(crate) fn resolve_mounts(store: &Store, pod: &Value) -> Result<Vec<Mount>, String> {
    let volumes = volumes(pod);
    let container = &pod["spec"]["containers"][0];
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or("");
        let container_path = mount["mountPath"].as_str().unwrap_or("").to_string();
        if !container_path.starts_with('/') {
            return Err(format!(
                "volume {name}: mountPath {container_path:?} is not an absolute path"
            ));
        }
        let volume = volumes
            .iter()
            .find(|volume| volume["name"] == name)
            .ok_or_else(|| format!("volume {name} is mounted but not defined in the pod"))?;
        let (source, volume_read_only) = volume_source(store, pod, volume)?;
        let source = match (source, mount["subPath"].as_str().filter(|s| !s.is_empty())) {
            (MountSource::Host(path), Some(sub_path)) => {
                MountSource::Host(sub_path_folder(&path, sub_path, name)?)
            }
            (MountSource::PrivateEmptyDir(_), Some(_)) => {
                return Err(format!(
                    "volume {name}: subPath is not supported by the simulated kubelet for an emptyDir without a kubelet root"
                ));
            }
            (source, None) => source,
        };
        mounts.push(Mount {
            source,
            container_path,
            read_only: volume_read_only || mount["readOnly"] == true,
        });
    }
    Ok(mounts)
}

/// Returns where one pod volume lives on the host, and whether the volume itself is read-only.
fn volume_source(
    store: &Store,
    pod: &Value,
    volume: &Value,
) -> Result<(MountSource, bool), String> {
    let name = volume["name"].as_str().unwrap_or("");
    if let Some(claim) = volume["persistentVolumeClaim"].as_object() {
        let claim_name = claim.get("claimName").and_then(Value::as_str).unwrap_or("");
        let namespace = meta::namespace_of(pod);
        let persistent_volume = claim_volume(store, namespace, claim_name)
            .map_err(|problem| problem.kubelet_reason(namespace, claim_name))?;
        let path = persistent_volume_path(&persistent_volume)?;
        let read_only = claim.get("readOnly") == Some(&Value::Bool(true));
        return Ok((MountSource::Host(path), read_only));
    }
    if let Some(host_path) = volume.get("hostPath") {
        let path = host_path["path"].as_str().unwrap_or("");
        let kind = host_path["type"].as_str().unwrap_or("");
        let path = prepare_host_path(Path::new(path), kind).map_err(|reason| {
            format!("MountVolume.SetUp failed for volume \"{name}\" : {reason}")
        })?;
        return Ok((MountSource::Host(path), false));
    }
    if volume.get("emptyDir").is_some() {
        let root = pod["metadata"]["annotations"][super::kubelet::KUBELET_ROOT_ANNOTATION].as_str();
        let source = match root {
            Some(root) => MountSource::Host(super::kubelet::empty_dir_folder(
                root,
                pod["metadata"]["uid"].as_str().unwrap_or(""),
                name,
            )),
            None => MountSource::PrivateEmptyDir(name.to_string()),
        };
        return Ok((source, false));
    }
    let kind = volume
        .as_object()
        .and_then(|fields| fields.keys().find(|key| *key != "name").cloned())
        .unwrap_or_else(|| "unknown".to_string());
    Err(format!(
        "MountVolume.SetUp failed for volume \"{name}\" : {kind} volumes are not supported by the simulated kubelet (only persistentVolumeClaim, hostPath and emptyDir)"
    ))
}

/// Returns the folder of a PersistentVolume that the simulated kubelet can bind: `hostPath.path`
/// or `local.path`, which must exist.
fn persistent_volume_path(volume: &Value) -> Result<PathBuf, String> {
    let name = meta::name_of(volume);
    let spec = &volume["spec"];
    let path = spec["hostPath"]["path"]
        .as_str()
        .or_else(|| spec["local"]["path"].as_str())
        .ok_or_else(|| {
            format!(
                "MountVolume.SetUp failed for volume \"{name}\" : the simulated kubelet mounts only hostPath and local PersistentVolumes"
            )
        })?;
    if spec["hostPath"].is_object() {
        let kind = spec["hostPath"]["type"].as_str().unwrap_or("");
        return prepare_host_path(Path::new(path), kind).map_err(|reason| {
            format!("MountVolume.SetUp failed for volume \"{name}\" : {reason}")
        });
    }
    if !Path::new(path).exists() {
        return Err(format!(
            "MountVolume.NewMounter initialization failed for volume \"{name}\" : path \"{path}\" does not exist"
        ));
    }
    Ok(PathBuf::from(path))
}

/// Applies the checks and creation of a hostPath `type`, as the kubelet does. An empty type
/// checks nothing, but the bind mount needs the path, so a missing one is an error here.
fn prepare_host_path(path: &Path, kind: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;

    let shown = path.display();
    let metadata = std::fs::metadata(path).ok();
    match kind {
        "DirectoryOrCreate" if metadata.is_none() => {
            std::fs::create_dir_all(path)
                .and_then(|()| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|error| format!("failed to create folder {shown}: {error}"))?;
        }
        "FileOrCreate" if metadata.is_none() => {
            std::fs::File::create(path)
                .and_then(|_| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                })
                .map_err(|error| format!("failed to create file {shown}: {error}"))?;
        }
        "Directory" | "DirectoryOrCreate" if !metadata.as_ref().is_some_and(|m| m.is_dir()) => {
            return Err(format!(
                "hostPath type check failed: {shown} is not a directory"
            ));
        }
        "File" | "FileOrCreate" if !metadata.as_ref().is_some_and(|m| m.is_file()) => {
            return Err(format!("hostPath type check failed: {shown} is not a file"));
        }
        "" | "Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate" => {
            if metadata.is_none() {
                return Err(format!(
                    "hostPath {shown} does not exist, and the simulated kubelet creates a path only for type DirectoryOrCreate or FileOrCreate"
                ));
            }
        }
        other => {
            return Err(format!(
                "hostPath type {other:?} is not supported by the simulated kubelet (only Directory, DirectoryOrCreate, File, FileOrCreate or empty)"
            ));
        }
    }
    Ok(path.to_path_buf())
}

/// Returns `<volume>/<subPath>`, created as the kubelet does, after checking that the subPath
/// stays inside the volume.
fn sub_path_folder(volume: &Path, sub_path: &str, name: &str) -> Result<PathBuf, String> {
    let escapes = Path::new(sub_path).is_absolute()
        || Path::new(sub_path)
            .components()
            .any(|part| matches!(part, std::path::Component::ParentDir));
    if escapes {
        return Err(format!(
            "volume {name}: subPath {sub_path:?} must be a relative path without \"..\""
        ));
    }
    let folder = volume.join(sub_path);
    if !folder.exists() {
        std::fs::create_dir_all(&folder).map_err(|error| {
            format!(
                "volume {name}: failed to create subPath folder {}: {error}",
                folder.display()
            )
        })?;
    }
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_affinity_terms_are_ored_and_expressions_anded() {
        let labels = json!({"kubernetes.io/hostname": "node-2", "zone": "a"});
        let selector = json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]},
            {"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                {"key": "disk", "operator": "DoesNotExist"}
            ]}
        ]});
        assert!(node_matches(&selector, &labels));
        let other = json!({"kubernetes.io/hostname": "node-3", "zone": "c"});
        assert!(!node_matches(&selector, &other));
    }

    #[test]
    fn sub_path_must_stay_inside_volume() {
        let folder = tempfile::tempdir().unwrap();
        assert!(sub_path_folder(folder.path(), "../etc", "data").is_err());
        assert!(sub_path_folder(folder.path(), "/etc", "data").is_err());
        let created = sub_path_folder(folder.path(), "a/b", "data").unwrap();
        assert!(created.is_dir());
    }

    #[test]
    fn host_path_types_are_checked() {
        let folder = tempfile::tempdir().unwrap();
        let missing = folder.path().join("missing");
        assert!(prepare_host_path(&missing, "Directory").is_err());
        assert!(prepare_host_path(&missing, "").is_err());
        assert!(prepare_host_path(&missing, "DirectoryOrCreate").is_ok());
        assert!(missing.is_dir());
        assert!(prepare_host_path(&missing, "File").is_err());
        assert!(prepare_host_path(&missing, "Socket").is_err());
    }
}
