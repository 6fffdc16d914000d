//! Pods with PersistentVolumeClaims in the simulated kubelet. Local processes of such pods run
//! in a mount namespace and root of their own, with each claim's PersistentVolume folder
//! mounted at the container path. The first tests check the kubelet itself: mounts, read-only
//! mounts, process identity, cleanup, and the reasons a claim cannot be used. The last ones
//! move a claim's data with `kubectl migrate backup create` and `restore create` through the
//! real agent.

mod volumes_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::apiserver::{KubeletOptions, NodeSpec, ServerOptions, TestServer};
use testkit::plugins::{self, apply_json as apply, get_json, kubectl_at as kubectl};
use volumes_support::{
    LOCAL_AGENT_IMAGE, PodWatch, ServerProcess, migrate, tree_listing, write_volume_record,
};

const PASSWORD: &str = "pvc-password";
/// Image whose containers the kubelet runs from a folder of this test (host tools on `PATH`).
const TOOLS_IMAGE: &str = "example.test/tools:1";

/// Waits (bounded) until `done` accepts the pod, and returns it.
fn wait_for_pod(kubeconfig: &Path, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pod = get_json(kubeconfig, &["pod", name, "-n", "default"]);
        if done(&pod) {
            return pod;
        }
        assert!(Instant::now() < deadline, "pod {name} never {what}: {pod}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn phase_is(phase: &'static str) -> impl Fn(&Value) -> bool {
    move |pod: &Value| pod["status"]["phase"] == phase
}

fn pod_log(kubeconfig: &Path, name: &str) -> String {
    plugins::stdout(&kubectl(kubeconfig, &["logs", name, "-n", "default"]))
}

/// Returns "REASON: message" of each event about an object.
fn events_of(kubeconfig: &Path, name: &str) -> Vec<String> {
    let events = get_json(kubeconfig, &["events", "-n", "default"]);
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["involvedObject"]["name"] == name)
        .map(|event| {
            format!(
                "{}: {}",
                event["reason"].as_str().unwrap_or(""),
                event["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Starts a server whose kubelet runs TOOLS_IMAGE from an empty folder, so commands come from the
/// host's `PATH`.
fn tools_server(tools: &Path) -> TestServer {
    TestServer::start(ServerOptions {
        kubelet: Some(KubeletOptions {
            nodes: vec![NodeSpec::new("node-1"), NodeSpec::new("node-2")],
            local_images: vec![(TOOLS_IMAGE.to_string(), tools.to_path_buf())],
        }),
        ..ServerOptions::default()
    })
}

fn host_path_volume(name: &str, path: &Path, claim: Option<&str>) -> Value {
    let mut volume = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": path.to_str().unwrap(), "type": "Directory"}}
    });
    if let Some(claim) = claim {
        volume["spec"]["claimRef"] = json!({"namespace": "default", "name": claim});
    }
    volume
}

fn claim(name: &str, volume_name: Option<&str>) -> Value {
    let mut claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    if let Some(volume) = volume_name {
        claim["spec"]["volumeName"] = json!(volume);
    }
    claim
}

/// Builds a pod of TOOLS_IMAGE that runs `script` with claim `claim_name` mounted at /data.
fn tools_pod(name: &str, claim_name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "tools", "image": TOOLS_IMAGE, "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
        }
    })
}

