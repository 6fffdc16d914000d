//! `restore create`: read and verify a backup, plan it, check the target, then create the
//! objects phase by phase with bounded concurrency, and record each object's outcome.

pub mod plan;
pub mod result;
pub mod selector;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;
use shared::{Error, Result, ResultExt};

use crate::cli::ExistingPolicy;
use crate::discovery::{ResourceType, collect_resource_types, collect_served_versions, find_type};
use crate::filter::NamespaceFilter;
use crate::format::{self, Manifest, ManifestObject, ObjectRef};
use crate::order::{Phase, owner_waves};
use crate::sanitize::rebuild_owner_references;
use crate::store::Store;

use plan::{PackedObject, PlanOptions, Planned, TargetFacts};
use result::{ItemResult, Outcome, RestoreResult};
use selector::{LabelSelector, labels_of};

/// Settings of one restore: the backup, filters, mappings and policies.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub name: String,
    pub backup: String,
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    pub selector: Option<String>,
    pub include_system_namespaces: bool,
    pub plan: PlanOptions,
    pub existing: ExistingPolicy,
    pub dry_run: bool,
    pub concurrency: usize,
    pub crd_timeout: Duration,
    pub target_context: Option<String>,
    pub target_server: String,
    /// Location settings and agent flags for restoring volume data; `None` restores none.
    pub volumes: Option<crate::volumes::VolumeRestore>,
}

/// Reads a complete backup: its manifest and every object, each checked against its SHA-256.
/// A missing manifest, a missing object or a wrong hash is an error, before anything else.
pub async fn read_backup(
    store: &Store,
    name: &str,
) -> Result<(Manifest, Vec<(ManifestObject, Value)>)> {
    let manifest = read_manifest(store, name).await?;
    let mut objects = Vec::with_capacity(manifest.objects.len());
    for_each_object(store, name, manifest.objects.clone(), |entry, object| {
        objects.push((entry, object));
        Ok(())
    })
    .await?;
    Ok((manifest, objects))
}

/// Reads the given objects of backup `name` in order, several at a time, checks each against
/// its SHA-256 and hands it to `visit`. Only the objects in flight are held in memory.
async fn for_each_object(
    store: &Store,
    name: &str,
    entries: Vec<ManifestObject>,
    mut visit: impl FnMut(ManifestObject, Value) -> Result<()>,
) -> Result<()> {
    let mut objects = stream::iter(entries)
        .map(|entry| async move {
            let bytes = store.get(&entry.key).await?;
            if format::sha256_hex(&bytes) != entry.sha256 {
                return Err(Error::failed(format!(
                    "backup {name} is damaged: {} does not match its SHA-256 in the manifest; run `kubectl migrate backup verify {name}`",
                    entry.key
                )));
            }
            let object: Value = serde_json::from_slice(&bytes)
                .map_err(|error| Error::failed(format!("invalid JSON in {}: {error}", entry.key)))?;
            Ok((entry, object))
        })
        .buffered(32);
    while let Some(next) = objects.next().await {
        let (entry, object) = next?;
        visit(entry, object)?;
    }
    Ok(())
}

