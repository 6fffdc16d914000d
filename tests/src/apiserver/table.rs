//! `meta.k8s.io/v1` Table responses with the columns kube-apiserver prints for common kinds.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta;
use super::resources::ResourceType;

/// One column: name, type, priority (0 shown by default, 1 only with `-o wide`) and cell function.
struct Column {
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
}

const fn column(name: &'static str, priority: u8, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "string",
        priority,
        cell,
    }
}

/// Builds a Table of `objects`; `include_object` is the request's `includeObject`
/// (`None`, `Metadata` (default) or `Object`).
pub(crate) fn build(
    resource: &ResourceType,
    objects: &[Arc<Value>],
    include_object: Option<&str>,
    revision: Value,
    list_meta: Option<Value>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| row(resource, object, include_object))
        .collect();
    let mut metadata = list_meta.unwrap_or_else(|| json!({}));
    metadata["resourceVersion"] = revision;
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(resource),
        "rows": rows,
    })
}

pub(crate) fn column_definitions(resource: &ResourceType) -> Value {
    if resource.custom {
        let mut definitions = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
        ];
        for printer in &resource.printer_columns {
            definitions.push(json!({
                "name": printer["name"],
                "type": printer["type"].as_str().unwrap_or("string"),
                "format": printer["format"].as_str().unwrap_or(""),
                "description": printer["description"].as_str().unwrap_or(""),
                "priority": printer["priority"].as_i64().unwrap_or(0),
            }));
        }
        if resource.printer_columns.is_empty() {
            definitions.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
        }
        return Value::Array(definitions);
    }
    let mut definitions = Vec::new();
    for column in columns(&resource.kind) {
        let format = if column.name == "Name" { "name" } else { "" };
        definitions.push(json!({
            "name": column.name,
            "type": column.kind,
            "format": format,
            "description": "",
            "priority": column.priority,
        }));
    }
    Value::Array(definitions)
}

/// Builds the table row of one object.
pub(crate) fn row(resource: &ResourceType, object: &Value, include_object: Option<&str>) -> Value {
    let cells: Vec<Value> = if resource.custom {
        let mut cells = vec![json!(meta::name_of(object))];
        for printer in &resource.printer_columns {
            let path = printer["jsonPath"].as_str().unwrap_or("");
            let value = lookup(object, path);
            cells.push(if printer["type"] == "date" {
                json!(age(value.as_str().unwrap_or("")))
            } else {
                value
            });
        }
        if resource.printer_columns.is_empty() {
            cells.push(json!(age_of(object)));
        }
        cells
    } else {
        columns(&resource.kind)
            .iter()
            .map(|column| (column.cell)(object))
            .collect()
    };
    let mut row = json!({"cells": cells});
    match include_object {
        Some("None") => {}
        Some("Object") => row["object"] = object.clone(),
        _ => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object["metadata"],
            })
        }
    }
    row
}

