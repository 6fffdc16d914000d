//! kubectl migrate end to end: fixtures applied with real kubectl to one test API server,
//! backed up to S3 (s3s-fs on loopback) and to a folder, restored into other servers.

mod migrate_support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use testkit::plugins::{stderr, stdout};
use testkit::s3::S3Server;

use migrate_support::{Cluster, assert_success, comparable, manifests_dir, migrate, run, s3_args};

/// Objects that show the storage-class mapping, the namespace mapping and fresh clusterIPs.
const STORAGE_MANIFEST: &str = "\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
provisioner: example.com/none
---
apiVersion: v1
kind: Namespace
metadata:
  name: data
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: db
  namespace: data
spec:
  storageClassName: standard
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Service
metadata:
  name: pinned
  namespace: data
spec:
  clusterIP: 10.96.200.200
  selector:
    app: pinned
  ports:
  - port: 80
";

const FAST_CLASS: &str = "\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: example.com/none
";

/// Applies every fixture except the legacy Ingresses, CRDs first.
fn apply_fixtures(source: &Cluster, folder: &Path) {
    let dir = manifests_dir();
    source.apply(&dir.join("gateway-api-crds.yaml"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".yaml") && !name.contains("legacy") && name != "gateway-api-crds.yaml"
        })
        .collect();
    files.sort();
    for file in files {
        source.apply(&file);
    }
    let extra = folder.join("storage.yaml");
    std::fs::write(&extra, STORAGE_MANIFEST).unwrap();
    source.apply(&extra);
}

