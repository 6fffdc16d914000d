//! Server-side apply and `metadata.managedFields`: field sets in the `FieldsV1` encoding,
//! ownership per manager, conflicts and the removal of fields an applier stopped sending.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::meta;
use super::patch::{Context, ListStrategy, list_strategy, merge_map, strip_directives};
use super::resources::ResourceType;
use super::status::ApiError;

/// A field path as `FieldsV1` keys: `f:spec`, `k:{"name":"web"}`, `v:"x"` or `.`.
type FieldPath = Vec<String>;
type FieldSet = BTreeSet<FieldPath>;

/// Metadata fields that managers own; the rest of `metadata` belongs to the server.
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// Collects the leaf paths of an object's user-set fields.
fn object_fields(object: &Value, kind: &str, include_status: bool) -> FieldSet {
    let mut set = FieldSet::new();
    let Value::Object(map) = object else {
        return set;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "status" if !include_status => {}
            "metadata" => {
                for field in OWNED_METADATA {
                    if let Some(child) = value.get(*field) {
                        let context = Context::root(kind).child("metadata").child(field);
                        collect(
                            child,
                            vec!["f:metadata".to_string(), format!("f:{field}")],
                            &context,
                            &mut set,
                        );
                    }
                }
            }
            _ => {
                let context = Context::root(kind).child(key);
                collect(value, vec![format!("f:{key}")], &context, &mut set);
            }
        }
    }
    set
}

fn collect(value: &Value, prefix: FieldPath, context: &Context, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut path = prefix.clone();
                path.push(format!("f:{key}"));
                collect(child, path, &context.child(key), set);
            }
        }
        Value::Array(items) => match list_strategy(context) {
            ListStrategy::MergeKey(key) => {
                for item in items {
                    let Some(id) = item.get(key) else {
                        set.insert(prefix.clone());
                        return;
                    };
                    let mut path = prefix.clone();
                    path.push(format!("k:{}", json!({key: id})));
                    let mut own = path.clone();
                    own.push(".".to_string());
                    set.insert(own);
                    if let Value::Object(map) = item {
                        for (field, child) in map {
                            let mut child_path = path.clone();
                            child_path.push(format!("f:{field}"));
                            collect(child, child_path, &context.child(field), set);
                        }
                    }
                }
            }
            ListStrategy::MergeScalars => {
                for item in items {
                    let mut path = prefix.clone();
                    path.push(format!("v:{item}"));
                    set.insert(path);
                }
            }
            ListStrategy::Replace => {
                set.insert(prefix);
            }
        },
        _ => {
            set.insert(prefix);
        }
    }
}

/// Renders a field set as a `FieldsV1` object.
fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for part in path {
            node = node
                .entry(part.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("field set nodes are objects");
        }
    }
    Value::Object(root)
}

/// Parses a `FieldsV1` object into its leaf paths.
fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(value: &Value, prefix: &mut FieldPath, set: &mut FieldSet) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    prefix.push(key.clone());
                    walk(child, prefix, set);
                    prefix.pop();
                }
            }
            _ => {
                set.insert(prefix.clone());
            }
        }
    }
    let mut set = FieldSet::new();
    walk(value, &mut Vec::new(), &mut set);
    set
}

/// Reads the value at a field path; `None` when absent.
fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for part in path {
        if part == "." {
            return Some(current);
        }
        current = if let Some(field) = part.strip_prefix("f:") {
            current.get(field)?
        } else if let Some(key) = part.strip_prefix("k:") {
            let key: Value = serde_json::from_str(key).ok()?;
            let (name, id) = key.as_object()?.iter().next()?;
            current
                .as_array()?
                .iter()
                .find(|item| item.get(name) == Some(id))?
        } else if let Some(item) = part.strip_prefix("v:") {
            let item: Value = serde_json::from_str(item).ok()?;
            current
                .as_array()?
                .iter()
                .find(|candidate| **candidate == item)?
        } else {
            return None;
        };
    }
    Some(current)
}

/// Removes the field at a path, or the list item a `.`/`v:` path names.
fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if last == "." {
        // The item itself: remove it from its list.
        let Some((item, list_path)) = parents.split_last() else {
            return;
        };
        if let (Some(key), Some(list)) = (item.strip_prefix("k:"), value_at_mut(object, list_path))
        {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                return;
            };
            if let (Some((name, id)), Value::Array(items)) = (key.iter().next(), list) {
                items.retain(|candidate| candidate.get(name) != Some(id));
            }
        }
        return;
    }
    let Some(parent) = value_at_mut(object, parents) else {
        return;
    };
    if let Some(field) = last.strip_prefix("f:") {
        if let Value::Object(map) = parent {
            map.remove(field);
        }
    } else if let Some(item) = last.strip_prefix("v:")
        && let (Ok(item), Value::Array(items)) = (serde_json::from_str::<Value>(item), parent)
    {
        items.retain(|candidate| *candidate != item);
    }
}

