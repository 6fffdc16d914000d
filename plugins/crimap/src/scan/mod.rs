//! `kubectl crimap scan`: workloads in the cluster or in manifest files that depend on Docker.

pub mod cluster;
pub mod detect;
pub mod manifests;

use serde::Serialize;
use shared::output::{Table, print, print_structured};
use shared::{Error, KubeArgs, OutputFormat, Result};

use crate::cli::ScanArgs;
use detect::Finding;

/// A workload with the Docker dependencies found in its pod template or pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    /// Kind of the workload: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod,
    /// or the kind of an owner this plugin does not read (an Argo Rollout, for example).
    pub kind: String,
    /// Namespace; `None` for a manifest without one.
    pub namespace: Option<String>,
    /// Workload name.
    pub name: String,
    /// Origin: `cluster`, or the file path with the document number.
    pub source: String,
    /// Dependencies found, sorted.
    pub findings: Vec<Finding>,
}

/// The whole scan result, as printed with `-o json|yaml`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// Number of workloads scanned (owners, after folding pods into them).
    pub scanned: usize,
    /// Workloads with at least one finding.
    pub workloads: Vec<WorkloadReport>,
}

/// Scans the cluster or the files given with `-f` and prints the findings.
pub async fn run(kube: &KubeArgs, args: &ScanArgs) -> Result<()> {
    let (scanned, workloads) = if args.filename.is_empty() {
        let target = kube.load().await?;
        let client = target.client()?;
        let namespace = (!args.all_namespaces).then_some(target.namespace.as_str());
        let reports = cluster::scan(client, namespace, args.selector.as_deref()).await?;
        (reports.len(), reports)
    } else {
        let reports = manifests::scan_paths(&args.filename, args.recursive)?;
        (reports.len(), reports)
    };

    let with_findings: Vec<WorkloadReport> = workloads
        .into_iter()
        .filter(|workload| !workload.findings.is_empty())
        .collect();
    let found = !with_findings.is_empty();
    print_report(
        &ScanReport {
            scanned,
            workloads: with_findings,
        },
        args.output.output,
    )?;

    if found && args.exit_code {
        return Err(Error::Exit(1));
    }
    Ok(())
}

fn print_report(report: &ScanReport, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => print_structured(report, format),
        OutputFormat::Name => {
            let names: String = report
                .workloads
                .iter()
                .map(|workload| format!("{}/{}\n", resource_name(&workload.kind), workload.name))
                .collect();
            print(&names)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            if report.workloads.is_empty() {
                eprintln!(
                    "No Docker dependencies found in {} workload{}.",
                    report.scanned,
                    if report.scanned == 1 { "" } else { "s" }
                );
                return Ok(());
            }
            print(&render_table(
                &report.workloads,
                format == OutputFormat::Wide,
            ))
        }
    }
}

/// Renders one row per finding, grouped by workload; `wide` adds where each was read.
pub fn render_table(workloads: &[WorkloadReport], wide: bool) -> String {
    let mut table = Table::new(&["namespace", "workload", "container", "finding", "detail"])
        .with_wide_columns(&["source"]);
    for workload in workloads {
        for finding in &workload.findings {
            table.add_row([
                workload.namespace.clone().unwrap_or_default(),
                format!("{}/{}", resource_name(&workload.kind), workload.name),
                finding.container.clone().unwrap_or_default(),
                finding.kind.name().to_string(),
                finding.detail.clone(),
                workload.source.clone(),
            ]);
        }
    }
    table.render(wide)
}

/// Returns kubectl's `resource.group` name of a workload kind, as `kubectl get -o name` prints it.
pub fn resource_name(kind: &str) -> String {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            format!("{}.apps", kind.to_lowercase())
        }
        "Job" | "CronJob" => format!("{}.batch", kind.to_lowercase()),
        other => other.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detect::FindingKind;

    #[test]
    fn table_has_one_row_per_finding() {
        let workloads = vec![WorkloadReport {
            kind: "DaemonSet".into(),
            namespace: Some("logging".into()),
            name: "fluentd".into(),
            source: "cluster".into(),
            findings: vec![Finding {
                kind: FindingKind::DockerDataDir,
                container: Some("fluentd".into()),
                detail: "hostPath /var/lib/docker/containers mounted at /var/lib/docker/containers"
                    .into(),
            }],
        }];
        assert_eq!(
            render_table(&workloads, false),
            "NAMESPACE   WORKLOAD                 CONTAINER   FINDING           DETAIL\n\
             logging     daemonset.apps/fluentd   fluentd     docker-data-dir   hostPath /var/lib/docker/containers mounted at /var/lib/docker/containers\n"
        );
    }

    #[test]
    fn resource_names_carry_group() {
        assert_eq!(resource_name("Deployment"), "deployment.apps");
        assert_eq!(resource_name("CronJob"), "cronjob.batch");
        assert_eq!(resource_name("Pod"), "pod");
    }
}
