//! `kubectl bwlimit` annotations on pods and pod templates, `get`, `clear`, `check` and bad
//! input, against the local API server.

mod bwlimit_support;

use bwlimit_support::{AGENT_IMAGE, Env};
use serde_json::Value;
use testkit::plugins::{stderr, stdout};

const INGRESS: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS: &str = "kubernetes.io/egress-bandwidth";

fn template_annotations(env: &Env, kind: &str, name: &str) -> Value {
    env.get(kind, name)["spec"]["template"]["metadata"]["annotations"].clone()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
";

#[test]
fn set_pod_writes_annotations() {
    let env = Env::start();
    env.running_pod("web", "");
    let output = env.bwlimit(&["set", "pod/web", "--ingress", "240M", "--egress", "1Mi"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "pod/web annotated: ingress 240Mbit/s (240000000 bit/s), egress 1048.576kbit/s (1048576 bit/s)\n"
    );
    assert!(
        stderr(&output).starts_with(
            "note: the CNI bandwidth plugin reads these annotations only when a pod is created"
        ),
        "{}",
        stderr(&output)
    );
    let annotations = &env.get("pod", "web")["metadata"]["annotations"];
    assert_eq!(annotations[INGRESS], "240M");
    assert_eq!(annotations[EGRESS], "1048576");
}

#[test]
fn set_deployment_annotates_template() {
    let env = Env::start();
    env.apply(DEPLOYMENT);
    let text = env.bwlimit_ok(&[
        "set",
        "deployment/web",
        "--ingress",
        "100M",
        "--egress",
        "50M",
    ]);
    assert_eq!(
        text,
        "deployment/web pod template annotated: ingress 100Mbit/s (100000000 bit/s), egress 50Mbit/s (50000000 bit/s)\n"
    );
    let annotations = template_annotations(&env, "deployment", "web");
    assert_eq!(annotations[INGRESS], "100M");
    assert_eq!(annotations[EGRESS], "50M");

    env.bwlimit_ok(&["clear", "deploy/web"]);
    let annotations = template_annotations(&env, "deployment", "web");
    assert!(annotations.get(INGRESS).is_none(), "{annotations}");
    assert!(annotations.get(EGRESS).is_none(), "{annotations}");
}

#[test]
fn set_other_workloads_annotates_templates() {
    let env = Env::start();
    env.apply(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: postgres:17}]}\n---\n\
         apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: agent, image: busybox:1.36}]}\n---\n\
         apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: cache}\nspec:\n  selector: {matchLabels: {app: cache}}\n  template:\n    metadata: {labels: {app: cache}}\n    spec: {containers: [{name: cache, image: redis:7}]}\n",
    );
    for (target, kind, name) in [
        ("statefulset/db", "statefulset", "db"),
        ("ds/agent", "daemonset", "agent"),
        ("rs/cache", "replicaset", "cache"),
    ] {
        let output = env.bwlimit(&["set", target, "--egress", "5M"]);
        assert!(output.status.success(), "{target}: {}", stderr(&output));
        assert_eq!(
            template_annotations(&env, kind, name)[EGRESS],
            "5M",
            "{target}"
        );
    }
    // A ReplicaSet keeps its pods, and the note explains it.
    let output = env.bwlimit(&["set", "rs/cache", "--egress", "6M"]);
    assert!(
        stderr(&output).contains("a replicaset does not replace its pods"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn set_by_selector_annotates_matching_pods() {
    let env = Env::start();
    env.running_pod("web-a", "");
    env.running_pod("web-b", "");
    let text = env.bwlimit_ok(&["set", "-l", "app=web", "--ingress", "10M"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    for name in ["web-a", "web-b"] {
        assert_eq!(
            env.get("pod", name)["metadata"]["annotations"][INGRESS],
            "10M"
        );
    }
    let output = env.bwlimit(&["set", "-l", "app=none", "--ingress", "10M"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "kubectl-bwlimit: error: no pods match selector \"app=none\" in namespace bw\n"
    );
}

#[test]
fn get_lists_limited_pods() {
    let env = Env::start();
    env.running_pod("web-a", "");
    env.running_pod("plain", "");
    env.bwlimit_ok(&["set", "pod/web-a", "--ingress", "20M", "--egress", "1.5G"]);
    env.kubectl(&["annotate", "pod", "plain", &format!("{EGRESS}=fast")]);

    let table = env.bwlimit_ok(&["get"]);
    assert_eq!(
        table,
        "NAME    NODE     INGRESS               EGRESS\n\
         plain   node-1   -                     invalid (fast)\n\
         web-a   node-1   20000000 (20Mbit/s)   1500000000 (1.5Gbit/s)\n"
    );

    let all = env.bwlimit_ok(&["list", "-A"]);
    assert!(all.starts_with("NAMESPACE   NAME"), "{all}");

    let json: Value = serde_json::from_str(&env.bwlimit_ok(&["get", "-o", "json"])).unwrap();
    assert_eq!(json[1]["name"], "web-a");
    assert_eq!(json[1]["ingress"]["bitsPerSecond"], 20_000_000);
    assert_eq!(json[1]["egress"]["annotation"], "1500M");
    assert!(json[0]["egress"]["bitsPerSecond"].is_null());
}

#[test]
fn get_empty_says_so() {
    let env = Env::start();
    let output = env.bwlimit(&["get"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "No pods with bandwidth limits found in namespace bw.\n"
    );
}

#[test]
fn clear_pod_removes_annotations() {
    let env = Env::start();
    env.running_pod("web", "");
    env.bwlimit_ok(&["set", "pod/web", "--ingress", "20M", "--egress", "20M"]);
    assert_eq!(
        env.bwlimit_ok(&["clear", "pod/web"]),
        "pod/web annotated: bandwidth annotations removed\n"
    );
    let pod = env.get("pod", "web");
    assert!(
        pod["metadata"]["annotations"].get(INGRESS).is_none(),
        "{pod}"
    );
}

#[test]
fn invalid_rates_rejected_with_usage_error() {
    let env = Env::start();
    env.running_pod("web", "");
    for (value, reason) in [
        ("10K", "unknown suffix \"K\""),
        ("999", "below the minimum of 1k"),
        ("2P", "above the maximum of 1P"),
        ("fast", "no number"),
        ("-5M", "negative value"),
    ] {
        let flag = format!("--ingress={value}");
        let output = env.bwlimit(&["set", "pod/web", &flag]);
        assert_eq!(output.status.code(), Some(2), "{value}");
        let error = stderr(&output);
        assert!(
            error.contains(&format!("invalid rate \"{value}\": {reason}")),
            "{value}: {error}"
        );
    }
    assert!(
        env.get("pod", "web")["metadata"]["annotations"]
            .get(INGRESS)
            .is_none()
    );
}

#[test]
fn missing_objects_reported() {
    let env = Env::start();
    let output = env.bwlimit(&["set", "pod/nope", "--ingress", "1M"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "kubectl-bwlimit: error: pod/nope not found in namespace bw: check the name and -n\n"
    );
    let output = env.bwlimit(&["set", "deployment/nope", "--ingress", "1M"]);
    assert_eq!(
        stderr(&output),
        "kubectl-bwlimit: error: deployment/nope not found in namespace bw: check the name and -n\n"
    );
    let output = env.bwlimit(&["set", "service/web", "--ingress", "1M"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unsupported type \"service\""));
}

#[test]
fn host_network_template_rejected() {
    let env = Env::start();
    env.apply(&DEPLOYMENT.replace(
        "spec: {containers:",
        "spec: {hostNetwork: true, containers:",
    ));
    let output = env.bwlimit(&["set", "deployment/web", "--ingress", "1M"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("deployment/web runs hostNetwork pods"),
        "{}",
        stderr(&output)
    );
    assert!(
        template_annotations(&env, "deployment", "web")
            .get(INGRESS)
            .is_none()
    );
}

#[test]
fn check_reads_api_and_node_cni_config() {
    let env = Env::start();
    let cni = tempfile::tempdir().unwrap();
    std::fs::write(
        cni.path().join("10-containerd-net.conflist"),
        r#"{"cniVersion":"1.0.0","name":"containerd-net","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":true}}]}"#,
    )
    .unwrap();
    let cni_dir = cni.path().display().to_string();
    let output = env.bwlimit(&[
        "check",
        "--node",
        "node-1",
        "--agent-image",
        AGENT_IMAGE,
        "--agent-cni-dir-override",
        &cni_dir,
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(
        text.contains("warning  no known CNI daemon set found"),
        "{text}"
    );
    assert!(
        text.contains("ok       node node-1: 10-containerd-net.conflist chains bridge -> portmap -> bandwidth with the bandwidth capability"),
        "{text}"
    );
    assert!(env.agent_pods().is_empty());

    // Without the bandwidth plugin the check reports a problem and exits 1.
    std::fs::write(
        cni.path().join("10-containerd-net.conflist"),
        r#"{"plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    let output = env.bwlimit(&[
        "check",
        "--node",
        "node-1",
        "--agent-image",
        AGENT_IMAGE,
        "--agent-cni-dir-override",
        &cni_dir,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("problem  node node-1: 10-containerd-net.conflist chains bridge without the bandwidth plugin"));
}

#[test]
fn check_detects_cilium_bandwidth_manager() {
    let env = Env::start();
    env.apply_in(
        "kube-system",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cilium, namespace: kube-system}\nspec:\n  selector: {matchLabels: {k8s-app: cilium}}\n  template:\n    metadata: {labels: {k8s-app: cilium}}\n    spec: {containers: [{name: cilium-agent, image: quay.io/cilium/cilium:v1.16.0}]}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\ndata: {enable-bandwidth-manager: \"true\"}\n",
    );
    let text = env.bwlimit_ok(&["check"]);
    assert!(text.contains("ok       CNI: Cilium"), "{text}");
    assert!(
        text.contains("warning  Cilium's bandwidth manager is enabled"),
        "{text}"
    );
}

#[test]
fn set_started_job_annotates_its_pods() {
    let env = Env::start();
    env.apply(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: batch}\nspec:\n  selector: {matchLabels: {run: batch}}\n  manualSelector: true\n  template:\n    metadata: {labels: {run: batch}}\n    spec:\n      restartPolicy: Never\n      containers: [{name: batch, image: busybox:1.36}]\n",
    );
    env.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: batch-1, labels: {run: batch}}\nspec:\n  containers: [{name: batch, image: busybox:1.36}]\n",
    );
    let output = env.bwlimit(&["set", "job/batch", "--egress", "5M"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "pod/batch-1 annotated: egress 5Mbit/s (5000000 bit/s)\n"
    );
    assert!(
        stderr(&output).starts_with("note: the pod template of job/batch is immutable"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        env.get("pod", "batch-1")["metadata"]["annotations"][EGRESS],
        "5M"
    );
    let template = template_annotations(&env, "job", "batch");
    assert!(template.get(EGRESS).is_none(), "{template}");
}
