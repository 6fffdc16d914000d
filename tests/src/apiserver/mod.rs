//! A local Kubernetes API server for tests and demos, driven by the real kubectl.
//!
//! It serves the built-in API groups of a v1.32 cluster over HTTPS with a generated CA and
//! bearer-token authentication, stores objects as JSON in memory (optionally mirrored to a
//! folder), and can simulate a kubelet. What it does not support it rejects with the same
//! `Status` a real kube-apiserver would send, so a passing test does not rest on leniency.

mod admission;
mod apply;
mod certs;
mod crd;
mod discovery;
mod endpoints;
mod faults;
mod handlers;
mod http;
mod kubelet;
mod legacy;
mod meta;
mod patch;
mod pod_volumes;
mod private_root;
mod process;
mod protobuf;
mod resources;
mod selectors;
mod status;
mod store;
mod table;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use faults::FaultInjector;
pub use kubelet::KUBELET_ROOT_ANNOTATION;

/// Settings of one [`TestServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Serve plain HTTP instead of HTTPS with a generated CA.
    pub plain_http: bool,
    /// Folder in which every object is persisted as a JSON file; `None` keeps objects in memory only.
    pub state_dir: Option<PathBuf>,
    /// Removed group-versions to serve as an older cluster did: `extensions/v1beta1` and
    /// `networking.k8s.io/v1beta1` (Ingress only).
    pub extra_group_versions: Vec<String>,
    /// Time between the creation of a CustomResourceDefinition and its `Established` condition.
    pub crd_established_delay: Duration,
    /// Simulated kubelet; `None` leaves pods unscheduled with no status.
    pub kubelet: Option<KubeletOptions>,
    /// Range from which Service cluster IPs are allocated. No traffic is ever sent to these addresses.
    pub service_cidr: String,
    /// Address to listen on; the default `127.0.0.1:0` picks a free port on loopback.
    pub listen: std::net::SocketAddr,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            plain_http: false,
            state_dir: None,
            extra_group_versions: Vec::new(),
            crd_established_delay: Duration::from_millis(200),
            kubelet: None,
            service_cidr: "10.96.0.0/16".to_string(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Settings of the simulated kubelet.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// Nodes registered at start.
    pub nodes: Vec<NodeSpec>,
    /// Image references whose containers run as local processes: image -> folder of binaries
    /// put first on `PATH`. Containers of other images are only marked Running.
    pub local_images: Vec<(String, PathBuf)>,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            nodes: vec![NodeSpec::new("node-1")],
            local_images: Vec::new(),
        }
    }
}

/// One simulated node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    /// `status.nodeInfo.containerRuntimeVersion`, for example `containerd://1.7.13`.
    pub container_runtime_version: String,
    /// `status.nodeInfo.kubeletVersion`, for example `v1.32.0`.
    pub kubelet_version: String,
    /// `status.nodeInfo.osImage`.
    pub os_image: String,
    /// Labels besides the well-known `kubernetes.io/hostname`, `kubernetes.io/os` and `kubernetes.io/arch`.
    pub labels: Vec<(String, String)>,
    /// Taints as `spec.taints` entries: key, value, effect (`NoSchedule`, `PreferNoSchedule`, `NoExecute`).
    pub taints: Vec<(String, String, String)>,
    /// Pod CIDR from which pod IPs are taken, for example `10.244.0.0/24`; empty picks one per node.
    pub pod_cidr: String,
}

impl NodeSpec {
    /// Builds a node running containerd 1.7.13 and kubelet v1.32.0 on Debian.
    pub fn new(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            container_runtime_version: "containerd://1.7.13".to_string(),
            kubelet_version: "v1.32.0".to_string(),
            os_image: "Debian GNU/Linux 12 (bookworm)".to_string(),
            labels: Vec::new(),
            taints: Vec::new(),
            pod_cidr: String::new(),
        }
    }
}

/// A running server on its own thread and tokio runtime. Dropping it stops the server and
/// kills the processes the simulated kubelet started.
pub struct TestServer {
    url: String,
    token: String,
    kubeconfig: PathBuf,
    state: Arc<http::ServerState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    // Holds the kubeconfig file; removed on drop.
    _temp_dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TestServer")
            .field("url", &self.url)
            .finish()
    }
}

impl TestServer {
    /// Starts a server and returns once it is listening.
    ///
    /// # Panics
    /// Panics when the options are invalid or the address cannot be bound, because a test
    /// cannot go on without its server.
    pub fn start(options: ServerOptions) -> TestServer {
        TestServer::try_start(options).unwrap_or_else(|error| panic!("test-apiserver: {error}"))
    }

    /// Starts a server like [`TestServer::start`], returning an error message instead of panicking.
    pub fn try_start(options: ServerOptions) -> Result<TestServer, String> {
        // Tests build kube clients in this process; with both ring and aws-lc-rs linked into the
        // workspace, rustls needs the provider named before the first TLS client or server.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let temp_dir = tempfile::Builder::new()
            .prefix("test-apiserver-")
            .tempdir()
            .map_err(|error| format!("failed to create a temporary folder: {error}"))?;
        if let Some(kubelet) = &options.kubelet {
            for (image, folder) in &kubelet.local_images {
                if !folder.is_dir() {
                    return Err(format!(
                        "local image {image}: folder {} does not exist; pass a folder of binaries",
                        folder.display()
                    ));
                }
            }
        }
        let kubeconfig = temp_dir.path().join("kubeconfig");
        let started = http::start(options, &kubeconfig)?;
        Ok(TestServer {
            url: started.url,
            token: started.token,
            kubeconfig,
            state: started.state,
            shutdown: Some(started.shutdown),
            thread: Some(started.thread),
            _temp_dir: temp_dir,
        })
    }

    /// Returns the base URL, for example `https://127.0.0.1:41235`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Returns the path of a kubeconfig file with the CA data, the server URL and the token.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Returns the bearer token that the server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Returns a handle that makes chosen requests fail or slow down.
    pub fn faults(&self) -> FaultInjector {
        self.state.faults.clone()
    }

    /// Replaces `status` of a pod, as a kubelet would, and returns the new resourceVersion.
    pub fn set_pod_status(
        &self,
        namespace: &str,
        name: &str,
        status: serde_json::Value,
    ) -> Result<String, String> {
        self.state.set_pod_status(namespace, name, status)
    }

    /// Builds a real `kubectl` command (plugins first on `PATH`) that talks to this server.
    pub fn kubectl(&self) -> std::process::Command {
        let mut command = crate::plugins::kubectl();
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Writes the kubeconfig to another path as well (used by the `test-apiserver` binary).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::copy(&self.kubeconfig, path).map(|_| ())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.state.kill_local_processes();
    }
}
