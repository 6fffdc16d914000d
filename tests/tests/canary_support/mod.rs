//! Shared set-up of the canary tests: a local API server with the hello-world app, the plugin
//! run through the real kubectl, and local HTTP servers that respond like the hello-world app.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use testkit::apiserver::{ServerOptions, TestServer};
use testkit::plugins::{apply_stdin, ensure_built, kubectl, run, stderr, stdout, workspace_root};

/// Namespace every canary test works in.
pub const NAMESPACE: &str = "demo";

/// Returns the path of a shared fixture manifest.
pub fn manifest(name: &str) -> PathBuf {
    workspace_root()
        .join("../shared/fixtures/manifests")
        .join(name)
}

/// A local API server with the namespace `demo`; dropping it stops the server.
pub struct Env {
    pub server: TestServer,
}

impl Env {
    /// Starts a server and creates the namespace.
    pub fn start() -> Env {
        ensure_built(&["canary"]);
        let env = Env {
            server: TestServer::start(ServerOptions::default()),
        };
        env.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
        ));
        env
    }

    fn kubeconfig(&self) -> String {
        self.server.kubeconfig().display().to_string()
    }

    /// Runs kubectl against the server in the test namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run(kubectl()
            .args(args)
            .args(["--kubeconfig", &self.kubeconfig(), "-n", NAMESPACE]))
    }

    /// Runs kubectl and panics with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            stderr(&output)
        );
        stdout(&output)
    }

    /// Runs `kubectl canary ARGS` against the server in the test namespace.
    pub fn canary(&self, args: &[&str]) -> Output {
        let mut full = vec!["canary"];
        full.extend_from_slice(args);
        self.kubectl(&full)
    }

    /// Runs `kubectl canary ARGS` and panics with its stderr when it fails.
    pub fn canary_ok(&self, args: &[&str]) -> String {
        let output = self.canary(args);
        assert!(
            output.status.success(),
            "kubectl canary {args:?} failed ({:?}): {}{}",
            output.status.code(),
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// Applies manifests given as text.
    pub fn apply(&self, yaml: &str) {
        apply_stdin(
            kubectl().args(["--kubeconfig", &self.kubeconfig(), "-n", NAMESPACE]),
            yaml,
        );
    }

    /// Converts a legacy fixture with `kubectl canary convert` and applies the result.
    pub fn apply_converted(&self, fixture: &str) {
        let path = manifest(fixture).display().to_string();
        let converted = self.canary_ok(&["convert", "-f", &path]);
        self.apply(&converted);
    }

    /// Reads an object as JSON.
    pub fn get(&self, kind: &str, name: &str) -> serde_json::Value {
        let text = self.kubectl_ok(&["get", kind, name, "-o", "json"]);
        serde_json::from_str(&text).expect("kubectl prints JSON")
    }

    /// Reports whether an object exists.
    pub fn exists(&self, kind: &str, name: &str) -> bool {
        self.kubectl(&["get", kind, name, "-o", "name"])
            .status
            .success()
    }

    /// Returns one annotation of an object.
    pub fn annotation(&self, kind: &str, name: &str, key: &str) -> Option<String> {
        self.get(kind, name)["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    /// Applies both hello-world versions, the converted primary Ingress, and one ready
    /// EndpointSlice per Service (the test server runs no endpoint controller).
    pub fn hello_world(&self) {
        for fixture in ["helloworld-v1.yaml", "helloworld-v2.yaml"] {
            self.kubectl_ok(&["apply", "-f", &manifest(fixture).display().to_string()]);
        }
        self.apply_converted("helloworld-ingress-legacy.yaml");
        self.endpoints("hello-world-svc", &[true]);
        self.endpoints("hello-world-svc-v2", &[true]);
    }

    /// Creates or replaces the EndpointSlice of a Service with endpoints of this readiness.
    pub fn endpoints(&self, service: &str, ready: &[bool]) {
        let endpoints: Vec<String> = ready
            .iter()
            .enumerate()
            .map(|(i, ready)| {
                format!(
                    "- addresses: [\"10.244.0.{}\"]\n  conditions: {{ready: {ready}}}",
                    i + 10
                )
            })
            .collect();
        let endpoints = if endpoints.is_empty() {
            "[]".to_string()
        } else {
            format!("\n{}", endpoints.join("\n"))
        };
        self.apply(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-slice\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: IPv4\nports: [{{name: http, port: 80, protocol: TCP}}]\nendpoints: {endpoints}\n"
        ));
    }
}

/// Asserts that a command failed with `code` and that stderr contains `needle`.
pub fn assert_fails(output: &Output, code: i32, needle: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stdout: {} stderr: {}",
        stdout(output),
        stderr(output)
    );
    assert!(
        stderr(output).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(output)
    );
}

/// Marker that a [`HelloServer`] puts on canary responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Body `Hello version: v2` versus `Hello version: v1`.
    Body,
    /// Header `X-Version: v2` versus `X-Version: v1`, the same body for both.
    Header,
}

