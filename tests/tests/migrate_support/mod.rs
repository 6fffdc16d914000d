//! Helpers of the kubectl-migrate end-to-end tests: servers, fixtures, running the plugin.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testkit::apiserver::{ServerOptions, TestServer};
use testkit::plugins::{self, workspace_root};
use testkit::s3::S3Server;

/// A test API server with a kubeconfig, plus a private XDG folder for the plugin.
pub struct Cluster {
    pub server: TestServer,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster {
            server: TestServer::start(ServerOptions::default()),
        }
    }

    /// Starts a server with non-default options, such as legacy group-versions or a slow
    /// CRD `Established` condition.
    pub fn start_with(options: ServerOptions) -> Cluster {
        Cluster {
            server: TestServer::start(options),
        }
    }

    /// Returns one object as JSON (`kubectl get RESOURCE NAME -n NAMESPACE -o json`); an empty
    /// namespace reads a cluster-scoped object.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Value {
        let mut args = vec!["get", resource, name, "-o", "json"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        let output = self.kubectl(&args);
        assert!(
            output.status.success(),
            "kubectl get {resource} {namespace}/{name}: {}",
            plugins::stderr(&output)
        );
        serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
    }

    /// Writes `manifest` to a file under `folder` and applies it with kubectl.
    pub fn apply_text(&self, folder: &Path, file_name: &str, manifest: &str) {
        let path = folder.join(file_name);
        std::fs::write(&path, manifest).unwrap();
        self.apply(&path);
    }

    /// Runs real kubectl against this server and returns its output.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        plugins::run(self.server.kubectl().args(args))
    }

    /// Runs `kubectl apply -f FILE` and panics with kubectl's stderr when it fails.
    pub fn apply(&self, file: &Path) {
        let output = self.kubectl(&["apply", "-f", file.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "kubectl apply -f {} failed: {}",
            file.display(),
            plugins::stderr(&output)
        );
    }

    /// Returns the objects of one resource type in every namespace, as JSON.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        let output = self.kubectl(&["get", resource, "-A", "-o", "json"]);
        assert!(
            output.status.success(),
            "kubectl get {resource}: {}",
            plugins::stderr(&output)
        );
        let list: Value = serde_json::from_slice(&output.stdout).expect("kubectl prints JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Returns `namespace/name` of every namespace and ConfigMap, Secret, Service and Deployment,
    /// to check that a failed command wrote nothing.
    pub fn snapshot(&self) -> Vec<String> {
        let mut names = Vec::new();
        for resource in [
            "namespaces",
            "configmaps",
            "secrets",
            "services",
            "deployments",
        ] {
            for object in self.list(resource) {
                names.push(format!(
                    "{resource}:{}/{}",
                    object["metadata"]["namespace"].as_str().unwrap_or(""),
                    object["metadata"]["name"].as_str().unwrap_or("")
                ));
            }
        }
        names.sort();
        names
    }
}

/// Returns the folder of the shared manifests.
pub fn manifests_dir() -> PathBuf {
    workspace_root().join("../shared/fixtures/manifests")
}

/// Builds a `kubectl-migrate` command for `cluster` with its own XDG folders under `home`.
pub fn migrate(cluster: Option<&Cluster>, home: &Path) -> Command {
    let mut command = plugins::plugin("migrate");
    command
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE");
    if let Some(cluster) = cluster {
        command.env("KUBECONFIG", cluster.server.kubeconfig());
    }
    command
}

/// Runs a command and returns its output.
pub fn run(command: &mut Command) -> Output {
    plugins::run(command)
}

/// Panics with stdout and stderr unless the command succeeded.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        plugins::stdout(output),
        plugins::stderr(output)
    );
}

/// The S3 arguments of a location at `server`, with a credentials file written under `home`.
pub fn s3_args(server: &S3Server, home: &Path, url: &str) -> Vec<String> {
    let credentials = server.write_credentials_file(home);
    vec![
        "--location".into(),
        url.into(),
        "--endpoint".into(),
        server.endpoint(),
        "--credentials-file".into(),
        credentials.display().to_string(),
    ]
}

