//! API discovery: every served resource type in each group's preferred version, with the names
//! kubectl accepts for it (plural, singular, kind, short names, `resource.group`).

use kube::Client;
use kube::discovery::ApiResource;
use serde::Serialize;
use shared::{Result, ResultExt};

/// One resource type served by the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Preferred version of the group.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name, often empty in discovery, then the lowercase kind.
    pub singular: String,
    /// Short names such as `deploy`.
    pub short_names: Vec<String>,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Verbs the resource supports.
    pub verbs: Vec<String>,
}

impl ResourceType {
    /// Returns `resource.group`, or just `resource` for the core group.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Reports whether objects can be listed (and so backed up).
    pub fn is_listable(&self) -> bool {
        self.verbs.iter().any(|v| v == "list")
    }

    /// Reports whether `name` names this type as kubectl would accept it: plural, singular,
    /// kind or short name, each optionally followed by `.group` or `.version.group`.
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.trim().to_ascii_lowercase();
        let (base, qualifier) = match name.split_once('.') {
            Some((base, rest)) => (base.to_string(), Some(rest.to_string())),
            None => (name.clone(), None),
        };
        let singular = if self.singular.is_empty() {
            self.kind.to_ascii_lowercase()
        } else {
            self.singular.clone()
        };
        let base_matches = base == self.plural
            || base == singular
            || base == self.kind.to_ascii_lowercase()
            || self.short_names.contains(&base);
        if !base_matches {
            return false;
        }
        match qualifier {
            None => true,
            Some(rest) => rest == self.group || rest == format!("{}.{}", self.version, self.group),
        }
    }

    /// Returns the kube `ApiResource` for `Api<DynamicObject>`.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: if self.group.is_empty() {
                self.version.clone()
            } else {
                format!("{}/{}", self.group, self.version)
            },
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// Finds the type among `types` that `name` names; several matches prefer the core group,
/// then the first in discovery order, as kubectl does.
pub fn find_type<'a>(types: &'a [ResourceType], name: &str) -> Option<&'a ResourceType> {
    let mut matches = types.iter().filter(|t| t.matches_name(name));
    let first = matches.next()?;
    if first.group.is_empty() {
        return Some(first);
    }
    Some(
        types
            .iter()
            .filter(|t| t.matches_name(name))
            .find(|t| t.group.is_empty())
            .unwrap_or(first),
    )
}

/// Lists every resource type of the cluster in each group's preferred version. Subresources
/// (`pods/log`) are left out.
pub async fn collect_resource_types(client: &Client) -> Result<Vec<ResourceType>> {
    let mut types = Vec::new();

    let core = client
        .list_core_api_versions()
        .await
        .context(|| "failed to discover the core API versions".to_string())?;
    let core_version = core
        .versions
        .first()
        .cloned()
        .unwrap_or_else(|| "v1".into());
    let resources = client
        .list_core_api_resources(&core_version)
        .await
        .context(|| format!("failed to discover the resources of core/{core_version}"))?;
    types.extend(convert_resources("", &core_version, resources.resources));

    let groups = client
        .list_api_groups()
        .await
        .context(|| "failed to discover the API groups".to_string())?;
    for group in groups.groups {
        let Some(preferred) = group
            .preferred_version
            .clone()
            .or_else(|| group.versions.first().cloned())
        else {
            continue;
        };
        let resources = client
            .list_api_group_resources(&preferred.group_version)
            .await
            .context(|| {
                format!(
                    "failed to discover the resources of {}",
                    preferred.group_version
                )
            })?;
        types.extend(convert_resources(
            &group.name,
            &preferred.version,
            resources.resources,
        ));
    }
    Ok(types)
}

/// Lists every group/version the cluster serves (`v1`, `apps/v1`, `networking.k8s.io/v1`).
pub async fn collect_served_versions(client: &Client) -> Result<Vec<String>> {
    let mut served: Vec<String> = client
        .list_core_api_versions()
        .await
        .context(|| "failed to discover the core API versions".to_string())?
        .versions;
    let groups = client
        .list_api_groups()
        .await
        .context(|| "failed to discover the API groups".to_string())?;
    for group in groups.groups {
        served.extend(group.versions.into_iter().map(|v| v.group_version));
    }
    Ok(served)
}

fn convert_resources(
    group: &str,
    version: &str,
    resources: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource>,
) -> Vec<ResourceType> {
    resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: r.kind,
            plural: r.name,
            singular: r.singular_name,
            short_names: r.short_names.unwrap_or_default(),
            namespaced: r.namespaced,
            verbs: r.verbs,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn resource(
        group: &str,
        kind: &str,
        plural: &str,
        short: &[&str],
        namespaced: bool,
    ) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: String::new(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced,
            verbs: vec!["list".into(), "create".into(), "get".into()],
        }
    }

    #[test]
    fn names_match_like_kubectl() {
        let deployments = resource("apps", "Deployment", "deployments", &["deploy"], true);
        for name in [
            "deployments",
            "deployment",
            "Deployment",
            "deploy",
            "deployments.apps",
            "deploy.v1.apps",
        ] {
            assert!(deployments.matches_name(name), "{name}");
        }
        assert!(!deployments.matches_name("deployments.extensions"));
        assert!(!deployments.matches_name("pods"));
    }

    #[test]
    fn find_type_prefers_the_core_group() {
        let types = vec![
            resource("events.k8s.io", "Event", "events", &["ev"], true),
            resource("", "Event", "events", &["ev"], true),
        ];
        assert_eq!(find_type(&types, "events").unwrap().group, "");
        assert_eq!(
            find_type(&types, "events.events.k8s.io").unwrap().group,
            "events.k8s.io"
        );
    }
}
