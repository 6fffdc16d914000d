//! The agent's netlink code on the real kernel: a node and a pod network namespace joined by
//! a veth pair, shaped by `agent::run`, checked with `tc -j` and `ip -j`.

#[path = "support/testnet.rs"]
mod testnet;

use kubectl_bwlimit::agent::{self, AgentAction, AgentReport, AgentTarget};
use kubectl_bwlimit::rate::parse_rate;
use kubectl_bwlimit::shaping::ifb_name;
use serde_json::Value;
use testnet::{TestNet, in_netns, is_root, remove_leftovers, run_ok};

/// Prepares a test: returns None (after saying why) when not root.
fn setup() -> Option<TestNet> {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return None;
    }
    remove_leftovers();
    Some(TestNet::create())
}

fn target(net: &TestNet) -> AgentTarget {
    AgentTarget {
        pod_uid: "kernel-test".to_string(),
        netns: Some(net.pod_path()),
        host_netns: Some(net.node_path()),
    }
}

fn run(net: &TestNet, action: AgentAction) -> AgentReport {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(agent::run(action, target(net)))
}

fn apply(net: &TestNet, ingress: &str, egress: &str, burst: Option<u64>) -> AgentReport {
    run(
        net,
        AgentAction::Apply {
            ingress: Some(parse_rate(ingress).unwrap()),
            egress: Some(parse_rate(egress).unwrap()),
            burst,
        },
    )
}

/// Returns the qdiscs of one kind from `tc -j qdisc show` output.
fn of_kind<'a>(qdiscs: &'a Value, kind: &str) -> Vec<&'a Value> {
    qdiscs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["kind"] == kind)
        .collect()
}

/// Returns the filters with actions from `tc -j filter show` output.
fn acting_filters(filters: &Value) -> Vec<&Value> {
    filters
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["options"]["actions"].is_array())
        .collect()
}

#[test]
fn apply_programs_tbf_ifb_and_redirect() {
    let Some(net) = setup() else { return };
    let report = apply(&net, "20M", "30M", None);
    assert_eq!(report.error, None);
    let ifb = ifb_name(&net.host_veth);

    // Traffic into the pod: TBF at the root of the host-side veth, in bytes/s.
    let veth_qdiscs = net.qdiscs(&net.host_veth);
    let tbf = of_kind(&veth_qdiscs, "tbf");
    assert_eq!(tbf.len(), 1, "{veth_qdiscs}");
    assert_eq!(tbf[0]["root"], true);
    assert_eq!(tbf[0]["handle"], "1:");
    assert_eq!(tbf[0]["options"]["rate"], 2_500_000);
    assert_eq!(tbf[0]["options"]["burst"], 12_500);
    assert_eq!(of_kind(&veth_qdiscs, "ingress").len(), 1, "{veth_qdiscs}");

    // Traffic out of the pod: redirected to the ifb, shaped by the ifb's TBF.
    let filters = net.ingress_filters(&net.host_veth);
    let acting = acting_filters(&filters);
    assert_eq!(acting.len(), 1, "{filters}");
    let action = &acting[0]["options"]["actions"][0];
    assert_eq!(action["kind"], "mirred");
    assert_eq!(action["mirred_action"], "redirect");
    assert_eq!(action["direction"], "egress");
    assert_eq!(action["to_dev"], ifb.as_str());
    let ifb_qdiscs = net.qdiscs(&ifb);
    let ifb_tbf = of_kind(&ifb_qdiscs, "tbf");
    assert_eq!(ifb_tbf.len(), 1, "{ifb_qdiscs}");
    assert_eq!(ifb_tbf[0]["options"]["rate"], 3_750_000);
    let link = in_netns(&net.node_ns, "ip", &["-j", "-d", "link", "show", &ifb]);
    let link: Value = serde_json::from_str(&link).unwrap();
    assert_eq!(link[0]["linkinfo"]["info_kind"], "ifb");
    assert!(
        link[0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "UP")
    );

    // The report names what the agent found and read back.
    assert_eq!(report.pod_interface.as_ref().unwrap().name, "eth0");
    assert_eq!(report.host_interface.as_ref().unwrap().name, net.host_veth);
    let state = report.state.unwrap();
    assert_eq!(state.ingress.unwrap().rate_bytes, 2_500_000);
    assert_eq!(state.egress.unwrap().rate_bytes, 3_750_000);
    assert_eq!(state.ifb.as_deref(), Some(ifb.as_str()));
    assert_eq!(state.filters.len(), 1);
}

