//! Pre-flight checks of canary Ingresses and HTTPRoute canaries over plain objects.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;

use crate::annotations::{self, CanaryAnnotations, CanaryRules, HeaderMatch};
use crate::ingress::{self, path_entries};
use crate::weight;

/// Severity of a finding: errors block `create` and `set-*`, warnings are only shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The canary does not work as configured.
    Error,
    /// The canary works, but probably not as intended.
    Warning,
}

/// One result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Object the finding is about, such as `ingress/web-canary`.
    pub object: String,
    /// Problem and, where known, the fix.
    pub message: String,
}

impl Finding {
    fn error(object: &str, message: String) -> Self {
        Finding {
            severity: Severity::Error,
            object: object.to_string(),
            message,
        }
    }

    fn warning(object: &str, message: String) -> Self {
        Finding {
            severity: Severity::Warning,
            object: object.to_string(),
            message,
        }
    }

    /// Formats the finding as one line: `error: ingress/web-canary: ...`.
    pub fn line(&self) -> String {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        format!("{label}: {}: {}", self.object, self.message)
    }
}

/// Reports whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// Ready endpoint counts per Service name; a Service missing from the map has none.
pub type ReadyEndpoints = BTreeMap<String, usize>;

/// Reports whether `value` is an HTTP token (RFC 9110), the syntax of header and cookie names.
pub fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reports whether `value` is a valid header value: visible ASCII and inner spaces only.
pub fn is_header_value(value: &str) -> bool {
    !value.is_empty()
        && value == value.trim()
        && value
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// Checks canary rules common to both providers: names, values and the header pattern.
pub fn check_rules(object: &str, rules: &CanaryRules) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Err(message) = weight::check_weight(rules.weight, rules.total) {
        findings.push(Finding::error(object, message));
    }
    if let Some(header) = &rules.header {
        if !is_token(&header.name) {
            findings.push(Finding::error(object, format!(
                "header name {:?} has characters a header name cannot contain: use letters, digits and - _ . only", header.name)));
        }
        match &header.matcher {
            HeaderMatch::Value(value) if !is_header_value(value) => {
                findings.push(Finding::error(object, format!(
                    "header value {value:?} has characters a header value cannot contain, or leading or trailing spaces")));
            }
            HeaderMatch::Pattern(pattern) => findings.extend(check_pattern(object, pattern)),
            _ => {}
        }
    }
    if let Some(cookie) = &rules.cookie
        && !is_token(cookie)
    {
        findings.push(Finding::error(object, format!(
            "cookie name {cookie:?} has characters a cookie name cannot contain: use letters, digits and - _ . only")));
    }
    findings
}

fn check_pattern(object: &str, pattern: &str) -> Vec<Finding> {
    if let Err(error) = regex::Regex::new(pattern) {
        let first_line = error
            .to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string();
        return vec![Finding::error(
            object,
            format!("header pattern {pattern:?} is not a valid regular expression: {first_line}"),
        )];
    }
    if !pattern.starts_with('^') || !pattern.ends_with('$') {
        return vec![Finding::warning(
            object,
            format!(
                "header pattern {pattern:?} is not anchored, so it also matches values that merely contain it: write ^...$"
            ),
        )];
    }
    Vec::new()
}

/// Checks the raw canary annotations of one Ingress: numbers, totals and combinations.
pub fn check_annotations(object: &str, raw: &CanaryAnnotations) -> Vec<Finding> {
    let mut findings = Vec::new();
    let total = match raw.weight_total.as_deref() {
        None => weight::DEFAULT_TOTAL,
        Some(value) => match weight::parse_total(value) {
            Ok(total) => total,
            Err(message) => {
                findings.push(Finding::error(
                    object,
                    format!("canary-weight-total: {message}"),
                ));
                weight::DEFAULT_TOTAL
            }
        },
    };
    if total < weight::DEFAULT_TOTAL {
        findings.push(Finding::warning(object, format!(
            "canary-weight-total {total} is below 100, which ingress-nginx treats as 100: set the total to 100 or more")));
    }
    if let Some(value) = raw.weight.as_deref()
        && let Err(message) = weight::parse_weight(value)
    {
        findings.push(Finding::error(object, format!("canary-weight: {message}")));
    }

    let header_set = raw.header.as_deref().is_some_and(|h| !h.is_empty());
    let value_set = raw.header_value.as_deref().is_some_and(|v| !v.is_empty());
    let pattern_set = raw.header_pattern.as_deref().is_some_and(|p| !p.is_empty());
    if (value_set || pattern_set) && !header_set {
        findings.push(Finding::error(object, "canary-by-header-value or canary-by-header-pattern is set without canary-by-header, so the controller never reads it: set the header name".to_string()));
    }
    if value_set && pattern_set {
        findings.push(Finding::warning(object, "both canary-by-header-value and canary-by-header-pattern are set, and the controller ignores the pattern".to_string()));
    }

    let mut rules = raw.effective_rules();
    rules.total = total;
    findings.extend(check_rules(object, &rules));
    findings
}

