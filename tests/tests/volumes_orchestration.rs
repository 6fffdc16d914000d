//! Volume data through the test API server. The backup tests check the agent pods that
//! `backup create` starts (node, mounts, security context, cleanup) and annotation handling.
//! The restore tests check that the claim is filled before the workload is created, that an
//! emptyDir's data reaches the new pod before its controller exists, and that a restore pod
//! that cannot run stops the restore with the reason.

mod volumes_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::apiserver::{KUBELET_ROOT_ANNOTATION, KubeletOptions, ServerOptions, TestServer};
use testkit::plugins::{self, apply_json as apply, get_json, kubectl_at as kubectl};
use volumes_support::{
    LOCAL_AGENT_IMAGE, PodWatch, ServerProcess, migrate, tree_listing, write_volume_record,
};

const PASSWORD: &str = "orchestration-password";
/// Agent image the simulated kubelet only marks Running, so the test decides the outcome.
const REMOTE_AGENT_IMAGE: &str = "example.test/kubectl-plugins-agent:remote";

fn annotated_pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "shop", "annotations": annotations},
        "spec": {
            "containers": [{"name": "db", "image": "postgres:16", "volumeMounts": [
                {"name": "scratch", "mountPath": "/scratch"}
            ]}],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "creds", "secret": {"secretName": "db"}},
                {"name": "settings", "configMap": {"name": "db"}}
            ]
        }
    })
}

fn volume_named(pod: &Value, name: &str) -> Value {
    pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no volume {name} in {pod}"))
}

fn mount_named(container: &Value, name: &str) -> Value {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no mount {name} in {container}"))
}

