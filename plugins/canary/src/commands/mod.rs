//! The subcommands: each module fetches, decides through the pure modules, and writes.

pub mod convert;
pub mod create;
pub mod explain;
pub mod modify;
pub mod promote;
pub mod rollout;
pub mod status;
pub mod verify;

use kube::api::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{Error, KubeArgs, Result};

use crate::cli::DryRun;
use crate::cluster::{self, Cluster, Updated};
use crate::lint::{Finding, Severity, has_errors};

/// Connects to the cluster the global flags select.
pub async fn connect(kube: &KubeArgs) -> Result<Cluster> {
    let target = kube.load().await?;
    Ok(Cluster {
        client: target.client()?,
        namespace: target.namespace,
    })
}

/// Prints warnings to stderr and turns errors into a failure, so that nothing is written.
pub fn check_findings(findings: &[Finding]) -> Result<()> {
    let warnings = reject_errors(findings)?;
    print_warnings(&warnings);
    Ok(())
}

/// Prints findings to stderr, one line each.
pub fn print_warnings(warnings: &[Finding]) {
    for warning in warnings {
        eprintln!("{}", warning.line());
    }
}

/// Turns errors among the findings into a failure and returns the warnings.
///
/// Checks inside a write retried on conflict use this and print the warnings once afterwards.
pub fn reject_errors(findings: &[Finding]) -> Result<Vec<Finding>> {
    if has_errors(findings) {
        let lines: Vec<String> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| format!("  {}", f.line()))
            .collect();
        return Err(Error::failed(format!(
            "pre-flight checks failed, so nothing was written:\n{}",
            lines.join("\n")
        )));
    }
    Ok(findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .cloned()
        .collect())
}

/// Prints an object as YAML, without managedFields, for `--dry-run=client`.
pub fn print_object<K: Serialize>(object: &K) -> Result<()> {
    let mut value = serde_json::to_value(object)
        .map_err(|e| Error::failed(format!("failed to encode the object: {e}")))?;
    shared::output::strip_managed_fields(&mut value);
    shared::output::print_structured(&value, shared::OutputFormat::Yaml)
}

/// Applies `change` to a fresh copy of the object and writes it as `dry_run` selects: printed only,
/// validated by the server, or stored with a resourceVersion precondition and conflict retries.
/// `resource` is the kubectl name of the object such as `ingress.networking.k8s.io/web`.
///
/// Returns the kubectl-style line that reports the write (`... configured`), which is empty
/// for a client dry run because the object itself was printed.
pub async fn write_object<K, F>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    resource: &str,
    dry_run: DryRun,
    mut change: F,
) -> Result<String>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + PartialEq,
    F: FnMut(&mut K) -> Result<()>,
{
    if dry_run == DryRun::Client {
        let mut object = api.get(name).await.map_err(|source| Error::Api {
            context: format!("failed to get {kind} {name}"),
            source,
        })?;
        change(&mut object)?;
        print_object(&object)?;
        return Ok(String::new());
    }

    let server = dry_run == DryRun::Server;
    let outcome = cluster::update_with(api, kind, name, server, change).await?;
    let suffix = if server { " (server dry run)" } else { "" };
    let verb = match outcome {
        Updated::Written(_) => "configured",
        Updated::Unchanged(_) => "unchanged",
    };
    Ok(format!("{resource} {verb}{suffix}\n"))
}

/// Describes canary rules in one line, such as `weight 10/100, header X-Canary=always|never`.
pub fn describe_rules(rules: &crate::annotations::CanaryRules) -> String {
    let mut parts = vec![format!("weight {}/{}", rules.weight, rules.total)];
    if let Some(header) = describe_header(rules) {
        parts.push(header);
    }
    if let Some(cookie) = &rules.cookie {
        parts.push(format!("cookie {cookie}=always|never"));
    }
    parts.join(", ")
}

/// Describes the header rule, if any.
pub fn describe_header(rules: &crate::annotations::CanaryRules) -> Option<String> {
    use crate::annotations::HeaderMatch;
    rules.header.as_ref().map(|header| match &header.matcher {
        HeaderMatch::AlwaysNever => format!("header {}=always|never", header.name),
        HeaderMatch::Value(value) => format!("header {}={value}", header.name),
        HeaderMatch::Pattern(pattern) => format!("header {}=~{pattern}", header.name),
    })
}
