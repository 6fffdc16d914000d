//! Per-kind defaulting, validation and allocation on create and update: Service cluster IPs
//! and node ports, pod and workload defaults, immutable fields, and namespace lifecycle.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::handlers::{self, Options};
use super::http::ServerState;
use super::meta;
use super::resources::ResourceType;
use super::status::{ApiError, Cause};
use super::store::{Key, Store};

/// The range from which node ports are allocated, as with kube-apiserver's default flags.
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Parses an IPv4 CIDR such as `10.96.0.0/16` into its network address and prefix length.
pub(crate) fn parse_cidr(cidr: &str) -> Result<(u32, u32), String> {
    let (address, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| "expected ADDRESS/PREFIX".to_string())?;
    let address: Ipv4Addr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IPv4 address"))?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("prefix length {prefix:?} is not between 8 and 30"))?;
    let mask = u32::MAX << (32 - prefix);
    Ok((u32::from(address) & mask, prefix))
}

/// Kinds whose `metadata.generation` the server maintains.
pub(crate) fn tracks_generation(resource: &ResourceType) -> bool {
    resource.custom
        || matches!(
            resource.kind.as_str(),
            "Deployment"
                | "ReplicaSet"
                | "StatefulSet"
                | "DaemonSet"
                | "Job"
                | "CronJob"
                | "ReplicationController"
                | "Ingress"
                | "IngressClass"
                | "NetworkPolicy"
                | "PodDisruptionBudget"
                | "HorizontalPodAutoscaler"
                | "CustomResourceDefinition"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        )
}

fn qualified_kind(resource: &ResourceType) -> (&str, &str) {
    (&resource.kind, &resource.group)
}

fn invalid(resource: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    let (kind, group) = qualified_kind(resource);
    ApiError::invalid(kind, group, name, causes)
}

/// Checks the name against the rule of the kind.
pub(crate) fn validate_metadata(
    resource: &ResourceType,
    object: &Value,
    name: &str,
) -> Result<(), ApiError> {
    let rule = if resource.custom {
        meta::NameRule::Subdomain
    } else {
        meta::name_rule(&resource.kind)
    };
    let causes: Vec<Cause> = meta::validate_name(name, rule)
        .into_iter()
        .map(|message| Cause::invalid("metadata.name", &json!(name), &message))
        .collect();
    if !causes.is_empty() {
        return Err(invalid(resource, name, causes));
    }
    for (field, value) in [
        ("labels", &object["metadata"]["labels"]),
        ("annotations", &object["metadata"]["annotations"]),
    ] {
        if let Value::Object(map) = value
            && let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string())
        {
            return Err(ApiError::bad_request(format!(
                "metadata.{field}.{key}: value must be a string"
            )));
        }
    }
    validate_labels(resource, name, object)
}

