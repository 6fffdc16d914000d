//! Network fixtures for the kernel tests: a "node" and a "pod" network namespace joined by a
//! veth pair, named `bwt<pid><letter>-...` so that leftovers of crashed runs can be
//! distinguished from the namespaces of runs still alive. Dropping the fixture deletes both
//! namespaces, which also deletes every link inside them.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace and link the tests create.
pub const PREFIX: &str = "bwt";

/// Reports whether the tests run as root (effective uid 0); network namespaces need it.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Runs a command and panics with its stderr when it fails.
pub fn run_ok(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("failed to start {program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command inside a named network namespace and returns its stdout.
pub fn in_netns(netns: &str, program: &str, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", netns, program];
    full.extend_from_slice(args);
    String::from_utf8_lossy(&run_ok("ip", &full).stdout).into_owned()
}

/// Runs `tc -j ARGS` inside a namespace and parses its JSON output.
pub fn tc_json(netns: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = in_netns(netns, "tc", &full);
    if text.trim().is_empty() {
        return serde_json::json!([]);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("tc printed invalid JSON {text:?}: {e}"))
}

/// Extracts the pid from a name of the form `bwt<pid><letter>...`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn is_leftover(name: &str) -> bool {
    match owner_pid(name) {
        Some(pid) => !PathBuf::from(format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Deletes namespaces, root-namespace links and pids cgroups named `bwt<pid>...` whose
/// process is gone, the leftovers of runs that were killed before their guards ran.
pub fn remove_leftovers() {
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup/pids") {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_leftover(&name) {
                // A cgroup directory is removed bottom-up once its processes have ended.
                for child in std::fs::read_dir(entry.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if child.path().is_dir() {
                        let _ = std::fs::remove_dir(child.path());
                    }
                }
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }

    let namespaces = run_ok("ip", &["netns", "list"]);
    for line in String::from_utf8_lossy(&namespaces.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if is_leftover(name) {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    let links = run_ok("ip", &["-j", "link", "show"]);
    let links: serde_json::Value = serde_json::from_slice(&links.stdout).unwrap_or_default();
    for link in links.as_array().into_iter().flatten() {
        if let Some(name) = link["ifname"].as_str()
            && is_leftover(name)
        {
            let _ = Command::new("ip").args(["link", "del", name]).status();
        }
    }
}

/// A node namespace and a pod namespace joined by a veth pair with IPv4 addresses.
#[derive(Debug)]
pub struct TestNet {
    /// Name of the node's namespace.
    pub node_ns: String,
    /// Name of the pod's namespace.
    pub pod_ns: String,
    /// Name of the veth end in the node's namespace.
    pub host_veth: String,
    /// Address of the node end.
    pub node_addr: String,
    /// Address of the pod's eth0.
    pub pod_addr: String,
}

impl TestNet {
    /// Creates the namespaces and the veth pair, with the pod end named eth0.
    pub fn create() -> TestNet {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let letter = char::from(b'a' + (n % 26) as u8);
        let base = format!("{PREFIX}{}{letter}", std::process::id());
        let subnet = format!("10.{}.{}", 100 + std::process::id() % 100, n % 250);
        let net = TestNet {
            node_ns: format!("{base}-node"),
            pod_ns: format!("{base}-pod"),
            host_veth: format!("{base}h"),
            node_addr: format!("{subnet}.1"),
            pod_addr: format!("{subnet}.2"),
        };

        // The guard exists before the first namespace, so a failed step still cleans up.
        run_ok("ip", &["netns", "add", &net.node_ns]);
        run_ok("ip", &["netns", "add", &net.pod_ns]);
        let pod_end = format!("{base}p");
        run_ok(
            "ip",
            &[
                "-n",
                &net.node_ns,
                "link",
                "add",
                &net.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &pod_end,
                "netns",
                &net.pod_ns,
            ],
        );
        run_ok(
            "ip",
            &["-n", &net.pod_ns, "link", "set", &pod_end, "name", "eth0"],
        );
        for (ns, device, address) in [
            (&net.node_ns, net.host_veth.as_str(), &net.node_addr),
            (&net.pod_ns, "eth0", &net.pod_addr),
        ] {
            run_ok(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{address}/24"),
                    "dev",
                    device,
                ],
            );
            run_ok("ip", &["-n", ns, "link", "set", device, "up"]);
            run_ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Returns the namespace file of the node's namespace.
    pub fn node_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.node_ns)
    }

    /// Returns the namespace file of the pod's namespace.
    pub fn pod_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.pod_ns)
    }

    /// Returns `tc -j qdisc show dev DEV` in the node's namespace.
    pub fn qdiscs(&self, device: &str) -> serde_json::Value {
        tc_json(&self.node_ns, &["qdisc", "show", "dev", device])
    }

    /// Returns `tc -j filter show dev DEV ingress` in the node's namespace.
    pub fn ingress_filters(&self, device: &str) -> serde_json::Value {
        tc_json(&self.node_ns, &["filter", "show", "dev", device, "ingress"])
    }

    /// Returns the names of the links in the node's namespace.
    pub fn node_links(&self) -> Vec<String> {
        let text = in_netns(&self.node_ns, "ip", &["-j", "link", "show"]);
        let links: serde_json::Value = serde_json::from_str(&text).expect("ip -j prints JSON");
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in [&self.pod_ns, &self.node_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A process killed when the guard drops, such as an iperf3 server.
#[derive(Debug)]
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
