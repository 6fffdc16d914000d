//! Sanitizing backed-up objects for creation in another cluster: server-set fields removed,
//! cluster-specific values cleared, and objects the target creates by itself skipped.

use serde_json::{Map, Value, json};

/// Options of the sanitizing step.
#[derive(Debug, Clone, Copy, Default)]
pub struct SanitizeOptions {
    /// Keeps Service nodePorts (`--preserve-nodeports`).
    pub preserve_node_ports: bool,
}

/// Metadata fields the API server sets; a create must not carry them.
const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// PVC annotations set by the binder and provisioner of the source cluster.
const PVC_BINDING_ANNOTATIONS: [&str; 5] = [
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Labels the Job controller adds, tied to the source Job's UID.
const JOB_CONTROLLER_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// Returns why an object is left out of a restore because the target cluster makes it itself,
/// or `None` when it should be restored.
pub fn skip_reason(object: &Value) -> Option<&'static str> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    match kind {
        "Secret" if object["type"] == "kubernetes.io/service-account-token" => {
            Some("service-account token secret: the target cluster issues its own tokens")
        }
        "ConfigMap" if name == "kube-root-ca.crt" => {
            Some("kube-root-ca.crt is created by the target cluster in every namespace")
        }
        "ServiceAccount" if name == "default" => {
            Some("the default service account is created by the target cluster")
        }
        "Service" if name == "kubernetes" && namespace == "default" => {
            Some("the kubernetes service is created by the target cluster")
        }
        "Namespace"
            if matches!(
                name,
                "default" | "kube-system" | "kube-public" | "kube-node-lease"
            ) =>
        {
            Some("the namespace is created by the target cluster")
        }
        _ => None,
    }
}

/// Removes server-set and cluster-specific fields from `object`, in place.
pub fn sanitize(object: &mut Value, options: SanitizeOptions) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(field);
        }
    }
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }

    match object["kind"].as_str().unwrap_or_default() {
        "Service" => sanitize_service(object, options),
        "PersistentVolume" => sanitize_persistent_volume(object),
        "PersistentVolumeClaim" => sanitize_persistent_volume_claim(object),
        "Pod" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("nodeName");
                // API servers reject a Pod create that carries ephemeral containers. They were
                // debugging sessions, added to the running source pod through a subresource.
                spec.remove("ephemeralContainers");
            }
        }
        "Job" => sanitize_job(object),
        "Namespace" => {
            // The API server sets this label to the namespace's name, which a mapping changes.
            if let Some(labels) = object
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove("kubernetes.io/metadata.name");
            }
        }
        _ => {}
    }
}

fn remove_annotation(metadata: &mut Map<String, Value>, name: &str) {
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(name);
    }
}

fn sanitize_service(object: &mut Value, options: SanitizeOptions) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    // Headless services keep clusterIP None; every other address is the source cluster's.
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    if !options.preserve_node_ports {
        spec.remove("healthCheckNodePort");
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
}

fn sanitize_persistent_volume(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        remove_annotation(metadata, "pv.kubernetes.io/bound-by-controller");
    }
    // The claim is matched again by namespace and name; its UID and version are the source's.
    if let Some(claim) = object
        .pointer_mut("/spec/claimRef")
        .and_then(Value::as_object_mut)
    {
        claim.remove("uid");
        claim.remove("resourceVersion");
    }
}

fn sanitize_persistent_volume_claim(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for annotation in PVC_BINDING_ANNOTATIONS {
            remove_annotation(metadata, annotation);
        }
    }
}

fn sanitize_job(object: &mut Value) {
    let remove_labels = |labels: Option<&mut Value>| {
        if let Some(labels) = labels.and_then(Value::as_object_mut) {
            for label in JOB_CONTROLLER_LABELS {
                labels.remove(label);
            }
        }
    };
    remove_labels(object.pointer_mut("/spec/template/metadata/labels"));
    remove_labels(object.pointer_mut("/spec/selector/matchLabels"));

    // A selector left empty would match everything: let the target generate it again.
    let selector_empty = object.pointer("/spec/selector").is_some_and(|selector| {
        selector["matchLabels"]
            .as_object()
            .is_none_or(Map::is_empty)
            && selector["matchExpressions"]
                .as_array()
                .is_none_or(Vec::is_empty)
    });
    if selector_empty && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("selector");
    }
}

