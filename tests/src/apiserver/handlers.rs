//! Resource requests: path parsing, then get, list, create, update, patch, delete and
//! deletecollection with kube-apiserver's semantics, plus the status and scale subresources.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use super::admission;
use super::http::{ApiRequest, Reply, ServerState};
use super::meta;
use super::patch;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Target};
use super::store::{EventType, Key, Store};
use super::{crd, endpoints, kubelet, legacy, table, watch};

/// A request path below `/api/v1` or `/apis/<group>/<version>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Splits a resource path the way kube-apiserver's request-info parser does: `namespaces/<ns>/`
/// scopes what follows, except for a namespace's own `status` and `finalize` subresources.
pub(crate) fn parse_path(segments: &[&str]) -> Option<ResourcePath> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let mut parts: Vec<&str> = rest.to_vec();
    let mut namespace = None;
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts.drain(..2);
        }
    }
    let resource = parts.first()?.to_string();
    if resource == "namespaces" {
        // `/api/v1/namespaces/<name>[/status]` names the namespace itself.
        namespace = None;
    }
    Some(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource,
        name: parts.get(1).map(|name| name.to_string()),
        subresource: parts.get(2).map(|sub| sub.to_string()),
    })
}

/// Returns the Kubernetes verb and `resource[/subresource]` of a request, for fault rules.
pub(crate) fn classify(
    method: &Method,
    path: &str,
    query: &std::collections::HashMap<String, String>,
) -> (String, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(parsed) = parse_path(&segments) else {
        return (method.as_str().to_lowercase(), String::new());
    };
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (method, parsed.name.is_some()) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    };
    let resource = match &parsed.subresource {
        Some(sub) => format!("{}/{sub}", parsed.resource),
        None => parsed.resource,
    };
    (verb.to_string(), resource)
}

/// Returns group, namespace and name of a resource path, empty where absent.
pub(crate) fn describe_path(path: &str) -> (String, String, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match parse_path(&segments) {
        Some(parsed) => (
            parsed.group,
            parsed.namespace.unwrap_or_default(),
            parsed.name.unwrap_or_default(),
        ),
        None => Default::default(),
    }
}

/// Creates the namespaces and objects a new cluster has, unless a state folder brought them.
pub(crate) fn bootstrap(state: &ServerState) -> Result<(), String> {
    let registry = state.registry().clone();
    let namespace_type = registry
        .get("", "v1", "namespaces")
        .expect("namespaces are built in")
        .clone();
    let service_type = registry
        .get("", "v1", "services")
        .expect("services are built in")
        .clone();
    let mut store = state.lock_store();
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if store.contains(&Key::new("", "namespaces", "", name)) {
            continue;
        }
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        create_object(
            state,
            &mut store,
            &namespace_type,
            "",
            object,
            &Options::default(),
        )
        .map_err(|error| format!("failed to create namespace {name}: {}", error.message))?;
    }
    if !store.contains(&Key::new("", "services", "default", "kubernetes")) {
        // kube-apiserver gives its own Service the first address of the range.
        let (network, _) = admission::parse_cidr(&state.options.service_cidr)?;
        let first_address = std::net::Ipv4Addr::from(network + 1).to_string();
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": first_address,
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
        });
        create_object(
            state,
            &mut store,
            &service_type,
            "default",
            service,
            &Options::default(),
        )
        .map_err(|error| format!("failed to create the kubernetes service: {}", error.message))?;
    }
    Ok(())
}

/// Query options that change how a write is done.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    pub dry_run: bool,
    pub field_manager: String,
    pub subresource: Option<String>,
}

impl Options {
    fn from_request(request: &ApiRequest, path: &ResourcePath) -> Result<Options, ApiError> {
        let dry_run = match request.param("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dryRun value: {other:?}: supported value is \"All\""
                )));
            }
        };
        match request.param("fieldValidation") {
            None | Some("" | "Ignore" | "Warn" | "Strict") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation: Invalid value: {other:?}: fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\""
                )));
            }
        }
        let field_manager = match request.param("fieldManager") {
            Some(manager) if !manager.is_empty() => manager.to_string(),
            // Without fieldManager the manager is the user agent's program name.
            _ => request
                .user_agent
                .split('/')
                .next()
                .filter(|name| !name.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        };
        Ok(Options {
            dry_run,
            field_manager,
            subresource: path.subresource.clone(),
        })
    }
}

