//! `kubectl-bwlimit agent` as a process: its JSON report, its exit codes, and finding a pod's
//! network namespace from the pod UID through `/proc/*/cgroup`.

#[path = "support/testnet.rs"]
mod testnet;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testnet::{ChildGuard, TestNet, is_root, remove_leftovers};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-bwlimit"))
        .arg("agent")
        .args(args)
        .output()
        .expect("failed to start kubectl-bwlimit")
}

/// Parses the one JSON line the agent prints.
fn report(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 1, "stdout: {text}");
    serde_json::from_str(&text).expect("the agent prints JSON")
}

fn setup() -> Option<TestNet> {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return None;
    }
    remove_leftovers();
    Some(TestNet::create())
}

fn paths(net: &TestNet) -> (String, String) {
    (
        net.pod_path().display().to_string(),
        net.node_path().display().to_string(),
    )
}

#[test]
fn apply_show_clear_report_json() {
    let Some(net) = setup() else { return };
    let (pod, node) = paths(&net);
    let base = ["--pod-uid", "uid-1", "--netns", &pod, "--host-netns", &node];

    let mut apply_args = vec!["apply"];
    apply_args.extend_from_slice(&base);
    apply_args.extend_from_slice(&["--ingress", "20M", "--egress", "10M", "--burst", "32Ki"]);
    let output = agent(&apply_args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let applied = report(&output);
    assert_eq!(applied["action"], "apply");
    assert_eq!(applied["podUid"], "uid-1");
    assert_eq!(applied["podInterface"]["name"], "eth0");
    assert_eq!(applied["hostInterface"]["name"], net.host_veth.as_str());
    assert_eq!(applied["state"]["ingress"]["rateBytes"], 2_500_000);
    assert_eq!(applied["state"]["egress"]["rateBytes"], 1_250_000);
    assert_eq!(applied["requested"]["ingress"]["burstBytes"], 32_768);

    let mut show_args = vec!["show"];
    show_args.extend_from_slice(&base);
    let shown = report(&agent(&show_args));
    assert_eq!(shown["state"]["ingress"]["rateBytes"], 2_500_000);
    let kinds: Vec<&str> = shown["state"]["qdiscs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"tbf") && kinds.contains(&"ingress"),
        "{kinds:?}"
    );

    let mut clear_args = vec!["clear"];
    clear_args.extend_from_slice(&base);
    let cleared = report(&agent(&clear_args));
    assert_eq!(cleared["previous"]["egress"]["rateBytes"], 1_250_000);
    assert!(cleared["state"]["ingress"].is_null());
    assert!(cleared["state"]["egress"].is_null());
}

#[test]
fn host_network_rejected_with_exit_one() {
    let Some(net) = setup() else { return };
    let node = net.node_path().display().to_string();
    let output = agent(&[
        "apply",
        "--pod-uid",
        "uid-2",
        "--netns",
        &node,
        "--host-netns",
        &node,
        "--ingress",
        "1M",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let failed = report(&output);
    assert!(failed["error"].as_str().unwrap().contains("hostNetwork"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("kubectl-bwlimit: error: pod uid-2 uses the node's network namespace"),
        "{stderr}"
    );
}

#[test]
fn invalid_rate_is_usage_error() {
    let output = agent(&["apply", "--pod-uid", "u", "--ingress", "10K"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid rate \"10K\""));
    assert!(output.stdout.is_empty());
}

/// A pids cgroup named like a kubelet pod cgroup (`.../pod<uid>`), removed on drop after
/// its processes ended.
struct PodCgroup {
    parent: PathBuf,
    path: PathBuf,
}

impl PodCgroup {
    fn create(uid: &str) -> Option<PodCgroup> {
        let parent = PathBuf::from(format!(
            "/sys/fs/cgroup/pids/{}{}-kubepods",
            testnet::PREFIX,
            std::process::id()
        ));
        let path = parent.join(format!("pod{uid}"));
        std::fs::create_dir_all(&path).ok()?;
        Some(PodCgroup { parent, path })
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

#[test]
fn pod_found_by_uid_through_cgroup() {
    let Some(net) = setup() else { return };
    let uid = "3f2a1c9e-1111-4222-8333-944445555666";
    let Some(cgroup) = PodCgroup::create(uid) else {
        eprintln!("skipped: cannot create a pids cgroup (cgroup v1 pids controller not mounted)");
        return;
    };

    // A process in the pod's network namespace and in the pod's cgroup, as a container is.
    let sleeper = ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &net.pod_ns, "sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .expect("failed to start sleep"),
    );
    std::fs::write(cgroup.path.join("cgroup.procs"), sleeper.0.id().to_string())
        .expect("failed to move the process into the cgroup");
    // `ip netns exec` enters the namespace before it runs sleep; wait for that, bounded.
    let process_netns = format!("/proc/{}/ns/net", sleeper.0.id());
    for _ in 0..50 {
        let entered =
            std::fs::read_link(&process_netns).ok() != std::fs::read_link("/proc/self/ns/net").ok();
        if entered {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let node = net.node_path().display().to_string();
    let output = agent(&["show", "--pod-uid", uid, "--host-netns", &node]);
    drop(sleeper);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown = report(&output);
    assert_eq!(shown["hostInterface"]["name"], net.host_veth.as_str());
    assert!(shown["netns"].as_str().unwrap().ends_with("/ns/net"));
}

#[test]
fn unknown_pod_uid_reported() {
    if !is_root() {
        return;
    }
    let output = agent(&["show", "--pod-uid", "00000000-0000-0000-0000-000000000000"]);
    assert_eq!(output.status.code(), Some(1));
    let failed = report(&output);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("no process of pod 00000000-0000-0000-0000-000000000000 on this node")
    );
}

#[test]
fn check_lists_cni_chain_and_clsact() {
    let Some(net) = setup() else { return };
    testnet::in_netns(
        &net.node_ns,
        "tc",
        &["qdisc", "add", "dev", &net.host_veth, "clsact"],
    );
    let cni = tempfile::tempdir().unwrap();
    std::fs::write(
        cni.path().join("05-cilium.conflist"),
        r#"{"name":"cilium","plugins":[{"type":"cilium-cni"}]}"#,
    )
    .unwrap();
    std::fs::write(cni.path().join("99-broken.conf"), "{").unwrap();

    let cni_dir = cni.path().display().to_string();
    let node = net.node_path().display().to_string();
    let output = agent(&["check", "--cni-dir", &cni_dir, "--host-netns", &node]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checked = report(&output);
    assert_eq!(checked["action"], "check");
    assert_eq!(checked["cniFiles"][0]["file"], "05-cilium.conflist");
    assert_eq!(
        checked["cniFiles"][0]["plugins"],
        serde_json::json!(["cilium-cni"])
    );
    assert_eq!(checked["cniFiles"][0]["bandwidth"], false);
    assert!(
        checked["cniFiles"][1]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    assert_eq!(
        checked["clsactInterfaces"],
        serde_json::json!([net.host_veth])
    );
}
