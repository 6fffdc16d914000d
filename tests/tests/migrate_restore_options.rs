//! kubectl migrate restore options end to end, through the binary against test API servers:
//! image mappings, legacy Ingress conversion, the pre-flight checks, the existing-resource
//! policy and the wait for CRDs to become Established.

mod migrate_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::apiserver::ServerOptions;
use testkit::plugins::{stderr, stdout};

use migrate_support::{
    Cluster, assert_success, comparable, manifests_dir, migrate, restore_result, result_item, run,
    write_backup,
};

/// Returns a folder location under `home`: its root folder and the `--location` arguments.
fn folder_location(home: &Path) -> (PathBuf, Vec<String>) {
    let root = home.join("store");
    let args = vec![
        "--location".to_string(),
        format!("file://{}", root.display()),
    ];
    (root, args)
}

/// Runs `backup create NAME` of `source` into `location` and panics when it fails.
fn back_up(source: &Cluster, home: &Path, location: &[String], name: &str) {
    let output = run(migrate(Some(source), home)
        .args(["backup", "create", name])
        .args(location));
    assert_success(&output, "backup create");
}

/// Returns `kind namespace/name` of every item whose outcome is not `expected`.
fn items_not(result: &Value, expected: &str) -> Vec<String> {
    result["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["outcome"] != expected)
        .map(|item| {
            format!(
                "{} {}/{}: {} ({})",
                item["kind"].as_str().unwrap_or(""),
                item["namespace"].as_str().unwrap_or(""),
                item["name"].as_str().unwrap_or(""),
                item["outcome"].as_str().unwrap_or(""),
                item["reason"].as_str().unwrap_or("")
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// --image-mappings

/// Workloads of every kind with a pod spec, each using mapped and unmapped images in
/// containers and init containers.
const IMAGE_WORKLOADS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Pod
metadata:
  name: toolbox
  namespace: shop
spec:
  initContainers:
  - name: fetch
    image: registry.old.example/team/fetch:1.0
  containers:
  - name: main
    image: registry.old.example/team/app:2.1
  - name: proxy
    image: quay.io/other/proxy:1.0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      initContainers:
      - name: wait
        image: docker.io/library/busybox:1.36
      containers:
      - name: web
        image: registry.old.example/team/app:2.1
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: registry.old.example/team/db@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: shop
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: registry.old.example/team-b/agent:3
      - name: node
        image: registry.old.example/team:latest
---
apiVersion: batch/v1
kind: Job
metadata:
  name: schema
  namespace: shop
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
      - name: wait
        image: docker.io/library/busybox:1.36
      containers:
      - name: migrate
        image: registry.old.example/team/migrate:5
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
  namespace: shop
spec:
  schedule: \"0 3 * * *\"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          initContainers:
          - name: fetch
            image: quay.io/other/fetch:2
          containers:
          - name: report
            image: registry.old.example/team/report:1
";

const IMAGE_MAPPINGS: &str = "registry.old.example/team=registry.new.example/mirror,docker.io/library=mirror.new.example/dockerhub";

/// Each image of `IMAGE_WORKLOADS` that a mapping matches, and what it becomes.
const IMAGE_REWRITES: [(&str, &str); 7] = [
    (
        "registry.old.example/team/fetch:1.0",
        "registry.new.example/mirror/fetch:1.0",
    ),
    (
        "registry.old.example/team/app:2.1",
        "registry.new.example/mirror/app:2.1",
    ),
    (
        "docker.io/library/busybox:1.36",
        "mirror.new.example/dockerhub/busybox:1.36",
    ),
    (
        "registry.old.example/team/db@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "registry.new.example/mirror/db@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    (
        "registry.old.example/team:latest",
        "registry.new.example/mirror:latest",
    ),
    (
        "registry.old.example/team/migrate:5",
        "registry.new.example/mirror/migrate:5",
    ),
    (
        "registry.old.example/team/report:1",
        "registry.new.example/mirror/report:1",
    ),
];

/// Images that no mapping matches: another registry, and a repository that only shares the
/// text of a mapped prefix (`team-b` is not under `team/`).
const IMAGES_LEFT_ALONE: [&str; 3] = [
    "quay.io/other/proxy:1.0",
    "registry.old.example/team-b/agent:3",
    "quay.io/other/fetch:2",
];

/// The workloads of `IMAGE_WORKLOADS`: resource, name and JSON pointer of the pod spec.
const WORKLOADS: [(&str, &str, &str); 6] = [
    ("pods", "toolbox", "/spec"),
    ("deployments.apps", "web", "/spec/template/spec"),
    ("statefulsets.apps", "db", "/spec/template/spec"),
    ("daemonsets.apps", "agent", "/spec/template/spec"),
    ("jobs.batch", "schema", "/spec/template/spec"),
    (
        "cronjobs.batch",
        "report",
        "/spec/jobTemplate/spec/template/spec",
    ),
];

/// Returns `list/container=image` for every container of a pod spec, in order.
fn images_of(spec: &Value) -> Vec<String> {
    let mut images = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec[list].as_array().into_iter().flatten() {
            images.push(format!(
                "{list}/{}={}",
                container["name"].as_str().unwrap_or(""),
                container["image"].as_str().unwrap_or("")
            ));
        }
    }
    images
}

/// Replaces every `image` field of `value` that `IMAGE_REWRITES` lists, at any depth.
fn rewrite_images(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if key == "image"
                    && let Some((_, new)) = IMAGE_REWRITES
                        .iter()
                        .find(|(old, _)| field.as_str() == Some(*old))
                {
                    *field = Value::from(*new);
                } else {
                    rewrite_images(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_images),
        _ => {}
    }
}

#[test]
fn image_mappings_rewrite_pods_and_templates() {
    let home = tempfile::tempdir().unwrap();
    let (_, location) = folder_location(home.path());
    let source = Cluster::start();
    source.apply_text(home.path(), "workloads.yaml", IMAGE_WORKLOADS);
    back_up(&source, home.path(), &location, "images");

    let target = Cluster::start();
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "mapped", "--from-backup", "images"])
        .args(["--image-mappings", IMAGE_MAPPINGS])
        .args(&location));
    assert_success(&output, "restore create --image-mappings");
    let result = restore_result(home.path(), &location, "mapped");
    for (resource, name, _) in WORKLOADS {
        let kind = source.get(resource, "shop", name)["kind"].clone();
        let item = result_item(&result, kind.as_str().unwrap(), "shop", name);
        assert_eq!(item["outcome"], "created", "{resource} {name}: {item}");
    }

    for (resource, name, pointer) in WORKLOADS {
        let original = source.get(resource, "shop", name);
        let restored = target.get(resource, "shop", name);
        let restored_images = images_of(restored.pointer(pointer).unwrap());

        // The images, one by one: mapped ones rewritten, the rest as they were.
        let mut expected_spec = original.pointer(pointer).unwrap().clone();
        rewrite_images(&mut expected_spec);
        assert_eq!(
            restored_images,
            images_of(&expected_spec),
            "images of {resource} {name}"
        );
        for image in &restored_images {
            let image = image.split_once('=').unwrap().1;
            assert!(
                !image.starts_with("registry.old.example/team/")
                    && image != "registry.old.example/team:latest"
                    && !image.starts_with("docker.io/library/"),
                "{resource} {name} still uses {image}"
            );
        }

        // Everything else equals the source.
        let mut expected = comparable(&original);
        rewrite_images(&mut expected);
        assert_eq!(
            comparable(&restored),
            expected,
            "{resource} {name} differs from its source beyond the images"
        );
    }

    // Images that match no mapping are left alone.
    let mut restored_images = Vec::new();
    for (resource, name, pointer) in WORKLOADS {
        restored_images.extend(images_of(
            target.get(resource, "shop", name).pointer(pointer).unwrap(),
        ));
    }
    for image in IMAGES_LEFT_ALONE {
        assert!(
            restored_images
                .iter()
                .any(|i| i.ends_with(&format!("={image}"))),
            "{image} missing from {restored_images:?}"
        );
    }
}

#[test]
fn debugged_pod_restores_without_ephemeral_containers() {
    let home = tempfile::tempdir().unwrap();
    let (root, location) = folder_location(home.path());

    // A pod as backed up after `kubectl debug` added an ephemeral container through the
    // pods/ephemeralcontainers subresource. API servers reject that field on create.
    let source = Cluster::start();
    source.apply_text(home.path(), "workloads.yaml", IMAGE_WORKLOADS);
    let mut pod = source.get("pods", "shop", "toolbox");
    pod["spec"]["ephemeralContainers"] = json!([{
        "name": "debugger-7xk2p",
        "image": "registry.old.example/team/debug:1",
        "targetContainerName": "main",
        "stdin": true,
        "tty": true,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    }]);
    let namespace = source.get("namespaces", "", "shop");
    write_backup(
        &root,
        "debugged",
        &[("namespaces", namespace), ("pods", pod.clone())],
    );

    let target = Cluster::start();
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "debugged", "--from-backup", "debugged"])
        .args(["--image-mappings", IMAGE_MAPPINGS])
        .args(&location));
    assert_success(&output, "restore create of a debugged pod");
    let result = restore_result(home.path(), &location, "debugged");
    let item = result_item(&result, "Pod", "shop", "toolbox");
    assert_eq!(item["outcome"], "created", "{item}");

    let restored = target.get("pods", "shop", "toolbox");
    assert_eq!(restored["spec"].get("ephemeralContainers"), None);
    assert_eq!(
        images_of(&restored["spec"]),
        [
            "initContainers/fetch=registry.new.example/mirror/fetch:1.0",
            "containers/main=registry.new.example/mirror/app:2.1",
            "containers/proxy=quay.io/other/proxy:1.0",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Legacy Ingress conversion

/// A `networking.k8s.io/v1beta1` Ingress with a default backend, named and numbered service
/// ports, an ingressClassName and one path with a pathType and one without.
const BETA_INGRESS: &str = "\
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata:
  name: api
  namespace: default
spec:
  ingressClassName: nginx
  backend:
    serviceName: fallback
    servicePort: http
  rules:
  - host: api.example.test
    http:
      paths:
      - path: /v1
        pathType: Prefix
        backend:
          serviceName: api
          servicePort: 8080
      - path: /
        backend:
          serviceName: web
          servicePort: web-http
";

/// Reads a legacy Ingress fixture as a pre-1.18 cluster returned it: the manifest plus the
/// server-set metadata, with no pathType.
fn fixture_as_stored(file: &str, uid: &str) -> Value {
    let text = std::fs::read_to_string(manifests_dir().join(file)).unwrap();
    let mut object: Value = serde_yaml::from_str(&text).unwrap();
    let metadata = object["metadata"].as_object_mut().unwrap();
    metadata.insert("namespace".into(), json!("default"));
    metadata.insert("uid".into(), json!(uid));
    metadata.insert("resourceVersion".into(), json!("4711"));
    metadata.insert("generation".into(), json!(1));
    metadata.insert("creationTimestamp".into(), json!("2021-03-01T10:00:00Z"));
    object["status"] = json!({"loadBalancer": {}});
    object
}

#[test]
fn legacy_ingress_restores_as_networking_v1() {
    let home = tempfile::tempdir().unwrap();
    let (root, location) = folder_location(home.path());
    let source = Cluster::start_with(ServerOptions {
        extra_group_versions: vec![
            "extensions/v1beta1".into(),
            "networking.k8s.io/v1beta1".into(),
        ],
        ..ServerOptions::default()
    });
    for file in [
        "helloworld-ingress-legacy.yaml",
        "weight-ingress-legacy.yaml",
    ] {
        source.apply(&manifests_dir().join(file));
    }
    source.apply_text(home.path(), "api-ingress.yaml", BETA_INGRESS);

    // A backup of a cluster that still serves the old versions stores each Ingress once, in
    // networking.k8s.io/v1, so the old form has to come from a hand-written backup.
    back_up(&source, home.path(), &location, "from-legacy-cluster");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(root.join("backups/from-legacy-cluster/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["counts"]["byResource"]["ingresses.networking.k8s.io"], 3,
        "{manifest:#}"
    );
    assert_eq!(
        manifest["counts"]["byResource"].get("ingresses.extensions"),
        None
    );
    let ingress_keys: Vec<&str> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["resource"] == "ingresses")
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert!(
        ingress_keys
            .iter()
            .all(|k| k.contains("/resources/networking.k8s.io/v1/ingresses/")),
        "{ingress_keys:?}"
    );

    // The backup of an older cluster: two fixtures in extensions/v1beta1 without pathType, and
    // one networking.k8s.io/v1beta1 Ingress as the legacy source serves it.
    let api = source.get("ingresses.v1beta1.networking.k8s.io", "default", "api");
    assert_eq!(api["apiVersion"], "networking.k8s.io/v1beta1");
    write_backup(
        &root,
        "legacy",
        &[
            (
                "ingresses",
                fixture_as_stored("helloworld-ingress-legacy.yaml", "uid-hello"),
            ),
            (
                "ingresses",
                fixture_as_stored("weight-ingress-legacy.yaml", "uid-weight"),
            ),
            ("ingresses", api),
        ],
    );

    let target = Cluster::start();
    let versions = stdout(&target.kubectl(&["api-versions"]));
    assert!(
        !versions.contains("extensions/v1beta1") && !versions.contains("networking.k8s.io/v1beta1"),
        "{versions}"
    );
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "converted", "--from-backup", "legacy"])
        .args(&location));
    assert_success(&output, "restore create of legacy Ingresses");

    // The result notes each conversion.
    let result = restore_result(home.path(), &location, "converted");
    for (name, from) in [
        ("hello-world", "extensions/v1beta1"),
        ("helloworld-weight", "extensions/v1beta1"),
        ("api", "networking.k8s.io/v1beta1"),
    ] {
        let item = result_item(&result, "Ingress", "default", name);
        assert_eq!(item["outcome"], "created", "{item}");
        assert_eq!(item["apiVersion"], "networking.k8s.io/v1", "{item}");
        assert_eq!(item["reason"], format!("converted from {from}"), "{item}");
    }
    // The converted Ingress names its class in spec.ingressClassName, which the pre-flight
    // checks like any other.
    assert_eq!(
        result["preflight"],
        json!(["Ingress default/api: IngressClass nginx does not exist in the target"])
    );

    // Each spec is converted field by field.
    let hello = target.get("ingresses.v1.networking.k8s.io", "default", "hello-world");
    assert_eq!(hello["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        hello["spec"],
        json!({"rules": [{"host": "hello.world.test", "http": {"paths": [{
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": "hello-world-svc", "port": {"number": 80}}}
        }]}}]})
    );
    // The class stays in the annotation, which ingress controllers still read: the conversion
    // does not move it into spec.ingressClassName.
    assert_eq!(
        hello["metadata"]["annotations"]["kubernetes.io/ingress.class"],
        "nginx"
    );

    let weight = target.get(
        "ingresses.v1.networking.k8s.io",
        "default",
        "helloworld-weight",
    );
    assert_eq!(
        weight["spec"],
        json!({"rules": [{"host": "hello.world.test", "http": {"paths": [{
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": "hello-world-svc-v2", "port": {"number": 80}}}
        }]}}]})
    );
    let weight_annotations = &weight["metadata"]["annotations"];
    assert_eq!(weight_annotations["kubernetes.io/ingress.class"], "nginx");
    assert_eq!(
        weight_annotations["nginx.ingress.kubernetes.io/canary"],
        "true"
    );
    assert_eq!(
        weight_annotations["nginx.ingress.kubernetes.io/canary-weight"],
        "50"
    );

    let api = target.get("ingresses.v1.networking.k8s.io", "default", "api");
    assert_eq!(
        api["spec"],
        json!({
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
            "rules": [{"host": "api.example.test", "http": {"paths": [
                {"path": "/v1", "pathType": "Prefix",
                 "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                {"path": "/", "pathType": "ImplementationSpecific",
                 "backend": {"service": {"name": "web", "port": {"name": "web-http"}}}}
            ]}}]
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Pre-flight

/// A target that already uses nodePort 30080, and has StorageClass `standard`.
const PREFLIGHT_TARGET: &str = "\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
provisioner: example.com/none
---
apiVersion: v1
kind: Namespace
metadata:
  name: edge
---
apiVersion: v1
kind: Service
metadata:
  name: holder
  namespace: edge
spec:
  type: NodePort
  selector:
    app: holder
  ports:
  - port: 80
    nodePort: 30080
";

/// A source whose objects need nodePort 30080 and classes the target lacks (`gold`,
/// `internal`, `high`), plus a claim of class `standard`, which the target has.
const PREFLIGHT_SOURCE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - port: 80
    nodePort: 30080
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  storageClassName: gold
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: cache
  namespace: shop
spec:
  storageClassName: standard
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  ingressClassName: internal
  defaultBackend:
    service:
      name: web
      port:
        number: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      priorityClassName: high
      containers:
      - name: web
        image: registry.example/web:1
";

const PREFLIGHT_PROBLEMS: [&str; 4] = [
    "Deployment shop/web: PriorityClass high does not exist in the target",
    "Ingress shop/web: IngressClass internal does not exist in the target",
    "PersistentVolumeClaim shop/data: StorageClass gold does not exist in the target: create it or pass --storage-class-mappings gold:NEW",
    "Service shop/web: nodePort 30080 is already used by Service edge/holder in the target",
];

/// Returns the index of the first stderr line that logs a request with a writing HTTP method.
fn first_write_line(lines: &[&str]) -> Option<usize> {
    lines.iter().position(|line| {
        ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|method| line.contains(&format!("http.method={method} ")))
    })
}

#[test]
fn preflight_lists_problems_before_first_write() {
    let home = tempfile::tempdir().unwrap();
    let (_, location) = folder_location(home.path());
    let source = Cluster::start();
    source.apply_text(home.path(), "source.yaml", PREFLIGHT_SOURCE);
    back_up(&source, home.path(), &location, "shop");
    let target = Cluster::start();
    target.apply_text(home.path(), "target.yaml", PREFLIGHT_TARGET);

    // kube-client logs each request at debug level, in the same stderr stream as the
    // pre-flight warnings, so their order is the order of events.
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "kept-ports", "--from-backup", "shop"])
        .arg("--preserve-nodeports")
        .args(&location)
        .env("RUST_LOG", "kubectl_migrate=warn,kube_client=debug"));
    let log = stderr(&output);
    let lines: Vec<&str> = log.lines().collect();
    let first_write = first_write_line(&lines).unwrap_or_else(|| panic!("no write logged:\n{log}"));
    for problem in PREFLIGHT_PROBLEMS {
        let position = lines
            .iter()
            .position(|line| line.contains(&format!("pre-flight: {problem}")))
            .unwrap_or_else(|| panic!("pre-flight line {problem:?} missing:\n{log}"));
        assert!(
            position < first_write,
            "pre-flight line {problem:?} (line {position}) comes after the first write (line {first_write}):\n{log}"
        );
    }
    assert!(
        !log.contains("StorageClass standard"),
        "a class that exists was listed:\n{log}"
    );

    // The restore carries on after the warnings: only the clashing Service fails, as the
    // target rejects its nodePort, and the command exits 1.
    assert_eq!(output.status.code(), Some(1), "{log}");
    let text = stdout(&output);
    let expected_listing: String = PREFLIGHT_PROBLEMS
        .iter()
        .map(|problem| format!("  {problem}\n"))
        .collect();
    assert!(
        text.starts_with(&format!("Pre-flight problems:\n{expected_listing}\n")),
        "{text}"
    );
    let result = restore_result(home.path(), &location, "kept-ports");
    assert_eq!(result["preflight"], json!(PREFLIGHT_PROBLEMS));
    let service = result_item(&result, "Service", "shop", "web");
    assert_eq!(service["outcome"], "failed");
    assert!(
        service["reason"]
            .as_str()
            .unwrap()
            .contains("provided port is already allocated"),
        "{service}"
    );
    assert_eq!(
        result["counts"]["failed"],
        1,
        "{:?}",
        items_not(&result, "created")
    );
    for (kind, name) in [
        ("PersistentVolumeClaim", "data"),
        ("PersistentVolumeClaim", "cache"),
        ("Ingress", "web"),
        ("Deployment", "web"),
    ] {
        let item = result_item(&result, kind, "shop", name);
        assert_eq!(item["outcome"], "created", "{item}");
    }
    let holder = target.get("services", "edge", "holder");
    assert_eq!(holder["spec"]["ports"][0]["nodePort"], 30080);

    // Without --preserve-nodeports the Service takes a new nodePort and nothing clashes.
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "new-ports", "--from-backup", "shop"])
        .args(&location));
    assert_success(&output, "restore create without --preserve-nodeports");
    let result = restore_result(home.path(), &location, "new-ports");
    let problems: Vec<&str> = result["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems, PREFLIGHT_PROBLEMS[..3]);
    assert_eq!(
        result_item(&result, "Service", "shop", "web")["outcome"],
        "created"
    );
    let web = target.get("services", "shop", "web");
    let node_port = web["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert_ne!(node_port, 30080);
    assert!((30000..=32767).contains(&node_port), "{node_port}");
}

// ---------------------------------------------------------------------------------------------
// --existing-resource-policy

/// The source: one ConfigMap that the target has unchanged, and a ConfigMap, Deployment and
/// Service that the target has with other content.
const POLICY_SOURCE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: same
  namespace: shop
data:
  mode: blue
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: changed
  namespace: shop
  labels:
    tier: web
data:
  mode: green
  extra: 'true'
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example/web:2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

const POLICY_TARGET: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: same
  namespace: shop
data:
  mode: blue
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: changed
  namespace: shop
data:
  mode: red
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example/web:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 80
";

/// The objects of the policy test that differ in the target: resource, kind and name.
const DIFFERING: [(&str, &str, &str); 3] = [
    ("configmaps", "ConfigMap", "changed"),
    ("deployments.apps", "Deployment", "web"),
    ("services", "Service", "web"),
];

#[test]
fn existing_resource_policy_none_and_update() {
    let home = tempfile::tempdir().unwrap();
    let (_, location) = folder_location(home.path());
    let source = Cluster::start();
    source.apply_text(home.path(), "source.yaml", POLICY_SOURCE);
    back_up(&source, home.path(), &location, "shop");
    let target = Cluster::start();
    target.apply_text(home.path(), "target.yaml", POLICY_TARGET);
    let cluster_ip = target.get("services", "shop", "web")["spec"]["clusterIP"].clone();
    let before: Vec<Value> = DIFFERING
        .iter()
        .map(|(resource, _, name)| target.get(resource, "shop", name))
        .collect();

    // Policy none (the default): differing objects are skipped with the reason and kept.
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "keep", "--from-backup", "shop"])
        .args(&location));
    assert_success(&output, "restore create with policy none");
    let result = restore_result(home.path(), &location, "keep");
    assert_eq!(result["existingResourcePolicy"], "none");
    assert_eq!(
        result_item(&result, "ConfigMap", "shop", "same")["outcome"],
        "unchanged"
    );
    for ((resource, kind, name), old) in DIFFERING.iter().zip(&before) {
        let item = result_item(&result, kind, "shop", name);
        assert_eq!(item["outcome"], "skipped", "{item}");
        assert_eq!(
            item["reason"],
            "already exists with different content: pass --existing-resource-policy update to replace it"
        );
        assert_eq!(
            comparable(&target.get(resource, "shop", name)),
            comparable(old),
            "{kind} {name} changed under policy none"
        );
    }

    // Policy update: differing objects are replaced and then equal the backup.
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "replace", "--from-backup", "shop"])
        .args(["--existing-resource-policy", "update"])
        .args(&location));
    assert_success(&output, "restore create with policy update");
    assert!(
        stdout(&output).contains(", 3 updated, "),
        "{}",
        stdout(&output)
    );
    let result = restore_result(home.path(), &location, "replace");
    assert_eq!(result["existingResourcePolicy"], "update");
    assert_eq!(result["counts"]["updated"], 3);
    assert_eq!(
        result_item(&result, "ConfigMap", "shop", "same")["outcome"],
        "unchanged"
    );
    for (resource, kind, name) in DIFFERING {
        let item = result_item(&result, kind, "shop", name);
        assert_eq!(item["outcome"], "updated", "{item}");
        assert_eq!(
            comparable(&target.get(resource, "shop", name)),
            comparable(&source.get(resource, "shop", name)),
            "{kind} {name} does not equal the backup after the update"
        );
    }
    // A replaced Service keeps the address the target gave it.
    assert_eq!(
        target.get("services", "shop", "web")["spec"]["clusterIP"],
        cluster_ip
    );

    // Once replaced, the objects are unchanged on the next restore.
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "again", "--from-backup", "shop"])
        .args(["--existing-resource-policy", "update"])
        .args(&location));
    assert_success(&output, "second restore with policy update");
    let result = restore_result(home.path(), &location, "again");
    assert_eq!(
        result["counts"]["updated"],
        0,
        "{:?}",
        items_not(&result, "unchanged")
    );
    for (_, kind, name) in DIFFERING {
        assert_eq!(
            result_item(&result, kind, "shop", name)["outcome"],
            "unchanged"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CRDs

const WIDGET_CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

const WIDGETS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: factory
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gear
  namespace: factory
spec:
  teeth: 12
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: spring
  namespace: factory
spec:
  coils: 8
";

/// Starts a source with the Widget CRD and two widgets, and backs it up as `widgets`.
fn widgets_backed_up(home: &Path, location: &[String]) -> Cluster {
    let source = Cluster::start();
    source.apply_text(home, "crd.yaml", WIDGET_CRD);
    wait_established(&source);
    source.apply_text(home, "widgets.yaml", WIDGETS);
    back_up(&source, home, location, "widgets");
    source
}

/// Waits (at most 20 seconds) until the Widget CRD is Established in `cluster`.
fn wait_established(cluster: &Cluster) {
    let output = cluster.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
}

fn slow_crd_cluster(delay: Duration) -> Cluster {
    Cluster::start_with(ServerOptions {
        crd_established_delay: delay,
        ..ServerOptions::default()
    })
}

#[test]
fn restore_waits_for_crd_established() {
    let home = tempfile::tempdir().unwrap();
    let (_, location) = folder_location(home.path());
    let source = widgets_backed_up(home.path(), &location);
    let delay = Duration::from_secs(2);
    let target = slow_crd_cluster(delay);

    let started = Instant::now();
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "widgets", "--from-backup", "widgets"])
        .args(&location));
    let elapsed = started.elapsed();
    assert_success(&output, "restore create into a target with slow CRDs");
    // The widgets can only be created once the CRD is Established, `delay` after its create.
    assert!(elapsed >= delay, "the restore took only {elapsed:?}");
    eprintln!("restore into a target with a {delay:?} CRD delay took {elapsed:?}");

    let result = restore_result(home.path(), &location, "widgets");
    assert_eq!(
        result["counts"]["failed"],
        0,
        "{:?}",
        items_not(&result, "created")
    );
    assert_eq!(
        result_item(
            &result,
            "CustomResourceDefinition",
            "",
            "widgets.example.com"
        )["outcome"],
        "created"
    );
    for name in ["gear", "spring"] {
        assert_eq!(
            result_item(&result, "Widget", "factory", name)["outcome"],
            "created"
        );
        assert_eq!(
            comparable(&target.get("widgets.example.com", "factory", name)),
            comparable(&source.get("widgets.example.com", "factory", name))
        );
    }
}

#[test]
fn crd_timeout_fails_before_custom_objects() {
    let home = tempfile::tempdir().unwrap();
    let (_, location) = folder_location(home.path());
    let _source = widgets_backed_up(home.path(), &location);
    let target = slow_crd_cluster(Duration::from_secs(4));
    let before = target.snapshot();

    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "impatient", "--from-backup", "widgets"])
        .args(["--crd-timeout", "1"])
        .args(&location));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "kubectl-migrate: error: CustomResourceDefinition widgets.example.com was not Established within 1s: check the target's API server, or raise --crd-timeout\n"
    );

    // The CRD was created, but nothing after it: once it is Established, it has no objects.
    wait_established(&target);
    let widgets = target.kubectl(&["get", "widgets.example.com", "-A", "-o", "json"]);
    assert!(widgets.status.success(), "{}", stderr(&widgets));
    let widgets: Value = serde_json::from_slice(&widgets.stdout).unwrap();
    assert_eq!(widgets["items"], json!([]));
    assert_eq!(target.snapshot(), before);
}
