//! `Status` error bodies with the reasons, codes and message wording of kube-apiserver.

use serde_json::{Value, json};

/// A failed request, rendered as a `meta.k8s.io/v1` `Status`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header (429 only).
    pub retry_after: Option<u64>,
}

/// One entry of `details.causes` in an `Invalid` status.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    pub field: String,
    /// The message without the field prefix, for example `Invalid value: "x": must be ...`.
    pub message: String,
}

impl Cause {
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    pub fn required(field: &str, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            field: field.to_string(),
            message,
        }
    }

    pub fn duplicate(field: &str, value: &Value) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.to_string(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        }
    }
}

/// Renders a value the way Go's field errors do: strings quoted, numbers bare.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Identity of the object an error is about: its group, plural resource and name.
pub(crate) struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    /// `deployments.apps` or `pods` for the core group.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut details = json!({"name": self.name, "kind": self.resource});
        if !self.group.is_empty() {
            details["group"] = json!(self.group);
        }
        details
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> ApiError {
        ApiError {
            code,
            reason,
            message,
            details,
            retry_after: None,
        }
    }

    pub fn not_found(target: Target<'_>) -> ApiError {
        let message = format!("{} \"{}\" not found", target.qualified(), target.name);
        ApiError::new(404, "NotFound", message, Some(target.details()))
    }

    /// The 404 a server sends for a path under a served group-version that names no resource.
    pub fn resource_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".to_string(),
            Some(json!({})),
        )
    }

    pub fn already_exists(target: Target<'_>) -> ApiError {
        let message = format!("{} \"{}\" already exists", target.qualified(), target.name);
        ApiError::new(409, "AlreadyExists", message, Some(target.details()))
    }

    pub fn conflict(target: Target<'_>, detail: &str) -> ApiError {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{}\": {detail}",
            target.qualified(),
            target.name
        );
        ApiError::new(409, "Conflict", message, Some(target.details()))
    }

    /// The 409 for an update carrying a stale `metadata.resourceVersion`.
    pub fn stale(target: Target<'_>) -> ApiError {
        ApiError::conflict(
            target,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// A 422 `Invalid`; `kind` is the qualified kind such as `Deployment.apps` or `Service`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes
            .iter()
            .map(|cause| format!("{}: {}", cause.field, cause.message))
            .collect();
        let summary = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let message = format!("{qualified} \"{name}\" is invalid: {summary}");
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|cause| json!({"reason": cause.reason, "message": cause.message, "field": cause.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes_json});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        ApiError::new(422, "Invalid", message, Some(details))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), None)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> ApiError {
        let _ = content_type;
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    pub fn not_acceptable(accepted: &str) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: {accepted}"),
            None,
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized".to_string(), None)
    }

    /// A 403 for `verb` on the target, worded as the RBAC authorizer words it.
    pub fn forbidden(target: Target<'_>, verb: &str, namespace: &str, user: &str) -> ApiError {
        let subject = if target.name.is_empty() {
            target.qualified()
        } else {
            format!("{} \"{}\"", target.qualified(), target.name)
        };
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{namespace}\"")
        };
        let message = format!(
            "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            target.resource, target.group
        );
        ApiError::new(403, "Forbidden", message, Some(target.details()))
    }

    /// A 403 for a create inside a namespace that is being deleted.
    pub fn namespace_terminating(target: Target<'_>, namespace: &str) -> ApiError {
        let message = format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            target.qualified(),
            target.name
        );
        let mut details = target.details();
        details["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace"
        }]);
        ApiError::new(403, "Forbidden", message, Some(details))
    }

    /// The 403 for deleting `default`, `kube-system` or `kube-public`.
    pub fn forbidden_system_namespace(name: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            Some(json!({"name": name, "kind": "namespaces"})),
        )
    }

    pub fn too_many_requests(retry_after: u64) -> ApiError {
        let mut error = ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".to_string(),
            Some(json!({"retryAfterSeconds": retry_after})),
        );
        error.retry_after = Some(retry_after);
        error
    }

    pub fn internal(detail: &str) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {detail}"),
            Some(json!({"causes": [{"message": detail}]})),
        )
    }

    /// The 410 for a resourceVersion older than the retained event history.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
            None,
        )
    }

    /// Renders the error as a `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}
