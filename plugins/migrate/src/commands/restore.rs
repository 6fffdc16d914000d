//! `kubectl migrate restore create|get|describe`.

use std::time::Duration;

use shared::{Error, KubeArgs, OutputFormat, Result, Table};

use crate::cli::{DryRun, RestoreCommand, RestoreCreateArgs, RestoreDescribeArgs, RestoreGetArgs};
use crate::format;
use crate::mappings::{Mappings, parse_image_mappings, parse_pairs};
use crate::restore::plan::PlanOptions;
use crate::restore::result::{Outcome, RestoreResult};
use crate::restore::{RestoreRequest, create_restore};
use crate::sanitize::SanitizeOptions;
use crate::store::Store;

use super::open_store;

/// Runs one `restore` subcommand.
pub async fn run(kube: &KubeArgs, command: RestoreCommand) -> Result<()> {
    match command {
        RestoreCommand::Create(args) => create(kube, *args).await,
        RestoreCommand::Get(args) => get(args).await,
        RestoreCommand::Describe(args) => describe(args).await,
    }
}

/// Parses the three mapping flags; a malformed entry is a usage error.
pub fn parse_mappings(args: &RestoreCreateArgs) -> Result<Mappings> {
    let pairs = |flag: &str, value: &Option<String>| match value {
        Some(value) => parse_pairs(flag, value).map_err(Error::usage),
        None => Ok(Default::default()),
    };
    Ok(Mappings {
        namespaces: pairs("--namespace-mappings", &args.namespace_mappings)?,
        storage_classes: pairs("--storage-class-mappings", &args.storage_class_mappings)?,
        images: match &args.image_mappings {
            Some(value) => parse_image_mappings(value).map_err(Error::usage)?,
            None => Vec::new(),
        },
    })
}

async fn create(kube: &KubeArgs, args: RestoreCreateArgs) -> Result<()> {
    // Every flag is checked before the location or the cluster is touched.
    let mappings = parse_mappings(&args)?;
    format::validate_name("backup", &args.from_backup).map_err(Error::usage)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_restore_name(&args.from_backup),
    };
    format::validate_name("restore", &name).map_err(Error::usage)?;

    let store = open_store(&args.location, true).await?;
    let target = kube.load().await?;
    let client = target.client()?;
    let request = RestoreRequest {
        name: name.clone(),
        backup: args.from_backup.clone(),
        include_namespaces: args.filters.include_namespaces.clone(),
        exclude_namespaces: args.filters.exclude_namespaces.clone(),
        include_resources: args.filters.include_resources.clone(),
        exclude_resources: args.filters.exclude_resources.clone(),
        selector: args.filters.selector.clone(),
        include_system_namespaces: args.filters.include_system_namespaces,
        plan: PlanOptions {
            mappings,
            sanitize: SanitizeOptions {
                preserve_node_ports: args.preserve_nodeports,
            },
            skip_cluster_scoped: args.filters.include_cluster_resources
                == crate::filter::ClusterResources::False,
        },
        existing: args.existing_resource_policy,
        dry_run: args.dry_run == DryRun::Server,
        concurrency: usize::from(args.concurrency),
        crd_timeout: Duration::from_secs(args.crd_timeout),
        target_context: target.context.clone(),
        target_server: target.config.cluster_url.to_string(),
        volumes: Some(crate::volumes::VolumeRestore {
            store_config: crate::volumes::resolve_store_config(&args.location)?,
            args: (*args.volumes).clone(),
        }),
    };

    let result = create_restore(&client, &store, &request).await?;
    save_result(&store, &result).await;
    print_result(&result, args.output.output, false)?;
    if result.has_failures() {
        return Err(Error::Exit(shared::error::EXIT_FAILURE));
    }
    Ok(())
}

/// Returns `<backup>-<UTC time>` as a default restore name, cut to 63 characters.
fn default_restore_name(backup: &str) -> String {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y%m%d%H%M%S")
        .to_string();
    let mut base = backup.to_string();
    base.truncate(63 - now.len() - 1);
    format!("{}-{now}", base.trim_end_matches('-'))
}

/// Saves the result next to the backups; a read-only location keeps nothing, with a warning.
async fn save_result(store: &Store, result: &RestoreResult) {
    if store.is_read_only() {
        eprintln!(
            "kubectl-migrate: warning: {} is read-only, so the result of restore {} is not saved",
            store.url(),
            result.name
        );
        return;
    }
    let bytes = serde_json::to_vec_pretty(result).unwrap_or_default();
    if let Err(error) = store
        .put(&format::restore_result_key(&result.name), &bytes)
        .await
    {
        eprintln!(
            "kubectl-migrate: warning: failed to save the result of restore {}: {error}",
            result.name
        );
    }
}