/// Checks every canary Ingress among `all` (the Ingresses of one namespace).
pub fn lint_ingresses(all: &[Ingress], ready: &ReadyEndpoints) -> Vec<Finding> {
    let mut findings = Vec::new();
    for candidate in all {
        let raw = ingress::canary_annotations(candidate);
        let object = format!("ingress/{}", ingress::name_of(candidate));
        if !raw.is_canary() {
            let has_canary_keys = ingress::annotations_of(&candidate.metadata)
                .keys()
                .any(|k| k.starts_with("nginx.ingress.kubernetes.io/canary-"));
            if has_canary_keys {
                findings.push(Finding::warning(&object, "has canary-* annotations but not nginx.ingress.kubernetes.io/canary: \"true\", so the controller ignores them".to_string()));
            }
            continue;
        }
        findings.extend(lint_canary(candidate, all, ready));
    }
    findings
}

/// Checks one canary Ingress against the other Ingresses of its namespace.
pub fn lint_canary(canary: &Ingress, all: &[Ingress], ready: &ReadyEndpoints) -> Vec<Finding> {
    let name = ingress::name_of(canary);
    let object = format!("ingress/{name}");
    let raw = ingress::canary_annotations(canary);
    let mut findings = check_annotations(&object, &raw);
    let entries = path_entries(canary);
    if entries.is_empty() {
        findings.push(Finding::error(
            &object,
            "has no host and path rules, so there is nothing to attach the canary to".to_string(),
        ));
    }

    // Host, path and pathType must match a primary.
    let others: Vec<&Ingress> = all.iter().filter(|o| ingress::name_of(o) != name).collect();
    let primaries: Vec<&Ingress> = others
        .iter()
        .copied()
        .filter(|o| !ingress::is_canary(o))
        .collect();
    let mut stable_services: Vec<String> = Vec::new();
    for entry in &entries {
        let same_path: Vec<(&Ingress, ingress::PathEntry)> = primaries
            .iter()
            .flat_map(|p| path_entries(p).into_iter().map(move |e| (*p, e)))
            .filter(|(_, e)| e.host == entry.host && e.path == entry.path)
            .collect();
        match same_path
            .iter()
            .find(|(_, e)| e.path_type == entry.path_type)
        {
            Some((primary, primary_entry)) => {
                if primary_entry.service == entry.service {
                    findings.push(Finding::error(&object, format!(
                        "{} sends to Service {}, the same Service as its primary Ingress {}: point the canary at the new version's Service",
                        entry.location(), entry.service, ingress::name_of(primary))));
                }
                if !stable_services.contains(&primary_entry.service) {
                    stable_services.push(primary_entry.service.clone());
                }
                if ingress::class_of(primary) != ingress::class_of(canary) {
                    findings.push(Finding::error(&object, format!(
                        "ingress class {} differs from class {} of its primary Ingress {}: use the primary's class",
                        ingress::class_of(canary).unwrap_or_else(|| "<none>".into()),
                        ingress::class_of(primary).unwrap_or_else(|| "<none>".into()),
                        ingress::name_of(primary))));
                }
            }
            None => {
                let hint = match same_path.first() {
                    Some((primary, e)) => format!(
                        ": Ingress {} has this host and path with pathType {}",
                        ingress::name_of(primary),
                        e.path_type
                    ),
                    None => String::new(),
                };
                findings.push(Finding::error(
                    &object,
                    format!(
                        "{} matches no primary Ingress with the same host, path and pathType{hint}",
                        entry.location()
                    ),
                ));
            }
        }

        // Only one canary per host and path.
        for other in others.iter().filter(|o| ingress::is_canary(o)) {
            if path_entries(other)
                .iter()
                .any(|e| e.host == entry.host && e.path == entry.path)
            {
                findings.push(Finding::error(&object, format!(
                    "{} already has the canary Ingress {}, and ingress-nginx uses only one canary per host and path: remove one of them",
                    entry.location(), ingress::name_of(other))));
            }
        }
    }

    // The canary Service must not serve plain traffic elsewhere.
    let canary_services = ingress::services_of(canary);
    for service in &canary_services {
        for primary in &primaries {
            if ingress::services_of(primary).contains(service) && !stable_services.contains(service)
            {
                findings.push(Finding::error(&object, format!(
                    "canary Service {service} is also a plain backend of Ingress {}, which breaks ingress-nginx's canary upstream: use a Service only for the canary",
                    ingress::name_of(primary))));
            }
        }
    }

    for ignored in annotations::ignored_on_canary(&ingress::annotations_of(&canary.metadata)) {
        findings.push(Finding::warning(&object, format!(
            "annotation {ignored} is ignored on a canary Ingress, which inherits it from the primary: set it on the primary")));
    }
    for service in &stable_services {
        if ready.get(service).copied().unwrap_or(0) == 0 {
            findings.push(Finding::warning(&object, format!(
                "stable Service {service} has no ready endpoints, so requests that stay on stable fail")));
        }
    }
    for service in &canary_services {
        if ready.get(service).copied().unwrap_or(0) == 0 {
            findings.push(Finding::warning(&object, format!(
                "canary Service {service} has no ready endpoints, so requests sent to the canary fail")));
        }
    }
    findings.sort_by_key(|f| f.severity);
    findings.dedup();
    findings
}

