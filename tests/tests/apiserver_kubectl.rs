//! The real kubectl against the local test API server: discovery, applying the shared
//! manifests, reading, labelling, patching, deleting, namespaces, CRDs and watches.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use testkit::apiserver::{ServerOptions, TestServer};
use testkit::plugins::{run, stderr, stdout, workspace_root};

fn manifests() -> PathBuf {
    workspace_root().join("../shared/fixtures/manifests")
}

fn kubectl(server: &TestServer, args: &[&str]) -> Output {
    run(server.kubectl().args(args))
}

/// Runs kubectl and fails the test with its stderr unless it exits 0.
fn kubectl_ok(server: &TestServer, args: &[&str]) -> String {
    let output = kubectl(server, args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

fn apply_stdin(server: &TestServer, args: &[&str], manifest: &str) -> Output {
    use std::io::Write;
    let mut child = server
        .kubectl()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(manifest.as_bytes())
        .expect("manifest is written");
    child.wait_with_output().expect("kubectl finishes")
}

#[test]
fn api_resources_lists_built_in_kinds() {
    let server = TestServer::start(ServerOptions::default());
    let output = kubectl_ok(&server, &["api-resources"]);
    for line in [
        "deployments                         deploy       apps/v1",
        "customresourcedefinitions           crd,crds     apiextensions.k8s.io/v1",
        "horizontalpodautoscalers            hpa          autoscaling/v2",
        "leases                                           coordination.k8s.io/v1",
    ] {
        let expected: Vec<&str> = line.split_whitespace().collect();
        assert!(
            output.lines().any(|l| l
                .split_whitespace()
                .collect::<Vec<_>>()
                .starts_with(&expected)),
            "missing {line:?} in:\n{output}"
        );
    }
    let ingress = output
        .lines()
        .find(|l| l.starts_with("ingresses "))
        .expect("ingresses listed");
    assert!(ingress.contains("networking.k8s.io/v1 "), "{ingress}");
    assert!(!output.contains("extensions/v1beta1"));
}

#[test]
fn apply_every_shared_manifest() {
    let server = TestServer::start(ServerOptions::default());
    let crds = manifests().join("gateway-api-crds.yaml");
    kubectl_ok(
        &server,
        &["apply", "-f", crds.to_str().expect("utf-8 path")],
    );
    kubectl_ok(
        &server,
        &[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=10s",
        ],
    );

    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests())
        .expect("fixtures are readable")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "fixture count changed: {files:?}");
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        let output = kubectl(
            &server,
            &["apply", "-f", file.to_str().expect("utf-8 path")],
        );
        if name.contains("legacy") {
            // A 1.22+ cluster no longer serves extensions/v1beta1.
            assert!(!output.status.success(), "{name} was accepted");
            assert!(
                stderr(&output)
                    .contains("no matches for kind \"Ingress\" in version \"extensions/v1beta1\""),
                "{name}: {}",
                stderr(&output)
            );
        } else {
            assert!(output.status.success(), "{name}: {}", stderr(&output));
        }
    }

    let deployments = kubectl_ok(&server, &["get", "deployments", "-A", "-o", "name"]);
    assert_eq!(deployments.lines().count(), 12 + 1 + 2, "{deployments}");
    let routes = kubectl_ok(&server, &["get", "httproutes", "-o", "name"]);
    assert_eq!(
        routes.trim(),
        "httproute.gateway.networking.k8s.io/hello-world"
    );

    // A second apply of the same files changes nothing.
    let again = kubectl_ok(
        &server,
        &[
            "apply",
            "-f",
            manifests()
                .join("online-boutique.yaml")
                .to_str()
                .expect("utf-8"),
        ],
    );
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
}

