//! Restore planning, without the cluster: filter, sanitize, map, convert, assign phases, and
//! the pre-flight checks against facts collected from the target.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::discovery::ResourceType;
use crate::format::{ManifestObject, ObjectRef};
use crate::mappings::Mappings;
use crate::order::{Phase, phase_of};
use crate::restore::result::{ItemResult, Outcome};
use crate::sanitize::{
    SanitizeOptions, convert_legacy_ingress, sanitize, skip_reason, unbind_claim_without_volume,
};
use crate::workload::pod_specs;

/// One object of the restore, ready to send.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The object as backed up.
    pub source: ObjectRef,
    /// UID in the source cluster.
    pub source_uid: String,
    /// Source UIDs of its owners.
    pub owner_uids: Vec<String>,
    /// Destination: group, version, resource, kind and the mapped namespace.
    pub target: ObjectRef,
    /// Sanitized and mapped object.
    pub object: PackedObject,
    pub phase: Phase,
    /// Set when the object is left out.
    pub skip: Option<String>,
    /// A note kept in the result, such as a conversion.
    pub note: Option<String>,
}

impl Planned {
    /// Starts the result of this object with `outcome` and `reason`.
    pub fn result(&self, outcome: Outcome, reason: Option<String>) -> ItemResult {
        ItemResult {
            api_version: self.target.api_version(),
            kind: self.target.kind.clone(),
            resource: self.target.group_resource(),
            namespace: self.target.namespace.clone(),
            name: self.target.name.clone(),
            phase: self.phase.name().to_string(),
            outcome,
            reason,
        }
    }
}

/// An object kept as compact JSON until it is sent. A parsed `Value` takes several times the
/// memory of its JSON text, which decides the peak of a restore of tens of thousands of objects.
#[derive(Debug, Clone)]
pub struct PackedObject(Box<[u8]>);

impl PackedObject {
    pub fn new(object: &Value) -> PackedObject {
        PackedObject(
            serde_json::to_vec(object)
                .expect("a JSON value serializes")
                .into_boxed_slice(),
        )
    }

    /// Parses the object back. Only `new` builds a `PackedObject`, from a `Value`, so parsing
    /// cannot fail.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0).expect("a packed object is valid JSON")
    }
}

/// Settings of the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub mappings: Mappings,
    pub sanitize: SanitizeOptions,
    /// Leave out cluster-scoped objects (`--include-cluster-resources false`).
    pub skip_cluster_scoped: bool,
}

/// Reads the types that CRDs in the backup define, so that their objects can be planned before
/// the target serves them.
pub fn types_from_crds(objects: &[(ManifestObject, Value)]) -> Vec<ResourceType> {
    let mut types = Vec::new();
    for (entry, crd) in objects {
        if entry.object.group_resource() != "customresourcedefinitions.apiextensions.k8s.io" {
            continue;
        }
        let spec = &crd["spec"];
        for version in spec["versions"].as_array().into_iter().flatten() {
            if version["served"].as_bool() != Some(true) {
                continue;
            }
            types.push(ResourceType {
                group: spec["group"].as_str().unwrap_or_default().to_string(),
                version: version["name"].as_str().unwrap_or_default().to_string(),
                kind: spec["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                plural: spec["names"]["plural"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                singular: spec["names"]["singular"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                short_names: spec["names"]["shortNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                namespaced: spec["scope"] == "Namespaced",
                verbs: vec!["create".into(), "get".into(), "list".into()],
            });
        }
    }
    types
}

/// Plans every object, sorted by phase. `served` contains the target's group/versions (`v1`,
/// `apps/v1`), and `crd_types` the types that CRDs of this restore will add.
pub fn plan(
    objects: Vec<(ManifestObject, Value)>,
    served: &HashSet<String>,
    crd_types: &[ResourceType],
    options: &PlanOptions,
) -> Vec<Planned> {
    let planner = Planner {
        served,
        crd_types,
        options,
        restored_volumes: objects
            .iter()
            .filter(|(e, _)| e.object.group_resource() == "persistentvolumes")
            .map(|(e, _)| e.object.name.clone())
            .collect(),
    };
    let mut planned: Vec<Planned> = objects
        .into_iter()
        .map(|(entry, object)| planner.plan_one(entry, object))
        .collect();
    planned.sort_by(|a, b| (a.phase, &a.target).cmp(&(b.phase, &b.target)));
    planned
}

/// Plans objects one at a time, so that a restore never keeps the whole backup parsed.
pub struct Planner<'a> {
    /// The target's group/versions (`v1`, `apps/v1`).
    pub served: &'a HashSet<String>,
    /// Types that CRDs of this restore will add.
    pub crd_types: &'a [ResourceType],
    pub options: &'a PlanOptions,
    /// Names of the PersistentVolumes this restore creates.
    pub restored_volumes: HashSet<String>,
}

