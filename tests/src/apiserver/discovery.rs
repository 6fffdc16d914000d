//! Discovery documents (`/version`, `/api`, `/apis`, per group-version resource lists) and the
//! minimal OpenAPI v3 documents kubectl reads to learn that the server validates fields.

use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use super::http::{ApiRequest, Reply};
use super::resources::{Registry, ResourceType};
use super::status::ApiError;

/// The Kubernetes version this server imitates.
pub(crate) const GIT_VERSION: &str = "v1.32.0";

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Serves discovery paths; `None` when the path is not a discovery path.
pub(crate) fn route(registry: &Registry, segments: &[&str], request: &ApiRequest) -> Option<Reply> {
    let is_discovery = matches!(
        segments,
        ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _]
    );
    if !is_discovery || request.method != hyper::Method::GET {
        return None;
    }
    // Aggregated discovery is not implemented. Clients that also accept plain JSON get the
    // legacy documents, as from a server without aggregation; others get 406 and fall back.
    if request.accept.contains("as=APIGroupDiscoveryList") && !accepts_plain_json(&request.accept) {
        return Some(Reply::from(ApiError::not_acceptable("application/json")));
    }
    match segments {
        ["api"] => Some(Reply::Json(
            200,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        )),
        ["apis"] => Some(Reply::Json(200, group_list(registry))),
        ["api", "v1"] => Some(Reply::Json(200, resource_list(registry, "", "v1"))),
        ["api", _] => None,
        ["apis", group] => group_document(registry, group).map(|doc| Reply::Json(200, doc)),
        ["apis", group, version] => {
            if registry.in_group_version(group, version).is_empty() {
                None
            } else {
                Some(Reply::Json(200, resource_list(registry, group, version)))
            }
        }
        _ => None,
    }
}

