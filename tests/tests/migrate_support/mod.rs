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
