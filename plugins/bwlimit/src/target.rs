//! Targets of a command (one pod, the pod template of a workload, or the pods a label
//! selector matches) and the annotations that carry the limits.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::rate::{self, Rate};

/// Annotation with the limit of traffic into the pod, read by the CNI bandwidth plugin.
pub const INGRESS_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
/// Annotation with the limit of traffic out of the pod.
pub const EGRESS_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// A workload kind whose pod template carries the annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
}

impl WorkloadKind {
    /// Returns the lowercase resource name as kubectl prints it (`deployment`).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::Job => "job",
        }
    }

    /// Reports whether changing the pod template replaces the running pods.
    pub fn rolls_pods(self) -> bool {
        matches!(
            self,
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
        )
    }
}

/// The object or objects a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One pod by name.
    Pod(String),
    /// The pod template of a workload.
    Workload { kind: WorkloadKind, name: String },
    /// The pods matching a label selector.
    Selector(String),
}

/// Parses `TARGET` (`pod/NAME`, `deployment/NAME`, ...) or `-l SELECTOR`, accepting kubectl's
/// plural and short resource names.
pub fn parse_target(target: Option<&str>, selector: Option<&str>) -> Result<Target, String> {
    match (target, selector) {
        (Some(_), Some(_)) => Err("pass either TARGET or -l/--selector, not both".to_string()),
        (None, None) => {
            Err("missing TARGET: pass pod/NAME, deployment/NAME or -l SELECTOR".to_string())
        }
        (None, Some(selector)) if selector.trim().is_empty() => {
            Err("empty selector: pass -l with a label selector such as app=web".to_string())
        }
        (None, Some(selector)) => Ok(Target::Selector(selector.to_string())),
        (Some(text), None) => {
            let Some((resource, name)) = text.split_once('/') else {
                return Err(format!(
                    "invalid target {text:?}: use TYPE/NAME such as pod/web-0 or deployment/web"
                ));
            };
            if name.is_empty() || name.contains('/') {
                return Err(format!(
                    "invalid target {text:?}: missing or malformed NAME"
                ));
            }
            let kind = match resource.to_ascii_lowercase().as_str() {
                "pod" | "pods" | "po" => return Ok(Target::Pod(name.to_string())),
                "deployment" | "deployments" | "deploy" | "deployment.apps" => {
                    WorkloadKind::Deployment
                }
                "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => {
                    WorkloadKind::StatefulSet
                }
                "daemonset" | "daemonsets" | "ds" | "daemonset.apps" => WorkloadKind::DaemonSet,
                "replicaset" | "replicasets" | "rs" | "replicaset.apps" => WorkloadKind::ReplicaSet,
                "job" | "jobs" | "job.batch" => WorkloadKind::Job,
                _ => {
                    return Err(format!(
                        "invalid target {text:?}: unsupported type {resource:?}, use pod, deployment, \
                         statefulset, daemonset, replicaset or job"
                    ));
                }
            };
            Ok(Target::Workload {
                kind,
                name: name.to_string(),
            })
        }
    }
}

/// Formats a rate as an annotation value: a quantity with the largest decimal suffix that
/// keeps it exact (`240M`, `1500k`), else plain bit/s.
pub fn annotation_value(rate: Rate) -> String {
    let bits = rate.bits_per_second();
    for (unit, suffix) in [
        (1_000_000_000_000_000, "P"),
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "k"),
    ] {
        if bits.is_multiple_of(unit) {
            return format!("{}{suffix}", bits / unit);
        }
    }
    bits.to_string()
}

/// Builds the annotations part of a merge patch: values for the given rates, `null` (remove)
/// for the directions in `remove`.
pub fn annotation_changes(
    ingress: Option<Rate>,
    egress: Option<Rate>,
    remove: bool,
) -> serde_json::Map<String, Value> {
    let mut changes = serde_json::Map::new();
    for (key, rate) in [(INGRESS_ANNOTATION, ingress), (EGRESS_ANNOTATION, egress)] {
        match (rate, remove) {
            (Some(rate), false) => {
                changes.insert(key.to_string(), Value::String(annotation_value(rate)));
            }
            (_, true) => {
                changes.insert(key.to_string(), Value::Null);
            }
            (None, false) => {}
        }
    }
    changes
}

/// Builds a merge patch restoring two annotations to earlier values (absent ones removed).
pub fn restore_patch(previous: &BTreeMap<String, String>) -> Value {
    let mut changes = serde_json::Map::new();
    for key in [INGRESS_ANNOTATION, EGRESS_ANNOTATION] {
        let value = previous
            .get(key)
            .map(|v| Value::String(v.clone()))
            .unwrap_or(Value::Null);
        changes.insert(key.to_string(), value);
    }
    json!({ "metadata": { "annotations": changes } })
}

