//! `kubectl migrate backup create|get|describe|logs|delete|verify`.

use std::collections::BTreeMap;

use shared::{Error, KubeArgs, OutputFormat, Result, Table};

use crate::backup::{BackupRequest, store_objects};
use crate::cli::{
    BackupCommand, BackupCreateArgs, BackupDescribeArgs, BackupGetArgs, BackupNameArgs,
};
use crate::format::{self, BackupState, Manifest, SourceCluster};
use crate::restore::{read_backup, read_manifest};
use crate::store::Store;
use crate::workload::images_of;

use super::{EXIT_INTERRUPTED, open_store};

/// Runs one `backup` subcommand.
pub async fn run(kube: &KubeArgs, command: BackupCommand) -> Result<()> {
    match command {
        BackupCommand::Create(args) => create(kube, args).await,
        BackupCommand::Get(args) => get(args).await,
        BackupCommand::Describe(args) => describe(args).await,
        BackupCommand::Logs(args) => logs(args).await,
        BackupCommand::Delete(args) => delete(args).await,
        BackupCommand::Verify(args) => verify(args).await,
    }
}

async fn create(kube: &KubeArgs, args: BackupCreateArgs) -> Result<()> {
    format::validate_name("backup", &args.name).map_err(Error::usage)?;
    let store = open_store(&args.location, false).await?;
    if store.is_read_only() {
        return Err(Error::failed(format!(
            "location {} is read-only: back up to a writable location",
            store.url()
        )));
    }
    store.check().await.map_err(Error::from)?;
    if !store
        .list(&format::backup_prefix(&args.name))
        .await?
        .is_empty()
    {
        return Err(Error::failed(format!(
            "backup {} already exists in {}: choose another name or delete it with `kubectl migrate backup delete {}`",
            args.name,
            store.url(),
            args.name
        )));
    }

    let target = kube.load().await?;
    let client = target.client()?;
    let kubernetes_version = client.apiserver_version().await.ok().map(|v| v.git_version);
    let request = BackupRequest {
        name: args.name.clone(),
        include_namespaces: args.filters.include_namespaces,
        exclude_namespaces: args.filters.exclude_namespaces,
        include_resources: args.filters.include_resources,
        exclude_resources: args.filters.exclude_resources,
        selector: args.filters.selector,
        cluster_resources: args.filters.include_cluster_resources,
        include_system_namespaces: args.filters.include_system_namespaces,
        include_owned: args.include_owned,
        concurrency: usize::from(args.concurrency),
        page_size: args.page_size,
        source: SourceCluster {
            context: target.context.clone(),
            server: target.config.cluster_url.to_string(),
            kubernetes_version,
        },
    };

    // Ctrl-C at any point before the manifest leaves the backup without one, so incomplete.
    // The volume step reacts to Ctrl-C itself, because it deletes its agent pods and Secret
    // before it returns. A Ctrl-C between the steps is kept until the next check.
    let _guard = crate::interrupt::guard();
    let mut stored = tokio::select! {
        result = store_objects(&client, &store, &request) => result?,
        _ = crate::interrupt::requested() => return Err(interrupted(&args.name)),
    };
    let step =
        crate::volumes::backup_step(&client, &store, &args.location, &mut stored, &args.volumes)
            .await;
    if crate::volumes::is_interrupted(&step) || crate::interrupt::is_requested() {
        if let Err(error) = stored.fail(&store, "interrupted by Ctrl-C").await {
            tracing::warn!(%error, "failed to write the backup log");
        }
        return Err(interrupted(&args.name));
    }
    let step = match step {
        Ok(step) => step,
        Err(error) => {
            if let Err(log_error) = stored.fail(&store, &error.to_string()).await {
                tracing::warn!(error = %log_error, "failed to write the backup log");
            }
            return Err(Error::failed(format!(
                "{error}\nbackup {} stays incomplete (no manifest) and cannot be restored: fix the cause, delete it with `kubectl migrate backup delete {}` and back up again",
                args.name, args.name
            )));
        }
    };
    let manifest = stored.finish(&store, &request, step.records).await?;
    shared::output::print(&step.line)?;
    shared::output::print(&format!(
        "backup {} completed: {} objects in {}\n",
        manifest.name,
        manifest.counts.total,
        store.url()
    ))
}