/// Removes fields that differ between two clusters by design, so that a source object and its
/// restored copy compare equal.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "ownerReferences",
        ] {
            metadata.remove(field);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("deployment.kubernetes.io/revision");
        }
    }
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    if object["kind"] == "Service"
        && let Some(spec) = object["spec"].as_object_mut()
    {
        if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            port.as_object_mut().map(|p| p.remove("nodePort"));
        }
    }
    // The Job controller of each cluster labels the pods with its own Job's UID.
    if object["kind"] == "Job" {
        if let Some(spec) = object["spec"].as_object_mut() {
            spec.remove("selector");
        }
        if let Some(labels) = object
            .pointer_mut("/spec/template/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("controller-uid");
            labels.remove("batch.kubernetes.io/controller-uid");
        }
    }
    object
}

/// Writes a complete backup `name` into the folder location at `root`, in the layout of
/// `docs/backup-format.md`: one compact JSON document per object, then the manifest with each
/// document's SHA-256 and size. `objects` pairs each object with its plural resource name.
/// Tests use it for objects that `backup create` never stores, such as an Ingress in a removed
/// API version.
pub fn write_backup(root: &Path, name: &str, objects: &[(&str, Value)]) {
    let mut entries = Vec::new();
    let mut by_resource = serde_json::Map::new();
    let mut by_namespace = serde_json::Map::new();
    for (resource, object) in objects {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("object has apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let namespace = object["metadata"]["namespace"].as_str();
        let object_name = object["metadata"]["name"]
            .as_str()
            .expect("object has a name");
        let key = format!(
            "backups/{name}/resources/{}/{version}/{resource}/{}/{object_name}.json",
            if group.is_empty() { "core" } else { group },
            namespace.unwrap_or("_cluster"),
        );

        let document = serde_json::to_vec(object).unwrap();
        let path = root.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &document).unwrap();

        let group_resource = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        increment(&mut by_resource, &group_resource);
        increment(&mut by_namespace, namespace.unwrap_or("_cluster"));
        let mut entry = serde_json::json!({
            "group": group,
            "version": version,
            "resource": resource,
            "kind": object["kind"],
            "name": object_name,
            "key": key,
            "uid": object["metadata"]["uid"].as_str().unwrap_or(""),
            "sha256": sha256_hex(&document),
            "size": document.len(),
        });
        if let Some(namespace) = namespace {
            entry["namespace"] = Value::from(namespace);
        }
        entries.push(entry);
    }
    entries.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));

    // The manifest goes last: a backup without one is incomplete.
    let manifest = serde_json::json!({
        "formatVersion": 1,
        "name": name,
        "startedAt": "2026-01-01T00:00:00Z",
        "completedAt": "2026-01-01T00:00:01Z",
        "source": {"context": null, "server": "https://127.0.0.1:6443/", "kubernetesVersion": "v1.21.14"},
        "filters": {
            "includeNamespaces": [],
            "excludeNamespaces": [],
            "includeResources": [],
            "excludeResources": [],
            "selector": null,
            "includeClusterResources": "auto"
        },
        "counts": {"total": entries.len(), "byResource": by_resource, "byNamespace": by_namespace},
        "objects": entries,
    });
    std::fs::write(
        root.join(format!("backups/{name}/manifest.json")),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

fn increment(counts: &mut serde_json::Map<String, Value>, key: &str) {
    let count = counts.get(key).and_then(Value::as_u64).unwrap_or(0);
    counts.insert(key.to_string(), Value::from(count + 1));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Returns the saved result of restore `name` (`restore describe NAME -o json`).
pub fn restore_result(home: &Path, location: &[String], name: &str) -> Value {
    let output = run(migrate(None, home)
        .args(["restore", "describe", name, "-o", "json"])
        .args(location));
    assert_success(&output, "restore describe");
    serde_json::from_slice(&output.stdout).expect("restore describe -o json prints JSON")
}

/// Returns the item of a restore result for `kind` `namespace/name` (empty namespace for
/// cluster-scoped objects), panicking with the whole result when it is missing.
pub fn result_item<'a>(result: &'a Value, kind: &str, namespace: &str, name: &str) -> &'a Value {
    result["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| {
            item["kind"] == kind
                && item["namespace"].as_str().unwrap_or("") == namespace
                && item["name"] == name
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} in the restore result: {result:#}"))
}
