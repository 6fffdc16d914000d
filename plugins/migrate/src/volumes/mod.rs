//! Pod volume data: selection from pod annotations, agent pods that back volumes up on their
//! node and restore them into new claims, and the per-volume records of a backup.
//!
//! Data goes from the node straight to the location: the plugin only creates a Secret and the
//! agent pods, reads each pod's one-line JSON result from its log, and deletes both when done,
//! also after an error or Ctrl-C. Records live at `backups/<name>/volumes/<ns>/<pod>/<volume>.json`.

mod pod_restore;
pub mod pods;
pub mod selection;
pub mod wait;

use std::collections::HashSet;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use shared::{Error, Result};

use crate::agent::BackupResult;
use crate::format::StoredFile;
use crate::repo::{Repository, SnapshotStats, StoreBackend};
use crate::store::{CredentialSource, Store, StoreConfig, StoreUrl, resolve_credentials};
pub use pod_restore::restore_pods_with_data;
use pods::{AgentLocation, AgentSettings};
pub use selection::{
    PodSelection, SelectedVolume, SkippedVolume, VolumeSource, select_pod_volumes,
};

/// Flags of `backup create` that select volumes and reach their data.
#[derive(Args, Debug, Clone)]
pub struct VolumeBackupArgs {
    /// Back up every PVC and emptyDir volume of the selected pods, not only those named in
    /// the pod annotation backup.velero.io/backup-volumes.
    #[arg(long)]
    pub default_volumes_to_fs_backup: bool,

    #[command(flatten)]
    pub agent: VolumeArgs,
}

/// Flags of the agent pods that move volume data, for backup and restore.
#[derive(Args, Debug, Clone)]
pub struct VolumeArgs {
    /// Kubelet root folder on the nodes, where emptyDir volumes live (some managed clusters
    /// use /data/kubelet).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubelet")]
    pub kubelet_root_dir: String,

    /// Image of the agent pods that move volume data.
    #[arg(long, value_name = "IMAGE")]
    pub agent_image: Option<String>,

    /// CPU request of each agent pod, such as 250m.
    #[arg(long, value_name = "QUANTITY")]
    pub agent_cpu_request: Option<String>,

    /// Memory request of each agent pod, such as 256Mi.
    #[arg(long, value_name = "QUANTITY")]
    pub agent_memory_request: Option<String>,

    /// Memory limit of each agent pod, such as 1Gi.
    #[arg(long, value_name = "QUANTITY")]
    pub agent_memory_limit: Option<String>,

    /// Seconds one agent pod may run (its activeDeadlineSeconds) and the plugin waits for it.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub volume_timeout: u64,

    /// Seconds an agent pod may stay unschedulable before its volume fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub schedule_timeout: u64,

    /// File holding the volume repository password; without it KUBECTL_MIGRATE_PASSWORD is read.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
}

/// Record of one backed-up volume: where it came from, its snapshot and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub namespace: String,
    pub pod: String,
    pub volume: String,
    pub node: String,
    pub source: VolumeSource,
    pub snapshot: String,
    pub stats: SnapshotStats,
}

/// Outcome of the volume step of a backup.
#[derive(Debug, Default)]
pub struct VolumeBackupSummary {
    pub records: Vec<VolumeRecord>,
    /// Key and hash of each stored record, in the order of `records`.
    pub stored: Vec<StoredFile>,
    /// UID of the pod of each record, in the order of `records`.
    pub pod_uids: Vec<String>,
    pub skipped: Vec<SkippedVolume>,
    pub failures: Vec<String>,
}

/// Result of the volume step of `backup create`: the line it prints and the records for the
/// manifest.
#[derive(Debug, Default)]
pub struct VolumeBackupStep {
    /// Summary line for stdout, empty when no volume was selected.
    pub line: String,
    /// The stored volume records, for the manifest.
    pub records: Vec<StoredFile>,
}

/// Key of a volume record in the location.
pub fn record_key(backup: &str, namespace: &str, pod: &str, volume: &str) -> String {
    format!("backups/{backup}/volumes/{namespace}/{pod}/{volume}.json")
}