#[test]
fn tbf_matches_what_tc_would_program() {
    let Some(net) = setup() else { return };
    let report = apply(&net, "100M", "100M", Some(64 * 1024));
    assert_eq!(report.error, None);

    // `tc -d` prints the link layer and the burst; the kernel computed it from our rate
    // without a rate table.
    let details = testnet::tc_json(
        &net.node_ns,
        &["-d", "qdisc", "show", "dev", &net.host_veth],
    );
    let tbf = of_kind(&details, "tbf");
    assert_eq!(tbf.len(), 1, "{details}");
    assert_eq!(tbf[0]["options"]["rate"], 12_500_000);
    assert_eq!(tbf[0]["options"]["linklayer"], "ethernet");
    assert_eq!(tbf[0]["options"]["burst"], "64Kb/1");
    // The queue fits the burst plus 25 ms at 12.5 MB/s.
    let requested = report.requested.unwrap().ingress.unwrap();
    assert_eq!(requested.limit_bytes, 65_536 + 312_500);
}

#[test]
fn tbf_equals_one_made_by_tc() {
    let Some(net) = setup() else { return };
    assert_eq!(apply(&net, "100M", "100M", Some(64 * 1024)).error, None);

    // The same qdisc made by tc on a second veth pair in the node's namespace: 100 Mbit/s,
    // burst 64 KiB, and the agent's limit of the burst plus 25 ms at 12.5 MB/s.
    let reference = format!("{}r", net.host_veth);
    let peer = format!("{}s", net.host_veth);
    run_ok(
        "ip",
        &[
            "-n",
            &net.node_ns,
            "link",
            "add",
            &reference,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ],
    );
    in_netns(
        &net.node_ns,
        "tc",
        &[
            "qdisc", "add", "dev", &reference, "root", "handle", "1:", "tbf", "rate", "100mbit",
            "burst", "65536", "limit", "378036",
        ],
    );

    let ours = testnet::tc_json(
        &net.node_ns,
        &["-d", "qdisc", "show", "dev", &net.host_veth],
    );
    let theirs = testnet::tc_json(&net.node_ns, &["-d", "qdisc", "show", "dev", &reference]);
    let ours = of_kind(&ours, "tbf")[0]["options"].clone();
    let theirs = of_kind(&theirs, "tbf")[0]["options"].clone();
    assert_eq!(ours, theirs);
}

#[test]
fn change_replaces_in_place() {
    let Some(net) = setup() else { return };
    assert_eq!(apply(&net, "20M", "20M", None).error, None);
    let report = apply(&net, "50M", "40M", None);
    assert_eq!(report.error, None);
    let ifb = ifb_name(&net.host_veth);

    let veth_qdiscs = net.qdiscs(&net.host_veth);
    let tbf = of_kind(&veth_qdiscs, "tbf");
    assert_eq!(tbf.len(), 1, "{veth_qdiscs}");
    assert_eq!(tbf[0]["options"]["rate"], 6_250_000);
    let ifb_tbf = net.qdiscs(&ifb);
    assert_eq!(of_kind(&ifb_tbf, "tbf")[0]["options"]["rate"], 5_000_000);
    let filters = net.ingress_filters(&net.host_veth);
    assert_eq!(acting_filters(&filters).len(), 1, "{filters}");
    let ifbs = net
        .node_links()
        .into_iter()
        .filter(|l| l.starts_with("bwl"))
        .count();
    assert_eq!(ifbs, 1);
}

#[test]
fn clear_removes_everything() {
    let Some(net) = setup() else { return };
    assert_eq!(apply(&net, "20M", "20M", None).error, None);
    let report = run(&net, AgentAction::Clear);
    assert_eq!(report.error, None);
    assert_eq!(
        report.previous.unwrap().ingress.unwrap().rate_bytes,
        2_500_000
    );

    let veth_qdiscs = net.qdiscs(&net.host_veth);
    assert!(of_kind(&veth_qdiscs, "tbf").is_empty(), "{veth_qdiscs}");
    assert!(of_kind(&veth_qdiscs, "ingress").is_empty(), "{veth_qdiscs}");
    assert!(!net.node_links().contains(&ifb_name(&net.host_veth)));
    let state = report.state.unwrap();
    assert_eq!(state.ingress, None);
    assert_eq!(state.egress, None);

    // Clearing again finds nothing to remove and succeeds.
    assert_eq!(run(&net, AgentAction::Clear).error, None);
}

