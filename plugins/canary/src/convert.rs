//! Conversion of extensions/v1beta1 and networking.k8s.io/v1beta1 Ingress manifests to
//! networking.k8s.io/v1, the only Ingress version served since Kubernetes 1.22.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// Ingress API versions that `convert` rewrites.
pub const LEGACY_VERSIONS: [&str; 2] = ["extensions/v1beta1", "networking.k8s.io/v1beta1"];

/// Result of converting a manifest stream.
#[derive(Debug, Default)]
pub struct Converted {
    /// The documents, converted or passed through unchanged, in input order.
    pub documents: Vec<Value>,
    /// Number of Ingress objects converted.
    pub converted: usize,
    /// Remarks about values that the conversion had to interpret.
    pub warnings: Vec<String>,
}

/// Converts every legacy Ingress in a multi-document YAML or JSON text; other documents pass
/// through unchanged and `kind: List` items are converted one by one.
pub fn convert_manifests(text: &str) -> Result<Converted, String> {
    let mut result = Converted::default();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut value = Value::deserialize(document)
            .map_err(|error| format!("document {}: invalid YAML: {error}", index + 1))?;
        if value.is_null() {
            continue;
        }
        convert_value(&mut value, &format!("document {}", index + 1), &mut result)?;
        result.documents.push(value);
    }
    Ok(result)
}

fn convert_value(value: &mut Value, place: &str, result: &mut Converted) -> Result<(), String> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind == "List" || kind.ends_with("List") {
        if let Some(items) = value.get_mut("items").and_then(Value::as_sequence_mut) {
            for (index, item) in items.iter_mut().enumerate() {
                convert_value(item, &format!("{place} item {}", index + 1), result)?;
            }
        }
        return Ok(());
    }

    let version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "Ingress" || !LEGACY_VERSIONS.contains(&version) {
        return Ok(());
    }
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let place = format!("{place} (Ingress {name})");
    convert_ingress(value, &place, &mut result.warnings)?;
    result.converted += 1;
    Ok(())
}

/// Rewrites one legacy Ingress in place.
pub fn convert_ingress(
    ingress: &mut Value,
    place: &str,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let object = ingress
        .as_mapping_mut()
        .ok_or_else(|| format!("{place}: expected a mapping"))?;
    object.insert("apiVersion".into(), "networking.k8s.io/v1".into());

    let Some(spec) = object.get_mut("spec").and_then(Value::as_mapping_mut) else {
        return Ok(());
    };

    // spec.backend became spec.defaultBackend.
    if let Some(mut backend) = spec.remove("backend") {
        convert_backend(&mut backend, &format!("{place} spec.backend"), warnings)?;
        spec.insert("defaultBackend".into(), backend);
    }

    let Some(rules) = spec.get_mut("rules").and_then(Value::as_sequence_mut) else {
        return Ok(());
    };
    for (rule_index, rule) in rules.iter_mut().enumerate() {
        let Some(paths) = rule
            .get_mut("http")
            .and_then(|http| http.get_mut("paths"))
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for (path_index, path) in paths.iter_mut().enumerate() {
            let here = format!("{place} spec.rules[{rule_index}].http.paths[{path_index}]");
            let path = path
                .as_mapping_mut()
                .ok_or_else(|| format!("{here}: expected a mapping"))?;
            if !path.contains_key("pathType") {
                path.insert("pathType".into(), "ImplementationSpecific".into());
            }
            let backend = path
                .get_mut("backend")
                .ok_or_else(|| format!("{here}: missing backend"))?;
            convert_backend(backend, &format!("{here}.backend"), warnings)?;
        }
    }
    Ok(())
}

