//! Conversion between the removed Ingress versions (`extensions/v1beta1`,
//! `networking.k8s.io/v1beta1`) and the stored `networking.k8s.io/v1` form.

use serde_json::{Map, Value, json};

use super::status::ApiError;

/// Converts a v1beta1 Ingress into networking.k8s.io/v1: `serviceName`/`servicePort` become
/// `service.name` and `service.port.number` or `.name`, `backend` becomes `defaultBackend`,
/// and a path without `pathType` gets `ImplementationSpecific`.
pub(crate) fn ingress_to_v1(object: &Value) -> Result<Value, ApiError> {
    let mut converted = object.clone();
    converted["apiVersion"] = json!("networking.k8s.io/v1");
    let Some(spec) = object.get("spec").and_then(Value::as_object) else {
        return Ok(converted);
    };
    let mut new_spec = spec.clone();
    if let Some(backend) = new_spec.remove("backend") {
        new_spec.insert("defaultBackend".to_string(), backend_to_v1(&backend));
    }
    if let Some(Value::Array(rules)) = new_spec.get_mut("rules") {
        for rule in rules {
            if let Some(Value::Array(paths)) = rule.pointer_mut("/http/paths") {
                for path in paths {
                    if path["pathType"].is_null() {
                        path["pathType"] = json!("ImplementationSpecific");
                    }
                    let backend = backend_to_v1(&path["backend"]);
                    path["backend"] = backend;
                }
            }
        }
    }
    converted["spec"] = Value::Object(new_spec);
    Ok(converted)
}

fn backend_to_v1(backend: &Value) -> Value {
    let mut converted = Map::new();
    if let Some(resource) = backend.get("resource") {
        converted.insert("resource".to_string(), resource.clone());
    }
    if let Some(name) = backend.get("serviceName") {
        let port = match &backend["servicePort"] {
            Value::Number(number) => json!({"number": number}),
            Value::String(text) => match text.parse::<u16>() {
                Ok(number) => json!({"number": number}),
                Err(_) => json!({"name": text}),
            },
            _ => json!({}),
        };
        converted.insert("service".to_string(), json!({"name": name, "port": port}));
    }
    Value::Object(converted)
}

/// Converts a stored networking.k8s.io/v1 Ingress to a v1beta1 `apiVersion`.
pub(crate) fn ingress_from_v1(object: &Value, api_version: &str) -> Value {
    let mut converted = object.clone();
    converted["apiVersion"] = json!(api_version);
    let Some(spec) = object.get("spec").and_then(Value::as_object) else {
        return converted;
    };
    let mut old_spec = spec.clone();
    if let Some(backend) = old_spec.remove("defaultBackend") {
        old_spec.insert("backend".to_string(), backend_from_v1(&backend));
    }
    if let Some(Value::Array(rules)) = old_spec.get_mut("rules") {
        for rule in rules {
            if let Some(Value::Array(paths)) = rule.pointer_mut("/http/paths") {
                for path in paths {
                    let backend = backend_from_v1(&path["backend"]);
                    path["backend"] = backend;
                }
            }
        }
    }
    converted["spec"] = Value::Object(old_spec);
    converted
}

fn backend_from_v1(backend: &Value) -> Value {
    let mut converted = Map::new();
    if let Some(resource) = backend.get("resource") {
        converted.insert("resource".to_string(), resource.clone());
    }
    if let Some(service) = backend.get("service") {
        converted.insert("serviceName".to_string(), service["name"].clone());
        let port = &service["port"];
        let value = if !port["number"].is_null() {
            port["number"].clone()
        } else {
            port["name"].clone()
        };
        converted.insert("servicePort".to_string(), value);
    }
    Value::Object(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_backend_converts_exactly() {
        let legacy = json!({
            "apiVersion": "extensions/v1beta1", "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {"rules": [{"host": "a.test", "http": {"paths": [
                {"path": "/", "backend": {"serviceName": "web", "servicePort": 80}},
                {"path": "/x", "pathType": "Prefix", "backend": {"serviceName": "x", "servicePort": "http"}}
            ]}}]}
        });
        let v1 = ingress_to_v1(&legacy).expect("converts");
        let paths = &v1["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(paths[0]["pathType"], "ImplementationSpecific");
        assert_eq!(
            paths[0]["backend"],
            json!({"service": {"name": "web", "port": {"number": 80}}})
        );
        assert_eq!(
            paths[1]["backend"],
            json!({"service": {"name": "x", "port": {"name": "http"}}})
        );
        let back = ingress_from_v1(&v1, "extensions/v1beta1");
        assert_eq!(
            back["spec"]["rules"][0]["http"]["paths"][0]["backend"],
            json!({"serviceName": "web", "servicePort": 80})
        );
    }
}
