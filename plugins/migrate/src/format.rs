//! The backup format: where each file of a backup lives in a location, and the manifest.
//!
//! `docs/backup-format.md` describes the layout. The manifest is written last, so a backup
//! without one is incomplete and restore rejects it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the layout and manifest written by this build; restore accepts this version only.
pub const FORMAT_VERSION: u32 = 1;

/// Folder segment used in object keys for cluster-scoped objects.
pub const CLUSTER_SCOPE: &str = "_cluster";

/// Folder segment used in object keys for the core API group, whose name is empty.
pub const CORE_GROUP: &str = "core";

/// Returns the prefix of every key of backup `name`, ending in `/`.
pub fn backup_prefix(name: &str) -> String {
    format!("backups/{name}/")
}

/// Returns the key of the manifest of backup `name`.
pub fn manifest_key(name: &str) -> String {
    format!("backups/{name}/manifest.json")
}

/// Returns the key of the log of backup `name`.
pub fn log_key(name: &str) -> String {
    format!("backups/{name}/backup.log")
}

/// Returns the key of the result of restore `name`.
pub fn restore_result_key(name: &str) -> String {
    format!("restores/{name}/result.json")
}

/// Returns the key of one object: `backups/<backup>/resources/<group>/<version>/<resource>/
/// <namespace or _cluster>/<name>.json`, with `core` for the core group.
pub fn object_key(backup: &str, object: &ObjectRef) -> String {
    let group = if object.group.is_empty() {
        CORE_GROUP
    } else {
        object.group.as_str()
    };
    let scope = object.namespace.as_deref().unwrap_or(CLUSTER_SCOPE);
    format!(
        "backups/{backup}/resources/{group}/{}/{}/{scope}/{}.json",
        object.version, object.resource, object.name
    )
}

/// Checks a backup or restore name: a DNS-1123 label (lowercase letters, digits and `-`,
/// at most 63 characters), so that it is safe as a folder and key segment.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: use lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit"
        ))
    }
}

/// Returns the lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut text = String::with_capacity(64);
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// One object's identity: its API, resource, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Plural resource name, such as `deployments`.
    pub resource: String,
    /// Kind, such as `Deployment`.
    pub kind: String,
    /// Namespace, `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ObjectRef {
    /// Returns `resource.group` (just `resource` for the core group), as kubectl names it.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Returns `apiVersion` as written in objects (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Returns `namespace/name` or `name`, for messages.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// One object as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestObject {
    /// Identity of the object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Key of the object's JSON document, relative to the location root.
    pub key: String,
    /// UID in the source cluster, used to rebuild ownerReferences on restore.
    #[serde(default)]
    pub uid: String,
    /// SHA-256 of the stored JSON document, lowercase hex.
    pub sha256: String,
    /// Size of the stored JSON document in bytes.
    pub size: u64,
}

/// Facts about the cluster a backup was taken from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCluster {
    /// kubeconfig context used, if any.
    #[serde(default)]
    pub context: Option<String>,
    /// API server URL.
    pub server: String,
    /// `gitVersion` returned by `/version`, when the request succeeded.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
}

/// The filters a backup was taken with, recorded as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedFilters {
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    #[serde(default)]
    pub selector: Option<String>,
    pub include_cluster_resources: String,
}

/// Object counts of a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Number of objects.
    pub total: usize,
    /// Number of objects per `resource.group`.
    pub by_resource: BTreeMap<String, usize>,
    /// Number of objects per namespace; cluster-scoped objects count under `_cluster`.
    pub by_namespace: BTreeMap<String, usize>,
}

impl Counts {
    /// Counts the objects of a manifest.
    pub fn of(objects: &[ManifestObject]) -> Counts {
        let mut counts = Counts {
            total: objects.len(),
            ..Counts::default()
        };
        for entry in objects {
            *counts
                .by_resource
                .entry(entry.object.group_resource())
                .or_default() += 1;
            let namespace = entry.object.namespace.as_deref().unwrap_or(CLUSTER_SCOPE);
            *counts
                .by_namespace
                .entry(namespace.to_string())
                .or_default() += 1;
        }
        counts
    }
}

/// The manifest of a complete backup, `backups/<name>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Layout version; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Backup name.
    pub name: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Completion time, RFC 3339 UTC.
    pub completed_at: String,
    /// The cluster backed up.
    pub source: SourceCluster,
    /// Filters given to `backup create`.
    pub filters: RecordedFilters,
    /// Object counts.
    pub counts: Counts,
    /// Every object with its key and hash, sorted by key.
    pub objects: Vec<ManifestObject>,
    /// Volume records with their hashes, sorted by key. Manifests written before this field
    /// existed lack it and read as empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_records: Vec<StoredFile>,
}

