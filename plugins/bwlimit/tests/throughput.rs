//! Throughput through shaped veths, measured with iperf3 between the test's own namespaces:
//! steady throughput within 10% of the limit and a first second below 1.5 times the limit,
//! in both directions, and for contrast a first second far above the limit with a 256 MiB
//! bucket. All measurements run one after another in one test, because parallel transfers
//! would share the CPU and skew each other.

#[path = "support/testnet.rs"]
mod testnet;

use std::process::{Command, Stdio};
use std::time::Duration;

use kubectl_bwlimit::agent::{self, AgentAction, AgentTarget};
use kubectl_bwlimit::rate::parse_rate;
use serde_json::Value;
use testnet::{ChildGuard, TestNet, is_root, remove_leftovers};

const PORT: &str = "5201";
const SECONDS: &str = "6";

/// Throughput seen by the receiving side, per one-second interval, in bit/s.
fn receiver_intervals(net: &TestNet, reverse: bool) -> Vec<f64> {
    let _server = ChildGuard(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.pod_ns,
                "iperf3",
                "-s",
                "-1",
                "-J",
                "-B",
                &net.pod_addr,
                "-p",
                PORT,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start the iperf3 server"),
    );

    // The server needs a moment to listen; retry the client a bounded number of times.
    let mut report = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        let mut args = vec![
            "30",
            "ip",
            "netns",
            "exec",
            &net.node_ns,
            "iperf3",
            "-c",
            &net.pod_addr,
            "-p",
            PORT,
            "-t",
            SECONDS,
            "-J",
            "--get-server-output",
        ];
        if reverse {
            args.push("-R");
        }
        let output = Command::new("timeout")
            .args(&args)
            .output()
            .expect("failed to run iperf3");
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if output.status.success() && json["error"].is_null() {
            report = Some(json);
            break;
        }
    }
    let report = report.expect("iperf3 did not connect to its server within 4 s");

    // Without -R the server receives; with -R the client does.
    let intervals = if reverse {
        &report["intervals"]
    } else {
        &report["server_output_json"]["intervals"]
    };
    intervals
        .as_array()
        .expect("iperf3 reports intervals")
        .iter()
        .filter(|i| i["sum"]["seconds"].as_f64().unwrap_or(0.0) > 0.5)
        .map(|i| i["sum"]["bits_per_second"].as_f64().unwrap())
        .collect()
}

fn shape(net: &TestNet, ingress: &str, egress: &str) {
    shape_with_burst(net, ingress, egress, None);
}

fn shape_with_burst(net: &TestNet, ingress: &str, egress: &str, burst: Option<u64>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(agent::run(
        AgentAction::Apply {
            ingress: Some(parse_rate(ingress).unwrap()),
            egress: Some(parse_rate(egress).unwrap()),
            burst,
        },
        AgentTarget {
            pod_uid: "throughput-test".to_string(),
            netns: Some(net.pod_path()),
            host_netns: Some(net.node_path()),
        },
    ));
    assert_eq!(report.error, None);
}

#[test]
fn iperf3_stays_within_limits() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        panic!("iperf3 is not installed: install it (apt-get install iperf3) to run this test");
    }
    remove_leftovers();
    let net = TestNet::create();

    let mut failures = Vec::new();
    for (rate, limit) in [("20M", 20e6), ("100M", 100e6)] {
        // A live change replaces the qdiscs in place, so one fixture serves both rates.
        shape(&net, rate, rate);
        for (direction, reverse) in [("into the pod", false), ("out of the pod", true)] {
            let intervals = receiver_intervals(&net, reverse);
            let first = intervals[0];
            let steady = &intervals[1..];
            let steady_mean = steady.iter().sum::<f64>() / steady.len() as f64;
            eprintln!(
                "{rate} {direction}: first second {:.2} Mbit/s, steady {:.2} Mbit/s, intervals {:?}",
                first / 1e6,
                steady_mean / 1e6,
                intervals
                    .iter()
                    .map(|b| (b / 1e5).round() / 10.0)
                    .collect::<Vec<_>>()
            );
            if first >= 1.5 * limit {
                failures.push(format!("{rate} {direction}: first second {first:.0} bit/s"));
            }
            if (steady_mean - limit).abs() > 0.1 * limit {
                failures.push(format!("{rate} {direction}: steady {steady_mean:.0} bit/s"));
            }
        }
    }

    // For contrast, a 256 MiB bucket as large bursts leave it: the first second runs far
    // above the limit until the bucket is empty.
    shape_with_burst(&net, "20M", "20M", Some(256 << 20));
    let intervals = receiver_intervals(&net, false);
    eprintln!(
        "20M with a 256 MiB burst, into the pod: first second {:.2} Mbit/s",
        intervals[0] / 1e6
    );
    if intervals[0] < 1.5 * 20e6 {
        failures.push(format!(
            "a 256 MiB burst did not raise the first second: {:.0} bit/s",
            intervals[0]
        ));
    }
    assert!(failures.is_empty(), "outside the limits: {failures:?}");
}