#[test]
fn get_yaml_shows_server_fields() {
    let server = TestServer::start(ServerOptions::default());
    let file = manifests().join("helloworld-v1.yaml");
    kubectl_ok(&server, &["apply", "-f", file.to_str().expect("utf-8")]);
    let yaml = kubectl_ok(&server, &["get", "deployment", "hello-world", "-o", "yaml"]);
    let object: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
    let metadata = &object["metadata"];
    assert!(metadata["uid"].as_str().is_some_and(|uid| uid.len() == 36));
    assert!(metadata["resourceVersion"].as_str().is_some());
    assert!(metadata["creationTimestamp"].as_str().is_some());
    assert_eq!(metadata["generation"].as_i64(), Some(1));
    assert!(
        metadata["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some()
    );
    let service = kubectl_ok(
        &server,
        &[
            "get",
            "service",
            "hello-world-svc",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert!(service.starts_with("10.96."), "{service}");
}

#[test]
fn label_annotate_and_selectors() {
    let server = TestServer::start(ServerOptions::default());
    kubectl_ok(&server, &["create", "namespace", "shop"]);
    for name in ["a", "b", "c"] {
        kubectl_ok(&server, &["-n", "shop", "create", "configmap", name]);
    }
    kubectl_ok(
        &server,
        &["-n", "shop", "label", "configmap", "a", "tier=front"],
    );
    kubectl_ok(
        &server,
        &["-n", "shop", "label", "configmap", "b", "tier=back"],
    );
    kubectl_ok(
        &server,
        &["-n", "shop", "annotate", "configmap", "a", "owner=team-x"],
    );

    let cases = [
        ("tier=front", "configmap/a"),
        ("tier==back", "configmap/b"),
        (
            "tier!=front",
            "configmap/b\nconfigmap/c\nconfigmap/kube-root-ca.crt",
        ),
        ("tier in (front,back)", "configmap/a\nconfigmap/b"),
        (
            "tier notin (front)",
            "configmap/b\nconfigmap/c\nconfigmap/kube-root-ca.crt",
        ),
        ("tier", "configmap/a\nconfigmap/b"),
        ("!tier", "configmap/c\nconfigmap/kube-root-ca.crt"),
    ];
    for (selector, expected) in cases {
        let output = kubectl_ok(
            &server,
            &[
                "-n",
                "shop",
                "get",
                "configmaps",
                "-l",
                selector,
                "-o",
                "name",
            ],
        );
        assert_eq!(output.trim(), expected, "selector {selector}");
    }
    let by_name = kubectl_ok(
        &server,
        &[
            "-n",
            "shop",
            "get",
            "configmaps",
            "--field-selector",
            "metadata.name=b",
            "-o",
            "name",
        ],
    );
    assert_eq!(by_name.trim(), "configmap/b");
    let annotation = kubectl_ok(
        &server,
        &[
            "-n",
            "shop",
            "get",
            "configmap",
            "a",
            "-o",
            "jsonpath={.metadata.annotations.owner}",
        ],
    );
    assert_eq!(annotation, "team-x");

    // kubectl label refuses to overwrite without --overwrite, as with a real server.
    let clash = kubectl(
        &server,
        &["-n", "shop", "label", "configmap", "a", "tier=back"],
    );
    assert!(!clash.status.success());
    kubectl_ok(&server, &["-n", "shop", "label", "configmap", "a", "tier-"]);
    let removed = kubectl_ok(
        &server,
        &[
            "-n",
            "shop",
            "get",
            "configmap",
            "a",
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    );
    assert_eq!(removed, "");
}

#[test]
fn patch_merge_json_and_strategic() {
    let server = TestServer::start(ServerOptions::default());
    let file = manifests().join("helloworld-v1.yaml");
    kubectl_ok(&server, &["apply", "-f", file.to_str().expect("utf-8")]);

    kubectl_ok(
        &server,
        &[
            "patch",
            "deployment",
            "hello-world",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
    );
    kubectl_ok(
        &server,
        &[
            "patch",
            "deployment",
            "hello-world",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/labels","value":{"patched":"json"}}]"#,
        ],
    );
    // Strategic merge adds a sidecar and changes the existing container by name.
    kubectl_ok(
        &server,
        &[
            "patch",
            "deployment",
            "hello-world",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"},{"name":"hello-world","image":"hello:v9"}]}}}}"#,
        ],
    );
    let output = kubectl_ok(
        &server,
        &[
            "get",
            "deployment",
            "hello-world",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.labels.patched} {.spec.template.spec.containers[*].name} {.spec.template.spec.containers[*].image} {.metadata.generation}",
        ],
    );
    assert_eq!(output, "3 json hello-world sidecar hello:v9 busybox:1.36 3");

    let bad = kubectl(
        &server,
        &[
            "patch",
            "deployment",
            "hello-world",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":1}]"#,
        ],
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("the server rejected our request due to an error in our request"),
        "{}",
        stderr(&bad)
    );

    // A client-side re-apply restores the applied image and keeps the sidecar, which the
    // last-applied configuration never contained.
    kubectl_ok(&server, &["apply", "-f", file.to_str().expect("utf-8")]);
    let containers = kubectl_ok(
        &server,
        &[
            "get",
            "deployment",
            "hello-world",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ],
    );
    assert_eq!(
        containers,
        "hub.kce.ksyun.com/kingsoft/hello-world:v1 busybox:1.36"
    );
}

const TWO_CONTAINERS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: pair}
spec:
  selector: {matchLabels: {app: pair}}
  template:
    metadata: {labels: {app: pair}}
    spec:
      containers:
      - {name: main, image: "main:1", env: [{name: A, value: "1"}, {name: B, value: "2"}]}
      - {name: helper, image: "helper:1"}
"#;

#[test]
fn apply_removes_item_dropped_from_manifest() {
    let server = TestServer::start(ServerOptions::default());
    let first = apply_stdin(&server, &["apply", "-f", "-"], TWO_CONTAINERS);
    assert!(first.status.success(), "{}", stderr(&first));
    let changed = TWO_CONTAINERS
        .replace(", {name: B, value: \"2\"}", "")
        .replace("main:1", "main:2")
        .replace("      - {name: helper, image: \"helper:1\"}\n", "");
    let second = apply_stdin(&server, &["apply", "-f", "-"], &changed);
    assert!(second.status.success(), "{}", stderr(&second));
    let env = kubectl_ok(
        &server,
        &[
            "get",
            "deployment",
            "pair",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].name} {.spec.template.spec.containers[*].image}",
        ],
    );
    assert_eq!(env, "A main:2");
}

#[test]
fn server_side_apply_records_manager() {
    let server = TestServer::start(ServerOptions::default());
    let file = manifests().join("helloworld-v2.yaml");
    let output = kubectl_ok(
        &server,
        &[
            "apply",
            "--server-side",
            "-f",
            file.to_str().expect("utf-8"),
        ],
    );
    assert!(
        output.contains("deployment.apps/hello-world-v2 serverside-applied"),
        "{output}"
    );
    let managers = kubectl_ok(
        &server,
        &[
            "get",
            "deployment",
            "hello-world-v2",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}/{.metadata.managedFields[*].operation}",
        ],
    );
    assert_eq!(managers, "kubectl/Apply");

    kubectl_ok(
        &server,
        &["scale", "deployment", "hello-world-v2", "--replicas=4"],
    );
    let conflict = kubectl(
        &server,
        &[
            "apply",
            "--server-side",
            "-f",
            file.to_str().expect("utf-8"),
        ],
    );
    assert!(!conflict.status.success());
    assert!(
        stderr(&conflict).contains("conflict with"),
        "{}",
        stderr(&conflict)
    );
    kubectl_ok(
        &server,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            file.to_str().expect("utf-8"),
        ],
    );
    let replicas = kubectl_ok(
        &server,
        &[
            "get",
            "deployment",
            "hello-world-v2",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(replicas, "1");
}

#[test]
fn delete_namespace_removes_contents() {
    let server = TestServer::start(ServerOptions::default());
    let created = kubectl_ok(&server, &["create", "namespace", "temp"]);
    assert_eq!(created.trim(), "namespace/temp created");
    let accounts = kubectl_ok(
        &server,
        &[
            "-n",
            "temp",
            "get",
            "serviceaccounts,configmaps",
            "-o",
            "name",
        ],
    );
    assert_eq!(
        accounts.trim(),
        "serviceaccount/default\nconfigmap/kube-root-ca.crt"
    );
    let file = manifests().join("helloworld-v1.yaml");
    kubectl_ok(
        &server,
        &["-n", "temp", "apply", "-f", file.to_str().expect("utf-8")],
    );
    kubectl_ok(
        &server,
        &["-n", "temp", "delete", "service", "hello-world-svc"],
    );

    let deleted = kubectl_ok(&server, &["delete", "namespace", "temp", "--timeout=10s"]);
    assert_eq!(deleted.trim(), "namespace \"temp\" deleted");
    let gone = kubectl(&server, &["get", "namespace", "temp"]);
    assert!(
        stderr(&gone).contains("namespaces \"temp\" not found"),
        "{}",
        stderr(&gone)
    );
    let left = kubectl_ok(&server, &["get", "deployments", "-A", "-o", "name"]);
    assert_eq!(left.trim(), "");

    let missing = kubectl(&server, &["-n", "nowhere", "create", "configmap", "x"]);
    assert!(stderr(&missing).contains("namespaces \"nowhere\" not found"));
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
"#;

#[test]
fn custom_resource_definition_and_object() {
    let server = TestServer::start(ServerOptions {
        crd_established_delay: Duration::from_millis(300),
        ..ServerOptions::default()
    });
    let created = apply_stdin(&server, &["apply", "-f", "-"], WIDGET_CRD);
    assert!(created.status.success(), "{}", stderr(&created));
    // Until Established the resource is not served.
    let early = kubectl(&server, &["get", "widgets"]);
    assert!(!early.status.success());

    kubectl_ok(
        &server,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ],
    );
    let widget =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: large}\n";
    let output = apply_stdin(&server, &["apply", "-f", "-"], widget);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = kubectl_ok(&server, &["get", "wd"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SIZE"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["w1", "large"]
    );

    kubectl_ok(
        &server,
        &[
            "patch",
            "widget",
            "w1",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":"small"}}"#,
        ],
    );
    let size = kubectl_ok(
        &server,
        &[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.spec.size} {.metadata.generation}",
        ],
    );
    assert_eq!(size, "small 2");
    let strategic = kubectl(
        &server,
        &["patch", "widget", "w1", "-p", r#"{"spec":{"size":"x"}}"#],
    );
    assert!(
        stderr(&strategic).contains("UnsupportedMediaType")
            || stderr(&strategic).contains("unknown format"),
        "{}",
        stderr(&strategic)
    );

    kubectl_ok(&server, &["delete", "crd", "widgets.example.com"]);
    let after = kubectl(&server, &["get", "widgets"]);
    assert!(!after.status.success());
}

/// Runs `kubectl get configmaps -w` with extra arguments while a configmap is created,
/// labelled and deleted, and returns what it printed.
fn watch_output(server: &TestServer, extra: &[&str]) -> String {
    let mut args = vec!["get", "configmaps", "-w", "--request-timeout=6s"];
    args.extend_from_slice(extra);
    let watcher = server
        .kubectl()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    // Let the watch start before changing anything.
    std::thread::sleep(Duration::from_millis(800));
    kubectl_ok(server, &["create", "configmap", "watched"]);
    kubectl_ok(server, &["label", "configmap", "watched", "x=y"]);
    kubectl_ok(server, &["delete", "configmap", "watched"]);
    // kubectl ends the watch itself at --request-timeout.
    let output = watcher.wait_with_output().expect("kubectl finishes");
    stdout(&output)
}

#[test]
fn get_watch_prints_table_rows() {
    let server = TestServer::start(ServerOptions::default());
    let text = watch_output(&server, &[]);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "DATA", "AGE"], "{text}");
    let watched: Vec<&Vec<&str>> = lines.iter().filter(|l| l[0] == "watched").collect();
    assert_eq!(watched.len(), 3, "{text}");
}

