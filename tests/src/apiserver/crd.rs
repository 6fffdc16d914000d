//! CustomResourceDefinitions: validation, the delayed `Established` condition that makes
//! the new resource served, and removal of all custom objects with their definition.

use std::sync::Arc;

use serde_json::{Value, json};

use super::http::ServerState;
use super::meta;
use super::resources::{ResourceType, compare_versions};
use super::status::{ApiError, Cause};
use super::store::{EventType, Key, Store};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Validates and defaults a CRD on create and update.
pub(crate) fn validate(resource: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let name = meta::name_of(object).to_string();
    let spec = &object["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        other => causes.push(Cause::not_supported(
            "spec.scope",
            &json!(other.unwrap_or("")),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v["storage"] == json!(true))
            .count();
        if storage != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                &json!(format!("{} storage versions", storage)),
                "must have exactly one version marked as storage version",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            &resource.kind,
            &resource.group,
            &name,
            causes,
        ));
    }

    if object["spec"]["conversion"].is_null() {
        object["spec"]["conversion"] = json!({"strategy": "None"});
    }
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == json!(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_string();
    if object["status"].is_null() {
        object["status"] = json!({
            "acceptedNames": {"plural": "", "kind": ""},
            "conditions": [],
            "storedVersions": [storage_version],
        });
    }
    Ok(())
}

/// Returns the served resource types of an established CRD, one per served version.
fn resource_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut types = Vec::new();
    for version in spec["versions"].as_array().cloned().unwrap_or_default() {
        if version["served"] != json!(true) {
            continue;
        }
        let mut subresources = Vec::new();
        if !version["subresources"]["status"].is_null() {
            subresources.push("status".to_string());
        }
        if !version["subresources"]["scale"].is_null() {
            subresources.push("scale".to_string());
        }
        types.push(ResourceType {
            group: group.clone(),
            version: version["name"].as_str().unwrap_or("").to_string(),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            kind: kind.clone(),
            namespaced: spec["scope"] == "Namespaced",
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            verbs: VERBS.iter().map(|v| v.to_string()).collect(),
            subresources,
            storage_group: group.clone(),
            storage_version: version["name"].as_str().unwrap_or("").to_string(),
            custom: true,
            printer_columns: version["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        });
    }
    types.sort_by(|a, b| compare_versions(&b.version, &a.version));
    types
}

fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

/// Registers the served versions of an established CRD, replacing older registrations.
fn register(state: &ServerState, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    let mut registry = state.registry_mut();
    registry.remove_custom(group, plural);
    for resource in resource_types(crd) {
        registry.insert(resource);
    }
}

/// Registers the CRDs that were established before a restart from a state folder.
pub(crate) fn restore(state: &ServerState) {
    let crds = state
        .lock_store()
        .list("apiextensions.k8s.io", "customresourcedefinitions", None);
    for crd in crds {
        if is_established(&crd) {
            register(state, &crd);
        }
    }
}

/// Sets `NamesAccepted` and `Established` after the configured delay, then serves the resource.
pub(crate) fn schedule_establish(state: &ServerState, crd: &Arc<Value>) {
    let Some(state) = state.arc() else {
        return;
    };
    let name = meta::name_of(crd).to_string();
    let uid = crd["metadata"]["uid"].clone();
    let delay = state.options.crd_established_delay;
    state.runtime.clone().spawn(async move {
        tokio::time::sleep(delay).await;
        let mut store = state.lock_store();
        let key = Key::new(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            &name,
        );
        let Some(current) = store.get(&key) else {
            return;
        };
        if current["metadata"]["uid"] != uid {
            return;
        }
        let mut updated = (*current).clone();
        let now = meta::now();
        updated["status"]["acceptedNames"] = current["spec"]["names"].clone();
        updated["status"]["conditions"] = json!([
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ]);
        register(&state, &updated);
        store.put(key, updated, EventType::Modified);
    });
}

/// Re-registers an updated CRD that is already established (served versions may change).
pub(crate) fn refresh(state: &ServerState, crd: &Value) {
    if is_established(crd) {
        register(state, crd);
    }
}

/// Stops serving a CRD's resource and deletes all of its objects.
pub(crate) fn remove_definition(state: &ServerState, store: &mut Store, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or("").to_string();
    let plural = crd["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or("")
        .to_string();
    state.registry_mut().remove_custom(&group, &plural);
    let keys: Vec<Key> = store
        .list_keys(&group, &plural, None)
        .map(|(key, _)| key.clone())
        .collect();
    for key in keys {
        store.remove(&key);
    }
}