/// True when an Accept header allows `application/json` without a profile, or anything.
fn accepts_plain_json(accept: &str) -> bool {
    accept.is_empty()
        || accept.split(',').any(|entry| {
            let entry = entry.trim();
            let media = entry.split(';').next().unwrap_or("").trim();
            let profiled = entry.contains("as=");
            (media == "application/json" && !profiled) || media == "*/*"
        })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(group, versions)| group_entry(group, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_document(registry: &Registry, group: &str) -> Option<Value> {
    let groups = registry.groups();
    let (_, versions) = groups.iter().find(|(name, _)| name == group)?;
    let mut document = group_entry(group, versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Some(document)
}

fn resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for resource in registry.in_group_version(group, version) {
        resources.push(resource_entry(resource));
        for sub in &resource.subresources {
            resources.push(subresource_entry(resource, sub));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn resource_entry(resource: &ResourceType) -> Value {
    let mut entry = json!({
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": resource.verbs,
        "storageVersionHash": storage_version_hash(resource),
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    entry
}

/// Group-version (when it differs from the parent's) and kind of a subresource.
type SubresourceKind<'a> = (Option<(&'a str, &'a str)>, &'a str);

/// Kind, group, version and verbs of a subresource, as kube-apiserver lists them.
fn subresource_entry(resource: &ResourceType, sub: &str) -> Value {
    let same = (None, resource.kind.as_str());
    let ((group_version, kind), verbs): (SubresourceKind<'_>, &[&str]) = match sub {
        "status" => (same, &["get", "patch", "update"]),
        "scale" => (
            (Some(("autoscaling", "v1")), "Scale"),
            &["get", "patch", "update"],
        ),
        "log" => ((None, "Pod"), &["get"]),
        "exec" => ((None, "PodExecOptions"), &["create", "get"]),
        "attach" => ((None, "PodAttachOptions"), &["create", "get"]),
        "portforward" => ((None, "PodPortForwardOptions"), &["create", "get"]),
        "proxy" => (
            (None, proxy_kind(&resource.kind)),
            &["create", "delete", "get", "patch", "update"],
        ),
        "binding" => ((None, "Binding"), &["create"]),
        "eviction" => ((Some(("policy", "v1")), "Eviction"), &["create"]),
        "ephemeralcontainers" | "resize" => (same, &["get", "patch", "update"]),
        "token" => (
            (Some(("authentication.k8s.io", "v1")), "TokenRequest"),
            &["create"],
        ),
        "finalize" => (same, &["update"]),
        _ => (same, &["get"]),
    };
    let mut entry = json!({
        "name": format!("{}/{sub}", resource.plural),
        "singularName": "",
        "namespaced": resource.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if let Some((group, version)) = group_version {
        entry["group"] = json!(group);
        entry["version"] = json!(version);
    }
    entry
}

fn proxy_kind(kind: &str) -> &'static str {
    match kind {
        "Node" => "NodeProxyOptions",
        "Service" => "ServiceProxyOptions",
        _ => "PodProxyOptions",
    }
}

/// A stable 8-byte hash rendered in base64, standing in for the storage version hash.
fn storage_version_hash(resource: &ResourceType) -> String {
    use base64::Engine;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &resource.storage_group,
        &resource.storage_version,
        &resource.kind,
    )
        .hash(&mut hasher);
    base64::engine::general_purpose::STANDARD.encode(hasher.finish().to_be_bytes())
}

/// Serves `/openapi/v2` as an empty Swagger 2.0 document: no paths and no definitions.
/// kubectl requests protobuf, where an empty message is a valid empty `Document`. With it,
/// kubectl skips client-side validation of unknown kinds and reports unserved ones as
/// "no matches for kind", as it does against a real server.
pub(crate) fn openapi_v2(accept: &str) -> Reply {
    if accept.contains("protobuf") {
        return Reply::Binary(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            bytes::Bytes::new(),
        );
    }
    Reply::Json(
        200,
        json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": {}, "definitions": {}}),
    )
}

/// Builds the `/openapi/v3` index with one entry per served group-version.
pub(crate) fn openapi_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    let mut group_versions = vec![("".to_string(), "v1".to_string())];
    for (group, versions) in registry.groups() {
        for version in versions {
            group_versions.push((group.clone(), version));
        }
    }
    for (group, version) in group_versions {
        let prefix = api_prefix(&group, &version);
        let document = openapi_document(registry, &group, &version);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        document.to_string().hash(&mut hasher);
        let url = format!("/openapi/v3/{prefix}?hash={:016X}", hasher.finish());
        paths.insert(prefix, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `api/v1` or `apis/<group>/<version>`.
fn api_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Serves `/openapi/v3/api/v1` and `/openapi/v3/apis/<group>/<version>`.
pub(crate) fn openapi_group_version(registry: &Registry, rest: &[&str]) -> Option<Value> {
    let (group, version) = match rest {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    if registry.in_group_version(group, version).is_empty() {
        return None;
    }
    Some(openapi_document(registry, group, version))
}

/// Builds an OpenAPI v3 document listing, for each kind, the PATCH operation with the query
/// parameters this server supports. It carries no schemas: kubectl then skips client-side
/// validation (the server accepts `fieldValidation`) and builds strategic merge patches from
/// its compiled-in types, as it does for a server whose schemas it cannot use.
fn openapi_document(registry: &Registry, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let prefix = api_prefix(group, version);
    for resource in registry.in_group_version(group, version) {
        if !resource.allows("patch") {
            continue;
        }
        let scope = if resource.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let path = format!("/{prefix}/{scope}{}/{{name}}", resource.plural);
        let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
            .iter()
            .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
            .collect();
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", resource.kind),
                    "parameters": parameters,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {
                        "group": resource.group,
                        "version": resource.version,
                        "kind": resource.kind
                    }
                }
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_accept_detection() {
        assert!(accepts_plain_json(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!accepts_plain_json(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn deployments_have_scale_subresource() {
        let registry = Registry::new(&[]).expect("built-ins");
        let list = resource_list(&registry, "apps", "v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|entry| entry["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(names.contains(&"deployments/status"));
    }
}