/// Handles a request below `/api` or `/apis` that is not a discovery document.
pub(crate) async fn dispatch(
    state: &Arc<ServerState>,
    request: &ApiRequest,
    segments: &[&str],
) -> Reply {
    match dispatch_inner(state, request, segments).await {
        Ok(reply) => reply,
        Err(error) => Reply::from(error),
    }
}

async fn dispatch_inner(
    state: &Arc<ServerState>,
    request: &ApiRequest,
    segments: &[&str],
) -> Result<Reply, ApiError> {
    let page_not_found = || Reply::Text(404, "404 page not found\n".to_string());
    let Some(path) = parse_path(segments) else {
        return Ok(page_not_found());
    };
    let resource = {
        let registry = state.registry();
        if registry
            .in_group_version(&path.group, &path.version)
            .is_empty()
        {
            return Ok(page_not_found());
        }
        match registry.get(&path.group, &path.version, &path.resource) {
            Some(resource) => resource.clone(),
            None => return Err(ApiError::resource_not_found()),
        }
    };
    if !resource.namespaced && path.namespace.is_some() {
        return Ok(page_not_found());
    }
    if let Some(sub) = &path.subresource
        && !resource.has_subresource(sub)
    {
        return Err(ApiError::resource_not_found());
    }
    let namespace = path.namespace.clone().unwrap_or_default();
    let options = Options::from_request(request, &path)?;

    let watching = matches!(request.param("watch"), Some("true" | "1"));
    match (&request.method, &path.name) {
        (&Method::GET, None) if watching => {
            watch::start(state, request, &resource, path.namespace.as_deref(), None)
        }
        (&Method::GET, None) => list(state, request, &resource, path.namespace.as_deref()),
        (&Method::GET, Some(name)) => {
            if watching {
                return watch::start(
                    state,
                    request,
                    &resource,
                    path.namespace.as_deref(),
                    Some(name),
                );
            }
            if path.subresource.as_deref() == Some("log") {
                return kubelet::pod_log(state, request, &namespace, name).await;
            }
            get(
                state,
                request,
                &resource,
                &namespace,
                name,
                path.subresource.as_deref(),
            )
        }
        (&Method::POST, None) => {
            require_namespace(&resource, &path)?;
            let body = parse_body(request)?;
            create(state, request, &resource, &namespace, body, &options)
        }
        (&Method::POST, Some(name)) => {
            post_subresource(state, request, &resource, &namespace, name, &path, &options)
        }
        (&Method::PUT, Some(name)) => {
            let body = parse_body(request)?;
            update(state, request, &resource, &namespace, name, body, &options)
        }
        (&Method::PATCH, Some(name)) => {
            patch_object(state, request, &resource, &namespace, name, &options)
        }
        (&Method::DELETE, Some(name)) => {
            if path.subresource.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            delete(state, request, &resource, &namespace, name, &options)
        }
        (&Method::DELETE, None) => delete_collection(
            state,
            request,
            &resource,
            path.namespace.as_deref(),
            &options,
        ),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn require_namespace(resource: &ResourceType, path: &ResourcePath) -> Result<(), ApiError> {
    if resource.namespaced && path.namespace.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    if path.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    Ok(())
}

/// Parses a JSON or YAML request body into an object.
pub(crate) fn parse_body(request: &ApiRequest) -> Result<Value, ApiError> {
    let media = request.content_type.split(';').next().unwrap_or("").trim();
    let value: Value = if media == "application/vnd.kubernetes.protobuf" {
        super::protobuf::decode(&request.body)?
    } else if media.ends_with("yaml") {
        serde_yaml::from_slice(&request.body)
            .map_err(|error| ApiError::bad_request(format!("error decoding YAML: {error}")))?
    } else if media.is_empty() || media.ends_with("json") {
        serde_json::from_slice(&request.body).map_err(|error| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {error}",
                "Object"
            ))
        })?
    } else {
        return Err(ApiError::unsupported_media_type(
            media,
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        ));
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(value)
}

fn target<'a>(resource: &'a ResourceType, name: &'a str) -> Target<'a> {
    Target {
        group: &resource.group,
        resource: &resource.plural,
        name,
    }
}