const LABEL_VALUE_ERROR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const LABEL_NAME_ERROR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// True for a label value or key name part: at most 63 characters of `[A-Za-z0-9_.-]`,
/// starting and ending with an alphanumeric character (values may also be empty).
fn is_label_part(text: &str, may_be_empty: bool) -> bool {
    if text.is_empty() {
        return may_be_empty;
    }
    text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks label keys (optional DNS-subdomain prefix and a name part) and values.
pub(crate) fn validate_labels(
    resource: &ResourceType,
    name: &str,
    object: &Value,
) -> Result<(), ApiError> {
    let Some(labels) = object["metadata"]["labels"].as_object() else {
        return Ok(());
    };
    let mut causes = Vec::new();
    for (key, value) in labels {
        let (prefix, key_name) = key.rsplit_once('/').unwrap_or(("", key));
        let prefix_valid =
            prefix.is_empty() || meta::validate_name(prefix, meta::NameRule::Subdomain).is_empty();
        if !prefix_valid || !is_label_part(key_name, false) {
            causes.push(Cause::invalid(
                "metadata.labels",
                &json!(key),
                LABEL_NAME_ERROR,
            ));
        }
        let value = value.as_str().unwrap_or("");
        if !is_label_part(value, true) {
            causes.push(Cause::invalid(
                "metadata.labels",
                &json!(value),
                LABEL_VALUE_ERROR,
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(resource, name, causes))
    }
}

/// Defaults and validates a new object of a built-in kind.
pub(crate) fn admit_create(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    object: &mut Value,
) -> Result<(), ApiError> {
    if resource.custom {
        return Ok(());
    }
    let name = meta::name_of(object).to_string();
    match resource.kind.as_str() {
        "Namespace" => {
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
        "Service" => admit_service(state, store, resource, object, None)?,
        "Pod" => {
            validate_pod_spec(resource, &name, &object["spec"], "spec")?;
            // Ephemeral containers are added later through pods/ephemeralcontainers only.
            if object["spec"]["ephemeralContainers"]
                .as_array()
                .is_some_and(|containers| !containers.is_empty())
            {
                return Err(invalid(
                    resource,
                    &name,
                    vec![Cause {
                        reason: "FieldValueForbidden",
                        field: "spec.ephemeralContainers".to_string(),
                        message: "Forbidden: cannot be set on create".to_string(),
                    }],
                ));
            }
            default_pod_spec(&mut object["spec"]);
            admit_pod_spec(&mut object["spec"]);
            object["status"] = json!({"phase": "Pending", "qosClass": qos_class(&object["spec"])});
        }
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            validate_workload(resource, &name, object)?;
            default_workload(&resource.kind, object);
        }
        "Job" => {
            admit_job(resource, &name, object)?;
        }
        "CronJob" => {
            if object["spec"]["schedule"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                return Err(invalid(
                    resource,
                    &name,
                    vec![Cause::required("spec.schedule", "")],
                ));
            }
            let spec = &mut object["spec"];
            default_field(spec, "concurrencyPolicy", json!("Allow"));
            default_field(spec, "suspend", json!(false));
            default_field(spec, "successfulJobsHistoryLimit", json!(3));
            default_field(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(template) = spec.pointer_mut("/jobTemplate/spec/template/spec") {
                default_pod_spec(template);
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = object.get_mut("spec") {
                default_field(spec, "volumeMode", json!("Filesystem"));
            }
            object["status"] = json!({"phase": "Pending"});
        }
        "Secret" => default_field(object, "type", json!("Opaque")),
        "CustomResourceDefinition" => super::crd::validate(resource, object)?,
        _ => {}
    }
    Ok(())
}

/// Applies the update rules of built-in kinds: carried-over allocations and immutable fields.
pub(crate) fn admit_update(
    state: &ServerState,
    store: &mut Store,
    resource: &ResourceType,
    old: &Arc<Value>,
    object: &mut Value,
) -> Result<(), ApiError> {
    let name = meta::name_of(old).to_string();
    validate_labels(resource, &name, object)?;
    if resource.custom {
        return Ok(());
    }
    match resource.kind.as_str() {
        "Namespace" => {
            object["spec"] = old["spec"].clone();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        "Service" => admit_service(state, store, resource, object, Some(old))?,
        "Pod" => {
            default_pod_spec(&mut object["spec"]);
            // Only image, activeDeadlineSeconds and tolerations additions may change on a pod.
            let mut comparable_old = old["spec"].clone();
            let mut comparable_new = object["spec"].clone();
            for spec in [&mut comparable_old, &mut comparable_new] {
                for list in ["containers", "initContainers"] {
                    if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                        for container in containers {
                            if let Some(map) = container.as_object_mut() {
                                map.remove("image");
                            }
                        }
                    }
                }
                if let Some(map) = spec.as_object_mut() {
                    map.remove("activeDeadlineSeconds");
                    map.remove("tolerations");
                    map.remove("nodeName");
                }
            }
            if comparable_old != comparable_new {
                return Err(invalid(resource, &name, vec![Cause {
                    reason: "FieldValueForbidden",
                    field: "spec".to_string(),
                    message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".to_string(),
                }]));
            }
            if object["spec"]["nodeName"].is_null() && !old["spec"]["nodeName"].is_null() {
                object["spec"]["nodeName"] = old["spec"]["nodeName"].clone();
            }
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => {
            validate_workload(resource, &name, object)?;
            default_workload(&resource.kind, object);
            if object["spec"]["selector"] != old["spec"]["selector"] {
                return Err(invalid(
                    resource,
                    &name,
                    vec![Cause::invalid(
                        "spec.selector",
                        &json!(object["spec"]["selector"].to_string()),
                        "field is immutable",
                    )],
                ));
            }
            if resource.kind == "StatefulSet" {
                check_statefulset_update(resource, &name, old, object)?;
            }
        }
        "Job" => {
            default_job_spec(&mut object["spec"]);
            for field in ["selector", "template"] {
                if object["spec"][field] != old["spec"][field] {
                    return Err(invalid(
                        resource,
                        &name,
                        vec![Cause::invalid(
                            &format!("spec.{field}"),
                            &json!(object["spec"][field].to_string()),
                            "field is immutable",
                        )],
                    ));
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = object.get_mut("spec") {
                default_field(spec, "volumeMode", json!("Filesystem"));
            }
            let strip = |spec: &Value| {
                let mut copy = spec.clone();
                if let Some(map) = copy.as_object_mut() {
                    map.remove("volumeAttributesClassName");
                    if let Some(resources) = map.get_mut("resources").and_then(Value::as_object_mut)
                    {
                        resources.remove("requests");
                    }
                }
                copy
            };
            if strip(&old["spec"]) != strip(&object["spec"]) {
                return Err(invalid(resource, &name, vec![Cause {
                    reason: "FieldValueForbidden",
                    field: "spec".to_string(),
                    message: "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".to_string(),
                }]));
            }
        }
        "Secret" | "ConfigMap" => {
            if old["immutable"] == json!(true) {
                let changed = ["data", "binaryData", "stringData"]
                    .iter()
                    .any(|field| old[field] != object[field]);
                if changed {
                    return Err(invalid(
                        resource,
                        &name,
                        vec![Cause {
                            reason: "FieldValueForbidden",
                            field: "data".to_string(),
                            message: "Forbidden: field is immutable when `immutable` is set"
                                .to_string(),
                        }],
                    ));
                }
            }
            if resource.kind == "Secret" {
                default_field(object, "type", json!("Opaque"));
            }
        }
        "CustomResourceDefinition" => super::crd::validate(resource, object)?,
        _ => {}
    }
    Ok(())
}

fn check_statefulset_update(
    resource: &ResourceType,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    let strip = |spec: &Value| {
        let mut copy = spec.clone();
        if let Some(map) = copy.as_object_mut() {
            for field in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                map.remove(field);
            }
        }
        copy
    };
    if strip(&old["spec"]) != strip(&new["spec"]) {
        return Err(invalid(resource, name, vec![Cause {
            reason: "FieldValueForbidden",
            field: "spec".to_string(),
            message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".to_string(),
        }]));
    }
    Ok(())
}

fn default_field(object: &mut Value, field: &str, value: Value) {
    if object[field].is_null() {
        object[field] = value;
    }
}

/// Fills the pod spec defaults of the API types, which apply to pods and pod templates alike.
pub(crate) fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers {
                default_container(container);
            }
        }
    }
}

/// Fills what admission plugins add to pods only: service account, service links,
/// priority and the default not-ready/unreachable tolerations.
fn admit_pod_spec(spec: &mut Value) {
    if spec["serviceAccountName"].is_null() {
        spec["serviceAccountName"] = spec
            .get("serviceAccount")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or(json!("default"));
    }
    spec["serviceAccount"] = spec["serviceAccountName"].clone();
    default_field(spec, "enableServiceLinks", json!(true));
    default_field(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    default_field(spec, "priority", json!(0));
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let mut added = tolerations.clone();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerations.iter().any(|t| t["key"] == key) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(added);
}

fn default_container(container: &mut Value) {
    let image = container["image"].as_str().unwrap_or("").to_string();
    let last = image.rsplit('/').next().unwrap_or("");
    let tagged = last.contains(':') && !last.ends_with(":latest") || image.contains('@');
    default_field(
        container,
        "imagePullPolicy",
        json!(if tagged { "IfNotPresent" } else { "Always" }),
    );
    default_field(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    default_field(container, "terminationMessagePolicy", json!("File"));
    default_field(container, "resources", json!({}));
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default_field(port, "protocol", json!("TCP"));
        }
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let has_any = containers.iter().any(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
            || c["resources"]["limits"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    if !has_any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = &c["resources"]["limits"];
        let requests = &c["resources"]["requests"];
        ["cpu", "memory"]
            .iter()
            .all(|r| !limits[r].is_null() && (requests[r].is_null() || requests[r] == limits[r]))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_pod_spec(
    resource: &ResourceType,
    name: &str,
    spec: &Value,
    prefix: &str,
) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    match spec["containers"].as_array() {
        Some(containers) if !containers.is_empty() => {
            let mut seen = Vec::new();
            for (index, container) in containers.iter().enumerate() {
                let field = format!("{prefix}.containers[{index}]");
                match container["name"].as_str() {
                    None | Some("") => causes.push(Cause::required(&format!("{field}.name"), "")),
                    Some(container_name) => {
                        for message in meta::validate_name(container_name, meta::NameRule::Label) {
                            causes.push(Cause::invalid(
                                &format!("{field}.name"),
                                &json!(container_name),
                                &message,
                            ));
                        }
                        if seen.contains(&container_name) {
                            causes.push(Cause::duplicate(
                                &format!("{field}.name"),
                                &json!(container_name),
                            ));
                        }
                        seen.push(container_name);
                    }
                }
                if container["image"].as_str().is_none_or(str::is_empty) {
                    causes.push(Cause::required(&format!("{field}.image"), ""));
                }
            }
        }
        _ => causes.push(Cause::required(&format!("{prefix}.containers"), "")),
    }
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        causes.push(Cause::not_supported(
            &format!("{prefix}.restartPolicy"),
            &json!(policy),
            &["Always", "Never", "OnFailure"],
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(resource, name, causes))
    }
}

/// Renders `matchLabels` as Go prints a `map[string]string`.
fn go_map(labels: &Value) -> String {
    let entries: Vec<String> = labels
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("map[string]string{{{}}}", entries.join(", "))
}

fn validate_workload(resource: &ResourceType, name: &str, object: &Value) -> Result<(), ApiError> {
    let spec = &object["spec"];
    let selector = &spec["selector"];
    if !selector.is_object()
        || (selector["matchLabels"]
            .as_object()
            .is_none_or(|m| m.is_empty())
            && selector["matchExpressions"]
                .as_array()
                .is_none_or(|m| m.is_empty()))
    {
        return Err(invalid(
            resource,
            name,
            vec![Cause::required("spec.selector", "")],
        ));
    }
    let template_labels = &spec["template"]["metadata"]["labels"];
    let selector_text: Vec<String> = selector["matchLabels"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let parsed = super::selectors::LabelSelector::parse(&selector_text.join(","))
        .map_err(ApiError::bad_request)?;
    if !parsed.matches(template_labels) || selector_expressions_fail(selector, template_labels) {
        return Err(invalid(
            resource,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.template.metadata.labels".to_string(),
                message: format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_map(template_labels)
                ),
            }],
        ));
    }
    validate_pod_spec(
        resource,
        name,
        &spec["template"]["spec"],
        "spec.template.spec",
    )?;
    if let Some(replicas) = spec["replicas"].as_i64()
        && replicas < 0
    {
        return Err(invalid(
            resource,
            name,
            vec![Cause::invalid(
                "spec.replicas",
                &json!(replicas),
                "must be greater than or equal to 0",
            )],
        ));
    }
    Ok(())
}

fn selector_expressions_fail(selector: &Value, labels: &Value) -> bool {
    let Some(expressions) = selector["matchExpressions"].as_array() else {
        return false;
    };
    expressions.iter().any(|expression| {
        let key = expression["key"].as_str().unwrap_or("");
        let values: Vec<&str> = expression["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let actual = labels[key].as_str();
        let holds = match expression["operator"].as_str().unwrap_or("") {
            "In" => actual.is_some_and(|a| values.contains(&a)),
            "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        };
        !holds
    })
}

fn default_workload(kind: &str, object: &mut Value) {
    let spec = &mut object["spec"];
    if kind != "DaemonSet" {
        default_field(spec, "replicas", json!(1));
    }
    default_field(spec, "revisionHistoryLimit", json!(10));
    match kind {
        "Deployment" => {
            default_field(spec, "progressDeadlineSeconds", json!(600));
            default_field(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
        }
        "StatefulSet" => {
            default_field(spec, "podManagementPolicy", json!("OrderedReady"));
            default_field(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default_field(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        "DaemonSet" => {
            default_field(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        _ => {}
    }
    default_pod_spec(&mut spec["template"]["spec"]);
    if !spec["template"]["metadata"].is_object() {
        spec["template"]["metadata"] = json!({});
    }
}

fn default_job_spec(spec: &mut Value) {
    default_field(spec, "parallelism", json!(1));
    default_field(spec, "completions", json!(1));
    default_field(spec, "backoffLimit", json!(6));
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "suspend", json!(false));
    default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    default_pod_spec(&mut spec["template"]["spec"]);
}

fn admit_job(resource: &ResourceType, name: &str, object: &mut Value) -> Result<(), ApiError> {
    let restart = object["spec"]["template"]["spec"]["restartPolicy"].as_str();
    if !matches!(restart, Some("OnFailure" | "Never")) {
        let cause = match restart {
            None | Some("") => Cause::required(
                "spec.template.spec.restartPolicy",
                "valid values: \"OnFailure\", \"Never\"",
            ),
            Some(other) => Cause::not_supported(
                "spec.template.spec.restartPolicy",
                &json!(other),
                &["OnFailure", "Never"],
            ),
        };
        return Err(invalid(resource, name, vec![cause]));
    }
    validate_pod_spec(
        resource,
        name,
        &object["spec"]["template"]["spec"],
        "spec.template.spec",
    )?;
    let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if object["spec"]["manualSelector"] != json!(true) {
        object["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = &mut object["spec"]["template"]["metadata"]["labels"];
        for (key, value) in [
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid.as_str()),
            ("job-name", name),
        ] {
            labels[key] = json!(value);
        }
    }
    default_job_spec(&mut object["spec"]);
    Ok(())
}

/// Allocates or checks cluster IPs and node ports, carrying allocations over on update.
fn admit_service(
    state: &ServerState,
    store: &Store,
    resource: &ResourceType,
    object: &mut Value,
    old: Option<&Arc<Value>>,
) -> Result<(), ApiError> {
    let name = meta::name_of(object).to_string();
    let namespace = meta::namespace_of(object).to_string();
    let spec = &mut object["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    default_field(spec, "type", json!("ClusterIP"));
    let service_type = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&service_type.as_str()) {
        return Err(invalid(
            resource,
            &name,
            vec![Cause::not_supported(
                "spec.type",
                &json!(service_type),
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            )],
        ));
    }
    default_field(spec, "sessionAffinity", json!("None"));

    // Carry allocations over when an update leaves them out.
    if let Some(old) = old {
        let old_spec = &old["spec"];
        if spec["clusterIP"].as_str().is_none_or(str::is_empty) && !old_spec["clusterIP"].is_null()
        {
            spec["clusterIP"] = old_spec["clusterIP"].clone();
            spec["clusterIPs"] = old_spec["clusterIPs"].clone();
        }
        if spec["clusterIP"] != old_spec["clusterIP"] && service_type != "ExternalName" {
            return Err(invalid(
                resource,
                &name,
                vec![Cause::invalid(
                    "spec.clusterIPs[0]",
                    &json!(format!(
                        "[]string{{{:?}}}",
                        spec["clusterIP"].as_str().unwrap_or("")
                    )),
                    "may not change once set",
                )],
            ));
        }
        if let (Some(ports), Some(old_ports)) = (
            spec.get_mut("ports").and_then(Value::as_array_mut),
            old_spec["ports"].as_array(),
        ) {
            for port in ports {
                if !port["nodePort"].is_null() {
                    continue;
                }
                if let Some(previous) = old_ports.iter().find(|p| {
                    p["port"] == port["port"]
                        && p["protocol"].as_str().unwrap_or("TCP")
                            == port["protocol"].as_str().unwrap_or("TCP")
                }) && !previous["nodePort"].is_null()
                    && service_type != "ClusterIP"
                {
                    port["nodePort"] = previous["nodePort"].clone();
                }
            }
        }
    }

    let mut causes = Vec::new();
    let ports_missing = spec["ports"].as_array().is_none_or(|p| p.is_empty());
    let headless = spec["clusterIP"] == "None";
    if service_type == "ExternalName" {
        if spec["externalName"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required("spec.externalName", ""));
        }
    } else if ports_missing && !headless {
        causes.push(Cause::required("spec.ports", ""));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        let multiple = ports.len() > 1;
        for (index, port) in ports.iter_mut().enumerate() {
            default_field(port, "protocol", json!("TCP"));
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
            let number = port["port"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&number) {
                causes.push(Cause::invalid(
                    &format!("spec.ports[{index}].port"),
                    &port["port"],
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if multiple && port["name"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(&format!("spec.ports[{index}].name"), ""));
            }
        }
    }
    if !causes.is_empty() {
        return Err(invalid(resource, &name, causes));
    }

    if service_type != "ExternalName" {
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
        default_field(spec, "ipFamilies", json!(["IPv4"]));
        default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
        if old.is_none() && !headless {
            let ip = allocate_cluster_ip(
                state,
                store,
                resource,
                &name,
                &namespace,
                spec["clusterIP"].as_str(),
            )?;
            spec["clusterIP"] = json!(ip);
        }
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
    }
    if service_type == "NodePort" || service_type == "LoadBalancer" {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
        allocate_node_ports(store, resource, &name, &namespace, spec)?;
    }
    if service_type == "LoadBalancer" {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
        if object["status"]["loadBalancer"].is_null() {
            object["status"] = json!({"loadBalancer": {}});
        }
    } else if old.is_none() {
        object["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

/// Reports whether a value held by a Service belongs to another Service than `namespace/name`.
fn held_by_other(holder: Option<&(String, String)>, namespace: &str, name: &str) -> bool {
    holder.is_some_and(|(ns, n)| !(ns == namespace && n == name))
}

fn allocate_cluster_ip(
    state: &ServerState,
    store: &Store,
    resource: &ResourceType,
    name: &str,
    namespace: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let (network, prefix) =
        parse_cidr(&state.options.service_cidr).expect("the service CIDR was checked at start");
    let size = 1u32 << (32 - prefix);
    let allocated = &store.service_allocations().cluster_ips;
    let used = |ip: &str| held_by_other(allocated.get(ip), namespace, name);
    if let Some(requested) = requested.filter(|ip| !ip.is_empty()) {
        let failure = |detail: String| {
            invalid(
                resource,
                name,
                vec![Cause::invalid(
                    "spec.clusterIPs",
                    &json!(format!("[]string{{{requested:?}}}")),
                    &format!("failed to allocate IP {requested}: {detail}"),
                )],
            )
        };
        let address: Ipv4Addr = requested
            .parse()
            .map_err(|_| failure("must be a valid IP address".to_string()))?;
        let offset = u32::from(address).wrapping_sub(network);
        if offset == 0 || offset >= size - 1 {
            return Err(failure(format!(
                "the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                state.options.service_cidr
            )));
        }
        if used(requested) {
            return Err(failure("provided IP is already allocated".to_string()));
        }
        return Ok(requested.to_string());
    }
    // As kube-apiserver does, start at a random address, so that a full lower range costs no scan.
    let usable = size - 2;
    let start = u32::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..4]
            .try_into()
            .expect("four bytes"),
    ) % usable;
    (0..usable)
        .map(|step| Ipv4Addr::from(network + 1 + (start + step) % usable).to_string())
        .find(|ip| !used(ip))
        .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))
}

fn allocate_node_ports(
    store: &Store,
    resource: &ResourceType,
    name: &str,
    namespace: &str,
    spec: &mut Value,
) -> Result<(), ApiError> {
    let allocated = &store.service_allocations().node_ports;
    let held_elsewhere = |port: i64| held_by_other(allocated.get(&port), namespace, name);
    // Ports this Service requests, so that it cannot take one port twice.
    let mut used = std::collections::HashSet::new();
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for (index, port) in ports.iter_mut().enumerate() {
        if let Some(requested) = port["nodePort"].as_i64() {
            let field = format!("spec.ports[{index}].nodePort");
            if !NODE_PORT_RANGE.contains(&requested) {
                return Err(invalid(
                    resource,
                    name,
                    vec![Cause::invalid(
                        &field,
                        &json!(requested),
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    )],
                ));
            }
            if held_elsewhere(requested) || !used.insert(requested) {
                return Err(invalid(
                    resource,
                    name,
                    vec![Cause::invalid(
                        &field,
                        &json!(requested),
                        "provided port is already allocated",
                    )],
                ));
            }
        }
    }
    for port in ports.iter_mut() {
        if port["nodePort"].is_null() {
            let free = NODE_PORT_RANGE
                .clone()
                .find(|candidate| !used.contains(candidate) && !held_elsewhere(*candidate))
                .ok_or_else(|| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?;
            used.insert(free);
            port["nodePort"] = json!(free);
        }
    }
    Ok(())
}

/// Returns the `autoscaling/v1` Scale of a workload.
pub(crate) fn scale_of(resource: &ResourceType, object: &Value) -> Value {
    let metadata = &object["metadata"];
    let selector: Vec<String> = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let _ = resource;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector.join(","),
        }
    })
}

/// Creates the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap of a new namespace.
pub(crate) fn populate_namespace(state: &ServerState, store: &mut Store, namespace: &str) {
    let registry = state.registry().clone();
    let account_type = registry
        .get("", "v1", "serviceaccounts")
        .expect("built in")
        .clone();
    let config_map_type = registry
        .get("", "v1", "configmaps")
        .expect("built in")
        .clone();
    let options = Options {
        field_manager: "kube-controller-manager".to_string(),
        ..Options::default()
    };
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt",
                     "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
        "data": {"ca.crt": state.ca_pem}
    });
    for (resource, object, name) in [
        (&account_type, account, "default"),
        (&config_map_type, config_map, "kube-root-ca.crt"),
    ] {
        if store.contains(&Key::new("", &resource.plural, namespace, name)) {
            continue;
        }
        if let Err(error) =
            handlers::create_object(state, store, resource, namespace, object, &options)
        {
            eprintln!(
                "test-apiserver: failed to create {}/{name} in namespace {namespace}: {}",
                resource.plural, error.message
            );
        }
    }
}

/// Deletes everything in a Terminating namespace, then the namespace, shortly after.
pub(crate) fn schedule_namespace_cleanup(state: &ServerState, namespace: &str) {
    let Some(state) = state.arc() else {
        return;
    };
    let namespace = namespace.to_string();
    state.runtime.clone().spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut store = state.lock_store();
        for key in store.keys_in_namespace(&namespace) {
            if key.group.is_empty() && key.resource == "pods" {
                super::kubelet::pod_deleted(&state, &key.namespace, &key.name);
            }
            store.remove(&key);
        }
        store.remove(&Key::new("", "namespaces", "", &namespace));
    });
}