/// Reports an interrupted backup on stderr and returns the interrupted exit code.
fn interrupted(name: &str) -> Error {
    eprintln!(
        "kubectl-migrate: backup {name} interrupted: it stays incomplete (no manifest) and cannot be restored; delete it with `kubectl migrate backup delete {name}`"
    );
    Error::Exit(EXIT_INTERRUPTED)
}

async fn get(args: BackupGetArgs) -> Result<()> {
    let store = open_store(&args.location, false).await?;
    let keys = store.list("backups/").await?;
    let mut backups = format::backups_in_listing(keys.iter().map(|o| o.key.as_str()));
    if let Some(name) = &args.name {
        backups.retain(|n, _| n == name);
        if backups.is_empty() {
            return Err(Error::failed(format!(
                "backup {name} not found in {}",
                store.url()
            )));
        }
    }

    let mut rows = Vec::new();
    for (name, state) in backups {
        let manifest = match state {
            BackupState::Completed => read_manifest(&store, &name).await.ok(),
            BackupState::Incomplete => None,
        };
        rows.push((name, state, manifest));
    }

    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(name, state, manifest)| {
                    serde_json::json!({
                        "name": name,
                        "status": state.as_str(),
                        "objects": manifest.as_ref().map(|m| m.counts.total),
                        "startedAt": manifest.as_ref().map(|m| m.started_at.clone()),
                        "completedAt": manifest.as_ref().map(|m| m.completed_at.clone()),
                        "source": manifest.as_ref().map(|m| m.source.server.clone()),
                    })
                })
                .collect();
            shared::output::print_structured(&items, args.output.output)
        }
        OutputFormat::Name => {
            let names: String = rows
                .iter()
                .map(|(n, _, _)| format!("backup/{n}\n"))
                .collect();
            shared::output::print(&names)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            if rows.is_empty() {
                eprintln!("No backups found in {}.", store.url());
                return Ok(());
            }
            let mut table = Table::new(&["name", "status", "objects", "completed", "age"])
                .with_wide_columns(&["source", "location"]);
            for (name, state, manifest) in rows {
                let (objects, completed, age, source) = match &manifest {
                    Some(m) => (
                        m.counts.total.to_string(),
                        m.completed_at.clone(),
                        age_of(&m.completed_at),
                        m.source.server.clone(),
                    ),
                    None => ("-".into(), "-".into(), "-".into(), "-".into()),
                };
                table.add_row([
                    name,
                    state.as_str().to_string(),
                    objects,
                    completed,
                    age,
                    source,
                    store.url().to_string(),
                ]);
            }
            shared::output::print(&table.render(args.output.output == OutputFormat::Wide))
        }
    }
}

fn age_of(timestamp: &str) -> String {
    match timestamp.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(time) => shared::output::human_age(
            k8s_openapi::jiff::Timestamp::now()
                .duration_since(time)
                .as_secs(),
        ),
        Err(_) => "-".into(),
    }
}

async fn describe(args: BackupDescribeArgs) -> Result<()> {
    let store = open_store(&args.location, false).await?;
    if args.images {
        let (_, objects) = read_backup(&store, &args.name).await?;
        return print_images(&objects, args.output.output);
    }
    let manifest = read_manifest(&store, &args.name).await?;
    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            if args.details {
                shared::output::print_structured(&manifest, args.output.output)
            } else {
                let mut summary = serde_json::to_value(&manifest).unwrap_or_default();
                if let Some(fields) = summary.as_object_mut() {
                    fields.remove("objects");
                }
                shared::output::print_structured(&summary, args.output.output)
            }
        }
        _ => {
            let mut text = describe_text(&manifest, store.url(), args.details);
            if args.details {
                text.push_str(&crate::volumes::details_text(
                    &crate::volumes::read_records(&store, &args.name).await?,
                ));
            }
            shared::output::print(&text)
        }
    }
}

