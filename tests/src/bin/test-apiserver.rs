//! `test-apiserver`: runs the local Kubernetes API server as a process until it is killed.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use testkit::apiserver::{KubeletOptions, NodeSpec, ServerOptions, TestServer};

/// Local Kubernetes API server for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "test-apiserver", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// File to write the kubeconfig to (CA data, server URL and bearer token).
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Folder in which objects are persisted as JSON files and reloaded on start.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// Also serve a removed group-version: extensions/v1beta1 or networking.k8s.io/v1beta1.
    #[arg(long = "serve-group-version", value_name = "GROUP/VERSION")]
    serve_group_versions: Vec<String>,
    /// Simulate a kubelet: register nodes and run pods.
    #[arg(long)]
    kubelet: bool,
    /// A simulated node as NAME=CONTAINER_RUNTIME_VERSION (implies --kubelet); repeatable.
    #[arg(long = "node", value_name = "NAME=RUNTIME_VERSION", value_parser = parse_node)]
    nodes: Vec<NodeSpec>,
    /// An image whose containers run as local processes, as IMAGE=DIR (implies --kubelet).
    #[arg(long = "local-image", value_name = "IMAGE=DIR", value_parser = parse_local_image)]
    local_images: Vec<(String, PathBuf)>,
    /// Range of Service cluster IPs; no traffic is ever sent to them.
    #[arg(long, default_value = "10.96.0.0/16")]
    service_cidr: String,
    /// Delay before a new CRD is Established, in milliseconds.
    #[arg(long, default_value_t = 200)]
    crd_established_delay_ms: u64,
}

fn parse_node(text: &str) -> Result<NodeSpec, String> {
    let (name, runtime) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid --node {text:?}: expected NAME=RUNTIME_VERSION, for example node-1=containerd://1.7.13"))?;
    if name.is_empty() || !runtime.contains("://") {
        return Err(format!(
            "invalid --node {text:?}: expected NAME=RUNTIME_VERSION, for example node-1=containerd://1.7.13"
        ));
    }
    let mut node = NodeSpec::new(name);
    node.container_runtime_version = runtime.to_string();
    Ok(node)
}

fn parse_local_image(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((image, dir)) if !image.is_empty() && !dir.is_empty() => {
            Ok((image.to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!(
            "invalid --local-image {text:?}: expected IMAGE=DIR"
        )),
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let kubelet = if args.kubelet || !args.nodes.is_empty() || !args.local_images.is_empty() {
        let mut options = KubeletOptions::default();
        if !args.nodes.is_empty() {
            options.nodes = args.nodes;
        }
        options.local_images = args.local_images;
        Some(options)
    } else {
        None
    };
    let options = ServerOptions {
        plain_http: args.plain_http,
        state_dir: args.state_dir,
        extra_group_versions: args.serve_group_versions,
        crd_established_delay: std::time::Duration::from_millis(args.crd_established_delay_ms),
        kubelet,
        service_cidr: args.service_cidr,
        listen: args.listen,
    };
    let server = match TestServer::try_start(options) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("test-apiserver: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    if let Err(error) = server.write_kubeconfig(&args.kubeconfig_out) {
        eprintln!(
            "test-apiserver: failed to write kubeconfig {}: {error}",
            args.kubeconfig_out.display()
        );
        return std::process::ExitCode::from(1);
    }
    // The process serves until it is killed, so the server's own temporary folder, which holds
    // only the kubeconfig just copied to --kubeconfig-out, is removed now instead of on drop.
    if let Some(folder) = server.kubeconfig().parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", server.url());
    let _ = stdout.flush();
    drop(stdout);
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
