//! `kubectl crimap scan`: Docker dependencies in manifest files (fixtures with each kind) and in
//! a cluster served by the local test API server, reported per owning workload.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::apiserver::{KubeletOptions, ServerOptions, TestServer};
use testkit::plugins::{apply_stdin, plugin, run, stderr, stdout, workspace_root};

/// The plugin, run from the workspace root so that fixture paths print short.
fn crimap() -> Command {
    let mut command = plugin("crimap");
    command.current_dir(workspace_root());
    command
}

const FIXTURE_TABLE: &str = "\
NAMESPACE   WORKLOAD                       CONTAINER   FINDING           DETAIL
ci          job.batch/image-build          build       docker-cli        docker buildx build --push -t registry.local/app:nightly . (configmap build-script, key build.sh)
ci          job.batch/image-build          build       docker-cli        docker login -u \"$REGISTRY_USER\" --password-stdin registry.local < /secrets/p... (configmap build-script, key build.sh)
ci          deployment.apps/ci-runner      dind        dind-image        image docker:24.0.7-dind runs dockerd (docker-in-docker)
ci          deployment.apps/ci-runner      runner      docker-host-env   DOCKER_HOST=tcp://localhost:2375
ci          deployment.apps/ci-runner      runner      docker-cli        docker build -t registry.local/app:$CI_COMMIT .
ci          deployment.apps/ci-runner      runner      docker-cli        docker push registry.local/app:$CI_COMMIT
logging     daemonset.apps/fluentd         fluentd     docker-data-dir   hostPath /var/lib/docker/containers mounted at /var/lib/docker/containers
ci          cronjob.batch/nightly-build    builder     dockerd           privileged container runs dockerd
ops         pod/portainer-agent            agent       docker-socket     hostPath /var/run/docker.sock mounted at /var/run/docker.sock
ops         statefulset.apps/image-cache   cache       docker-socket     hostPath /run/docker.sock mounted at /host/docker.sock
ops         statefulset.apps/image-cache   cache       docker-cli        docker -H unix:///host/docker.sock info
";

