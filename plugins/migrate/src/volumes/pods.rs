//! Specs of the agent pods that move volume data, and of the Secret they read.
//!
//! Privileges: the agent runs as uid 0 because volume files belong to arbitrary users. Every
//! capability is dropped except those the step needs. A backup needs DAC_READ_SEARCH to read
//! and list every file. A restore needs CHOWN, FOWNER and FSETID to give files their owners,
//! modes (setuid/setgid included) and mtimes, and DAC_OVERRIDE to write into a new volume
//! whose root folder belongs to another user. The restore set stays within the capabilities
//! that Pod Security Admission's baseline level allows. No pod is privileged, the root file system is
//! read-only and privilege escalation is off. The init container added to a pod whose emptyDir
//! data is restored runs as a non-root user with no capabilities at all.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use serde_json::{Value, json};

use super::selection::{SelectedVolume, VolumeSource};

/// Label on every object a run creates, with the run id as value, for cleanup.
pub const RUN_LABEL: &str = "kubectl-migrate.io/volume-run";
/// Mount path of a claim in the agent container.
pub const DATA_MOUNT: &str = "/data";
/// Secret keys read by the agent through environment variables.
pub const PASSWORD_KEY: &str = "password";
pub const ACCESS_KEY_ID_KEY: &str = "aws-access-key-id";
pub const SECRET_ACCESS_KEY_KEY: &str = "aws-secret-access-key";
/// Init container that keeps a restored pod from starting until its emptyDir data is back.
pub const RESTORE_WAIT_CONTAINER: &str = "kubectl-migrate-restore-wait";
/// emptyDir volume added to a restored pod, into which the restore agent writes the marker.
pub const RESTORE_STATE_VOLUME: &str = "kubectl-migrate-restore";
/// Mount path of the restore state volume in the init container.
pub const RESTORE_STATE_MOUNT: &str = "/kubectl-migrate-restore";
/// Name of the marker file in the restore state volume.
pub const RESTORE_MARKER: &str = "restored";
/// User and group id of the init container: the `nonroot` user of the distroless agent image.
pub const WAIT_USER: i64 = 65532;

/// Settings of the agent pods, from the command line.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub image: String,
    /// Kubelet root folder on the nodes, parent of `pods/<uid>/volumes/`.
    pub kubelet_root_dir: String,
    pub cpu_request: Option<String>,
    pub memory_request: Option<String>,
    pub memory_limit: Option<String>,
    /// activeDeadlineSeconds of each agent pod.
    pub deadline: Duration,
    /// Time an agent pod may stay unschedulable before its volume fails.
    pub schedule_timeout: Duration,
    /// Run id: names the Secret and pods and labels them for cleanup.
    pub run_id: String,
}

/// The location as the agent reaches it: URL, S3 flags and, for a folder, its node path.
#[derive(Debug, Clone, Default)]
pub struct AgentLocation {
    pub url: String,
    /// `--endpoint`, `--region`, `--addressing` flags for an S3 location.
    pub flags: Vec<String>,
    /// Folder of a `file://` location, mounted from the node at the same path.
    pub node_folder: Option<String>,
    /// S3 access keys put in the run's Secret.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Name of the Secret of a run.
pub fn secret_name(run_id: &str) -> String {
    format!("kubectl-migrate-volumes-{run_id}")
}

/// Builds the Secret that contains the repository password and the S3 keys for one run in one namespace.
pub fn run_secret(
    namespace: &str,
    settings: &AgentSettings,
    location: &AgentLocation,
    password: &[u8],
) -> Secret {
    let mut data = BTreeMap::new();
    data.insert(PASSWORD_KEY.to_string(), ByteString(password.to_vec()));
    if let (Some(id), Some(secret)) = (&location.access_key_id, &location.secret_access_key) {
        data.insert(
            ACCESS_KEY_ID_KEY.to_string(),
            ByteString(id.as_bytes().to_vec()),
        );
        data.insert(
            SECRET_ACCESS_KEY_KEY.to_string(),
            ByteString(secret.as_bytes().to_vec()),
        );
    }
    let mut secret: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": secret_name(&settings.run_id),
            "namespace": namespace,
            "labels": {RUN_LABEL: settings.run_id, "app.kubernetes.io/managed-by": "kubectl-migrate"}
        },
        "type": "Opaque"
    }))
    .expect("secret spec is valid");
    secret.data = Some(data);
    secret
}