/// A local HTTP server on 127.0.0.1 that responds like the hello-world app, sending an exact share
/// of responses as version v2. Dropping it stops the server.
pub struct HelloServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    pub hosts: Arc<Mutex<Vec<String>>>,
    /// Request line and headers of every request, as received.
    pub heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HelloServer {
    /// Starts a server that returns v2 for `canary_share` of the requests, evenly spread.
    pub fn start(canary_share: f64, marker: Marker) -> HelloServer {
        HelloServer::start_failing(canary_share, marker, 0)
    }

    /// Starts a server like [`HelloServer::start`] that also fails every `fail_every`-th
    /// request with 500 Internal Server Error (0 never fails).
    pub fn start_failing(canary_share: f64, marker: Marker, fail_every: u64) -> HelloServer {
        HelloServer::spawn(canary_share, marker, fail_every, None)
    }

    /// Starts a server like [`HelloServer::start`] that speaks https with a certificate for
    /// 127.0.0.1 signed by a fresh CA. Returns the server and the CA certificate in PEM form.
    pub fn start_tls(canary_share: f64, marker: Marker) -> (HelloServer, String) {
        let (config, ca_pem) = tls_config();
        (
            HelloServer::spawn(canary_share, marker, 0, Some(config)),
            ca_pem,
        )
    }

    fn spawn(
        canary_share: f64,
        marker: Marker,
        fail_every: u64,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> HelloServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(AtomicU64::new(0));
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, hosts, heads, stop) =
                (requests.clone(), hosts.clone(), heads.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let index = requests.fetch_add(1, Ordering::SeqCst);
                    let canary = ((index + 1) as f64 * canary_share).floor()
                        > (index as f64 * canary_share).floor();
                    let failing = fail_every > 0 && (index + 1) % fail_every == 0;
                    match &tls {
                        None => respond(stream, canary, failing, marker, &hosts, &heads),
                        Some(config) => {
                            let Ok(connection) = rustls::ServerConnection::new(config.clone())
                            else {
                                continue;
                            };
                            let stream = rustls::StreamOwned::new(connection, stream);
                            respond(stream, canary, failing, marker, &hosts, &heads);
                        }
                    }
                }
            })
        };
        HelloServer {
            addr,
            requests,
            hosts,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    /// Returns the URL of the server.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

fn respond(
    mut stream: impl Read + Write,
    canary: bool,
    failing: bool,
    marker: Marker,
    hosts: &Mutex<Vec<String>>,
    heads: &Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    heads.lock().unwrap().push(head.clone());
    if let Some(host) = head.lines().find_map(|line| {
        line.strip_prefix("host: ")
            .or_else(|| line.strip_prefix("Host: "))
    }) {
        hosts.lock().unwrap().push(host.trim().to_string());
    }
    let version = if canary { "v2" } else { "v1" };
    let (body, header) = match marker {
        Marker::Body => (
            format!("Hello version: {version}, instance: hello-world-{version}\n"),
            String::new(),
        ),
        Marker::Header => (
            "Hello world\n".to_string(),
            format!("X-Version: {version}\r\n"),
        ),
    };
    let status = if failing {
        "500 Internal Server Error"
    } else {
        "200 OK"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// Builds a TLS server configuration for 127.0.0.1 with a certificate signed by a fresh CA,
/// and returns it with the CA certificate in PEM form.
fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string()]).expect("server parameters");
    server_params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate loads");
    (Arc::new(config), ca_cert.pem())
}

impl Drop for HelloServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it reads the stop flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
