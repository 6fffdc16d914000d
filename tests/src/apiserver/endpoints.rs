//! The endpoints controllers: Endpoints and EndpointSlices of Services with a selector,
//! listing the IPs of matching pods, ready or not, as kube-controller-manager maintains them.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta;
use super::store::{EventType, Key, Store};

/// Label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One pod address for a service.
struct Address {
    ip: String,
    node: Value,
    pod: Arc<Value>,
    ready: bool,
}

fn is_ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Resolves a service port's targetPort against a pod's named container ports.
fn target_port(port: &Value, pod: Option<&Value>) -> Value {
    match &port["targetPort"] {
        Value::String(name) => pod
            .and_then(|pod| {
                pod["spec"]["containers"]
                    .as_array()?
                    .iter()
                    .find_map(|container| {
                        container["ports"]
                            .as_array()?
                            .iter()
                            .find(|p| p["name"] == *name)
                            .map(|p| p["containerPort"].clone())
                    })
            })
            .unwrap_or(Value::Null),
        Value::Null => port["port"].clone(),
        number => number.clone(),
    }
}

/// Recomputes the Endpoints and EndpointSlices of every selector Service in a namespace.
pub(crate) fn sync(store: &mut Store, namespace: &str) {
    let services = store.list("", "services", Some(namespace));
    let pods = store.list("", "pods", Some(namespace));
    for service in &services {
        let Some(selector) = service["spec"]["selector"]
            .as_object()
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let mut addresses: Vec<Address> = pods
            .iter()
            .filter(|pod| {
                let labels = meta::labels(pod);
                selector
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value))
            })
            .filter_map(|pod| {
                let ip = pod["status"]["podIP"].as_str()?.to_string();
                Some(Address {
                    ip,
                    node: pod["spec"]["nodeName"].clone(),
                    ready: is_ready(pod),
                    pod: pod.clone(),
                })
            })
            .collect();
        // The endpoints controller sorts addresses by IP.
        addresses.sort_by_key(|a| a.ip.parse::<std::net::Ipv4Addr>().ok());
        write_endpoints(store, service, &addresses);
        write_slice(store, service, &addresses);
    }
}

/// Deletes the Endpoints and EndpointSlices of a deleted Service.
pub(crate) fn service_deleted(store: &mut Store, namespace: &str, name: &str) {
    store.remove(&Key::new("", "endpoints", namespace, name));
    let slices: Vec<Key> = store
        .list_keys("discovery.k8s.io", "endpointslices", Some(namespace))
        .filter(|(_, slice)| meta::labels(slice)[SERVICE_NAME_LABEL] == name)
        .map(|(key, _)| key.clone())
        .collect();
    for key in slices {
        store.remove(&key);
    }
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"],
           "uid": pod["metadata"]["uid"]})
}

fn write_endpoints(store: &mut Store, service: &Value, addresses: &[Address]) {
    let name = meta::name_of(service).to_string();
    let namespace = meta::namespace_of(service).to_string();
    let render = |ready: bool| -> Vec<Value> {
        addresses
            .iter()
            .filter(|a| a.ready == ready)
            .map(|a| json!({"ip": a.ip, "nodeName": a.node, "targetRef": target_ref(&a.pod)}))
            .collect()
    };
    let (ready, not_ready) = (render(true), render(false));
    let mut endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(labels) = service["metadata"].get("labels") {
        endpoints["metadata"]["labels"] = labels.clone();
    }
    if !ready.is_empty() || !not_ready.is_empty() {
        let first_pod = addresses.first().map(|a| a.pod.as_ref());
        let ports: Vec<Value> = service["spec"]["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| {
                        let mut port =
                            json!({"port": target_port(p, first_pod), "protocol": p["protocol"]});
                        if let Some(port_name) = p["name"].as_str() {
                            port["name"] = json!(port_name);
                        }
                        port
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        endpoints["subsets"] = json!([subset]);
    }
    store_if_changed(
        store,
        Key::new("", "endpoints", &namespace, &name),
        endpoints,
    );
}

fn write_slice(store: &mut Store, service: &Value, addresses: &[Address]) {
    let name = meta::name_of(service).to_string();
    let namespace = meta::namespace_of(service).to_string();
    let existing = store
        .list_keys("discovery.k8s.io", "endpointslices", Some(&namespace))
        .find(|(_, slice)| meta::labels(slice)[SERVICE_NAME_LABEL] == name.as_str())
        .map(|(key, _)| key.name.clone());
    let slice_name = existing.unwrap_or_else(|| meta::generated_name(&format!("{name}-")));
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| {
            json!({
                "addresses": [a.ip],
                "conditions": {"ready": a.ready, "serving": a.ready, "terminating": false},
                "nodeName": a.node,
                "targetRef": target_ref(&a.pod),
            })
        })
        .collect();
    let first_pod = addresses.first().map(|a| a.pod.as_ref());
    let ports: Vec<Value> = service["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| json!({"name": p["name"].as_str().unwrap_or(""), "port": target_port(p, first_pod), "protocol": p["protocol"]}))
                .collect()
        })
        .unwrap_or_default();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name,
            "namespace": namespace,
            "generateName": format!("{name}-"),
            "labels": {
                SERVICE_NAME_LABEL: name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                 "uid": service["metadata"]["uid"], "controller": true,
                                 "blockOwnerDeletion": true}],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    });
    store_if_changed(
        store,
        Key::new(
            "discovery.k8s.io",
            "endpointslices",
            &namespace,
            &slice_name,
        ),
        slice,
    );
}

/// Stores a controller-owned object unless its content is unchanged.
fn store_if_changed(store: &mut Store, key: Key, mut object: Value) {
    match store.get(&key) {
        Some(current) => {
            let content = |value: &Value| {
                let mut copy = value.clone();
                if let Some(map) = copy.as_object_mut() {
                    map.remove("metadata");
                }
                (copy, value["metadata"]["labels"].clone())
            };
            if content(&current) == content(&object) {
                return;
            }
            for field in ["uid", "creationTimestamp"] {
                object["metadata"][field] = current["metadata"][field].clone();
            }
            store.put(key, object, EventType::Modified);
        }
        None => {
            object["metadata"]["uid"] = json!(meta::new_uid());
            object["metadata"]["creationTimestamp"] = json!(meta::now());
            store.put(key, object, EventType::Added);
        }
    }
}
