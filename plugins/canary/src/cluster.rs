//! API access of the canary commands: reading Ingresses, HTTPRoutes, Services and EndpointSlices,
//! and resourceVersion-conditioned writes that retry on a conflict.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{Error, Result, ResultExt};

use crate::httproute;
use crate::lint::ReadyEndpoints;

/// Number of times a write is retried after a 409 Conflict before giving up.
pub const CONFLICT_RETRIES: usize = 5;

/// A client bound to one namespace.
#[derive(Clone)]
pub struct Cluster {
    /// Kubernetes client.
    pub client: Client,
    /// Namespace of the commands.
    pub namespace: String,
}

/// Returns the HTTPRoute resource of the Gateway API.
pub fn httproute_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(httproute::GROUP, httproute::VERSION, "HTTPRoute"),
        "httproutes",
    )
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl Cluster {
    /// Returns the Ingress API of the namespace.
    pub fn ingresses(&self) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Returns the HTTPRoute API of the namespace.
    pub fn routes(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &httproute_resource())
    }

    /// Reads an Ingress; `None` when it does not exist.
    pub async fn get_ingress(&self, name: &str) -> Result<Option<Ingress>> {
        self.ingresses().get_opt(name).await.context(|| {
            format!(
                "failed to get Ingress {name} in namespace {}",
                self.namespace
            )
        })
    }

    /// Lists the Ingresses of the namespace.
    pub async fn list_ingresses(&self) -> Result<Vec<Ingress>> {
        let list = self
            .ingresses()
            .list(&ListParams::default())
            .await
            .context(|| format!("failed to list Ingresses in namespace {}", self.namespace))?;
        Ok(list.items)
    }

    /// Reads an HTTPRoute; `None` when it or the HTTPRoute resource type does not exist.
    pub async fn get_route(&self, name: &str) -> Result<Option<DynamicObject>> {
        match self.routes().get_opt(name).await {
            Ok(route) => Ok(route),
            Err(error) if is_status(&error, 404) => Ok(None),
            Err(error) => Err(error).context(|| {
                format!(
                    "failed to get HTTPRoute {name} in namespace {}",
                    self.namespace
                )
            }),
        }
    }

    /// Lists the HTTPRoutes of the namespace; empty when the Gateway API is not installed.
    pub async fn list_routes(&self) -> Result<Vec<DynamicObject>> {
        match self.routes().list(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(error) if is_status(&error, 404) => Ok(Vec::new()),
            Err(error) => Err(error)
                .context(|| format!("failed to list HTTPRoutes in namespace {}", self.namespace)),
        }
    }

    /// Reports whether a Service exists.
    pub async fn service_exists(&self, name: &str) -> Result<bool> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let service = api.get_opt(name).await.context(|| {
            format!(
                "failed to get Service {name} in namespace {}",
                self.namespace
            )
        })?;
        Ok(service.is_some())
    }

    /// Counts ready endpoints per Service from the EndpointSlices of the namespace, falling back
    /// to core Endpoints when the API server serves no EndpointSlices.
    pub async fn ready_endpoints(&self) -> Result<ReadyEndpoints> {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        match slices.list(&ListParams::default()).await {
            Ok(list) => Ok(count_slices(&list.items)),
            Err(error) if is_status(&error, 404) => {
                let endpoints: Api<Endpoints> =
                    Api::namespaced(self.client.clone(), &self.namespace);
                let list = endpoints.list(&ListParams::default()).await.context(|| {
                    format!("failed to list Endpoints in namespace {}", self.namespace)
                })?;
                Ok(count_endpoints(&list.items))
            }
            Err(error) => Err(error).context(|| {
                format!(
                    "failed to list EndpointSlices in namespace {}",
                    self.namespace
                )
            }),
        }
    }

    /// Creates an Ingress (or validates it only, with `dry_run`).
    pub async fn create_ingress(&self, ingress: &Ingress, dry_run: bool) -> Result<Ingress> {
        let name = ingress.metadata.name.clone().unwrap_or_default();
        let params = PostParams {
            dry_run,
            ..PostParams::default()
        };
        self.ingresses().create(&params, ingress).await.context(|| {
            format!(
                "failed to create Ingress {name} in namespace {}",
                self.namespace
            )
        })
    }

    /// Deletes an Ingress.
    pub async fn delete_ingress(&self, name: &str, dry_run: bool) -> Result<()> {
        let params = DeleteParams {
            dry_run,
            ..DeleteParams::default()
        };
        self.ingresses().delete(name, &params).await.context(|| {
            format!(
                "failed to delete Ingress {name} in namespace {}",
                self.namespace
            )
        })?;
        Ok(())
    }
}