/// Lists the private root folders that the kubelet made for a pod and left behind.
fn private_roots_left(temp: &Path, uid: &str) -> Vec<PathBuf> {
    std::fs::read_dir(temp)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name().is_some_and(|name| {
                        name.to_string_lossy()
                            .starts_with(&format!("test-kubelet-{uid}-"))
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the lines of this process's mountinfo that mention `text`.
fn host_mounts_with(text: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| line.contains(text))
        .map(str::to_string)
        .collect()
}

/// Asserts that a finished pod left no private root folder and no mount on the host.
fn assert_no_private_root_left(pod: &Value) {
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !private_roots_left(&std::env::temp_dir(), uid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        private_roots_left(&std::env::temp_dir(), uid),
        Vec::<PathBuf>::new()
    );
    assert_eq!(host_mounts_with(uid), Vec::<String>::new());
}

#[test]
fn claim_mounted_at_container_path() {
    assert!(
        !Path::new("/data").exists(),
        "the host has /data, so this test would prove nothing"
    );
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("pv-1");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("greeting"), "hello from the volume\n").unwrap();
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(kubeconfig, &host_path_volume("pv-1", &folder, None));
    apply(kubeconfig, &claim("data", Some("pv-1")));
    let mut pod = tools_pod(
        "reader",
        "data",
        "cat /data/greeting && pwd && echo written > /data/new && echo root > /root-file && cat /root-file",
    );
    pod["spec"]["containers"][0]["workingDir"] = json!("/work-dir");
    apply(kubeconfig, &pod);

    let pod = wait_for_pod(kubeconfig, "reader", "succeeded", phase_is("Succeeded"));
    let log = pod_log(kubeconfig, "reader");
    assert!(log.contains("hello from the volume"), "{log}");
    assert!(log.contains("/work-dir\n"), "{log}");
    assert!(log.contains("root\n"), "{log}");
    assert_eq!(
        std::fs::read_to_string(folder.join("new")).unwrap(),
        "written\n"
    );
    // The mount point, the working folder and the written file existed only in the pod's root.
    for path in ["/data", "/work-dir", "/root-file"] {
        assert!(!Path::new(path).exists(), "{path} appeared on the host");
    }
    assert_no_private_root_left(&pod);
}

#[test]
fn read_only_mounts_reject_writes() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("pv-ro");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("kept"), "1").unwrap();
    let output = work.path().join("output");
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    // Bound only through the PersistentVolume's claimRef, as an admin pre-binds it.
    apply(
        kubeconfig,
        &host_path_volume("pv-ro", &folder, Some("data")),
    );
    apply(kubeconfig, &claim("data", None));
    let mut pod = tools_pod(
        "writer",
        "data",
        "touch /data/x; touch /tmp/x; ls /data > /out/listing",
    );
    let container = &mut pod["spec"]["containers"][0];
    container["volumeMounts"][0]["readOnly"] = json!(true);
    container["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "out", "mountPath": "/out"}));
    container["securityContext"] = json!({"readOnlyRootFilesystem": true});
    pod["spec"]["volumes"].as_array_mut().unwrap().push(json!(
        {"name": "out", "hostPath": {"path": output.to_str().unwrap(), "type": "DirectoryOrCreate"}}
    ));
    apply(kubeconfig, &pod);

    let pod = wait_for_pod(kubeconfig, "writer", "ended", |pod| {
        matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
    });
    let log = pod_log(kubeconfig, "writer");
    assert!(
        log.contains("touch: cannot touch '/data/x': Read-only file system"),
        "{log}"
    );
    assert!(
        log.contains("touch: cannot touch '/tmp/x': Read-only file system"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(output.join("listing")).unwrap(),
        "kept\n"
    );
    assert!(!folder.join("x").exists());
    assert_no_private_root_left(&pod);
}

#[test]
fn deleted_pod_kills_its_own_process() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("pv-sleep");
    std::fs::create_dir(&folder).unwrap();
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(kubeconfig, &host_path_volume("pv-sleep", &folder, None));
    apply(kubeconfig, &claim("data", Some("pv-sleep")));
    apply(
        kubeconfig,
        &tools_pod("sleeper", "data", "echo pid=$$; exec sleep 300"),
    );
    let pod = wait_for_pod(kubeconfig, "sleeper", "running", phase_is("Running"));

    // The shell's pid, printed inside the private root, is the process the kubelet started.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let log = pod_log(kubeconfig, "sleeper");
        if let Some(pid) = log.trim().strip_prefix("pid=") {
            break pid.to_string();
        }
        assert!(Instant::now() < deadline, "no pid in log {log:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default() != "sleep\n" {
        assert!(
            Instant::now() < deadline,
            "process {pid} never became sleep"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(
        std::fs::read_link(proc_dir.join("ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "the process shares the host's mount namespace"
    );

    let deleted = kubectl(
        kubeconfig,
        &["delete", "pod", "sleeper", "-n", "default", "--wait=false"],
    );
    assert!(deleted.status.success(), "{}", plugins::stderr(&deleted));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "process {pid} survived the pod's deletion"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_no_private_root_left(&pod);
}

#[test]
fn unbound_claim_leaves_pod_unschedulable() {
    let work = tempfile::tempdir().unwrap();
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(kubeconfig, &claim("lonely", None));
    let cases = [
        (
            "unbound",
            "lonely",
            "pod has unbound immediate PersistentVolumeClaims",
        ),
        (
            "missing",
            "absent",
            "persistentvolumeclaim \"absent\" not found",
        ),
    ];
    for (name, claim_name, reason) in cases {
        apply(kubeconfig, &tools_pod(name, claim_name, "true"));
        let pod = wait_for_pod(kubeconfig, name, "was found unschedulable", |pod| {
            pod["status"]["conditions"][0]["reason"] == "Unschedulable"
        });
        let expected = format!(
            "0/2 nodes are available: {reason}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        assert_eq!(pod["status"]["conditions"][0]["message"], expected.as_str());
        assert_eq!(pod["spec"]["nodeName"], Value::Null);
        let events = events_of(kubeconfig, name);
        assert!(
            events.contains(&format!("FailedScheduling: {expected}")),
            "{events:?}"
        );
    }
}

#[test]
fn unmountable_claim_fails_at_deadline() {
    let work = tempfile::tempdir().unwrap();
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-nfs"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                "nfs": {"server": "127.0.0.1", "path": "/exports/data"}}}),
    );
    apply(kubeconfig, &claim("shared", Some("pv-nfs")));
    apply(kubeconfig, &claim("lonely", None));
    let cases = [
        (
            "nfs",
            "shared",
            "MountVolume.SetUp failed for volume \"pv-nfs\" : the simulated kubelet mounts only hostPath and local PersistentVolumes",
        ),
        (
            "unbound",
            "lonely",
            "error processing PVC default/lonely: the claim is not bound: it has no spec.volumeName and no PersistentVolume has a claimRef to it",
        ),
    ];
    for (name, claim_name, message) in cases {
        // A nodeName skips the scheduler, so the kubelet meets the problem when it mounts.
        let mut pod = tools_pod(name, claim_name, "true");
        pod["spec"]["nodeName"] = json!("node-2");
        pod["spec"]["activeDeadlineSeconds"] = json!(2);
        let started = Instant::now();
        apply(kubeconfig, &pod);

        let pending = wait_for_pod(kubeconfig, name, "waited for its volumes", |pod| {
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "ContainerCreating"
        });
        assert_eq!(pending["status"]["phase"], "Pending");
        assert_eq!(pending["status"]["hostIP"], "172.18.0.3");
        let events = events_of(kubeconfig, name);
        assert!(
            events.contains(&format!("FailedMount: {message}")),
            "{events:?}"
        );
        let logs = kubectl(kubeconfig, &["logs", name, "-n", "default"]);
        assert!(
            plugins::stderr(&logs).contains("is waiting to start: ContainerCreating"),
            "{}",
            plugins::stderr(&logs)
        );

        let failed = wait_for_pod(kubeconfig, name, "failed", phase_is("Failed"));
        assert_eq!(failed["status"]["reason"], "DeadlineExceeded");
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}

#[test]
fn local_volume_places_pod_on_its_node() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("local-disk");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("id"), "disk-2\n").unwrap();
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-local"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": folder.to_str().unwrap()},
                "claimRef": {"namespace": "default", "name": "disk"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}]}]}}}}),
    );
    apply(kubeconfig, &claim("disk", None));
    apply(kubeconfig, &tools_pod("placed", "disk", "cat /data/id"));
    let pod = wait_for_pod(kubeconfig, "placed", "succeeded", phase_is("Succeeded"));
    assert_eq!(pod["spec"]["nodeName"], "node-2");
    assert_eq!(pod_log(kubeconfig, "placed"), "disk-2\n");

    // A nodeSelector for the other node conflicts with the volume's node affinity.
    let mut pod = tools_pod("conflict", "disk", "true");
    pod["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "node-1"});
    apply(kubeconfig, &pod);
    let pod = wait_for_pod(kubeconfig, "conflict", "was found unschedulable", |pod| {
        pod["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    let message = pod["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had volume node affinity conflict."),
        "{message}"
    );
}

fn set_mtime(path: &Path, seconds: u64) {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// Fills a volume folder the way a database leaves it: nested folders, a large and an empty
/// file, a symlink, a hard link, several modes and owners, and fixed mtimes.
fn fill_volume(root: &Path) {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};

    std::fs::create_dir_all(root.join("base/16384")).unwrap();
    std::fs::create_dir_all(root.join("conf")).unwrap();
    let table: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("base/16384/1259"), &table).unwrap();
    std::fs::write(root.join("base/16384/empty"), b"").unwrap();
    std::fs::hard_link(root.join("base/16384/1259"), root.join("base/1259.link")).unwrap();
    std::fs::write(root.join("conf/postgresql.conf"), "max_connections = 20\n").unwrap();
    std::fs::write(root.join("PG_VERSION"), "16\n").unwrap();
    symlink("base/16384/1259", root.join("current")).unwrap();

    let modes = [
        ("conf", 0o750),
        ("conf/postgresql.conf", 0o600),
        ("PG_VERSION", 0o444),
        ("base/16384/empty", 0o640),
    ];
    for (path, mode) in modes {
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for path in ["conf", "conf/postgresql.conf", "base/16384/1259"] {
        chown(root.join(path), Some(999), Some(999)).unwrap();
    }
    // Files first, folders last: writing into a folder changes its mtime.
    let files = [
        "base/16384/1259",
        "base/16384/empty",
        "conf/postgresql.conf",
        "PG_VERSION",
    ];
    for (index, path) in files.iter().enumerate() {
        set_mtime(&root.join(path), 1_600_000_000 + index as u64 * 3_600);
    }
    for (index, path) in ["base/16384", "base", "conf"].iter().enumerate() {
        set_mtime(&root.join(path), 1_650_000_000 + index as u64 * 60);
    }
}

fn apply_namespace(kubeconfig: &Path) {
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
}

/// Creates the Deployment db of namespace shop, whose pod mounts claim data-db at
/// /var/lib/postgresql, and that pod through its ReplicaSet, annotated for the backup of
/// volume `data`. The pod's
/// image is not a local one, so the kubelet only marks it Running.
fn apply_database(kubeconfig: &Path) {
    let template = json!({
        "metadata": {"labels": {"app": "db", "pod-template-hash": "7c9f"}},
        "spec": {
            "containers": [{"name": "db", "image": "postgres:16",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db"}}]
        }
    });
    apply(
        kubeconfig,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "db"}}, "template": template}}),
    );
    let deployment = get_json(kubeconfig, &["deployment", "db", "-n", "shop"]);
    apply(
        kubeconfig,
        &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "db-7c9f", "namespace": "shop",
                "labels": {"app": "db", "pod-template-hash": "7c9f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "db",
                    "uid": deployment["metadata"]["uid"], "controller": true}]},
            "spec": {"replicas": 1,
                "selector": {"matchLabels": {"app": "db", "pod-template-hash": "7c9f"}},
                "template": template}}),
    );
    let replica_set = get_json(kubeconfig, &["replicaset", "db-7c9f", "-n", "shop"]);
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-7c9f-x1", "namespace": "shop",
            "labels": {"app": "db", "pod-template-hash": "7c9f"},
            "annotations": {"backup.velero.io/backup-volumes": "data"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "db-7c9f",
                "uid": replica_set["metadata"]["uid"], "controller": true}]}});
    pod["spec"] = template["spec"].clone();
    apply(kubeconfig, &pod);
}

