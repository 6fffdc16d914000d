//! Decoding of the Kubernetes protobuf request bodies that kubectl's typed clients send
//! (`kubectl create namespace|configmap|secret|serviceaccount|deployment`), into JSON.
//!
//! Only the message fields listed in the schema tables below are known. A field outside them
//! is accepted when it contains its zero value, because Go's generated code writes every
//! non-pointer field and JSON would omit it. Any other unknown field rejects the request with
//! 415, so nothing is silently dropped.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::status::ApiError;

/// The 4-byte prefix of a Kubernetes protobuf body (`k8s\0`).
const MAGIC: &[u8] = b"k8s\x00";

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
    Message(&'static [Field]),
    /// `map<string, string>`.
    TextMap,
    /// `map<string, bytes>`.
    BytesMap,
    /// `metav1.Time`: seconds and nanos.
    Time,
    /// `intstr.IntOrString`: a number or a string in JSON.
    IntOrString,
}

#[derive(Clone, Copy)]
struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
    /// Pointer fields in Go: a present zero value is kept (`immutable: false`).
    keep_zero: bool,
}

const fn field(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
        keep_zero: false,
    }
}

const fn repeated(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: true,
        keep_zero: false,
    }
}

const fn pointer(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
        keep_zero: true,
    }
}

const TIME: &[Field] = &[field(1, "seconds", Kind::Int), field(2, "nanos", Kind::Int)];

const TYPE_META: &[Field] = &[
    field(1, "apiVersion", Kind::Text),
    field(2, "kind", Kind::Text),
];

const OBJECT_META: &[Field] = &[
    field(1, "name", Kind::Text),
    field(2, "generateName", Kind::Text),
    field(3, "namespace", Kind::Text),
    field(5, "uid", Kind::Text),
    field(6, "resourceVersion", Kind::Text),
    field(7, "generation", Kind::Int),
    field(8, "creationTimestamp", Kind::Time),
    field(11, "labels", Kind::TextMap),
    field(12, "annotations", Kind::TextMap),
    repeated(14, "finalizers", Kind::Text),
];

const NAMESPACE: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Kind::Message(&[repeated(1, "finalizers", Kind::Text)]),
    ),
    field(3, "status", Kind::Message(&[field(1, "phase", Kind::Text)])),
];

const CONFIG_MAP: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "data", Kind::TextMap),
    field(3, "binaryData", Kind::BytesMap),
    pointer(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "data", Kind::BytesMap),
    field(3, "type", Kind::Text),
    field(4, "stringData", Kind::TextMap),
    pointer(5, "immutable", Kind::Bool),
];

const LOCAL_OBJECT_REFERENCE: &[Field] = &[field(1, "name", Kind::Text)];

const SERVICE_ACCOUNT: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    repeated(3, "imagePullSecrets", Kind::Message(LOCAL_OBJECT_REFERENCE)),
    pointer(4, "automountServiceAccountToken", Kind::Bool),
];

const CONTAINER_PORT: &[Field] = &[
    field(1, "name", Kind::Text),
    field(2, "hostPort", Kind::Int),
    field(3, "containerPort", Kind::Int),
    field(4, "protocol", Kind::Text),
    field(5, "hostIP", Kind::Text),
];

const ENV_VAR: &[Field] = &[field(1, "name", Kind::Text), field(2, "value", Kind::Text)];

const CONTAINER: &[Field] = &[
    field(1, "name", Kind::Text),
    field(2, "image", Kind::Text),
    repeated(3, "command", Kind::Text),
    repeated(4, "args", Kind::Text),
    field(5, "workingDir", Kind::Text),
    repeated(6, "ports", Kind::Message(CONTAINER_PORT)),
    repeated(7, "env", Kind::Message(ENV_VAR)),
    field(13, "terminationMessagePath", Kind::Text),
    field(14, "imagePullPolicy", Kind::Text),
    field(20, "terminationMessagePolicy", Kind::Text),
];