fn key(resource: &ResourceType, namespace: &str, name: &str) -> Key {
    let namespace = if resource.namespaced { namespace } else { "" };
    Key::new(&resource.storage_group, &resource.plural, namespace, name)
}

/// Converts a stored object into the version of the request (legacy Ingress versions only).
pub(crate) fn to_request_version(resource: &ResourceType, object: &Value) -> Value {
    if resource.custom {
        // Custom resources convert with strategy None: only apiVersion changes.
        let mut copy = object.clone();
        copy["apiVersion"] = json!(resource.api_version());
        return copy;
    }
    if resource.version == resource.storage_version && resource.group == resource.storage_group {
        return object.clone();
    }
    legacy::ingress_from_v1(object, &resource.api_version())
}

fn get(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    subresource: Option<&str>,
) -> Result<Reply, ApiError> {
    let object = state
        .lock_store()
        .get(&key(resource, namespace, name))
        .ok_or_else(|| ApiError::not_found(target(resource, name)))?;
    match subresource {
        None | Some("status") => {}
        Some("scale") => return Ok(Reply::Json(200, admission::scale_of(resource, &object))),
        Some(_) => return Err(ApiError::method_not_allowed()),
    }
    if request.wants_table() && subresource.is_none() {
        let revision = object["metadata"]["resourceVersion"].clone();
        let rows = [object];
        let table = table::build(
            resource,
            &rows,
            request.param("includeObject"),
            revision,
            None,
        );
        return Ok(Reply::Json(200, table));
    }
    if request.wants_metadata() && subresource.is_none() {
        return Ok(Reply::Json(200, partial_metadata(&object)));
    }
    Ok(Reply::Json(200, to_request_version(resource, &object)))
}

/// Returns the `PartialObjectMetadata` form of an object.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

/// Parsed `labelSelector` and `fieldSelector` of a request.
pub(crate) struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_request(request: &ApiRequest, resource: &ResourceType) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(request.param("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields =
            FieldSelector::parse(request.param("fieldSelector").unwrap_or(""), &resource.kind)
                .map_err(ApiError::bad_request)?;
        Ok(Filter { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(meta::labels(object)) && self.fields.matches(object)
    }
}

/// Continue token: the list's revision and the key after which the next page starts.
fn encode_continue(revision: u64, namespace: &str, name: &str) -> String {
    use base64::Engine;
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": revision, "start": format!("{namespace}/{name}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    use base64::Engine;
    let invalid = || {
        ApiError::bad_request(format!(
            "continue key is not valid: illegal base64 data at input byte 0 ({token})"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let revision = value["rv"].as_u64().ok_or_else(invalid)?;
    let start = value["start"].as_str().ok_or_else(invalid)?;
    let start = start.trim_end_matches('\u{0}');
    let (namespace, name) = start.split_once('/').unwrap_or(("", start));
    Ok((revision, namespace.to_string(), name.to_string()))
}

fn list(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: Option<&str>,
) -> Result<Reply, ApiError> {
    if !resource.allows("list") {
        return Err(ApiError::method_not_allowed());
    }
    let filter = Filter::from_request(request, resource)?;
    let limit: usize = match request.param("limit") {
        None | Some("") => 0,
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit value {text:?}")))?,
    };
    let start_after = match request.param("continue") {
        None | Some("") => None,
        Some(token) => Some(decode_continue(token)?),
    };

    // Collect under the lock; serialize after releasing it.
    let (revision, items, remaining, next) = {
        let store = state.lock_store();
        let revision = store.revision();
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut next = None;
        for (key, object) in store.list_keys(&resource.storage_group, &resource.plural, namespace) {
            if let Some((_, ns, name)) = &start_after
                && (key.namespace.as_str(), key.name.as_str()) <= (ns.as_str(), name.as_str())
            {
                continue;
            }
            if !filter.matches(object) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                remaining += 1;
                continue;
            }
            items.push(object.clone());
        }
        if remaining > 0
            && let Some(last) = items.last()
        {
            let list_revision = start_after.as_ref().map_or(revision, |(rv, _, _)| *rv);
            next = Some(encode_continue(
                list_revision,
                meta::namespace_of(last),
                meta::name_of(last),
            ));
        }
        (revision, items, remaining, next)
    };

    let mut list_meta = json!({"resourceVersion": revision.to_string()});
    if let Some(token) = &next {
        list_meta["continue"] = json!(token);
        list_meta["remainingItemCount"] = json!(remaining);
    }
    if request.wants_table() {
        let table = table::build(
            resource,
            &items,
            request.param("includeObject"),
            json!(revision.to_string()),
            Some(list_meta),
        );
        return Ok(Reply::Json(200, table));
    }
    if request.wants_metadata() {
        let items: Vec<Value> = items.iter().map(|item| partial_metadata(item)).collect();
        return Ok(Reply::Json(
            200,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "items": items}),
        ));
    }
    Ok(Reply::Raw(
        200,
        serialize_list(resource, &items, &list_meta),
    ))
}

/// Writes `{"kind":"<Kind>List",...,"items":[...]}` without copying the items.
fn serialize_list(resource: &ResourceType, items: &[Arc<Value>], list_meta: &Value) -> Bytes {
    let mut out = Vec::with_capacity(64 + items.len() * 512);
    let head = json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(), "metadata": list_meta});
    let head = head.to_string();
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    let legacy = resource.version != resource.storage_version || resource.custom;
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if legacy {
            let converted = to_request_version(resource, item);
            serde_json::to_writer(&mut out, &converted).expect("JSON values serialize");
        } else {
            serde_json::to_writer(&mut out, item.as_ref()).expect("JSON values serialize");
        }
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// Checks `apiVersion` and `kind` of a request body and fills them when absent.
fn check_type(resource: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let expected_version = resource.api_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => object["apiVersion"] = json!(expected_version),
        Some(given) if given == expected_version => {}
        Some(given) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({given}) does not match the expected API version ({expected_version})"
            )));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        None | Some("") => object["kind"] = json!(resource.kind),
        Some(given) if given == resource.kind => {}
        Some(given) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({given}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    Ok(())
}

