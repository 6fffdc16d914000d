//! Patch formats: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and the strategic merge
//! patch of built-in kinds with the patch-merge keys and directives kubectl sends.

use serde_json::{Map, Value};

use super::resources::ResourceType;
use super::status::ApiError;

pub(crate) use super::apply::{record_apply_fields, record_managed_fields, server_side_apply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<PatchKind, ApiError> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            _ => Err(ApiError::unsupported_media_type(media, PATCH_TYPES)),
        }
    }
}

/// Maps a JSON patch failure as kube-apiserver does: a failed `test` operation is a 422
/// `Invalid` with a generic message, and any other failure (a missing path, say) a 400
/// `BadRequest` with the patch library's message.
fn patch_error(error: &json_patch::PatchError) -> ApiError {
    if matches!(error.kind, json_patch::PatchErrorKind::TestFailed) {
        let mut invalid =
            ApiError::bad_request("the server rejected our request due to an error in our request");
        invalid.code = 422;
        invalid.reason = "Invalid";
        invalid.details = Some(serde_json::json!({}));
        return invalid;
    }
    ApiError::bad_request(format!("jsonpatch operation does not apply: {error}"))
}

/// Applies a JSON, merge or strategic merge patch to a copy of `current`.
pub(crate) fn apply_patch(
    kind: PatchKind,
    current: &Value,
    body: &[u8],
    resource: &ResourceType,
) -> Result<Value, ApiError> {
    let mut result = current.clone();
    match kind {
        PatchKind::Json => {
            let operations: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|error| ApiError::bad_request(format!("invalid JSON patch: {error}")))?;
            json_patch::patch(&mut result, &operations).map_err(|error| patch_error(&error))?;
        }
        PatchKind::Merge => {
            let patch: Value = parse_patch(body)?;
            json_patch::merge(&mut result, &patch);
        }
        PatchKind::Strategic => {
            let patch: Value = parse_patch(body)?;
            let Value::Object(patch) = patch else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            let Value::Object(target) = &mut result else {
                return Err(ApiError::internal("stored object is not a JSON object"));
            };
            let context = Context::root(&resource.kind);
            merge_map(target, &patch, &context)?;
        }
        PatchKind::Apply => unreachable!("server-side apply is handled by the apply module"),
    }
    if result["kind"] != current["kind"] || result["apiVersion"] != current["apiVersion"] {
        return Err(ApiError::bad_request(
            "the patch must not change the object's apiVersion or kind",
        ));
    }
    Ok(result)
}

fn parse_patch(body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid JSON in the patch: {error}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request("the patch must be a JSON object"));
    }
    Ok(patch)
}

/// Where in an object a merge is happening: the kind and the field names from the root.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub kind: String,
    pub path: Vec<String>,
}

impl Context {
    pub fn root(kind: &str) -> Context {
        Context {
            kind: kind.to_string(),
            path: Vec::new(),
        }
    }

    pub fn child(&self, field: &str) -> Context {
        let mut path = self.path.clone();
        path.push(field.to_string());
        Context {
            kind: self.kind.clone(),
            path,
        }
    }
}

/// How a list field merges in a strategic merge patch of a built-in kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListStrategy {
    /// Items are objects identified by this key.
    MergeKey(&'static str),
    /// Items are scalars merged as a set (`metadata.finalizers`).
    MergeScalars,
    /// The patch list replaces the old one.
    Replace,
}

/// Returns the strategy of the list at `context` (whose last element is the list's field).
pub(crate) fn list_strategy(context: &Context) -> ListStrategy {
    let Some(field) = context.path.last() else {
        return ListStrategy::Replace;
    };
    let parent = context
        .path
        .len()
        .checked_sub(2)
        .map(|index| context.path[index].as_str());
    match field.as_str() {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListStrategy::MergeKey("name"),
        "volumeMounts" => ListStrategy::MergeKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeKey("devicePath"),
        "hostAliases" => ListStrategy::MergeKey("ip"),
        "ownerReferences" => ListStrategy::MergeKey("uid"),
        "topologySpreadConstraints" => ListStrategy::MergeKey("topologyKey"),
        "conditions" if parent == Some("status") => ListStrategy::MergeKey("type"),
        "addresses" if context.kind == "Node" => ListStrategy::MergeKey("type"),
        "finalizers" if parent == Some("metadata") => ListStrategy::MergeScalars,
        "ports" => match parent {
            Some("containers" | "initContainers" | "ephemeralContainers") => {
                ListStrategy::MergeKey("containerPort")
            }
            Some("spec") if context.kind == "Service" && context.path.len() == 2 => {
                ListStrategy::MergeKey("port")
            }
            _ => ListStrategy::Replace,
        },
        _ => ListStrategy::Replace,
    }
}

