//! Resource backup and restore on the in-process test API server: 10,000 objects (ConfigMaps,
//! Secrets, Deployments and Services over 100 namespaces) backed up with `kubectl-migrate`,
//! compared with `kubectl get configmaps,secrets,deployments,services -A -o json` on the same
//! server in the same run, then restored into a second server. Prints objects per second, the
//! backup/kubectl time ratio and the peak resident memory of each kubectl-migrate process.
//!
//! Run with `cargo bench -p kubectl-migrate --bench resources`. `BENCH_OBJECTS` sets the object
//! count (a multiple of 400; default 10000). Peak memory is the child's VmHWM from
//! /proc/PID/status, sampled every 10 ms until it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use testkit::apiserver::{ServerOptions, TestServer};

const NAMESPACES: usize = 100;
const KINDS: usize = 4;

fn main() {
    shared::app::install_crypto_provider();
    let objects: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let per_kind_and_namespace = (objects / NAMESPACES / KINDS).max(1);
    let objects = per_kind_and_namespace * NAMESPACES * KINDS;
    let binary = build_release_binary();

    let source = TestServer::start(ServerOptions::default());
    let target = TestServer::start(ServerOptions::default());
    let work = tempfile::tempdir().expect("temporary folder");
    let location = format!("file://{}/backups", work.path().display());

    let started = Instant::now();
    seed(source.kubeconfig(), per_kind_and_namespace);
    println!(
        "seeded {objects} objects in {NAMESPACES} namespaces in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Backup first: memory is read from the child itself, so the order does not matter for it,
    // but it keeps the server's caches equally warm for the kubectl run that follows.
    let backup = run_measured(
        Command::new(&binary)
            .args(["backup", "create", "bench", "--location", &location])
            .args([
                "--include-resources",
                "configmaps,secrets,deployments,services",
            ])
            .args(["--include-cluster-resources", "false"])
            .env("KUBECONFIG", source.kubeconfig()),
    );
    let kubectl = run_measured(
        Command::new("kubectl")
            .args([
                "get",
                "configmaps,secrets,deployments,services",
                "-A",
                "-o",
                "json",
            ])
            .env("KUBECONFIG", source.kubeconfig()),
    );
    let restore = run_measured(
        Command::new(&binary)
            .args([
                "restore",
                "create",
                "bench-restore",
                "--from-backup",
                "bench",
            ])
            .args(["--location", &location, "-o", "json"])
            .env("KUBECONFIG", target.kubeconfig()),
    );

    let backup_rate = objects as f64 / backup.elapsed.as_secs_f64();
    let kubectl_rate = objects as f64 / kubectl.elapsed.as_secs_f64();
    let result: serde_json::Value = serde_json::from_slice(&restore.stdout).unwrap_or_default();
    let created = result["counts"]["created"].as_u64().unwrap_or(0);
    let restore_rate = created as f64 / restore.elapsed.as_secs_f64();

    println!("objects:                   {objects}");
    println!(
        "kubectl get -A -o json:    {:.2} s, {:.0} objects/s, peak {:.1} MiB",
        kubectl.elapsed.as_secs_f64(),
        kubectl_rate,
        kubectl.peak_mib
    );
    println!(
        "kubectl migrate backup:    {:.2} s, {:.0} objects/s, peak {:.1} MiB",
        backup.elapsed.as_secs_f64(),
        backup_rate,
        backup.peak_mib
    );
    println!(
        "kubectl migrate restore:   {:.2} s, {created} created, {:.0} objects/s, peak {:.1} MiB",
        restore.elapsed.as_secs_f64(),
        restore_rate,
        restore.peak_mib
    );
    println!(
        "backup speed / kubectl dump speed: {:.2} (above 1 means the backup is faster)",
        backup_rate / kubectl_rate
    );
    assert!(
        backup.success && kubectl.success && restore.success,
        "a command failed"
    );
    assert_eq!(
        created as usize,
        objects + NAMESPACES,
        "restore created {created} objects"
    );
}

/// Builds the release binary once, as `cargo bench` does not build binaries of the package.
fn build_release_binary() -> PathBuf {
    let root = testkit::plugins::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--bin",
            "kubectl-migrate",
            "-p",
            "kubectl-migrate",
        ])
        .status()
        .expect("failed to run cargo build");
    assert!(status.success(), "cargo build --release failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/kubectl-migrate")
}

/// Creates the namespaces and objects through the API, 32 requests at a time.
fn seed(kubeconfig: &Path, per_kind_and_namespace: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .expect("client config");
        let client = kube::Client::try_from(config).expect("client");

        let namespaces: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
        );
        for n in 0..NAMESPACES {
            let namespace: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("bench-{n}")}
            }))
            .unwrap();
            namespaces
                .create(&PostParams::default(), &namespace)
                .await
                .expect("create namespace");
        }

        let mut requests = Vec::new();
        for n in 0..NAMESPACES {
            for i in 0..per_kind_and_namespace {
                requests.push((n, object_of_kind(0, n, i)));
                requests.push((n, object_of_kind(1, n, i)));
                requests.push((n, object_of_kind(2, n, i)));
                requests.push((n, object_of_kind(3, n, i)));
            }
        }
        stream::iter(requests)
            .map(|(n, (resource, object))| {
                let client = client.clone();
                async move {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client, &format!("bench-{n}"), &resource);
                    let object: DynamicObject = serde_json::from_value(object).unwrap();
                    api.create(&PostParams::default(), &object)
                        .await
                        .expect("create object");
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });
}

/// Returns the API resource and body of object `i` of kind `kind` (0 ConfigMap, 1 Secret,
/// 2 Deployment, 3 Service) in namespace `n`.
fn object_of_kind(kind: usize, n: usize, i: usize) -> (ApiResource, serde_json::Value) {
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service},
    };
    let name = format!("item-{i}");
    let labels = json!({"app": format!("app-{i}"), "bench": "resources"});
    match kind {
        0 => (
            ApiResource::erase::<ConfigMap>(&()),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
                   "data": {"settings.yaml": format!("namespace: bench-{n}\nindex: {i}\nlog-level: info\n")}}),
        ),
        1 => (
            ApiResource::erase::<Secret>(&()),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels},
                   "type": "Opaque", "data": {"password": "c2VjcmV0LXZhbHVlLWZvci1iZW5jaA=="}}),
        ),
        2 => (
            ApiResource::erase::<Deployment>(&()),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                            "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                                         "spec": {"containers": [{"name": "app", "image": "registry.local/app:1.0",
                                                                  "ports": [{"containerPort": 8080}]}]}}}}),
        ),
        _ => (
            ApiResource::erase::<Service>(&()),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
                   "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
    }
}

/// Time, exit status, stdout and peak memory of one child process.
struct Measured {
    elapsed: Duration,
    success: bool,
    stdout: Vec<u8>,
    peak_mib: f64,
}

/// Runs a command with stdout captured and samples its VmHWM until it exits.
fn run_measured(command: &mut Command) -> Measured {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("failed to start the command");
    let pid = child.id();

    // stdout is drained on a thread so that a large output cannot block the child.
    let mut pipe = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut pipe, &mut bytes)
            .map(|_| bytes)
            .unwrap_or_default()
    });

    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(kib) = read_vm_hwm(pid) {
            peak_kib = peak_kib.max(kib);
        }
        match child.try_wait().expect("failed to wait for the command") {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = started.elapsed();
    Measured {
        elapsed,
        success: status.success(),
        stdout: reader.join().unwrap_or_default(),
        peak_mib: peak_kib as f64 / 1024.0,
    }
}

fn read_vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