/// Reads the volume records of a backup, sorted by namespace, pod and volume.
pub async fn read_records(store: &Store, backup: &str) -> Result<Vec<VolumeRecord>> {
    let mut records = Vec::new();
    for object in store
        .list(&format!("backups/{backup}/volumes/"))
        .await
        .map_err(Error::failed)?
    {
        let bytes = store.get(&object.key).await.map_err(Error::failed)?;
        let record: VolumeRecord = serde_json::from_slice(&bytes).map_err(|error| {
            Error::failed(format!("invalid volume record {}: {error}", object.key))
        })?;
        records.push(record);
    }
    records
        .sort_by(|a, b| (&a.namespace, &a.pod, &a.volume).cmp(&(&b.namespace, &b.pod, &b.volume)));
    Ok(records)
}

/// Backs up the selected volumes of the pods in `namespaces` whose UID is in `pod_uids` (the
/// pods the backup stored or left out as owned) into the location's repository, one agent pod
/// per volume, and stores a record per volume.
pub async fn backup_volumes(
    client: &Client,
    store: &Store,
    store_config: &StoreConfig,
    backup: &str,
    namespaces: &[String],
    pod_uids: &HashSet<String>,
    args: &VolumeBackupArgs,
) -> Result<VolumeBackupSummary> {
    let mut summary = VolumeBackupSummary::default();
    let mut selected = Vec::new();
    for namespace in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::Api {
                context: format!("failed to list pods in {namespace}"),
                source,
            })?;
        for pod in &list.items {
            if !pod
                .metadata
                .uid
                .as_ref()
                .is_some_and(|uid| pod_uids.contains(uid))
            {
                continue;
            }
            let PodSelection {
                selected: chosen,
                skipped,
            } = select_pod_volumes(pod, args.default_volumes_to_fs_backup);
            selected.extend(chosen);
            summary.skipped.extend(skipped);
        }
    }
    for skip in &summary.skipped {
        eprintln!(
            "volume {}/{}/{} not copied: {}",
            skip.namespace, skip.pod, skip.volume, skip.reason
        );
    }
    if selected.is_empty() {
        return Ok(summary);
    }

    // The plugin creates the repository once, so parallel agents never race to initialize it.
    let password = crate::agent::read_password(args.agent.password_file.as_deref())?;
    Repository::open_or_init(
        std::sync::Arc::new(StoreBackend::new(store.clone())),
        &password,
    )
    .await?;

    let settings = agent_settings(&args.agent);
    let location = agent_location(store_config)?;
    let run = AgentRun {
        client,
        settings: &settings,
        location: &location,
        password: &password,
    };
    let outcome = run
        .guarded(selected_namespaces(&selected), async {
            for (index, volume) in selected.iter().enumerate() {
                match run.backup_one(volume, index, backup).await {
                    Ok(result) => {
                        let record = VolumeRecord {
                            namespace: volume.namespace.clone(),
                            pod: volume.pod.clone(),
                            volume: volume.volume.clone(),
                            node: volume.node.clone(),
                            source: volume.source.clone(),
                            snapshot: result.snapshot,
                            stats: result.details.stats,
                        };
                        let key =
                            record_key(backup, &record.namespace, &record.pod, &record.volume);
                        let bytes = serde_json::to_vec_pretty(&record).map_err(Error::failed)?;
                        store.put(&key, &bytes).await.map_err(Error::failed)?;
                        summary.stored.push(StoredFile::of(key, &bytes));
                        summary.pod_uids.push(volume.pod_uid.clone());
                        summary.records.push(record);
                    }
                    Err(error) => summary.failures.push(format!(
                        "volume {}/{}/{}: {error}",
                        volume.namespace, volume.pod, volume.volume
                    )),
                }
            }
            Ok(())
        })
        .await;
    outcome?;
    Ok(summary)
}

