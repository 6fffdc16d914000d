//! Reading manifest files and folders (multi-document YAML, JSON, `List` objects) and finding
//! the pod specs of the workloads in them.

use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;
use shared::{Error, Result, ResultExt};

use super::WorkloadReport;
use super::detect::inspect_pod_spec;

/// Scans every manifest under `paths` (`-` is stdin); folders are read one level deep unless
/// `recursive` is set, as kubectl's `-f` and `-R` do.
pub fn scan_paths(paths: &[PathBuf], recursive: bool) -> Result<Vec<WorkloadReport>> {
    let mut reports = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context(|| "failed to read manifests from stdin".to_string())?;
            reports.extend(scan_text(&text, "-", false)?);
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
            reports.extend(scan_text(&text, &file.display().to_string(), is_json)?);
        }
    }
    Ok(reports)
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
    let documents = parse_documents(text, source, is_json)?;
    let mut reports = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let location = if documents.len() > 1 {
            format!("{source}#{}", index + 1)
        } else {
            source.to_string()
        };
        collect(document, &location, &mut reports)?;
    }
    Ok(reports)
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
            collect(item, source, reports)?;
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
            let spec: PodSpec = serde_json::from_value(spec.clone()).map_err(|error| {
                Error::failed(format!(
                    "invalid pod spec in {kind} {name} of {source}: {error}"
                ))
            })?;
            inspect_pod_spec(&spec)
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
