//! Selection of the pod volumes whose data is copied, following Velero's file-system backup
//! annotations.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, Volume};
use serde::{Deserialize, Serialize};

/// Pod annotation naming the volumes to back up, separated by commas (Velero's opt-in).
pub const BACKUP_VOLUMES_ANNOTATION: &str = "backup.velero.io/backup-volumes";
/// Pod annotation naming the volumes to leave out, separated by commas (Velero's opt-out).
pub const EXCLUDE_VOLUMES_ANNOTATION: &str = "backup.velero.io/backup-volumes-excludes";

/// Source of a selected volume's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeSource {
    /// A PersistentVolumeClaim, mounted read-only by the agent pod.
    Pvc { claim: String },
    /// An emptyDir, read through the kubelet's folder of the pod on the node.
    EmptyDir,
}

/// A volume whose data is copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedVolume {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub node: String,
    pub volume: String,
    pub source: VolumeSource,
}

/// A volume that was asked for (or would have been, with --default-volumes-to-fs-backup) and
/// is not copied, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedVolume {
    pub namespace: String,
    pub pod: String,
    pub volume: String,
    pub reason: String,
}

/// Volumes of one pod to copy and to skip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodSelection {
    pub selected: Vec<SelectedVolume>,
    pub skipped: Vec<SkippedVolume>,
}

/// Splits an annotation value into volume names, ignoring blanks around commas.
fn names(value: Option<&String>) -> BTreeSet<String> {
    value
        .map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Selects the volumes of `pod` to copy: those named in `backup.velero.io/backup-volumes`, or
/// every volume when `default_all` is set, minus those in `backup.velero.io/backup-volumes-excludes`.
pub fn select_pod_volumes(pod: &Pod, default_all: bool) -> PodSelection {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let volumes: Vec<Volume> = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.volumes.clone())
        .unwrap_or_default();

    let requested = names(annotations.get(BACKUP_VOLUMES_ANNOTATION));
    let excluded = names(annotations.get(EXCLUDE_VOLUMES_ANNOTATION));
    let candidates: Vec<String> = if default_all {
        volumes.iter().map(|volume| volume.name.clone()).collect()
    } else {
        requested.iter().cloned().collect()
    };

    let mut selection = PodSelection::default();
    let skip = |volume: &str, reason: String| SkippedVolume {
        namespace: namespace.clone(),
        pod: pod_name.clone(),
        volume: volume.to_string(),
        reason,
    };
    let node = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.node_name.clone())
        .unwrap_or_default();
    let phase = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.clone())
        .unwrap_or_default();

    for name in candidates {
        if excluded.contains(&name) {
            continue;
        }
        let Some(volume) = volumes.iter().find(|volume| volume.name == name) else {
            selection.skipped.push(skip(
                &name,
                format!("named in {BACKUP_VOLUMES_ANNOTATION} but not a volume of the pod"),
            ));
            continue;
        };
        if name == super::pods::RESTORE_STATE_VOLUME {
            selection.skipped.push(skip(
                &name,
                "the volume kubectl-migrate adds to restored pods for its marker file, never copied".to_string(),
            ));
            continue;
        }
        let source = match volume_source(volume) {
            Ok(source) => source,
            Err(reason) => {
                selection.skipped.push(skip(&name, reason));
                continue;
            }
        };
        if node.is_empty() || phase != "Running" {
            selection.skipped.push(skip(
                &name,
                format!(
                    "pod is not running on a node (phase {phase:?}): its volumes cannot be read"
                ),
            ));
            continue;
        }
        selection.selected.push(SelectedVolume {
            namespace: namespace.clone(),
            pod: pod_name.clone(),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node.clone(),
            volume: name,
            source,
        });
    }
    selection
}