/// Counts ready endpoints per Service in EndpointSlices. An endpoint whose `ready` condition is
/// unset counts as ready, as the EndpointSlice API documents for consumers.
pub fn count_slices(slices: &[EndpointSlice]) -> ReadyEndpoints {
    let mut counts = ReadyEndpoints::new();
    for slice in slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("kubernetes.io/service-name"))
        else {
            continue;
        };
        let ready = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|endpoint| {
                endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true)
            })
            .count();
        *counts.entry(service.clone()).or_insert(0) += ready;
    }
    counts
}

/// Counts ready addresses per Service in core Endpoints objects.
pub fn count_endpoints(endpoints: &[Endpoints]) -> ReadyEndpoints {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for object in endpoints {
        let name = object.metadata.name.clone().unwrap_or_default();
        let ready: usize = object
            .subsets
            .iter()
            .flatten()
            .map(|subset| subset.addresses.as_ref().map_or(0, Vec::len))
            .sum();
        *counts.entry(name).or_insert(0) += ready;
    }
    counts
}

/// Outcome of a conditioned update.
#[derive(Debug)]
pub enum Updated<K> {
    /// The object as stored (or as validated, in a server dry run).
    Written(K),
    /// The change would leave the object as it is, so nothing was sent.
    Unchanged(K),
}

/// Reads an object, changes it with `change` and writes it back conditioned on the
/// resourceVersion that was read. On 409 Conflict it reads again and retries, at most
/// [`CONFLICT_RETRIES`] times; `change` receives the fresh object each time and may reject it, in
/// which case nothing is written.
pub async fn update_with<K, F>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    dry_run: bool,
    mut change: F,
) -> Result<Updated<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + PartialEq,
    F: FnMut(&mut K) -> Result<()>,
{
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    for attempt in 0..=CONFLICT_RETRIES {
        let current = api
            .get(name)
            .await
            .context(|| format!("failed to get {kind} {name}"))?;
        let mut updated = current.clone();
        change(&mut updated)?;
        if updated == current {
            return Ok(Updated::Unchanged(current));
        }
        match api.replace(name, &params, &updated).await {
            Ok(stored) => return Ok(Updated::Written(stored)),
            Err(error) if is_status(&error, 409) => {
                tracing::info!(
                    kind,
                    name,
                    attempt,
                    "resourceVersion conflict, reading the object again"
                );
            }
            Err(error) => return Err(error).context(|| format!("failed to update {kind} {name}")),
        }
    }
    Err(Error::failed(format!(
        "failed to update {kind} {name}: it changed {} times while this command tried to write it (409 Conflict), so nothing was written: run the command again",
        CONFLICT_RETRIES + 1
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_count_ready_and_unknown() {
        let slices: Vec<EndpointSlice> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "a", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
             "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                           {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                           {"addresses": ["10.0.0.3"]}]},
            {"metadata": {"name": "b", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
             "endpoints": [{"addresses": ["10.0.0.4"], "conditions": {"ready": true}}]},
            {"metadata": {"name": "c"}, "addressType": "IPv4", "endpoints": []}
        ])).unwrap();
        let counts = count_slices(&slices);
        assert_eq!(counts.get("web"), Some(&3));
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn endpoints_count_ready_addresses() {
        let endpoints: Vec<Endpoints> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}]}]}
        ])).unwrap();
        assert_eq!(count_endpoints(&endpoints).get("web"), Some(&1));
    }
}