#[test]
fn fixtures_folder_finds_each_kind() {
    let output = run(crimap().args(["scan", "-f", "tests/fixtures/crimap"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), FIXTURE_TABLE);
}

#[test]
fn recursive_scan_reads_subfolders() {
    let output = run(crimap().args(["scan", "-f", "tests/fixtures/crimap", "-R", "-o", "name"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "job.batch/image-build\ndeployment.apps/ci-runner\ndaemonset.apps/fluentd\njob.batch/integration\n\
         cronjob.batch/nightly-build\npod/portainer-agent\nstatefulset.apps/image-cache\n"
    );
}

#[test]
fn exit_code_flag_fails_on_findings() {
    let output = run(crimap().args([
        "scan",
        "-f",
        "tests/fixtures/crimap/log-collector.yaml",
        "--exit-code",
    ]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).contains("daemonset.apps/fluentd"));
    assert_eq!(
        stderr(&output),
        "",
        "an --exit-code failure prints no error"
    );
}

#[test]
fn clean_manifest_passes_with_exit_code() {
    let output = run(crimap().args([
        "scan",
        "-f",
        "tests/fixtures/crimap/web.yaml",
        "--exit-code",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "No Docker dependencies found in 1 workload.\n"
    );
}

#[test]
fn json_report_lists_findings() {
    let output = run(crimap().args(["scan", "-f", "tests/fixtures/crimap", "-R", "-o", "json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["scanned"], 8);
    let workloads = report["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 7);
    let cache = workloads
        .iter()
        .find(|w| w["name"] == "image-cache")
        .unwrap();
    assert_eq!(cache["kind"], "StatefulSet");
    assert_eq!(cache["namespace"], "ops");
    assert_eq!(cache["source"], "tests/fixtures/crimap/socket-mounts.json");
    assert_eq!(
        cache["findings"][0],
        serde_json::json!({"kind": "docker-socket", "container": "cache",
                           "detail": "hostPath /run/docker.sock mounted at /host/docker.sock"})
    );
}

#[test]
fn stdin_manifest_scanned() {
    let mut child = crimap()
        .args(["scan", "-f", "-", "-o", "name"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: 'docker:dind'}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "pod/p\n");
}

#[test]
fn bad_file_input_named() {
    let missing = run(crimap().args(["scan", "-f", "tests/fixtures/crimap/none.yaml"]));
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        stderr(&missing),
        "kubectl-crimap: error: manifest path tests/fixtures/crimap/none.yaml does not exist: pass an existing file or folder to -f\n"
    );

    let folder = tempfile::tempdir().unwrap();
    let broken = folder.path().join("broken.yaml");
    std::fs::write(&broken, "kind: Deployment\nmetadata: {name: x\n").unwrap();
    let output = run(crimap().arg("scan").arg("-f").arg(&broken));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!(
            "kubectl-crimap: error: invalid YAML in {} (document 1):",
            broken.display()
        )),
        "{}",
        stderr(&output)
    );

    let empty = tempfile::tempdir().unwrap();
    let output = run(crimap().arg("scan").arg("-f").arg(empty.path()));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "kubectl-crimap: error: no .yaml, .yml or .json files in {}: pass a folder with manifests, or add -R for subfolders\n",
            empty.path().display()
        )
    );

    let output = run(crimap().args(["scan", "-R"]));
    assert_eq!(output.status.code(), Some(2), "-R needs -f");
}

// Cluster scans against the local test API server.

fn kubectl_ok(server: &TestServer, args: &[&str]) -> String {
    let output: Output = run(server.kubectl().args(args));
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

fn apply(server: &TestServer, manifest: &str) {
    apply_stdin(&mut server.kubectl(), manifest);
}

fn uid(server: &TestServer, resource: &str, namespace: &str, name: &str) -> String {
    kubectl_ok(
        server,
        &[
            "get",
            resource,
            name,
            "-n",
            namespace,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    )
}

fn owner(api_version: &str, kind: &str, name: &str, uid: &str) -> String {
    format!(
        "ownerReferences: [{{apiVersion: {api_version}, kind: {kind}, name: {name}, uid: '{uid}', controller: true}}]"
    )
}

const SOCKET_POD_SPEC: &str = "
      containers:
      - name: agent
        image: registry.local/ops/agent:1
        volumeMounts: [{name: sock, mountPath: /var/run/docker.sock}]
      volumes: [{name: sock, hostPath: {path: /var/run/docker.sock}}]";

/// Builds the ops namespace and the logging namespace with a DaemonSet. The ops namespace
/// gets a Deployment with a ReplicaSet and pods, an old ReplicaSet at zero replicas, and a
/// CronJob with a Job and a pod. It also gets a pod owned by an unlisted kind, a bare dind pod,
/// a Deployment running a script from a ConfigMap, and a clean Deployment.
fn populate(server: &TestServer) {
    kubectl_ok(server, &["create", "namespace", "ops"]);
    kubectl_ok(server, &["create", "namespace", "logging"]);

    apply(
        server,
        &format!(
            "
apiVersion: apps/v1
kind: Deployment
metadata: {{name: agent, namespace: ops}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:{SOCKET_POD_SPEC}
"
        ),
    );
    let deployment = uid(server, "deployment", "ops", "agent");
    apply(
        server,
        &format!(
            "
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: agent-7d9f
  namespace: ops
  {}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: agent, rev: '2'}}}}
  template:
    metadata: {{labels: {{app: agent, rev: '2'}}}}
    spec:{SOCKET_POD_SPEC}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: agent-5b6c
  namespace: ops
  {}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: agent, rev: '1'}}}}
  template:
    metadata: {{labels: {{app: agent, rev: '1'}}}}
    spec:
      containers:
      - name: agent
        image: registry.local/ops/agent:0
        env: [{{name: DOCKER_HOST, value: 'unix:///var/run/docker.sock'}}]
",
            owner("apps/v1", "Deployment", "agent", &deployment),
            owner("apps/v1", "Deployment", "agent", &deployment),
        ),
    );
    let replica_set = uid(server, "replicaset", "ops", "agent-7d9f");
    for pod in ["agent-7d9f-abcde", "agent-7d9f-fghij"] {
        apply(
            server,
            &format!(
                "
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: ops
  labels: {{app: agent, rev: '2'}}
  {}
spec:{}
",
                owner("apps/v1", "ReplicaSet", "agent-7d9f", &replica_set),
                SOCKET_POD_SPEC.replace("\n      ", "\n  ")
            ),
        );
    }

    apply(
        server,
        "
apiVersion: batch/v1
kind: CronJob
metadata: {name: cleanup, namespace: ops}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: prune, image: 'docker:24', command: [docker, system, prune, -af]}
",
    );
    let cron_job = uid(server, "cronjob", "ops", "cleanup");
    apply(
        server,
        &format!(
            "
apiVersion: batch/v1
kind: Job
metadata:
  name: cleanup-28934
  namespace: ops
  {}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {{name: prune, image: 'docker:24', command: [docker, system, prune, -af]}}
",
            owner("batch/v1", "CronJob", "cleanup", &cron_job)
        ),
    );
    let job = uid(server, "job", "ops", "cleanup-28934");
    apply(
        server,
        &format!(
            "
apiVersion: v1
kind: Pod
metadata:
  name: cleanup-28934-x7k2p
  namespace: ops
  {}
spec:
  restartPolicy: Never
  containers:
  - {{name: prune, image: 'docker:24', command: [docker, system, prune, -af]}}
",
            owner("batch/v1", "Job", "cleanup-28934", &job)
        ),
    );

    apply(server, &format!("
apiVersion: v1
kind: Pod
metadata:
  name: canary-6f8d-q1w2e
  namespace: ops
  {}
spec:
  containers:
  - {{name: app, image: registry.local/app:2, env: [{{name: DOCKER_HOST, value: 'tcp://dind:2375'}}]}}
", owner("argoproj.io/v1alpha1", "Rollout", "canary", "0b7c8a9e-0000-4000-8000-000000000001")));

    apply(
        server,
        "
apiVersion: v1
kind: Pod
metadata: {name: builder, namespace: ops}
spec:
  containers:
  - name: dind
    image: docker:24-dind
    securityContext: {privileged: true}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ops}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: 'nginx:1.25'}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: release-script, namespace: ops}
