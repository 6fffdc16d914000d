//! `backup create`: discovery, concurrent paginated LISTs, filtering, and writing one JSON
//! document per object; after the volume step, the log and then the manifest.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use shared::{Error, Result, ResultExt};

use crate::discovery::{ResourceType, collect_resource_types};
use crate::filter::{
    ClusterNeed, ClusterResources, NamespaceFilter, cluster_needs, controller_owner_uid,
    select_types,
};
use crate::format::{
    self, Counts, FORMAT_VERSION, Manifest, ManifestObject, ObjectRef, RecordedFilters,
    SourceCluster, StoredFile,
};
use crate::store::Store;

/// Settings of one backup: its name, filters, concurrency and source facts.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub name: String,
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    pub selector: Option<String>,
    pub cluster_resources: ClusterResources,
    pub include_system_namespaces: bool,
    pub include_owned: bool,
    pub concurrency: usize,
    pub page_size: u32,
    pub source: SourceCluster,
}

/// Objects written so far and what they need, shared by the concurrent LIST tasks.
#[derive(Default)]
struct Progress {
    written: Vec<ManifestObject>,
    uids: HashSet<String>,
    needs: BTreeSet<ClusterNeed>,
    /// Objects with a controller owner, kept until every owner is known.
    owned: Vec<(ResourceType, Value)>,
    log: Vec<String>,
}

/// Objects a backup has stored so far, before its log and manifest: the result of
/// [`store_objects`], which [`StoredObjects::finish`] turns into a complete backup.
pub struct StoredObjects {
    name: String,
    started_at: String,
    state: Arc<Mutex<Progress>>,
    /// Pods left out because a controller in the backup owns them.
    owned_pods: Vec<Value>,
    /// The Pod type as discovered, set when `owned_pods` is not empty.
    pod_type: Option<ResourceType>,
}

