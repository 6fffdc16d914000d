//! `kubectl crimap nodes`: each node's container runtime, with nodes still on Docker flagged.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use serde::Serialize;
use shared::output::{Table, print, print_structured};
use shared::{KubeArgs, OutputFormat, Result, ResultExt};

use crate::cli::NodesArgs;

/// Annotation kubeadm writes with the CRI socket the kubelet uses.
pub const KUBEADM_CRI_SOCKET: &str = "kubeadm.alpha.kubernetes.io/cri-socket";
/// Prefix of other node annotations that may name the CRI socket.
pub const NODE_ALPHA_PREFIX: &str = "node.alpha.kubernetes.io/";

/// Shim between the kubelet and Docker Engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DockerShim {
    /// The kubelet's built-in shim, removed in Kubernetes 1.24.
    Dockershim,
    /// Mirantis cri-dockerd, the external shim for Kubernetes 1.24 and later.
    CriDockerd,
}

impl DockerShim {
    fn name(self) -> &'static str {
        match self {
            DockerShim::Dockershim => "dockershim",
            DockerShim::CriDockerd => "cri-dockerd",
        }
    }
}

/// Runtime report of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRuntime {
    /// Node name.
    pub name: String,
    /// Runtime name from `containerRuntimeVersion` (`containerd`, `docker`, `cri-o`).
    pub runtime: String,
    /// Runtime version from `containerRuntimeVersion`.
    pub runtime_version: String,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: String,
    /// `status.nodeInfo.osImage`.
    pub os_image: String,
    /// The shim through which the node uses Docker Engine; `None` when it does not.
    pub docker: Option<DockerShim>,
    /// CRI socket named in the node's annotations, if any.
    pub cri_socket: Option<String>,
    /// Explanation of the verdict, or of a mismatch between runtime and annotation.
    pub note: Option<String>,
}

/// Lists nodes and prints their runtimes.
pub async fn run(kube: &KubeArgs, args: &NodesArgs) -> Result<()> {
    let target = kube.load().await?;
    let client = target.client()?;
    let api: Api<Node> = Api::all(client);
    let mut params = ListParams::default();
    if let Some(selector) = &args.selector {
        params = params.labels(selector);
    }
    let nodes = api
        .list(&params)
        .await
        .context(|| "failed to list nodes".to_string())?;

    let runtimes: Vec<NodeRuntime> = nodes.items.iter().map(classify).collect();
    print_runtimes(&runtimes, args.output.output)
}

fn print_runtimes(runtimes: &[NodeRuntime], format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => print_structured(&runtimes, format),
        OutputFormat::Name => {
            let names: String = runtimes
                .iter()
                .map(|node| format!("node/{}\n", node.name))
                .collect();
            print(&names)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            if runtimes.is_empty() {
                eprintln!("No resources found");
                return Ok(());
            }
            print(&render_table(runtimes, format == OutputFormat::Wide))
        }
    }
}

/// Renders the kubectl-style table; `wide` adds the CRI socket and the note.
pub fn render_table(runtimes: &[NodeRuntime], wide: bool) -> String {
    let mut table = Table::new(&[
        "name", "runtime", "version", "kubelet", "os-image", "docker",
    ])
    .with_wide_columns(&["cri-socket", "note"]);
    for node in runtimes {
        table.add_row([
            node.name.clone(),
            node.runtime.clone(),
            node.runtime_version.clone(),
            node.kubelet_version.clone(),
            node.os_image.clone(),
            node.docker.map_or("-", DockerShim::name).to_string(),
            node.cri_socket.clone().unwrap_or_default(),
            node.note.clone().unwrap_or_default(),
        ]);
    }
    table.render(wide)
}

/// Reads a Node's runtime and decides whether and how it uses Docker Engine.
pub fn classify(node: &Node) -> NodeRuntime {
    let name = node.metadata.name.clone().unwrap_or_default();
    let info = node
        .status
        .as_ref()
        .and_then(|status| status.node_info.as_ref());
    let runtime_field = info
        .map(|info| info.container_runtime_version.as_str())
        .unwrap_or_default();
    let kubelet_version = info
        .map(|info| info.kubelet_version.clone())
        .unwrap_or_default();
    let os_image = info.map(|info| info.os_image.clone()).unwrap_or_default();
    let (runtime, runtime_version) = split_runtime(runtime_field);
    let cri_socket = cri_socket(node);

    let socket_shim = cri_socket.as_deref().and_then(socket_shim);
    let (docker, note) = if runtime == "docker" {
        decide_docker_shim(&kubelet_version, socket_shim)
    } else if let Some(shim) = socket_shim {
        let socket = cri_socket.clone().unwrap_or_default();
        (
            None,
            Some(format!(
                "runtime is {runtime} but the CRI socket annotation still names {} ({socket}); update the annotation before kubeadm upgrade reads it",
                shim.name()
            )),
        )
    } else {
        (None, None)
    };

    NodeRuntime {
        name,
        runtime,
        runtime_version,
        kubelet_version,
        os_image,
        docker,
        cri_socket,
        note,
    }
}

/// Splits `containerd://1.7.13` into name and version; a value without `://` is all name.
pub fn split_runtime(value: &str) -> (String, String) {
    match value.split_once("://") {
        Some((name, version)) => (name.to_string(), version.to_string()),
        None => (value.to_string(), String::new()),
    }
}