/// Evaluates a simple JSONPath such as `.spec.replicas` or `.status.conditions[0].type`.
fn lookup(object: &Value, path: &str) -> Value {
    let mut current = object;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (field, index) = match part.split_once('[') {
            Some((field, rest)) => (field, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        current = &current[field];
        if let Some(index) = index {
            current = &current[index];
        }
    }
    current.clone()
}

fn name(object: &Value) -> Value {
    json!(meta::name_of(object))
}

fn age_of(object: &Value) -> Value {
    json!(age(object["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or("")))
}

/// Formats the time since an RFC 3339 timestamp as kubectl does (`45s`, `5m30s`, `3h`, `2d`).
pub(crate) fn age(timestamp: &str) -> String {
    let Some(then) = meta::parse_time(timestamp) else {
        return "<unknown>".to_string();
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    human_duration(now - then)
}

fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let days = hours / 24;
    let years = days / 365;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        match seconds % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            rest => format!("{hours}h{rest}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        match days % 365 {
            0 => format!("{years}y"),
            rest => format!("{years}y{rest}d"),
        }
    } else {
        format!("{years}y")
    }
}

fn text_or_none(value: &Value) -> Value {
    match value.as_str() {
        Some(text) if !text.is_empty() => json!(text),
        _ => json!("<none>"),
    }
}

fn count(value: &Value) -> i64 {
    value.as_object().map_or(0, |m| m.len() as i64)
}

fn columns(kind: &str) -> Vec<Column> {
    let mut list = vec![column("Name", 0, name)];
    match kind {
        "Pod" => list.extend([
            column("Ready", 0, pod_ready),
            column("Status", 0, |o| json!(pod_status(o))),
            column("Restarts", 0, |o| {
                json!(o["status"]["containerStatuses"].as_array().map_or(0, |s| {
                    s.iter()
                        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                        .sum::<i64>()
                }))
            }),
            column("Age", 0, age_of),
            column("IP", 1, |o| text_or_none(&o["status"]["podIP"])),
            column("Node", 1, |o| text_or_none(&o["spec"]["nodeName"])),
            column("Nominated Node", 1, |o| {
                text_or_none(&o["status"]["nominatedNodeName"])
            }),
            column("Readiness Gates", 1, |_| json!("<none>")),
        ]),
        "Deployment" => list.extend([
            column("Ready", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(0)
                ))
            }),
            column("Up-to-date", 0, |o| {
                json!(o["status"]["updatedReplicas"].as_i64().unwrap_or(0))
            }),
            column("Available", 0, |o| {
                json!(o["status"]["availableReplicas"].as_i64().unwrap_or(0))
            }),
            column("Age", 0, age_of),
            column("Containers", 1, |o| json!(containers_field(o, "name"))),
            column("Images", 1, |o| json!(containers_field(o, "image"))),
            column("Selector", 1, |o| {
                json!(selector_text(&o["spec"]["selector"]["matchLabels"]))
            }),
        ]),
        "ReplicaSet" | "StatefulSet" | "DaemonSet" => list.extend([
            column("Desired", 0, |o| {
                json!(o["spec"]["replicas"].as_i64().unwrap_or(0))
            }),
            column("Current", 0, |o| {
                json!(o["status"]["replicas"].as_i64().unwrap_or(0))
            }),
            column("Ready", 0, |o| {
                json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0))
            }),
            column("Age", 0, age_of),
        ]),
        "Service" => list.extend([
            column("Type", 0, |o| {
                json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP"))
            }),
            column("Cluster-IP", 0, |o| text_or_none(&o["spec"]["clusterIP"])),
            column("External-IP", 0, |o| {
                let ingress: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|i| i["ip"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if !ingress.is_empty() {
                    json!(ingress.join(","))
                } else if o["spec"]["type"] == "LoadBalancer" {
                    json!("<pending>")
                } else if let Some(name) = o["spec"]["externalName"].as_str() {
                    json!(name)
                } else {
                    json!("<none>")
                }
            }),
            column("Port(s)", 0, |o| json!(service_ports(o))),
            column("Age", 0, age_of),
            column("Selector", 1, |o| {
                json!(selector_text(&o["spec"]["selector"]))
            }),
        ]),
        "Namespace" => list.extend([
            column("Status", 0, |o| {
                json!(o["status"]["phase"].as_str().unwrap_or("Active"))
            }),
            column("Age", 0, age_of),
        ]),
        "Node" => list.extend([
            column("Status", 0, |o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .is_some_and(|c| c["status"] == "True");
                let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
                if o["spec"]["unschedulable"] == json!(true) {
                    status.push_str(",SchedulingDisabled");
                }
                json!(status)
            }),
            column("Roles", 0, |o| {
                let roles: Vec<String> = meta::labels(o)
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter_map(|k| {
                                k.strip_prefix("node-role.kubernetes.io/")
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                })
            }),
            column("Age", 0, age_of),
            column("Version", 0, |o| {
                json!(o["status"]["nodeInfo"]["kubeletVersion"])
            }),
            column("Internal-IP", 1, |o| json!(node_address(o, "InternalIP"))),
            column("External-IP", 1, |o| json!(node_address(o, "ExternalIP"))),
            column("OS-Image", 1, |o| json!(o["status"]["nodeInfo"]["osImage"])),
            column("Kernel-Version", 1, |o| {
                json!(o["status"]["nodeInfo"]["kernelVersion"])
            }),
            column("Container-Runtime", 1, |o| {
                json!(o["status"]["nodeInfo"]["containerRuntimeVersion"])
            }),
        ]),
        "ConfigMap" => list.extend([
            column("Data", 0, |o| {
                json!(count(&o["data"]) + count(&o["binaryData"]))
            }),
            column("Age", 0, age_of),
        ]),
        "Secret" => list.extend([
            column("Type", 0, |o| json!(o["type"].as_str().unwrap_or("Opaque"))),
            column("Data", 0, |o| json!(count(&o["data"]))),
            column("Age", 0, age_of),
        ]),
        "ServiceAccount" => list.extend([
            column("Secrets", 0, |o| {
                json!(o["secrets"].as_array().map_or(0, Vec::len))
            }),
            column("Age", 0, age_of),
        ]),
        "Ingress" => list.extend([
            column("Class", 0, |o| text_or_none(&o["spec"]["ingressClassName"])),
            column("Hosts", 0, |o| {
                let hosts: Vec<String> = o["spec"]["rules"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|r| r["host"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                })
            }),
            column("Address", 0, |o| {
                let addresses: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|i| {
                                i["ip"]
                                    .as_str()
                                    .or(i["hostname"].as_str())
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!(addresses.join(","))
            }),
            column("Ports", 0, |o| {
                json!(if o["spec"]["tls"].is_array() {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            column("Age", 0, age_of),
        ]),
        "CustomResourceDefinition" => list.push(Column {
            name: "Created At",
            kind: "date",
            priority: 0,
            cell: |o| o["metadata"]["creationTimestamp"].clone(),
        }),
        "Job" => list.extend([
            column("Status", 0, |o| {
                let conditions = o["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let has = |t: &str| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == t && c["status"] == "True")
                };
                json!(if has("Complete") {
                    "Complete"
                } else if has("Failed") {
                    "Failed"
                } else {
                    "Running"
                })
            }),
            column("Completions", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["succeeded"].as_i64().unwrap_or(0),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                ))
            }),
            column("Age", 0, age_of),
        ]),
        "Event" => {
            list.clear();
            list.extend([
                column("Last Seen", 0, |o| {
                    json!(age(o["lastTimestamp"]
                        .as_str()
                        .or(o["eventTime"].as_str())
                        .unwrap_or("")))
                }),
                column("Type", 0, |o| json!(o["type"])),
                column("Reason", 0, |o| json!(o["reason"])),
                column("Object", 0, |o| {
                    json!(format!(
                        "{}/{}",
                        o["involvedObject"]["kind"]
                            .as_str()
                            .unwrap_or("")
                            .to_lowercase(),
                        o["involvedObject"]["name"].as_str().unwrap_or("")
                    ))
                }),
                column("Message", 0, |o| json!(o["message"])),
            ]);
        }
        _ => list.push(column("Age", 0, age_of)),
    }
    list
}