fn create(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: &str,
    mut object: Value,
    options: &Options,
) -> Result<Reply, ApiError> {
    if !resource.allows("create") {
        return Err(ApiError::method_not_allowed());
    }
    check_type(resource, &mut object)?;
    if let Some(review) = review(resource, object.clone()) {
        return Ok(Reply::Json(201, review));
    }
    let mut store = state.lock_store();
    let created = create_object(state, &mut store, resource, namespace, object, options)?;
    drop(store);
    let _ = request;
    Ok(Reply::Json(201, to_request_version(resource, &created)))
}

/// The user behind the server's token: authenticated with cluster-admin rights.
const USER: &str = "test-user";

/// Computes the response to a review kind, which is never stored. The token's user may do
/// everything, as a cluster-admin kubeconfig of a real cluster may.
fn review(resource: &ResourceType, mut object: Value) -> Option<Value> {
    let status = match resource.kind.as_str() {
        "SelfSubjectAccessReview" => {
            json!({"allowed": true, "reason": "the test API server authorizes every request of its token"})
        }
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false
        }),
        "SelfSubjectReview" => {
            json!({"userInfo": {"username": USER, "groups": ["system:masters", "system:authenticated"]}})
        }
        _ => return None,
    };
    object["status"] = status;
    object["metadata"]["creationTimestamp"] = Value::Null;
    Some(object)
}

