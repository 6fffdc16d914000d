//! Command-line definition of `kubectl migrate`.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use shared::completion::CompletionArgs;
use shared::{KubeArgs, OutputArgs};

use crate::filter::ClusterResources;
use crate::store::Addressing;

const EXAMPLES: &str = "\
Examples:
  # Back up the namespace shop into the default local folder
  kubectl migrate backup create shop-1 --include-namespaces shop

  # Restore it into the cluster of the current context, under a new namespace name
  kubectl migrate restore create --from-backup shop-1 --namespace-mappings shop:shop-new

  # Keep backups in a KS3 bucket
  kubectl migrate location add ks3 s3://team-backups/prod \\
      --endpoint https://ks3-cn-beijing.ksyuncs.com --region cn-beijing --credentials-file ~/.ks3
";

/// Back up Kubernetes resources and restore them into another cluster.
#[derive(Parser, Debug)]
#[command(name = "kubectl-migrate", bin_name = "kubectl migrate", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `kubectl migrate`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, inspect, verify and delete backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore a backup into the cluster of the current context, and inspect restores.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Configure backup locations (folders and S3 buckets).
    #[command(subcommand)]
    Location(LocationCommand),
    /// Write a shell completion script for kubectl-migrate (bash, zsh or fish).
    Completion(CompletionArgs),
    /// Move volume data (run by the agent pods): back up a folder, restore a snapshot, wait
    /// for a restore in a pod's init container.
    #[command(subcommand)]
    Agent(crate::agent::AgentCommand),
}

/// `--location` and the S3 settings used when it is a URL.
#[derive(Args, Debug, Clone, Default)]
pub struct LocationArgs {
    /// Backup location: a configured location's name, or a file:// or s3:// URL.
    /// Defaults to the default location (see `kubectl migrate location get`).
    #[arg(long, value_name = "NAME|URL")]
    pub location: Option<String>,

    #[command(flatten)]
    pub s3: S3Args,
}

/// S3 settings for a location given as a URL, or stored by `location add`.
#[derive(Args, Debug, Clone, Default)]
pub struct S3Args {
    /// S3 endpoint URL, such as https://ks3-cn-beijing.ksyuncs.com; AWS when unset.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// S3 region name used to sign requests.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Bucket addressing: auto (path-style for IP addresses and localhost), path or virtual.
    #[arg(long, value_enum, value_name = "STYLE")]
    pub addressing: Option<Addressing>,

    /// AWS INI credentials file (aws_access_key_id/aws_secret_access_key or
    /// ksyun_access_key_id/ksyun_access_key_secret); without it the AWS_* variables are used.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Profile (section) of the credentials file.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

/// Namespace and resource filters shared by backup and restore.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Namespaces to include, as globs separated by commas (default: all).
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub include_namespaces: Vec<String>,

    /// Namespaces to leave out, as globs separated by commas.
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub exclude_namespaces: Vec<String>,

    /// Resource types to include (kubectl names, short names or resource.group), separated
    /// by commas. Naming events, nodes, leases or endpoints brings them back.
    #[arg(long, value_delimiter = ',', value_name = "RESOURCES")]
    pub include_resources: Vec<String>,

    /// Resource types to leave out, separated by commas.
    #[arg(long, value_delimiter = ',', value_name = "RESOURCES")]
    pub exclude_resources: Vec<String>,

    /// Label selector of the objects to include, such as app=web,tier!=cache.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Cluster-scoped objects: auto takes those the included objects need (CRDs, PVs,
    /// StorageClasses, IngressClasses, PriorityClasses, bound ClusterRoles).
    #[arg(long, value_enum, default_value_t = ClusterResources::Auto, value_name = "MODE")]
    pub include_cluster_resources: ClusterResources,

    /// Also include kube-system, kube-public and kube-node-lease.
    #[arg(long)]
    pub include_system_namespaces: bool,
}

/// `kubectl migrate backup ...`
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Back up the resources of the current context's cluster, then the selected pod volumes;
    /// the backup is complete only when both succeeded.
    Create(BackupCreateArgs),
    /// List backups, or show one.
    Get(BackupGetArgs),
    /// Show a backup's manifest: counts, filters, source; --details lists every object.
    Describe(BackupDescribeArgs),
    /// Print a backup's log.
    Logs(BackupNameArgs),
    /// Delete a backup and all its files.
    Delete(BackupNameArgs),
    /// Recompute the SHA-256 of every object and volume record and compare it with the
    /// manifest, then open every chunk of the backup's volume data.
    Verify(BackupNameArgs),
}

/// Arguments of `backup create`.
#[derive(Args, Debug)]
pub struct BackupCreateArgs {
    /// Backup name: lowercase letters, digits and '-'.
    pub name: String,

    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Also back up objects owned by a controller that is itself backed up (pods of
    /// ReplicaSets, ReplicaSets of Deployments, Jobs of CronJobs). Without it, a pod whose
    /// emptyDir data is copied is still kept.
    #[arg(long)]
    pub include_owned: bool,

    /// Concurrent LIST requests.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Objects per LIST page.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub page_size: u32,

    #[command(flatten)]
    pub volumes: Box<crate::volumes::VolumeBackupArgs>,
}

/// Arguments of `backup get`.
#[derive(Args, Debug)]
pub struct BackupGetArgs {
    /// Show only this backup.
    pub name: Option<String>,

    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `backup describe`.
#[derive(Args, Debug)]
pub struct BackupDescribeArgs {
    /// Backup name.
    pub name: String,

    /// List every object.
    #[arg(long)]
    pub details: bool,