/// Reads the manifest of a backup; a backup with objects but no manifest is incomplete.
pub async fn read_manifest(store: &Store, name: &str) -> Result<Manifest> {
    format::validate_name("backup", name).map_err(Error::usage)?;
    match store.get(&format::manifest_key(name)).await {
        Ok(bytes) => Manifest::parse(name, &bytes).map_err(Error::failed),
        Err(error) if error.is_not_found() => {
            let partial = store.list(&format::backup_prefix(name)).await?;
            if partial.is_empty() {
                Err(Error::failed(format!(
                    "backup {name} not found in {}: list backups with `kubectl migrate backup get`",
                    store.url()
                )))
            } else {
                Err(Error::failed(format!(
                    "backup {name} in {} is incomplete (it has no manifest): it was interrupted or failed and cannot be restored",
                    store.url()
                )))
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// The restore's namespace, resource and label filters.
struct ObjectFilter {
    namespaces: NamespaceFilter,
    include: HashSet<String>,
    exclude: HashSet<String>,
    selector: Option<LabelSelector>,
}

impl ObjectFilter {
    fn new(request: &RestoreRequest, types: &[ResourceType]) -> Result<ObjectFilter> {
        let namespaces = NamespaceFilter::new(
            &request.include_namespaces,
            &request.exclude_namespaces,
            true,
        )
        .map_err(Error::usage)?;
        let resolve = |names: &[String], flag: &str| -> Result<HashSet<String>> {
            names
                .iter()
                .filter(|n| *n != "*")
                .map(|name| {
                    find_type(types, name)
                        .map(ResourceType::group_resource)
                        .ok_or_else(|| Error::usage(format!("unknown resource {name:?} in {flag}: use a name from `kubectl api-resources`")))
                })
                .collect()
        };
        Ok(ObjectFilter {
            namespaces,
            include: resolve(&request.include_resources, "--include-resources")?,
            exclude: resolve(&request.exclude_resources, "--exclude-resources")?,
            selector: match &request.selector {
                Some(text) => Some(LabelSelector::parse(text).map_err(Error::usage)?),
                None => None,
            },
        })
    }

    /// Reports whether an object passes every filter.
    fn allows(&self, entry: &ManifestObject, object: &Value) -> bool {
        let resource = entry.object.group_resource();
        let namespace_ok = match &entry.object.namespace {
            Some(namespace) => self.namespaces.allows(namespace),
            None if entry.object.resource == "namespaces" => {
                self.namespaces.allows(&entry.object.name)
            }
            None => true,
        };
        namespace_ok
            && (self.include.is_empty() || self.include.contains(&resource))
            && !self.exclude.contains(&resource)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&labels_of(object)))
    }
}

/// Runs a restore and returns its result (saved by the caller).
pub async fn create_restore(
    client: &Client,
    store: &Store,
    request: &RestoreRequest,
) -> Result<RestoreResult> {
    let started_at = format::now_rfc3339();
    let mut manifest = read_manifest(store, &request.backup).await?;
    let entries = std::mem::take(&mut manifest.objects);

    // CRDs and PersistentVolumes are read first: CRDs define types the filters and the plan
    // need, and which PVs are restored decides how claims are planned.
    let mut types = collect_resource_types(client).await?;
    let mut prerequisites = Vec::new();
    let prerequisite_entries = entries
        .iter()
        .filter(|e| {
            matches!(
                e.object.group_resource().as_str(),
                "customresourcedefinitions.apiextensions.k8s.io" | "persistentvolumes"
            )
        })
        .cloned()
        .collect();
    for_each_object(
        store,
        &request.backup,
        prerequisite_entries,
        |entry, object| {
            prerequisites.push((entry, object));
            Ok(())
        },
    )
    .await?;
    let crd_types = plan::types_from_crds(&prerequisites);
    types.extend(crd_types.iter().cloned());
    let served: HashSet<String> = collect_served_versions(client).await?.into_iter().collect();
    let filter = ObjectFilter::new(request, &types)?;
    let restored_volumes = prerequisites
        .iter()
        .filter(|(entry, object)| {
            entry.object.group_resource() == "persistentvolumes" && filter.allows(entry, object)
        })
        .map(|(entry, _)| entry.object.name.clone())
        .collect();
    drop(prerequisites);

    // Every object is read, verified and planned one at a time, and kept only in its sanitized,
    // serialized form: every hash is checked before the first write, and memory stays near the
    // size of the sanitized objects.
    let planner = plan::Planner {
        served: &served,
        crd_types: &crd_types,
        options: &request.plan,
        restored_volumes,
    };
    let mut planned = Vec::new();
    for_each_object(store, &request.backup, entries, |entry, object| {
        if filter.allows(&entry, &object) {
            planned.push(planner.plan_one(entry, object));
        }
        Ok(())
    })
    .await?;
    planned.sort_by(|a, b| (a.phase, &a.target).cmp(&(b.phase, &b.target)));
    add_missing_namespaces(&mut planned);

    // Pre-flight: list every problem before the first write.
    let facts = collect_target_facts(client).await;
    let preflight = plan::preflight(&planned, &facts);
    for problem in &preflight {
        tracing::warn!("pre-flight: {problem}");
    }

    let bar = shared::progress::bar(planned.len() as u64, "restoring");
    let uid_map: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut items: Vec<ItemResult> = Vec::with_capacity(planned.len());
    // `planned` is sorted by phase: each phase's objects are moved out in turn, not copied.
    let mut remaining = planned.into_iter().peekable();
    while let Some(first) = remaining.next() {
        let phase = first.phase;
        let mut members = vec![first];
        while let Some(next) = remaining.next_if(|p| p.phase == phase) {
            members.push(next);
        }
        if phase == Phase::Workloads {
            // Pods with emptyDir data go first, so their controllers adopt them instead of
            // creating empty ones.
            let pods = crate::volumes::restore_pods_with_data(
                client,
                store,
                request,
                &mut members,
                &uid_map,
            )
            .await?;
            bar.inc(pods.len() as u64);
            items.extend(pods);
        }
        let outcomes = restore_phase(client, request, members, &uid_map, &bar).await;
        let created_crds: Vec<String> = outcomes
            .iter()
            .filter(|i| {
                i.resource == "customresourcedefinitions.apiextensions.k8s.io"
                    && i.outcome == Outcome::Created
            })
            .map(|i| i.name.clone())
            .collect();
        items.extend(outcomes);

        if phase == Phase::CustomResourceDefinitions && !request.dry_run {
            wait_for_crds(client, &created_crds, request.crd_timeout).await?;
        }
        if phase == Phase::Storage {
            restore_volume_data(client, store, request).await?;
        }
    }
    bar.finish_and_clear();

    Ok(RestoreResult {
        name: request.name.clone(),
        backup: request.backup.clone(),
        started_at,
        completed_at: format::now_rfc3339(),
        target_context: request.target_context.clone(),
        target_server: request.target_server.clone(),
        dry_run: request.dry_run,
        existing_resource_policy: match request.existing {
            ExistingPolicy::None => "none".into(),
            ExistingPolicy::Update => "update".into(),
        },
        preflight,
        counts: RestoreResult::count(&items),
        items,
    })
}

/// Restores the volume data of the backup's PVCs, between the storage phase and the workloads.
async fn restore_volume_data(
    client: &Client,
    store: &Store,
    request: &RestoreRequest,
) -> Result<()> {
    crate::volumes::restore_step(client, store, request).await
}

/// Adds a Namespace for every target namespace that objects need but the backup lacks.
fn add_missing_namespaces(planned: &mut Vec<Planned>) {
    let present: HashSet<String> = planned
        .iter()
        .filter(|p| p.target.group_resource() == "namespaces")
        .map(|p| p.target.name.clone())
        .collect();
    let needed: std::collections::BTreeSet<String> = planned
        .iter()
        .filter(|p| p.skip.is_none())
        .filter_map(|p| p.target.namespace.clone())
        .filter(|n| !present.contains(n))
        .collect();
    for namespace in needed {
        let target = ObjectRef {
            group: String::new(),
            version: "v1".into(),
            resource: "namespaces".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: namespace.clone(),
        };
        planned.push(Planned {
            source: target.clone(),
            source_uid: String::new(),
            owner_uids: Vec::new(),
            object: PackedObject::new(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})),
            target,
            phase: Phase::Namespaces,
            skip: crate::sanitize::skip_reason(&serde_json::json!({"kind": "Namespace", "metadata": {"name": namespace}}))
                .map(str::to_string),
            note: Some("not in the backup: created for the objects in it".into()),
        });
    }
    planned.sort_by(|a, b| (a.phase, &a.target).cmp(&(b.phase, &b.target)));
}