/// Wraps annotation changes in a merge patch for a pod.
pub fn pod_patch(changes: serde_json::Map<String, Value>) -> Value {
    json!({ "metadata": { "annotations": changes } })
}

/// Wraps annotation changes in a merge patch for a workload's pod template.
pub fn template_patch(changes: serde_json::Map<String, Value>) -> Value {
    json!({ "spec": { "template": { "metadata": { "annotations": changes } } } })
}

/// Limits read from an object's annotations; an invalid value keeps its text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnotatedLimits {
    /// Limit of traffic into the pod.
    pub ingress: Option<Result<Rate, String>>,
    /// Limit of traffic out of the pod.
    pub egress: Option<Result<Rate, String>>,
}

impl AnnotatedLimits {
    /// Reads the two annotations from a map of annotations.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> AnnotatedLimits {
        let read = |key: &str| {
            annotations
                .and_then(|map| map.get(key))
                .map(|value| rate::parse_rate(value.trim()).map_err(|_| value.clone()))
        };
        AnnotatedLimits {
            ingress: read(INGRESS_ANNOTATION),
            egress: read(EGRESS_ANNOTATION),
        }
    }

    /// Reports whether either annotation is present.
    pub fn is_set(&self) -> bool {
        self.ingress.is_some() || self.egress.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::parse_rate;

    #[test]
    fn targets_parse_with_kubectl_names() {
        let cases = [
            ("pod/web-0", Target::Pod("web-0".into())),
            ("po/web-0", Target::Pod("web-0".into())),
            (
                "deploy/web",
                Target::Workload {
                    kind: WorkloadKind::Deployment,
                    name: "web".into(),
                },
            ),
            (
                "statefulset/db",
                Target::Workload {
                    kind: WorkloadKind::StatefulSet,
                    name: "db".into(),
                },
            ),
            (
                "ds/agent",
                Target::Workload {
                    kind: WorkloadKind::DaemonSet,
                    name: "agent".into(),
                },
            ),
            (
                "rs/web-5d8",
                Target::Workload {
                    kind: WorkloadKind::ReplicaSet,
                    name: "web-5d8".into(),
                },
            ),
            (
                "job/batch",
                Target::Workload {
                    kind: WorkloadKind::Job,
                    name: "batch".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_target(Some(text), None), Ok(expected), "{text}");
        }
        assert_eq!(
            parse_target(None, Some("app=web")),
            Ok(Target::Selector("app=web".into()))
        );
    }

    #[test]
    fn bad_targets_rejected() {
        assert_eq!(
            parse_target(Some("web"), None).unwrap_err(),
            "invalid target \"web\": use TYPE/NAME such as pod/web-0 or deployment/web"
        );
        assert!(
            parse_target(Some("service/web"), None)
                .unwrap_err()
                .contains("unsupported type \"service\"")
        );
        assert!(parse_target(Some("pod/"), None).is_err());
        assert!(parse_target(Some("pod/a/b"), None).is_err());
        assert!(parse_target(Some("pod/a"), Some("x=y")).is_err());
        assert!(parse_target(None, Some(" ")).is_err());
    }

    #[test]
    fn annotation_values_stay_exact() {
        let cases = [
            ("240M", "240M"),
            ("1Mi", "1048576"),
            ("1.5G", "1500M"),
            ("1k", "1k"),
            ("1P", "1P"),
            ("1001", "1001"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                annotation_value(parse_rate(input).unwrap()),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn patches_set_and_remove() {
        let rate = parse_rate("20M").unwrap();
        assert_eq!(
            pod_patch(annotation_changes(Some(rate), None, false)),
            json!({"metadata": {"annotations": {INGRESS_ANNOTATION: "20M"}}})
        );
        assert_eq!(
            template_patch(annotation_changes(None, None, true)),
            json!({"spec": {"template": {"metadata": {"annotations": {
                INGRESS_ANNOTATION: null, EGRESS_ANNOTATION: null
            }}}}})
        );
    }

    #[test]
    fn restore_puts_back_previous_values() {
        let previous = BTreeMap::from([(INGRESS_ANNOTATION.to_string(), "5M".to_string())]);
        assert_eq!(
            restore_patch(&previous),
            json!({"metadata": {"annotations": {INGRESS_ANNOTATION: "5M", EGRESS_ANNOTATION: null}}})
        );
    }

    #[test]
    fn annotations_read_with_invalid_kept() {
        let map = BTreeMap::from([
            (INGRESS_ANNOTATION.to_string(), "10M".to_string()),
            (EGRESS_ANNOTATION.to_string(), "fast".to_string()),
        ]);
        let limits = AnnotatedLimits::from_annotations(Some(&map));
        assert_eq!(limits.ingress, Some(Ok(parse_rate("10M").unwrap())));
        assert_eq!(limits.egress, Some(Err("fast".to_string())));
        assert!(!AnnotatedLimits::from_annotations(None).is_set());
    }
}