fn pod_ready(object: &Value) -> Value {
    let total = object["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = object["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |s| {
            s.iter().filter(|c| c["ready"] == json!(true)).count()
        });
    json!(format!("{ready}/{total}"))
}

fn pod_status(object: &Value) -> String {
    if !object["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".to_string();
    }
    if let Some(statuses) = object["status"]["containerStatuses"].as_array() {
        for status in statuses {
            if let Some(reason) = status["state"]["waiting"]["reason"].as_str() {
                return reason.to_string();
            }
            if let Some(reason) = status["state"]["terminated"]["reason"].as_str()
                && object["status"]["phase"] != "Succeeded"
                && object["status"]["phase"] != "Failed"
            {
                return reason.to_string();
            }
        }
    }
    if let Some(reason) = object["status"]["reason"].as_str() {
        return reason.to_string();
    }
    match object["status"]["phase"].as_str() {
        Some("Succeeded") => "Completed".to_string(),
        Some("Failed") => "Error".to_string(),
        Some(phase) => phase.to_string(),
        None => "Pending".to_string(),
    }
}

fn containers_field(object: &Value, field: &str) -> String {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c[field].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn selector_text(labels: &Value) -> String {
    match labels.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_string(),
    }
}

fn service_ports(object: &Value) -> String {
    let ports: Vec<String> = object["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let protocol = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(node_port) => format!("{}:{node_port}/{protocol}", p["port"]),
                        None => format!("{}/{protocol}", p["port"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

fn node_address(object: &Value, kind: &str) -> String {
    object["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == kind))
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_kubectl() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(330), "5m30s");
        assert_eq!(human_duration(3 * 3600), "3h");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }
}