/// Builds a PersistentVolume of `folder` pre-bound by its claimRef to claim shop/data-db.
fn shop_volume(name: &str, folder: &Path) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": folder.to_str().unwrap(), "type": "Directory"},
            "claimRef": {"namespace": "shop", "name": "data-db"}}})
}

fn mount_of(pod: &Value) -> (Value, Value) {
    let container = &pod["spec"]["containers"][0];
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|mount| mount["name"] == "data")
        .cloned()
        .unwrap_or_else(|| panic!("no data mount in {pod}"));
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|volume| volume["name"] == "data")
        .cloned()
        .unwrap();
    (mount, volume)
}

#[test]
fn claim_data_round_trips_through_agents() {
    assert!(
        !Path::new("/data").exists(),
        "the host has /data, so this test would prove nothing"
    );
    let work = tempfile::tempdir().unwrap();
    let source_folder = work.path().join("pv-source");
    let target_folder = work.path().join("pv-target");
    std::fs::create_dir(&source_folder).unwrap();
    std::fs::create_dir(&target_folder).unwrap();
    fill_volume(&source_folder);
    let original = tree_listing(&source_folder);
    let location = format!("file://{}", work.path().join("location").display());

    // Source: the claim is bound to its volume, and the pod that uses it runs on node-1.
    std::fs::create_dir(work.path().join("source")).unwrap();
    let source = ServerProcess::start(&work.path().join("source"), PASSWORD);
    apply_namespace(&source.kubeconfig);
    apply(
        &source.kubeconfig,
        &shop_volume("pv-source", &source_folder),
    );
    apply(
        &source.kubeconfig,
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-db", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": "pv-source", "storageClassName": ""}}),
    );
    apply_database(&source.kubeconfig);

    let watch = PodWatch::start(&source.kubeconfig, "shop");
    let backup = plugins::run(migrate(&source.kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "create",
        "db-1",
        "--include-namespaces",
        "shop",
        "--location",
        &location,
        "--agent-image",
        LOCAL_AGENT_IMAGE,
        "--volume-timeout",
        "120",
    ]));
    let agent = watch.stop_and_find("kubectl-migrate-backup-");
    let stdout = plugins::stdout(&backup);
    assert!(
        backup.status.success(),
        "backup failed:\n{stdout}\n{}",
        plugins::stderr(&backup)
    );
    assert!(stdout.contains("volume data: 1 volumes copied"), "{stdout}");
    let (mount, volume) = mount_of(&agent);
    assert_eq!(
        mount,
        json!({"name": "data", "mountPath": "/data", "readOnly": true})
    );
    assert_eq!(
        volume["persistentVolumeClaim"],
        json!({"claimName": "data-db", "readOnly": true})
    );
    assert_eq!(source.private_roots(), Vec::<String>::new());
    assert_eq!(
        tree_listing(&source_folder),
        original,
        "the backup changed the source"
    );

    // The record counts what the agent read through /data.
    let describe = plugins::run(migrate(&source.kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "describe",
        "db-1",
        "--details",
        "--location",
        &location,
    ]));
    let text = plugins::stdout(&describe);
    let row = text
        .lines()
        .find(|line| line.contains("pvc/data-db"))
        .unwrap_or_else(|| panic!("{text}"));
    for cell in ["shop", "db-7c9f-x1", "data", "300024", " 5 "] {
        assert!(row.contains(cell), "row {row:?} lacks {cell:?}");
    }

    // Target: an empty folder behind a volume pre-bound to the claim that the restore creates.
    std::fs::create_dir(work.path().join("target")).unwrap();
    let target = ServerProcess::start(&work.path().join("target"), PASSWORD);
    apply(
        &target.kubeconfig,
        &shop_volume("pv-target", &target_folder),
    );
    let watch = PodWatch::start(&target.kubeconfig, "shop");
    let restore = plugins::run(migrate(&target.kubeconfig, work.path(), PASSWORD).args([
        "restore",
        "create",
        "--from-backup",
        "db-1",
        "--location",
        &location,
        "--exclude-resources",
        "persistentvolumes",
        "--agent-image",
        LOCAL_AGENT_IMAGE,
        "--volume-timeout",
        "120",
    ]));
    let agent = watch.stop_and_find("kubectl-migrate-restore-");
    let stderr = plugins::stderr(&restore);
    assert!(
        restore.status.success(),
        "restore failed:\n{}\n{stderr}",
        plugins::stdout(&restore)
    );
    assert!(
        stderr.contains("volume data restored into PersistentVolumeClaim shop/data-db"),
        "{stderr}"
    );
    let (mount, volume) = mount_of(&agent);
    assert_eq!(
        mount,
        json!({"name": "data", "mountPath": "/data", "readOnly": false})
    );
    assert_eq!(
        volume["persistentVolumeClaim"],
        json!({"claimName": "data-db"})
    );

    // The agent wrote through the claim into the new folder, metadata included.
    assert_eq!(tree_listing(&target_folder), original);
    let claim = get_json(&target.kubeconfig, &["pvc", "data-db", "-n", "shop"]);
    assert_eq!(claim["spec"]["volumeName"], Value::Null);
    assert!(
        kubectl(&target.kubeconfig, &["get", "pv", "pv-source"])
            .status
            .code()
            == Some(1)
    );
    assert!(
        kubectl(
            &target.kubeconfig,
            &["get", "deployment", "db", "-n", "shop"]
        )
        .status
        .success()
    );
    assert_eq!(target.private_roots(), Vec::<String>::new());
    assert_eq!(
        host_mounts_with(&work.path().to_string_lossy()),
        Vec::<String>::new()
    );
}

