//! `status` and `lint`: the canaries of a namespace (or all), their services, endpoints, rules,
//! rollout progress and the pre-flight findings.

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use shared::{Error, OutputFormat, Result, ResultExt, Table};

use crate::cli::{LintArgs, Provider, StatusArgs, TargetArgs};
use crate::cluster::{Cluster, httproute_resource};
use crate::commands::describe_header;
use crate::httproute;
use crate::ingress;
use crate::lint::{self, Finding, ReadyEndpoints};
use crate::target::{self, Canary, GatewayCanary, NginxCanary, RolloutState};

/// A Service and its ready endpoint count.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceEndpoints {
    /// Service name.
    pub name: String,
    /// Ready endpoints.
    pub ready: usize,
}

/// The state of one canary as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Namespace.
    pub namespace: String,
    /// Primary Ingress or HTTPRoute.
    pub primary: String,
    /// nginx or gateway-api.
    pub provider: String,
    /// Canary Ingress (nginx) or the HTTPRoute itself (gateway-api); null without a canary.
    pub canary: Option<String>,
    /// Hosts served.
    pub hosts: Vec<String>,
    /// Paths served, with their pathType.
    pub paths: Vec<String>,
    /// Stable Services.
    pub stable: Vec<ServiceEndpoints>,
    /// Canary Service.
    pub canary_service: Option<ServiceEndpoints>,
    /// Canary weight.
    pub weight: Option<u32>,
    /// Weight total.
    pub total: Option<u32>,
    /// Header rule.
    pub header: Option<String>,
    /// Cookie rule.
    pub cookie: Option<String>,
    /// Rollout progress.
    pub rollout: Option<RolloutState>,
    /// Pre-flight findings.
    pub findings: Vec<Finding>,
}

fn endpoints(name: &str, ready: &ReadyEndpoints) -> ServiceEndpoints {
    ServiceEndpoints {
        name: name.to_string(),
        ready: ready.get(name).copied().unwrap_or(0),
    }
}

fn nginx_status(namespace: &str, pair: &NginxCanary, ready: &ReadyEndpoints) -> CanaryStatus {
    let entries = ingress::path_entries(&pair.primary);
    let mut hosts: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.host.is_empty() {
                "*".to_string()
            } else {
                e.host.clone()
            }
        })
        .collect();
    hosts.dedup();
    let canary_entries = pair
        .canary
        .as_ref()
        .map(ingress::path_entries)
        .unwrap_or_default();
    let mut stable: Vec<String> = entries
        .iter()
        .filter(|e| {
            canary_entries.is_empty()
                || canary_entries
                    .iter()
                    .any(|c| c.host == e.host && c.path == e.path)
        })
        .map(|e| e.service.clone())
        .collect();
    stable.sort();
    stable.dedup();

    let rules = pair
        .canary
        .as_ref()
        .map(|c| ingress::canary_annotations(c).effective_rules());
    let findings = match &pair.canary {
        Some(canary) => lint::lint_canary(canary, &pair.all, ready),
        None => Vec::new(),
    };
    CanaryStatus {
        namespace: namespace.to_string(),
        primary: ingress::name_of(&pair.primary).to_string(),
        provider: Provider::Nginx.name().to_string(),
        canary: pair
            .canary
            .as_ref()
            .map(|c| ingress::name_of(c).to_string()),
        hosts,
        paths: entries
            .iter()
            .map(|e| format!("{} ({})", e.path, e.path_type))
            .collect(),
        stable: stable.iter().map(|s| endpoints(s, ready)).collect(),
        canary_service: pair
            .canary
            .as_ref()
            .and_then(|c| ingress::services_of(c).first().map(|s| endpoints(s, ready))),
        weight: rules.as_ref().map(|r| r.weight),
        total: rules.as_ref().map(|r| r.total),
        header: rules.as_ref().and_then(describe_header),
        cookie: rules.as_ref().and_then(|r| r.cookie.clone()),
        rollout: pair
            .canary
            .as_ref()
            .and_then(|c| target::rollout_state(c.metadata.annotations.as_ref())),
        findings,
    }
}