/// Removes directive keys (`$patch`, `$retainKeys`, ...) from a value taken from a patch.
pub(crate) fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !key.starts_with('$'))
                .map(|(key, value)| (key.clone(), strip_directives(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|item| item.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Merges a strategic merge patch map into `target`.
pub(crate) fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    context: &Context,
) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            if let Value::Object(replacement) = strip_directives(&Value::Object(patch.clone())) {
                *target = replacement;
            }
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?} found in the patch"
            )));
        }
    }

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = value
                .as_array()
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|item| !remove.contains(&item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child_patch) => {
                if child_patch.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(key);
                    continue;
                }
                match target.get_mut(key) {
                    Some(Value::Object(child)) => {
                        merge_map(child, child_patch, &context.child(key))?
                    }
                    _ => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, child_patch, &context.child(key))?;
                        target.insert(key.clone(), Value::Object(fresh));
                    }
                }
            }
            Value::Array(patch_items) => {
                let child = context.child(key);
                let merged = merge_list(target.get(key), patch_items, &child)?;
                target.insert(key.clone(), merged);
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }

    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        target.retain(|key, _| keep.contains(&key.as_str()));
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(items)), Value::Array(order)) = (target.get_mut(field), value)
        {
            let strategy = list_strategy(&context.child(field));
            reorder(items, order, &strategy);
        }
    }
    Ok(())
}

fn merge_list(
    current: Option<&Value>,
    patch_items: &[Value],
    context: &Context,
) -> Result<Value, ApiError> {
    let current_items: Vec<Value> = match current {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    if patch_items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(strip_directives(&Value::Array(patch_items.to_vec())));
    }
    match list_strategy(context) {
        ListStrategy::Replace => Ok(strip_directives(&Value::Array(patch_items.to_vec()))),
        ListStrategy::MergeScalars => {
            let mut merged = current_items;
            for item in patch_items {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            Ok(Value::Array(merged))
        }
        ListStrategy::MergeKey(merge_key) => {
            let mut merged = current_items;
            for item in patch_items {
                let Some(key_value) = item.get(merge_key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {item} does not contain declared merge key: {merge_key}"
                    )));
                };
                let position = merged
                    .iter()
                    .position(|existing| existing.get(merge_key) == Some(key_value));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    merged.retain(|existing| existing.get(merge_key) != Some(key_value));
                    continue;
                }
                match (position, item) {
                    (Some(index), Value::Object(item_patch)) => {
                        if let Value::Object(existing) = &mut merged[index] {
                            merge_map(existing, item_patch, context)?;
                        }
                    }
                    _ => {
                        let mut fresh = Map::new();
                        if let Value::Object(item_patch) = item {
                            merge_map(&mut fresh, item_patch, context)?;
                        }
                        merged.push(Value::Object(fresh));
                    }
                }
            }
            Ok(Value::Array(merged))
        }
    }
}

/// Orders list items as `$setElementOrder` lists them; unlisted items keep their order at the end.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: &ListStrategy) {
    let identity = |item: &Value| -> Value {
        match strategy {
            ListStrategy::MergeKey(key) => item.get(*key).cloned().unwrap_or(Value::Null),
            _ => item.clone(),
        }
    };
    let mut ordered = Vec::with_capacity(items.len());
    let mut rest: Vec<Value> = std::mem::take(items);
    for wanted in order {
        let wanted = identity(wanted);
        if let Some(index) = rest.iter().position(|item| identity(item) == wanted) {
            ordered.push(rest.remove(index));
        }
    }
    ordered.extend(rest);
    *items = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strategic(kind: &str, current: Value, patch: Value) -> Value {
        let mut target = current.as_object().expect("object").clone();
        merge_map(
            &mut target,
            patch.as_object().expect("object"),
            &Context::root(kind),
        )
        .expect("patch applies");
        Value::Object(target)
    }

    #[test]
    fn containers_merge_by_name() {
        let current = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}});
        let result = strategic("Deployment", current, patch);
        let containers = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "a:2");
        assert_eq!(containers[1]["image"], "s:1");
    }

    #[test]
    fn delete_directive_removes_item() {
        let current = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}]}});
        let result = strategic("Pod", current, patch);
        assert_eq!(
            result["spec"]["containers"][0]["env"],
            json!([{"name": "Y", "value": "2"}])
        );
    }

    #[test]
    fn retain_keys_drops_other_fields() {
        let current = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
        let result = strategic("Deployment", current, patch);
        assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let current = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let result = strategic("Service", current, patch);
        assert_eq!(result["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(result["spec"]["ports"][1]["port"], 443);
    }

    #[test]
    fn unkeyed_list_is_replaced() {
        let current = json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}});
        let result = strategic("Pod", current, patch);
        assert_eq!(result["spec"]["containers"][0]["args"], json!(["z"]));
    }

    #[test]
    fn set_element_order_reorders() {
        let current = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
        let result = strategic("Pod", current, patch);
        assert_eq!(result["spec"]["containers"][0]["name"], "b");
    }
}