/// Rewrites `serviceName`/`servicePort` into `service.name` and `service.port.number|name`.
/// A `resource` backend has the same form in both versions and stays as it is.
fn convert_backend(
    backend: &mut Value,
    place: &str,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mapping = backend
        .as_mapping_mut()
        .ok_or_else(|| format!("{place}: expected a mapping"))?;
    if mapping.contains_key("resource") && !mapping.contains_key("serviceName") {
        return Ok(());
    }

    let service_name = mapping
        .remove("serviceName")
        .ok_or_else(|| format!("{place}: missing serviceName (or resource)"))?;
    let service_port = mapping
        .remove("servicePort")
        .ok_or_else(|| format!("{place}: missing servicePort"))?;

    let mut port = Mapping::new();
    match &service_port {
        Value::Number(number) => {
            port.insert("number".into(), Value::Number(number.clone()));
        }
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            // A quoted number is a port name for the API server, but a port name needs a
            // letter, so the only valid reading is the port number.
            let number: u64 = text
                .parse()
                .map_err(|_| format!("{place}: invalid servicePort {text:?}"))?;
            warnings.push(format!(
                "{place}: servicePort {text:?} is a quoted number; written as port.number {number}"
            ));
            port.insert("number".into(), number.into());
        }
        Value::String(text) => {
            port.insert("name".into(), text.clone().into());
        }
        other => {
            return Err(format!(
                "{place}: invalid servicePort {other:?}: expected a number or a port name"
            ));
        }
    }

    let mut service = Mapping::new();
    service.insert("name".into(), service_name);
    service.insert("port".into(), Value::Mapping(port));
    mapping.insert("service".into(), Value::Mapping(service));
    Ok(())
}

/// Renders documents as a YAML stream separated by `---`.
pub fn to_yaml_stream(documents: &[Value]) -> Result<String, String> {
    let mut text = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            text.push_str("---\n");
        }
        text.push_str(
            &serde_yaml::to_string(document).map_err(|e| format!("failed to encode YAML: {e}"))?,
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = "
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: hello-world
  annotations:
    kubernetes.io/ingress.class: nginx
spec:
  backend:
    serviceName: fallback
    servicePort: http
  tls:
  - hosts: [hello.world.test]
    secretName: hello-tls
  rules:
  - host: hello.world.test
    http:
      paths:
      - backend:
          serviceName: hello-world-svc
          servicePort: 80
      - path: /api
        pathType: Prefix
        backend:
          serviceName: api
          servicePort: grpc
";

    fn only(text: &str) -> Value {
        let converted = convert_manifests(text).unwrap();
        assert_eq!(converted.documents.len(), 1);
        converted.documents.into_iter().next().unwrap()
    }

    #[test]
    fn legacy_ingress_becomes_v1() {
        let value = only(LEGACY);
        let expected: Value = serde_yaml::from_str(
            "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hello-world
  annotations:
    kubernetes.io/ingress.class: nginx
spec:
  tls:
  - hosts: [hello.world.test]
    secretName: hello-tls
  rules:
  - host: hello.world.test
    http:
      paths:
      - backend:
          service: {name: hello-world-svc, port: {number: 80}}
        pathType: ImplementationSpecific
      - path: /api
        pathType: Prefix
        backend:
          service: {name: api, port: {name: grpc}}
  defaultBackend:
    service: {name: fallback, port: {name: http}}
",
        )
        .unwrap();
        assert_eq!(value, expected);
    }

    #[test]
    fn networking_v1beta1_converted() {
        let text = LEGACY.replace("extensions/v1beta1", "networking.k8s.io/v1beta1");
        assert_eq!(only(&text)["apiVersion"], "networking.k8s.io/v1");
    }

    #[test]
    fn other_documents_pass_through() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: b}\n";
        let converted = convert_manifests(text).unwrap();
        assert_eq!(converted.documents.len(), 2);
        assert_eq!(converted.converted, 0);
    }

    #[test]
    fn list_items_converted() {
        let text = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            LEGACY.trim().replace('\n', "\n  ")
        );
        let converted = convert_manifests(&text).unwrap();
        assert_eq!(converted.converted, 1);
        assert_eq!(
            converted.documents[0]["items"][0]["apiVersion"],
            "networking.k8s.io/v1"
        );
    }

    #[test]
    fn quoted_port_number_becomes_number() {
        let text = LEGACY.replace("servicePort: 80", "servicePort: \"80\"");
        let converted = convert_manifests(&text).unwrap();
        let port = &converted.documents[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            ["port"];
        assert_eq!(port["number"], 80);
        assert_eq!(converted.warnings.len(), 1);
    }

    #[test]
    fn missing_service_name_is_an_error() {
        let text = LEGACY.replace("serviceName: hello-world-svc", "serviceNam: x");
        let error = convert_manifests(&text).unwrap_err();
        assert!(
            error.contains("spec.rules[0].http.paths[0].backend: missing serviceName"),
            "{error}"
        );
        assert!(error.contains("Ingress hello-world"), "{error}");
    }

    #[test]
    fn invalid_yaml_names_document() {
        let error = convert_manifests("a: 1\n---\n: : :\n  - x").unwrap_err();
        assert!(error.starts_with("document 2: invalid YAML"), "{error}");
    }
}