#[test]
fn backup_runs_agent_pods_for_annotated_volumes() {
    let work = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(work.path(), PASSWORD);
    let kubeconfig = &server.kubeconfig;
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    apply(
        kubeconfig,
        &annotated_pod(json!({"backup.velero.io/backup-volumes": "scratch,host,creds"})),
    );
    let pod = get_json(kubeconfig, &["pod", "db-0", "-n", "shop"]);
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(pod["spec"]["nodeName"], "node-1");

    // The emptyDir as the kubelet keeps it, under a kubelet root of our own.
    let kubelet_root = work.path().join("kubelet");
    let scratch = kubelet_root.join(format!(
        "pods/{uid}/volumes/kubernetes.io~empty-dir/scratch"
    ));
    std::fs::create_dir_all(scratch.join("cache")).unwrap();
    std::fs::write(scratch.join("cache/entries.db"), "row\n".repeat(10_000)).unwrap();
    std::fs::write(scratch.join("lock"), b"1").unwrap();

    let location = format!("file://{}", work.path().join("location").display());
    let watch = PodWatch::start(kubeconfig, "shop");
    let output = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "create",
        "nightly-1",
        "--include-namespaces",
        "shop",
        "--location",
        &location,
        "--kubelet-root-dir",
        kubelet_root.to_str().unwrap(),
        "--agent-image",
        LOCAL_AGENT_IMAGE,
        "--agent-memory-request",
        "128Mi",
        "--volume-timeout",
        "120",
    ]));
    let events = watch.stop();
    let stdout = plugins::stdout(&output);
    let stderr = plugins::stderr(&output);
    assert!(
        output.status.success(),
        "backup failed:\n{stdout}\n{stderr}"
    );

    // Annotation handling: scratch copied, the other two named with the reason.
    assert!(stdout.contains("volume data: 1 volumes copied"), "{stdout}");
    assert!(stderr.contains("volume shop/db-0/host not copied: hostPath volumes are node files outside the pod, never copied"), "{stderr}");
    assert!(stderr.contains("volume shop/db-0/creds not copied: secret volumes are restored from the Secret object, never copied"), "{stderr}");
    assert!(!stderr.contains("shop/db-0/settings"), "{stderr}");

    // The agent pod: on the pod's node, the kubelet folder read-only, least privilege.
    let agents: Vec<&Value> = events
        .iter()
        .filter(|(kind, object)| {
            kind == "ADDED"
                && object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("kubectl-migrate-backup-")
        })
        .map(|(_, object)| object)
        .collect();
    assert_eq!(agents.len(), 1, "agent pods seen: {events:?}");
    let agent = agents[0];
    let name = agent["metadata"]["name"].as_str().unwrap();
    assert_eq!(agent["spec"]["nodeName"], "node-1");
    assert_eq!(agent["spec"]["restartPolicy"], "Never");
    assert_eq!(agent["spec"]["activeDeadlineSeconds"], 120);
    let data = volume_named(agent, "data");
    assert_eq!(
        data["hostPath"],
        json!({"path": scratch.to_str().unwrap(), "type": "Directory"})
    );
    let container = &agent["spec"]["containers"][0];
    assert_eq!(container["image"], LOCAL_AGENT_IMAGE);
    let mount = mount_named(container, "data");
    assert_eq!(
        mount,
        json!({"name": "data", "mountPath": scratch.to_str().unwrap(), "readOnly": true})
    );
    assert_eq!(container["securityContext"]["privileged"], false);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"],
        json!({"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]})
    );
    assert_eq!(container["resources"]["requests"]["memory"], "128Mi");
    assert!(container["env"].to_string().contains("secretKeyRef"));
    assert!(!container.to_string().contains(PASSWORD));

    // Cleanup: the agent pod was deleted and no agent Secret is left.
    assert!(
        events
            .iter()
            .any(|(kind, object)| kind == "DELETED" && object["metadata"]["name"] == name)
    );
    let secrets = get_json(kubeconfig, &["secrets", "-n", "shop"]);
    assert!(
        secrets["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("kubectl-migrate-volumes-")),
        "{secrets}"
    );
    let pods = get_json(kubeconfig, &["pods", "-n", "shop"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 1);

    // The record feeds describe --details, and verify opens every chunk.
    let describe = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "describe",
        "nightly-1",
        "--details",
        "--location",
        &location,
    ]));
    let text = plugins::stdout(&describe);
    let row = text
        .lines()
        .find(|line| line.contains("scratch"))
        .unwrap_or_else(|| panic!("{text}"));
    for cell in ["shop", "db-0", "emptyDir", "40001", "2"] {
        assert!(row.contains(cell), "row {row:?} lacks {cell}");
    }
    let verify = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "verify",
        "nightly-1",
        "--location",
        &location,
    ]));
    assert!(verify.status.success(), "{}", plugins::stderr(&verify));
    assert!(
        plugins::stdout(&verify).contains("volume data of backup nightly-1: 1 snapshots"),
        "{}",
        plugins::stdout(&verify)
    );

    // The manifest lists the volume record with its hash.
    let folder = work.path().join("location");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(folder.join("backups/nightly-1/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["volumeRecords"][0]["key"],
        "backups/nightly-1/volumes/shop/db-0/scratch.json"
    );

    // A damaged pack and a changed record are counted apart from the objects.
    let packs = files_under(&folder.join("repository/data"));
    assert_eq!(packs.len(), 1, "{packs:?}");
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    bytes[100] ^= 0x80;
    std::fs::write(&packs[0], bytes).unwrap();
    let record = folder.join("backups/nightly-1/volumes/shop/db-0/scratch.json");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace("\"node-1\"", "\"node-9\"")).unwrap();
    let verify = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "verify",
        "nightly-1",
        "--location",
        &location,
    ]));
    let stderr = plugins::stderr(&verify);
    assert_eq!(verify.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("backup nightly-1 failed verification: 1 of 1 volume records missing or changed, 2 problems in the volume data (intact chunks: 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains("objects missing"), "{stderr}");
}

/// Lists the files under a folder, recursively.
fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Writes a backup to a folder location whose record names claim data-db-0 of namespace shop holds
/// snapshot `snap-1`, with a Deployment that mounts the claim.
fn write_pvc_backup(kubeconfig: &Path, home: &Path, location: &str, storage_class: Option<&str>) {
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    let mut claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-0", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    if let Some(class) = storage_class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    apply(kubeconfig, &claim);
    apply(
        kubeconfig,
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "containers": [{"name": "db", "image": "postgres:16", "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]
                    }
                }
            }
        }),
    );
    let output = plugins::run(migrate(kubeconfig, home, PASSWORD).args([
        "backup",
        "create",
        "with-data",
        "--include-namespaces",
        "shop",
        "--location",
        location,
    ]));
    assert!(output.status.success(), "{}", plugins::stderr(&output));

    let folder = Path::new(location.trim_start_matches("file://"));
    write_volume_record(
        &folder.join("backups/with-data"),
        "db-0",
        "data",
        json!({"pvc": {"claim": "data-db-0"}}),
        "snap-1",
    );
}

