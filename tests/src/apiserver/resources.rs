//! The catalogue of served resources: the built-in kinds of a v1.32 cluster plus established CRDs.

use std::collections::BTreeMap;

/// Verbs of a resource that supports everything.
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of namespaces, which have no deletecollection.
const NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// One resource as discovery describes it, with where its objects are stored.
#[derive(Debug, Clone)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    /// Plural name, as in URLs: `deployments`.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresources such as `status`, `scale` and `log`.
    pub subresources: Vec<String>,
    /// Group and version the objects are stored in; differs only for legacy Ingress versions.
    pub storage_group: String,
    pub storage_version: String,
    /// True for kinds defined by a CustomResourceDefinition.
    pub custom: bool,
    /// `additionalPrinterColumns` of a custom resource version.
    pub printer_columns: Vec<serde_json::Value>,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|sub| sub == name)
    }

    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|allowed| allowed == verb)
    }
}

/// Compact row of the built-in table: group, version, plural, kind, namespaced, short names,
/// categories, subresources, verbs.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const ALL_CAT: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Built-in resources of the group-versions a v1.32 cluster serves, with their discovery data.
#[rustfmt::skip]
const BUILT_IN: &[Row] = &[
    ("", "v1", "bindings", "Binding", true, NONE, NONE, NONE, &["create"]),
    ("", "v1", "componentstatuses", "ComponentStatus", false, &["cs"], NONE, NONE, &["get", "list"]),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], NONE, NONE, ALL),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], NONE, NONE, ALL),
    ("", "v1", "events", "Event", true, &["ev"], NONE, NONE, ALL),
    ("", "v1", "limitranges", "LimitRange", true, &["limits"], NONE, NONE, ALL),
    ("", "v1", "namespaces", "Namespace", false, &["ns"], NONE, &["finalize", "status"], NO_COLLECTION),
    ("", "v1", "nodes", "Node", false, &["no"], NONE, &["proxy", "status"], ALL),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], NONE, &["status"], ALL),
    ("", "v1", "persistentvolumes", "PersistentVolume", false, &["pv"], NONE, &["status"], ALL),
    ("", "v1", "pods", "Pod", true, &["po"], ALL_CAT,
        &["attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"], ALL),
    ("", "v1", "podtemplates", "PodTemplate", true, NONE, NONE, NONE, ALL),
    ("", "v1", "replicationcontrollers", "ReplicationController", true, &["rc"], ALL_CAT, &["scale", "status"], ALL),
    ("", "v1", "resourcequotas", "ResourceQuota", true, &["quota"], NONE, &["status"], ALL),
    ("", "v1", "secrets", "Secret", true, NONE, NONE, NONE, ALL),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], NONE, &["token"], ALL),
    ("", "v1", "services", "Service", true, &["svc"], ALL_CAT, &["proxy", "status"], ALL),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", false, NONE, &["api-extensions"], NONE, ALL),
    ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", false, NONE, &["api-extensions"], &["status"], ALL),
    ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", false, NONE, &["api-extensions"], NONE, ALL),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false, NONE, &["api-extensions"], NONE, ALL),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["crd", "crds"], &["api-extensions"], &["status"], ALL),
    ("apps", "v1", "controllerrevisions", "ControllerRevision", true, NONE, NONE, NONE, ALL),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], ALL_CAT, &["status"], ALL),
    ("apps", "v1", "deployments", "Deployment", true, &["deploy"], ALL_CAT, &["scale", "status"], ALL),
    ("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], ALL_CAT, &["scale", "status"], ALL),
    ("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], ALL_CAT, &["scale", "status"], ALL),
    ("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", false, NONE, NONE, NONE, &["create"]),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, NONE, NONE, NONE, &["create"]),
    ("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, NONE, NONE, NONE, &["create"]),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], ALL_CAT, &["status"], ALL),
    ("batch", "v1", "cronjobs", "CronJob", true, &["cj"], ALL_CAT, &["status"], ALL),
    ("batch", "v1", "jobs", "Job", true, NONE, ALL_CAT, &["status"], ALL),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, NONE, NONE, NONE, ALL),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, NONE, NONE, NONE, ALL),
    ("events.k8s.io", "v1", "events", "Event", true, &["ev"], NONE, NONE, ALL),
    ("networking.k8s.io", "v1", "ingressclasses", "IngressClass", false, NONE, NONE, NONE, ALL),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"], NONE, &["status"], ALL),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], NONE, NONE, ALL),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], NONE, &["status"], ALL),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, NONE, NONE, NONE, ALL),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, NONE, NONE, NONE, ALL),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, NONE, NONE, NONE, ALL),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", true, NONE, NONE, NONE, ALL),
    ("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false, &["pc"], NONE, NONE, ALL),
    ("storage.k8s.io", "v1", "csidrivers", "CSIDriver", false, NONE, NONE, NONE, ALL),
    ("storage.k8s.io", "v1", "csinodes", "CSINode", false, NONE, NONE, NONE, ALL),
    ("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", true, NONE, NONE, NONE, ALL),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, &["sc"], NONE, NONE, ALL),
    ("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", false, NONE, NONE, &["status"], ALL),
];

