//! Object metadata helpers: timestamps, UIDs, generated names and name validation.

use serde_json::Value;

/// Returns the current time as RFC 3339 with second precision, as `metav1.Time` renders it.
pub(crate) fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

pub(crate) fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Appends five random characters from the alphabet of `generateName` suffixes.
pub(crate) fn generated_name(prefix: &str) -> String {
    // Kubernetes avoids vowels and confusable characters in generated suffixes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|byte| ALPHABET[*byte as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

const DNS1123_SUBDOMAIN_ERROR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_ERROR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_ERROR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// The naming rule a kind applies to `metadata.name`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain, at most 253 characters: most kinds.
    Subdomain,
    /// DNS-1123 label, at most 63 characters: namespaces.
    Label,
    /// DNS-1035 label (starts with a letter): services.
    Dns1035,
    /// Any path segment: RBAC kinds and a few others.
    PathSegment,
}

/// Returns the error messages for a name under a rule; empty when valid.
pub(crate) fn validate_name(name: &str, rule: NameRule) -> Vec<String> {
    let mut errors = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errors.push("must be no more than 253 characters".to_string());
            }
            if !name.split('.').all(is_label) {
                errors.push(DNS1123_SUBDOMAIN_ERROR.to_string());
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                errors.push("must be no more than 63 characters".to_string());
            }
            if !is_label(&name[..name.len().min(63)]) || name.is_empty() {
                errors.push(DNS1123_LABEL_ERROR.to_string());
            }
        }
        NameRule::Dns1035 => {
            if name.len() > 63 {
                errors.push("must be no more than 63 characters".to_string());
            }
            if !is_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                errors.push(DNS1035_LABEL_ERROR.to_string());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errors.push(format!("may not be '{name}'"));
            }
            for forbidden in ["/", "%"] {
                if name.contains(forbidden) {
                    errors.push(format!("may not contain '{forbidden}'"));
                }
            }
        }
    }
    errors
}

/// Returns the naming rule of a kind.
pub(crate) fn name_rule(kind: &str) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Returns `metadata.labels` or an empty object.
pub(crate) fn labels(object: &Value) -> &Value {
    static EMPTY: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| Value::Object(Default::default()));
    match object.get("metadata").and_then(|m| m.get("labels")) {
        Some(labels @ Value::Object(_)) => labels,
        _ => &EMPTY,
    }
}

/// Removes empty `labels`, `annotations`, `finalizers` and `ownerReferences`, which Go's
/// `omitempty` leaves out of every response.
pub(crate) fn drop_empty_metadata(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.retain(|key, value| {
            let empty = match value {
                Value::Object(map) => map.is_empty(),
                Value::Array(items) => items.is_empty(),
                Value::Null => true,
                _ => false,
            };
            !(empty
                && matches!(
                    key.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences" | "managedFields"
                ))
        });
    }
}

pub(crate) fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_accepts_dots() {
        assert!(validate_name("web.example", NameRule::Subdomain).is_empty());
        assert!(!validate_name("Web", NameRule::Subdomain).is_empty());
        assert!(!validate_name("web_1", NameRule::Subdomain).is_empty());
    }

    #[test]
    fn service_name_must_start_with_letter() {
        assert!(!validate_name("1web", NameRule::Dns1035).is_empty());
        assert!(validate_name("web-1", NameRule::Dns1035).is_empty());
    }

    #[test]
    fn generated_name_has_five_char_suffix() {
        let name = generated_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
    }
}
