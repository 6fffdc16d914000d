//! `set-weight`, `set-header`, `set-cookie`, `clear-rules` and `abort`: changes of the rules of an
//! existing canary, checked before they are written.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use shared::{Error, Result};

use crate::annotations::{self, CanaryAnnotations, CanaryRules, HeaderMatch, HeaderRule};
use crate::cli::{AbortArgs, DryRun, SetCookieArgs, SetHeaderArgs, SetWeightArgs, TargetArgs};
use crate::cluster::Cluster;
use crate::commands::{print_warnings, reject_errors, write_object};
use crate::httproute::{self, RouteCanary};
use crate::ingress;
use crate::lint::{self, Finding};
use crate::target::{self, Canary, RolloutState};

/// A change of the rules and of the rollout state of one canary.
pub type Change<'a> = dyn FnMut(&mut CanaryRules, &mut Option<RolloutState>) -> Result<()> + 'a;

/// Applies `change` to the canary of `canary` and writes it, after the pre-flight checks pass.
pub async fn apply_change(
    cluster: &Cluster,
    canary: &Canary,
    dry_run: DryRun,
    change: &mut Change<'_>,
) -> Result<String> {
    canary.require_rules()?;
    let ready = cluster.ready_endpoints().await?;
    let mut warnings = Vec::new();
    let written = match canary {
        Canary::Nginx(pair) => {
            let others: Vec<Ingress> = pair
                .all
                .iter()
                .filter(|i| ingress::name_of(i) != pair.canary_name)
                .cloned()
                .collect();
            let name = pair.canary_name.clone();
            let resource = format!("ingress.networking.k8s.io/{name}");
            write_object(
                &cluster.ingresses(),
                "Ingress",
                &name,
                &resource,
                dry_run,
                |object: &mut Ingress| {
                    warnings = change_ingress(object, &others, &ready, change)?;
                    Ok(())
                },
            )
            .await?
        }
        Canary::Gateway(route) => {
            let name = route.route.metadata.name.clone().unwrap_or_default();
            let resource = format!("httproute.gateway.networking.k8s.io/{name}");
            let object_name = format!("httproute/{name}");
            write_object(
                &cluster.routes(),
                "HTTPRoute",
                &name,
                &resource,
                dry_run,
                |object: &mut DynamicObject| {
                    warnings = change_route(object, &object_name, &ready, change)?;
                    Ok(())
                },
            )
            .await?
        }
    };
    print_warnings(&warnings);
    Ok(written)
}

fn change_ingress(
    object: &mut Ingress,
    others: &[Ingress],
    ready: &lint::ReadyEndpoints,
    change: &mut Change<'_>,
) -> Result<Vec<Finding>> {
    let mut map = ingress::annotations_of(&object.metadata);
    if !CanaryAnnotations::from_map(&map).is_canary() {
        return Err(Error::failed(format!(
            "Ingress {} is no longer a canary: run kubectl canary status",
            ingress::name_of(object)
        )));
    }
    let mut rules = CanaryAnnotations::from_map(&map).effective_rules();
    let mut rollout = target::rollout_state(Some(&map));
    change(&mut rules, &mut rollout)?;

    CanaryAnnotations::from_rules(&rules).write_to(&mut map);
    write_rollout(&mut map, rollout.as_ref());
    object.metadata.annotations = Some(map);

    let mut all = others.to_vec();
    all.push(object.clone());
    reject_errors(&lint::lint_canary(object, &all, ready))
}

fn change_route(
    object: &mut DynamicObject,
    object_name: &str,
    ready: &lint::ReadyEndpoints,
    change: &mut Change<'_>,
) -> Result<Vec<Finding>> {
    let mut spec = target::route_spec(object)?;
    let mut state: RouteCanary = target::route_state(object)?.ok_or_else(|| {
        Error::failed(format!(
            "{object_name} no longer has a canary: run kubectl canary status"
        ))
    })?;
    let mut map = object.metadata.annotations.clone().unwrap_or_default();
    let mut rollout = target::rollout_state(Some(&map));
    change(&mut state.rules, &mut rollout)?;

    let warnings = reject_errors(&lint::lint_route_canary(object_name, &state, ready))?;
    httproute::apply_canary(&mut spec, &state).map_err(Error::failed)?;
    write_route(object, &spec, &state, &mut map)?;
    write_rollout(&mut map, rollout.as_ref());
    object.metadata.annotations = Some(map);
    Ok(warnings)
}

/// Stores the spec and the canary annotation of an HTTPRoute.
pub fn write_route(
    object: &mut DynamicObject,
    spec: &httproute::HttpRouteSpec,
    state: &RouteCanary,
    map: &mut BTreeMap<String, String>,
) -> Result<()> {
    let spec = serde_json::to_value(spec)
        .map_err(|e| Error::failed(format!("failed to encode the HTTPRoute spec: {e}")))?;
    let state = serde_json::to_string(state)
        .map_err(|e| Error::failed(format!("failed to encode the canary state: {e}")))?;
    object.data["spec"] = spec;
    map.insert(annotations::ROUTE_STATE.to_string(), state);
    Ok(())
}