fn in_process_server() -> TestServer {
    TestServer::start(ServerOptions {
        kubelet: Some(KubeletOptions::default()),
        ..ServerOptions::default()
    })
}

fn restore_command(server: &TestServer, home: &Path, location: &str, extra: &[&str]) -> Command {
    let mut command = migrate(server.kubeconfig(), home, PASSWORD);
    command.args([
        "restore",
        "create",
        "--from-backup",
        "with-data",
        "--location",
        location,
        "--namespace-mappings",
        "shop:shop-new",
        "--agent-image",
        REMOTE_AGENT_IMAGE,
    ]);
    command.args(extra);
    command
}

/// Waits (bounded) for a pod whose name starts with `prefix` in `namespace`.
fn wait_for_pod(server: &TestServer, namespace: &str, prefix: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let pods = get_json(server.kubeconfig(), &["pods", "-n", namespace]);
        if let Some(pod) = pods["items"].as_array().unwrap().iter().find(|pod| {
            pod["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(prefix)
        }) {
            return pod.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no pod {prefix}* appeared in {namespace}");
}

fn exists(server: &TestServer, args: &[&str]) -> bool {
    let mut full = vec!["get"];
    full.extend(args);
    kubectl(server.kubeconfig(), &full).status.success()
}

#[test]
fn restore_fills_claim_before_workload() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let location = format!("file://{}", work.path().join("location").display());
    write_pvc_backup(server.kubeconfig(), work.path(), &location, None);

    let restore = restore_command(&server, work.path(), &location, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // While the restore pod runs, the claim exists and the workload does not.
    let pod = wait_for_pod(&server, "shop-new", "kubectl-migrate-restore-");
    assert!(exists(&server, &["pvc", "data-db-0", "-n", "shop-new"]));
    assert!(!exists(&server, &["deployment", "db", "-n", "shop-new"]));
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        volume_named(&pod, "data")["persistentVolumeClaim"]["claimName"],
        "data-db-0"
    );
    assert_eq!(mount_named(container, "data")["readOnly"], false);
    assert_eq!(
        container["securityContext"]["capabilities"]["add"],
        json!(["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"])
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|pair| pair == ["--snapshot", "snap-1"]),
        "{args:?}"
    );

    // This image does not run here: the test plays the kubelet and reports success.
    let name = pod["metadata"]["name"].as_str().unwrap();
    server
        .set_pod_status("shop-new", name, json!({"phase": "Succeeded"}))
        .expect("pod status set");
    let output = restore.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "restore failed: {}",
        plugins::stderr(&output)
    );
    assert!(
        plugins::stderr(&output)
            .contains("volume data restored into PersistentVolumeClaim shop-new/data-db-0")
    );
    assert!(exists(&server, &["deployment", "db", "-n", "shop-new"]));
    assert!(!exists(&server, &["pod", name, "-n", "shop-new"]));
}

#[test]
fn restore_stops_on_unschedulable_pod() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let location = format!("file://{}", work.path().join("location").display());
    write_pvc_backup(server.kubeconfig(), work.path(), &location, None);
    let taint = kubectl(
        server.kubeconfig(),
        &["taint", "nodes", "node-1", "dedicated=db:NoSchedule"],
    );
    assert!(taint.status.success(), "{}", plugins::stderr(&taint));

    let started = Instant::now();
    let output = plugins::run(&mut restore_command(
        &server,
        work.path(),
        &location,
        &["--schedule-timeout", "2"],
    ));
    let stderr = plugins::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(stderr.contains("cannot be scheduled: 0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}"), "{stderr}");
    assert!(stderr.contains("FailedScheduling"), "{stderr}");
    assert!(!exists(&server, &["deployment", "db", "-n", "shop-new"]));
    let pods = get_json(server.kubeconfig(), &["pods", "-n", "shop-new"]);
    assert!(
        pods["items"].as_array().unwrap().is_empty(),
        "agent pod left: {pods}"
    );
    assert!(agent_secrets(&server, "shop-new").is_empty());
}

#[test]
fn restore_stops_on_missing_storage_class() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let location = format!("file://{}", work.path().join("location").display());
    write_pvc_backup(
        server.kubeconfig(),
        work.path(),
        &location,
        Some("fast-ssd"),
    );

    let output = plugins::run(&mut restore_command(&server, work.path(), &location, &[]));
    let stderr = plugins::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("StorageClass fast-ssd of PersistentVolumeClaim shop-new/data-db-0 does not exist in the target cluster: map it with --storage-class-mappings fast-ssd:NEW"),
        "{stderr}"
    );
    assert!(!exists(&server, &["deployment", "db", "-n", "shop-new"]));
}