fn value_at_mut<'a>(object: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = object;
    for part in path {
        current = if let Some(field) = part.strip_prefix("f:") {
            current.get_mut(field)?
        } else if let Some(key) = part.strip_prefix("k:") {
            let key: Value = serde_json::from_str(key).ok()?;
            let (name, id) = key.as_object()?.iter().next()?;
            current
                .as_array_mut()?
                .iter_mut()
                .find(|item| item.get(name) == Some(id))?
        } else {
            return None;
        };
    }
    Some(current)
}

/// Renders a path as the dotted form conflict messages use: `.spec.replicas`.
fn display_path(path: &[String]) -> String {
    let mut text = String::new();
    for part in path {
        if let Some(field) = part.strip_prefix("f:") {
            text.push('.');
            text.push_str(field);
        } else if let Some(key) = part.strip_prefix("k:") {
            text.push_str(&format!("[{key}]"));
        } else if let Some(item) = part.strip_prefix("v:") {
            text.push_str(&format!("[={item}]"));
        }
    }
    text
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
    set: &FieldSet,
) -> Value {
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": meta::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(set),
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    entry
}

fn same_entry(
    candidate: &Value,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
) -> bool {
    candidate["manager"] == manager
        && candidate["operation"] == operation
        && candidate["subresource"].as_str() == subresource
}

