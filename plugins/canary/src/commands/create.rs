//! `create`: a canary Ingress cloned from the primary, or a canary backendRef and rules on an
//! HTTPRoute.

use kube::api::DynamicObject;
use shared::{Error, Result};

use crate::annotations::{CanaryRules, HeaderMatch, HeaderRule};
use crate::cli::{CreateArgs, DryRun, TargetArgs};
use crate::cluster::Cluster;
use crate::commands::modify::write_route;
use crate::commands::{
    check_findings, describe_rules, print_object, print_warnings, reject_errors, write_object,
};
use crate::httproute::{self, RouteCanary};
use crate::ingress::{self, CanaryBackend};
use crate::lint;
use crate::target::{self, Canary, NginxCanary};

/// Builds the canary rules from the flags of `create`.
pub fn rules_from_args(args: &CreateArgs) -> Result<CanaryRules> {
    crate::weight::check_weight(args.weight, args.total).map_err(Error::usage)?;
    let header = args.header.header.as_ref().map(|name| HeaderRule {
        name: name.clone(),
        matcher: match (&args.header.header_value, &args.header.header_pattern) {
            (Some(value), _) => HeaderMatch::Value(value.clone()),
            (None, Some(pattern)) => HeaderMatch::Pattern(pattern.clone()),
            (None, None) => HeaderMatch::AlwaysNever,
        },
    });
    Ok(CanaryRules {
        weight: args.weight,
        total: args.total,
        header,
        cookie: args.cookie.clone(),
    })
}

/// Runs `create`.
pub async fn run(cluster: &Cluster, args: &CreateArgs) -> Result<()> {
    let rules = rules_from_args(args)?;
    let target = TargetArgs {
        name: args.primary.clone(),
        provider: args.provider,
        canary_name: args.canary_name.clone(),
    };
    let canary = target::resolve(cluster, &target).await?;
    if !cluster.service_exists(&args.service).await? {
        return Err(Error::failed(format!(
            "Service {} not found in namespace {}: create the canary's Service first",
            args.service, cluster.namespace
        )));
    }
    match canary {
        Canary::Nginx(pair) => create_ingress(cluster, args, &pair, &rules).await,
        Canary::Gateway(route) => create_on_route(cluster, args, &route.route, &rules).await,
    }
}

async fn create_ingress(
    cluster: &Cluster,
    args: &CreateArgs,
    pair: &NginxCanary,
    rules: &CanaryRules,
) -> Result<()> {
    let primary_name = ingress::name_of(&pair.primary);
    if args.primary != primary_name {
        return Err(Error::failed(format!(
            "Ingress {} is itself a canary (of {primary_name}): name the primary Ingress",
            args.primary
        )));
    }
    if let Some(existing) = &pair.canary {
        return Err(Error::failed(format!(
            "Ingress {primary_name} already has the canary Ingress {}: change it with set-weight, set-header or set-cookie, or remove it with promote or abort",
            ingress::name_of(existing)
        )));
    }
    if pair
        .all
        .iter()
        .any(|i| ingress::name_of(i) == pair.canary_name)
    {
        return Err(Error::failed(format!(
            "an Ingress named {} already exists: pass --name with another name",
            pair.canary_name
        )));
    }

    let backend = CanaryBackend {
        service: args.service.clone(),
        port: args.port,
    };
    let canary = ingress::clone_as_canary(&pair.primary, &pair.canary_name, &backend, rules);
    let mut all = pair.all.clone();
    all.push(canary.clone());
    let ready = cluster.ready_endpoints().await?;
    check_findings(&lint::lint_canary(&canary, &all, &ready))?;

    if args.dry_run == DryRun::Client {
        return print_object(&canary);
    }
    cluster
        .create_ingress(&canary, args.dry_run == DryRun::Server)
        .await?;
    let suffix = if args.dry_run == DryRun::Server {
        " (server dry run)"
    } else {
        ""
    };
    shared::output::print(&format!(
        "ingress.networking.k8s.io/{} created{suffix}: canary of {primary_name} to Service {}, {}\n",
        pair.canary_name,
        args.service,
        describe_rules(rules)
    ))
}

async fn create_on_route(
    cluster: &Cluster,
    args: &CreateArgs,
    route: &DynamicObject,
    rules: &CanaryRules,
) -> Result<()> {
    let name = route.metadata.name.clone().unwrap_or_default();
    if target::route_state(route)?.is_some() {
        return Err(already_has_canary(&name));
    }
    let spec = target::route_spec(route)?;
    let stable_service = match &args.stable_service {
        Some(service) => service.clone(),
        None => match httproute::stable_services(&spec).as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(Error::failed(format!(
                    "HTTPRoute {name} sends to no Service, so it has no stable backend to split"
                )));
            }
            many => {
                return Err(Error::usage(format!(
                    "HTTPRoute {name} sends to several Services ({}): pass --stable-service",
                    many.join(", ")
                )));
            }
        },
    };
    let stable_ref = spec
        .rules
        .iter()
        .flat_map(|rule| &rule.backend_refs)
        .find(|backend| backend.name == stable_service)
        .cloned();
    let state = RouteCanary {
        stable_service: stable_service.clone(),
        stable_weight: stable_ref.as_ref().and_then(|b| b.weight),
        canary_service: args.service.clone(),
        canary_port: args
            .port
            .or_else(|| stable_ref.as_ref().and_then(|b| b.port)),
        rules: rules.clone(),
    };

    let ready = cluster.ready_endpoints().await?;
    let object_name = format!("httproute/{name}");
    let resource = format!("httproute.gateway.networking.k8s.io/{name}");
    let mut warnings = Vec::new();
    let written = write_object(
        &cluster.routes(),
        "HTTPRoute",
        &name,
        &resource,
        args.dry_run,
        |object: &mut DynamicObject| {
            if target::route_state(object)?.is_some() {
                return Err(already_has_canary(&name));
            }
            let mut spec = target::route_spec(object)?;
            warnings = reject_errors(&lint::lint_route_canary(&object_name, &state, &ready))?;
            httproute::apply_canary(&mut spec, &state).map_err(Error::failed)?;
            let mut map = object.metadata.annotations.clone().unwrap_or_default();
            write_route(object, &spec, &state, &mut map)?;
            object.metadata.annotations = Some(map);
            Ok(())
        },
    )
    .await?;
    print_warnings(&warnings);
    shared::output::print(&written)?;
    if args.dry_run != DryRun::Client {
        eprintln!(
            "canary of HTTPRoute {name}: Service {} beside {stable_service}, {}",
            args.service,
            describe_rules(rules)
        );
    }
    Ok(())
}

fn already_has_canary(route: &str) -> Error {
    Error::failed(format!(
        "HTTPRoute {route} already has a canary: change it with set-weight, set-header or set-cookie, or remove it with promote or abort"
    ))
}