/// Clears a PVC's `spec.volumeName` when its PV is not part of the restore, so that the target
/// provisions a new volume instead of waiting for a PV that never comes.
pub fn unbind_claim_without_volume(object: &mut Value, volume_restored: bool) {
    if object["kind"] == "PersistentVolumeClaim"
        && !volume_restored
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("volumeName");
    }
}

/// Rewrites ownerReferences with the UIDs of the owners in the target. References to owners
/// that were not restored are dropped, because the garbage collector would delete an object
/// whose owner UID does not exist.
pub fn rebuild_owner_references(object: &mut Value, new_uid: impl Fn(&str) -> Option<String>) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(owners) = metadata
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    owners.retain_mut(|owner| {
        let mapped = owner["uid"].as_str().and_then(&new_uid);
        match mapped {
            Some(uid) => {
                owner["uid"] = Value::String(uid);
                true
            }
            None => false,
        }
    });
    if owners.is_empty() {
        metadata.remove("ownerReferences");
    }
}

/// Converts an Ingress of `extensions/v1beta1` or `networking.k8s.io/v1beta1` to
/// `networking.k8s.io/v1`. The conversion is exact: `serviceName`/`servicePort` become
/// `service.name`/`service.port.number` or `.name`, `backend` becomes `defaultBackend`, and a
/// missing `pathType` becomes `ImplementationSpecific`, which is what v1beta1 meant.
pub fn convert_legacy_ingress(object: &mut Value) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    if object["kind"] != "Ingress"
        || !matches!(
            api_version,
            "extensions/v1beta1" | "networking.k8s.io/v1beta1"
        )
    {
        return false;
    }
    object["apiVersion"] = json!("networking.k8s.io/v1");
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return true;
    };

    if let Some(mut backend) = spec.remove("backend") {
        convert_backend(&mut backend);
        spec.insert("defaultBackend".into(), backend);
    }
    for rule in spec
        .get_mut("rules")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for path in rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(backend) = path.get_mut("backend") {
                convert_backend(backend);
            }
            if path.get("pathType").is_none() {
                path["pathType"] = json!("ImplementationSpecific");
            }
        }
    }
    true
}