fn agent_secrets(server: &TestServer, namespace: &str) -> Vec<String> {
    let secrets = get_json(server.kubeconfig(), &["secrets", "-n", namespace]);
    secrets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| secret["metadata"]["name"].as_str().unwrap().to_string())
        .filter(|name| name.starts_with("kubectl-migrate-volumes-"))
        .collect()
}

#[test]
fn interrupted_restore_deletes_pod_and_secret() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let location = format!("file://{}", work.path().join("location").display());
    write_pvc_backup(server.kubeconfig(), work.path(), &location, None);

    let restore = restore_command(&server, work.path(), &location, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pod(&server, "shop-new", "kubectl-migrate-restore-");
    assert_eq!(agent_secrets(&server, "shop-new").len(), 1);

    // Ctrl-C while the restore pod runs.
    let status = Command::new("kill")
        .args(["-INT", &restore.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = restore.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        plugins::stderr(&output)
    );
    assert!(
        plugins::stderr(&output).contains("interrupted: agent pods and secrets deleted"),
        "{}",
        plugins::stderr(&output)
    );
    let pods = get_json(server.kubeconfig(), &["pods", "-n", "shop-new"]);
    assert!(pods["items"].as_array().unwrap().is_empty(), "{pods}");
    assert!(agent_secrets(&server, "shop-new").is_empty());
    assert!(!exists(&server, &["deployment", "db", "-n", "shop-new"]));
}

#[test]
fn backup_reports_agent_failure_reason() {
    let work = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(work.path(), PASSWORD);
    let kubeconfig = &server.kubeconfig;
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    apply(
        kubeconfig,
        &annotated_pod(json!({"backup.velero.io/backup-volumes": "scratch"})),
    );
    let pod = get_json(kubeconfig, &["pod", "db-0", "-n", "shop"]);
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let kubelet_root = work.path().join("kubelet");
    let scratch = kubelet_root.join(format!(
        "pods/{uid}/volumes/kubernetes.io~empty-dir/scratch"
    ));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("file"), b"data").unwrap();

    // The plugin creates the repository with another password than the agents get.
    let location = format!("file://{}", work.path().join("location").display());
    let output = plugins::run(
        migrate(kubeconfig, work.path(), PASSWORD)
            .env("KUBECTL_MIGRATE_PASSWORD", "another-password")
            .args([
                "backup",
                "create",
                "nightly-1",
                "--include-namespaces",
                "shop",
                "--location",
                &location,
                "--kubelet-root-dir",
                kubelet_root.to_str().unwrap(),
                "--agent-image",
                LOCAL_AGENT_IMAGE,
            ]),
    );
    let stderr = plugins::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("backup nightly-1: 1 of 1 volumes failed: volume shop/db-0/scratch: pod shop/kubectl-migrate-backup-"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "wrong repository password: check --password-file or KUBECTL_MIGRATE_PASSWORD"
        ),
        "{stderr}"
    );
    let pods = get_json(kubeconfig, &["pods", "-n", "shop"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 1, "{pods}");

    // The volume step runs before the manifest, so the failed backup stays incomplete.
    let folder = work.path().join("location/backups/nightly-1");
    assert!(folder.join("resources").is_dir());
    assert!(!folder.join("manifest.json").exists());
    assert!(
        stderr.contains("backup nightly-1 stays incomplete (no manifest)"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(folder.join("backup.log")).unwrap();
    assert!(log.contains("backup nightly-1 failed at "), "{log}");
    let get = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "get",
        "nightly-1",
        "--location",
        &location,
    ]));
    let table = plugins::stdout(&get);
    assert!(table.contains("Incomplete"), "{table}");
    let restore = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "restore",
        "create",
        "--from-backup",
        "nightly-1",
        "--location",
        &location,
    ]));
    assert_eq!(restore.status.code(), Some(1));
    assert!(
        plugins::stderr(&restore).contains("is incomplete (it has no manifest)"),
        "{}",
        plugins::stderr(&restore)
    );
}