/// Prints the outcome: per-resource counts, then every skipped or failed object with its
/// reason (every object with `details`).
pub fn print_result(result: &RestoreResult, output: OutputFormat, details: bool) -> Result<()> {
    if matches!(output, OutputFormat::Json | OutputFormat::Yaml) {
        return shared::output::print_structured(result, output);
    }
    let mut text = String::new();
    if !result.preflight.is_empty() {
        text.push_str("Pre-flight problems:\n");
        for problem in &result.preflight {
            text.push_str(&format!("  {problem}\n"));
        }
        text.push('\n');
    }

    let mut table = Table::new(&[
        "resource",
        "created",
        "unchanged",
        "updated",
        "skipped",
        "failed",
    ]);
    for (resource, counts) in result.rows_by_resource() {
        let mut row = vec![resource];
        row.extend(counts.iter().map(|c| c.to_string()));
        table.add_row(row);
    }
    text.push_str(&table.render(false));

    let listed: Vec<_> = result
        .items
        .iter()
        .filter(|i| details || matches!(i.outcome, Outcome::Skipped | Outcome::Failed))
        .collect();
    if !listed.is_empty() {
        text.push('\n');
        let mut table = Table::new(&["kind", "namespace", "name", "outcome", "reason"]);
        for item in listed {
            table.add_row([
                item.kind.clone(),
                item.namespace.clone().unwrap_or_default(),
                item.name.clone(),
                item.outcome.as_str().to_string(),
                item.reason.clone().unwrap_or_default(),
            ]);
        }
        text.push_str(&table.render(false));
    }

    let counts = &result.counts;
    text.push_str(&format!(
        "\nrestore {}{} from backup {}: {} created, {} unchanged, {} updated, {} skipped, {} failed\n",
        result.name,
        if result.dry_run { " (server dry run, nothing written)" } else { "" },
        result.backup,
        counts.get("created").unwrap_or(&0),
        counts.get("unchanged").unwrap_or(&0),
        counts.get("updated").unwrap_or(&0),
        counts.get("skipped").unwrap_or(&0),
        counts.get("failed").unwrap_or(&0),
    ));
    shared::output::print(&text)
}

async fn read_result(store: &Store, name: &str) -> Result<RestoreResult> {
    format::validate_name("restore", name).map_err(Error::usage)?;
    let bytes = store.get(&format::restore_result_key(name)).await.map_err(|error| {
        if error.is_not_found() {
            Error::failed(format!("restore {name} not found in {}: list restores with `kubectl migrate restore get`", store.url()))
        } else {
            error.into()
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|error| Error::failed(format!("invalid result of restore {name}: {error}")))
}

async fn get(args: RestoreGetArgs) -> Result<()> {
    let store = open_store(&args.location, false).await?;
    let keys = store.list("restores/").await?;
    let mut results = Vec::new();
    for object in keys.iter().filter(|o| o.key.ends_with("/result.json")) {
        let name = object
            .key
            .trim_start_matches("restores/")
            .trim_end_matches("/result.json");
        results.push(read_result(&store, name).await?);
    }
    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&results, args.output.output)
        }
        OutputFormat::Name => shared::output::print(
            &results
                .iter()
                .map(|r| format!("restore/{}\n", r.name))
                .collect::<String>(),
        ),
        _ => {
            if results.is_empty() {
                eprintln!("No restores found in {}.", store.url());
                return Ok(());
            }
            let mut table = Table::new(&[
                "name",
                "backup",
                "status",
                "created",
                "unchanged",
                "updated",
                "skipped",
                "failed",
                "completed",
            ]);
            for result in &results {
                let status = match (result.has_failures(), result.dry_run) {
                    (true, _) => "PartiallyFailed",
                    (false, true) => "DryRun",
                    (false, false) => "Completed",
                };
                let count = |o: &str| result.counts.get(o).copied().unwrap_or(0).to_string();
                table.add_row([
                    result.name.clone(),
                    result.backup.clone(),
                    status.to_string(),
                    count("created"),
                    count("unchanged"),
                    count("updated"),
                    count("skipped"),
                    count("failed"),
                    result.completed_at.clone(),
                ]);
            }
            shared::output::print(&table.render(false))
        }
    }
}

async fn describe(args: RestoreDescribeArgs) -> Result<()> {
    let store = open_store(&args.location, false).await?;
    let result = read_result(&store, &args.name).await?;
    if !matches!(args.output.output, OutputFormat::Json | OutputFormat::Yaml) {
        let header = format!(
            "Name:       {}\nBackup:     {}\nTarget:     {} ({})\nStarted:    {}\nCompleted:  {}\nDry run:    {}\nExisting:   {}\n\n",
            result.name,
            result.backup,
            result.target_server,
            result
                .target_context
                .clone()
                .unwrap_or_else(|| "<none>".into()),
            result.started_at,
            result.completed_at,
            result.dry_run,
            result.existing_resource_policy
        );
        shared::output::print(&header)?;
    }
    print_result(&result, args.output.output, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid() {
        let name = default_restore_name(&"b".repeat(63));
        assert!(format::validate_name("restore", &name).is_ok(), "{name}");
        assert!(default_restore_name("shop").starts_with("shop-"));
    }
}
