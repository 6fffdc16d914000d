//! `kubectl bwlimit --live` and `get --verify` against the local API server: the simulated
//! kubelet runs the agent pod as a local process, which programs a veth pair in network
//! namespaces the test creates; `tc -j` confirms the kernel state.

mod bwlimit_support;

use bwlimit_support::testnet::{TestNet, is_root, remove_leftovers};
use bwlimit_support::{Env, agent_flags};
use serde_json::Value;
use testkit::plugins::{stderr, stdout};

const INGRESS: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS: &str = "kubernetes.io/egress-bandwidth";

/// Starts the server with a Running pod `web` and the test's namespaces, or None when not root.
fn setup() -> Option<(Env, TestNet)> {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return None;
    }
    remove_leftovers();
    let net = TestNet::create();
    let env = Env::start();
    env.running_pod("web", "");
    Some((env, net))
}

fn with_agent<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut full = args.to_vec();
    full.extend(flags.iter().map(String::as_str));
    full
}

fn tbf_rate(net: &TestNet, device: &str) -> Option<u64> {
    let qdiscs = net.qdiscs(device);
    qdiscs
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "tbf")
        .and_then(|q| q["options"]["rate"].as_u64())
}

/// Returns the ifb the veth's redirect filter points to.
fn redirect_target(net: &TestNet) -> Option<String> {
    let filters = net.ingress_filters(&net.host_veth);
    filters.as_array().into_iter().flatten().find_map(|f| {
        f["options"]["actions"][0]["to_dev"]
            .as_str()
            .map(str::to_string)
    })
}

#[test]
fn set_live_programs_the_kernel() {
    let Some((env, net)) = setup() else { return };
    let flags = agent_flags(&net);
    let watch = env.watch_agent_pods();

    let text = env.bwlimit_ok(&with_agent(
        &[
            "set",
            "pod/web",
            "--ingress",
            "20M",
            "--egress",
            "30M",
            "--live",
        ],
        &flags,
    ));
    assert!(
        text.starts_with(&format!(
            "pod/web annotated and programmed on node node-1: host interface {}, ingress 20Mbit/s, egress 30Mbit/s (through bwl",
            net.host_veth
        )),
        "{text}"
    );

    // The kernel state the agent programmed.
    assert_eq!(tbf_rate(&net, &net.host_veth), Some(2_500_000));
    let ifb = redirect_target(&net).expect("a redirect filter");
    assert_eq!(tbf_rate(&net, &ifb), Some(3_750_000));

    // The annotations, and no agent pod left.
    let pod = env.get("pod", "web");
    assert_eq!(pod["metadata"]["annotations"][INGRESS], "20M");
    assert_eq!(pod["metadata"]["annotations"][EGRESS], "30M");
    assert!(env.agent_pods().is_empty(), "{:?}", env.agent_pods());

    // The agent pod as the server saw it.
    let events = watch.finish();
    let agent = events
        .iter()
        .find(|p| p["spec"]["containers"].is_array())
        .expect("the watch saw the agent pod");
    let spec = &agent["spec"];
    assert_eq!(spec["nodeName"], "node-1");
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["restartPolicy"], "Never");
    assert!(spec["activeDeadlineSeconds"].as_i64().unwrap() > 0);
    assert_eq!(spec["tolerations"][0]["operator"], "Exists");
    let container = &spec["containers"][0];
    assert_eq!(container["image"], bwlimit_support::AGENT_IMAGE);
    assert_eq!(container["securityContext"]["privileged"], false);
    assert_eq!(
        container["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"])
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let uid = env.get("pod", "web")["metadata"]["uid"].clone();
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        command[..5],
        [
            "kubectl-bwlimit",
            "agent",
            "apply",
            "--pod-uid",
            uid.as_str().unwrap()
        ]
    );
    assert_eq!(agent["metadata"]["namespace"], bwlimit_support::NAMESPACE);
}

#[test]
fn live_change_and_clear() {
    let Some((env, net)) = setup() else { return };
    let flags = agent_flags(&net);
    env.bwlimit_ok(&with_agent(
        &[
            "set",
            "pod/web",
            "--ingress",
            "20M",
            "--egress",
            "20M",
            "--live",
        ],
        &flags,
    ));
    let ifb = redirect_target(&net).unwrap();

    // A second set replaces the qdiscs in place: same ifb, one filter, new rates.
    env.bwlimit_ok(&with_agent(
        &[
            "set",
            "pod/web",
            "--ingress",
            "50M",
            "--egress",
            "40M",
            "--live",
            "--burst",
            "64Ki",
        ],
        &flags,
    ));
    assert_eq!(tbf_rate(&net, &net.host_veth), Some(6_250_000));
    assert_eq!(redirect_target(&net).as_deref(), Some(ifb.as_str()));
    assert_eq!(tbf_rate(&net, &ifb), Some(5_000_000));

    let text = env.bwlimit_ok(&with_agent(&["clear", "pod/web", "--live"], &flags));
    assert_eq!(
        text,
        format!(
            "pod/web annotations removed and limits cleared on node node-1: host interface {}, \
             ingress none, egress none\n",
            net.host_veth
        )
    );
    assert_eq!(tbf_rate(&net, &net.host_veth), None);
    assert_eq!(redirect_target(&net), None);
    assert!(!net.node_links().contains(&ifb));
    let pod = env.get("pod", "web");
    assert!(
        pod["metadata"]["annotations"].get(INGRESS).is_none(),
        "{pod}"
    );
    assert!(env.agent_pods().is_empty());
}