/// Identity of a pod the backup has seen, stored or left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Stores every selected object of the backup (the first step of `backup create`). Nothing
/// marks the backup complete yet: the caller runs the volume step, then
/// [`StoredObjects::finish`] writes the log and the manifest.
pub async fn store_objects(
    client: &Client,
    store: &Store,
    request: &BackupRequest,
) -> Result<StoredObjects> {
    let started_at = format::now_rfc3339();
    let namespaces = NamespaceFilter::new(
        &request.include_namespaces,
        &request.exclude_namespaces,
        request.include_system_namespaces,
    )
    .map_err(Error::usage)?;
    let types = collect_resource_types(client).await?;
    let selected = select_types(
        &types,
        &request.include_resources,
        &request.exclude_resources,
    )
    .map_err(Error::usage)?;

    let state = Arc::new(Mutex::new(Progress::default()));
    let bar = shared::progress::spinner("backing up");
    log(
        &state,
        format!("backup {} started at {started_at}", request.name),
    );

    // Namespaced objects first: they decide which cluster-scoped objects are needed.
    let namespaced: Vec<&ResourceType> = selected.iter().filter(|t| t.namespaced).collect();
    let tasks = list_tasks(&namespaced, &request.include_namespaces);
    stream::iter(tasks)
        .map(|(resource, namespace)| {
            let state = state.clone();
            let bar = bar.clone();
            let namespaces = &namespaces;
            async move {
                // Each page is stored before the next is requested, so memory contains one page
                // per concurrent LIST rather than whole resource types.
                let mut pager = Pager::new(client, resource, namespace.as_deref(), request);
                while let Some(page) = pager.next_page().await? {
                    let mut to_write = Vec::new();
                    for object in page {
                        let namespace = object["metadata"]["namespace"].as_str();
                        if !namespace.is_some_and(|n| namespaces.allows(n)) {
                            continue;
                        }
                        let owned =
                            !request.include_owned && controller_owner_uid(&object).is_some();
                        if owned {
                            lock(&state).owned.push((resource.clone(), object));
                        } else {
                            to_write.push(object);
                        }
                    }
                    write_objects(store, &request.name, resource, to_write, &state).await?;
                    bar.set_message(format!(
                        "backing up: {} objects",
                        lock(&state).written.len()
                    ));
                }
                Ok::<(), Error>(())
            }
        })
        .buffer_unordered(request.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;

    // Owned objects whose controller is not in the backup are kept: nothing would recreate them.
    // Left-out pods stay in memory, because the volume step keeps those whose emptyDir data
    // it copies.
    let owned = std::mem::take(&mut lock(&state).owned);
    let uids = lock(&state).uids.clone();
    let recreated = recreated_by_controllers(&owned, &uids);
    let mut orphans: Vec<(ResourceType, Value)> = Vec::new();
    let mut owned_pods = Vec::new();
    let mut pod_type = None;
    let mut dropped = 0;
    for ((resource, object), recreated) in owned.into_iter().zip(recreated) {
        if !recreated {
            orphans.push((resource, object));
            continue;
        }
        dropped += 1;
        if is_pod_type(&resource) {
            owned_pods.push(object);
            pod_type = Some(resource);
        }
    }
    if dropped > 0 {
        log(
            &state,
            format!(
                "left out {dropped} objects owned by a backed-up controller (use --include-owned to keep them)"
            ),
        );
    }
    for (resource, object) in orphans {
        write_objects(store, &request.name, &resource, vec![object], &state).await?;
    }

    backup_cluster_scoped(client, store, request, &selected, &namespaces, &state).await?;
    bar.finish_and_clear();
    Ok(StoredObjects {
        name: request.name.clone(),
        started_at,
        state,
        owned_pods,
        pod_type,
    })
}

impl StoredObjects {
    /// Returns the backup's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the pods stored in the backup.
    pub fn stored_pods(&self) -> Vec<PodRef> {
        lock(&self.state)
            .written
            .iter()
            .filter(|entry| entry.object.group.is_empty() && entry.object.resource == "pods")
            .map(|entry| PodRef {
                namespace: entry.object.namespace.clone().unwrap_or_default(),
                name: entry.object.name.clone(),
                uid: entry.uid.clone(),
            })
            .collect()
    }

    /// Returns the pods left out because a controller in the backup owns them.
    pub fn owned_pods(&self) -> Vec<PodRef> {
        self.owned_pods.iter().map(pod_ref).collect()
    }

    /// Stores the left-out pods whose UID is in `uids`, each with a log line naming its
    /// controller and `reason`. Returns how many it stored.
    pub async fn keep_owned_pods(
        &mut self,
        store: &Store,
        uids: &HashSet<String>,
        reason: &str,
    ) -> Result<usize> {
        let (kept, rest): (Vec<Value>, Vec<Value>) = std::mem::take(&mut self.owned_pods)
            .into_iter()
            .partition(|pod| uids.contains(pod["metadata"]["uid"].as_str().unwrap_or("")));
        self.owned_pods = rest;
        let Some(pod_type) = self.pod_type.clone() else {
            return Ok(0);
        };
        for pod in &kept {
            let owner = pod["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|owners| owners.iter().find(|o| o["controller"] == true))
                .map(|o| {
                    format!(
                        "{} {}",
                        o["kind"].as_str().unwrap_or(""),
                        o["name"].as_str().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            let pod = pod_ref(pod);
            log(
                &self.state,
                format!(
                    "kept pod {}/{} although {owner} owns it: {reason}",
                    pod.namespace, pod.name
                ),
            );
        }
        let count = kept.len();
        write_objects(store, &self.name, &pod_type, kept, &self.state).await?;
        Ok(count)
    }

    /// Writes the log and then the manifest, which marks the backup complete. `volume_records`
    /// are the stored volume records, listed in the manifest so that `backup verify` notices a
    /// missing or changed one.
    pub async fn finish(
        self,
        store: &Store,
        request: &BackupRequest,
        volume_records: Vec<StoredFile>,
    ) -> Result<Manifest> {
        let (mut objects, log_lines) = {
            let mut state = lock(&self.state);
            (
                std::mem::take(&mut state.written),
                std::mem::take(&mut state.log),
            )
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let mut volume_records = volume_records;
        volume_records.sort_by(|a, b| a.key.cmp(&b.key));
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            name: request.name.clone(),
            started_at: self.started_at,
            completed_at: format::now_rfc3339(),
            source: request.source.clone(),
            filters: RecordedFilters {
                include_namespaces: request.include_namespaces.clone(),
                exclude_namespaces: request.exclude_namespaces.clone(),
                include_resources: request.include_resources.clone(),
                exclude_resources: request.exclude_resources.clone(),
                selector: request.selector.clone(),
                include_cluster_resources: request.cluster_resources.as_str().to_string(),
            },
            counts: Counts::of(&objects),
            objects,
            volume_records,
        };

        // The log goes before the manifest: the manifest is the last file, the mark of completion.
        let mut text = log_lines.join("\n");
        text.push_str(&format!(
            "\nbackup {} completed at {}: {} objects\n",
            manifest.name, manifest.completed_at, manifest.counts.total
        ));
        store
            .put(&format::log_key(&request.name), text.as_bytes())
            .await?;
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|error| Error::failed(format!("failed to encode the manifest: {error}")))?;
        store
            .put(&format::manifest_key(&request.name), &bytes)
            .await?;
        Ok(manifest)
    }

    /// Writes the log with the reason the backup failed, and no manifest, so the backup stays
    /// incomplete and `backup logs` explains why.
    pub async fn fail(self, store: &Store, reason: &str) -> Result<()> {
        let mut text = lock(&self.state).log.join("\n");
        text.push_str(&format!(
            "\nbackup {} failed at {}: {reason}\n",
            self.name,
            format::now_rfc3339()
        ));
        store
            .put(&format::log_key(&self.name), text.as_bytes())
            .await?;
        Ok(())
    }
}

/// Decides for each owned object whether a controller in the backup recreates it: its
/// controller is stored, or is itself an owned object that is recreated (a pod of a ReplicaSet
/// of a stored Deployment). `stored` contains the UIDs of the stored objects. Chains longer than
/// 16 owners, and cycles, count as not recreated, so those objects are kept.
fn recreated_by_controllers(
    owned: &[(ResourceType, Value)],
    stored: &HashSet<String>,
) -> Vec<bool> {
    let controller_of: HashMap<&str, &str> = owned
        .iter()
        .filter_map(|(_, object)| {
            let uid = object["metadata"]["uid"].as_str()?;
            Some((uid, controller_owner_uid(object)?))
        })
        .collect();
    owned
        .iter()
        .map(|(_, object)| {
            let mut owner = controller_owner_uid(object);
            for _ in 0..16 {
                match owner {
                    Some(uid) if stored.contains(uid) => return true,
                    Some(uid) => owner = controller_of.get(uid).copied(),
                    None => return false,
                }
            }
            false
        })
        .collect()
}

fn is_pod_type(resource: &ResourceType) -> bool {
    resource.group.is_empty() && resource.plural == "pods"
}

fn pod_ref(pod: &Value) -> PodRef {
    let text = |field: &str| pod["metadata"][field].as_str().unwrap_or("").to_string();
    PodRef {
        namespace: text("namespace"),
        name: text("name"),
        uid: text("uid"),
    }
}

/// Lists the cluster-scoped objects that `--include-cluster-resources` selects and stores them.
async fn backup_cluster_scoped(
    client: &Client,
    store: &Store,
    request: &BackupRequest,
    selected: &[ResourceType],
    namespaces: &NamespaceFilter,
    state: &Arc<Mutex<Progress>>,
) -> Result<()> {
    if request.cluster_resources == ClusterResources::False {
        return Ok(());
    }
    let mut cluster: Vec<&ResourceType> = selected.iter().filter(|t| !t.namespaced).collect();
    // PVs first: the StorageClasses they name join the needed objects.
    cluster.sort_by_key(|t| t.group_resource() != "persistentvolumes");
    let named: Vec<String> = request.include_resources.clone();

    for resource in cluster {
        let explicitly_named = named.iter().any(|n| resource.matches_name(n));
        let take_all = request.cluster_resources == ClusterResources::True || explicitly_named;
        let group_resource = resource.group_resource();

        // In auto mode a type that no included object needs is not listed at all.
        let needed: BTreeSet<String> = lock(state)
            .needs
            .iter()
            .filter(|(r, _)| *r == group_resource)
            .map(|(_, name)| name.clone())
            .collect();
        let is_namespaces = group_resource == "namespaces";
        if !take_all && needed.is_empty() && !(is_namespaces && request.selector.is_none()) {
            continue;
        }

        // Dependencies are taken whatever their labels, so the selector applies only to
        // types taken whole.
        let selector_request = BackupRequest {
            selector: if take_all {
                request.selector.clone()
            } else {
                None
            },
            ..request.clone()
        };
        let objects = list_all(client, resource, None, &selector_request).await?;
        let kept: Vec<Value> = objects
            .into_iter()
            .filter(|object| {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                if is_namespaces && !namespaces.allows(name) {
                    return false;
                }
                take_all || needed.contains(name) || (is_namespaces && request.selector.is_none())
            })
            .collect();
        write_objects(store, &request.name, resource, kept, state).await?;
    }
    Ok(())
}

/// Pairs each type with the namespaces to list: one LIST across all namespaces, or one per
/// namespace when `--include-namespaces` names them literally (fewer objects to transfer and
/// it works with namespace-scoped RBAC).
fn list_tasks<'a>(
    types: &[&'a ResourceType],
    include_namespaces: &[String],
) -> Vec<(&'a ResourceType, Option<String>)> {
    let literal = !include_namespaces.is_empty()
        && include_namespaces
            .iter()
            .all(|p| !p.contains(['*', '?', '[', '{']));
    let mut tasks = Vec::new();
    for resource in types {
        if literal {
            for namespace in include_namespaces {
                tasks.push((*resource, Some(namespace.clone())));
            }
        } else {
            tasks.push((*resource, None));
        }
    }
    tasks
}

/// Pages through the objects of one type with LIST requests of `page_size`, following
/// `continue`, so that a caller can store each page before the next one arrives.
struct Pager {
    api: Api<DynamicObject>,
    api_version: String,
    resource: ResourceType,
    params: ListParams,
    token: Option<String>,
    done: bool,
}

impl Pager {
    fn new(
        client: &Client,
        resource: &ResourceType,
        namespace: Option<&str>,
        request: &BackupRequest,
    ) -> Pager {
        let api_resource = resource.api_resource();
        let api = match namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &api_resource),
            None => Api::all_with(client.clone(), &api_resource),
        };
        let mut params = ListParams::default().limit(request.page_size);
        if let Some(selector) = &request.selector {
            params = params.labels(selector);
        }
        Pager {
            api,
            api_version: api_resource.api_version,
            resource: resource.clone(),
            params,
            token: None,
            done: false,
        }
    }

    /// Returns the next page, or `None` after the last one.
    async fn next_page(&mut self) -> Result<Option<Vec<Value>>> {
        if self.done {
            return Ok(None);
        }
        let mut params = self.params.clone();
        if let Some(token) = &self.token {
            params = params.continue_token(token);
        }
        let page = list_page_with_retry(&self.api, &params, &self.resource).await?;
        let mut objects = Vec::with_capacity(page.items.len());
        for item in page.items {
            let mut value = serde_json::to_value(&item)
                .map_err(|error| Error::failed(format!("failed to encode an object: {error}")))?;
            // Items of a list carry no apiVersion and kind; the type supplies them.
            value["apiVersion"] = Value::String(self.api_version.clone());
            value["kind"] = Value::String(self.resource.kind.clone());
            objects.push(value);
        }
        // The server ends the listing with an empty token; a repeated token would loop forever.
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(next) if Some(&next) != self.token.as_ref() => self.token = Some(next),
            _ => self.done = true,
        }
        Ok(Some(objects))
    }
}

/// Lists every object of one type, all pages together.
async fn list_all(
    client: &Client,
    resource: &ResourceType,
    namespace: Option<&str>,
    request: &BackupRequest,
) -> Result<Vec<Value>> {
    let mut pager = Pager::new(client, resource, namespace, request);
    let mut objects = Vec::new();
    while let Some(page) = pager.next_page().await? {
        objects.extend(page);
    }
    Ok(objects)
}

/// Sends one LIST, retrying throttling (429), server errors (5xx) and connection failures
/// three times with a growing pause.
async fn list_page_with_retry(
    api: &Api<DynamicObject>,
    params: &ListParams,
    resource: &ResourceType,
) -> Result<kube::core::ObjectList<DynamicObject>> {
    let attempts = 4;
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=attempts {
        match api.list(params).await {
            Ok(page) => return Ok(page),
            Err(error) if attempt < attempts && is_transient(&error) => {
                tracing::info!(resource = %resource.group_resource(), %error, attempt, "retrying LIST");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(error) => {
                return Err(error).context(|| {
                    format!(
                        "failed to list {} after {attempt} attempts",
                        resource.group_resource()
                    )
                });
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Stores objects of one type, 16 at a time, recording each in the manifest list.
async fn write_objects(
    store: &Store,
    backup: &str,
    resource: &ResourceType,
    objects: Vec<Value>,
    state: &Arc<Mutex<Progress>>,
) -> Result<()> {
    if objects.is_empty() {
        return Ok(());
    }
    let count = objects.len();
    let entries: Vec<(ManifestObject, Vec<ClusterNeed>)> = stream::iter(objects)
        .map(|object| async move {
            let reference = ObjectRef {
                group: resource.group.clone(),
                version: resource.version.clone(),
                resource: resource.plural.clone(),
                kind: resource.kind.clone(),
                namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                name: object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            };
            let needs = cluster_needs(resource, &object);
            let bytes = serde_json::to_vec(&object).map_err(|error| {
                Error::failed(format!(
                    "failed to encode {}: {error}",
                    reference.display_name()
                ))
            })?;
            let key = format::object_key(backup, &reference);
            store.put(&key, &bytes).await?;
            let entry = ManifestObject {
                uid: object["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                sha256: format::sha256_hex(&bytes),
                size: bytes.len() as u64,
                key,
                object: reference,
            };
            Ok::<_, Error>((entry, needs))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;

    let mut state = lock(state);
    for (entry, needs) in entries {
        state.uids.insert(entry.uid.clone());
        state.needs.extend(needs);
        state.written.push(entry);
    }
    state
        .log
        .push(format!("backed up {count} {}", resource.group_resource()));
    Ok(())
}

fn lock(state: &Arc<Mutex<Progress>>) -> std::sync::MutexGuard<'_, Progress> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn log(state: &Arc<Mutex<Progress>>, line: String) {
    tracing::info!("{line}");
    lock(state).log.push(line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::resource;

    #[test]
    fn literal_namespaces_list_per_namespace() {
        let pods = resource("", "Pod", "pods", &[], true);
        let types = [&pods];
        let tasks = list_tasks(&types, &["a".to_string(), "b".to_string()]);
        let namespaces: Vec<Option<String>> = tasks.into_iter().map(|(_, n)| n).collect();
        assert_eq!(namespaces, [Some("a".to_string()), Some("b".to_string())]);
    }

    fn owned_object(uid: &str, controller: Option<&str>) -> (ResourceType, Value) {
        let pods = resource("", "Pod", "pods", &[], true);
        let mut object = serde_json::json!({"metadata": {"name": uid, "uid": uid}});
        if let Some(owner) = controller {
            object["metadata"]["ownerReferences"] = serde_json::json!([{"kind": "Owner", "name": owner, "uid": owner, "controller": true}]);
        }
        (pods, object)
    }

    #[test]
    fn owned_chain_to_stored_controller_is_recreated() {
        // deployment (stored) <- replicaset <- pod; job-owner (not in backup) <- job <- job-pod.
        let owned = vec![
            owned_object("replicaset", Some("deployment")),
            owned_object("pod", Some("replicaset")),
            owned_object("job", Some("cronjob-elsewhere")),
            owned_object("job-pod", Some("job")),
        ];
        let stored = HashSet::from(["deployment".to_string()]);
        assert_eq!(
            recreated_by_controllers(&owned, &stored),
            [true, true, false, false]
        );
    }

    #[test]
    fn owner_cycle_counts_as_not_recreated() {
        let owned = vec![owned_object("a", Some("b")), owned_object("b", Some("a"))];
        assert_eq!(
            recreated_by_controllers(&owned, &HashSet::new()),
            [false, false]
        );
    }

    #[test]
    fn globs_list_across_namespaces() {
        let pods = resource("", "Pod", "pods", &[], true);
        let types = [&pods];
        let tasks = list_tasks(&types, &["shop-*".to_string()]);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].1, None);
    }
}
