//! Shared set-up of the bwlimit tests: a local API server whose simulated kubelet runs the
//! agent image as a local `kubectl-bwlimit` process, and the plugin run through kubectl.

#![allow(dead_code)]

#[path = "../../../plugins/bwlimit/tests/support/testnet.rs"]
pub mod testnet;

use std::process::{Child, Output, Stdio};

use serde_json::Value;
use testkit::apiserver::{KubeletOptions, ServerOptions, TestServer};
use testkit::plugins::{apply_stdin, bin_dir, ensure_built, kubectl, run, stderr, stdout};

/// Namespace every bwlimit test works in.
pub const NAMESPACE: &str = "bw";
/// Agent image that the simulated kubelet runs from the workspace's built binaries.
pub const AGENT_IMAGE: &str = "test.local/bwlimit-agent:1";
/// Label of the agent pods.
pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=kubectl-bwlimit-agent";

/// A local API server with the namespace `bw`; dropping it stops the server.
pub struct Env {
    pub server: TestServer,
}

impl Env {
    /// Starts a server with a simulated kubelet and creates the namespace.
    pub fn start() -> Env {
        ensure_built(&["bwlimit"]);
        let options = ServerOptions {
            kubelet: Some(KubeletOptions {
                local_images: vec![(AGENT_IMAGE.to_string(), bin_dir())],
                ..KubeletOptions::default()
            }),
            ..ServerOptions::default()
        };
        let env = Env {
            server: TestServer::start(options),
        };
        env.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
        ));
        env
    }

    pub fn kubeconfig(&self) -> String {
        self.server.kubeconfig().display().to_string()
    }

    /// Runs kubectl against the server in the test namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run(kubectl()
            .args(args)
            .args(["--kubeconfig", &self.kubeconfig(), "-n", NAMESPACE]))
    }

    /// Runs `kubectl bwlimit ARGS`.
    pub fn bwlimit(&self, args: &[&str]) -> Output {
        let mut full = vec!["bwlimit"];
        full.extend_from_slice(args);
        self.kubectl(&full)
    }

    /// Runs `kubectl bwlimit ARGS` and panics with its output when it fails.
    pub fn bwlimit_ok(&self, args: &[&str]) -> String {
        let output = self.bwlimit(args);
        assert!(
            output.status.success(),
            "kubectl bwlimit {args:?} failed ({:?}): {}{}",
            output.status.code(),
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// Applies manifests given as text in the test namespace.
    pub fn apply(&self, yaml: &str) {
        self.apply_in(NAMESPACE, yaml);
    }

    /// Applies manifests given as text in a namespace.
    pub fn apply_in(&self, namespace: &str, yaml: &str) {
        apply_stdin(
            kubectl().args(["--kubeconfig", &self.kubeconfig(), "-n", namespace]),
            yaml,
        );
    }

    /// Returns an object as JSON.
    pub fn get(&self, kind: &str, name: &str) -> Value {
        let output = self.kubectl(&["get", kind, name, "-o", "json"]);
        assert!(
            output.status.success(),
            "kubectl get {kind} {name}: {}",
            stderr(&output)
        );
        serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
    }

    /// Creates a pod and waits (bounded) until the simulated kubelet reports it Running.
    pub fn running_pod(&self, name: &str, extra_spec: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: web}}\n\
             spec:\n  containers:\n  - {{name: web, image: nginx:1.27}}\n{extra_spec}"
        ));
        for _ in 0..100 {
            if self.get("pod", name)["status"]["phase"] == "Running" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("pod {name} did not become Running");
    }

    /// Returns the names of the agent pods left in any namespace.
    pub fn agent_pods(&self) -> Vec<String> {
        let output = self.kubectl(&["get", "pods", "-A", "-l", AGENT_SELECTOR, "-o", "json"]);
        let list: Value = serde_json::from_slice(&output.stdout).expect("kubectl prints JSON");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }

    /// Starts `kubectl get pods -w` on the agent pods, to see their specs after deletion.
    pub fn watch_agent_pods(&self) -> Watch {
        let child = kubectl()
            .args([
                "get",
                "pods",
                "-A",
                "-l",
                AGENT_SELECTOR,
                "-w",
                "-o",
                "json",
            ])
            .args(["--kubeconfig", &self.kubeconfig()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl starts");
        // Give the watch time to start before the pods appear.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Watch(Some(child))
    }
}

/// A running `kubectl get -w`, killed when dropped or finished.
pub struct Watch(Option<Child>);

impl Watch {
    /// Stops the watch and returns the objects it printed.
    pub fn finish(mut self) -> Vec<Value> {
        let mut child = self.0.take().expect("watch running");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = child.kill();
        let output = child.wait_with_output().expect("kubectl ends");
        serde_json::Deserializer::from_slice(&output.stdout)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Agent flags that point the agent at the test's namespaces.
pub fn agent_flags(net: &testnet::TestNet) -> Vec<String> {
    vec![
        "--agent-image".to_string(),
        AGENT_IMAGE.to_string(),
        "--agent-netns-override".to_string(),
        net.pod_path().display().to_string(),
        "--agent-host-netns-override".to_string(),
        net.node_path().display().to_string(),
    ]
}