#[test]
fn interrupted_volume_step_leaves_backup_incomplete() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let kubeconfig = server.kubeconfig();
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    apply(
        kubeconfig,
        &annotated_pod(json!({"backup.velero.io/backup-volumes": "scratch"})),
    );
    let location = format!("file://{}", work.path().join("location").display());
    let backup = migrate(kubeconfig, work.path(), PASSWORD)
        .args([
            "backup",
            "create",
            "nightly-1",
            "--include-namespaces",
            "shop",
            "--location",
            &location,
            "--agent-image",
            REMOTE_AGENT_IMAGE,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Ctrl-C while the agent pod runs.
    wait_for_pod(&server, "shop", "kubectl-migrate-backup-");
    let status = Command::new("kill")
        .args(["-INT", &backup.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = backup.wait_with_output().unwrap();
    let stderr = plugins::stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: agent pods and secrets deleted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("backup nightly-1 interrupted: it stays incomplete (no manifest)"),
        "{stderr}"
    );
    let folder = work.path().join("location/backups/nightly-1");
    assert!(folder.join("resources").is_dir());
    assert!(!folder.join("manifest.json").exists());
    let pods = get_json(kubeconfig, &["pods", "-n", "shop"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 1, "{pods}");
    assert!(agent_secrets(&server, "shop").is_empty());
}

/// Applies a StatefulSet `cache` in namespace shop and its pod cache-0, which the StatefulSet
/// owns and whose emptyDir `scratch` is annotated for backup. The simulated kubelet creates the
/// emptyDir folder under `kubelet_root`.
fn apply_stateful_cache(kubeconfig: &Path, kubelet_root: &Path) -> Value {
    apply_stateful_cache_with(kubeconfig, kubelet_root, "scratch")
}

/// Same as [`apply_stateful_cache`], with `backup_volumes` as the pod's
/// backup.velero.io/backup-volumes annotation (empty for none).
fn apply_stateful_cache_with(
    kubeconfig: &Path,
    kubelet_root: &Path,
    backup_volumes: &str,
) -> Value {
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    let volumes = json!([{"name": "scratch", "emptyDir": {}}]);
    let containers = json!([{"name": "cache", "image": "redis:7",
        "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}]);
    apply(
        kubeconfig,
        &json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "cache", "namespace": "shop"},
            "spec": {
                "serviceName": "cache", "replicas": 1,
                "selector": {"matchLabels": {"app": "cache"}},
                "template": {
                    "metadata": {"labels": {"app": "cache"}},
                    "spec": {"containers": containers, "volumes": volumes}
                }
            }
        }),
    );
    let statefulset = get_json(kubeconfig, &["statefulset", "cache", "-n", "shop"]);
    apply(
        kubeconfig,
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "cache-0", "namespace": "shop",
                "labels": {"app": "cache", "statefulset.kubernetes.io/pod-name": "cache-0"},
                "annotations": {
                    "backup.velero.io/backup-volumes": backup_volumes,
                    KUBELET_ROOT_ANNOTATION: kubelet_root.to_str().unwrap()
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache",
                    "uid": statefulset["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {"containers": containers, "volumes": volumes}
        }),
    );
    wait_until_running(kubeconfig, "shop", "cache-0")
}

/// Waits (bounded) until a pod is Running and returns it.
fn wait_until_running(kubeconfig: &Path, namespace: &str, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pod = get_json(kubeconfig, &["pod", name, "-n", namespace]);
        if pod["status"]["phase"] == "Running" {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} is not Running: {pod}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn empty_dir_data_reaches_restored_pod() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("source")).unwrap();
    std::fs::create_dir_all(work.path().join("target")).unwrap();
    let source = ServerProcess::start(&work.path().join("source"), PASSWORD);
    let target = ServerProcess::start(&work.path().join("target"), PASSWORD);
    // Both simulated nodes keep their kubelet folders here; pod UIDs keep them apart.
    let kubelet_root = work.path().join("kubelet");
    let location = format!("file://{}", work.path().join("location").display());

    // The emptyDir of the source pod, with a file tree to carry over.
    let pod = apply_stateful_cache(&source.kubeconfig, &kubelet_root);
    let old_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let scratch = kubelet_root.join(format!(
        "pods/{old_uid}/volumes/kubernetes.io~empty-dir/scratch"
    ));
    std::fs::create_dir_all(scratch.join("cache/shard-1")).unwrap();
    std::fs::write(
        scratch.join("cache/shard-1/entries.db"),
        "row\n".repeat(5_000),
    )
    .unwrap();
    std::fs::write(scratch.join("lock"), b"1").unwrap();
    std::os::unix::fs::symlink("cache/shard-1/entries.db", scratch.join("current")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch.join("lock"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let original = tree_listing(&scratch);

    // Backup: the StatefulSet owns the pod, and the pod is kept for its emptyDir data.
    let backup = plugins::run(migrate(&source.kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "create",
        "cache-1",
        "--include-namespaces",
        "shop",
        "--location",
        &location,
        "--kubelet-root-dir",
        kubelet_root.to_str().unwrap(),
        "--agent-image",
        LOCAL_AGENT_IMAGE,
    ]));
    assert!(
        backup.status.success(),
        "backup failed: {}",
        plugins::stderr(&backup)
    );
    let backup_folder = work.path().join("location/backups/cache-1");
    assert!(
        backup_folder
            .join("resources/core/v1/pods/shop/cache-0.json")
            .is_file()
    );
    let log = std::fs::read_to_string(backup_folder.join("backup.log")).unwrap();
    assert!(
        log.contains(
            "kept pod shop/cache-0 although StatefulSet cache owns it: its emptyDir data was copied"
        ),
        "{log}"
    );

    // A server-side dry run lists the steps and creates nothing. Its creates need the
    // namespace to exist, because a dry run does not create it.
    apply(
        &target.kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    let dry_run = plugins::run(migrate(&target.kubeconfig, work.path(), PASSWORD).args([
        "restore",
        "create",
        "--from-backup",
        "cache-1",
        "--location",
        &location,
        "--kubelet-root-dir",
        kubelet_root.to_str().unwrap(),
        "--agent-image",
        LOCAL_AGENT_IMAGE,
        "--dry-run",
        "server",
    ]));
    let dry_stderr = plugins::stderr(&dry_run);
    assert!(
        dry_run.status.success(),
        "{dry_stderr}\n{}",
        plugins::stdout(&dry_run)
    );
    assert!(
        dry_stderr.contains("dry run: would create pod shop/cache-0 before its controller, with init container kubectl-migrate-restore-wait"),
        "{dry_stderr}"
    );
    assert!(
        dry_stderr.contains(
            "dry run: would then restore emptyDir scratch of pod shop/cache-0 from snapshot "
        ),
        "{dry_stderr}"
    );
    let pods = get_json(&target.kubeconfig, &["pods", "-n", "shop"]);
    assert!(pods["items"].as_array().unwrap().is_empty(), "{pods}");

    // Restore into the second server, watching the order of creation.
    let pod_watch = PodWatch::start(&target.kubeconfig, "shop");
    let statefulset_watch = PodWatch::start_for(&target.kubeconfig, "statefulsets", "shop");
    let restore = plugins::run(migrate(&target.kubeconfig, work.path(), PASSWORD).args([
        "restore",
        "create",
        "--from-backup",
        "cache-1",
        "--location",
        &location,
        "--kubelet-root-dir",
        kubelet_root.to_str().unwrap(),
        "--agent-image",
        LOCAL_AGENT_IMAGE,
    ]));
    let pod_events = pod_watch.stop();
    let statefulset_events = statefulset_watch.stop();
    let stderr = plugins::stderr(&restore);
    assert!(restore.status.success(), "restore failed: {stderr}");
    assert!(
        stderr.contains("volume data restored into pod shop/cache-0: scratch"),
        "{stderr}"
    );

    // The pod: a new UID, the waiting init container first, no owner until the controller
    // adopts it.
    let pod = get_json(&target.kubeconfig, &["pod", "cache-0", "-n", "shop"]);
    let new_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    assert_ne!(new_uid, old_uid);
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["name"], "kubectl-migrate-restore-wait");
    assert_eq!(init["image"], LOCAL_AGENT_IMAGE);
    assert_eq!(init["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        init["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]})
    );
    assert_eq!(pod["metadata"]["ownerReferences"], Value::Null);

    // Created before its controller: the pod's ADDED event has the lower resourceVersion.
    let added_version = |events: &[(String, Value)], name: &str| -> u64 {
        events
            .iter()
            .find(|(kind, object)| kind == "ADDED" && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no ADDED event for {name} in {events:?}"))
            .1["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        added_version(&pod_events, "cache-0") < added_version(&statefulset_events, "cache"),
        "the StatefulSet was created before its pod"
    );

    // The restore agent pod ran on the pod's node with the folder of the NEW UID.
    let agent = pod_events
        .iter()
        .find(|(kind, object)| {
            kind == "ADDED"
                && object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("kubectl-migrate-restore-")
        })
        .map(|(_, object)| object.clone())
        .unwrap_or_else(|| panic!("no restore agent pod in {pod_events:?}"));
    assert_eq!(agent["spec"]["nodeName"], pod["spec"]["nodeName"]);
    let restored = kubelet_root.join(format!(
        "pods/{new_uid}/volumes/kubernetes.io~empty-dir/scratch"
    ));
    assert_eq!(
        volume_named(&agent, "data")["hostPath"],
        json!({"path": restored.to_str().unwrap(), "type": "Directory"})
    );
    let agent_name = agent["metadata"]["name"].as_str().unwrap();
    assert!(
        pod_events
            .iter()
            .any(|(kind, object)| kind == "DELETED" && object["metadata"]["name"] == agent_name)
    );
    assert!(agent_secrets_at(&target.kubeconfig, "shop").is_empty());

    // The data equals the original tree, and the marker sits in the state volume.
    assert_eq!(tree_listing(&restored), original);
    let marker = kubelet_root.join(format!(
        "pods/{new_uid}/volumes/kubernetes.io~empty-dir/kubectl-migrate-restore/restored"
    ));
    let marker_text = std::fs::read_to_string(&marker).unwrap();
    assert!(marker_text.contains("\"snapshot\""), "{marker_text}");
}

fn agent_secrets_at(kubeconfig: &Path, namespace: &str) -> Vec<String> {
    let secrets = get_json(kubeconfig, &["secrets", "-n", namespace]);
    secrets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| secret["metadata"]["name"].as_str().unwrap().to_string())
        .filter(|name| name.starts_with("kubectl-migrate-volumes-"))
        .collect()
}

/// Writes a backup of the StatefulSet cache and its pod (kept with --include-owned, no agent
/// runs) and a hand-written record that maps emptyDir scratch of shop/cache-0 to `snap-e`.
fn write_empty_dir_backup(server: &TestServer, home: &Path, location: &str) {
    apply_stateful_cache_with(server.kubeconfig(), &home.join("kubelet"), "");
    let output = plugins::run(migrate(server.kubeconfig(), home, PASSWORD).args([
        "backup",
        "create",
        "with-data",
        "--include-namespaces",
        "shop",
        "--include-owned",
        "--location",
        location,
    ]));
    assert!(output.status.success(), "{}", plugins::stderr(&output));

    let folder = Path::new(location.trim_start_matches("file://"));
    write_volume_record(
        &folder.join("backups/with-data"),
        "cache-0",
        "scratch",
        json!("emptyDir"),
        "snap-e",
    );
}

#[test]
fn restored_pod_waits_before_its_controller() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let location = format!("file://{}", work.path().join("location").display());
    write_empty_dir_backup(&server, work.path(), &location);

    let restore = restore_command(
        &server,
        work.path(),
        &location,
        &["--kubelet-root-dir", "/data/kubelet"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();

    // While the restore agent runs, the pod exists with its init container and the
    // StatefulSet does not.
    let agent = wait_for_pod(&server, "shop-new", "kubectl-migrate-restore-");
    let pod = get_json(server.kubeconfig(), &["pod", "cache-0", "-n", "shop-new"]);
    assert!(!exists(
        &server,
        &["statefulset", "cache", "-n", "shop-new"]
    ));
    assert_eq!(
        pod["spec"]["initContainers"][0]["name"],
        "kubectl-migrate-restore-wait"
    );
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(agent["spec"]["nodeName"], pod["spec"]["nodeName"]);
    assert_eq!(
        volume_named(&agent, "data")["hostPath"]["path"],
        format!("/data/kubelet/pods/{uid}/volumes/kubernetes.io~empty-dir/scratch")
    );
    assert_eq!(
        volume_named(&agent, "state")["hostPath"]["path"],
        format!("/data/kubelet/pods/{uid}/volumes/kubernetes.io~empty-dir/kubectl-migrate-restore")
    );

    // The agent fails: the pod is reported failed and kept, and the rest of the phase runs.
    let name = agent["metadata"]["name"].as_str().unwrap();
    server
        .set_pod_status(
            "shop-new",
            name,
            json!({"phase": "Failed", "containerStatuses": [{"name": "agent", "image": REMOTE_AGENT_IMAGE,
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "message": "snapshot snap-e not found"}}}]}),
        )
        .expect("pod status set");
    let output = restore.wait_with_output().unwrap();
    let stdout = plugins::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}{}",
        plugins::stderr(&output)
    );
    assert!(
        stdout.contains("created, but its emptyDir data was not restored: volume scratch: pod shop-new/kubectl-migrate-restore-"),
        "{stdout}"
    );
    assert!(stdout.contains("snapshot snap-e not found"), "{stdout}");
    assert!(exists(&server, &["statefulset", "cache", "-n", "shop-new"]));
    assert!(exists(&server, &["pod", "cache-0", "-n", "shop-new"]));
    assert!(!exists(&server, &["pod", name, "-n", "shop-new"]));
    assert!(agent_secrets(&server, "shop-new").is_empty());
}