impl Planner<'_> {
    /// Sanitizes, maps and converts one object and assigns its phase.
    pub fn plan_one(&self, entry: ManifestObject, mut object: Value) -> Planned {
        let options = self.options;
        let owner_uids = object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["uid"].as_str().map(str::to_string))
            .collect();
        let mut target = entry.object.clone();
        let mut skip = skip_reason(&object).map(str::to_string);
        let mut note = None;

        if skip.is_none() && options.skip_cluster_scoped && entry.object.namespace.is_none() {
            skip = Some(
                "cluster-scoped objects are excluded by --include-cluster-resources false".into(),
            );
        }

        // An API the target does not serve: convert when exact, else skip with the reason.
        let api_version = entry.object.api_version();
        let crd_serves = self.crd_types.iter().any(|t| {
            t.group == entry.object.group
                && t.version == entry.object.version
                && t.kind == entry.object.kind
        });
        if skip.is_none() && !self.served.contains(&api_version) && !crd_serves {
            if self.served.contains("networking.k8s.io/v1") && convert_legacy_ingress(&mut object) {
                target.group = "networking.k8s.io".into();
                target.version = "v1".into();
                note = Some(format!("converted from {api_version}"));
            } else {
                skip = Some(format!(
                    "the target does not serve {api_version} {}: no exact conversion exists",
                    entry.object.kind
                ));
            }
        }

        sanitize(&mut object, options.sanitize);
        let volume_restored = object["spec"]["volumeName"]
            .as_str()
            .is_some_and(|v| self.restored_volumes.contains(v));
        unbind_claim_without_volume(&mut object, volume_restored);
        options.mappings.apply(&mut object);
        target.namespace = object["metadata"]["namespace"].as_str().map(str::to_string);
        target.name = object["metadata"]["name"]
            .as_str()
            .unwrap_or(&target.name)
            .to_string();

        Planned {
            phase: phase_of(&target.group, &target.resource),
            source: entry.object,
            source_uid: entry.uid,
            owner_uids,
            target,
            object: PackedObject::new(&object),
            skip,
            note,
        }
    }
}

/// Facts about the target that the pre-flight checks need.
#[derive(Debug, Clone, Default)]
pub struct TargetFacts {
    pub storage_classes: BTreeSet<String>,
    pub ingress_classes: BTreeSet<String>,
    pub priority_classes: BTreeSet<String>,
    /// nodePort to the `namespace/name` of the Service that uses it.
    pub node_ports: BTreeMap<i64, String>,
}