fn convert_backend(backend: &mut Value) {
    let Some(fields) = backend.as_object_mut() else {
        return;
    };
    let Some(name) = fields.remove("serviceName") else {
        return;
    };
    let port = match fields.remove("servicePort") {
        Some(Value::Number(number)) => json!({ "number": number }),
        Some(Value::String(text)) => match text.parse::<u16>() {
            Ok(number) => json!({ "number": number }),
            Err(_) => json!({ "name": text }),
        },
        _ => json!({}),
    };
    fields.insert("service".into(), json!({ "name": name, "port": port }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_status_are_stripped() {
        let mut object = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a",
            "uid": "u", "resourceVersion": "5", "generation": 2, "creationTimestamp": "t",
            "managedFields": [], "selfLink": "/x", "labels": {"k": "v"}}, "status": {}, "data": {"a": "b"}});
        sanitize(&mut object, SanitizeOptions::default());
        assert_eq!(
            object,
            json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a", "labels": {"k": "v"}}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn services_lose_cluster_ips_and_node_ports() {
        let mut service = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {
            "type": "NodePort", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"],
            "ports": [{"port": 80, "nodePort": 30080}]}});
        sanitize(&mut service, SanitizeOptions::default());
        assert_eq!(service["spec"].get("clusterIP"), None);
        assert_eq!(service["spec"].get("clusterIPs"), None);
        assert_eq!(service["spec"]["ports"][0].get("nodePort"), None);
    }

    #[test]
    fn preserved_node_ports_and_headless_services_stay() {
        let mut service = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {
            "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80, "nodePort": 30080}]}});
        sanitize(
            &mut service,
            SanitizeOptions {
                preserve_node_ports: true,
            },
        );
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert_eq!(service["spec"]["ports"][0]["nodePort"], 30080);
    }

    #[test]
    fn volumes_and_claims_lose_binding_state() {
        let mut volume = json!({"kind": "PersistentVolume", "metadata": {"name": "pv",
            "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": {"namespace": "a", "name": "c", "uid": "u", "resourceVersion": "1"}}});
        sanitize(&mut volume, SanitizeOptions::default());
        assert_eq!(
            volume["spec"]["claimRef"],
            json!({"namespace": "a", "name": "c"})
        );
        assert_eq!(volume["metadata"]["annotations"], json!({}));

        let mut claim = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "annotations": {
            "pv.kubernetes.io/bind-completed": "yes", "keep": "1"}}, "spec": {"volumeName": "pv"}});
        sanitize(&mut claim, SanitizeOptions::default());
        assert_eq!(claim["metadata"]["annotations"], json!({"keep": "1"}));
        unbind_claim_without_volume(&mut claim, false);
        assert_eq!(claim["spec"].get("volumeName"), None);
    }

    #[test]
    fn pods_lose_node_names() {
        let mut pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}});
        sanitize(&mut pod, SanitizeOptions::default());
        assert_eq!(pod["spec"].get("nodeName"), None);
    }

    #[test]
    fn pods_lose_ephemeral_containers() {
        let mut pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "app:1"}],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox:1"}]}});
        sanitize(&mut pod, SanitizeOptions::default());
        assert_eq!(pod["spec"].get("ephemeralContainers"), None);
        assert_eq!(pod["spec"]["containers"][0]["name"], "app");
    }

    #[test]
    fn jobs_lose_controller_uid_selectors() {
        let mut job = json!({"kind": "Job", "metadata": {"name": "j"}, "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u", "controller-uid": "u", "job-name": "j"}}}}});
        sanitize(&mut job, SanitizeOptions::default());
        assert_eq!(job["spec"].get("selector"), None);
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"job-name": "j"})
        );
    }

    #[test]
    fn cluster_made_objects_are_skipped() {
        let cases = [
            json!({"kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "a"}}),
            json!({"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "a"}}),
            json!({"kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"}}),
            json!({"kind": "Namespace", "metadata": {"name": "default"}}),
        ];
        for object in cases {
            assert!(skip_reason(&object).is_some(), "{object}");
        }
        assert!(
            skip_reason(&json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "s"}}))
                .is_none()
        );
    }

    #[test]
    fn owner_references_are_mapped_or_dropped() {
        let mut object =
            json!({"metadata": {"ownerReferences": [{"uid": "old-1"}, {"uid": "gone"}]}});
        rebuild_owner_references(&mut object, |uid| {
            (uid == "old-1").then(|| "new-1".to_string())
        });
        assert_eq!(
            object["metadata"]["ownerReferences"],
            json!([{"uid": "new-1"}])
        );
        rebuild_owner_references(&mut object, |_| None);
        assert_eq!(object["metadata"].get("ownerReferences"), None);
    }

    #[test]
    fn legacy_ingress_converts_exactly() {
        let mut ingress = json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
            "metadata": {"name": "web", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
            "spec": {"backend": {"serviceName": "default", "servicePort": 80},
                "rules": [{"host": "a.example", "http": {"paths": [
                    {"path": "/", "backend": {"serviceName": "web", "servicePort": "http"}},
                    {"path": "/api", "pathType": "Prefix", "backend": {"serviceName": "api", "servicePort": "8080"}}]}}]}});
        assert!(convert_legacy_ingress(&mut ingress));
        assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(
            ingress["spec"]["defaultBackend"],
            json!({"service": {"name": "default", "port": {"number": 80}}})
        );
        let paths = &ingress["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(
            paths[0]["backend"],
            json!({"service": {"name": "web", "port": {"name": "http"}}})
        );
        assert_eq!(paths[0]["pathType"], "ImplementationSpecific");
        assert_eq!(
            paths[1]["backend"]["service"]["port"],
            json!({"number": 8080})
        );
        assert_eq!(paths[1]["pathType"], "Prefix");
    }

    #[test]
    fn other_objects_are_not_converted() {
        let mut ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"});
        assert!(!convert_legacy_ingress(&mut ingress));
    }
}
