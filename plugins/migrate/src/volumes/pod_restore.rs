//! Restore of emptyDir data. The pod is created before its controller, with an init container
//! that waits for a marker file. Once the pod is scheduled, agent pods on its node write the
//! data into the new pod's emptyDir folders and then the marker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::Value;
use shared::{Error, Result};

use super::pods::{self, EmptyDirTarget, RESTORE_STATE_VOLUME, RESTORE_WAIT_CONTAINER};
use super::selection::VolumeSource;
use super::{AgentRun, VolumeRecord, agent_location, agent_settings, read_records, wait};
use crate::restore::RestoreRequest;
use crate::restore::plan::Planned;
use crate::restore::result::{ItemResult, Outcome};
use crate::store::Store;

/// Namespace and name of a pod in the backup.
type PodKey = (String, String);

/// Creates the pods of `members` (a phase's objects) that have emptyDir records in the backup,
/// each before its controller, and fills their emptyDir volumes. Those pods are taken out of
/// `members`, so the rest of the phase, controllers included, is created afterwards. A pod
/// whose data cannot be restored is reported as failed and stays blocked in its init container
/// until the container's timeout, so it never starts without its data.
pub async fn restore_pods_with_data(
    client: &Client,
    store: &Store,
    request: &RestoreRequest,
    members: &mut Vec<Planned>,
    uid_map: &Arc<Mutex<HashMap<String, String>>>,
) -> Result<Vec<ItemResult>> {
    let records = empty_dir_records(store, request).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let (pods, rest): (Vec<Planned>, Vec<Planned>) = std::mem::take(members)
        .into_iter()
        .partition(|item| is_restorable_pod(item) && records.contains_key(&source_key(item)));
    *members = rest;
    report_unrestored(&records, &pods);
    if pods.is_empty() {
        return Ok(Vec::new());
    }
    let Some(volumes) = &request.volumes else {
        return Err(Error::failed(format!(
            "backup {} contains emptyDir data but the restore request is missing the agent pod settings",
            request.backup
        )));
    };

    let settings = agent_settings(&volumes.args);
    let limits = wait::WaitLimits {
        unschedulable: settings.schedule_timeout,
        total: settings.deadline,
        poll: Duration::from_millis(500),
    };
    if request.dry_run {
        let mut results = Vec::new();
        for item in &pods {
            let volumes = &records[&source_key(item)];
            let object = pod_with_wait(item, volumes, uid_map, &settings);
            results.push(create_pod(client, item, &object, true).await.0);
            print_dry_run(item, volumes, &settings);
        }
        return Ok(results);
    }

    let password = crate::agent::read_password(volumes.args.password_file.as_deref())?;
    let location = agent_location(&volumes.store_config)?;
    let run = AgentRun {
        client,
        settings: &settings,
        location: &location,
        password: &password,
    };
    let namespaces: Vec<String> = pods
        .iter()
        .filter_map(|item| item.target.namespace.clone())
        .collect();
    let mut results = Vec::new();
    run.guarded(namespaces, async {
        let mut index = 0;
        for item in &pods {
            let volumes = &records[&source_key(item)];
            let result = restore_one_pod(&run, item, volumes, uid_map, limits, &mut index).await;
            results.push(result);
        }
        Ok(())
    })
    .await?;
    Ok(results)
}

/// Creates one pod with its waiting init container and fills its emptyDir volumes, and
/// returns the pod's result.
async fn restore_one_pod(
    run: &AgentRun<'_>,
    item: &Planned,
    volumes: &[VolumeRecord],
    uid_map: &Arc<Mutex<HashMap<String, String>>>,
    limits: wait::WaitLimits,
    index: &mut usize,
) -> ItemResult {
    let object = pod_with_wait(item, volumes, uid_map, run.settings);
    let (mut result, new_uid) = create_pod(run.client, item, &object, false).await;
    let Some(uid) = new_uid else {
        return result;
    };
    uid_map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(item.source_uid.clone(), uid);

    match fill_pod(run, item, volumes, limits, index).await {
        Ok(node) => {
            let names: Vec<&str> = volumes.iter().map(|r| r.volume.as_str()).collect();
            result.reason = Some(format!(
                "emptyDir data of {} restored on node {node} before its controller was created",
                names.join(", ")
            ));
            eprintln!(
                "volume data restored into pod {}: {}",
                item.target.display_name(),
                names.join(", ")
            );
        }
        Err(reason) => {
            result.outcome = Outcome::Failed;
            result.reason = Some(format!(
                "created, but its emptyDir data was not restored: {reason}. The pod waits in its init container {RESTORE_WAIT_CONTAINER} until that times out; delete the pod to start it without the data"
            ));
        }
    }
    result
}

/// Names on stderr the emptyDir records whose pod this restore does not create.
fn report_unrestored(records: &BTreeMap<PodKey, Vec<VolumeRecord>>, pods: &[Planned]) {
    for (key, volumes) in records {
        if pods.iter().any(|item| source_key(item) == *key) {
            continue;
        }
        for record in volumes {
            eprintln!(
                "volume {}/{}/{} not restored: the pod is not in this restore (or not in the backup); its snapshot {} stays in the repository for `kubectl-migrate agent restore`",
                key.0, key.1, record.volume, record.snapshot
            );
        }
    }
}

/// Reports whether a planned object is a pod that restore creates.
fn is_restorable_pod(item: &Planned) -> bool {
    item.skip.is_none() && item.source.group.is_empty() && item.source.resource == "pods"
}