/// Lists what would go wrong, before any write: StorageClasses, IngressClasses and
/// PriorityClasses that neither the target nor the restore has, unserved APIs, and nodePorts
/// already taken in the target.
pub fn preflight(plan: &[Planned], facts: &TargetFacts) -> Vec<String> {
    let restoring = |resource: &str| -> BTreeSet<String> {
        plan.iter()
            .filter(|p| p.skip.is_none() && p.target.group_resource() == resource)
            .map(|p| p.target.name.clone())
            .collect()
    };
    let restored_storage = restoring("storageclasses.storage.k8s.io");
    let restored_ingress = restoring("ingressclasses.networking.k8s.io");
    let restored_priority = restoring("priorityclasses.scheduling.k8s.io");

    let mut problems = BTreeSet::new();
    for item in plan {
        if let Some(reason) = &item.skip
            && reason.starts_with("the target does not serve")
        {
            problems.insert(format!(
                "{} {}: {reason}",
                item.source.kind,
                item.source.display_name()
            ));
            continue;
        }
        if item.skip.is_some() {
            continue;
        }
        let object = &item.object.to_value();
        let who = format!("{} {}", item.target.kind, item.target.display_name());

        let mut classes = Vec::new();
        match item.target.kind.as_str() {
            "PersistentVolumeClaim" | "PersistentVolume" => {
                classes.extend(object["spec"]["storageClassName"].as_str())
            }
            "StatefulSet" => {
                for template in object["spec"]["volumeClaimTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    classes.extend(template["spec"]["storageClassName"].as_str());
                }
            }
            _ => {}
        }
        for class in classes.into_iter().filter(|c| !c.is_empty()) {
            if !facts.storage_classes.contains(class) && !restored_storage.contains(class) {
                problems.insert(format!("{who}: StorageClass {class} does not exist in the target: create it or pass --storage-class-mappings {class}:NEW"));
            }
        }
        if item.target.kind == "Ingress"
            && let Some(class) = object["spec"]["ingressClassName"].as_str()
            && !facts.ingress_classes.contains(class)
            && !restored_ingress.contains(class)
        {
            problems.insert(format!(
                "{who}: IngressClass {class} does not exist in the target"
            ));
        }
        for spec in pod_specs(object) {
            if let Some(class) = spec["priorityClassName"].as_str()
                && !facts.priority_classes.contains(class)
                && !restored_priority.contains(class)
                && !matches!(class, "system-cluster-critical" | "system-node-critical")
            {
                problems.insert(format!(
                    "{who}: PriorityClass {class} does not exist in the target"
                ));
            }
        }
        if item.target.kind == "Service" {
            for port in object["spec"]["ports"].as_array().into_iter().flatten() {
                if let Some(node_port) = port["nodePort"].as_i64()
                    && let Some(holder) = facts.node_ports.get(&node_port)
                    && *holder != item.target.display_name()
                {
                    problems.insert(format!("{who}: nodePort {node_port} is already used by Service {holder} in the target"));
                }
            }
        }
    }
    problems.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> ManifestObject {
        ManifestObject {
            object: ObjectRef {
                group: group.into(),
                version: version.into(),
                resource: resource.into(),
                kind: kind.into(),
                namespace: namespace.map(str::to_string),
                name: name.into(),
            },
            key: String::new(),
            uid: format!("uid-{name}"),
            sha256: String::new(),
            size: 0,
        }
    }

    fn served() -> HashSet<String> {
        ["v1", "apps/v1", "networking.k8s.io/v1"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn plan_orders_by_phase_and_maps_namespaces() {
        let objects = vec![
            (
                entry(
                    "apps",
                    "v1",
                    "deployments",
                    "Deployment",
                    Some("shop"),
                    "web",
                ),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "uid": "u1"}, "spec": {}}),
            ),
            (
                entry("", "v1", "namespaces", "Namespace", None, "shop"),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            ),
        ];
        let options = PlanOptions {
            mappings: Mappings {
                namespaces: [("shop".to_string(), "shop-new".to_string())].into(),
                ..Mappings::default()
            },
            ..PlanOptions::default()
        };
        let planned = plan(objects, &served(), &[], &options);
        assert_eq!(planned[0].target.name, "shop-new");
        assert_eq!(planned[1].target.namespace.as_deref(), Some("shop-new"));
        assert_eq!(planned[1].object.to_value()["metadata"].get("uid"), None);
    }

    #[test]
    fn unserved_apis_convert_or_skip() {
        let objects = vec![
            (
                entry(
                    "extensions",
                    "v1beta1",
                    "ingresses",
                    "Ingress",
                    Some("a"),
                    "old",
                ),
                json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "old", "namespace": "a"},
                    "spec": {"backend": {"serviceName": "s", "servicePort": 80}}}),
            ),
            (
                entry(
                    "policy",
                    "v1beta1",
                    "podsecuritypolicies",
                    "PodSecurityPolicy",
                    None,
                    "psp",
                ),
                json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "psp"}}),
            ),
        ];
        let planned = plan(objects, &served(), &[], &PlanOptions::default());
        let ingress = planned.iter().find(|p| p.target.kind == "Ingress").unwrap();
        assert_eq!(ingress.target.api_version(), "networking.k8s.io/v1");
        assert!(ingress.skip.is_none());
        let psp = planned
            .iter()
            .find(|p| p.target.kind == "PodSecurityPolicy")
            .unwrap();
        assert!(
            psp.skip
                .as_deref()
                .unwrap()
                .contains("does not serve policy/v1beta1")
        );
    }

    #[test]
    fn preflight_lists_missing_classes_and_port_clashes() {
        let objects = vec![
            (
                entry(
                    "",
                    "v1",
                    "persistentvolumeclaims",
                    "PersistentVolumeClaim",
                    Some("db"),
                    "data",
                ),
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "db"},
                    "spec": {"storageClassName": "fast"}}),
            ),
            (
                entry("", "v1", "services", "Service", Some("web"), "front"),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front", "namespace": "web"},
                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
            ),
        ];
        let options = PlanOptions {
            sanitize: SanitizeOptions {
                preserve_node_ports: true,
            },
            ..PlanOptions::default()
        };
        let planned = plan(objects, &served(), &[], &options);
        let facts = TargetFacts {
            node_ports: [(30080, "other/svc".to_string())].into(),
            ..TargetFacts::default()
        };
        let problems = preflight(&planned, &facts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("StorageClass fast does not exist"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("nodePort 30080 is already used by Service other/svc"))
        );
    }

    #[test]
    fn crd_types_come_from_the_backup() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [{"name": "v1", "served": true}, {"name": "v0", "served": false}]}});
        let types = types_from_crds(&[(
            entry(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                None,
                "widgets.example.com",
            ),
            crd,
        )]);
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].plural, "widgets");
        assert!(types[0].namespaced);
    }
}
