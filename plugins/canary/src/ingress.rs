//! Plain-data helpers over networking.k8s.io/v1 Ingress objects: their host and path entries,
//! canary detection and the canary Ingress cloned from a primary.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressServiceBackend, ServiceBackendPort,
};
use kube::api::ObjectMeta;

use crate::annotations::{self, CanaryAnnotations, CanaryRules};

/// `pathType` of a path that sets none; the API server defaults it the same way.
pub const DEFAULT_PATH_TYPE: &str = "ImplementationSpecific";

/// One host and path of an Ingress with the Service behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    /// Host, empty for a rule without a host.
    pub host: String,
    /// Path, `/` when the rule sets none.
    pub path: String,
    /// `pathType`.
    pub path_type: String,
    /// Backend Service name, empty for a resource backend.
    pub service: String,
    /// Backend port as written: a number or a port name.
    pub port: String,
}

impl PathEntry {
    /// Formats the entry as `host/path (pathType)`.
    pub fn location(&self) -> String {
        let host = if self.host.is_empty() {
            "*"
        } else {
            &self.host
        };
        format!("{host}{} ({})", self.path, self.path_type)
    }
}

/// Returns the name of an Ingress.
pub fn name_of(ingress: &Ingress) -> &str {
    ingress.metadata.name.as_deref().unwrap_or("")
}

/// Returns the annotations of an object, empty when it has none.
pub fn annotations_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

/// Returns the canary annotations of an Ingress.
pub fn canary_annotations(ingress: &Ingress) -> CanaryAnnotations {
    CanaryAnnotations::from_map(&annotations_of(&ingress.metadata))
}

/// Reports whether ingress-nginx treats the Ingress as a canary.
pub fn is_canary(ingress: &Ingress) -> bool {
    canary_annotations(ingress).is_canary()
}

/// Returns the ingress class of an Ingress.
pub fn class_of(ingress: &Ingress) -> Option<String> {
    let class_name = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    annotations::ingress_class(class_name, &annotations_of(&ingress.metadata))
}

fn describe_port(port: Option<&ServiceBackendPort>) -> String {
    match port {
        Some(ServiceBackendPort {
            number: Some(number),
            ..
        }) => number.to_string(),
        Some(ServiceBackendPort {
            name: Some(name), ..
        }) => name.clone(),
        _ => String::new(),
    }
}

/// Lists the host and path entries of an Ingress's rules (the default backend is not one).
pub fn path_entries(ingress: &Ingress) -> Vec<PathEntry> {
    let mut entries = Vec::new();
    let Some(spec) = &ingress.spec else {
        return entries;
    };
    for rule in spec.rules.iter().flatten() {
        let host = rule.host.clone().unwrap_or_default();
        for path in rule.http.iter().flat_map(|http| &http.paths) {
            let service = path.backend.service.as_ref();
            entries.push(PathEntry {
                host: host.clone(),
                path: path
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".to_string()),
                path_type: if path.path_type.is_empty() {
                    DEFAULT_PATH_TYPE.to_string()
                } else {
                    path.path_type.clone()
                },
                service: service.map(|s| s.name.clone()).unwrap_or_default(),
                port: describe_port(service.and_then(|s| s.port.as_ref())),
            });
        }
    }
    entries
}

/// Lists the distinct backend Services of an Ingress, the default backend included.
pub fn services_of(ingress: &Ingress) -> Vec<String> {
    let mut names: Vec<String> = path_entries(ingress)
        .into_iter()
        .map(|e| e.service)
        .collect();
    if let Some(service) = ingress
        .spec
        .as_ref()
        .and_then(|s| s.default_backend.as_ref())
        .and_then(|b| b.service.as_ref())
    {
        names.push(service.name.clone());
    }
    names.retain(|name| !name.is_empty());
    names.sort();
    names.dedup();
    names
}

/// The canary Service and port that `create` writes into every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryBackend {
    /// Service name.
    pub service: String,
    /// Port number; `None` keeps each path's port from the primary.
    pub port: Option<i32>,
}