/// Restores the data of every PVC record of a backup into the claims the resource restore has
/// just created, before any workload exists. `target_namespace` maps a backed-up namespace to
/// the restore's namespace. A claim whose pod cannot run fails with the reason.
pub async fn restore_volumes(
    client: &Client,
    records: &[VolumeRecord],
    store_config: &StoreConfig,
    target_namespace: &dyn Fn(&str) -> String,
    args: &VolumeArgs,
) -> Result<Vec<String>> {
    let claims: Vec<(String, String, &VolumeRecord)> = records
        .iter()
        .filter_map(|record| match &record.source {
            VolumeSource::Pvc { claim } => {
                Some((target_namespace(&record.namespace), claim.clone(), record))
            }
            // emptyDir data goes into the restored pod, see `restore_pods_with_data`.
            VolumeSource::EmptyDir => None,
        })
        .collect();
    if claims.is_empty() {
        return Ok(Vec::new());
    }

    // Check the claims and their classes before any pod starts.
    for (namespace, claim, _) in &claims {
        check_claim(client, namespace, claim).await?;
    }

    let password = crate::agent::read_password(args.password_file.as_deref())?;
    let settings = agent_settings(args);
    let location = agent_location(store_config)?;
    let run = AgentRun {
        client,
        settings: &settings,
        location: &location,
        password: &password,
    };
    let namespaces: Vec<String> = claims
        .iter()
        .map(|(namespace, _, _)| namespace.clone())
        .collect();
    let mut restored = Vec::new();
    run.guarded(namespaces, async {
        for (index, (namespace, claim, record)) in claims.iter().enumerate() {
            run.restore_one(namespace, claim, &record.snapshot, index)
                .await?;
            restored.push(format!("{namespace}/{claim}"));
        }
        Ok(())
    })
    .await?;
    Ok(restored)
}

/// Fails fast when a claim is missing or names a StorageClass the cluster lacks.
async fn check_claim(client: &Client, namespace: &str, claim: &str) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvc = claims.get_opt(claim).await.map_err(|source| Error::Api {
        context: format!("failed to read PersistentVolumeClaim {namespace}/{claim}"),
        source,
    })?;
    let Some(pvc) = pvc else {
        return Err(Error::failed(format!(
            "PersistentVolumeClaim {namespace}/{claim} was not restored, so its data cannot be: check the restore's items"
        )));
    };
    if let Some(class) = pvc
        .spec
        .and_then(|spec| spec.storage_class_name)
        .filter(|class| !class.is_empty())
    {
        let classes: Api<StorageClass> = Api::all(client.clone());
        let found = classes.get_opt(&class).await.map_err(|source| Error::Api {
            context: format!("failed to read StorageClass {class}"),
            source,
        })?;
        if found.is_none() {
            return Err(Error::failed(format!(
                "StorageClass {class} of PersistentVolumeClaim {namespace}/{claim} does not exist in the target cluster: map it with --storage-class-mappings {class}:NEW"
            )));
        }
    }
    Ok(())
}

fn selected_namespaces(selected: &[SelectedVolume]) -> Vec<String> {
    selected
        .iter()
        .map(|volume| volume.namespace.clone())
        .collect()
}

fn agent_settings(args: &VolumeArgs) -> AgentSettings {
    let mut run_id = [0u8; 4];
    // The process id is unique enough for names when the random source fails.
    if getrandom::fill(&mut run_id).is_err() {
        run_id = std::process::id().to_le_bytes();
    }
    AgentSettings {
        image: args
            .agent_image
            .clone()
            .unwrap_or_else(shared::agent::default_agent_image),
        kubelet_root_dir: args.kubelet_root_dir.clone(),
        cpu_request: args.agent_cpu_request.clone(),
        memory_request: args.agent_memory_request.clone(),
        memory_limit: args.agent_memory_limit.clone(),
        deadline: Duration::from_secs(args.volume_timeout),
        schedule_timeout: Duration::from_secs(args.schedule_timeout),
        run_id: hex::encode(run_id),
    }
}

/// Turns the location into what an agent pod needs: its URL, S3 flags and access keys.
pub fn agent_location(config: &StoreConfig) -> Result<AgentLocation> {
    let url = config.url.to_string();
    match &config.url {
        StoreUrl::File(path) => Ok(AgentLocation {
            url,
            node_folder: Some(path.display().to_string()),
            ..AgentLocation::default()
        }),
        StoreUrl::S3 { .. } => {
            let mut flags = vec!["--region".to_string(), config.s3.region.clone()];
            if let Some(endpoint) = &config.s3.endpoint {
                flags.extend(["--endpoint".to_string(), endpoint.clone()]);
            }
            let addressing = serde_json::to_value(config.s3.addressing).map_err(Error::failed)?;
            if let Some(addressing) = addressing.as_str() {
                flags.extend(["--addressing".to_string(), addressing.to_string()]);
            }
            let source = match &config.s3.credentials {
                CredentialSource::Environment => CredentialSource::Environment,
                other => other.clone(),
            };
            let credentials = resolve_credentials(&source, &|name| std::env::var(name).ok())
                .map_err(Error::failed)?;
            Ok(AgentLocation {
                url,
                flags,
                node_folder: None,
                access_key_id: Some(credentials.access_key_id),
                secret_access_key: Some(credentials.secret_access_key),
            })
        }
    }
}

