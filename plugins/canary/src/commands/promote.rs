//! `promote`: the primary takes the canary Service, then the canary goes away.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use shared::{Error, Result};

use crate::annotations;
use crate::cli::{DryRun, PromoteArgs};
use crate::cluster::Cluster;
use crate::commands::{print_object, write_object};
use crate::httproute;
use crate::ingress;
use crate::target::{self, Canary, NginxCanary};

/// Runs `promote`.
pub async fn run(cluster: &Cluster, args: &PromoteArgs) -> Result<()> {
    let canary = target::resolve(cluster, &args.target).await?;
    canary.require_rules()?;
    promote(cluster, &canary, args.dry_run).await
}

/// Promotes a resolved canary.
pub async fn promote(cluster: &Cluster, canary: &Canary, dry_run: DryRun) -> Result<()> {
    match canary {
        Canary::Nginx(pair) => promote_ingress(cluster, pair, dry_run).await,
        Canary::Gateway(route) => promote_route(cluster, &route.route, dry_run).await,
    }
}

/// Returns the stable Services of the primary's paths that the canary shadows.
fn shadowed_services(primary: &Ingress, canary: &Ingress) -> Vec<String> {
    let canary_entries = ingress::path_entries(canary);
    let mut services: Vec<String> = ingress::path_entries(primary)
        .into_iter()
        .filter(|e| {
            canary_entries
                .iter()
                .any(|c| c.host == e.host && c.path == e.path)
        })
        .map(|e| e.service)
        .collect();
    services.sort();
    services.dedup();
    services
}

async fn promote_ingress(cluster: &Cluster, pair: &NginxCanary, dry_run: DryRun) -> Result<()> {
    let canary = pair
        .canary
        .as_ref()
        .expect("require_rules checked the canary");
    let canary_name = ingress::name_of(canary).to_string();
    let primary_name = ingress::name_of(&pair.primary).to_string();

    // Validate everything before the first write.
    let canary_services = ingress::services_of(canary);
    let [canary_service] = canary_services.as_slice() else {
        return Err(Error::failed(format!(
            "canary Ingress {canary_name} sends to {} Services ({}), so promote cannot tell which one replaces stable: leave one Service in it",
            canary_services.len(),
            canary_services.join(", ")
        )));
    };
    let port = ingress::first_port(canary);
    let stable: Vec<String> = shadowed_services(&pair.primary, canary)
        .into_iter()
        .filter(|s| s != canary_service)
        .collect();
    if stable.is_empty() && !shadowed_services(&pair.primary, canary).contains(canary_service) {
        return Err(Error::failed(format!(
            "canary Ingress {canary_name} shares no host and path with {primary_name}: run kubectl canary lint"
        )));
    }

    if dry_run == DryRun::Client {
        let mut promoted = pair.primary.clone();
        for service in &stable {
            ingress::retarget_backends(&mut promoted, service, canary_service, port.as_ref());
        }
        eprintln!(
            "would point Ingress {primary_name} from {} to Service {canary_service}, then delete canary Ingress {canary_name}",
            stable.join(", ")
        );
        return print_object(&promoted);
    }

    // Step 1: the primary takes the canary Service.
    let server = dry_run == DryRun::Server;
    let resource = format!("ingress.networking.k8s.io/{primary_name}");
    let written = write_object(
        &cluster.ingresses(),
        "Ingress",
        &primary_name,
        &resource,
        dry_run,
        |primary: &mut Ingress| {
            for service in &stable {
                ingress::retarget_backends(primary, service, canary_service, port.as_ref());
            }
            Ok(())
        },
    )
    .await?;
    shared::output::print(&written)?;

    // Step 2: the canary goes.
    if let Err(error) = cluster.delete_ingress(&canary_name, server).await {
        return Err(Error::failed(format!(
            "promote is half done: Ingress {primary_name} now sends to Service {canary_service}, but deleting the canary Ingress {canary_name} failed ({error}); traffic already reaches {canary_service} only, so finish with: kubectl delete ingress {canary_name} -n {}",
            cluster.namespace
        )));
    }
    let suffix = if server { " (server dry run)" } else { "" };
    shared::output::print(&format!(
        "ingress.networking.k8s.io/{canary_name} deleted{suffix}\n"
    ))
}

async fn promote_route(cluster: &Cluster, route: &DynamicObject, dry_run: DryRun) -> Result<()> {
    let name = route.metadata.name.clone().unwrap_or_default();
    let resource = format!("httproute.gateway.networking.k8s.io/{name}");
    let written = write_object(
        &cluster.routes(),
        "HTTPRoute",
        &name,
        &resource,
        dry_run,
        |object: &mut DynamicObject| {
            let Some(state) = target::route_state(object)? else {
                return Err(Error::failed(format!(
                    "HTTPRoute {name} no longer has a canary"
                )));
            };
            let mut spec = target::route_spec(object)?;
            httproute::promote_canary(&mut spec, &state);
            object.data["spec"] = serde_json::to_value(&spec)
                .map_err(|e| Error::failed(format!("failed to encode the HTTPRoute spec: {e}")))?;
            let mut map: BTreeMap<String, String> =
                object.metadata.annotations.clone().unwrap_or_default();
            map.remove(annotations::ROUTE_STATE);
            map.remove(annotations::ROLLOUT_STATE);
            object.metadata.annotations = Some(map);
            Ok(())
        },
    )
    .await?;
    shared::output::print(&written)
}