/// Stores or removes the rollout state annotation.
pub fn write_rollout(map: &mut BTreeMap<String, String>, rollout: Option<&RolloutState>) {
    match rollout.and_then(|state| serde_json::to_string(state).ok()) {
        Some(text) => {
            map.insert(annotations::ROLLOUT_STATE.to_string(), text);
        }
        None => {
            map.remove(annotations::ROLLOUT_STATE);
        }
    }
}

/// Runs `set-weight`.
pub async fn set_weight(cluster: &Cluster, args: &SetWeightArgs) -> Result<()> {
    let canary = target::resolve(cluster, &args.target).await?;
    let current = canary.require_rules()?;
    let total = args.total.unwrap_or(current.total);
    crate::weight::check_weight(args.weight, total).map_err(Error::usage)?;
    let mut change = |rules: &mut CanaryRules, _: &mut Option<RolloutState>| {
        rules.weight = args.weight;
        rules.total = total;
        Ok(())
    };
    let written = apply_change(cluster, &canary, args.dry_run, &mut change).await?;
    shared::output::print(&written)?;
    report(
        &canary,
        args.dry_run,
        &format!("weight {}/{total}", args.weight),
    )
}

/// Runs `set-header`.
pub async fn set_header(cluster: &Cluster, args: &SetHeaderArgs) -> Result<()> {
    let canary = target::resolve(cluster, &args.target).await?;
    let matcher = match (&args.value, &args.pattern) {
        (Some(value), _) => HeaderMatch::Value(value.clone()),
        (None, Some(pattern)) => HeaderMatch::Pattern(pattern.clone()),
        (None, None) => HeaderMatch::AlwaysNever,
    };
    let header = HeaderRule {
        name: args.header.clone(),
        matcher,
    };
    let mut change = |rules: &mut CanaryRules, _: &mut Option<RolloutState>| {
        rules.header = Some(header.clone());
        Ok(())
    };
    let written = apply_change(cluster, &canary, args.dry_run, &mut change).await?;
    shared::output::print(&written)?;
    let described = crate::commands::describe_header(&CanaryRules {
        header: Some(header.clone()),
        ..CanaryRules::default()
    });
    report(&canary, args.dry_run, &described.unwrap_or_default())
}

/// Runs `set-cookie`.
pub async fn set_cookie(cluster: &Cluster, args: &SetCookieArgs) -> Result<()> {
    let canary = target::resolve(cluster, &args.target).await?;
    let mut change = |rules: &mut CanaryRules, _: &mut Option<RolloutState>| {
        rules.cookie = Some(args.cookie.clone());
        Ok(())
    };
    let written = apply_change(cluster, &canary, args.dry_run, &mut change).await?;
    shared::output::print(&written)?;
    report(
        &canary,
        args.dry_run,
        &format!("cookie {}=always|never", args.cookie),
    )
}

/// Runs `clear-rules`.
pub async fn clear_rules(cluster: &Cluster, args: &TargetArgs) -> Result<()> {
    let canary = target::resolve(cluster, args).await?;
    let mut change = |rules: &mut CanaryRules, _: &mut Option<RolloutState>| {
        rules.header = None;
        rules.cookie = None;
        Ok(())
    };
    let written = apply_change(cluster, &canary, DryRun::None, &mut change).await?;
    shared::output::print(&written)?;
    report(&canary, DryRun::None, "no header or cookie rules")
}

/// Runs `abort`: weight 0, no header or cookie rules, and an Aborted rollout if one is running.
pub async fn abort(cluster: &Cluster, args: &AbortArgs) -> Result<()> {
    let canary = target::resolve(cluster, &args.target).await?;
    let written = abort_canary(
        cluster,
        &canary,
        args.dry_run,
        "aborted by kubectl canary abort",
    )
    .await?;
    shared::output::print(&written)?;
    report(
        &canary,
        args.dry_run,
        "all traffic to stable (weight 0, no header or cookie rules)",
    )
}

/// Sends all traffic of a canary back to stable and marks its rollout Aborted with `reason`.
pub async fn abort_canary(
    cluster: &Cluster,
    canary: &Canary,
    dry_run: DryRun,
    reason: &str,
) -> Result<String> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut change = |rules: &mut CanaryRules, rollout: &mut Option<RolloutState>| {
        rules.weight = 0;
        rules.header = None;
        rules.cookie = None;
        if let Some(state) = rollout.as_mut()
            && state.phase != "Completed"
        {
            state.phase = "Aborted".to_string();
            state.message = Some(reason.to_string());
            state.updated_at = now.clone();
        }
        Ok(())
    };
    apply_change(cluster, canary, dry_run, &mut change).await
}

fn report(canary: &Canary, dry_run: DryRun, what: &str) -> Result<()> {
    if dry_run == DryRun::Client {
        return Ok(());
    }
    eprintln!(
        "canary of {} {} now has {what}",
        canary.kind(),
        canary.primary_name()
    );
    Ok(())
}