const POD_SPEC: &[Field] = &[
    repeated(2, "containers", Kind::Message(CONTAINER)),
    field(3, "restartPolicy", Kind::Text),
    pointer(4, "terminationGracePeriodSeconds", Kind::Int),
    pointer(5, "activeDeadlineSeconds", Kind::Int),
    field(6, "dnsPolicy", Kind::Text),
    field(7, "nodeSelector", Kind::TextMap),
    field(8, "serviceAccountName", Kind::Text),
    field(10, "nodeName", Kind::Text),
    field(11, "hostNetwork", Kind::Bool),
    field(19, "schedulerName", Kind::Text),
    repeated(20, "initContainers", Kind::Message(CONTAINER)),
];

const LABEL_SELECTOR: &[Field] = &[field(1, "matchLabels", Kind::TextMap)];

const POD_TEMPLATE_SPEC: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "spec", Kind::Message(POD_SPEC)),
];

const DEPLOYMENT: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Kind::Message(&[
            pointer(1, "replicas", Kind::Int),
            field(2, "selector", Kind::Message(LABEL_SELECTOR)),
            field(3, "template", Kind::Message(POD_TEMPLATE_SPEC)),
            field(
                4,
                "strategy",
                Kind::Message(&[field(1, "type", Kind::Text)]),
            ),
            field(5, "minReadySeconds", Kind::Int),
            pointer(6, "revisionHistoryLimit", Kind::Int),
            field(7, "paused", Kind::Bool),
            pointer(9, "progressDeadlineSeconds", Kind::Int),
        ]),
    ),
    // DeploymentStatus is set by the server; kubectl sends it empty.
    field(3, "status", Kind::Message(&[])),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    field(1, "namespace", Kind::Text),
    field(2, "verb", Kind::Text),
    field(3, "group", Kind::Text),
    field(4, "version", Kind::Text),
    field(5, "resource", Kind::Text),
    field(6, "subresource", Kind::Text),
    field(7, "name", Kind::Text),
];

const NON_RESOURCE_ATTRIBUTES: &[Field] =
    &[field(1, "path", Kind::Text), field(2, "verb", Kind::Text)];

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Kind::Message(&[
            field(1, "resourceAttributes", Kind::Message(RESOURCE_ATTRIBUTES)),
            field(
                2,
                "nonResourceAttributes",
                Kind::Message(NON_RESOURCE_ATTRIBUTES),
            ),
        ]),
    ),
    field(3, "status", Kind::Message(&[])),
];

const SELF_SUBJECT_RULES_REVIEW: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Kind::Message(&[field(1, "namespace", Kind::Text)]),
    ),
    field(3, "status", Kind::Message(&[])),
];

const USER_INFO: &[Field] = &[
    field(1, "username", Kind::Text),
    field(2, "uid", Kind::Text),
    repeated(3, "groups", Kind::Text),
];

const SELF_SUBJECT_REVIEW: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    // kubectl sends an empty status with an empty userInfo; the server fills it in.
    field(
        2,
        "status",
        Kind::Message(&[field(1, "userInfo", Kind::Message(USER_INFO))]),
    ),
];

const INT_OR_STRING: &[Field] = &[
    field(1, "type", Kind::Int),
    field(2, "intVal", Kind::Int),
    field(3, "strVal", Kind::Text),
];

const SERVICE_PORT: &[Field] = &[
    field(1, "name", Kind::Text),
    field(2, "protocol", Kind::Text),
    field(3, "port", Kind::Int),
    field(4, "targetPort", Kind::IntOrString),
    field(5, "nodePort", Kind::Int),
];

const SERVICE: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Kind::Message(&[
            repeated(1, "ports", Kind::Message(SERVICE_PORT)),
            field(2, "selector", Kind::TextMap),
            field(3, "clusterIP", Kind::Text),
            field(4, "type", Kind::Text),
            repeated(5, "externalIPs", Kind::Text),
            field(7, "sessionAffinity", Kind::Text),
            field(10, "externalName", Kind::Text),
        ]),
    ),
    // ServiceStatus is set by the server; kubectl sends it with an empty loadBalancer.
    field(
        3,
        "status",
        Kind::Message(&[field(1, "loadBalancer", Kind::Message(&[]))]),
    ),
];