    /// List every container image the backup references, with the workloads using it.
    #[arg(long)]
    pub images: bool,

    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// A backup name and its location.
#[derive(Args, Debug)]
pub struct BackupNameArgs {
    /// Backup name.
    pub name: String,

    #[command(flatten)]
    pub location: LocationArgs,
}

/// `kubectl migrate restore ...`
#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Restore a backup into the cluster of the current context. Volume data goes into the
    /// restored PersistentVolumeClaims before the workloads exist, and into the emptyDir
    /// volumes of restored pods, which are created before their controllers and wait in an
    /// init container until the data is back.
    Create(Box<RestoreCreateArgs>),
    /// List restores.
    Get(RestoreGetArgs),
    /// Show a restore's result: counts and each object's outcome.
    Describe(RestoreDescribeArgs),
}

/// Value of `--existing-resource-policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExistingPolicy {
    /// Leave existing objects as they are.
    #[default]
    None,
    /// Replace existing objects that differ from the backup.
    Update,
}

/// Value of `--dry-run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    /// Create the objects.
    #[default]
    None,
    /// Send every create with dryRun=All: the target validates, nothing is written.
    Server,
}

/// Arguments of `restore create`.
#[derive(Args, Debug)]
pub struct RestoreCreateArgs {
    /// Restore name (default: the backup name and a timestamp).
    pub name: Option<String>,

    /// The backup to restore.
    #[arg(long, value_name = "BACKUP")]
    pub from_backup: String,

    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub volumes: Box<crate::volumes::VolumeArgs>,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Namespace renames, old:new separated by commas.
    #[arg(long, value_name = "OLD:NEW,...")]
    pub namespace_mappings: Option<String>,

    /// StorageClass renames for PVs, PVCs and StatefulSet volumeClaimTemplates, old:new,...
    #[arg(long, value_name = "OLD:NEW,...")]
    pub storage_class_mappings: Option<String>,

    /// Image prefix rewrites, old-registry/prefix=new-registry/prefix,...
    #[arg(long, value_name = "OLD=NEW,...")]
    pub image_mappings: Option<String>,

    /// Policy for objects that already exist in the target: none leaves them, update replaces those
    /// that differ from the backup.
    #[arg(long, value_enum, default_value_t = ExistingPolicy::None, value_name = "POLICY")]
    pub existing_resource_policy: ExistingPolicy,

    /// Keep Service nodePorts instead of letting the target assign new ones.
    #[arg(long)]
    pub preserve_nodeports: bool,

    /// none creates the objects; server validates every create on the target without writing.
    #[arg(long, value_enum, default_value_t = DryRun::None, value_name = "MODE")]
    pub dry_run: DryRun,

    /// Concurrent creates inside one phase.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub concurrency: u16,

    /// Time to wait for CRDs to become Established, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub crd_timeout: u64,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `restore get`.
#[derive(Args, Debug)]
pub struct RestoreGetArgs {
    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `restore describe`.
#[derive(Args, Debug)]
pub struct RestoreDescribeArgs {
    /// Restore name.
    pub name: String,

    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// `kubectl migrate location ...`
#[derive(Subcommand, Debug)]
pub enum LocationCommand {
    /// Add a location, or replace one of the same name.
    Add(LocationAddArgs),
    /// List the configured locations.
    Get(LocationGetArgs),
    /// Make a location the default.
    SetDefault(LocationNameArgs),
    /// Remove a location from the configuration (its files stay).
    Delete(LocationNameArgs),
}

/// Arguments of `location add`.
#[derive(Args, Debug)]
pub struct LocationAddArgs {
    /// Location name.
    pub name: String,

    /// file:///absolute/folder or s3://bucket/prefix.
    pub url: String,

    #[command(flatten)]
    pub s3: S3Args,

    /// Reject every write through this location, as for the source's bucket in the target.
    #[arg(long)]
    pub read_only: bool,

    /// Make it the default location.
    #[arg(long)]
    pub default: bool,
}

/// Arguments of `location get`.
#[derive(Args, Debug)]
pub struct LocationGetArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A location name.
#[derive(Args, Debug)]
pub struct LocationNameArgs {
    /// Location name.
    pub name: String,
}

/// Returns the command definition named as the binary, for completion scripts.
pub fn command_for_scripts() -> clap::Command {
    Cli::command().bin_name("kubectl-migrate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backup_create_parses_filters() {
        let cli = Cli::try_parse_from([
            "kubectl-migrate",
            "backup",
            "create",
            "b1",
            "--include-namespaces",
            "shop,web-*",
            "--exclude-resources",
            "secrets",
            "-l",
            "app=web",
            "--include-cluster-resources",
            "false",
        ])
        .unwrap();
        let Command::Backup(BackupCommand::Create(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.filters.include_namespaces, ["shop", "web-*"]);
        assert_eq!(args.filters.exclude_resources, ["secrets"]);
        assert_eq!(args.filters.selector.as_deref(), Some("app=web"));
        assert_eq!(
            args.filters.include_cluster_resources,
            ClusterResources::False
        );
        assert_eq!(args.concurrency, 8);
    }

    #[test]
    fn restore_create_requires_a_backup() {
        let error = Cli::try_parse_from(["kubectl-migrate", "restore", "create"]).unwrap_err();
        assert!(error.to_string().contains("--from-backup"), "{error}");
    }

    #[test]
    fn dry_run_takes_server() {
        let cli = Cli::try_parse_from([
            "kubectl-migrate",
            "restore",
            "create",
            "--from-backup",
            "b1",
            "--dry-run=server",
        ])
        .unwrap();
        let Command::Restore(RestoreCommand::Create(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.dry_run, DryRun::Server);
    }
}