/// Namespace and name of a pod in the backup, which its volume records carry.
fn source_key(item: &Planned) -> PodKey {
    (
        item.source.namespace.clone().unwrap_or_default(),
        item.source.name.clone(),
    )
}

/// Reads the backup's emptyDir records of the namespaces the restore takes, grouped by pod.
async fn empty_dir_records(
    store: &Store,
    request: &RestoreRequest,
) -> Result<BTreeMap<PodKey, Vec<VolumeRecord>>> {
    let namespaces = crate::filter::NamespaceFilter::new(
        &request.include_namespaces,
        &request.exclude_namespaces,
        true,
    )
    .map_err(Error::usage)?;
    let mut by_pod: BTreeMap<PodKey, Vec<VolumeRecord>> = BTreeMap::new();
    for record in read_records(store, &request.backup).await? {
        if record.source == VolumeSource::EmptyDir && namespaces.allows(&record.namespace) {
            by_pod
                .entry((record.namespace.clone(), record.pod.clone()))
                .or_default()
                .push(record);
        }
    }
    Ok(by_pod)
}

/// Builds the pod to create: owners rebuilt from those restored so far (its controller is not
/// yet, so that reference is dropped and the controller adopts the pod by its labels), plus the
/// waiting init container.
fn pod_with_wait(
    item: &Planned,
    volumes: &[VolumeRecord],
    uid_map: &Arc<Mutex<HashMap<String, String>>>,
    settings: &pods::AgentSettings,
) -> Value {
    let mut object = item.object.to_value();
    {
        let map = uid_map.lock().unwrap_or_else(|p| p.into_inner());
        crate::sanitize::rebuild_owner_references(&mut object, |uid| map.get(uid).cloned());
    }
    pods::add_restore_wait(&mut object, settings, wait_timeout(settings, volumes.len()));
    object
}

/// Time the init container waits: scheduling of the agent pods plus the run of each of them,
/// one after the other.
fn wait_timeout(settings: &pods::AgentSettings, volumes: usize) -> Duration {
    let per_volume = settings.schedule_timeout + settings.deadline + Duration::from_secs(30);
    per_volume * volumes.max(1) as u32
}

/// Creates the pod and returns its result and new UID. An existing pod is skipped, because its
/// containers may already have started without the data.
async fn create_pod(
    client: &Client,
    item: &Planned,
    object: &Value,
    dry_run: bool,
) -> (ItemResult, Option<String>) {
    let namespace = item.target.namespace.clone().unwrap_or_default();
    let mut result = item.result(Outcome::Created, item.note.clone());
    let pod: Pod = match serde_json::from_value(object.clone()) {
        Ok(pod) => pod,
        Err(error) => {
            result.outcome = Outcome::Failed;
            result.reason = Some(format!("invalid object: {error}"));
            return (result, None);
        }
    };
    let params = PostParams {
        dry_run,
        field_manager: Some("kubectl-migrate".into()),
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    match pods.create(&params, &pod).await {
        Ok(created) => (result, created.metadata.uid.filter(|_| !dry_run)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            result.outcome = Outcome::Skipped;
            result.reason = Some(
                "already exists: its emptyDir data is not restored into a pod that may have started; delete the pod and restore again to get the data".into(),
            );
            (result, None)
        }
        Err(error) => {
            result.outcome = Outcome::Failed;
            result.reason = Some(shared::error::describe_kube_error(&error));
            (result, None)
        }
    }
}

/// Waits until the created pod is scheduled with its volumes set up, then runs one agent pod
/// per emptyDir volume on its node, of which the last writes the marker. Returns the node.
async fn fill_pod(
    run: &AgentRun<'_>,
    item: &Planned,
    volumes: &[VolumeRecord],
    limits: wait::WaitLimits,
    index: &mut usize,
) -> std::result::Result<String, String> {
    let namespace = item.target.namespace.clone().unwrap_or_default();
    let (node, uid) = wait::wait_for_data_pod(
        run.client,
        &namespace,
        &item.target.name,
        RESTORE_WAIT_CONTAINER,
        limits,
    )
    .await?;
    let target = EmptyDirTarget {
        namespace: &namespace,
        pod: &item.target.name,
        node: &node,
        uid: &uid,
    };
    for (position, record) in volumes.iter().enumerate() {
        let last = position + 1 == volumes.len();
        let pod = pods::empty_dir_restore_pod(
            &target,
            &record.volume,
            &record.snapshot,
            last,
            *index,
            run.settings,
            run.location,
        );
        *index += 1;
        run.run_pod(&namespace, pod)
            .await
            .map_err(|error| format!("volume {}: {error}", record.volume))?;
    }
    Ok(node)
}

fn print_dry_run(item: &Planned, volumes: &[VolumeRecord], settings: &pods::AgentSettings) {
    let name = item.target.display_name();
    eprintln!(
        "dry run: would create pod {name} before its controller, with init container {RESTORE_WAIT_CONTAINER} and volume {RESTORE_STATE_VOLUME}"
    );
    for record in volumes {
        eprintln!(
            "dry run: would then restore emptyDir {} of pod {name} from snapshot {} on its node, into {}",
            record.volume,
            record.snapshot,
            pods::empty_dir_path(&settings.kubelet_root_dir, "<new pod uid>", &record.volume)
        );
    }
}