/// Builds the backup pod of one volume: on the volume's node, with the volume mounted read-only.
pub fn backup_pod(
    volume: &SelectedVolume,
    index: usize,
    backup: &str,
    settings: &AgentSettings,
    location: &AgentLocation,
) -> Pod {
    // An emptyDir is mounted at its node path, so the same path works for a real container
    // and for an agent started directly on the node (as the test kubelet does).
    let (data_volume, mount_path, pvc_flag) = match &volume.source {
        VolumeSource::Pvc { claim } => (
            json!({"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}),
            DATA_MOUNT.to_string(),
            vec!["--pvc".to_string(), claim.clone()],
        ),
        VolumeSource::EmptyDir => {
            let path = empty_dir_path(&settings.kubelet_root_dir, &volume.pod_uid, &volume.volume);
            (
                json!({"name": "data", "hostPath": {"path": path, "type": "Directory"}}),
                path,
                Vec::new(),
            )
        }
    };
    let mut args = vec![
        "agent",
        "backup",
        "--source",
        &mount_path,
        "--backup",
        backup,
        "--namespace",
        &volume.namespace,
        "--pod",
        &volume.pod,
        "--volume",
        &volume.volume,
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    args.extend(pvc_flag);

    let name = format!("kubectl-migrate-backup-{}-{index}", settings.run_id);
    let mut pod = agent_pod(
        &name,
        &volume.namespace,
        args,
        settings,
        location,
        &["DAC_READ_SEARCH"],
    );
    pod["spec"]["nodeName"] = json!(volume.node);
    // The agent must run where the volume is, whatever taints that node has.
    pod["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    add_named_volume(&mut pod, data_volume, &mount_path, true);
    serde_json::from_value(pod).expect("backup pod spec is valid")
}

/// Builds the restore pod of one claim, mounted read-write. The scheduler picks the node,
/// because the claim's topology decides where it can be mounted.
pub fn restore_pod(
    namespace: &str,
    claim: &str,
    snapshot: &str,
    index: usize,
    settings: &AgentSettings,
    location: &AgentLocation,
) -> Pod {
    let args = [
        "agent",
        "restore",
        "--target",
        DATA_MOUNT,
        "--snapshot",
        snapshot,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let name = format!("kubectl-migrate-restore-{}-{index}", settings.run_id);
    let mut pod = agent_pod(
        &name,
        namespace,
        args,
        settings,
        location,
        &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"],
    );
    add_volume(
        &mut pod,
        json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}}),
        false,
    );
    serde_json::from_value(pod).expect("restore pod spec is valid")
}

/// The restored pod whose emptyDir volumes a restore agent pod fills, after scheduling.
#[derive(Debug, Clone, Copy)]
pub struct EmptyDirTarget<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    /// Node the pod was scheduled to.
    pub node: &'a str,
    /// UID of the new pod, which names its folder under the kubelet root.
    pub uid: &'a str,
}

/// Builds the agent pod that restores one emptyDir volume of a restored pod: on the pod's node,
/// with the volume's kubelet folder (of the new pod's UID) mounted read-write at the same path.
/// With `write_marker` (the pod's last volume) it also mounts the pod's restore state volume and
/// writes the marker there, which releases the pod's init container.
pub fn empty_dir_restore_pod(
    target: &EmptyDirTarget,
    volume: &str,
    snapshot: &str,
    write_marker: bool,
    index: usize,
    settings: &AgentSettings,
    location: &AgentLocation,
) -> Pod {
    let data_path = empty_dir_path(&settings.kubelet_root_dir, target.uid, volume);
    let state_path = empty_dir_path(&settings.kubelet_root_dir, target.uid, RESTORE_STATE_VOLUME);
    let mut args: Vec<String> = [
        "agent",
        "restore",
        "--target",
        &data_path,
        "--snapshot",
        snapshot,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    if write_marker {
        args.extend([
            "--marker".to_string(),
            format!("{state_path}/{RESTORE_MARKER}"),
        ]);
    }

    let name = format!("kubectl-migrate-restore-{}-{index}", settings.run_id);
    let mut pod = agent_pod(
        &name,
        target.namespace,
        args,
        settings,
        location,
        &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"],
    );
    pod["spec"]["nodeName"] = json!(target.node);
    // The agent must run where the pod is, whatever taints that node has.
    pod["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    add_named_volume(
        &mut pod,
        json!({"name": "data", "hostPath": {"path": data_path, "type": "Directory"}}),
        &data_path,
        false,
    );
    if write_marker {
        add_named_volume(
            &mut pod,
            json!({"name": "state", "hostPath": {"path": state_path, "type": "Directory"}}),
            &state_path,
            false,
        );
    }
    serde_json::from_value(pod).expect("emptyDir restore pod spec is valid")
}

/// Adds to a pod that is about to be restored the init container that waits for its emptyDir
/// data, and the small emptyDir that receives the marker. The init container goes first, so
/// neither the pod's own init containers nor its containers start before the data is back. It
/// runs as a non-root user with no capabilities and mounts only the state volume, so the pod
/// keeps whatever Pod Security level it had. Leftovers of an earlier restore are replaced.
pub fn add_restore_wait(pod: &mut Value, settings: &AgentSettings, timeout: Duration) {
    let spec = &mut pod["spec"];
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let mut volumes: Vec<Value> = volumes
        .into_iter()
        .filter(|volume| volume["name"] != RESTORE_STATE_VOLUME)
        .collect();
    volumes.push(json!({"name": RESTORE_STATE_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}));
    spec["volumes"] = Value::Array(volumes);

    let mut init_containers: Vec<Value> = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|container| container["name"] != RESTORE_WAIT_CONTAINER)
        .collect();
    let marker = format!("{RESTORE_STATE_MOUNT}/{RESTORE_MARKER}");
    let mut container = json!({
        "name": RESTORE_WAIT_CONTAINER,
        "image": settings.image,
        "command": ["kubectl-migrate"],
        "args": ["agent", "wait-restored", "--marker", marker, "--timeout", timeout.as_secs().max(1).to_string()],
        "volumeMounts": [{"name": RESTORE_STATE_VOLUME, "mountPath": RESTORE_STATE_MOUNT, "readOnly": true}],
        "securityContext": {
            "runAsUser": WAIT_USER,
            "runAsGroup": WAIT_USER,
            "runAsNonRoot": true,
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    });
    let resources = agent_resources(settings);
    if resources != json!({"requests": {}}) {
        container["resources"] = resources;
    }
    init_containers.insert(0, container);
    spec["initContainers"] = Value::Array(init_containers);
}

/// Kubelet folder of an emptyDir volume on the node.
pub fn empty_dir_path(kubelet_root_dir: &str, pod_uid: &str, volume: &str) -> String {
    format!(
        "{}/pods/{pod_uid}/volumes/kubernetes.io~empty-dir/{volume}",
        kubelet_root_dir.trim_end_matches('/')
    )
}

fn agent_pod(
    name: &str,
    namespace: &str,
    mut args: Vec<String>,
    settings: &AgentSettings,
    location: &AgentLocation,
    capabilities: &[&str],
) -> Value {
    args.extend(["--location".to_string(), location.url.clone()]);
    args.extend(location.flags.iter().cloned());
    let secret = secret_name(&settings.run_id);
    let mut env = vec![
        json!({"name": "KUBECTL_MIGRATE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": PASSWORD_KEY}}}),
    ];
    if location.access_key_id.is_some() {
        env.push(json!({"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": secret, "key": ACCESS_KEY_ID_KEY}}}));
        env.push(json!({"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": SECRET_ACCESS_KEY_KEY}}}));
    }

    let resources = agent_resources(settings);
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {RUN_LABEL: settings.run_id, "app.kubernetes.io/managed-by": "kubectl-migrate", "app.kubernetes.io/component": "volume-agent"}
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": settings.deadline.as_secs().max(1),
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "containers": [{
                "name": "agent",
                "image": settings.image,
                "command": ["kubectl-migrate"],
                "args": args,
                "env": env,
                "resources": resources,
                "volumeMounts": [],
                "securityContext": {
                    "runAsUser": 0,
                    "runAsGroup": 0,
                    "runAsNonRoot": false,
                    "privileged": false,
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"], "add": capabilities},
                    "seccompProfile": {"type": "RuntimeDefault"}
                }
            }],
            "volumes": []
        }
    });
    if let Some(folder) = &location.node_folder {
        add_named_volume(
            &mut pod,
            json!({"name": "location", "hostPath": {"path": folder, "type": "DirectoryOrCreate"}}),
            folder,
            false,
        );
    }
    pod
}

