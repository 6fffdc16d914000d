//! The result of a restore, saved as `restores/<name>/result.json` next to the backups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Outcome of restoring one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Created in the target (or accepted by a server-side dry run).
    Created,
    /// Already present and equal to the backup.
    Unchanged,
    /// Already present, different, and replaced (`--existing-resource-policy update`).
    Updated,
    /// Left out, with the reason.
    Skipped,
    /// The target rejected it, with the reason.
    Failed,
}

impl Outcome {
    /// Returns the lowercase word used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Unchanged => "unchanged",
            Outcome::Updated => "updated",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }

    /// Every outcome, in table order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Created,
        Outcome::Unchanged,
        Outcome::Updated,
        Outcome::Skipped,
        Outcome::Failed,
    ];
}

/// The outcome of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// `apiVersion` the object was created with.
    pub api_version: String,
    pub kind: String,
    /// `resource.group`.
    pub resource: String,
    /// Namespace in the target, after mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// Restore phase.
    pub phase: String,
    pub outcome: Outcome,
    /// Reason it was skipped or failed, or the change made to it (such as a conversion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of one restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// Restore name.
    pub name: String,
    /// Backup restored.
    pub backup: String,
    pub started_at: String,
    pub completed_at: String,
    /// kubeconfig context of the target.
    #[serde(default)]
    pub target_context: Option<String>,
    /// API server URL of the target.
    pub target_server: String,
    /// Whether the creates were server-side dry runs.
    pub dry_run: bool,
    /// `none` or `update`.
    pub existing_resource_policy: String,
    /// Problems found before any write.
    pub preflight: Vec<String>,
    /// Number of objects per outcome.
    pub counts: BTreeMap<String, usize>,
    /// Every object's outcome, in restore order.
    pub items: Vec<ItemResult>,
}

impl RestoreResult {
    /// Counts the items per outcome, with every outcome present.
    pub fn count(items: &[ItemResult]) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str().to_string(), 0))
            .collect();
        for item in items {
            *counts.entry(item.outcome.as_str().to_string()).or_default() += 1;
        }
        counts
    }

    /// Reports whether any object failed.
    pub fn has_failures(&self) -> bool {
        self.items.iter().any(|i| i.outcome == Outcome::Failed)
    }

    /// Returns one row per resource type with the count of each outcome, in restore order.
    pub fn rows_by_resource(&self) -> Vec<(String, [usize; 5])> {
        let mut rows: Vec<(String, [usize; 5])> = Vec::new();
        for item in &self.items {
            let column = Outcome::ALL
                .iter()
                .position(|o| *o == item.outcome)
                .unwrap_or(0);
            match rows
                .iter_mut()
                .find(|(resource, _)| *resource == item.resource)
            {
                Some((_, counts)) => counts[column] += 1,
                None => {
                    let mut counts = [0; 5];
                    counts[column] = 1;
                    rows.push((item.resource.clone(), counts));
                }
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(resource: &str, outcome: Outcome) -> ItemResult {
        ItemResult {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            resource: resource.into(),
            namespace: None,
            name: "x".into(),
            phase: "config-maps".into(),
            outcome,
            reason: None,
        }
    }

    #[test]
    fn counts_include_every_outcome() {
        let counts = RestoreResult::count(&[item("configmaps", Outcome::Created)]);
        assert_eq!(counts.len(), 5);
        assert_eq!(counts["created"], 1);
        assert_eq!(counts["failed"], 0);
    }

    #[test]
    fn rows_group_by_resource_in_order() {
        let result = RestoreResult {
            name: "r".into(),
            backup: "b".into(),
            started_at: String::new(),
            completed_at: String::new(),
            target_context: None,
            target_server: String::new(),
            dry_run: false,
            existing_resource_policy: "none".into(),
            preflight: vec![],
            counts: BTreeMap::new(),
            items: vec![
                item("namespaces", Outcome::Created),
                item("configmaps", Outcome::Created),
                item("configmaps", Outcome::Failed),
            ],
        };
        assert_eq!(
            result.rows_by_resource(),
            [
                ("namespaces".to_string(), [1, 0, 0, 0, 0]),
                ("configmaps".to_string(), [1, 0, 0, 0, 1])
            ]
        );
        assert!(result.has_failures());
    }
}