fn gateway_status(namespace: &str, route: &GatewayCanary, ready: &ReadyEndpoints) -> CanaryStatus {
    let name = route.route.metadata.name.clone().unwrap_or_default();
    let paths = route
        .spec
        .rules
        .iter()
        .filter(|rule| !httproute::is_canary_rule(rule))
        .flat_map(|rule| {
            if rule.matches.is_empty() {
                vec!["/ (PathPrefix)".to_string()]
            } else {
                rule.matches
                    .iter()
                    .map(|m| match &m.path {
                        Some(p) => format!(
                            "{} ({})",
                            p.value.as_deref().unwrap_or("/"),
                            p.kind.as_deref().unwrap_or("PathPrefix")
                        ),
                        None => "/ (PathPrefix)".to_string(),
                    })
                    .collect()
            }
        })
        .collect();
    let state = route.state.as_ref();
    let stable = match state {
        Some(s) => vec![s.stable_service.clone()],
        None => httproute::stable_services(&route.spec),
    };
    let object = format!("httproute/{name}");
    CanaryStatus {
        namespace: namespace.to_string(),
        primary: name.clone(),
        provider: Provider::GatewayApi.name().to_string(),
        canary: state.map(|_| name.clone()),
        hosts: if route.spec.hostnames.is_empty() {
            vec!["*".to_string()]
        } else {
            route.spec.hostnames.clone()
        },
        paths,
        stable: stable.iter().map(|s| endpoints(s, ready)).collect(),
        canary_service: state.map(|s| endpoints(&s.canary_service, ready)),
        weight: state.map(|s| s.rules.weight),
        total: state.map(|s| s.rules.total),
        header: state.and_then(|s| describe_header(&s.rules)),
        cookie: state.and_then(|s| s.rules.cookie.clone()),
        rollout: target::rollout_state(route.route.metadata.annotations.as_ref()),
        findings: state
            .map(|s| lint::lint_route_canary(&object, s, ready))
            .unwrap_or_default(),
    }
}

/// Collects the status of every canary in the cluster's namespace.
async fn namespace_statuses(cluster: &Cluster) -> Result<Vec<CanaryStatus>> {
    let all = cluster.list_ingresses().await?;
    let routes = cluster.list_routes().await?;
    let ready = cluster.ready_endpoints().await?;
    let mut statuses = Vec::new();

    for canary in all.iter().filter(|i| ingress::is_canary(i)) {
        let primaries = ingress::primaries_of(canary, &all);
        let primary = primaries
            .first()
            .map(|p| (*p).clone())
            .unwrap_or_else(|| canary.clone());
        let pair = NginxCanary {
            primary,
            canary: Some(canary.clone()),
            canary_name: ingress::name_of(canary).to_string(),
            all: all.clone(),
        };
        let mut status = nginx_status(&cluster.namespace, &pair, &ready);
        if primaries.is_empty() {
            status.primary = String::new();
        }
        statuses.push(status);
    }
    for route in routes {
        let route = target::gateway_canary(route)?;
        if route.state.is_some() {
            statuses.push(gateway_status(&cluster.namespace, &route, &ready));
        }
    }
    Ok(statuses)
}

/// Lists the namespaces that hold canary Ingresses or HTTPRoutes with a canary.
async fn canary_namespaces(cluster: &Cluster) -> Result<Vec<String>> {
    let ingresses: Api<Ingress> = Api::all(cluster.client.clone());
    let mut namespaces: Vec<String> = ingresses
        .list(&ListParams::default())
        .await
        .context(|| "failed to list Ingresses in all namespaces".to_string())?
        .items
        .iter()
        .filter(|i| ingress::is_canary(i))
        .filter_map(|i| i.metadata.namespace.clone())
        .collect();
    let routes: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &httproute_resource());
    match routes.list(&ListParams::default()).await {
        Ok(list) => namespaces.extend(
            list.items
                .iter()
                .filter(|r| {
                    r.metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(crate::annotations::ROUTE_STATE))
                })
                .filter_map(|r| r.metadata.namespace.clone()),
        ),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => {
            return Err(error)
                .context(|| "failed to list HTTPRoutes in all namespaces".to_string());
        }
    }
    namespaces.sort();
    namespaces.dedup();
    Ok(namespaces)
}

/// Collects the statuses that `status` or `lint` requests.
async fn collect(
    cluster: &Cluster,
    name: Option<&str>,
    all_namespaces: bool,
    provider: Option<Provider>,
    canary_name: Option<&str>,
) -> Result<Vec<CanaryStatus>> {
    if let Some(name) = name {
        let target = TargetArgs {
            name: name.to_string(),
            provider,
            canary_name: canary_name.map(str::to_string),
        };
        let canary = target::resolve(cluster, &target).await?;
        let ready = cluster.ready_endpoints().await?;
        return Ok(vec![match &canary {
            Canary::Nginx(pair) => nginx_status(&cluster.namespace, pair, &ready),
            Canary::Gateway(route) => gateway_status(&cluster.namespace, route, &ready),
        }]);
    }
    if !all_namespaces {
        return namespace_statuses(cluster).await;
    }
    let mut statuses = Vec::new();
    for namespace in canary_namespaces(cluster).await? {
        let scoped = Cluster {
            client: cluster.client.clone(),
            namespace,
        };
        statuses.extend(namespace_statuses(&scoped).await?);
    }
    Ok(statuses)
}