/// Removed group-versions that [`Registry::new`] can serve on request, each with Ingress only.
pub(crate) const LEGACY_GROUP_VERSIONS: &[&str] =
    &["extensions/v1beta1", "networking.k8s.io/v1beta1"];

/// All served resources, keyed by (group, version, plural).
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    resources: BTreeMap<(String, String, String), ResourceType>,
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

impl Registry {
    /// Builds the catalogue of built-in resources plus the requested legacy group-versions.
    pub fn new(extra_group_versions: &[String]) -> Result<Registry, String> {
        let mut resources = BTreeMap::new();
        for &(group, version, plural, kind, namespaced, short, categories, subresources, verbs) in
            BUILT_IN
        {
            let resource = ResourceType {
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                singular: kind.to_lowercase(),
                kind: kind.to_string(),
                namespaced,
                short_names: owned(short),
                categories: owned(categories),
                verbs: owned(verbs),
                subresources: owned(subresources),
                storage_group: group.to_string(),
                storage_version: version.to_string(),
                custom: false,
                printer_columns: Vec::new(),
            };
            resources.insert(
                (group.to_string(), version.to_string(), plural.to_string()),
                resource,
            );
        }

        for group_version in extra_group_versions {
            if !LEGACY_GROUP_VERSIONS.contains(&group_version.as_str()) {
                return Err(format!(
                    "unsupported extra group-version {group_version:?}: use one of {}",
                    LEGACY_GROUP_VERSIONS.join(", ")
                ));
            }
            let (group, version) = group_version
                .split_once('/')
                .expect("legacy group-versions contain a slash");
            let ingress = ResourceType {
                group: group.to_string(),
                version: version.to_string(),
                plural: "ingresses".to_string(),
                singular: "ingress".to_string(),
                kind: "Ingress".to_string(),
                namespaced: true,
                short_names: owned(&["ing"]),
                categories: Vec::new(),
                verbs: owned(ALL),
                subresources: owned(&["status"]),
                storage_group: "networking.k8s.io".to_string(),
                storage_version: "v1".to_string(),
                custom: false,
                printer_columns: Vec::new(),
            };
            resources.insert(
                (
                    group.to_string(),
                    version.to_string(),
                    "ingresses".to_string(),
                ),
                ingress,
            );
        }
        Ok(Registry { resources })
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.resources
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    pub fn insert(&mut self, resource: ResourceType) {
        self.resources.insert(
            (
                resource.group.clone(),
                resource.version.clone(),
                resource.plural.clone(),
            ),
            resource,
        );
    }

    /// Removes every version of a custom resource.
    pub fn remove_custom(&mut self, group: &str, plural: &str) {
        self.resources
            .retain(|(g, _, p), resource| !(resource.custom && g == group && p == plural));
    }

    /// Returns the served resources of one group-version, sorted by plural name.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.resources
            .values()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// Returns the served groups with their versions, the preferred one first: the core group
    /// is not included. Groups are in a stable order: built-ins in catalogue order, then CRDs.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for resource in self.resources.values() {
            if resource.group.is_empty() {
                continue;
            }
            match groups
                .iter_mut()
                .find(|(group, _)| *group == resource.group)
            {
                Some((_, versions)) => {
                    if !versions.contains(&resource.version) {
                        versions.push(resource.version.clone());
                    }
                }
                None => groups.push((resource.group.clone(), vec![resource.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| compare_versions(b, a));
        }
        groups
    }
}

/// Orders Kubernetes versions by priority: GA above beta above alpha, higher numbers first.
pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn rank(version: &str) -> (u32, u32, u32) {
        let rest = version.strip_prefix('v').unwrap_or(version);
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major = digits.parse().unwrap_or(0);
        let tail = &rest[digits.len()..];
        let (stage, minor) = if let Some(number) = tail.strip_prefix("beta") {
            (1, number.parse().unwrap_or(0))
        } else if let Some(number) = tail.strip_prefix("alpha") {
            (0, number.parse().unwrap_or(0))
        } else {
            (2, 0)
        };
        (stage, major, minor)
    }
    rank(a).cmp(&rank(b))
}