/// Clones a primary Ingress into its canary: same hosts, paths, pathTypes, TLS and ingress class,
/// every backend switched to the canary Service, and the canary annotations set.
///
/// Other annotations are not copied because ingress-nginx ignores them on a canary, which
/// inherits them from the primary.
pub fn clone_as_canary(
    primary: &Ingress,
    name: &str,
    backend: &CanaryBackend,
    rules: &CanaryRules,
) -> Ingress {
    let mut annotations = BTreeMap::new();
    if let Some(class) = annotations_of(&primary.metadata).get(annotations::INGRESS_CLASS) {
        annotations.insert(annotations::INGRESS_CLASS.to_string(), class.clone());
    }
    CanaryAnnotations::from_rules(rules).write_to(&mut annotations);

    let mut spec = primary.spec.clone().unwrap_or_default();
    let switch = |existing: &mut IngressBackend| {
        let port = match (
            backend.port,
            existing.service.as_ref().and_then(|s| s.port.clone()),
        ) {
            (Some(number), _) => Some(ServiceBackendPort {
                number: Some(number),
                name: None,
            }),
            (None, port) => port,
        };
        *existing = IngressBackend {
            resource: None,
            service: Some(IngressServiceBackend {
                name: backend.service.clone(),
                port,
            }),
        };
    };
    if let Some(default_backend) = spec.default_backend.as_mut() {
        switch(default_backend);
    }
    for rule in spec.rules.iter_mut().flatten() {
        for path in rule.http.iter_mut().flat_map(|http| http.paths.iter_mut()) {
            switch(&mut path.backend);
        }
    }

    Ingress {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: primary.metadata.namespace.clone(),
            labels: primary.metadata.labels.clone(),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Points every backend of `primary` that uses `from` at Service `to` (port number `port`, or the
/// same port when `None`), as `promote` does.
pub fn retarget_backends(
    primary: &mut Ingress,
    from: &str,
    to: &str,
    port: Option<&ServiceBackendPort>,
) -> usize {
    let mut changed = 0;
    let Some(spec) = primary.spec.as_mut() else {
        return 0;
    };
    let mut switch = |backend: &mut IngressBackend| {
        if let Some(service) = backend.service.as_mut()
            && service.name == from
        {
            service.name = to.to_string();
            if let Some(port) = port {
                service.port = Some(port.clone());
            }
            changed += 1;
        }
    };
    if let Some(default_backend) = spec.default_backend.as_mut() {
        switch(default_backend);
    }
    for rule in spec.rules.iter_mut().flatten() {
        for path in rule.http.iter_mut().flat_map(|http| http.paths.iter_mut()) {
            switch(&mut path.backend);
        }
    }
    changed
}

/// Returns the first Service port of a canary Ingress's backends, used when promoting.
pub fn first_port(ingress: &Ingress) -> Option<ServiceBackendPort> {
    let spec = ingress.spec.as_ref()?;
    spec.rules
        .iter()
        .flatten()
        .flat_map(|rule| rule.http.iter().flat_map(|http| &http.paths))
        .filter_map(|path| path.backend.service.as_ref())
        .chain(
            spec.default_backend
                .iter()
                .filter_map(|b| b.service.as_ref()),
        )
        .find_map(|service| service.port.clone())
}

/// Finds the primary Ingresses that a canary Ingress attaches to: non-canary Ingresses sharing at
/// least one host and path with it.
pub fn primaries_of<'a>(canary: &Ingress, all: &'a [Ingress]) -> Vec<&'a Ingress> {
    let entries = path_entries(canary);
    all.iter()
        .filter(|other| !is_canary(other) && name_of(other) != name_of(canary))
        .filter(|other| {
            path_entries(other)
                .iter()
                .any(|e| entries.iter().any(|c| c.host == e.host && c.path == e.path))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an Ingress from YAML for tests.
    pub(crate) fn ingress(yaml: &str) -> Ingress {
        serde_yaml::from_str(yaml).expect("test Ingress parses")
    }

    pub(crate) const PRIMARY: &str = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hello-world
  namespace: demo
  annotations:
    kubernetes.io/ingress.class: nginx
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  tls: [{hosts: [hello.world.test], secretName: tls}]
  rules:
  - host: hello.world.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: hello-world-svc, port: {number: 80}}}
";

    #[test]
    fn canary_clone_keeps_hosts_and_switches_backends() {
        let primary = ingress(PRIMARY);
        let rules = CanaryRules {
            weight: 10,
            ..CanaryRules::default()
        };
        let backend = CanaryBackend {
            service: "hello-world-svc-v2".into(),
            port: None,
        };
        let canary = clone_as_canary(&primary, "hello-world-canary", &backend, &rules);

        assert_eq!(name_of(&canary), "hello-world-canary");
        assert_eq!(canary.metadata.namespace.as_deref(), Some("demo"));
        assert!(is_canary(&canary));
        assert_eq!(class_of(&canary).as_deref(), Some("nginx"));
        assert_eq!(
            canary.spec.as_ref().unwrap().tls,
            primary.spec.as_ref().unwrap().tls
        );
        let entries = path_entries(&canary);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].location(), "hello.world.test/ (Prefix)");
        assert_eq!(entries[0].service, "hello-world-svc-v2");
        assert_eq!(entries[0].port, "80");
        let annotations = annotations_of(&canary.metadata);
        assert!(!annotations.contains_key("nginx.ingress.kubernetes.io/rewrite-target"));
    }

    #[test]
    fn canary_clone_sets_port_when_given() {
        let primary = ingress(PRIMARY);
        let backend = CanaryBackend {
            service: "v2".into(),
            port: Some(8080),
        };
        let canary = clone_as_canary(&primary, "c", &backend, &CanaryRules::default());
        assert_eq!(path_entries(&canary)[0].port, "8080");
    }

    #[test]
    fn retarget_switches_matching_backends() {
        let mut primary = ingress(PRIMARY);
        let port = ServiceBackendPort {
            number: Some(8080),
            name: None,
        };
        assert_eq!(
            retarget_backends(&mut primary, "hello-world-svc", "v2", Some(&port)),
            1
        );
        assert_eq!(path_entries(&primary)[0].service, "v2");
        assert_eq!(path_entries(&primary)[0].port, "8080");
        assert_eq!(retarget_backends(&mut primary, "absent", "v3", None), 0);
    }

    #[test]
    fn missing_path_and_type_defaulted() {
        let entry = &path_entries(&ingress(
            "
metadata: {name: a}
spec:
  rules:
  - http:
      paths:
      - pathType: ''
        backend: {service: {name: s, port: {name: http}}}
",
        ))[0];
        assert_eq!(entry.location(), "*/ (ImplementationSpecific)");
        assert_eq!(entry.port, "http");
    }
}