/// A file of a backup other than an object document, with its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFile {
    /// Key relative to the location root.
    pub key: String,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl StoredFile {
    /// Describes `bytes` stored under `key`.
    pub fn of(key: String, bytes: &[u8]) -> StoredFile {
        StoredFile {
            key,
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }
}

impl Manifest {
    /// Parses a manifest and checks its format version.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|error| format!("invalid manifest of backup {name}: {error}"))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(format!(
                "backup {name} has format version {}, this kubectl-migrate reads version {FORMAT_VERSION}: use a matching kubectl-migrate release",
                manifest.format_version
            ));
        }
        Ok(manifest)
    }
}

/// State of a backup as seen in a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupState {
    /// The manifest exists.
    Completed,
    /// Objects exist but the manifest does not: interrupted, failed or still running.
    Incomplete,
}

impl BackupState {
    /// Returns the word shown in the STATUS column.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Completed => "Completed",
            BackupState::Incomplete => "Incomplete",
        }
    }
}

/// Groups the keys under `backups/` by backup name and marks those with a manifest as complete.
pub fn backups_in_listing<'a>(
    keys: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, BackupState> {
    let mut backups = BTreeMap::new();
    for key in keys {
        let Some(rest) = key.strip_prefix("backups/") else {
            continue;
        };
        let Some((name, file)) = rest.split_once('/') else {
            continue;
        };
        let state = backups
            .entry(name.to_string())
            .or_insert(BackupState::Incomplete);
        if file == "manifest.json" {
            *state = BackupState::Completed;
        }
    }
    backups
}

/// Returns the current time as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> ObjectRef {
        ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }
    }

    #[test]
    fn object_keys_follow_the_layout() {
        assert_eq!(
            object_key("b1", &deployment()),
            "backups/b1/resources/apps/v1/deployments/shop/web.json"
        );
        let namespace = ObjectRef {
            group: String::new(),
            version: "v1".into(),
            resource: "namespaces".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: "shop".into(),
        };
        assert_eq!(
            object_key("b1", &namespace),
            "backups/b1/resources/core/v1/namespaces/_cluster/shop.json"
        );
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(validate_name("backup", "shop-1").is_ok());
        for bad in ["", "Shop", "-a", "a-", "a/b", "a.b", &"x".repeat(64)] {
            assert!(validate_name("backup", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listing_marks_backups_without_manifest_incomplete() {
        let keys = [
            "backups/a/manifest.json",
            "backups/a/resources/core/v1/x/_cluster/y.json",
            "backups/b/resources/core/v1/x/_cluster/y.json",
            "restores/r/result.json",
        ];
        let backups = backups_in_listing(keys);
        assert_eq!(backups.len(), 2);
        assert_eq!(backups["a"], BackupState::Completed);
        assert_eq!(backups["b"], BackupState::Incomplete);
    }

    #[test]
    fn counts_group_by_resource_and_namespace() {
        let entry = ManifestObject {
            object: deployment(),
            key: String::new(),
            uid: String::new(),
            sha256: String::new(),
            size: 1,
        };
        let counts = Counts::of(&[entry.clone(), entry]);
        assert_eq!(counts.total, 2);
        assert_eq!(counts.by_resource["deployments.apps"], 2);
        assert_eq!(counts.by_namespace["shop"], 2);
    }

    #[test]
    fn manifest_without_volume_records_reads_as_empty() {
        let text = r#"{"formatVersion":1,"name":"b","startedAt":"","completedAt":"","source":{"server":""},
            "filters":{"includeNamespaces":[],"excludeNamespaces":[],"includeResources":[],"excludeResources":[],"includeClusterResources":"auto"},
            "counts":{"total":0,"byResource":{},"byNamespace":{}},"objects":[]}"#;
        let manifest = Manifest::parse("b", text.as_bytes()).unwrap();
        assert!(manifest.volume_records.is_empty());
        let written = serde_json::to_string(&manifest).unwrap();
        assert!(!written.contains("volumeRecords"), "{written}");
    }

    #[test]
    fn manifest_with_other_version_is_rejected() {
        let text = r#"{"formatVersion":2,"name":"b","startedAt":"","completedAt":"","source":{"server":""},
            "filters":{"includeNamespaces":[],"excludeNamespaces":[],"includeResources":[],"excludeResources":[],"includeClusterResources":"auto"},
            "counts":{"total":0,"byResource":{},"byNamespace":{}},"objects":[]}"#;
        let error = Manifest::parse("b", text.as_bytes()).unwrap_err();
        assert!(error.contains("format version 2"), "{error}");
    }
}