#[test]
fn show_reads_state() {
    let Some(net) = setup() else { return };
    let empty = run(&net, AgentAction::Show);
    assert_eq!(empty.error, None);
    assert_eq!(empty.state.as_ref().unwrap().ingress, None);
    assert_eq!(apply(&net, "1G", "8G", None).error, None);
    let state = run(&net, AgentAction::Show).state.unwrap();
    assert_eq!(state.ingress.unwrap().rate_bytes, 125_000_000);
    // 8 Gbit/s is 10^9 bytes/s, below 2^32: TCA_TBF_RATE64 only starts above that.
    assert_eq!(state.egress.unwrap().rate_bytes, 1_000_000_000);
}

#[test]
fn rates_above_32_bits_read_back() {
    let Some(net) = setup() else { return };
    assert_eq!(apply(&net, "40G", "1T", None).error, None);
    let state = run(&net, AgentAction::Show).state.unwrap();
    assert_eq!(state.ingress.unwrap().rate_bytes, 5_000_000_000);
    assert_eq!(state.egress.unwrap().rate_bytes, 125_000_000_000);
    let veth_qdiscs = net.qdiscs(&net.host_veth);
    assert_eq!(
        of_kind(&veth_qdiscs, "tbf")[0]["options"]["rate"],
        5_000_000_000u64
    );
}