#[test]
fn get_watch_reports_event_types() {
    let server = TestServer::start(ServerOptions::default());
    let text = watch_output(&server, &["--output-watch-events", "-o", "json"]);
    let stream = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let events: Vec<String> = stream
        .map(|event| event.expect("JSON event"))
        .filter(|event| event["object"]["metadata"]["name"] == "watched")
        .map(|event| event["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"], "{text}");
}

#[test]
fn create_with_protobuf_body() {
    let server = TestServer::start(ServerOptions::default());
    kubectl_ok(
        &server,
        &[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=password=hunter2",
        ],
    );
    let data = kubectl_ok(
        &server,
        &[
            "get",
            "secret",
            "s1",
            "-o",
            "jsonpath={.type} {.data.password}",
        ],
    );
    assert_eq!(data, "Opaque aHVudGVyMg==");
    kubectl_ok(
        &server,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ],
    );
    let spec = kubectl_ok(
        &server,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ],
    );
    assert_eq!(spec, "2 80");
    kubectl_ok(
        &server,
        &[
            "create",
            "service",
            "nodeport",
            "web",
            "--tcp=80:8080",
            "--node-port=30123",
        ],
    );
    let ports = kubectl_ok(
        &server,
        &[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.type} {.spec.ports[0].targetPort} {.spec.ports[0].nodePort}",
        ],
    );
    assert_eq!(ports, "NodePort 8080 30123");
    kubectl_ok(
        &server,
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
    );
    let command = kubectl_ok(
        &server,
        &[
            "get",
            "job",
            "once",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command}",
        ],
    );
    assert_eq!(command, r#"["echo","hi"]"#);
    kubectl_ok(
        &server,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
        ],
    );
    let rules = kubectl_ok(
        &server,
        &[
            "get",
            "role",
            "reader",
            "-o",
            "jsonpath={.rules[*].apiGroups} {.rules[*].resources}",
        ],
    );
    assert_eq!(rules, r#"[""] ["apps"] ["pods"] ["deployments"]"#);
    kubectl_ok(
        &server,
        &[
            "create",
            "rolebinding",
            "read",
            "--role=reader",
            "--serviceaccount=default:default",
        ],
    );

    // Kinds whose protobuf form is not decoded are rejected, not half-read.
    let cronjob = kubectl(
        &server,
        &[
            "create",
            "cronjob",
            "c",
            "--image=busybox",
            "--schedule=* * * * *",
        ],
    );
    assert!(!cronjob.status.success());
    assert!(
        stderr(&cronjob).contains("decodes protobuf only for"),
        "{}",
        stderr(&cronjob)
    );
}

