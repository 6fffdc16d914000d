//! Resolution of the NAME argument to a canary: an Ingress pair for ingress-nginx or an HTTPRoute
//! for the Gateway API, with provider detection and errors that list what exists.

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use shared::{Error, Result};

use crate::annotations::{self, CanaryRules};
use crate::cli::{Provider, TargetArgs};
use crate::cluster::Cluster;
use crate::httproute::{HttpRouteSpec, RouteCanary};
use crate::ingress;

/// A primary Ingress and its canary Ingress, if one exists.
#[derive(Debug, Clone)]
pub struct NginxCanary {
    /// The primary Ingress.
    pub primary: Ingress,
    /// The canary Ingress.
    pub canary: Option<Ingress>,
    /// Name the canary has or gets.
    pub canary_name: String,
    /// Every Ingress of the namespace, for the pre-flight checks.
    pub all: Vec<Ingress>,
}

/// An HTTPRoute and the canary stored on it, if any.
#[derive(Debug, Clone)]
pub struct GatewayCanary {
    /// The HTTPRoute as read.
    pub route: DynamicObject,
    /// Its parsed spec.
    pub spec: HttpRouteSpec,
    /// The canary settings from its annotation.
    pub state: Option<RouteCanary>,
}

/// A canary of either provider.
#[derive(Debug, Clone)]
pub enum Canary {
    /// ingress-nginx.
    Nginx(Box<NginxCanary>),
    /// Gateway API.
    Gateway(Box<GatewayCanary>),
}

impl Canary {
    /// Returns the provider.
    pub fn provider(&self) -> Provider {
        match self {
            Canary::Nginx(_) => Provider::Nginx,
            Canary::Gateway(_) => Provider::GatewayApi,
        }
    }