const JOB_SPEC: &[Field] = &[
    pointer(1, "parallelism", Kind::Int),
    pointer(2, "completions", Kind::Int),
    pointer(3, "activeDeadlineSeconds", Kind::Int),
    field(4, "selector", Kind::Message(LABEL_SELECTOR)),
    pointer(5, "manualSelector", Kind::Bool),
    field(6, "template", Kind::Message(POD_TEMPLATE_SPEC)),
    pointer(7, "backoffLimit", Kind::Int),
    pointer(8, "ttlSecondsAfterFinished", Kind::Int),
];

const JOB: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "spec", Kind::Message(JOB_SPEC)),
    field(3, "status", Kind::Message(&[])),
];

const POLICY_RULE: &[Field] = &[
    repeated(1, "verbs", Kind::Text),
    repeated(2, "apiGroups", Kind::Text),
    repeated(3, "resources", Kind::Text),
    repeated(4, "resourceNames", Kind::Text),
    repeated(5, "nonResourceURLs", Kind::Text),
];

const ROLE: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    repeated(2, "rules", Kind::Message(POLICY_RULE)),
];

const SUBJECT: &[Field] = &[
    field(1, "kind", Kind::Text),
    field(2, "apiGroup", Kind::Text),
    field(3, "name", Kind::Text),
    field(4, "namespace", Kind::Text),
];

const ROLE_REF: &[Field] = &[
    field(1, "apiGroup", Kind::Text),
    field(2, "kind", Kind::Text),
    field(3, "name", Kind::Text),
];

const ROLE_BINDING: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    repeated(2, "subjects", Kind::Message(SUBJECT)),
    field(3, "roleRef", Kind::Message(ROLE_REF)),
];

/// Kinds whose protobuf bodies are decoded.
pub(crate) const SUPPORTED_KINDS: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Deployment",
    "Service",
    "Job",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SelfSubjectReview",
];

fn schema(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        ("apps/v1", "Deployment") => Some(DEPLOYMENT),
        ("v1", "Service") => Some(SERVICE),
        ("batch/v1", "Job") => Some(JOB),
        ("rbac.authorization.k8s.io/v1", "Role" | "ClusterRole") => Some(ROLE),
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => {
            Some(ROLE_BINDING)
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => Some(SELF_SUBJECT_ACCESS_REVIEW),
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => Some(SELF_SUBJECT_RULES_REVIEW),
        ("authentication.k8s.io/v1", "SelfSubjectReview") => Some(SELF_SUBJECT_REVIEW),
        _ => None,
    }
}

fn unsupported(detail: &str) -> ApiError {
    let mut error = ApiError::bad_request(format!(
        "the protobuf request body could not be decoded: {detail}; this server decodes protobuf only for {} and accepts JSON or YAML for everything",
        SUPPORTED_KINDS.join(", ")
    ));
    error.code = 415;
    error.reason = "UnsupportedMediaType";
    error
}