/// Requests and limits of an agent container from the `--agent-*` flags.
fn agent_resources(settings: &AgentSettings) -> Value {
    let mut requests = serde_json::Map::new();
    if let Some(cpu) = &settings.cpu_request {
        requests.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &settings.memory_request {
        requests.insert("memory".into(), json!(memory));
    }
    let mut resources = json!({"requests": requests});
    if let Some(limit) = &settings.memory_limit {
        resources["limits"] = json!({"memory": limit});
    }
    resources
}

fn add_volume(pod: &mut Value, volume: Value, read_only: bool) {
    add_named_volume(pod, volume, DATA_MOUNT, read_only);
}

fn add_named_volume(pod: &mut Value, volume: Value, mount_path: &str, read_only: bool) {
    let name = volume["name"].clone();
    pod["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes is an array")
        .push(volume);
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("volumeMounts is an array")
        .push(json!({"name": name, "mountPath": mount_path, "readOnly": read_only}));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AgentSettings {
        AgentSettings {
            image: "agent:1".into(),
            kubelet_root_dir: "/var/lib/kubelet/".into(),
            cpu_request: Some("100m".into()),
            memory_request: Some("256Mi".into()),
            memory_limit: None,
            deadline: Duration::from_secs(3600),
            schedule_timeout: Duration::from_secs(60),
            run_id: "abc123".into(),
        }
    }

    fn s3_location() -> AgentLocation {
        AgentLocation {
            url: "s3://bucket/prefix".into(),
            flags: vec!["--endpoint".into(), "http://127.0.0.1:9000".into()],
            node_folder: None,
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
        }
    }

    fn volume(source: VolumeSource) -> SelectedVolume {
        SelectedVolume {
            namespace: "shop".into(),
            pod: "db-0".into(),
            pod_uid: "1234-uid".into(),
            node: "node-2".into(),
            volume: "data".into(),
            source,
        }
    }

    #[test]
    fn backup_pod_mounts_claim_read_only() {
        let pod = backup_pod(
            &volume(VolumeSource::Pvc {
                claim: "data-db-0".into(),
            }),
            0,
            "nightly",
            &settings(),
            &s3_location(),
        );
        let value = serde_json::to_value(&pod).unwrap();
        assert_eq!(value["spec"]["nodeName"], "node-2");
        assert_eq!(value["spec"]["restartPolicy"], "Never");
        assert_eq!(value["spec"]["activeDeadlineSeconds"], 3600);
        assert_eq!(
            value["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"],
            true
        );
        let container = &value["spec"]["containers"][0];
        assert_eq!(container["volumeMounts"][0]["readOnly"], true);
        assert_eq!(container["securityContext"]["privileged"], false);
        assert_eq!(
            container["securityContext"]["capabilities"]["add"],
            json!(["DAC_READ_SEARCH"])
        );
        assert_eq!(container["resources"]["requests"]["memory"], "256Mi");
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--pvc", "data-db-0"]));
        assert!(
            args.windows(2)
                .any(|w| w == ["--location", "s3://bucket/prefix"])
        );
    }

    #[test]
    fn backup_pod_reads_empty_dir_from_kubelet_folder() {
        let pod = backup_pod(
            &volume(VolumeSource::EmptyDir),
            1,
            "nightly",
            &settings(),
            &s3_location(),
        );
        let value = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            value["spec"]["volumes"][0]["hostPath"]["path"],
            "/var/lib/kubelet/pods/1234-uid/volumes/kubernetes.io~empty-dir/data"
        );
        assert_eq!(
            value["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
            true
        );
    }

    #[test]
    fn secrets_reach_the_pod_only_by_reference() {
        let pod = backup_pod(
            &volume(VolumeSource::EmptyDir),
            1,
            "nightly",
            &settings(),
            &s3_location(),
        );
        let text = serde_json::to_string(&pod).unwrap();
        assert!(!text.contains("\"SK\""));
        assert!(text.contains("kubectl-migrate-volumes-abc123"));
        let secret = run_secret("shop", &settings(), &s3_location(), b"pw");
        assert_eq!(secret.data.unwrap()[SECRET_ACCESS_KEY_KEY].0, b"SK");
    }

    #[test]
    fn restore_pod_mounts_claim_writable() {
        let pod = restore_pod("shop", "data-db-0", "snap1", 0, &settings(), &s3_location());
        let value = serde_json::to_value(&pod).unwrap();
        assert_eq!(value["spec"]["nodeName"], Value::Null);
        assert_eq!(
            value["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
            false
        );
        assert_eq!(
            value["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
            json!(["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"])
        );
    }
    fn args_of(container: &Value) -> Vec<String> {
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|arg| arg.as_str().unwrap().to_string())
            .collect()
    }

    fn app_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "cache-0", "namespace": "shop"},
            "spec": {
                "initContainers": [{"name": "migrate-db", "image": "tools:1"}],
                "containers": [{"name": "app", "image": "app:1"}],
                "volumes": [{"name": "scratch", "emptyDir": {}}]
            }
        })
    }

    #[test]
    fn restore_wait_runs_first_without_privileges() {
        let mut pod = app_pod();
        add_restore_wait(&mut pod, &settings(), Duration::from_secs(120));

        let init = pod["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init.len(), 2);
        assert_eq!(init[0]["name"], RESTORE_WAIT_CONTAINER);
        assert_eq!(init[1]["name"], "migrate-db");
        let wait = &init[0];
        assert_eq!(wait["image"], "agent:1");
        assert_eq!(wait["command"], json!(["kubectl-migrate"]));
        assert_eq!(
            args_of(wait),
            [
                "agent",
                "wait-restored",
                "--marker",
                "/kubectl-migrate-restore/restored",
                "--timeout",
                "120"
            ]
        );
        let security = &wait["securityContext"];
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["runAsUser"], WAIT_USER);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["capabilities"], json!({"drop": ["ALL"]}));
        assert_eq!(
            wait["volumeMounts"],
            json!([{"name": RESTORE_STATE_VOLUME, "mountPath": RESTORE_STATE_MOUNT, "readOnly": true}])
        );
        assert_eq!(wait["resources"]["requests"]["memory"], "256Mi");
        assert_eq!(
            pod["spec"]["volumes"],
            json!([
                {"name": "scratch", "emptyDir": {}},
                {"name": RESTORE_STATE_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}
            ])
        );
        let parsed: Result<Pod, _> = serde_json::from_value(pod);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn restore_wait_replaces_an_earlier_one() {
        let mut pod = app_pod();
        add_restore_wait(&mut pod, &settings(), Duration::from_secs(120));
        add_restore_wait(&mut pod, &settings(), Duration::from_secs(60));
        let init = pod["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init.len(), 2);
        assert_eq!(args_of(&init[0]).last().unwrap(), "60");
        assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn restore_wait_creates_init_container_list() {
        let mut pod = app_pod();
        pod["spec"]
            .as_object_mut()
            .unwrap()
            .remove("initContainers");
        add_restore_wait(&mut pod, &settings(), Duration::from_secs(5));
        let init = pod["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init.len(), 1);
        assert_eq!(init[0]["name"], RESTORE_WAIT_CONTAINER);
    }

    fn target() -> EmptyDirTarget<'static> {
        EmptyDirTarget {
            namespace: "shop",
            pod: "cache-0",
            node: "node-3",
            uid: "new-uid",
        }
    }

    #[test]
    fn empty_dir_restore_pod_writes_new_uid_folder() {
        let pod = empty_dir_restore_pod(
            &target(),
            "scratch",
            "snap1",
            true,
            2,
            &settings(),
            &s3_location(),
        );
        let value = serde_json::to_value(&pod).unwrap();

        let data = "/var/lib/kubelet/pods/new-uid/volumes/kubernetes.io~empty-dir/scratch";
        let state =
            "/var/lib/kubelet/pods/new-uid/volumes/kubernetes.io~empty-dir/kubectl-migrate-restore";
        assert_eq!(
            value["metadata"]["name"],
            "kubectl-migrate-restore-abc123-2"
        );
        assert_eq!(value["spec"]["nodeName"], "node-3");
        assert_eq!(
            value["spec"]["tolerations"],
            json!([{"operator": "Exists"}])
        );

        assert_eq!(
            value["spec"]["volumes"],
            json!([
                {"name": "data", "hostPath": {"path": data, "type": "Directory"}},
                {"name": "state", "hostPath": {"path": state, "type": "Directory"}}
            ])
        );
        let container = &value["spec"]["containers"][0];
        assert_eq!(
            container["volumeMounts"],
            json!([
                {"name": "data", "mountPath": data, "readOnly": false},
                {"name": "state", "mountPath": state, "readOnly": false}
            ])
        );
        let args = args_of(container);
        assert_eq!(
            args[..8],
            [
                "agent",
                "restore",
                "--target",
                data,
                "--snapshot",
                "snap1",
                "--marker",
                &format!("{state}/restored")
            ]
        );

        assert_eq!(
            container["securityContext"]["capabilities"],
            json!({"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]})
        );
        assert_eq!(container["securityContext"]["privileged"], false);
    }

    #[test]
    fn empty_dir_restore_pod_without_marker() {
        let pod = empty_dir_restore_pod(
            &target(),
            "scratch",
            "snap1",
            false,
            0,
            &settings(),
            &s3_location(),
        );
        let value = serde_json::to_value(&pod).unwrap();
        assert_eq!(value["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert!(!args_of(&value["spec"]["containers"][0]).contains(&"--marker".to_string()));
    }
}
