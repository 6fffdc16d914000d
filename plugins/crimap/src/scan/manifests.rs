//! Reading manifest files and folders (multi-document YAML, JSON, `List` objects) and finding
//! the pod specs of the workloads in them.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;
use shared::{Error, Result, ResultExt};

use super::WorkloadReport;
use super::detect::{ConfigMaps, inspect_pod_spec};

/// Scans every manifest under `paths` (`-` is stdin); folders are read one level deep unless
/// `recursive` is set, as kubectl's `-f` and `-R` do.
pub fn scan_paths(paths: &[PathBuf], recursive: bool) -> Result<Vec<WorkloadReport>> {
    let mut documents = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context(|| "failed to read manifests from stdin".to_string())?;
            documents.extend(load_text(&text, "-", false)?);
            continue;
        }
        let files = manifest_files(path, recursive)?;
        if files.is_empty() && path.is_dir() {
            return Err(Error::usage(format!(
                "no .yaml, .yml or .json files in {}: pass a folder with manifests{}",
                path.display(),
                if recursive {
                    ""
                } else {
                    ", or add -R for subfolders"
                }
            )));
        }
        for file in files {
            let text = std::fs::read_to_string(&file)
                .context(|| format!("failed to read {}", file.display()))?;
            let is_json = file
                .extension()
                .is_some_and(|extension| extension == "json");
            documents.extend(load_text(&text, &file.display().to_string(), is_json)?);
        }
    }
    scan_documents(&documents)
}