/// Creates the objects of one phase: owners in earlier waves, each wave concurrently.
async fn restore_phase(
    client: &Client,
    request: &RestoreRequest,
    members: Vec<Planned>,
    uid_map: &Arc<Mutex<HashMap<String, String>>>,
    bar: &indicatif::ProgressBar,
) -> Vec<ItemResult> {
    let ownership: Vec<(String, Vec<String>)> = members
        .iter()
        .map(|p| (p.source_uid.clone(), p.owner_uids.clone()))
        .collect();
    let waves = owner_waves(&ownership);
    let wave_count = waves.iter().copied().max().map_or(0, |w| w + 1);
    let mut slots: Vec<Option<ItemResult>> = vec![None; members.len()];

    for wave in 0..wave_count {
        let indexes: Vec<usize> = (0..members.len()).filter(|&i| waves[i] == wave).collect();
        let results: Vec<(usize, ItemResult)> = stream::iter(indexes)
            .map(|index| {
                let item = &members[index];
                async move {
                    let result = restore_object(client, request, item, uid_map).await;
                    bar.inc(1);
                    (index, result)
                }
            })
            .buffer_unordered(request.concurrency.max(1))
            .collect()
            .await;
        for (index, result) in results {
            slots[index] = Some(result);
        }
    }
    slots.into_iter().flatten().collect()
}

