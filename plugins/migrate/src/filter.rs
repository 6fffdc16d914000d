//! Backup and restore filters: namespaces (globs), resource types (kubectl names), the default
//! exclusions, owned objects, and the cluster-scoped objects that included objects need.

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::Value;

use crate::discovery::{ResourceType, find_type};
use crate::workload::pod_specs;

/// Namespaces left out unless named by `--include-namespaces` or `--include-system-namespaces`.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Resources left out unless named by `--include-resources`: they are recreated by the target
/// cluster itself (events, nodes, leases, endpoints) or are read-only status.
pub const DEFAULT_EXCLUDED_RESOURCES: [&str; 7] = [
    "events",
    "events.events.k8s.io",
    "nodes",
    "leases.coordination.k8s.io",
    "endpoints",
    "endpointslices.discovery.k8s.io",
    "componentstatuses",
];

/// Value of `--include-cluster-resources`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterResources {
    /// Only the cluster-scoped objects that the included namespaced objects need.
    #[default]
    Auto,
    /// Every cluster-scoped object of the included types.
    True,
    /// No cluster-scoped objects.
    False,
}

impl ClusterResources {
    /// Returns the flag value as typed.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterResources::Auto => "auto",
            ClusterResources::True => "true",
            ClusterResources::False => "false",
        }
    }
}

/// Namespace selection from include and exclude globs.
#[derive(Debug, Clone)]
pub struct NamespaceFilter {
    include: Option<GlobSet>,
    include_patterns: Vec<String>,
    exclude: GlobSet,
    include_system: bool,
}

impl NamespaceFilter {
    /// Builds the filter from `--include-namespaces` and `--exclude-namespaces` globs; an empty
    /// include list or `*` takes every namespace.
    pub fn new(
        include: &[String],
        exclude: &[String],
        include_system: bool,
    ) -> Result<NamespaceFilter, String> {
        let include_all = include.is_empty() || include.iter().any(|p| p == "*");
        Ok(NamespaceFilter {
            include: if include_all {
                None
            } else {
                Some(build_globs("--include-namespaces", include)?)
            },
            include_patterns: include.to_vec(),
            exclude: build_globs("--exclude-namespaces", exclude)?,
            include_system,
        })
    }

    /// Reports whether objects of `namespace` pass.
    pub fn allows(&self, namespace: &str) -> bool {
        if self.exclude.is_match(namespace) {
            return false;
        }
        let named = self.include_patterns.iter().any(|p| p == namespace);
        if SYSTEM_NAMESPACES.contains(&namespace) && !self.include_system && !named {
            return false;
        }
        match &self.include {
            None => true,
            Some(globs) => globs.is_match(namespace),
        }
    }
}

fn build_globs(flag: &str, patterns: &[String]) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern)
            .map_err(|error| format!("invalid glob {pattern:?} in {flag}: {error}"))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|error| format!("invalid globs in {flag}: {error}"))
}

/// Chooses the resource types to back up or restore from `--include-resources` and
/// `--exclude-resources`. Unknown names are errors that name the flag.
pub fn select_types(
    types: &[ResourceType],
    include: &[String],
    exclude: &[String],
) -> Result<Vec<ResourceType>, String> {
    let include_all = include.is_empty() || include.iter().any(|n| n == "*");
    let mut selected: Vec<ResourceType> = if include_all {
        let defaults = resolve_names(types, &DEFAULT_EXCLUDED_RESOURCES, None)?;
        types
            .iter()
            .filter(|t| t.is_listable() && !defaults.contains(&t.group_resource()))
            .cloned()
            .collect()
    } else {
        let named = resolve_names(types, include, Some("--include-resources"))?;
        types
            .iter()
            .filter(|t| t.is_listable() && named.contains(&t.group_resource()))
            .cloned()
            .collect()
    };

    let excluded = resolve_names(types, exclude, Some("--exclude-resources"))?;
    selected.retain(|t| !excluded.contains(&t.group_resource()));

    // Clusters before 1.22 serve the same Ingress and NetworkPolicy objects through
    // `extensions` as well; listing both groups would store each object twice.
    let snapshot = selected.clone();
    selected.retain(|t| {
        t.group != "extensions"
            || !snapshot.iter().any(|other| {
                other.group != "extensions" && other.plural == t.plural && other.kind == t.kind
            })
    });
    Ok(selected)
}