/// Records an `Update` (or create) by `manager`: it takes ownership of the fields it changed,
/// which other managers lose.
pub(crate) fn record_managed_fields(
    object: &mut Value,
    old: Option<&Value>,
    manager: &str,
    operation: &str,
    resource: &ResourceType,
    subresource: Option<&str>,
) {
    let include_status = subresource == Some("status");
    let new_fields = object_fields(object, &resource.kind, include_status);
    let changed: FieldSet = match old {
        None => new_fields,
        Some(old) => {
            let old_fields = object_fields(old, &resource.kind, include_status);
            new_fields
                .iter()
                .filter(|path| {
                    value_at(object, path) != value_at(old, path) || !old_fields.contains(*path)
                })
                .cloned()
                .collect()
        }
    };
    let mut list = old.map(entries).unwrap_or_default();
    if operation == "Apply" {
        // Apply entries are maintained by `server_side_apply`, which stored them on `object`.
        list = entries(object);
    } else if !changed.is_empty() {
        let mut own = FieldSet::new();
        for existing in &mut list {
            let mut set = from_fields_v1(&existing["fieldsV1"]);
            if same_entry(existing, manager, operation, subresource) {
                own = set;
                continue;
            }
            set.retain(|path| !changed.contains(path));
            existing["fieldsV1"] = to_fields_v1(&set);
        }
        list.retain(|existing| {
            !same_entry(existing, manager, operation, subresource)
                && existing["fieldsV1"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty())
        });
        own.extend(changed);
        list.push(entry(
            manager,
            operation,
            &resource.api_version(),
            subresource,
            &own,
        ));
    }
    if list.is_empty() {
        if let Some(map) = object["metadata"].as_object_mut() {
            map.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = Value::Array(list);
    }
}

/// Sets the Apply entry of `manager` on an object created by server-side apply.
pub(crate) fn record_apply_fields(
    object: &mut Value,
    applied: &Value,
    manager: &str,
    resource: &ResourceType,
) {
    let set = object_fields(applied, &resource.kind, false);
    object["metadata"]["managedFields"] =
        json!([entry(manager, "Apply", &resource.api_version(), None, &set)]);
}

/// Applies a configuration for `manager` and merges in the fields it sets. Fields it set before
/// and no longer sets are removed unless another manager owns them. A changed value owned by
/// another manager is a conflict unless `force` is set.
pub(crate) fn server_side_apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    resource: &ResourceType,
) -> Result<Value, ApiError> {
    if applied["kind"] != current["kind"] || applied["apiVersion"] != current["apiVersion"] {
        return Err(ApiError::bad_request(format!(
            "the kind and apiVersion of the applied configuration ({} {}) must match the object ({} {})",
            applied["apiVersion"], applied["kind"], current["apiVersion"], current["kind"]
        )));
    }
    let applied_fields = object_fields(applied, &resource.kind, false);
    let mut list = entries(current);
    let mut previous = FieldSet::new();
    let mut conflicts = Vec::new();
    for existing in &list {
        let set = from_fields_v1(&existing["fieldsV1"]);
        if same_entry(existing, manager, "Apply", None) {
            previous = set;
            continue;
        }
        for path in applied_fields.intersection(&set) {
            if value_at(applied, path) != value_at(current, path) {
                conflicts.push((
                    existing["manager"].as_str().unwrap_or("").to_string(),
                    existing["apiVersion"].as_str().unwrap_or("").to_string(),
                    path.clone(),
                ));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(resource, meta::name_of(current), &conflicts));
    }

    // Merge the applied configuration in, then drop what this manager no longer sets.
    let mut result = current.clone();
    let (Value::Object(target), Value::Object(patch)) = (&mut result, strip_directives(applied))
    else {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    };
    let mut patch = patch;
    if let Some(Value::Object(metadata)) = patch.get_mut("metadata") {
        metadata.retain(|key, _| {
            OWNED_METADATA.contains(&key.as_str()) || key == "name" || key == "namespace"
        });
    }
    patch.remove("status");
    merge_map(target, &patch, &Context::root(&resource.kind))?;

    let others: FieldSet = list
        .iter()
        .filter(|existing| !same_entry(existing, manager, "Apply", None))
        .flat_map(|existing| from_fields_v1(&existing["fieldsV1"]))
        .collect();
    for path in previous.difference(&applied_fields) {
        if !others.contains(path) {
            remove_at(&mut result, path);
        }
    }

    // Ownership: this manager now owns the applied fields; forced conflicts move to it.
    let conflicting: FieldSet = conflicts.into_iter().map(|(_, _, path)| path).collect();
    for existing in &mut list {
        if same_entry(existing, manager, "Apply", None) {
            continue;
        }
        let mut set = from_fields_v1(&existing["fieldsV1"]);
        set.retain(|path| !conflicting.contains(path));
        existing["fieldsV1"] = to_fields_v1(&set);
    }
    list.retain(|existing| {
        !same_entry(existing, manager, "Apply", None)
            && existing["fieldsV1"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    list.push(entry(
        manager,
        "Apply",
        &resource.api_version(),
        None,
        &applied_fields,
    ));
    result["metadata"]["managedFields"] = Value::Array(list);
    Ok(result)
}

fn conflict_error(
    resource: &ResourceType,
    name: &str,
    conflicts: &[(String, String, FieldPath)],
) -> ApiError {
    let described: Vec<(String, String)> = conflicts
        .iter()
        .map(|(manager, api_version, path)| {
            (
                format!("conflict with \"{manager}\" using {api_version}"),
                display_path(path),
            )
        })
        .collect();
    let noun = if described.len() == 1 {
        "conflict"
    } else {
        "conflicts"
    };
    let message = if described.len() == 1 {
        format!(
            "Apply failed with 1 conflict: {}: {}",
            described[0].0, described[0].1
        )
    } else {
        let lines: Vec<String> = described
            .iter()
            .map(|(who, path)| format!("- {who}: {path}"))
            .collect();
        format!(
            "Apply failed with {} {noun}:\n{}",
            described.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = described
        .iter()
        .map(|(who, path)| json!({"reason": "FieldManagerConflict", "message": who, "field": path}))
        .collect();
    let mut details = json!({"name": name, "kind": resource.plural, "causes": causes});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(details),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;

    fn deployments() -> ResourceType {
        Registry::new(&[])
            .expect("built-ins")
            .get("apps", "v1", "deployments")
            .expect("built in")
            .clone()
    }

    #[test]
    fn fields_v1_round_trip() {
        let object = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}});
        let set = object_fields(&object, "Deployment", false);
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn apply_removes_dropped_field() {
        let resource = deployments();
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let mut first_config = base.clone();
        first_config["metadata"]["labels"] = json!({"a": "1", "b": "2"});
        let first =
            server_side_apply(&base, &first_config, "kubectl", false, &resource).expect("applies");
        let mut second_config = base.clone();
        second_config["metadata"]["labels"] = json!({"a": "1"});
        let second = server_side_apply(&first, &second_config, "kubectl", false, &resource)
            .expect("applies");
        assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn apply_conflicts_with_other_manager() {
        let resource = deployments();
        let base = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let owned = server_side_apply(&base, &base, "first", false, &resource).expect("applies");
        let mut change = base.clone();
        change["spec"]["replicas"] = json!(3);
        let error = server_side_apply(&owned, &change, "second", false, &resource).unwrap_err();
        assert_eq!(error.code, 409);
        assert_eq!(
            error.message,
            "Apply failed with 1 conflict: conflict with \"first\" using apps/v1: .spec.replicas"
        );
        let forced = server_side_apply(&owned, &change, "second", true, &resource).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
    }
}
