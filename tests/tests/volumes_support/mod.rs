//! Shared set-up of the volume data tests. It starts `test-apiserver` as a child process whose
//! kubelet runs the agent image from the workspace's built binaries, and runs `kubectl-migrate`
//! with a home of the test's own. It also watches pods and lists folder trees for comparison.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::plugins::{self, bin_dir, ensure_built};

/// Agent image that the simulated kubelet runs from the freshly built binaries.
pub const LOCAL_AGENT_IMAGE: &str = "example.test/kubectl-plugins-agent:test";

/// `test-apiserver` as a child process, killed on drop. Its kubelet runs LOCAL_AGENT_IMAGE and
/// keeps the private roots of pods with claims under `<folder>/tmp` (through TMPDIR).
///
/// NOTE: the simulated kubelet does not resolve `valueFrom` in pod env, so the agents would
/// never see the password from the run's Secret. The server runs with
/// KUBECTL_MIGRATE_PASSWORD set, and the agents inherit it.
pub struct ServerProcess {
    child: Child,
    pub kubeconfig: PathBuf,
    temp: PathBuf,
}

impl ServerProcess {
    /// Starts the server with its kubeconfig and temporary folder under `folder`.
    pub fn start(folder: &Path, password: &str) -> ServerProcess {
        ensure_built(&["migrate"]);
        let temp = folder.join("tmp");
        std::fs::create_dir_all(&temp).unwrap();
        let kubeconfig = folder.join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_test-apiserver"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .arg("--local-image")
            .arg(format!("{LOCAL_AGENT_IMAGE}={}", bin_dir().display()))
            .env("KUBECTL_MIGRATE_PASSWORD", password)
            .env("TMPDIR", &temp)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start test-apiserver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("http"), "test-apiserver printed {line:?}");
        ServerProcess {
            child,
            kubeconfig,
            temp,
        }
    }

    /// Lists the private root folders of the kubelet's pods that are still on the host.
    pub fn private_roots(&self) -> Vec<String> {
        std::fs::read_dir(&self.temp)
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("test-kubelet-"))
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a `kubectl-migrate` command against `kubeconfig`, with its configuration and data
/// folders under `home` and the repository password in its environment.
pub fn migrate(kubeconfig: &Path, home: &Path, password: &str) -> Command {
    ensure_built(&["migrate"]);
    let mut command = Command::new(bin_dir().join("kubectl-migrate"));
    command
        .env("KUBECONFIG", kubeconfig)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .env("KUBECTL_MIGRATE_PASSWORD", password);
    command
}

/// Streams the watch events of one resource type in a namespace into memory until stopped.
pub struct PodWatch {
    child: Child,
}

impl PodWatch {
    /// Watches the pods of a namespace.
    pub fn start(kubeconfig: &Path, namespace: &str) -> PodWatch {
        PodWatch::start_for(kubeconfig, "pods", namespace)
    }

    /// Watches objects of another resource type, such as statefulsets.
    pub fn start_for(kubeconfig: &Path, resource: &str, namespace: &str) -> PodWatch {
        let child = plugins::kubectl()
            .env("KUBECONFIG", kubeconfig)
            .args([
                "get",
                resource,
                "-n",
                namespace,
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The watch must be established before the objects it should see are created.
        std::thread::sleep(Duration::from_millis(500));
        PodWatch { child }
    }

    /// Stops the watch and returns the (type, object) events it saw.
    pub fn stop(mut self) -> Vec<(String, Value)> {
        // Events of the last changes may still be on their way.
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let mut stdout = Vec::new();
        std::io::Read::read_to_end(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        serde_json::Deserializer::from_slice(&stdout)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .map(|event| {
                (
                    event["type"].as_str().unwrap_or("").to_string(),
                    event["object"].clone(),
                )
            })
            .collect()
    }

    /// Stops the watch and returns the first added object whose name starts with `prefix`.
    pub fn stop_and_find(self, prefix: &str) -> Value {
        self.stop()
            .into_iter()
            .find(|(kind, object)| {
                kind == "ADDED"
                    && object["metadata"]["name"]
                        .as_str()
                        .is_some_and(|name| name.starts_with(prefix))
            })
            .map(|(_, object)| object)
            .unwrap_or_else(|| panic!("no pod {prefix}* was added"))
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Describes every entry under a folder (type, mode, owner, mtime, link count, size and
/// content digest, or link target), sorted by path, so two trees compare with one assert.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;

    let mut listing = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let detail = if metadata.is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if metadata.is_dir() {
                pending.push(path.clone());
                format!("dir, mtime {}", metadata.mtime())
            } else {
                let digest = Sha256::digest(std::fs::read(&path).unwrap());
                format!(
                    "{} bytes, mtime {}, links {}, sha256 {:x}",
                    metadata.len(),
                    metadata.mtime(),
                    metadata.nlink(),
                    digest
                )
            };
            listing.push(format!(
                "{relative} {:o} {}:{} {detail}",
                metadata.mode() & 0o7777,
                metadata.uid(),
                metadata.gid()
            ));
        }
    }
    listing.sort();
    listing
}

/// Writes a hand-made volume record into the backup folder `backup`, for pod `pod` of
/// namespace shop on node-1: the restore then looks for snapshot `snapshot` of `volume`.
pub fn write_volume_record(backup: &Path, pod: &str, volume: &str, source: Value, snapshot: &str) {
    let record = backup.join(format!("volumes/shop/{pod}/{volume}.json"));
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    let content = json!({
        "namespace": "shop", "pod": pod, "volume": volume, "node": "node-1",
        "source": source, "snapshot": snapshot,
        "stats": {"files": 1, "directories": 1, "other_entries": 0, "total_bytes": 10,
            "unchanged_files": 0, "read_bytes": 10, "new_chunks": 1, "new_bytes": 10,
            "stored_bytes": 60, "duration_ms": 5}
    });
    std::fs::write(&record, serde_json::to_vec(&content).unwrap()).unwrap();
}