#[test]
fn restore_into_unbound_claim_fails_with_reason() {
    let work = tempfile::tempdir().unwrap();
    let location = format!("file://{}", work.path().join("location").display());
    std::fs::create_dir(work.path().join("server")).unwrap();
    let server = ServerProcess::start(&work.path().join("server"), PASSWORD);
    let kubeconfig = &server.kubeconfig;

    // A backup of the claim, and a record that gives the claim a snapshot.
    apply_namespace(kubeconfig);
    apply(
        kubeconfig,
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-db", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    let backup = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "backup",
        "create",
        "db-1",
        "--include-namespaces",
        "shop",
        "--location",
        &location,
    ]));
    assert!(backup.status.success(), "{}", plugins::stderr(&backup));
    write_volume_record(
        &work.path().join("location/backups/db-1"),
        "db-0",
        "data",
        json!({"pvc": {"claim": "data-db"}}),
        "snap-1",
    );

    // Restore into a namespace where no PersistentVolume will ever bind the claim.
    let started = Instant::now();
    let restore = plugins::run(migrate(kubeconfig, work.path(), PASSWORD).args([
        "restore",
        "create",
        "--from-backup",
        "db-1",
        "--location",
        &location,
        "--namespace-mappings",
        "shop:shop-new",
        "--agent-image",
        LOCAL_AGENT_IMAGE,
        "--schedule-timeout",
        "2",
    ]));
    let stderr = plugins::stderr(&restore);
    assert_eq!(restore.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        stderr.contains("cannot be scheduled: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."),
        "{stderr}"
    );
    assert!(stderr.contains("FailedScheduling"), "{stderr}");
    let pods = get_json(kubeconfig, &["pods", "-n", "shop-new"]);
    assert!(
        pods["items"].as_array().unwrap().is_empty(),
        "agent pod left: {pods}"
    );
    assert_eq!(server.private_roots(), Vec::<String>::new());
}