data:
  release.sh: |
    docker push registry.local/app:2
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: publisher, namespace: ops}
spec:
  selector: {matchLabels: {app: publisher}}
  template:
    metadata: {labels: {app: publisher}}
    spec:
      containers:
      - name: publish
        image: registry.local/ci/publisher:1
        command: [sh, /scripts/release.sh]
        volumeMounts: [{name: scripts, mountPath: /scripts}]
      volumes:
      - name: scripts
        projected: {sources: [{configMap: {name: release-script}}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: fluentd, namespace: logging, labels: {app: fluentd}}
spec:
  selector: {matchLabels: {app: fluentd}}
  template:
    metadata: {labels: {app: fluentd}}
    spec:
      containers:
      - name: fluentd
        image: fluent/fluentd:v1.16-1
        volumeMounts: [{name: logs, mountPath: /var/lib/docker/containers}]
      volumes: [{name: logs, hostPath: {path: /var/lib/docker/containers}}]
",
    );
}

fn start_server() -> TestServer {
    TestServer::start(ServerOptions {
        kubelet: Some(KubeletOptions::default()),
        ..Default::default()
    })
}

#[test]
fn cluster_scan_reports_owners() {
    let server = start_server();
    populate(&server);

    let output = run(crimap()
        .env("KUBECONFIG", server.kubeconfig())
        .args(["scan", "-n", "ops"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "\
NAMESPACE   WORKLOAD                    CONTAINER   FINDING           DETAIL
ops         cronjob.batch/cleanup       prune       docker-cli        docker system prune -af
ops         deployment.apps/agent       agent       docker-socket     hostPath /var/run/docker.sock mounted at /var/run/docker.sock
ops         deployment.apps/publisher   publish     docker-cli        docker push registry.local/app:2 (configmap release-script, key release.sh)
ops         pod/builder                 dind        dind-image        image docker:24-dind runs dockerd (docker-in-docker)
ops         rollout/canary              app         docker-host-env   DOCKER_HOST=tcp://dind:2375
"
    );
}

#[test]
fn cluster_scan_all_namespaces_as_json() {
    let server = start_server();
    populate(&server);

    let output = run(crimap().env("KUBECONFIG", server.kubeconfig()).args([
        "scan",
        "-A",
        "-o",
        "json",
        "--exit-code",
    ]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    // ops: agent, cleanup, canary, builder, publisher, web; logging: fluentd.
    assert_eq!(report["scanned"], 7);
    let names: Vec<String> = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}/{}/{}",
                w["namespace"].as_str().unwrap(),
                w["kind"].as_str().unwrap(),
                w["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "logging/DaemonSet/fluentd",
            "ops/CronJob/cleanup",
            "ops/Deployment/agent",
            "ops/Deployment/publisher",
            "ops/Pod/builder",
            "ops/Rollout/canary",
        ]
    );
    let agent = &report["workloads"][2];
    assert_eq!(
        agent["findings"].as_array().unwrap().len(),
        1,
        "pods and the old ReplicaSet fold into one finding: {agent}"
    );
    assert_eq!(agent["source"], "cluster");
}

#[test]
fn cluster_scan_empty_namespace() {
    let server = start_server();
    kubectl_ok(&server, &["create", "namespace", "empty"]);
    let output = run(crimap().env("KUBECONFIG", server.kubeconfig()).args([
        "scan",
        "-n",
        "empty",
        "--exit-code",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "No Docker dependencies found in 0 workloads.\n"
    );
}

#[test]
fn cluster_scan_selector_filters() {
    let server = start_server();
    populate(&server);
    let output = run(crimap().env("KUBECONFIG", server.kubeconfig()).args([
        "scan",
        "-A",
        "-l",
        "app=fluentd",
        "-o",
        "name",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "daemonset.apps/fluentd\n");
}

#[test]
fn cluster_unreachable_fails() {
    let folder = tempfile::tempdir().unwrap();
    let kubeconfig = folder.path().join("config");
    // Port 9 on loopback (discard) has no API server; the connection is refused at once.
    std::fs::write(
        &kubeconfig,
        "\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ops}}]
current-context: x
",
    )
    .unwrap();
    let output = run(crimap().env("KUBECONFIG", &kubeconfig).args(["scan"]));
    assert_eq!(output.status.code(), Some(1));
    // The workload kinds are listed concurrently, so any of them may fail first.
    let error = stderr(&output)
        .lines()
        .find(|line| line.starts_with("kubectl-crimap: error: "))
        .unwrap_or_default()
        .to_string();
    assert!(
        error.starts_with("kubectl-crimap: error: failed to list "),
        "{error}"
    );
    assert!(error.contains(" in namespace ops: "), "{error}");
    assert!(error.contains("Connection refused"), "{error}");
}