/// Checks an HTTPRoute canary: the rules, the Services and their endpoints.
pub fn lint_route_canary(
    object: &str,
    canary: &crate::httproute::RouteCanary,
    ready: &ReadyEndpoints,
) -> Vec<Finding> {
    let mut findings = check_rules(object, &canary.rules);
    if canary.canary_service == canary.stable_service {
        findings.push(Finding::error(object, format!(
            "canary Service {} is the stable Service: point the canary at the new version's Service", canary.canary_service)));
    }
    for (role, service) in [
        ("stable", &canary.stable_service),
        ("canary", &canary.canary_service),
    ] {
        if ready.get(service).copied().unwrap_or(0) == 0 {
            findings.push(Finding::warning(
                object,
                format!(
                    "{role} Service {service} has no ready endpoints, so requests sent to it fail"
                ),
            ));
        }
    }
    findings.sort_by_key(|f| f.severity);
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::tests::{PRIMARY, ingress};

    const CANARY: &str = "
metadata:
  name: hello-world-canary
  annotations:
    kubernetes.io/ingress.class: nginx
    nginx.ingress.kubernetes.io/canary: 'true'
    nginx.ingress.kubernetes.io/canary-weight: '10'
spec:
  rules:
  - host: hello.world.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: hello-world-svc-v2, port: {number: 80}}}