/// Lists the manifest files `path` names: the file itself, or the `.yaml`, `.yml` and `.json`
/// files in the folder, sorted.
fn manifest_files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let metadata = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::usage(format!(
                "manifest path {} does not exist: pass an existing file or folder to -f",
                path.display()
            ))
        } else {
            Error::Io {
                context: format!("failed to read {}", path.display()),
                source,
            }
        }
    })?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }

    let mut files = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .context(|| format!("failed to list {}", folder.display()))?;
        for entry in entries {
            let entry = entry.context(|| format!("failed to list {}", folder.display()))?;
            let entry_path = entry.path();
            if entry_path.is_dir() {
                if recursive {
                    folders.push(entry_path);
                }
                continue;
            }
            let manifest = entry_path
                .extension()
                .and_then(|extension| extension.to_str())
                .is_some_and(|extension| matches!(extension, "yaml" | "yml" | "json"));
            if manifest {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Parses the documents of one file and scans each workload in them. `source` names the file
/// in reports and errors.
pub fn scan_text(text: &str, source: &str, is_json: bool) -> Result<Vec<WorkloadReport>> {
    scan_documents(&load_text(text, source, is_json)?)
}

/// Parses the documents of one file, each with its location (`file` or `file#2`).
fn load_text(text: &str, source: &str, is_json: bool) -> Result<Vec<(String, serde_json::Value)>> {
    let documents = parse_documents(text, source, is_json)?;
    let count = documents.len();
    Ok(documents
        .into_iter()
        .enumerate()
        .map(|(index, document)| {
            let location = if count > 1 {
                format!("{source}#{}", index + 1)
            } else {
                source.to_string()
            };
            (location, document)
        })
        .collect())
}

/// Scans the workloads of all documents, with the ConfigMaps of all documents available to
/// them, because a workload's scripts may sit in another file.
fn scan_documents(documents: &[(String, serde_json::Value)]) -> Result<Vec<WorkloadReport>> {
    let mut config_maps: HashMap<String, ConfigMaps> = HashMap::new();
    for (_, document) in documents {
        index_config_maps(document, &mut config_maps);
    }
    let mut reports = Vec::new();
    for (location, document) in documents {
        collect(document, location, &config_maps, &mut reports)?;
    }
    Ok(reports)
}

/// Adds the `data` of every ConfigMap in `object` (or its `List` items) to `index`, keyed by
/// namespace (empty when the manifest names none) and name.
fn index_config_maps(object: &serde_json::Value, index: &mut HashMap<String, ConfigMaps>) {
    let kind = object
        .get("kind")
        .and_then(|kind| kind.as_str())
        .unwrap_or_default();
    if kind.ends_with("List") {
        for item in object
            .get("items")
            .and_then(|items| items.as_array())
            .into_iter()
            .flatten()
        {
            index_config_maps(item, index);
        }
        return;
    }
    if kind != "ConfigMap" {
        return;
    }
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let data = object
        .get("data")
        .and_then(|data| data.as_object())
        .map(|data| {
            data.iter()
                .filter_map(|(key, value)| {
                    value.as_str().map(|text| (key.clone(), text.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    index
        .entry(text("/metadata/namespace"))
        .or_default()
        .insert(text("/metadata/name"), data);
}

fn parse_documents(text: &str, source: &str, is_json: bool) -> Result<Vec<serde_json::Value>> {
    if is_json {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|error| Error::failed(format!("invalid JSON in {source}: {error}")))?;
        return Ok(vec![value]);
    }
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(document).map_err(|error| {
            Error::failed(format!(
                "invalid YAML in {source} (document {}): {error}",
                index + 1
            ))
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Adds the workload of `object` to `reports`, descending into `List` items.
fn collect(
    object: &serde_json::Value,
    source: &str,
    config_maps: &HashMap<String, ConfigMaps>,
    reports: &mut Vec<WorkloadReport>,
) -> Result<()> {
    let kind = object
        .get("kind")
        .and_then(|kind| kind.as_str())
        .unwrap_or_default();
    if kind == "List" || kind.ends_with("List") {
        for item in object
            .get("items")
            .and_then(|items| items.as_array())
            .into_iter()
            .flatten()
        {
            collect(item, source, config_maps, reports)?;
        }
        return Ok(());
    }
    let Some(pointer) = pod_spec_pointer(kind) else {
        return Ok(());
    };

    let metadata = object.get("metadata");
    let name = metadata
        .and_then(|metadata| metadata.get("name"))
        .and_then(|name| name.as_str())
        .unwrap_or("<unnamed>")
        .to_string();
    let namespace = metadata
        .and_then(|metadata| metadata.get("namespace"))
        .and_then(|namespace| namespace.as_str())
        .map(str::to_string);
    let findings = match object.pointer(pointer) {
        Some(spec) => {
            let mut spec = spec.clone();
            convert_octal_modes(&mut spec);
            let spec: PodSpec = serde_json::from_value(spec).map_err(|error| {
                Error::failed(format!(
                    "invalid pod spec in {kind} {name} of {source}: {error}"
                ))
            })?;
            let no_config_maps = ConfigMaps::new();
            let scripts = config_maps
                .get(namespace.as_deref().unwrap_or_default())
                .unwrap_or(&no_config_maps);
            inspect_pod_spec(&spec, scripts)
        }
        None => Vec::new(),
    };
    reports.push(WorkloadReport {
        kind: kind.to_string(),
        namespace,
        name,
        source: source.to_string(),
        findings,
    });
    Ok(())
}

/// Turns file modes written as YAML 1.1 octals (`defaultMode: 0755`) into numbers.
///
/// NOTE: serde_yaml reads YAML 1.2, where `0755` is a string, but Kubernetes reads manifests as
/// YAML 1.1, where it is the octal 493. Only the `defaultMode` and `mode` fields of volumes are
/// converted; other YAML 1.1 forms (`yes`/`no` booleans) still fail to decode.
fn convert_octal_modes(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                let octal = match field {
                    serde_json::Value::String(text) if key == "defaultMode" || key == "mode" => {
                        text.strip_prefix('0')
                            .filter(|digits| !digits.is_empty())
                            .and_then(|digits| i64::from_str_radix(digits, 8).ok())
                    }
                    _ => None,
                };
                match octal {
                    Some(number) => *field = serde_json::Value::from(number),
                    None => convert_octal_modes(field),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(convert_octal_modes),
        _ => {}
    }
}

/// Returns the JSON pointer of the pod spec in a workload of `kind`, `None` for other kinds.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job"
        | "PodTemplate" => Some(if kind == "PodTemplate" {
            "/template/spec"
        } else {
            "/spec/template/spec"
        }),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::detect::FindingKind;

    #[test]
    fn multi_document_yaml_scanned() {
        let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ci}
spec:
  schedule: '0 0 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: build
            image: docker:24
            command: [sh, -c, 'docker build -t app .']
            env:
            - {name: DOCKER_HOST, value: 'tcp://dind:2375'}
---
";
        let reports = scan_text(text, "ci.yaml", false).unwrap();
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert_eq!(report.kind, "CronJob");
        assert_eq!(report.source, "ci.yaml#2");
        let kinds: Vec<FindingKind> = report.findings.iter().map(|finding| finding.kind).collect();
        assert_eq!(
            kinds,
            vec![FindingKind::DockerHostEnv, FindingKind::DockerCli]
        );
    }

    #[test]
    fn list_items_scanned() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
             "spec": {"containers": [{"name": "c", "image": "docker:dind"}]}}]}"#;
        let reports = scan_text(text, "list.json", true).unwrap();
        assert_eq!(reports[0].name, "a");
        assert_eq!(reports[0].findings[0].kind, FindingKind::DindImage);
    }

    #[test]
    fn octal_modes_read_as_kubernetes_does() {
        let text = "\
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: app}]
  volumes: [{name: v, configMap: {name: m, defaultMode: 0755, items: [{key: k, path: k, mode: 0600}]}}]
";
        let reports = scan_text(text, "p.yaml", false).unwrap();
        assert_eq!(reports[0].findings, Vec::new());
    }

    #[test]
    fn mounted_script_scanned() {
        let text = "\
kind: ConfigMap
metadata: {name: scripts, namespace: ci}
data: {run.sh: 'docker run --rm app'}
---
kind: Pod
metadata: {name: p, namespace: ci}
spec:
  containers: [{name: c, image: app, volumeMounts: [{name: s, mountPath: /s}]}]
  volumes: [{name: s, projected: {sources: [{configMap: {name: scripts}}]}}]
";
        let reports = scan_text(text, "p.yaml", false).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(
            reports[0].findings[0].detail,
            "docker run --rm app (configmap scripts, key run.sh)"
        );
    }

    #[test]
    fn invalid_yaml_names_file() {
        let error = scan_text("kind: [", "bad.yaml", false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid YAML in bad.yaml (document 1):")
        );
    }

    #[test]
    fn invalid_pod_spec_names_object() {
        let text = "kind: Pod\nmetadata: {name: p}\nspec: {containers: 5}\n";
        let error = scan_text(text, "p.yaml", false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid pod spec in Pod p of p.yaml:")
        );
    }
}