fn cri_socket(node: &Node) -> Option<String> {
    let annotations = node.metadata.annotations.as_ref()?;
    if let Some(socket) = annotations.get(KUBEADM_CRI_SOCKET) {
        return Some(socket.clone());
    }
    annotations
        .iter()
        .find(|(key, value)| key.starts_with(NODE_ALPHA_PREFIX) && value.contains(".sock"))
        .map(|(_, value)| value.clone())
}

/// Names the Docker shim a CRI socket path belongs to.
pub fn socket_shim(socket: &str) -> Option<DockerShim> {
    if socket.contains("cri-dockerd") {
        Some(DockerShim::CriDockerd)
    } else if socket.contains("dockershim") {
        Some(DockerShim::Dockershim)
    } else {
        None
    }
}

/// Decides the shim of a `docker://` node: the socket annotation when it names cri-dockerd,
/// else the kubelet version, because dockershim was removed from the kubelet in 1.24.
fn decide_docker_shim(
    kubelet_version: &str,
    socket: Option<DockerShim>,
) -> (Option<DockerShim>, Option<String>) {
    let minor = kubelet_minor(kubelet_version);
    if socket == Some(DockerShim::CriDockerd) {
        return (
            Some(DockerShim::CriDockerd),
            Some("the CRI socket annotation names cri-dockerd".to_string()),
        );
    }
    match minor {
        Some(minor) if minor < 24 => (
            Some(DockerShim::Dockershim),
            Some(format!(
                "kubelet 1.{minor} uses the built-in dockershim, removed in 1.24: move to containerd or cri-dockerd before upgrading"
            )),
        ),
        Some(minor) => (
            Some(DockerShim::CriDockerd),
            Some(format!(
                "kubelet 1.{minor} has no dockershim, so Docker Engine runs behind cri-dockerd"
            )),
        ),
        None => (
            Some(DockerShim::CriDockerd),
            Some(format!(
                "unreadable kubelet version {kubelet_version:?}: assumed 1.24 or later, so cri-dockerd"
            )),
        ),
    }
}

/// Returns the minor version of a `v1.23.17` kubelet version.
pub fn kubelet_minor(version: &str) -> Option<u32> {
    let mut parts = version.trim_start_matches('v').split('.');
    if parts.next()? != "1" {
        return None;
    }
    let minor = parts.next()?;
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeStatus, NodeSystemInfo};
    use kube::api::ObjectMeta;

    fn node(name: &str, runtime: &str, kubelet: &str, socket: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                annotations: socket
                    .map(|socket| [(KUBEADM_CRI_SOCKET.to_string(), socket.to_string())].into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                node_info: Some(NodeSystemInfo {
                    container_runtime_version: runtime.to_string(),
                    kubelet_version: kubelet.to_string(),
                    os_image: "Ubuntu 22.04.4 LTS".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn containerd_not_flagged() {
        let runtime = classify(&node("a", "containerd://1.7.13", "v1.29.2", None));
        assert_eq!(runtime.runtime, "containerd");
        assert_eq!(runtime.runtime_version, "1.7.13");
        assert_eq!(runtime.docker, None);
        assert_eq!(runtime.note, None);
    }

    #[test]
    fn old_kubelet_docker_is_dockershim() {
        let runtime = classify(&node("b", "docker://20.10.24", "v1.23.17", None));
        assert_eq!(runtime.docker, Some(DockerShim::Dockershim));
    }

    #[test]
    fn new_kubelet_docker_is_cri_dockerd() {
        let runtime = classify(&node("c", "docker://24.0.7", "v1.28.4", None));
        assert_eq!(runtime.docker, Some(DockerShim::CriDockerd));
    }

    #[test]
    fn socket_annotation_names_cri_dockerd() {
        let runtime = classify(&node(
            "d",
            "docker://24.0.7",
            "v1.23.4",
            Some("unix:///var/run/cri-dockerd.sock"),
        ));
        assert_eq!(runtime.docker, Some(DockerShim::CriDockerd));
        assert_eq!(
            runtime.cri_socket.as_deref(),
            Some("unix:///var/run/cri-dockerd.sock")
        );
    }

    #[test]
    fn stale_annotation_noted_on_containerd() {
        let runtime = classify(&node(
            "e",
            "containerd://1.7.13",
            "v1.29.2",
            Some("unix:///var/run/cri-dockerd.sock"),
        ));
        assert_eq!(runtime.docker, None);
        assert!(
            runtime
                .note
                .unwrap()
                .starts_with("runtime is containerd but")
        );
    }

    #[test]
    fn kubelet_minor_parsed() {
        assert_eq!(kubelet_minor("v1.23.17"), Some(23));
        assert_eq!(kubelet_minor("v1.30.0-eks-036c24b"), Some(30));
        assert_eq!(kubelet_minor("garbage"), None);
    }

    #[test]
    fn table_lists_runtime_columns() {
        let runtimes = vec![classify(&node("n1", "cri-o://1.29.1", "v1.29.1", None))];
        assert_eq!(
            render_table(&runtimes, false),
            "NAME   RUNTIME   VERSION   KUBELET   OS-IMAGE             DOCKER\nn1     cri-o     1.29.1    v1.29.1   Ubuntu 22.04.4 LTS   -\n"
        );
    }
}