fn cell(value: Option<String>) -> String {
    value.unwrap_or_default()
}

/// Renders statuses as a kubectl-style table followed by their findings.
pub fn render(statuses: &[CanaryStatus], all_namespaces: bool) -> String {
    let mut headers = vec![
        "name",
        "provider",
        "canary",
        "hosts",
        "paths",
        "stable",
        "canary-service",
        "weight",
        "rules",
        "rollout",
    ];
    if all_namespaces {
        headers.insert(0, "namespace");
    }
    let mut table = Table::new(&headers);
    for status in statuses {
        let services = |list: &[ServiceEndpoints]| {
            list.iter()
                .map(|s| format!("{} ({} ready)", s.name, s.ready))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut rules: Vec<String> = Vec::new();
        rules.extend(status.header.clone());
        rules.extend(
            status
                .cookie
                .as_ref()
                .map(|c| format!("cookie {c}=always|never")),
        );
        let rollout = status
            .rollout
            .as_ref()
            .map(|r| format!("{} {}/{}", r.phase, r.applied, r.steps.len()));
        let mut row = vec![
            status.primary.clone(),
            status.provider.clone(),
            cell(status.canary.clone()),
            status.hosts.join(","),
            status.paths.join(","),
            services(&status.stable),
            status
                .canary_service
                .as_ref()
                .map(|s| services(std::slice::from_ref(s)))
                .unwrap_or_default(),
            match (status.weight, status.total) {
                (Some(weight), Some(total)) => format!("{weight}/{total}"),
                _ => String::new(),
            },
            rules.join(","),
            cell(rollout),
        ];
        if all_namespaces {
            row.insert(0, status.namespace.clone());
        }
        table.add_row(row);
    }

    let mut text = table.render(false);
    let findings: Vec<&Finding> = statuses.iter().flat_map(|s| &s.findings).collect();
    if !findings.is_empty() {
        text.push_str("\nWarnings:\n");
        for finding in findings {
            text.push_str(&format!("  {}\n", finding.line()));
        }
    }
    text
}

/// Runs `status`.
pub async fn status(cluster: &Cluster, args: &StatusArgs) -> Result<()> {
    let statuses = collect(
        cluster,
        args.name.as_deref(),
        args.all_namespaces,
        args.provider,
        args.canary_name.as_deref(),
    )
    .await?;
    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&statuses, args.output.output)
        }
        OutputFormat::Name => {
            let names: String = statuses
                .iter()
                .filter_map(|s| {
                    s.canary.as_ref().map(|c| match s.provider.as_str() {
                        "nginx" => format!("ingress.networking.k8s.io/{c}\n"),
                        _ => format!("httproute.gateway.networking.k8s.io/{c}\n"),
                    })
                })
                .collect();
            shared::output::print(&names)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            if statuses.is_empty() {
                let place = if args.all_namespaces {
                    "any namespace".to_string()
                } else {
                    format!("namespace {}", cluster.namespace)
                };
                eprintln!("No canaries found in {place}.");
                return Ok(());
            }
            shared::output::print(&render(&statuses, args.all_namespaces))
        }
    }
}

/// Runs `lint`: exit 1 when errors exist, or warnings with `--strict`.
pub async fn lint(cluster: &Cluster, args: &LintArgs) -> Result<()> {
    let statuses = collect(
        cluster,
        args.name.as_deref(),
        args.all_namespaces,
        args.provider,
        args.canary_name.as_deref(),
    )
    .await?;
    let mut findings: Vec<Finding> = statuses.iter().flat_map(|s| s.findings.clone()).collect();
    if args.name.is_none() && !args.all_namespaces {
        // Ingresses with canary-* annotations but no canary: "true" are not in any status.
        let all = cluster.list_ingresses().await?;
        for finding in lint::lint_ingresses(&all, &cluster.ready_endpoints().await?) {
            if !findings.contains(&finding) {
                findings.push(finding);
            }
        }
    }

    match args.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            shared::output::print_structured(&findings, args.output.output)?
        }
        _ => {
            let mut text = String::new();
            for finding in &findings {
                text.push_str(&finding.line());
                text.push('\n');
            }
            if findings.is_empty() {
                text = format!(
                    "no problems found in {} canaries\n",
                    statuses.iter().filter(|s| s.canary.is_some()).count()
                );
            }
            shared::output::print(&text)?;
        }
    }

    let errors = findings
        .iter()
        .filter(|f| f.severity == lint::Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    if errors > 0 {
        return Err(Error::failed(format!(
            "{errors} errors and {warnings} warnings found"
        )));
    }
    if args.strict && warnings > 0 {
        return Err(Error::failed(format!(
            "{warnings} warnings found, and --strict fails on warnings"
        )));
    }
    Ok(())
}
