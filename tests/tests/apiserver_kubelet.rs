//! The simulated kubelet of the test API server: nodes, scheduling, Running pods with IPs,
//! endpoints of services, and containers of local images run as real processes.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::json;
use testkit::apiserver::{KubeletOptions, NodeSpec, ServerOptions, TestServer};
use testkit::plugins::{run, stderr, stdout};

fn kubectl_ok(server: &TestServer, args: &[&str]) -> String {
    let output: Output = run(server.kubectl().args(args));
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

fn apply(server: &TestServer, manifest: &str) {
    use std::io::Write;
    let mut child = server
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("manifest written");
    let output = child.wait_with_output().expect("kubectl finishes");
    assert!(output.status.success(), "apply failed: {}", stderr(&output));
}

fn wait_for(server: &TestServer, what: &str, condition: &str) {
    kubectl_ok(
        server,
        &["wait", &format!("--for={condition}"), what, "--timeout=15s"],
    );
}

fn two_nodes() -> KubeletOptions {
    let mut gpu = NodeSpec::new("node-gpu");
    gpu.container_runtime_version = "cri-o://1.30.2".to_string();
    gpu.labels = vec![("accelerator".to_string(), "gpu".to_string())];
    gpu.taints = vec![(
        "dedicated".to_string(),
        "gpu".to_string(),
        "NoSchedule".to_string(),
    )];
    gpu.pod_cidr = "10.244.7.0/24".to_string();
    KubeletOptions {
        nodes: vec![NodeSpec::new("node-1"), gpu],
        local_images: Vec::new(),
    }
}

fn server_with(kubelet: KubeletOptions) -> TestServer {
    TestServer::start(ServerOptions {
        kubelet: Some(kubelet),
        ..ServerOptions::default()
    })
}

#[test]
fn nodes_carry_node_info() {
    let server = server_with(two_nodes());
    let runtimes = kubectl_ok(
        &server,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.containerRuntimeVersion},{.status.nodeInfo.kubeletVersion},{.status.nodeInfo.architecture};{end}",
        ],
    );
    assert_eq!(
        runtimes,
        "node-1=containerd://1.7.13,v1.32.0,amd64;node-gpu=cri-o://1.30.2,v1.32.0,amd64;"
    );
    let ready = kubectl_ok(&server, &["get", "nodes"]);
    assert_eq!(ready.matches(" Ready ").count(), 2, "{ready}");
}

#[test]
fn pods_run_with_ips_and_respect_taints() {
    let server = server_with(two_nodes());
    apply(
        &server,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec: {containers: [{name: c, image: nginx}]}\n",
    );
    wait_for(&server, "pod/plain", "condition=Ready");
    let placed = kubectl_ok(
        &server,
        &[
            "get",
            "pod",
            "plain",
            "-o",
            "jsonpath={.spec.nodeName} {.status.phase} {.status.podIP} {.status.hostIP}",
        ],
    );
    assert_eq!(
        placed, "node-1 Running 10.244.0.2 172.18.0.2",
        "the tainted node is skipped"
    );

    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: gpu}
spec:
  nodeSelector: {accelerator: gpu}
  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
  containers: [{name: c, image: trainer:1}]
"#,
    );
    wait_for(&server, "pod/gpu", "condition=Ready");
    let gpu = kubectl_ok(
        &server,
        &[
            "get",
            "pod",
            "gpu",
            "-o",
            "jsonpath={.spec.nodeName} {.status.podIP}",
        ],
    );
    assert_eq!(gpu, "node-gpu 10.244.7.2");

    apply(
        &server,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: stuck}\nspec: {nodeSelector: {accelerator: gpu}, containers: [{name: c, image: trainer:1}]}\n",
    );
    wait_for(&server, "pod/stuck", "condition=PodScheduled=False");
    let phase = kubectl_ok(
        &server,
        &[
            "get",
            "pod",
            "stuck",
            "-o",
            "jsonpath={.status.phase} {.status.conditions[0].reason}",
        ],
    );
    assert_eq!(phase, "Pending Unschedulable");
    let events = kubectl_ok(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert!(events.contains("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}"), "{events}");
}

#[test]
fn services_get_ready_endpoints() {
    let server = server_with(KubeletOptions::default());
    apply(
        &server,
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
"#,
    );
    wait_for(&server, "pod/web-1", "condition=Ready");
    wait_for(&server, "pod/web-2", "condition=Ready");
    let endpoints = kubectl_ok(
        &server,
        &[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip} {.subsets[0].ports[0].port}",
        ],
    );
    assert_eq!(endpoints, "10.244.0.2 10.244.0.3 8080");
    let slice = kubectl_ok(
        &server,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[0].endpoints[*].conditions.ready}",
        ],
    );
    assert_eq!(slice, "true true");

    // A pod forced out of Ready becomes a not-ready address. The two pods are scheduled
    // concurrently, so which of them got which IP is read back, not assumed.
    let web_1_ip = kubectl_ok(
        &server,
        &["get", "pod", "web-1", "-o", "jsonpath={.status.podIP}"],
    );
    let web_2_ip = kubectl_ok(
        &server,
        &["get", "pod", "web-2", "-o", "jsonpath={.status.podIP}"],
    );
    server
        .set_pod_status(
            "default",
            "web-2",
            json!({"phase": "Running", "podIP": web_2_ip,
            "conditions": [{"type": "Ready", "status": "False"}]}),
        )
        .expect("status set");
    let split = kubectl_ok(
        &server,
        &[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}/{.subsets[0].notReadyAddresses[*].ip}",
        ],
    );
    assert_eq!(split, format!("{web_1_ip}/{web_2_ip}"));
    kubectl_ok(&server, &["delete", "pod", "web-1"]);
    let left = kubectl_ok(
        &server,
        &[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ],
    );
    assert_eq!(left, "");
}

