//! `kubectl crimap nodes` against the local test API server: each node's runtime, with
//! dockershim and cri-dockerd nodes flagged.

use std::process::Output;

use serde_json::Value;
use testkit::apiserver::{KubeletOptions, NodeSpec, ServerOptions, TestServer};
use testkit::plugins::{plugin, run, stderr, stdout};

fn node(name: &str, runtime: &str, kubelet: &str, os_image: &str) -> NodeSpec {
    let mut node = NodeSpec::new(name);
    node.container_runtime_version = runtime.to_string();
    node.kubelet_version = kubelet.to_string();
    node.os_image = os_image.to_string();
    node
}

fn cluster() -> TestServer {
    let server = TestServer::start(ServerOptions {
        kubelet: Some(KubeletOptions {
            nodes: vec![
                node(
                    "containerd-1",
                    "containerd://1.7.13",
                    "v1.29.2",
                    "Ubuntu 22.04.4 LTS",
                ),
                node(
                    "crio-1",
                    "cri-o://1.29.1",
                    "v1.29.1",
                    "Red Hat Enterprise Linux CoreOS 415",
                ),
                node(
                    "docker-old",
                    "docker://20.10.24",
                    "v1.23.17",
                    "Ubuntu 20.04.6 LTS",
                ),
                node(
                    "docker-new",
                    "docker://24.0.7",
                    "v1.28.4",
                    "Debian GNU/Linux 12 (bookworm)",
                ),
                node(
                    "migrated",
                    "containerd://1.7.13",
                    "v1.28.4",
                    "Ubuntu 22.04.4 LTS",
                ),
            ],
            ..Default::default()
        }),
        ..Default::default()
    });
    // kubeadm's CRI socket annotation: cri-dockerd on docker-new, and a stale one on a node
    // already moved to containerd.
    for (node, socket) in [
        ("docker-new", "unix:///var/run/cri-dockerd.sock"),
        ("migrated", "unix:///var/run/cri-dockerd.sock"),
    ] {
        let annotation = format!("kubeadm.alpha.kubernetes.io/cri-socket={socket}");
        let output: Output = run(server
            .kubectl()
            .args(["annotate", "node", node, &annotation]));
        assert!(
            output.status.success(),
            "kubectl annotate: {}",
            stderr(&output)
        );
    }
    server
}

#[test]
fn nodes_table_flags_docker() {
    let server = cluster();
    let output = run(plugin("crimap")
        .env("KUBECONFIG", server.kubeconfig())
        .arg("nodes"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "\
NAME           RUNTIME      VERSION    KUBELET    OS-IMAGE                              DOCKER
containerd-1   containerd   1.7.13     v1.29.2    Ubuntu 22.04.4 LTS                    -
crio-1         cri-o        1.29.1     v1.29.1    Red Hat Enterprise Linux CoreOS 415   -
docker-new     docker       24.0.7     v1.28.4    Debian GNU/Linux 12 (bookworm)        cri-dockerd
docker-old     docker       20.10.24   v1.23.17   Ubuntu 20.04.6 LTS                    dockershim
migrated       containerd   1.7.13     v1.28.4    Ubuntu 22.04.4 LTS                    -
"
    );
}

#[test]
fn nodes_json_explains_verdicts() {
    let server = cluster();
    let output = run(plugin("crimap")
        .env("KUBECONFIG", server.kubeconfig())
        .args(["nodes", "-o", "json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let nodes: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let by_name = |name: &str| {
        nodes
            .iter()
            .find(|node| node["name"] == name)
            .unwrap()
            .clone()
    };

    let old = by_name("docker-old");
    assert_eq!(old["docker"], "dockershim");
    assert_eq!(
        old["note"],
        "kubelet 1.23 uses the built-in dockershim, removed in 1.24: move to containerd or cri-dockerd before upgrading"
    );
    let new = by_name("docker-new");
    assert_eq!(new["docker"], "cri-dockerd");
    assert_eq!(new["criSocket"], "unix:///var/run/cri-dockerd.sock");
    let migrated = by_name("migrated");
    assert_eq!(migrated["docker"], Value::Null);
    assert!(
        migrated["note"].as_str().unwrap().starts_with(
            "runtime is containerd but the CRI socket annotation still names cri-dockerd"
        ),
        "{migrated}"
    );
    let containerd = by_name("containerd-1");
    assert_eq!(containerd["runtimeVersion"], "1.7.13");
    assert_eq!(containerd["kubeletVersion"], "v1.29.2");
    assert_eq!(containerd["docker"], Value::Null);
}

#[test]
fn nodes_selector_and_wide() {
    let server = cluster();
    let output = run(plugin("crimap")
        .env("KUBECONFIG", server.kubeconfig())
        .args([
            "nodes",
            "-l",
            "kubernetes.io/hostname=docker-new",
            "-o",
            "wide",
        ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("CRI-SOCKET                         NOTE"),
        "{text}"
    );
    assert!(
        text.contains(
            "unix:///var/run/cri-dockerd.sock   the CRI socket annotation names cri-dockerd"
        ),
        "{text}"
    );
}

#[test]
fn nodes_without_kubeconfig_fail() {
    let output = run(plugin("crimap").arg("nodes"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("kubectl-crimap: error: "),
        "{}",
        stderr(&output)
    );
}