/// Maps names to `resource.group` values. With `flag` set an unknown name is an error; without,
/// unknown names are ignored (default exclusions of APIs the cluster does not serve).
fn resolve_names(
    types: &[ResourceType],
    names: &[impl AsRef<str>],
    flag: Option<&str>,
) -> Result<BTreeSet<String>, String> {
    let mut resolved = BTreeSet::new();
    for name in names {
        let name = name.as_ref();
        if name == "*" {
            continue;
        }
        match (find_type(types, name), flag) {
            (Some(found), _) => {
                resolved.insert(found.group_resource());
            }
            (None, Some(flag)) => {
                return Err(format!(
                    "unknown resource {name:?} in {flag}: use a name from `kubectl api-resources`, such as deployments, deploy or deployments.apps"
                ));
            }
            (None, None) => {}
        }
    }
    Ok(resolved)
}

/// Returns the UID of the controller that owns `object`, if any.
pub fn controller_owner_uid(object: &Value) -> Option<&str> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|owner| owner["controller"].as_bool() == Some(true))
        .and_then(|owner| owner["uid"].as_str())
}

/// A cluster-scoped object that an included object needs: `resource.group` and name.
pub type ClusterNeed = (String, String);

/// Lists the cluster-scoped objects `object` (of type `resource`) depends on: its namespace,
/// the CRD of a custom resource, PVs of PVCs, StorageClasses, IngressClasses, PriorityClasses
/// and ClusterRoles bound by RoleBindings.
pub fn cluster_needs(resource: &ResourceType, object: &Value) -> Vec<ClusterNeed> {
    let mut needs = Vec::new();
    let mut need = |resource: &str, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            needs.push((resource.to_string(), name.to_string()));
        }
    };

    need("namespaces", object["metadata"]["namespace"].as_str());
    if !resource.group.is_empty() && !BUILT_IN_GROUPS.contains(&resource.group.as_str()) {
        let crd = format!("{}.{}", resource.plural, resource.group);
        need(
            "customresourcedefinitions.apiextensions.k8s.io",
            Some(crd.as_str()),
        );
    }

    let spec = &object["spec"];
    match object["kind"].as_str().unwrap_or_default() {
        "PersistentVolumeClaim" => {
            need("persistentvolumes", spec["volumeName"].as_str());
            need(
                "storageclasses.storage.k8s.io",
                spec["storageClassName"].as_str(),
            );
        }
        "PersistentVolume" => need(
            "storageclasses.storage.k8s.io",
            spec["storageClassName"].as_str(),
        ),
        "StatefulSet" => {
            for template in spec["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                need(
                    "storageclasses.storage.k8s.io",
                    template["spec"]["storageClassName"].as_str(),
                );
            }
        }
        "Ingress" => need(
            "ingressclasses.networking.k8s.io",
            spec["ingressClassName"].as_str(),
        ),
        "RoleBinding" if object["roleRef"]["kind"] == "ClusterRole" => need(
            "clusterroles.rbac.authorization.k8s.io",
            object["roleRef"]["name"].as_str(),
        ),
        _ => {}
    }
    for pod_spec in pod_specs(object) {
        need(
            "priorityclasses.scheduling.k8s.io",
            pod_spec["priorityClassName"].as_str(),
        );
    }
    needs
}