#[test]
fn host_network_namespace_rejected() {
    let Some(net) = setup() else { return };
    let mut target = target(&net);
    target.netns = Some(net.node_path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let action = AgentAction::Apply {
        ingress: Some(parse_rate("10M").unwrap()),
        egress: None,
        burst: None,
    };
    let report = runtime.block_on(agent::run(action, target));
    let error = report.error.unwrap();
    assert!(error.contains("hostNetwork"), "{error}");
    assert!(of_kind(&net.qdiscs(&net.host_veth), "tbf").is_empty());
}

/// Creates a veth pair in the node's namespace with one end named `name`.
fn occupy_name(net: &TestNet, name: &str) {
    let peer = format!("{}x", net.host_veth);
    run_ok(
        "ip",
        &[
            "-n",
            &net.node_ns,
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ],
    );
}

#[test]
fn egress_failure_rolls_back_ingress() {
    let Some(net) = setup() else { return };
    // A veth with the ifb's name makes the ifb step fail after ingress succeeded.
    let ifb = ifb_name(&net.host_veth);
    occupy_name(&net, &ifb);
    let report = apply(&net, "20M", "20M", None);

    let error = report.error.unwrap();
    assert!(error.contains("a veth link of that name exists"), "{error}");
    assert!(error.contains("rolled back"), "{error}");
    let veth_qdiscs = net.qdiscs(&net.host_veth);
    assert!(of_kind(&veth_qdiscs, "tbf").is_empty(), "{veth_qdiscs}");
    assert!(of_kind(&veth_qdiscs, "ingress").is_empty(), "{veth_qdiscs}");
}

#[test]
fn egress_failure_restores_previous_limit() {
    let Some(net) = setup() else { return };
    assert_eq!(apply(&net, "20M", "20M", None).error, None);
    // Replace the ifb by a veth of the same name behind the agent's back.
    let ifb = ifb_name(&net.host_veth);
    run_ok("ip", &["-n", &net.node_ns, "link", "del", &ifb]);
    occupy_name(&net, &ifb);

    let report = apply(&net, "50M", "50M", None);
    assert!(report.error.unwrap().contains("rolled back"));
    let veth_qdiscs = net.qdiscs(&net.host_veth);
    assert_eq!(
        of_kind(&veth_qdiscs, "tbf")[0]["options"]["rate"],
        2_500_000
    );
}

#[test]
fn clsact_owner_rejected() {
    let Some(net) = setup() else { return };
    in_netns(
        &net.node_ns,
        "tc",
        &["qdisc", "add", "dev", &net.host_veth, "clsact"],
    );
    let report = apply(&net, "20M", "20M", None);
    let error = report.error.unwrap();
    assert!(error.contains("clsact"), "{error}");
    assert!(of_kind(&net.qdiscs(&net.host_veth), "tbf").is_empty());
}

#[test]
fn missing_netns_reported() {
    let Some(net) = setup() else { return };
    let mut target = target(&net);
    target.netns = Some("/run/netns/bwt-does-not-exist".into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(agent::run(AgentAction::Show, target));
    let error = report.error.unwrap();
    assert!(error.contains("/run/netns/bwt-does-not-exist"), "{error}");
}

#[test]
fn fixture_removed_after_panic() {
    if !is_root() {
        return;
    }
    let names = std::panic::catch_unwind(|| {
        let net = TestNet::create();
        let names = (net.node_ns.clone(), net.pod_ns.clone());
        std::panic::panic_any(names);
    })
    .expect_err("the closure panics");
    let (node_ns, pod_ns) = names
        .downcast::<(String, String)>()
        .unwrap()
        .as_ref()
        .clone();
    let namespaces = String::from_utf8_lossy(&run_ok("ip", &["netns", "list"]).stdout).into_owned();
    assert!(!namespaces.contains(&node_ns), "{namespaces}");
    assert!(!namespaces.contains(&pod_ns), "{namespaces}");
}

#[test]
fn leftovers_of_dead_runs_removed() {
    if !is_root() {
        return;
    }
    // No process can have this pid: it is above the kernel's limit of 2^22.
    let leftover = format!("{}4999999z-node", testnet::PREFIX);
    run_ok("ip", &["netns", "add", &leftover]);
    remove_leftovers();
    let namespaces = String::from_utf8_lossy(&run_ok("ip", &["netns", "list"]).stdout).into_owned();
    assert!(!namespaces.contains(&leftover), "{namespaces}");
}

#[test]
fn default_route_interface_used_without_eth0() {
    let Some(net) = setup() else { return };
    // Rename eth0 and route through it: the agent must follow the default route.
    let pod = net.pod_ns.as_str();
    run_ok("ip", &["-n", pod, "link", "set", "eth0", "down"]);
    run_ok("ip", &["-n", pod, "link", "set", "eth0", "name", "net1"]);
    run_ok("ip", &["-n", pod, "link", "set", "net1", "up"]);
    run_ok(
        "ip",
        &["-n", pod, "route", "add", "default", "via", &net.node_addr],
    );

    let report = apply(&net, "20M", "20M", None);
    assert_eq!(report.error, None);
    assert_eq!(report.pod_interface.unwrap().name, "net1");
    assert_eq!(report.host_interface.unwrap().name, net.host_veth);
}

#[test]
fn pod_without_eth0_or_route_reported() {
    let Some(net) = setup() else { return };
    run_ok("ip", &["-n", &net.pod_ns, "link", "set", "eth0", "down"]);
    run_ok(
        "ip",
        &["-n", &net.pod_ns, "link", "set", "eth0", "name", "net1"],
    );
    let report = run(&net, AgentAction::Show);
    assert_eq!(
        report.error.as_deref(),
        Some("the pod's network namespace has neither eth0 nor a default route")
    );
}

#[test]
fn ingress_only_leaves_egress_alone() {
    let Some(net) = setup() else { return };
    assert_eq!(apply(&net, "20M", "20M", None).error, None);
    let report = run(
        &net,
        AgentAction::Apply {
            ingress: Some(parse_rate("30M").unwrap()),
            egress: None,
            burst: None,
        },
    );
    let state = report.state.unwrap();
    assert_eq!(state.ingress.unwrap().rate_bytes, 3_750_000);
    assert_eq!(state.egress.unwrap().rate_bytes, 2_500_000);
}

#[test]
fn existing_cni_style_setup_reused() {
    let Some(net) = setup() else { return };
    // The layout the CNI bandwidth plugin leaves: an ifb of its own, a u32 match-all
    // redirect and TBFs, made here with tc.
    let ifb = format!("{}c", net.host_veth);
    let node = net.node_ns.as_str();
    run_ok("ip", &["-n", node, "link", "add", &ifb, "type", "ifb"]);
    run_ok("ip", &["-n", node, "link", "set", &ifb, "up"]);
    let tc = |args: &[&str]| in_netns(node, "tc", args);
    tc(&[
        "qdisc", "add", "dev", &ifb, "root", "handle", "1:", "tbf", "rate", "10mbit", "burst",
        "1mb", "latency", "25ms",
    ]);
    tc(&["qdisc", "add", "dev", &net.host_veth, "ingress"]);
    tc(&[
        "filter",
        "add",
        "dev",
        &net.host_veth,
        "parent",
        "ffff:",
        "protocol",
        "all",
        "u32",
        "match",
        "u32",
        "0",
        "0",
        "action",
        "mirred",
        "egress",
        "redirect",
        "dev",
        &ifb,
    ]);

    let report = apply(&net, "20M", "40M", None);
    assert_eq!(report.error, None);
    let state = report.state.unwrap();
    assert_eq!(state.ifb.as_deref(), Some(ifb.as_str()));
    assert_eq!(state.egress.unwrap().rate_bytes, 5_000_000);
    let filters = net.ingress_filters(&net.host_veth);
    assert_eq!(acting_filters(&filters).len(), 1, "{filters}");
    assert!(!net.node_links().contains(&ifb_name(&net.host_veth)));

    // clear removes the reused ifb too.
    assert_eq!(run(&net, AgentAction::Clear).error, None);
    assert!(!net.node_links().contains(&ifb));
}