/// Message printed when Ctrl-C stops a run of agent pods, after they are deleted.
pub const INTERRUPTED: &str = "interrupted: agent pods and secrets deleted";

/// Reports whether a volume step ended because of Ctrl-C.
pub fn is_interrupted<T>(outcome: &Result<T>) -> bool {
    matches!(outcome, Err(Error::Exit(code)) if *code == crate::commands::EXIT_INTERRUPTED)
}

/// One run of agent pods with its Secret; [`AgentRun::guarded`] deletes both at the end.
struct AgentRun<'a> {
    client: &'a Client,
    settings: &'a AgentSettings,
    location: &'a AgentLocation,
    password: &'a [u8],
}

impl AgentRun<'_> {
    /// Creates the run's Secret in each namespace, runs `work`, and deletes the run's pods and
    /// Secrets afterwards: after success, an error, or Ctrl-C. After Ctrl-C it prints
    /// [`INTERRUPTED`] and returns `Error::Exit` with the interrupted exit code (130).
    async fn guarded<F: std::future::Future<Output = Result<()>>>(
        &self,
        namespaces: Vec<String>,
        work: F,
    ) -> Result<()> {
        let mut namespaces = namespaces;
        namespaces.sort();
        namespaces.dedup();

        let _guard = crate::interrupt::guard();
        let created = self.create_secrets(&namespaces).await;
        let outcome = match created {
            Ok(()) => tokio::select! {
                result = work => result,
                _ = crate::interrupt::requested() => Err(Error::Exit(crate::commands::EXIT_INTERRUPTED)),
            },
            Err(error) => Err(error),
        };
        self.clean_up(&namespaces).await;
        if is_interrupted(&outcome) {
            eprintln!("kubectl-migrate: {INTERRUPTED}");
        }
        outcome
    }

    async fn create_secrets(&self, namespaces: &[String]) -> Result<()> {
        for namespace in namespaces {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let secret = pods::run_secret(namespace, self.settings, self.location, self.password);
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .map_err(|source| Error::Api {
                    context: format!("failed to create the agent Secret in {namespace}"),
                    source,
                })?;
        }
        Ok(())
    }

    async fn clean_up(&self, namespaces: &[String]) {
        let selector = format!("{}={}", pods::RUN_LABEL, self.settings.run_id);
        let params = ListParams::default().labels(&selector);
        for namespace in namespaces {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            if let Err(error) = pods
                .delete_collection(&DeleteParams::background(), &params)
                .await
            {
                tracing::warn!(%namespace, %error, "failed to delete agent pods; delete them with kubectl delete pods -l {selector}");
            }
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            if let Err(error) = secrets
                .delete(
                    &pods::secret_name(&self.settings.run_id),
                    &DeleteParams::default(),
                )
                .await
            {
                tracing::warn!(%namespace, %error, "failed to delete the agent Secret");
            }
        }
    }

    fn limits(&self) -> wait::WaitLimits {
        wait::WaitLimits {
            unschedulable: self.settings.schedule_timeout,
            total: self.settings.deadline + Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }

    async fn backup_one(
        &self,
        volume: &SelectedVolume,
        index: usize,
        backup: &str,
    ) -> Result<BackupResult> {
        let pod = pods::backup_pod(volume, index, backup, self.settings, self.location);
        let log = self.run_pod(&volume.namespace, pod).await?;
        parse_result(&log)
    }

    async fn restore_one(
        &self,
        namespace: &str,
        claim: &str,
        snapshot: &str,
        index: usize,
    ) -> Result<()> {
        let pod = pods::restore_pod(
            namespace,
            claim,
            snapshot,
            index,
            self.settings,
            self.location,
        );
        self.run_pod(namespace, pod).await.map(|_| ())
    }

    /// Creates a pod, waits for it and returns its log; the pod is deleted in every case.
    async fn run_pod(&self, namespace: &str, pod: Pod) -> Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let name = pod.metadata.name.clone().unwrap_or_default();
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|source| Error::Api {
                context: format!("failed to create agent pod {namespace}/{name}"),
                source,
            })?;

        let waited = wait::wait_for_pod(self.client, namespace, &name, self.limits()).await;
        let log = pods
            .logs(&name, &Default::default())
            .await
            .unwrap_or_default();
        if let Err(error) = pods.delete(&name, &DeleteParams::background()).await {
            tracing::warn!(%namespace, %name, %error, "failed to delete the agent pod");
        }
        match waited {
            Ok(()) => Ok(log),
            Err(reason) => {
                let last_line = log
                    .lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or_default();
                if last_line.is_empty() {
                    Err(Error::failed(reason))
                } else {
                    Err(Error::failed(format!("{reason}; agent log: {last_line}")))
                }
            }
        }
    }
}