    /// Returns the name of the primary object.
    pub fn primary_name(&self) -> String {
        match self {
            Canary::Nginx(pair) => ingress::name_of(&pair.primary).to_string(),
            Canary::Gateway(route) => route.route.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// Returns the canary rules, or `None` when no canary exists yet.
    pub fn rules(&self) -> Option<CanaryRules> {
        match self {
            Canary::Nginx(pair) => pair
                .canary
                .as_ref()
                .map(|c| ingress::canary_annotations(c).effective_rules()),
            Canary::Gateway(route) => route.state.as_ref().map(|s| s.rules.clone()),
        }
    }

    /// Returns the canary rules or an error telling how to create the canary.
    pub fn require_rules(&self) -> Result<CanaryRules> {
        self.rules().ok_or_else(|| {
            let name = self.primary_name();
            Error::failed(format!(
                "{} {name} has no canary: create one with kubectl canary create {name} --service SVC",
                self.kind()
            ))
        })
    }

    /// Returns the kind of the primary object.
    pub fn kind(&self) -> &'static str {
        match self {
            Canary::Nginx(_) => "Ingress",
            Canary::Gateway(_) => "HTTPRoute",
        }
    }
}

/// Parses the canary settings stored on an HTTPRoute, if any.
pub fn route_state(route: &DynamicObject) -> Result<Option<RouteCanary>> {
    let name = route.metadata.name.as_deref().unwrap_or("");
    match route.metadata.annotations.as_ref().and_then(|a| a.get(annotations::ROUTE_STATE)) {
        None => Ok(None),
        Some(text) => serde_json::from_str(text).map(Some).map_err(|error| {
            Error::failed(format!(
                "annotation {} on HTTPRoute {name} is not valid canary state ({error}): fix or remove it",
                annotations::ROUTE_STATE
            ))
        }),
    }
}

/// Parses the spec of an HTTPRoute.
pub fn route_spec(route: &DynamicObject) -> Result<HttpRouteSpec> {
    let name = route.metadata.name.as_deref().unwrap_or("");
    let spec = route.data.get("spec").cloned().unwrap_or_default();
    serde_json::from_value(spec).map_err(|error| {
        Error::failed(format!(
            "HTTPRoute {name} has a spec this plugin cannot read: {error}"
        ))
    })
}

/// Builds a [`GatewayCanary`] from a route as read.
pub fn gateway_canary(route: DynamicObject) -> Result<GatewayCanary> {
    Ok(GatewayCanary {
        spec: route_spec(&route)?,
        state: route_state(&route)?,
        route,
    })
}

/// Resolves NAME to a canary, detecting the provider unless `--provider` forces one.
pub async fn resolve(cluster: &Cluster, target: &TargetArgs) -> Result<Canary> {
    let name = target.name.as_str();
    if target.provider != Some(Provider::GatewayApi) {
        let all = cluster.list_ingresses().await?;
        if let Some(found) = all.iter().find(|i| ingress::name_of(i) == name).cloned() {
            return resolve_ingress(found, all, target.canary_name.as_deref())
                .map(|pair| Canary::Nginx(Box::new(pair)));
        }
        if target.provider == Some(Provider::Nginx) {
            return Err(not_found(cluster, name, &all, None).await);
        }
        if let Some(route) = cluster.get_route(name).await? {
            return Ok(Canary::Gateway(Box::new(gateway_canary(route)?)));
        }
        return Err(not_found(cluster, name, &all, Some(cluster.list_routes().await?)).await);
    }

    match cluster.get_route(name).await? {
        Some(route) => Ok(Canary::Gateway(Box::new(gateway_canary(route)?))),
        None => {
            let routes = cluster.list_routes().await?;
            let names = names_of(
                routes
                    .iter()
                    .map(|r| r.metadata.name.clone().unwrap_or_default()),
            );
            Err(Error::failed(format!(
                "HTTPRoute {name} not found in namespace {}: {}",
                cluster.namespace,
                list_or_none("HTTPRoutes", &names, &cluster.namespace)
            )))
        }
    }
}

async fn not_found(
    cluster: &Cluster,
    name: &str,
    all: &[Ingress],
    routes: Option<Vec<DynamicObject>>,
) -> Error {
    let ingresses = names_of(all.iter().map(|i| ingress::name_of(i).to_string()));
    let mut message = match &routes {
        None => format!(
            "Ingress {name} not found in namespace {}: ",
            cluster.namespace
        ),
        Some(_) => format!(
            "no Ingress or HTTPRoute named {name} in namespace {}: ",
            cluster.namespace
        ),
    };
    message.push_str(&list_or_none("Ingresses", &ingresses, &cluster.namespace));
    if let Some(routes) = routes
        && !routes.is_empty()
    {
        let names = names_of(
            routes
                .iter()
                .map(|r| r.metadata.name.clone().unwrap_or_default()),
        );
        message.push_str(&format!("; HTTPRoutes there: {names}"));
    }
    Error::failed(message)
}

fn names_of(names: impl Iterator<Item = String>) -> String {
    let mut names: Vec<String> = names.collect();
    names.sort();
    names.join(", ")
}

fn list_or_none(kind: &str, names: &str, namespace: &str) -> String {
    if names.is_empty() {
        format!("there are no {kind} in namespace {namespace}")
    } else {
        format!("{kind} there: {names}")
    }
}

/// Pairs an Ingress with its canary (or, when NAME is a canary, with its primary).
fn resolve_ingress(
    found: Ingress,
    all: Vec<Ingress>,
    canary_flag: Option<&str>,
) -> Result<NginxCanary> {
    if ingress::is_canary(&found) {
        let primaries = ingress::primaries_of(&found, &all);
        let primary = match primaries.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(Error::failed(format!(
                    "canary Ingress {} matches no primary Ingress with the same host and path: run kubectl canary lint",
                    ingress::name_of(&found)
                )));
            }
            many => {
                let names = names_of(many.iter().map(|i| ingress::name_of(i).to_string()));
                return Err(Error::failed(format!(
                    "canary Ingress {} shares hosts and paths with several primaries ({names}): name one of them",
                    ingress::name_of(&found)
                )));
            }
        };
        return Ok(NginxCanary {
            canary_name: ingress::name_of(&found).to_string(),
            primary,
            canary: Some(found),
            all,
        });
    }

    let primary_name = ingress::name_of(&found).to_string();
    let default_name = format!("{primary_name}-canary");
    let canary_name = canary_flag
        .map(str::to_string)
        .unwrap_or(default_name.clone());
    let mut canary = all
        .iter()
        .find(|i| ingress::name_of(i) == canary_name)
        .cloned();
    // An Ingress with canary-* annotations but without canary: "true" still counts when named,
    // so that explain and status can report that the controller ignores it.
    if let Some(existing) = &canary
        && !ingress::is_canary(existing)
        && !ingress::annotations_of(&existing.metadata)
            .keys()
            .any(|key| key.starts_with(annotations::CANARY))
    {
        return Err(Error::failed(format!(
            "Ingress {canary_name} exists but is not a canary (no nginx.ingress.kubernetes.io/canary: \"true\"): pass --name with another name"
        )));
    }

    // Without --name, a canary with another name attached to this primary counts too.
    let mut canary_name = canary_name;
    if canary.is_none() && canary_flag.is_none() {
        let attached: Vec<&Ingress> = all
            .iter()
            .filter(|i| ingress::is_canary(i))
            .filter(|i| {
                ingress::primaries_of(i, &all)
                    .iter()
                    .any(|p| ingress::name_of(p) == primary_name)
            })
            .collect();
        if let [one] = attached.as_slice() {
            canary_name = ingress::name_of(one).to_string();
            canary = Some((*one).clone());
        }
    }
    Ok(NginxCanary {
        primary: found,
        canary,
        canary_name,
        all,
    })
}

/// Progress of `kubectl canary rollout`, stored as JSON in an annotation on the canary object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    /// Weights of the steps.
    pub steps: Vec<u32>,
    /// Number of steps applied so far.
    pub applied: usize,
    /// Progressing, Paused, Completed or Aborted.
    pub phase: String,
    /// When the rollout started (RFC 3339).
    pub started_at: String,
    /// When the last step was applied or the phase changed (RFC 3339).
    pub updated_at: String,
    /// Reason the rollout stopped, for Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Reads the rollout state from an object's annotations.
pub fn rollout_state(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<RolloutState> {
    annotations
        .and_then(|a| a.get(annotations::ROLLOUT_STATE))
        .and_then(|text| serde_json::from_str(text).ok())
}