fn manifest_of(home: &Path, location: &[String], backup: &str) -> Value {
    let output = run(migrate(None, home)
        .args(["backup", "describe", backup, "--details", "-o", "json"])
        .args(location));
    assert_success(&output, "backup describe");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn restore_json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "restore -o json printed no JSON ({e}): {}\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

/// Returns the objects of `cluster` by `resource.group`, `namespace` and name.
fn index(cluster: &Cluster, resources: &[String]) -> BTreeMap<(String, String, String), Value> {
    let mut objects = BTreeMap::new();
    for resource in resources {
        for object in cluster.list(resource) {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            objects.insert((resource.clone(), namespace, name), object);
        }
    }
    objects
}

#[test]
fn backup_to_s3_and_folder_and_restore() {
    let home = tempfile::tempdir().unwrap();
    let source = Cluster::start();
    let target = Cluster::start();
    apply_fixtures(&source, home.path());

    let s3 = S3Server::start();
    s3.create_bucket("migrate");
    let s3_location = s3_args(&s3, home.path(), "s3://migrate/team/prod");
    let folder_location = vec![
        "--location".to_string(),
        format!("file://{}/folder", home.path().display()),
    ];

    // Back up to both kinds of location.
    let output = run(migrate(Some(&source), home.path())
        .args([
            "backup",
            "create",
            "all-s3",
            "--include-cluster-resources",
            "true",
        ])
        .args(&s3_location));
    assert_success(&output, "backup create to S3");
    let output = run(migrate(Some(&source), home.path())
        .args(["backup", "create", "all-dir"])
        .args(&folder_location));
    assert_success(&output, "backup create to a folder");
    let manifest = manifest_of(home.path(), &s3_location, "all-s3");
    let folder_manifest = manifest_of(home.path(), &folder_location, "all-dir");
    let total = manifest["counts"]["total"].as_u64().unwrap();
    assert!(total > 60, "only {total} objects backed up");
    let folder_total = folder_manifest["counts"]["total"].as_u64().unwrap();
    assert!(
        folder_total < total,
        "auto mode took every cluster-scoped object"
    );
    let resources: Vec<String> = manifest["counts"]["byResource"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for expected in [
        "customresourcedefinitions.apiextensions.k8s.io",
        "deployments.apps",
        "services",
        "httproutes.gateway.networking.k8s.io",
        "persistentvolumeclaims",
        "storageclasses.storage.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    ] {
        assert!(
            resources.iter().any(|r| r == expected),
            "{expected} missing from {resources:?}"
        );
    }
    for left_out in [
        "events",
        "endpoints",
        "endpointslices.discovery.k8s.io",
        "leases.coordination.k8s.io",
    ] {
        assert!(
            !resources.iter().any(|r| r == left_out),
            "{left_out} should be left out"
        );
    }

    // Restore from S3 with a namespace and a storage-class mapping.
    target.apply(&{
        let path = home.path().join("fast.yaml");
        std::fs::write(&path, FAST_CLASS).unwrap();
        path
    });
    let output = run(migrate(Some(&target), home.path())
        .args([
            "restore",
            "create",
            "first",
            "--from-backup",
            "all-s3",
            "-o",
            "json",
        ])
        .args([
            "--namespace-mappings",
            "data:data-moved",
            "--storage-class-mappings",
            "standard:fast",
        ])
        .args(&s3_location));
    assert_success(&output, "restore create from S3");
    let result = restore_json(&output);
    assert_eq!(result["counts"]["failed"], 0, "{}", stdout(&output));
    let created = result["counts"]["created"].as_u64().unwrap();
    assert!(created + 10 > total, "created {created} of {total}");

    // Every restored object equals its source after sanitizing.
    let source_objects = index(&source, &resources);
    let target_objects = index(&target, &resources);
    let mut compared = 0;
    for item in result["items"].as_array().unwrap() {
        if item["outcome"] != "created" || item["kind"] == "Namespace" && item["reason"].is_string()
        {
            continue;
        }
        let resource = item["resource"].as_str().unwrap().to_string();
        let namespace = item["namespace"].as_str().unwrap_or("").to_string();
        let name = item["name"].as_str().unwrap().to_string();
        let source_namespace = if namespace == "data-moved" {
            "data".to_string()
        } else {
            namespace.clone()
        };
        let source_name = if resource == "namespaces" && name == "data-moved" {
            "data".to_string()
        } else {
            name.clone()
        };
        let restored = &target_objects[&(resource.clone(), namespace.clone(), name.clone())];
        let original = &source_objects[&(
            resource.clone(),
            source_namespace.clone(),
            source_name.clone(),
        )];

        let mut expected = comparable(original);
        let mut actual = comparable(restored);
        if namespace == "data-moved" {
            expected["metadata"]["namespace"] = Value::from("data-moved");
        }
        if resource == "namespaces" {
            // Namespace labels carry the name; the spec and status are the server's.
            expected = serde_json::json!({"kind": "Namespace"});
            actual = serde_json::json!({"kind": "Namespace"});
        }
        if resource == "persistentvolumeclaims" {
            assert_eq!(
                restored["spec"]["storageClassName"], "fast",
                "storage class of {namespace}/{name}"
            );
            expected["spec"]["storageClassName"] = Value::from("fast");
        }
        assert_eq!(
            actual, expected,
            "{resource} {namespace}/{name} differs from its source"
        );
        compared += 1;
    }
    assert!(
        compared as u64 + 10 > total,
        "compared only {compared} objects"
    );

    // Services got addresses from the target, not the source's.
    let pinned = &target_objects[&(
        "services".to_string(),
        "data-moved".to_string(),
        "pinned".to_string(),
    )];
    let address = pinned["spec"]["clusterIP"].as_str().unwrap();
    assert!(!address.is_empty());
    assert_ne!(address, "10.96.200.200");

    // A second restore with policy none changes nothing.
    let output = run(migrate(Some(&target), home.path())
        .args([
            "restore",
            "create",
            "second",
            "--from-backup",
            "all-s3",
            "-o",
            "json",
        ])
        .args([
            "--namespace-mappings",
            "data:data-moved",
            "--storage-class-mappings",
            "standard:fast",
        ])
        .args(&s3_location));
    assert_success(&output, "second restore");
    let second = restore_json(&output);
    assert_eq!(second["counts"]["created"], 0, "{}", stdout(&output));
    assert_eq!(second["counts"]["failed"], 0);
    assert_eq!(second["counts"]["updated"], 0);
    let not_unchanged: Vec<&Value> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] != "unchanged" && i["outcome"] != "skipped")
        .collect();
    assert!(not_unchanged.is_empty(), "{not_unchanged:?}");
    let skipped_differing: Vec<&Value> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["reason"]
                .as_str()
                .is_some_and(|r| r.contains("different content"))
        })
        .collect();
    assert!(skipped_differing.is_empty(), "{skipped_differing:?}");
    assert_eq!(second["counts"]["unchanged"].as_u64().unwrap(), created);

    // The result is saved next to the backups and shown by restore describe.
    let output = run(migrate(None, home.path())
        .args(["restore", "describe", "second"])
        .args(&s3_location));
    assert_success(&output, "restore describe");
    assert!(
        stdout(&output).contains(&format!("0 created, {created} unchanged")),
        "{}",
        stdout(&output)
    );

    // The folder backup restores the same objects into a third cluster.
    let third = Cluster::start();
    let output = run(migrate(Some(&third), home.path())
        .args([
            "restore",
            "create",
            "from-folder",
            "--from-backup",
            "all-dir",
            "-o",
            "json",
        ])
        .args(&folder_location));
    let from_folder = restore_json(&output);
    assert_eq!(from_folder["counts"]["failed"], 0, "{}", stderr(&output));
    let counts = &from_folder["counts"];
    assert_eq!(
        counts["created"].as_u64().unwrap() + counts["skipped"].as_u64().unwrap(),
        folder_total
    );
}