/// Creates an object (already type-checked) under the store lock and runs the follow-up work
/// of its kind. Returns the stored object in storage version.
pub(crate) fn create_object(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    namespace: &str,
    mut object: Value,
    options: &Options,
) -> Result<Arc<Value>, ApiError> {
    // The legacy Ingress versions are converted before anything else looks at the object.
    if resource.version != resource.storage_version {
        object = legacy::ingress_to_v1(&object)?;
    }
    let storage_kind = resource.kind.clone();

    // Namespace: the URL's wins; a different one in the body is an error.
    if resource.namespaced {
        match object["metadata"]["namespace"].as_str() {
            None | Some("") => object["metadata"]["namespace"] = json!(namespace),
            Some(given) if given == namespace => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    } else if let Some(map) = object["metadata"].as_object_mut() {
        map.remove("namespace");
    }

    // Name or generateName.
    let name = match object["metadata"]["name"].as_str() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => match object["metadata"]["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => {
                let name = meta::generated_name(prefix);
                object["metadata"]["name"] = json!(name);
                name
            }
            _ => {
                return Err(ApiError::invalid(
                    &storage_kind,
                    &resource.group,
                    "",
                    vec![super::status::Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        },
    };
    admission::validate_metadata(resource, &object, &name)?;

    if resource.namespaced {
        let namespace_object = store
            .get(&Key::new("", "namespaces", "", namespace))
            .ok_or_else(|| {
                ApiError::not_found(Target {
                    group: "",
                    resource: "namespaces",
                    name: namespace,
                })
            })?;
        if namespace_object["status"]["phase"] == "Terminating" {
            return Err(ApiError::namespace_terminating(
                target(resource, &name),
                namespace,
            ));
        }
    }
    let key = key(resource, namespace, &name);
    if store.contains(&key) {
        return Err(ApiError::already_exists(target(resource, &name)));
    }

    let metadata = &mut object["metadata"];
    metadata["uid"] = json!(meta::new_uid());
    metadata["creationTimestamp"] = json!(meta::now());
    admission::admit_create(state, store, resource, &mut object)?;

    let metadata = &mut object["metadata"];
    if let Some(map) = metadata.as_object_mut() {
        map.remove("resourceVersion");
        map.remove("deletionTimestamp");
        map.remove("deletionGracePeriodSeconds");
        map.remove("selfLink");
    }
    if admission::tracks_generation(resource) {
        object["metadata"]["generation"] = json!(1);
    }
    patch::record_managed_fields(
        &mut object,
        None,
        &options.field_manager,
        "Update",
        resource,
        None,
    );

    meta::drop_empty_metadata(&mut object);
    if options.dry_run {
        return Ok(Arc::new(object));
    }
    let stored = store.put(key, object, EventType::Added);
    after_create(state, store, resource, &stored);
    Ok(stored)
}

/// Follow-up work of a created object: namespace defaults, CRD establishment, scheduling.
fn after_create(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    object: &Arc<Value>,
) {
    if resource.custom {
        return;
    }
    match (resource.storage_group.as_str(), resource.kind.as_str()) {
        ("", "Namespace") => admission::populate_namespace(state, store, meta::name_of(object)),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            crd::schedule_establish(state, object)
        }
        ("", "Pod") => {
            endpoints::sync(store, meta::namespace_of(object));
            kubelet::pod_created(state, object);
        }
        ("", "Service") => endpoints::sync(store, meta::namespace_of(object)),
        _ => {}
    }
}

fn update(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    mut object: Value,
    options: &Options,
) -> Result<Reply, ApiError> {
    let _ = request;
    if !resource.allows("update") {
        return Err(ApiError::method_not_allowed());
    }
    if options.subresource.as_deref() == Some("scale") {
        return update_scale(state, resource, namespace, name, object, options);
    }
    check_type(resource, &mut object)?;
    if resource.version != resource.storage_version {
        object = legacy::ingress_to_v1(&object)?;
    }
    match object["metadata"]["name"].as_str() {
        Some(given) if given != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        _ => object["metadata"]["name"] = json!(name),
    }
    let mut store = state.lock_store();
    let old = store
        .get(&key(resource, namespace, name))
        .ok_or_else(|| ApiError::not_found(target(resource, name)))?;
    let given_version = object["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !given_version.is_empty() && given_version != old["metadata"]["resourceVersion"] {
        return Err(ApiError::stale(target(resource, name)));
    }
    let updated = write_update(state, &mut store, resource, &old, object, options, "Update")?;
    Ok(Reply::Json(200, to_request_version(resource, &updated)))
}

/// Stores a new version of an existing object: keeps the system fields, applies the
/// subresource rules, bumps the generation on spec changes and checks immutable fields.
pub(crate) fn write_update(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    old: &Arc<Value>,
    mut object: Value,
    options: &Options,
    operation: &str,
) -> Result<Arc<Value>, ApiError> {
    let name = meta::name_of(old).to_string();
    let namespace = meta::namespace_of(old).to_string();

    // The status subresource changes only status; the main resource never changes status
    // of kinds that have the subresource.
    let status_only = options.subresource.as_deref() == Some("status");
    if status_only {
        let mut merged = (**old).clone();
        merged["status"] = object.get("status").cloned().unwrap_or(Value::Null);
        if merged["status"].is_null()
            && let Some(map) = merged.as_object_mut()
        {
            map.remove("status");
        }
        object = merged;
    } else if resource.has_subresource("status") {
        match old.get("status") {
            Some(status) => object["status"] = status.clone(),
            None => {
                if let Some(map) = object.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }

    // System-owned metadata comes from the stored object.
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old["metadata"].get(field) {
            Some(value) => object["metadata"][field] = value.clone(),
            None => {
                if let Some(map) = object["metadata"].as_object_mut() {
                    map.remove(field);
                }
            }
        }
    }
    if let Some(map) = object["metadata"].as_object_mut() {
        map.remove("selfLink");
    }
    if object["metadata"]["namespace"].is_null() && resource.namespaced {
        object["metadata"]["namespace"] = json!(namespace);
    }

    admission::admit_update(state, store, resource, old, &mut object)?;

    if admission::tracks_generation(resource) && !status_only && spec_changed(old, &object) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        object["metadata"]["generation"] = json!(generation + 1);
    }
    patch::record_managed_fields(
        &mut object,
        Some(old),
        &options.field_manager,
        operation,
        resource,
        options.subresource.as_deref(),
    );

    meta::drop_empty_metadata(&mut object);

    // An update that changes nothing keeps the resourceVersion and sends no event.
    let mut unchanged = object.clone();
    unchanged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    if unchanged == **old || options.dry_run {
        return Ok(Arc::new(unchanged));
    }
    let stored = store.put(
        key(resource, &namespace, &name),
        object,
        EventType::Modified,
    );
    let finalized = !stored["metadata"]["deletionTimestamp"].is_null()
        && stored["metadata"]["finalizers"].is_null()
        && !(resource.kind == "Namespace" && resource.storage_group.is_empty());
    if finalized {
        return delete_object(state, store, resource, &stored);
    }
    after_update(state, store, resource, &stored);
    Ok(stored)
}

fn after_update(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    object: &Arc<Value>,
) {
    if resource.custom {
        return;
    }
    match (resource.storage_group.as_str(), resource.kind.as_str()) {
        ("", "Pod" | "Service") => endpoints::sync(store, meta::namespace_of(object)),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd::refresh(state, object),
        _ => {}
    }
}

/// True when anything besides metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |value: &Value| {
        let mut copy = value.clone();
        if let Some(map) = copy.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        copy
    };
    strip(old) != strip(new)
}

