//! Scanning workloads in the cluster: fetching with typed APIs, then folding pods and
//! ReplicaSets into the workloads that own them.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use shared::{Result, ResultExt};

use super::WorkloadReport;
use super::detect::{ConfigMaps, inspect_pod_spec};

/// One fetched object, reduced to what the scan needs.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Object kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, which owner references point at.
    pub uid: String,
    /// The controlling owner reference, if any.
    pub owner: Option<OwnerReference>,
    /// Pod spec of the object or its template.
    pub spec: Option<PodSpec>,
}

/// Lists the workloads in `namespace` (all namespaces for `None`) and returns one report per
/// owning workload.
pub async fn scan(
    client: Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<WorkloadReport>> {
    let all = ListParams::default();
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let (deployments, statefulsets, daemonsets, replicasets, jobs, cronjobs, pods, config_maps) = futures::try_join!(
        list::<Deployment>(&client, namespace, &params),
        list::<StatefulSet>(&client, namespace, &params),
        list::<DaemonSet>(&client, namespace, &params),
        list::<ReplicaSet>(&client, namespace, &params),
        list::<Job>(&client, namespace, &params),
        list::<CronJob>(&client, namespace, &params),
        list::<Pod>(&client, namespace, &params),
        // Scripts can live in any ConfigMap a workload mounts, so the selector does not apply.
        list::<ConfigMap>(&client, namespace, &all),
    )?;

    let mut entries = Vec::new();
    entries.extend(deployments.into_iter().map(|object| {
        let spec = object.spec.template.spec;
        entry("Deployment", object.metadata, spec)
    }));
    entries.extend(statefulsets.into_iter().map(|object| {
        let spec = object.spec.template.spec;
        entry("StatefulSet", object.metadata, spec)
    }));
    entries.extend(daemonsets.into_iter().map(|object| {
        let spec = object.spec.template.spec;
        entry("DaemonSet", object.metadata, spec)
    }));
    entries.extend(replicasets.into_iter().filter_map(|object| {
        // Old revisions of a Deployment keep their template at zero replicas; scanning them
        // would report dependencies the Deployment no longer has.
        let old_revision = object
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|owners| !owners.is_empty())
            && object.spec.replicas == Some(0);
        if old_revision {
            return None;
        }
        let spec = object.spec.template.and_then(|template| template.spec);
        Some(entry("ReplicaSet", object.metadata, spec))
    }));
    entries.extend(jobs.into_iter().map(|object| {
        let spec = object.spec.and_then(|spec| spec.template.spec);
        entry("Job", object.metadata, spec)
    }));
    entries.extend(cronjobs.into_iter().map(|object| {
        let spec = object
            .spec
            .job_template
            .spec
            .and_then(|spec| spec.template.spec);
        entry("CronJob", object.metadata, spec)
    }));
    entries.extend(
        pods.into_iter()
            .map(|object| entry("Pod", object.metadata, object.spec)),
    );

    let mut scripts: HashMap<String, ConfigMaps> = HashMap::new();
    for config_map in config_maps {
        let namespace = config_map.metadata.namespace.unwrap_or_default();
        let name = config_map.metadata.name.unwrap_or_default();
        scripts
            .entry(namespace)
            .or_default()
            .insert(name, config_map.data.unwrap_or_default());
    }
    Ok(fold_into_owners(&entries, &scripts))
}

async fn list<K>(client: &Client, namespace: Option<&str>, params: &ListParams) -> Result<Vec<K>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let plural = K::plural(&());
    let group = K::group(&());
    let resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let list = api.list(params).await.context(|| match namespace {
        Some(namespace) => format!("failed to list {resource} in namespace {namespace}"),
        None => format!("failed to list {resource} in all namespaces"),
    })?;
    Ok(list.items)
}

fn entry(kind: &str, metadata: ObjectMeta, spec: Option<PodSpec>) -> Entry {
    let owner = metadata.owner_references.as_ref().and_then(|owners| {
        owners
            .iter()
            .find(|owner| owner.controller == Some(true))
            .or_else(|| owners.first())
            .cloned()
    });
    Entry {
        kind: kind.to_string(),
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        uid: metadata.uid.unwrap_or_default(),
        owner,
        spec,
    }
}