/// Creates one object, or compares it with the existing one, and returns its outcome.
async fn restore_object(
    client: &Client,
    request: &RestoreRequest,
    item: &Planned,
    uid_map: &Arc<Mutex<HashMap<String, String>>>,
) -> ItemResult {
    let mut result = item.result(
        Outcome::Skipped,
        item.skip.clone().or_else(|| item.note.clone()),
    );
    if item.skip.is_some() {
        return result;
    }

    let mut object = item.object.to_value();
    {
        let map = uid_map.lock().unwrap_or_else(|p| p.into_inner());
        rebuild_owner_references(&mut object, |uid| map.get(uid).cloned());
    }
    let api_resource = kube::discovery::ApiResource {
        group: item.target.group.clone(),
        version: item.target.version.clone(),
        api_version: item.target.api_version(),
        kind: item.target.kind.clone(),
        plural: item.target.resource.clone(),
    };
    let api: Api<DynamicObject> = match &item.target.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &api_resource),
        None => Api::all_with(client.clone(), &api_resource),
    };
    let dynamic: DynamicObject = match serde_json::from_value(object.clone()) {
        Ok(dynamic) => dynamic,
        Err(error) => {
            result.outcome = Outcome::Failed;
            result.reason = Some(format!("invalid object: {error}"));
            return result;
        }
    };
    let params = PostParams {
        dry_run: request.dry_run,
        field_manager: Some("kubectl-migrate".into()),
    };

    let (outcome, reason, new_uid) = match api.create(&params, &dynamic).await {
        Ok(created) => (Outcome::Created, item.note.clone(), created.metadata.uid),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            compare_existing(&api, request, &item.target.name, &object, &params).await
        }
        Err(error) => (
            Outcome::Failed,
            Some(shared::error::describe_kube_error(&error)),
            None,
        ),
    };
    if let Some(uid) = new_uid.filter(|_| !item.source_uid.is_empty()) {
        uid_map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(item.source_uid.clone(), uid);
    }
    result.outcome = outcome;
    result.reason = reason;
    result
}

/// Handles an object that already exists: unchanged when it contains every field of the backup,
/// else replaced (policy update) or skipped (policy none).
async fn compare_existing(
    api: &Api<DynamicObject>,
    request: &RestoreRequest,
    name: &str,
    desired: &Value,
    params: &PostParams,
) -> (Outcome, Option<String>, Option<String>) {
    let existing = match api.get(name).await {
        Ok(existing) => existing,
        Err(error) => {
            return (
                Outcome::Failed,
                Some(format!(
                    "exists, but failed to read it: {}",
                    shared::error::describe_kube_error(&error)
                )),
                None,
            );
        }
    };
    let uid = existing.metadata.uid.clone();
    let existing_value = serde_json::to_value(&existing).unwrap_or(Value::Null);
    if contains_all(&existing_value, desired, true) {
        return (Outcome::Unchanged, None, uid);
    }
    match request.existing {
        ExistingPolicy::None => (
            Outcome::Skipped,
            Some("already exists with different content: pass --existing-resource-policy update to replace it".into()),
            uid,
        ),
        ExistingPolicy::Update => {
            let mut replacement = desired.clone();
            replacement["metadata"]["resourceVersion"] = serde_json::json!(existing.metadata.resource_version);
            let replacement: DynamicObject = match serde_json::from_value(replacement) {
                Ok(object) => object,
                Err(error) => return (Outcome::Failed, Some(format!("invalid object: {error}")), uid),
            };
            match api.replace(name, params, &replacement).await {
                Ok(_) => (Outcome::Updated, None, uid),
                Err(error) => (Outcome::Failed, Some(shared::error::describe_kube_error(&error)), uid),
            }
        }
    }
}

