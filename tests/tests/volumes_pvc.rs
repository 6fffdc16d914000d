//! Pods with PersistentVolumeClaims in the simulated kubelet. Local processes of such pods run
//! in a mount namespace and root of their own, with each claim's PersistentVolume folder
//! mounted at the container path. The first tests check the kubelet itself: mounts, read-only
//! mounts, process identity, cleanup, and the reasons a claim cannot be used. The last ones
//! move a claim's data with `kubectl migrate backup create` and `restore create` through the
//! real agent.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::apiserver::{KubeletOptions, NodeSpec, ServerOptions, TestServer};
use testkit::plugins;

/// Image whose containers the kubelet runs from a folder of this test (host tools on `PATH`).
const TOOLS_IMAGE: &str = "example.test/tools:1";

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    plugins::run(plugins::kubectl().env("KUBECONFIG", kubeconfig).args(args))
}

fn apply(kubeconfig: &Path, object: &Value) {
    let mut child = plugins::kubectl()
        .env("KUBECONFIG", kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), object).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl apply: {}",
        plugins::stderr(&output)
    );
}

fn get_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend(args);
    full.extend(["-o", "json"]);
    let output = kubectl(kubeconfig, &full);
    assert!(
        output.status.success(),
        "kubectl get: {}",
        plugins::stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

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

/// A server whose kubelet runs TOOLS_IMAGE from an empty folder, so commands come from the
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

/// A pod of TOOLS_IMAGE that runs `script` with claim `claim_name` mounted at /data.
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

/// Private root folders that the kubelet made for a pod and left behind.
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

/// Lines of this process's mountinfo that mention `text`.
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