#[test]
fn security_context_limits_the_process() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("pv-caps");
    std::fs::create_dir(&folder).unwrap();
    // Only the capabilities of the process let it read a file of another owner with mode 0600.
    std::fs::write(folder.join("secret"), "s3cret\n").unwrap();
    std::fs::set_permissions(
        folder.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::chown(folder.join("secret"), Some(999), Some(999)).unwrap();

    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(kubeconfig, &host_path_volume("pv-caps", &folder, None));
    apply(kubeconfig, &claim("data", Some("pv-caps")));

    let report = "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; \
        cat /data/secret 2>/dev/null || echo denied";
    // CapEff bit 2 is CAP_DAC_READ_SEARCH, and 0xa80425fb is the default set of containerd.
    let cases = [
        (
            "least",
            json!({"runAsUser": 0, "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}}),
            "0\n0\nCapEff:\t0000000000000004\nCapBnd:\t0000000000000004\nNoNewPrivs:\t1\ns3cret\n",
        ),
        (
            "default",
            json!({}),
            "0\n0\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\ns3cret\n",
        ),
        (
            "nocaps",
            json!({"runAsUser": 0, "capabilities": {"drop": ["ALL"]}}),
            "0\n0\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t0\ndenied\n",
        ),
        (
            "nonroot",
            json!({"runAsUser": 65532, "runAsGroup": 65532, "capabilities": {"drop": ["ALL"]}}),
            "65532\n65532\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t0\ndenied\n",
        ),
    ];

    for (name, context, expected) in cases {
        let mut pod = tools_pod(name, "data", report);
        pod["spec"]["containers"][0]["securityContext"] = context;
        apply(kubeconfig, &pod);
        wait_for_pod(kubeconfig, name, "succeeded", phase_is("Succeeded"));
        assert_eq!(pod_log(kubeconfig, name), expected, "pod {name}");
    }
}

#[test]
fn sub_path_and_private_empty_dir() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("pv-sub");
    std::fs::create_dir(&folder).unwrap();
    let server = tools_server(work.path());
    let kubeconfig = server.kubeconfig();
    apply(kubeconfig, &host_path_volume("pv-sub", &folder, None));
    apply(kubeconfig, &claim("data", Some("pv-sub")));
    let mut pod = tools_pod(
        "sub",
        "data",
        "echo part > /part/file && echo scratch > /scratch/file && ls -ld /scratch | cut -c1-10",
    );
    let container = &mut pod["spec"]["containers"][0];
    container["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/part", "subPath": "tenants/a"},
        {"name": "scratch", "mountPath": "/scratch"}
    ]);
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "scratch", "emptyDir": {}}));
    apply(kubeconfig, &pod);

    let pod = wait_for_pod(kubeconfig, "sub", "succeeded", phase_is("Succeeded"));
    // An emptyDir without a kubelet root lives in the private root: mode 0777, gone afterwards.
    assert_eq!(pod_log(kubeconfig, "sub"), "drwxrwxrwx\n");
    assert_eq!(
        std::fs::read_to_string(folder.join("tenants/a/file")).unwrap(),
        "part\n"
    );
    assert!(!Path::new("/scratch").exists());
    assert_no_private_root_left(&pod);

    // A subPath that leaves the volume is a mount failure.
    let mut escape = tools_pod("escape", "data", "true");
    escape["spec"]["containers"][0]["volumeMounts"][0]["subPath"] = json!("../etc");
    apply(kubeconfig, &escape);
    wait_for_pod(kubeconfig, "escape", "waited for its volumes", |pod| {
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    });
    let events = events_of(kubeconfig, "escape");
    assert!(
        events.contains(
            &"FailedMount: volume data: subPath \"../etc\" must be a relative path without \"..\""
                .to_string()
        ),
        "{events:?}"
    );
}