#[test]
fn default_location_and_listing_commands() {
    let home = tempfile::tempdir().unwrap();
    let source = Cluster::start();
    source.apply(&manifests_dir().join("helloworld-v1.yaml"));

    let output = run(migrate(Some(&source), home.path()).args(["backup", "create", "hello"]));
    assert_success(&output, "backup create into the default folder");
    assert!(
        home.path()
            .join("data/kubectl-migrate/backups/backups/hello/manifest.json")
            .exists()
    );

    let output = run(migrate(None, home.path()).args(["backup", "get"]));
    assert_success(&output, "backup get");
    let text = stdout(&output);
    assert!(text.starts_with("NAME    STATUS      OBJECTS"), "{text}");
    assert!(text.contains("hello   Completed"), "{text}");

    let output = run(migrate(None, home.path()).args(["backup", "verify", "hello"]));
    assert_success(&output, "backup verify");

    let output = run(migrate(None, home.path()).args(["backup", "logs", "hello"]));
    assert_success(&output, "backup logs");
    assert!(
        stdout(&output).contains("backed up 1 deployments.apps"),
        "{}",
        stdout(&output)
    );

    let output = run(migrate(None, home.path()).args(["backup", "describe", "hello", "--images"]));
    assert_success(&output, "backup describe --images");
    assert!(
        stdout(&output).contains("Deployment/default/hello-world"),
        "{}",
        stdout(&output)
    );

    // A server-side dry run validates every create and writes nothing.
    let target = Cluster::start();
    let before = target.snapshot();
    let output = run(migrate(Some(&target), home.path()).args([
        "restore",
        "create",
        "--from-backup",
        "hello",
        "--dry-run=server",
    ]));
    assert_success(&output, "restore create --dry-run=server");
    assert!(
        stdout(&output).contains("(server dry run, nothing written)"),
        "{}",
        stdout(&output)
    );
    assert_eq!(target.snapshot(), before);

    let output = run(migrate(None, home.path()).args(["backup", "delete", "hello"]));
    assert_success(&output, "backup delete");
    let output = run(migrate(None, home.path()).args(["backup", "get", "hello"]));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn locations_are_configured_by_name() {
    let home = tempfile::tempdir().unwrap();
    let folder = format!("file://{}/named", home.path().display());
    let output =
        run(migrate(None, home.path()).args(["location", "add", "team", &folder, "--default"]));
    assert_success(&output, "location add");
    let output =
        run(migrate(None, home.path()).args(["location", "add", "ro", &folder, "--read-only"]));
    assert_success(&output, "location add --read-only");

    let output = run(migrate(None, home.path()).args(["location", "get"]));
    assert_success(&output, "location get");
    let text = stdout(&output);
    assert!(
        text.contains("team      ") && text.contains("ReadWrite   true"),
        "{text}"
    );
    assert!(text.contains("ReadOnly"), "{text}");

    // A read-only location rejects a backup before it touches the cluster.
    let source = Cluster::start();
    let output = run(migrate(Some(&source), home.path()).args([
        "backup",
        "create",
        "b1",
        "--location",
        "ro",
    ]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is read-only"),
        "{}",
        stderr(&output)
    );

    let output = run(migrate(None, home.path()).args(["location", "delete", "team"]));
    assert_success(&output, "location delete");
    let output = run(migrate(None, home.path()).args(["location", "set-default", "nope"]));
    assert_eq!(output.status.code(), Some(2));
}