/// Maximum owner chain followed; real chains are at most Pod, Job, CronJob or Pod,
/// ReplicaSet, Deployment, so this only stops reference cycles.
const MAX_OWNER_DEPTH: usize = 8;

/// Groups entries under their top owner and merges their findings. An owner that was not
/// fetched (a kind this scan does not list) still becomes the reported workload.
pub fn fold_into_owners(
    entries: &[Entry],
    config_maps: &HashMap<String, ConfigMaps>,
) -> Vec<WorkloadReport> {
    let no_config_maps = ConfigMaps::new();
    let by_uid: HashMap<&str, &Entry> = entries
        .iter()
        .filter(|entry| !entry.uid.is_empty())
        .map(|entry| (entry.uid.as_str(), entry))
        .collect();

    let mut grouped: BTreeMap<(String, String, String), Vec<super::detect::Finding>> =
        BTreeMap::new();
    for entry in entries {
        let root = root_owner(entry, &by_uid);
        let namespace_config_maps = config_maps.get(&entry.namespace).unwrap_or(&no_config_maps);
        let findings = entry
            .spec
            .as_ref()
            .map(|spec| inspect_pod_spec(spec, namespace_config_maps))
            .unwrap_or_default();
        grouped.entry(root).or_default().extend(findings);
    }

    grouped
        .into_iter()
        .map(|((namespace, kind, name), mut findings)| {
            findings.sort();
            findings.dedup();
            WorkloadReport {
                kind,
                namespace: Some(namespace),
                name,
                source: "cluster".to_string(),
                findings,
            }
        })
        .collect()
}

/// Returns (namespace, kind, name) of the top owner of `entry`.
fn root_owner(entry: &Entry, by_uid: &HashMap<&str, &Entry>) -> (String, String, String) {
    let mut current = entry;
    for _ in 0..MAX_OWNER_DEPTH {
        let Some(owner) = &current.owner else { break };
        match by_uid.get(owner.uid.as_str()) {
            Some(parent) => current = parent,
            None => {
                return (
                    current.namespace.clone(),
                    owner.kind.clone(),
                    owner.name.clone(),
                );
            }
        }
    }
    (
        current.namespace.clone(),
        current.kind.clone(),
        current.name.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, HostPathVolumeSource, Volume, VolumeMount};

    fn socket_spec() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "agent".into(),
                image: Some("agent:1".into()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "sock".into(),
                    mount_path: "/var/run/docker.sock".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "sock".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/var/run/docker.sock".into(),
                    type_: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn owned(kind: &str, name: &str, uid: &str, owner: Option<(&str, &str, &str)>) -> Entry {
        Entry {
            kind: kind.into(),
            namespace: "ops".into(),
            name: name.into(),
            uid: uid.into(),
            owner: owner.map(|(kind, name, uid)| OwnerReference {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }),
            spec: Some(socket_spec()),
        }
    }

    #[test]
    fn pods_fold_into_deployment() {
        let entries = vec![
            owned("Deployment", "web", "d1", None),
            owned(
                "ReplicaSet",
                "web-5d8",
                "r1",
                Some(("Deployment", "web", "d1")),
            ),
            owned(
                "Pod",
                "web-5d8-abc",
                "p1",
                Some(("ReplicaSet", "web-5d8", "r1")),
            ),
            owned(
                "Pod",
                "web-5d8-def",
                "p2",
                Some(("ReplicaSet", "web-5d8", "r1")),
            ),
        ];
        let reports = fold_into_owners(&entries, &HashMap::new());
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind, "Deployment");
        assert_eq!(reports[0].name, "web");
        assert_eq!(reports[0].findings.len(), 1);
    }

    #[test]
    fn unknown_owner_kind_reported() {
        let entries = vec![owned(
            "Pod",
            "canary-1",
            "p1",
            Some(("Rollout", "canary", "x9")),
        )];
        let reports = fold_into_owners(&entries, &HashMap::new());
        assert_eq!(reports[0].kind, "Rollout");
        assert_eq!(reports[0].name, "canary");
    }

    #[test]
    fn owner_cycle_stops() {
        let entries = vec![
            owned("Pod", "a", "u1", Some(("Pod", "b", "u2"))),
            owned("Pod", "b", "u2", Some(("Pod", "a", "u1"))),
        ];
        assert_eq!(fold_into_owners(&entries, &HashMap::new()).len(), 2);
    }
}