/// Finds the agent's JSON result, the last log line that starts with `{`.
fn parse_result(log: &str) -> Result<BackupResult> {
    let line = log
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| Error::failed("the agent pod printed no result line"))?;
    serde_json::from_str(line)
        .map_err(|error| Error::failed(format!("invalid agent result line: {error}")))
}

/// Resolves `--location` to its settings, as the resource commands do, for the agent pods.
pub fn resolve_store_config(args: &crate::cli::LocationArgs) -> Result<StoreConfig> {
    let paths = crate::locations::Paths::from_process()?;
    let config = crate::locations::LocationsConfig::load(&paths.config_file)?;
    config.resolve(&paths, args)
}

/// Copies the selected volumes of the backed-up pods (the volume step of `backup create`,
/// run before the manifest is written). A pod whose emptyDir data is copied joins the backup
/// even when a controller in the backup owns it, because restore needs the pod to put the data
/// back. It fails when any selected volume could not be copied, and the caller then leaves
/// the backup without a manifest.
pub async fn backup_step(
    client: &Client,
    store: &Store,
    location: &crate::cli::LocationArgs,
    objects: &mut crate::backup::StoredObjects,
    args: &VolumeBackupArgs,
) -> Result<VolumeBackupStep> {
    let mut pods = objects.stored_pods();
    pods.extend(objects.owned_pods());
    let pod_uids: HashSet<String> = pods.iter().map(|pod| pod.uid.clone()).collect();
    let mut namespaces: Vec<String> = pods.into_iter().map(|pod| pod.namespace).collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        return Ok(VolumeBackupStep::default());
    }

    let store_config = resolve_store_config(location)?;
    let backup = objects.name().to_string();
    let summary = backup_volumes(
        client,
        store,
        &store_config,
        &backup,
        &namespaces,
        &pod_uids,
        args,
    )
    .await?;
    if !summary.failures.is_empty() {
        return Err(Error::failed(format!(
            "backup {backup}: {} of {} volumes failed: {}",
            summary.failures.len(),
            summary.failures.len() + summary.records.len(),
            summary.failures.join("; ")
        )));
    }

    let with_empty_dir: HashSet<String> = summary
        .records
        .iter()
        .zip(&summary.pod_uids)
        .filter(|(record, _)| record.source == VolumeSource::EmptyDir)
        .map(|(_, uid)| uid.clone())
        .collect();
    objects
        .keep_owned_pods(
            store,
            &with_empty_dir,
            "its emptyDir data was copied, and restore creates the pod before its controller to put the data back",
        )
        .await?;

    if summary.records.is_empty() && summary.skipped.is_empty() {
        return Ok(VolumeBackupStep::default());
    }
    let new_bytes: u64 = summary
        .records
        .iter()
        .map(|record| record.stats.new_bytes)
        .sum();
    Ok(VolumeBackupStep {
        line: format!(
            "volume data: {} volumes copied ({} new bytes), {} not copied\n",
            summary.records.len(),
            new_bytes,
            summary.skipped.len()
        ),
        records: summary.stored,
    })
}

/// Settings of the restore pods: the location as agents reach it, and the agent flags.
#[derive(Debug, Clone)]
pub struct VolumeRestore {
    pub store_config: StoreConfig,
    pub args: VolumeArgs,
}