fn update_scale(
    state: &ServerState,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    scale: Value,
    options: &Options,
) -> Result<Reply, ApiError> {
    let replicas = scale["spec"]["replicas"].as_i64().ok_or_else(|| {
        ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            vec![super::status::Cause::required("spec.replicas", "")],
        )
    })?;
    let mut store = state.lock_store();
    let old = store
        .get(&key(resource, namespace, name))
        .ok_or_else(|| ApiError::not_found(target(resource, name)))?;
    let given_version = scale["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !given_version.is_empty() && given_version != old["metadata"]["resourceVersion"] {
        return Err(ApiError::stale(target(resource, name)));
    }
    let mut object = (*old).clone();
    object["spec"]["replicas"] = json!(replicas);
    let main = Options {
        subresource: None,
        ..options.clone()
    };
    let updated = write_update(state, &mut store, resource, &old, object, &main, "Update")?;
    Ok(Reply::Json(200, admission::scale_of(resource, &updated)))
}

fn patch_object(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    options: &Options,
) -> Result<Reply, ApiError> {
    if !resource.allows("patch") {
        return Err(ApiError::method_not_allowed());
    }
    let kind = patch::PatchKind::from_content_type(&request.content_type)?;
    if kind == patch::PatchKind::Strategic && resource.custom {
        return Err(ApiError::unsupported_media_type(
            &request.content_type,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ],
        ));
    }
    let mut store = state.lock_store();
    let object_key = key(resource, namespace, name);
    let Some(old) = store.get(&object_key) else {
        if kind == patch::PatchKind::Apply && options.subresource.is_none() {
            // Server-side apply creates what does not exist.
            let mut object = parse_body(request)?;
            check_type(resource, &mut object)?;
            if object["metadata"]["name"]
                .as_str()
                .is_none_or(|given| given != name)
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    object["metadata"]["name"].as_str().unwrap_or("")
                )));
            }
            let applied = object.clone();
            let mut create_options = options.clone();
            create_options.field_manager = options.field_manager.clone();
            let mut created = create_object(
                state,
                &mut store,
                resource,
                namespace,
                object,
                &Options {
                    dry_run: true,
                    ..create_options.clone()
                },
            )?;
            let mut with_fields = (*created).clone();
            patch::record_apply_fields(
                &mut with_fields,
                &applied,
                &options.field_manager,
                resource,
            );
            if !options.dry_run {
                if let Some(map) = with_fields["metadata"].as_object_mut() {
                    map.remove("resourceVersion");
                }
                created = store.put(object_key.clone(), with_fields, EventType::Added);
                after_create(state, &mut store, resource, &created);
            } else {
                created = Arc::new(with_fields);
            }
            return Ok(Reply::Json(201, to_request_version(resource, &created)));
        }
        return Err(ApiError::not_found(target(resource, name)));
    };

    let current = to_request_version(resource, &old);
    let mut patched = match kind {
        patch::PatchKind::Apply => {
            let applied = parse_body(request)?;
            let force = request.param("force") == Some("true");
            patch::server_side_apply(&current, &applied, &options.field_manager, force, resource)?
        }
        _ => patch::apply_patch(kind, &current, &request.body, resource)?,
    };
    if resource.version != resource.storage_version {
        patched = legacy::ingress_to_v1(&patched)?;
    }
    let given_version = patched["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("");
    if !given_version.is_empty() && given_version != old["metadata"]["resourceVersion"] {
        return Err(ApiError::stale(target(resource, name)));
    }
    if options.subresource.as_deref() == Some("scale") {
        let replicas = patched["spec"]["replicas"].clone();
        let mut object = (*old).clone();
        object["spec"]["replicas"] = replicas;
        let main = Options {
            subresource: None,
            ..options.clone()
        };
        let updated = write_update(state, &mut store, resource, &old, object, &main, "Update")?;
        return Ok(Reply::Json(200, admission::scale_of(resource, &updated)));
    }
    let operation = if kind == patch::PatchKind::Apply {
        "Apply"
    } else {
        "Update"
    };
    let updated = write_update(
        state, &mut store, resource, &old, patched, options, operation,
    )?;
    Ok(Reply::Json(200, to_request_version(resource, &updated)))
}