";

    fn ready_all() -> ReadyEndpoints {
        [
            ("hello-world-svc".to_string(), 1),
            ("hello-world-svc-v2".to_string(), 1),
        ]
        .into()
    }

    fn lint(canary: &str) -> Vec<String> {
        let all = vec![ingress(PRIMARY), ingress(canary)];
        lint_ingresses(&all, &ready_all())
            .iter()
            .map(Finding::line)
            .collect()
    }

    fn has(lines: &[String], needle: &str) -> bool {
        lines.iter().any(|line| line.contains(needle))
    }

    #[test]
    fn clean_canary_has_no_findings() {
        assert_eq!(lint(CANARY), Vec::<String>::new());
    }

    #[test]
    fn host_mismatch_is_error() {
        let lines = lint(&CANARY.replace("host: hello.world.test", "host: other.test"));
        assert!(
            has(
                &lines,
                "error: ingress/hello-world-canary: other.test/ (Prefix) matches no primary Ingress"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn path_type_mismatch_is_error() {
        let lines = lint(&CANARY.replace("pathType: Prefix", "pathType: Exact"));
        assert!(has(&lines, "with pathType Prefix"), "{lines:?}");
    }

    #[test]
    fn class_mismatch_is_error() {
        let lines = lint(&CANARY.replace(
            "kubernetes.io/ingress.class: nginx",
            "kubernetes.io/ingress.class: traefik",
        ));
        assert!(
            has(
                &lines,
                "error: ingress/hello-world-canary: ingress class traefik differs from class nginx"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn same_service_as_primary_is_error() {
        let lines = lint(&CANARY.replace("hello-world-svc-v2", "hello-world-svc"));
        assert!(
            has(
                &lines,
                "the same Service as its primary Ingress hello-world"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn canary_service_used_elsewhere_is_error() {
        let other = ingress("
metadata: {name: other, annotations: {kubernetes.io/ingress.class: nginx}}
spec:
  rules:
  - host: other.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: hello-world-svc-v2, port: {number: 80}}}}]}
");
        let all = vec![ingress(PRIMARY), ingress(CANARY), other];
        let lines: Vec<String> = lint_ingresses(&all, &ready_all())
            .iter()
            .map(Finding::line)
            .collect();
        assert!(
            has(
                &lines,
                "canary Service hello-world-svc-v2 is also a plain backend of Ingress other"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn second_canary_on_same_path_is_error() {
        let all = vec![
            ingress(PRIMARY),
            ingress(CANARY),
            ingress(&CANARY.replace("hello-world-canary", "second")),
        ];
        let lines: Vec<String> = lint_ingresses(&all, &ready_all())
            .iter()
            .map(Finding::line)
            .collect();
        assert!(
            has(
                &lines,
                "error: ingress/second: hello.world.test/ (Prefix) already has the canary Ingress hello-world-canary"
            ),
            "{lines:?}"
        );
        assert!(
            has(
                &lines,
                "error: ingress/hello-world-canary: hello.world.test/ (Prefix) already has the canary Ingress second"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn weight_above_total_is_error() {
        let lines = lint(&CANARY.replace("canary-weight: '10'", "canary-weight: '150'"));
        assert!(has(&lines, "weight 150 is out of range"), "{lines:?}");
    }

    #[test]
    fn weight_not_number_is_error() {
        let lines = lint(&CANARY.replace("canary-weight: '10'", "canary-weight: 'ten'"));
        assert!(
            has(
                &lines,
                "error: ingress/hello-world-canary: canary-weight: invalid weight \"ten\""
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn small_total_is_warning() {
        let lines = lint(&CANARY.replace(
            "canary-weight: '10'",
            "canary-weight: '10'\n    nginx.ingress.kubernetes.io/canary-weight-total: '50'",
        ));
        assert!(
            has(
                &lines,
                "warning: ingress/hello-world-canary: canary-weight-total 50 is below 100"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn header_value_without_name_is_error() {
        let lines = lint(&CANARY.replace("canary-weight: '10'", "canary-by-header-value: beta"));
        assert!(
            has(
                &lines,
                "error: ingress/hello-world-canary: canary-by-header-value or canary-by-header-pattern is set without canary-by-header"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn invalid_characters_are_errors() {
        let header = lint(&CANARY.replace("canary-weight: '10'", "canary-by-header: 'X Canary'"));
        assert!(has(&header, "header name \"X Canary\""), "{header:?}");
        let value = lint(&CANARY.replace("canary-weight: '10'", "canary-by-header: X-Canary\n    nginx.ingress.kubernetes.io/canary-by-header-value: \"b\\u00e9ta\""));
        assert!(has(&value, "header value \"béta\""), "{value:?}");
        let cookie = lint(&CANARY.replace("canary-weight: '10'", "canary-by-cookie: 'be;ta'"));
        assert!(has(&cookie, "cookie name \"be;ta\""), "{cookie:?}");
    }

    #[test]
    fn unanchored_pattern_is_warning() {
        let lines = lint(&CANARY.replace("canary-weight: '10'", "canary-by-header: Version\n    nginx.ingress.kubernetes.io/canary-by-header-pattern: v2"));
        assert!(
            has(
                &lines,
                "warning: ingress/hello-world-canary: header pattern \"v2\" is not anchored"
            ),
            "{lines:?}"
        );
        let invalid = lint(&CANARY.replace("canary-weight: '10'", "canary-by-header: Version\n    nginx.ingress.kubernetes.io/canary-by-header-pattern: '^(v2$'"));
        assert!(
            has(&invalid, "is not a valid regular expression"),
            "{invalid:?}"
        );
    }

    #[test]
    fn ignored_annotation_is_warning() {
        let lines = lint(&CANARY.replace(
            "canary-weight: '10'",
            "canary-weight: '10'\n    nginx.ingress.kubernetes.io/rewrite-target: /x",
        ));
        assert!(
            has(
                &lines,
                "warning: ingress/hello-world-canary: annotation nginx.ingress.kubernetes.io/rewrite-target is ignored"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn stable_without_endpoints_is_warning() {
        let all = vec![ingress(PRIMARY), ingress(CANARY)];
        let ready: ReadyEndpoints = [("hello-world-svc-v2".to_string(), 1)].into();
        let lines: Vec<String> = lint_ingresses(&all, &ready)
            .iter()
            .map(Finding::line)
            .collect();
        assert_eq!(lines, vec!["warning: ingress/hello-world-canary: stable Service hello-world-svc has no ready endpoints, so requests that stay on stable fail".to_string()]);
    }

    #[test]
    fn canary_keys_without_flag_is_warning() {
        let lines = lint(&CANARY.replace("canary: 'true'", "canary: 'false'"));
        assert!(
            has(
                &lines,
                "has canary-* annotations but not nginx.ingress.kubernetes.io/canary"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn tokens_and_values_classified() {
        assert!(is_token("X-Canary_1.v"));
        assert!(!is_token("X:Canary"));
        assert!(!is_token(""));
        assert!(is_header_value("v2 beta"));
        assert!(!is_header_value(" v2"));
        assert!(!is_header_value("a\nb"));
    }
}