#[test]
fn binary_prints_address_and_serves() {
    use std::io::BufRead;

    // Cargo builds the package's binaries for its integration tests.
    let binary = env!("CARGO_BIN_EXE_test-apiserver");
    let folder = tempfile::tempdir().expect("temp dir");
    let kubeconfig = folder.path().join("kubeconfig");
    let mut child = std::process::Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .args(["--node", "node-a=docker://24.0.7"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("test-apiserver starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let output = run(testkit::plugins::kubectl()
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}",
        ]));
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("https://127.0.0.1:"), "{line}");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "docker://24.0.7");

    let bad = run(std::process::Command::new(binary)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .args(["--serve-group-version", "apps/v1beta1"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("unsupported extra group-version \"apps/v1beta1\""),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn server_dry_run_delete_keeps_object() {
    let server = TestServer::start(ServerOptions::default());
    kubectl_ok(&server, &["create", "configmap", "kept"]);
    let output = kubectl_ok(
        &server,
        &["delete", "configmap", "kept", "--dry-run=server"],
    );
    assert_eq!(output.trim(), "configmap \"kept\" deleted (server dry run)");
    kubectl_ok(&server, &["get", "configmap", "kept"]);
}

#[test]
fn auth_reviews_allow_the_token() {
    let server = TestServer::start(ServerOptions::default());
    assert_eq!(
        kubectl_ok(&server, &["auth", "can-i", "create", "pods"]).trim(),
        "yes"
    );
    assert_eq!(
        kubectl_ok(&server, &["auth", "can-i", "get", "/healthz"]).trim(),
        "yes"
    );
    let whoami = kubectl_ok(
        &server,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(whoami, "test-user");
}