fn delete(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    options: &Options,
) -> Result<Reply, ApiError> {
    if !resource.allows("delete") {
        return Err(ApiError::method_not_allowed());
    }
    let preconditions = if request.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice::<Value>(&request.body).unwrap_or(Value::Null)
    };
    let mut store = state.lock_store();
    let object_key = key(resource, namespace, name);
    let old = store
        .get(&object_key)
        .ok_or_else(|| ApiError::not_found(target(resource, name)))?;
    if let Some(rv) = preconditions["preconditions"]["resourceVersion"].as_str()
        && rv != old["metadata"]["resourceVersion"]
    {
        return Err(ApiError::conflict(
            target(resource, name),
            &format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                old["metadata"]["resourceVersion"].as_str().unwrap_or("")
            ),
        ));
    }
    if let Some(uid) = preconditions["preconditions"]["uid"].as_str()
        && uid != old["metadata"]["uid"]
    {
        return Err(ApiError::conflict(
            target(resource, name),
            &format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                old["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    // kubectl sends `dryRun` in the DeleteOptions body rather than the query.
    let body_dry_run = preconditions["dryRun"]
        .as_array()
        .is_some_and(|values| values.iter().any(|v| v == "All"));
    if options.dry_run || body_dry_run {
        return Ok(Reply::Json(200, to_request_version(resource, &old)));
    }
    let removed = delete_object(state, &mut store, resource, &old)?;
    Ok(Reply::Json(200, to_request_version(resource, &removed)))
}

/// Deletes one stored object with the side effects of its kind. Namespaces are marked
/// Terminating and emptied in the background, as the namespace controller does.
pub(crate) fn delete_object(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    old: &Arc<Value>,
) -> Result<Arc<Value>, ApiError> {
    let name = meta::name_of(old).to_string();
    let namespace = meta::namespace_of(old).to_string();
    let object_key = key(resource, &namespace, &name);
    if resource.storage_group.is_empty() && resource.kind == "Namespace" && !resource.custom {
        if matches!(name.as_str(), "default" | "kube-system" | "kube-public") {
            return Err(ApiError::forbidden_system_namespace(&name));
        }
        if old["status"]["phase"] == "Terminating" {
            return Ok(old.clone());
        }
        let mut terminating = (**old).clone();
        terminating["metadata"]["deletionTimestamp"] = json!(meta::now());
        terminating["status"]["phase"] = json!("Terminating");
        let stored = store.put(object_key, terminating, EventType::Modified);
        admission::schedule_namespace_cleanup(state, &name);
        return Ok(stored);
    }
    // An object with finalizers only gets a deletionTimestamp; it is removed by the update
    // that clears its last finalizer.
    if old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|finalizers| !finalizers.is_empty())
    {
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Ok(old.clone());
        }
        let mut marked = (**old).clone();
        marked["metadata"]["deletionTimestamp"] = json!(meta::now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if resource.storage_group.is_empty() && resource.kind == "Pod" && !resource.custom {
            kubelet::pod_deleted(state, &namespace, &name);
        }
        return Ok(store.put(object_key, marked, EventType::Modified));
    }
    if resource.storage_group == "apiextensions.k8s.io"
        && resource.kind == "CustomResourceDefinition"
    {
        crd::remove_definition(state, store, old);
    }
    let removed = store
        .remove(&object_key)
        .ok_or_else(|| ApiError::not_found(target(resource, &name)))?;
    if resource.storage_group.is_empty() && !resource.custom {
        match resource.kind.as_str() {
            "Pod" => {
                kubelet::pod_deleted(state, &namespace, &name);
                endpoints::sync(store, &namespace);
            }
            "Service" => endpoints::service_deleted(store, &namespace, &name),
            _ => {}
        }
    }
    Ok(removed)
}

fn delete_collection(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: Option<&str>,
    options: &Options,
) -> Result<Reply, ApiError> {
    if !resource.allows("deletecollection") {
        return Err(ApiError::method_not_allowed());
    }
    let filter = Filter::from_request(request, resource)?;
    let mut store = state.lock_store();
    let matching: Vec<Arc<Value>> = store
        .list(&resource.storage_group, &resource.plural, namespace)
        .into_iter()
        .filter(|object| filter.matches(object))
        .collect();
    let mut deleted = Vec::new();
    for object in matching {
        if options.dry_run {
            deleted.push(object);
        } else {
            deleted.push(delete_object(state, &mut store, resource, &object)?);
        }
    }
    let revision = store.revision();
    drop(store);
    let list_meta = json!({"resourceVersion": revision.to_string()});
    Ok(Reply::Raw(
        200,
        serialize_list(resource, &deleted, &list_meta),
    ))
}

/// POST on a named object: pod bindings and evictions.
fn post_subresource(
    state: &ServerState,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    path: &ResourcePath,
    options: &Options,
) -> Result<Reply, ApiError> {
    match (resource.kind.as_str(), path.subresource.as_deref()) {
        ("Pod", Some("eviction")) => {
            let mut store = state.lock_store();
            let old = store
                .get(&key(resource, namespace, name))
                .ok_or_else(|| ApiError::not_found(target(resource, name)))?;
            if !options.dry_run {
                delete_object(state, &mut store, resource, &old)?;
            }
            Ok(Reply::Json(
                201,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
                }),
            ))
        }
        ("Pod", Some("exec" | "attach" | "portforward")) => {
            let _ = request;
            Err(ApiError::bad_request("Upgrade request required"))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> ResourcePath {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        parse_path(&segments).expect("resource path")
    }

    #[test]
    fn namespaced_path_with_subresource() {
        let path = parse("/apis/apps/v1/namespaces/demo/deployments/web/scale");
        assert_eq!(path.group, "apps");
        assert_eq!(path.namespace.as_deref(), Some("demo"));
        assert_eq!(path.resource, "deployments");
        assert_eq!(path.name.as_deref(), Some("web"));
        assert_eq!(path.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn namespace_status_path() {
        let path = parse("/api/v1/namespaces/demo/status");
        assert_eq!(path.resource, "namespaces");
        assert_eq!(path.name.as_deref(), Some("demo"));
        assert_eq!(path.subresource.as_deref(), Some("status"));
        assert_eq!(path.namespace, None);
    }

    #[test]
    fn continue_token_round_trip() {
        let token = encode_continue(42, "ns", "name-7");
        assert_eq!(
            decode_continue(&token).expect("valid"),
            (42, "ns".to_string(), "name-7".to_string())
        );
    }
}
