//! Pod specs inside workload objects: where they sit per kind, and the images they use.

use serde_json::Value;

/// JSON pointers of the pod specs inside an object of `kind`.
fn pod_spec_pointers(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["/spec"],
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => &["/spec/template/spec"],
        "PodTemplate" => &["/template/spec"],
        "CronJob" => &["/spec/jobTemplate/spec/template/spec"],
        _ => &[],
    }
}

/// Returns the pod specs of `object` (none for kinds without one).
pub fn pod_specs(object: &Value) -> Vec<&Value> {
    let kind = object["kind"].as_str().unwrap_or_default();
    pod_spec_pointers(kind)
        .iter()
        .filter_map(|pointer| object.pointer(pointer))
        .collect()
}

/// Returns the pod specs of `object` for changing them.
pub fn pod_specs_mut(object: &mut Value) -> Vec<&mut Value> {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let pointers = pod_spec_pointers(&kind);
    // Each kind has at most one pod spec, so one mutable borrow is enough.
    match pointers.first() {
        Some(pointer) => object.pointer_mut(pointer).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The container lists of a pod spec that carry images.
pub const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Returns every image of a pod spec, in container order.
pub fn images_of_pod_spec(spec: &Value) -> Vec<String> {
    let mut images = Vec::new();
    for list in CONTAINER_LISTS {
        for container in spec[list].as_array().into_iter().flatten() {
            if let Some(image) = container["image"].as_str() {
                images.push(image.to_string());
            }
        }
    }
    images
}

/// Returns every image `object` references through its pod specs.
pub fn images_of(object: &Value) -> Vec<String> {
    pod_specs(object)
        .into_iter()
        .flat_map(images_of_pod_spec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_of_a_cronjob() {
        let cronjob = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "initContainers": [{"image": "busybox:1"}],
            "containers": [{"image": "registry.local/app:2"}]
        }}}}}});
        assert_eq!(images_of(&cronjob), ["registry.local/app:2", "busybox:1"]);
    }

    #[test]
    fn kinds_without_pod_specs_have_no_images() {
        assert!(images_of(&json!({"kind": "ConfigMap", "data": {}})).is_empty());
    }
}