/// Renders `backup describe` as text, kubectl-describe style.
pub fn describe_text(manifest: &Manifest, location: &str, details: bool) -> String {
    let none = |value: &Option<String>| value.clone().unwrap_or_else(|| "<none>".into());
    let list = |values: &[String]| {
        if values.is_empty() {
            "*".to_string()
        } else {
            values.join(",")
        }
    };
    let filters = &manifest.filters;
    let mut text = String::new();
    text.push_str(&format!("Name:            {}\n", manifest.name));
    text.push_str("Status:          Completed\n");
    text.push_str(&format!("Location:        {location}\n"));
    text.push_str(&format!("Format version:  {}\n", manifest.format_version));
    text.push_str(&format!("Started:         {}\n", manifest.started_at));
    text.push_str(&format!("Completed:       {}\n", manifest.completed_at));
    text.push_str(&format!(
        "Source:\n  Server:        {}\n  Context:       {}\n  Version:       {}\n",
        manifest.source.server,
        none(&manifest.source.context),
        none(&manifest.source.kubernetes_version)
    ));
    text.push_str("Filters:\n");
    text.push_str(&format!(
        "  Namespaces:    include {} exclude {}\n",
        list(&filters.include_namespaces),
        if filters.exclude_namespaces.is_empty() {
            "<none>".into()
        } else {
            filters.exclude_namespaces.join(",")
        }
    ));
    text.push_str(&format!(
        "  Resources:     include {} exclude {}\n",
        list(&filters.include_resources),
        if filters.exclude_resources.is_empty() {
            "<none>".into()
        } else {
            filters.exclude_resources.join(",")
        }
    ));
    text.push_str(&format!("  Selector:      {}\n", none(&filters.selector)));
    text.push_str(&format!(
        "  Cluster-scoped: {}\n",
        filters.include_cluster_resources
    ));
    text.push_str(&format!("Objects:         {}\n", manifest.counts.total));
    let mut table = Table::new(&["resource", "count"]);
    for (resource, count) in &manifest.counts.by_resource {
        table.add_row([resource.clone(), count.to_string()]);
    }
    for line in table.render(false).lines() {
        text.push_str(&format!("  {line}\n"));
    }
    if details {
        text.push_str("Details:\n");
        let mut table = Table::new(&["resource", "namespace", "name", "sha256"]);
        for entry in &manifest.objects {
            table.add_row([
                entry.object.group_resource(),
                entry.object.namespace.clone().unwrap_or_default(),
                entry.object.name.clone(),
                entry.sha256.clone(),
            ]);
        }
        for line in table.render(false).lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

/// Lists every image with the workloads that use it.
fn print_images(
    objects: &[(format::ManifestObject, serde_json::Value)],
    output: OutputFormat,
) -> Result<()> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (entry, object) in objects {
        for image in images_of(object) {
            let user = format!("{}/{}", entry.object.kind, entry.object.display_name());
            let list = users.entry(image).or_default();
            if !list.contains(&user) {
                list.push(user);
            }
        }
    }
    match output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let items: Vec<serde_json::Value> = users
                .iter()
                .map(|(image, workloads)| serde_json::json!({"image": image, "workloads": workloads}))
                .collect();
            shared::output::print_structured(&items, output)
        }
        _ => {
            let mut table = Table::new(&["image", "workloads"]);
            for (image, workloads) in users {
                table.add_row([image, workloads.join(",")]);
            }
            shared::output::print(&table.render(false))
        }
    }
}

async fn logs(args: BackupNameArgs) -> Result<()> {
    format::validate_name("backup", &args.name).map_err(Error::usage)?;
    let store = open_store(&args.location, false).await?;
    match store.get(&format::log_key(&args.name)).await {
        Ok(bytes) => shared::output::print(&String::from_utf8_lossy(&bytes)),
        Err(error) if error.is_not_found() => {
            read_manifest(&store, &args.name).await?;
            Err(Error::failed(format!("backup {} has no log", args.name)))
        }
        Err(error) => Err(error.into()),
    }
}