#[test]
fn get_verify_compares_kernel_state() {
    let Some((env, net)) = setup() else { return };
    let flags = agent_flags(&net);
    env.bwlimit_ok(&with_agent(
        &[
            "set",
            "pod/web",
            "--ingress",
            "20M",
            "--egress",
            "10M",
            "--live",
        ],
        &flags,
    ));

    let table = env.bwlimit_ok(&with_agent(&["get", "--verify", "-o", "wide"], &flags));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in [
        "NAME",
        "NODE",
        "INGRESS",
        "EGRESS",
        "LIVE-INGRESS",
        "LIVE-EGRESS",
        "VERIFY",
        "HOST-INTERFACE",
        "QDISCS",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    for cell in [
        "web",
        "node-1",
        "20000000 (20Mbit/s)",
        "10000000 (10Mbit/s)",
        "match",
        &net.host_veth,
    ] {
        assert!(row.contains(cell), "missing {cell:?} in {row}");
    }
    let qdiscs = format!(
        "{} tbf 1: root, {} ingress ffff: ingress",
        net.host_veth, net.host_veth
    );
    assert!(row.contains(&qdiscs), "missing {qdiscs:?} in {row}");

    // Change the kernel behind the plugin's back: verify reports it and exits 1.
    bwlimit_support::testnet::in_netns(
        &net.node_ns,
        "tc",
        &[
            "qdisc",
            "replace",
            "dev",
            &net.host_veth,
            "root",
            "handle",
            "1:",
            "tbf",
            "rate",
            "5mbit",
            "burst",
            "10kb",
            "latency",
            "25ms",
        ],
    );
    let output = env.bwlimit(&with_agent(&["get", "--verify", "-o", "json"], &flags));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let rows: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let verify = &rows[0]["verify"];
    assert_eq!(verify["matches"], false);
    assert_eq!(verify["liveIngress"], 5_000_000);
    assert_eq!(verify["liveEgress"], 10_000_000);
    assert_eq!(
        verify["detail"],
        "ingress: annotation 20M, programmed 5Mbit/s"
    );
    assert!(env.agent_pods().is_empty());
}

#[test]
fn agent_failure_restores_annotations() {
    let Some((env, net)) = setup() else { return };
    env.kubectl(&["annotate", "pod", "web", &format!("{INGRESS}=5M")]);
    let flags = vec![
        "--agent-image".to_string(),
        bwlimit_support::AGENT_IMAGE.to_string(),
        "--agent-netns-override".to_string(),
        "/run/netns/bwt-missing-namespace".to_string(),
        "--agent-host-netns-override".to_string(),
        net.node_path().display().to_string(),
    ];
    let output = env.bwlimit(&with_agent(
        &[
            "set",
            "pod/web",
            "--ingress",
            "20M",
            "--egress",
            "20M",
            "--live",
        ],
        &flags,
    ));

    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("kubectl-bwlimit: error: pod/web: agent on node node-1 failed: failed to read network namespace /run/netns/bwt-missing-namespace"),
        "{error}"
    );
    assert!(error.contains("(annotations restored)"), "{error}");
    let annotations = &env.get("pod", "web")["metadata"]["annotations"];
    assert_eq!(annotations[INGRESS], "5M");
    assert!(annotations.get(EGRESS).is_none());
    assert_eq!(tbf_rate(&net, &net.host_veth), None);
    assert!(env.agent_pods().is_empty());
}

#[test]
fn host_network_pod_rejected() {
    let Some((env, net)) = setup() else { return };
    env.running_pod("hostnet", "  hostNetwork: true\n");
    let output = env.bwlimit(&with_agent(
        &["set", "pod/hostnet", "--ingress", "20M", "--live"],
        &agent_flags(&net),
    ));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "kubectl-bwlimit: error: pod/hostnet uses hostNetwork: it shares the node's network interfaces, \
         so no per-pod limit can apply (the CNI plugin is not called for it either)\n"
    );
    assert!(
        env.get("pod", "hostnet")["metadata"]["annotations"]
            .get(INGRESS)
            .is_none()
    );
    assert!(env.agent_pods().is_empty());
}

#[test]
fn pod_not_running_rejected_for_live() {
    let Some((env, net)) = setup() else { return };
    env.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: waiting}\nspec:\n  nodeName: no-such-node\n  containers:\n  - {name: web, image: nginx:1.27}\n",
    );
    let output = env.bwlimit(&with_agent(
        &["set", "pod/waiting", "--ingress", "20M", "--live"],
        &agent_flags(&net),
    ));
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("pod/waiting is Pending, not Running: --live programs running pods only"),
        "{error}"
    );
    assert!(
        env.get("pod", "waiting")["metadata"]["annotations"]
            .get(INGRESS)
            .is_none()
    );
}

#[test]
fn set_deployment_live_programs_its_pods() {
    let Some((env, net)) = setup() else { return };
    env.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx:1.27}]}\n",
    );
    let text = env.bwlimit_ok(&with_agent(
        &[
            "set",
            "deployment/web",
            "--ingress",
            "15M",
            "--egress",
            "15M",
            "--live",
        ],
        &agent_flags(&net),
    ));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "deployment/web pod template annotated: ingress 15Mbit/s (15000000 bit/s), egress 15Mbit/s (15000000 bit/s)"
        )
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("pod/web annotated and programmed on node node-1"),
        "{text}"
    );
    let template =
        env.get("deployment", "web")["spec"]["template"]["metadata"]["annotations"].clone();
    assert_eq!(template[INGRESS], "15M");
    assert_eq!(
        env.get("pod", "web")["metadata"]["annotations"][EGRESS],
        "15M"
    );
    assert_eq!(tbf_rate(&net, &net.host_veth), Some(1_875_000));
    assert!(env.agent_pods().is_empty());
}