/// Writes an executable shell script into `dir`.
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn agent_server(bin: &Path) -> TestServer {
    server_with(KubeletOptions {
        nodes: vec![NodeSpec::new("node-1")],
        local_images: vec![("example.com/agent:1".to_string(), bin.to_path_buf())],
    })
}

fn agent_pod(name: &str, command: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n{extra}  containers:\n  - name: agent\n    image: example.com/agent:1\n    command: [{command}]\n    env: [{{name: GREETING, value: hello}}]\n"
    )
}

#[test]
fn local_image_runs_and_serves_logs() {
    let bin = tempfile::tempdir().expect("temp dir");
    script(
        bin.path(),
        "agent",
        "echo \"$GREETING from $1 in $(pwd)\"; echo oops >&2; exit 0",
    );
    script(bin.path(), "failing", "echo failing; exit 3");
    let server = agent_server(bin.path());

    apply(&server, &agent_pod("ok", "agent, world", ""));
    wait_for(&server, "pod/ok", "jsonpath={.status.phase}=Succeeded");
    let logs = kubectl_ok(&server, &["logs", "ok"]);
    assert_eq!(logs, "hello from world in /\noops\n");
    assert_eq!(kubectl_ok(&server, &["logs", "ok", "--tail=1"]), "oops\n");
    let terminated = kubectl_ok(
        &server,
        &[
            "get",
            "pod",
            "ok",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason}",
        ],
    );
    assert_eq!(terminated, "0 Completed");

    apply(&server, &agent_pod("bad", "failing", ""));
    wait_for(&server, "pod/bad", "jsonpath={.status.phase}=Failed");
    let failed = kubectl_ok(
        &server,
        &[
            "get",
            "pod",
            "bad",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason}",
        ],
    );
    assert_eq!(failed, "3 Error");
    assert_eq!(kubectl_ok(&server, &["logs", "bad"]), "failing\n");
}

#[test]
fn local_image_deadline_and_deletion() {
    let bin = tempfile::tempdir().expect("temp dir");
    let pid_file = bin.path().join("pid");
    script(
        bin.path(),
        "sleeper",
        &format!(
            "echo $$ > {}; echo started; exec sleep 30",
            pid_file.display()
        ),
    );
    let server = agent_server(bin.path());

    apply(
        &server,
        &agent_pod("late", "sleeper", "  activeDeadlineSeconds: 1\n"),
    );
    wait_for(&server, "pod/late", "jsonpath={.status.phase}=Failed");
    let reason = kubectl_ok(
        &server,
        &["get", "pod", "late", "-o", "jsonpath={.status.reason}"],
    );
    assert_eq!(reason, "DeadlineExceeded");
    kubectl_ok(&server, &["delete", "pod", "late"]);

    apply(&server, &agent_pod("long", "sleeper", ""));
    wait_for(&server, "pod/long", "condition=Ready");
    let mut follow = server
        .kubectl()
        .args(["logs", "-f", "long"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs starts");
    // The followed log shows the first line while the process still runs.
    let mut followed = std::io::BufReader::new(follow.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut followed, &mut first).expect("log line");
    assert_eq!(first, "started\n");

    let pid = std::fs::read_to_string(&pid_file)
        .expect("pid written")
        .trim()
        .to_string();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "agent process {pid:?} runs"
    );
    kubectl_ok(&server, &["delete", "pod", "long", "--wait=true"]);
    let mut gone = false;
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "agent process {pid} was killed with its pod");
    let status = follow.wait().expect("kubectl logs ends");
    assert!(
        status.success(),
        "kubectl logs -f ends when the process is killed"
    );
}

#[test]
fn forced_status_sticks() {
    let server = server_with(KubeletOptions::default());
    apply(
        &server,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: job-pod}\nspec: {restartPolicy: Never, containers: [{name: c, image: busybox, command: [\"true\"]}]}\n",
    );
    wait_for(&server, "pod/job-pod", "condition=Ready");
    server
        .set_pod_status("default", "job-pod", json!({"phase": "Succeeded"}))
        .expect("status set");
    let phase = kubectl_ok(
        &server,
        &["get", "pod", "job-pod", "-o", "jsonpath={.status.phase}"],
    );
    assert_eq!(phase, "Succeeded");
    assert_eq!(
        kubectl_ok(&server, &["logs", "job-pod"]),
        "",
        "simulated containers have empty logs"
    );
}

#[test]
fn simulated_pod_deadline_fails_it() {
    let server = server_with(KubeletOptions::default());
    apply(
        &server,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: short}\nspec: {activeDeadlineSeconds: 1, containers: [{name: c, image: nginx}, {name: d, image: redis}]}\n",
    );
    wait_for(&server, "pod/short", "jsonpath={.status.phase}=Failed");
    let status = kubectl_ok(
        &server,
        &[
            "get",
            "pod",
            "short",
            "-o",
            "jsonpath={.status.reason} {.status.containerStatuses[*].state.terminated.exitCode}",
        ],
    );
    assert_eq!(status, "DeadlineExceeded 137 137");
}

#[test]
fn missing_local_image_folder_is_rejected() {
    let error = TestServer::try_start(ServerOptions {
        kubelet: Some(KubeletOptions {
            local_images: vec![("agent:1".to_string(), "/nonexistent/agent-bin".into())],
            ..KubeletOptions::default()
        }),
        ..ServerOptions::default()
    })
    .unwrap_err();
    assert_eq!(
        error,
        "local image agent:1: folder /nonexistent/agent-bin does not exist; pass a folder of binaries"
    );
}