async fn delete(args: BackupNameArgs) -> Result<()> {
    format::validate_name("backup", &args.name).map_err(Error::usage)?;
    let store = open_store(&args.location, false).await?;
    let keys = store.list(&format::backup_prefix(&args.name)).await?;
    if keys.is_empty() {
        return Err(Error::failed(format!(
            "backup {} not found in {}",
            args.name,
            store.url()
        )));
    }
    // The manifest goes first, so an interrupted delete leaves an incomplete backup, never a
    // complete-looking one with objects missing.
    let manifest = format::manifest_key(&args.name);
    if keys.iter().any(|o| o.key == manifest) {
        store.delete(&manifest).await?;
    }
    delete_keys(
        &store,
        keys.into_iter()
            .map(|o| o.key)
            .filter(|k| *k != manifest)
            .collect(),
    )
    .await?;
    shared::output::print(&format!("backup {} deleted\n", args.name))
}

async fn delete_keys(store: &Store, keys: Vec<String>) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(keys)
        .map(|key| async move { store.delete(&key).await })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .map_err(Error::from)?;
    Ok(())
}

async fn verify(args: BackupNameArgs) -> Result<()> {
    let store = open_store(&args.location, false).await?;
    let manifest = read_manifest(&store, &args.name).await?;
    let object_problems = verify_objects(&store, &manifest).await;
    let record_problems = verify_files(&store, &manifest.volume_records).await;
    let volumes = crate::volumes::verify_step(&store, &args.name).await?;
    if let Some(volumes) = &volumes {
        shared::output::print(&volumes.line)?;
    }

    // Objects, volume records and volume chunks are counted apart, each with its own noun.
    let mut counts = Vec::new();
    if !object_problems.is_empty() {
        counts.push(format!(
            "{} of {} objects missing or changed",
            object_problems.len(),
            manifest.counts.total
        ));
    }
    if !record_problems.is_empty() {
        counts.push(format!(
            "{} of {} volume records missing or changed",
            record_problems.len(),
            manifest.volume_records.len()
        ));
    }
    let volume_problems = volumes.map(|v| (v.problems, v.chunks)).unwrap_or_default();
    if !volume_problems.0.is_empty() {
        counts.push(format!(
            "{} problems in the volume data (intact chunks: {})",
            volume_problems.0.len(),
            volume_problems.1
        ));
    }
    if counts.is_empty() {
        return shared::output::print(&format!(
            "backup {} verified: {} objects match their SHA-256\n",
            args.name, manifest.counts.total
        ));
    }
    for problem in object_problems
        .iter()
        .chain(&record_problems)
        .chain(&volume_problems.0)
    {
        eprintln!("kubectl-migrate: {problem}");
    }
    Err(Error::failed(format!(
        "backup {} failed verification: {}",
        args.name,
        counts.join(", ")
    )))
}

/// Recomputes the hash of each listed file and returns one line per missing or changed one.
async fn verify_files(store: &Store, files: &[format::StoredFile]) -> Vec<String> {
    use futures::StreamExt;
    let results: Vec<Option<String>> = futures::stream::iter(files)
        .map(|file| async move {
            match store.get(&file.key).await {
                Ok(bytes) if format::sha256_hex(&bytes) == file.sha256 => None,
                Ok(bytes) => Some(format!(
                    "{}: SHA-256 {} does not match the manifest's {}",
                    file.key,
                    format::sha256_hex(&bytes),
                    file.sha256
                )),
                Err(error) => Some(format!("{}: {error}", file.key)),
            }
        })
        .buffered(32)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

/// Recomputes every object's hash and returns one line per missing or changed object.
pub async fn verify_objects(store: &Store, manifest: &Manifest) -> Vec<String> {
    use futures::StreamExt;
    let results: Vec<Option<String>> = futures::stream::iter(manifest.objects.iter())
        .map(|entry| async move {
            match store.get(&entry.key).await {
                Ok(bytes) if format::sha256_hex(&bytes) == entry.sha256 => None,
                Ok(bytes) => Some(format!(
                    "{}: SHA-256 {} does not match the manifest's {}",
                    entry.key,
                    format::sha256_hex(&bytes),
                    entry.sha256
                )),
                Err(error) => Some(format!("{}: {error}", entry.key)),
            }
        })
        .buffered(32)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}