/// Returns how a volume's data is reached, or why it is never copied.
fn volume_source(volume: &Volume) -> Result<VolumeSource, String> {
    if let Some(claim) = &volume.persistent_volume_claim {
        return Ok(VolumeSource::Pvc {
            claim: claim.claim_name.clone(),
        });
    }
    if volume.empty_dir.is_some() {
        return Ok(VolumeSource::EmptyDir);
    }
    let reason = if volume.host_path.is_some() {
        "hostPath volumes are node files outside the pod, never copied"
    } else if volume.secret.is_some() {
        "secret volumes are restored from the Secret object, never copied"
    } else if volume.config_map.is_some() {
        "configMap volumes are restored from the ConfigMap object, never copied"
    } else if volume.projected.is_some() {
        "projected volumes are generated from API objects, never copied"
    } else if volume.downward_api.is_some() {
        "downwardAPI volumes are generated from the pod's fields, never copied"
    } else {
        "only PersistentVolumeClaim and emptyDir volumes are copied"
    };
    Err(reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &[(&str, &str)], running: bool) -> Pod {
        let annotations: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(key, value)| (key.to_string(), serde_json::json!(value)))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-0", "namespace": "shop", "uid": "uid-1", "annotations": annotations},
            "spec": {
                "nodeName": "node-1",
                "containers": [{"name": "db", "image": "postgres"}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/var/log"}},
                    {"name": "creds", "secret": {"secretName": "db"}},
                    {"name": "settings", "configMap": {"name": "db"}},
                    {"name": "token", "projected": {"sources": []}},
                    {"name": "labels", "downwardAPI": {"items": []}}
                ]
            },
            "status": {"phase": if running { "Running" } else { "Pending" }}
        }))
        .unwrap()
    }

    fn selected_names(selection: &PodSelection) -> Vec<&str> {
        selection
            .selected
            .iter()
            .map(|v| v.volume.as_str())
            .collect()
    }

    #[test]
    fn annotation_selects_named_volumes() {
        let selection = select_pod_volumes(
            &pod(&[(BACKUP_VOLUMES_ANNOTATION, "data, scratch")], true),
            false,
        );
        assert_eq!(selected_names(&selection), ["data", "scratch"]);
        assert_eq!(
            selection.selected[0].source,
            VolumeSource::Pvc {
                claim: "data-db-0".into()
            }
        );
        assert_eq!(selection.selected[0].node, "node-1");
        assert!(selection.skipped.is_empty());
    }

    #[test]
    fn no_annotation_selects_nothing() {
        let selection = select_pod_volumes(&pod(&[], true), false);
        assert_eq!(selection, PodSelection::default());
    }

    #[test]
    fn default_all_skips_types_with_reasons() {
        let selection = select_pod_volumes(&pod(&[], true), true);
        assert_eq!(selected_names(&selection), ["data", "scratch"]);
        let reasons: Vec<(&str, &str)> = selection
            .skipped
            .iter()
            .map(|s| (s.volume.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "host",
                    "hostPath volumes are node files outside the pod, never copied"
                ),
                (
                    "creds",
                    "secret volumes are restored from the Secret object, never copied"
                ),
                (
                    "settings",
                    "configMap volumes are restored from the ConfigMap object, never copied"
                ),
                (
                    "token",
                    "projected volumes are generated from API objects, never copied"
                ),
                (
                    "labels",
                    "downwardAPI volumes are generated from the pod's fields, never copied"
                ),
            ]
        );
    }

    #[test]
    fn excludes_win_over_default_all() {
        let selection = select_pod_volumes(
            &pod(&[(EXCLUDE_VOLUMES_ANNOTATION, "scratch,host")], true),
            true,
        );
        assert_eq!(selected_names(&selection), ["data"]);
        assert!(selection.skipped.iter().all(|s| s.volume != "host"));
    }

    #[test]
    fn excludes_win_over_the_opt_in_list() {
        let selection = select_pod_volumes(
            &pod(
                &[
                    (BACKUP_VOLUMES_ANNOTATION, "data,scratch"),
                    (EXCLUDE_VOLUMES_ANNOTATION, "data"),
                ],
                true,
            ),
            false,
        );
        assert_eq!(selected_names(&selection), ["scratch"]);
    }

    #[test]
    fn unknown_volume_name_is_reported() {
        let selection =
            select_pod_volumes(&pod(&[(BACKUP_VOLUMES_ANNOTATION, "missing")], true), false);
        assert_eq!(
            selection.skipped[0].reason,
            "named in backup.velero.io/backup-volumes but not a volume of the pod"
        );
    }

    #[test]
    fn pending_pod_volumes_are_skipped() {
        let selection =
            select_pod_volumes(&pod(&[(BACKUP_VOLUMES_ANNOTATION, "data")], false), false);
        assert!(selection.selected.is_empty());
        assert!(
            selection.skipped[0]
                .reason
                .starts_with("pod is not running")
        );
    }

    #[test]
    fn restore_state_volume_is_never_copied() {
        let mut pod = pod(&[], true);
        pod.spec.as_mut().unwrap().volumes.as_mut().unwrap().push(
            serde_json::from_value(
                serde_json::json!({"name": "kubectl-migrate-restore", "emptyDir": {}}),
            )
            .unwrap(),
        );
        let selection = select_pod_volumes(&pod, true);
        assert!(
            !selected_names(&selection).contains(&"kubectl-migrate-restore"),
            "{selection:?}"
        );
        assert!(
            selection
                .skipped
                .iter()
                .any(|s| s.volume == "kubectl-migrate-restore")
        );
    }
}