/// Decodes a `k8s\0`-prefixed `runtime.Unknown` envelope into a JSON object.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(unsupported("missing the k8s protobuf prefix"));
    };
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    for item in Reader::new(envelope) {
        let (number, value) = item.map_err(|e| unsupported(&e))?;
        match (number, value) {
            (1, Wire::Bytes(bytes)) => type_meta = message(bytes, TYPE_META)?,
            (2, Wire::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let api_version = type_meta["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = type_meta["kind"].as_str().unwrap_or("").to_string();
    let fields = schema(&api_version, &kind).ok_or_else(|| {
        unsupported(&format!(
            "kind {kind:?} in {api_version:?} is not supported"
        ))
    })?;
    let mut object = message(raw, fields)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, position: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.data.get(self.position).ok_or("truncated varint")?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".to_string())
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.data.len() {
            return None;
        }
        let item = (|| {
            let tag = self.varint()?;
            let number = tag >> 3;
            let wire = match tag & 7 {
                0 => Wire::Varint(self.varint()?),
                1 | 5 => {
                    let width = if tag & 7 == 1 { 8 } else { 4 };
                    self.position += width;
                    if self.position > self.data.len() {
                        return Err("truncated fixed-width field".to_string());
                    }
                    Wire::Fixed
                }
                2 => {
                    let length = self.varint()? as usize;
                    let end = self
                        .position
                        .checked_add(length)
                        .filter(|end| *end <= self.data.len());
                    let end = end.ok_or("truncated length-delimited field")?;
                    let bytes = &self.data[self.position..end];
                    self.position = end;
                    Wire::Bytes(bytes)
                }
                other => return Err(format!("unsupported wire type {other}")),
            };
            Ok((number, wire))
        })();
        if item.is_err() {
            self.position = self.data.len();
        }
        Some(item)
    }
}

fn text(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| unsupported("a string field is not valid UTF-8"))
}

fn map_entry(bytes: &[u8], binary: bool) -> Result<(String, Value), ApiError> {
    let mut key = String::new();
    let mut value = json!("");
    for item in Reader::new(bytes) {
        match item.map_err(|e| unsupported(&e))? {
            (1, Wire::Bytes(b)) => key = text(b)?,
            (2, Wire::Bytes(b)) if binary => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b))
            }
            (2, Wire::Bytes(b)) => value = json!(text(b)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn is_zero(wire: &Wire<'_>) -> bool {
    match wire {
        Wire::Varint(value) => *value == 0,
        Wire::Bytes(bytes) => bytes.is_empty(),
        Wire::Fixed => false,
    }
}

/// Decodes one message by its schema into a JSON object, omitting zero values.
fn message(bytes: &[u8], fields: &'static [Field]) -> Result<Value, ApiError> {
    let mut object = Map::new();
    for item in Reader::new(bytes) {
        let (number, wire) = item.map_err(|e| unsupported(&e))?;
        let Some(field) = fields.iter().find(|f| f.number == number) else {
            if is_zero(&wire) {
                continue;
            }
            return Err(unsupported(&format!(
                "field number {number} is not supported"
            )));
        };
        if is_zero(&wire) && !field.keep_zero && !field.repeated {
            continue;
        }
        let value = match (field.kind, wire) {
            (Kind::Text, Wire::Bytes(b)) => json!(text(b)?),
            (Kind::Int, Wire::Varint(v)) => json!(v as i64),
            (Kind::Bool, Wire::Varint(v)) => json!(v != 0),
            (Kind::Message(inner), Wire::Bytes(b)) => message(b, inner)?,
            (Kind::Time, Wire::Bytes(b)) => {
                let decoded = message(b, TIME)?;
                let seconds = decoded["seconds"].as_i64().unwrap_or(0);
                let time = time::OffsetDateTime::from_unix_timestamp(seconds)
                    .map_err(|_| unsupported("a timestamp is out of range"))?;
                json!(
                    time.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                )
            }
            (Kind::IntOrString, Wire::Bytes(b)) => {
                let decoded = message(b, INT_OR_STRING)?;
                if decoded["type"] == json!(1) {
                    decoded.get("strVal").cloned().unwrap_or(json!(""))
                } else {
                    decoded.get("intVal").cloned().unwrap_or(json!(0))
                }
            }
            (Kind::TextMap | Kind::BytesMap, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b, matches!(field.kind, Kind::BytesMap))?;
                let entry = object
                    .entry(field.name.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                entry[key] = value;
                continue;
            }
            _ => {
                return Err(unsupported(&format!(
                    "field {} has an unexpected wire type",
                    field.name
                )));
            }
        };
        if field.repeated {
            let list = object
                .entry(field.name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(value);
            }
        } else if !value.as_object().is_some_and(Map::is_empty) || field.keep_zero {
            object.insert(field.name.to_string(), value);
        }
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_from_kubectl_create() {
        // Bytes kubectl v1.32 sent for `kubectl create configmap c1 --from-literal=a=1`.
        let body: &[u8] = &[
            0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x43, 0x6f,
            0x6e, 0x66, 0x69, 0x67, 0x4d, 0x61, 0x70, 0x12, 0x1c, 0x0a, 0x12, 0x0a, 0x02, 0x63,
            0x31, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42,
            0x00, 0x12, 0x06, 0x0a, 0x01, 0x61, 0x12, 0x01, 0x31, 0x1a, 0x00, 0x22, 0x00,
        ];
        let object = decode(body).expect("decodes");
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let body: &[u8] = &[
            0x6b, 0x38, 0x73, 0x00, 0x0a, 0x09, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x03, 0x50, 0x6f,
            0x64,
        ];
        assert_eq!(decode(body).unwrap_err().code, 415);
    }
}