#[test]
fn unschedulable_restored_pod_fails_with_reason() {
    let work = tempfile::tempdir().unwrap();
    let server = in_process_server();
    let location = format!("file://{}", work.path().join("location").display());
    write_empty_dir_backup(&server, work.path(), &location);
    let taint = kubectl(
        server.kubeconfig(),
        &["taint", "nodes", "node-1", "dedicated=db:NoSchedule"],
    );
    assert!(taint.status.success(), "{}", plugins::stderr(&taint));

    let started = Instant::now();
    let output = plugins::run(&mut restore_command(
        &server,
        work.path(),
        &location,
        &["--schedule-timeout", "2"],
    ));
    let stdout = plugins::stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        stdout.contains("cannot be scheduled: 0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}"),
        "{stdout}"
    );
    let pods = get_json(server.kubeconfig(), &["pods", "-n", "shop-new"]);
    let names: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pod| pod["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache-0"], "agent pod left or data pod missing");
    assert!(agent_secrets(&server, "shop-new").is_empty());
}

#[test]
fn deployment_pod_kept_for_empty_dir_data() {
    let work = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(work.path(), PASSWORD);
    let kubeconfig = &server.kubeconfig;
    let kubelet_root = work.path().join("kubelet");
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    let template = json!({
        "metadata": {"labels": {"app": "web", "pod-template-hash": "5d8f"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}]}
    });
    apply(
        kubeconfig,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}}),
    );
    let deployment = get_json(kubeconfig, &["deployment", "web", "-n", "shop"]);
    apply(
        kubeconfig,
        &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d8f", "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "5d8f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": deployment["metadata"]["uid"], "controller": true}]},
            "spec": {"replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                "template": template}}),
    );
    let replica_set = get_json(kubeconfig, &["replicaset", "web-5d8f", "-n", "shop"]);
    for (name, backup_volumes) in [("web-5d8f-a1", "scratch"), ("web-5d8f-b2", "")] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "5d8f"},
                "annotations": {"backup.velero.io/backup-volumes": backup_volumes,
                    KUBELET_ROOT_ANNOTATION: kubelet_root.to_str().unwrap()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                    "uid": replica_set["metadata"]["uid"], "controller": true}]}});
        pod["spec"] = template["spec"].clone();
        apply(kubeconfig, &pod);
        wait_until_running(kubeconfig, "shop", name);
    }

    let location = format!("file://{}", work.path().join("location").display());
    let output = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "create",
        "web-1",
        "--include-namespaces",
        "shop",
        "--location",
        &location,
        "--kubelet-root-dir",
        kubelet_root.to_str().unwrap(),
        "--agent-image",
        LOCAL_AGENT_IMAGE,
    ]));
    assert!(output.status.success(), "{}", plugins::stderr(&output));

    // The ReplicaSet and both pods are left out as owned, then the pod with data is kept.
    let resources = work.path().join("location/backups/web-1/resources");
    assert!(
        resources
            .join("apps/v1/deployments/shop/web.json")
            .is_file()
    );
    assert!(!resources.join("apps/v1/replicasets").exists());
    assert!(
        resources
            .join("core/v1/pods/shop/web-5d8f-a1.json")
            .is_file()
    );
    assert!(
        !resources
            .join("core/v1/pods/shop/web-5d8f-b2.json")
            .exists()
    );
    let log =
        std::fs::read_to_string(work.path().join("location/backups/web-1/backup.log")).unwrap();
    assert!(
        log.contains("kept pod shop/web-5d8f-a1 although ReplicaSet web-5d8f owns it"),
        "{log}"
    );
    assert!(
        log.contains("left out 3 objects owned by a backed-up controller"),
        "{log}"
    );
}