/// Fills every restored claim from its snapshot (the volume step of `restore create`, run after
/// the claims exist and before any workload). A dry run only lists the claims.
pub async fn restore_step(
    client: &Client,
    store: &Store,
    request: &crate::restore::RestoreRequest,
) -> Result<()> {
    // Only the volumes of namespaces this restore takes.
    let namespaces = crate::filter::NamespaceFilter::new(
        &request.include_namespaces,
        &request.exclude_namespaces,
        true,
    )
    .map_err(Error::usage)?;
    let records: Vec<VolumeRecord> = read_records(store, &request.backup)
        .await?
        .into_iter()
        .filter(|record| namespaces.allows(&record.namespace))
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    let Some(volumes) = &request.volumes else {
        return Err(Error::failed(format!(
            "backup {} contains volume data but the restore request is missing the agent pod settings",
            request.backup
        )));
    };
    if request.dry_run {
        let claims = records
            .iter()
            .filter(|record| matches!(record.source, VolumeSource::Pvc { .. }));
        for record in claims {
            eprintln!(
                "dry run: would restore volume {}/{}/{} from snapshot {}",
                record.namespace, record.pod, record.volume, record.snapshot
            );
        }
        return Ok(());
    }
    let mappings = &request.plan.mappings;
    let restored = restore_volumes(
        client,
        &records,
        &volumes.store_config,
        &|namespace| mappings.namespace(namespace).to_string(),
        &volumes.args,
    )
    .await?;
    for claim in restored {
        eprintln!("volume data restored into PersistentVolumeClaim {claim}");
    }
    Ok(())
}

/// Renders the volume table of `backup describe --details`: one row per copied volume.
pub fn details_text(records: &[VolumeRecord]) -> String {
    if records.is_empty() {
        return String::new();
    }
    let mut table = shared::Table::new(&[
        "namespace",
        "pod",
        "volume",
        "type",
        "size",
        "files",
        "new bytes",
        "dedup",
        "duration",
    ]);
    for record in records {
        let stats = &record.stats;
        let kind = match &record.source {
            VolumeSource::Pvc { claim } => format!("pvc/{claim}"),
            VolumeSource::EmptyDir => "emptyDir".to_string(),
        };
        let dedup = if stats.new_bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.1}x", stats.dedup_ratio())
        };
        table.add_row([
            record.namespace.clone(),
            record.pod.clone(),
            record.volume.clone(),
            kind,
            stats.total_bytes.to_string(),
            stats.files.to_string(),
            stats.new_bytes.to_string(),
            dedup,
            format!("{:.1}s", stats.duration_ms as f64 / 1000.0),
        ]);
    }
    let mut text = String::from("Volumes:\n");
    for line in table.render(false).lines() {
        text.push_str(&format!("  {line}\n"));
    }
    text
}

/// Outcome of checking the volume data of a backup.
#[derive(Debug, Clone)]
pub struct VolumeVerification {
    /// Summary line for stdout.
    pub line: String,
    /// One line per damaged or missing chunk, pack or snapshot.
    pub problems: Vec<String>,
    /// Chunks that opened without error.
    pub chunks: u64,
}

/// Opens every chunk that the backup's snapshots refer to (decrypt, decompress, rehash) for
/// `backup verify`. Returns `None` when the backup has no volume data.
pub async fn verify_step(store: &Store, backup: &str) -> Result<Option<VolumeVerification>> {
    let records = read_records(store, backup).await?;
    if records.is_empty() {
        return Ok(None);
    }
    let password = crate::agent::read_password(None).map_err(|_| {
        Error::usage(format!(
            "missing repository password: backup {backup} contains volume data, set {} to check its chunks",
            crate::agent::PASSWORD_ENV
        ))
    })?;
    let repository = Repository::open(
        std::sync::Arc::new(StoreBackend::new(store.clone())),
        &password,
    )
    .await?;
    let snapshots: Vec<String> = records
        .iter()
        .map(|record| record.snapshot.clone())
        .collect();
    let report = crate::repo::verify_snapshots(&repository, Some(&snapshots)).await?;
    let mut problems = report.problems;
    if (report.snapshots as usize) < snapshots.len() {
        problems.push(format!(
            "{} of the backup's {} volume snapshots are missing from the repository",
            snapshots.len() - report.snapshots as usize,
            snapshots.len()
        ));
    }
    let line = format!(
        "volume data of backup {backup}: {} snapshots, {} chunks ({} bytes) decrypted, decompressed and rehashed\n",
        report.snapshots, report.chunks, report.bytes
    );
    Ok(Some(VolumeVerification {
        line,
        problems,
        chunks: report.chunks,
    }))
}