/// Reports whether `actual` contains every field of `expected` with the same value; objects may
/// have more fields, lists must match item by item. At the top level only `metadata.labels`
/// and `metadata.annotations` of the metadata are compared, because the rest is server-set.
pub fn contains_all(actual: &Value, expected: &Value, top_level: bool) -> bool {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => expected.iter().all(|(key, value)| {
            if top_level && key == "metadata" {
                let actual_metadata = actual.get("metadata").unwrap_or(&Value::Null);
                return ["labels", "annotations"]
                    .iter()
                    .all(|field| match value.get(*field) {
                        None => true,
                        Some(expected) => contains_all(
                            actual_metadata.get(*field).unwrap_or(&Value::Null),
                            expected,
                            false,
                        ),
                    });
            }
            match actual.get(key) {
                Some(actual) => contains_all(actual, value, false),
                None => value.is_null(),
            }
        }),
        (Value::Array(actual), Value::Array(expected)) => {
            actual.len() == expected.len()
                && actual
                    .iter()
                    .zip(expected)
                    .all(|(a, e)| contains_all(a, e, false))
        }
        (actual, expected) => actual == expected,
    }
}

/// Waits until every CRD reports the Established condition.
async fn wait_for_crds(client: &Client, names: &[String], timeout: Duration) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    for name in names {
        loop {
            let crd = api
                .get(name)
                .await
                .context(|| format!("failed to read CustomResourceDefinition {name}"))?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::failed(format!(
                    "CustomResourceDefinition {name} was not Established within {}s: check the target's API server, or raise --crd-timeout",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Collects the classes and nodePorts of the target for the pre-flight checks. A type the
/// target does not serve or lets us read counts as empty.
async fn collect_target_facts(client: &Client) -> TargetFacts {
    async fn names<K>(client: &Client) -> std::collections::BTreeSet<String>
    where
        K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match Api::<K>::all(client.clone())
            .list(&Default::default())
            .await
        {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|o| o.meta().name.clone())
                .collect(),
            Err(error) => {
                tracing::debug!(%error, "pre-flight list failed");
                Default::default()
            }
        }
    }
    let mut facts = TargetFacts {
        storage_classes: names::<k8s_openapi::api::storage::v1::StorageClass>(client).await,
        ingress_classes: names::<k8s_openapi::api::networking::v1::IngressClass>(client).await,
        priority_classes: names::<k8s_openapi::api::scheduling::v1::PriorityClass>(client).await,
        node_ports: Default::default(),
    };
    if let Ok(services) = Api::<k8s_openapi::api::core::v1::Service>::all(client.clone())
        .list(&Default::default())
        .await
    {
        for service in services.items {
            let holder = format!(
                "{}/{}",
                service.metadata.namespace.clone().unwrap_or_default(),
                service.metadata.name.clone().unwrap_or_default()
            );
            for port in service.spec.and_then(|s| s.ports).into_iter().flatten() {
                if let Some(node_port) = port.node_port {
                    facts.node_ports.insert(node_port as i64, holder.clone());
                }
            }
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_all_ignores_server_fields() {
        let actual = json!({"metadata": {"name": "a", "uid": "x", "labels": {"app": "web", "extra": "1"}},
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let expected = json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"ports": [{"port": 80}]}});
        assert!(contains_all(&actual, &expected, true));
    }

    #[test]
    fn contains_all_finds_differences() {
        let actual = json!({"data": {"a": "1"}});
        assert!(!contains_all(&actual, &json!({"data": {"a": "2"}}), true));
        assert!(!contains_all(
            &json!({"spec": {"ports": [1, 2]}}),
            &json!({"spec": {"ports": [1]}}),
            true
        ));
    }

    #[test]
    fn missing_namespaces_are_added() {
        let deployment = ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        let mut planned = vec![Planned {
            source: deployment.clone(),
            source_uid: "u".into(),
            owner_uids: vec![],
            target: deployment,
            object: PackedObject::new(&json!({})),
            phase: Phase::Workloads,
            skip: None,
            note: None,
        }];
        add_missing_namespaces(&mut planned);
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].target.resource, "namespaces");
        assert_eq!(planned[0].target.name, "shop");
    }
}