/// API groups of Kubernetes itself; objects of other groups are custom resources with a CRD.
const BUILT_IN_GROUPS: [&str; 19] = [
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
    "authorization.k8s.io",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::resource;
    use serde_json::json;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn types() -> Vec<ResourceType> {
        vec![
            resource("", "Pod", "pods", &["po"], true),
            resource("", "Event", "events", &["ev"], true),
            resource("", "Node", "nodes", &["no"], false),
            resource("", "ConfigMap", "configmaps", &["cm"], true),
            resource("apps", "Deployment", "deployments", &["deploy"], true),
            resource("coordination.k8s.io", "Lease", "leases", &[], true),
        ]
    }

    #[test]
    fn namespace_globs_include_and_exclude() {
        let filter =
            NamespaceFilter::new(&strings(&["shop-*", "web"]), &strings(&["shop-old"]), false)
                .unwrap();
        assert!(filter.allows("shop-1"));
        assert!(filter.allows("web"));
        assert!(!filter.allows("shop-old"));
        assert!(!filter.allows("other"));
    }

    #[test]
    fn system_namespaces_need_naming() {
        let all = NamespaceFilter::new(&[], &[], false).unwrap();
        assert!(!all.allows("kube-system"));
        assert!(all.allows("default"));
        let named = NamespaceFilter::new(&strings(&["kube-system"]), &[], false).unwrap();
        assert!(named.allows("kube-system"));
        let flag = NamespaceFilter::new(&[], &[], true).unwrap();
        assert!(flag.allows("kube-public"));
    }

    #[test]
    fn invalid_glob_names_the_flag() {
        let error = NamespaceFilter::new(&strings(&["a[b"]), &[], false).unwrap_err();
        assert!(error.contains("--include-namespaces"), "{error}");
    }

    #[test]
    fn default_selection_leaves_out_events_nodes_leases() {
        let selected = select_types(&types(), &[], &[]).unwrap();
        let names: Vec<String> = selected.iter().map(|t| t.group_resource()).collect();
        assert_eq!(names, ["pods", "configmaps", "deployments.apps"]);
    }

    #[test]
    fn naming_a_default_exclusion_brings_it_back() {
        let selected = select_types(&types(), &strings(&["ev", "deploy"]), &[]).unwrap();
        let names: Vec<String> = selected.iter().map(|t| t.group_resource()).collect();
        assert_eq!(names, ["events", "deployments.apps"]);
    }

    #[test]
    fn exclusions_use_kubectl_names() {
        let selected = select_types(&types(), &[], &strings(&["po", "configmaps"])).unwrap();
        let names: Vec<String> = selected.iter().map(|t| t.group_resource()).collect();
        assert_eq!(names, ["deployments.apps"]);
    }

    #[test]
    fn unknown_resource_names_the_flag() {
        let error = select_types(&types(), &strings(&["widgets"]), &[]).unwrap_err();
        assert!(
            error.starts_with("unknown resource \"widgets\" in --include-resources"),
            "{error}"
        );
    }

    #[test]
    fn extensions_duplicates_are_left_out() {
        let types = vec![
            resource("extensions", "Ingress", "ingresses", &["ing"], true),
            resource("networking.k8s.io", "Ingress", "ingresses", &["ing"], true),
            resource("extensions", "Widget", "widgets", &[], true),
        ];
        let selected = select_types(&types, &[], &[]).unwrap();
        let names: Vec<String> = selected.iter().map(|t| t.group_resource()).collect();
        assert_eq!(names, ["ingresses.networking.k8s.io", "widgets.extensions"]);
    }

    #[test]
    fn controller_owner_is_found() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"uid": "a", "controller": false}, {"uid": "b", "controller": true}
        ]}});
        assert_eq!(controller_owner_uid(&pod), Some("b"));
        assert_eq!(controller_owner_uid(&json!({"metadata": {}})), None);
    }

    #[test]
    fn needs_of_a_pvc() {
        let pvcs = resource(
            "",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            &["pvc"],
            true,
        );
        let pvc = json!({"kind": "PersistentVolumeClaim", "metadata": {"namespace": "db", "name": "data"},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast"}});
        assert_eq!(
            cluster_needs(&pvcs, &pvc),
            [
                ("namespaces".to_string(), "db".to_string()),
                ("persistentvolumes".to_string(), "pv-1".to_string()),
                (
                    "storageclasses.storage.k8s.io".to_string(),
                    "fast".to_string()
                ),
            ]
        );
    }

    #[test]
    fn needs_of_custom_resources_and_bindings() {
        let routes = resource(
            "gateway.networking.k8s.io",
            "HTTPRoute",
            "httproutes",
            &[],
            true,
        );
        let route = json!({"kind": "HTTPRoute", "metadata": {"namespace": "web", "name": "r"}});
        assert!(cluster_needs(&routes, &route).contains(&(
            "customresourcedefinitions.apiextensions.k8s.io".to_string(),
            "httproutes.gateway.networking.k8s.io".to_string()
        )));

        let bindings = resource(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "rolebindings",
            &[],
            true,
        );
        let binding = json!({"kind": "RoleBinding", "metadata": {"namespace": "web", "name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "view"}});
        let needs = cluster_needs(&bindings, &binding);
        assert_eq!(needs.len(), 2);
        assert!(needs.contains(&(
            "clusterroles.rbac.authorization.k8s.io".to_string(),
            "view".to_string()
        )));
    }

    #[test]
    fn needs_of_priority_classes_in_templates() {
        let deployments = resource("apps", "Deployment", "deployments", &[], true);
        let deployment = json!({"kind": "Deployment", "metadata": {"namespace": "a", "name": "d"},
            "spec": {"template": {"spec": {"priorityClassName": "high", "containers": []}}}});
        assert!(cluster_needs(&deployments, &deployment).contains(&(
            "priorityclasses.scheduling.k8s.io".to_string(),
            "high".to_string()
        )));
    }
}
