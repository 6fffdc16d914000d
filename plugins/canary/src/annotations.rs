//! The ingress-nginx canary annotations of an Ingress, read from and written to its metadata.

use std::collections::BTreeMap;

use crate::weight;

/// Prefix of every ingress-nginx annotation (the controller's default `--annotations-prefix`).
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// `canary: "true"` marks an Ingress as a canary of the Ingress with the same host and path.
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
/// Share of requests sent to the canary, out of the weight total.
pub const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
/// Denominator of the weight. ingress-nginx uses 100 when it is absent or smaller.
pub const WEIGHT_TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
/// Request header that selects the canary.
pub const BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
/// Exact header value that selects the canary.
pub const BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";
/// Regular expression on the header value that selects the canary.
pub const BY_HEADER_PATTERN: &str = "nginx.ingress.kubernetes.io/canary-by-header-pattern";
/// Cookie whose value `always` or `never` selects the canary or the stable backend.
pub const BY_COOKIE: &str = "nginx.ingress.kubernetes.io/canary-by-cookie";

/// Legacy annotation naming the ingress class, still honoured by ingress-nginx.
pub const INGRESS_CLASS: &str = "kubernetes.io/ingress.class";
/// Session affinity mode of the primary Ingress (`cookie` enables it).
pub const AFFINITY: &str = "nginx.ingress.kubernetes.io/affinity";
/// Name of the session affinity cookie, `INGRESSCOOKIE` by default.
pub const SESSION_COOKIE_NAME: &str = "nginx.ingress.kubernetes.io/session-cookie-name";
/// Default session affinity cookie name of ingress-nginx.
pub const DEFAULT_SESSION_COOKIE: &str = "INGRESSCOOKIE";

/// Annotation on the canary object that stores the state of `kubectl canary rollout`.
pub const ROLLOUT_STATE: &str = "canary.kubectl-plugins.io/rollout";
/// Annotation on an HTTPRoute that stores the canary settings (Gateway API has no canary field).
pub const ROUTE_STATE: &str = "canary.kubectl-plugins.io/state";

/// The canary annotations of one Ingress, as written (unparsed), so that checks can name bad values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryAnnotations {
    /// Value of `canary`.
    pub canary: Option<String>,
    /// Value of `canary-weight`.
    pub weight: Option<String>,
    /// Value of `canary-weight-total`.
    pub weight_total: Option<String>,
    /// Value of `canary-by-header`.
    pub header: Option<String>,
    /// Value of `canary-by-header-value`.
    pub header_value: Option<String>,
    /// Value of `canary-by-header-pattern`.
    pub header_pattern: Option<String>,
    /// Value of `canary-by-cookie`.
    pub cookie: Option<String>,
}

impl CanaryAnnotations {
    /// Reads the canary annotations from an object's annotations.
    pub fn from_map(annotations: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| annotations.get(key).cloned();
        CanaryAnnotations {
            canary: get(CANARY),
            weight: get(WEIGHT),
            weight_total: get(WEIGHT_TOTAL),
            header: get(BY_HEADER),
            header_value: get(BY_HEADER_VALUE),
            header_pattern: get(BY_HEADER_PATTERN),
            cookie: get(BY_COOKIE),
        }
    }

    /// Writes these annotations into `annotations`, removing the keys whose value is unset.
    pub fn write_to(&self, annotations: &mut BTreeMap<String, String>) {
        let pairs = [
            (CANARY, &self.canary),
            (WEIGHT, &self.weight),
            (WEIGHT_TOTAL, &self.weight_total),
            (BY_HEADER, &self.header),
            (BY_HEADER_VALUE, &self.header_value),
            (BY_HEADER_PATTERN, &self.header_pattern),
            (BY_COOKIE, &self.cookie),
        ];
        for (key, value) in pairs {
            match value {
                Some(value) => {
                    annotations.insert(key.to_string(), value.clone());
                }
                None => {
                    annotations.remove(key);
                }
            }
        }
    }

    /// Reports whether ingress-nginx treats the Ingress as a canary (`canary: "true"`).
    pub fn is_canary(&self) -> bool {
        self.canary.as_deref().map(str::trim) == Some("true")
    }

    /// Returns the rules as ingress-nginx applies them: an unparsable weight counts as 0, an
    /// unparsable or small total as 100, and empty names as unset.
    pub fn effective_rules(&self) -> CanaryRules {
        let weight = self
            .weight
            .as_deref()
            .and_then(|value| weight::parse_weight(value).ok())
            .unwrap_or(0);
        let total = self
            .weight_total
            .as_deref()
            .and_then(|value| weight::parse_total(value).ok())
            .unwrap_or(weight::DEFAULT_TOTAL);
        let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());

        let header = non_empty(&self.header).map(|name| {
            let matcher = match (
                non_empty(&self.header_value),
                non_empty(&self.header_pattern),
            ) {
                (Some(value), _) => HeaderMatch::Value(value),
                (None, Some(pattern)) => HeaderMatch::Pattern(pattern),
                (None, None) => HeaderMatch::AlwaysNever,
            };
            HeaderRule { name, matcher }
        });
        CanaryRules {
            weight,
            total,
            header,
            cookie: non_empty(&self.cookie),
        }
    }

    /// Builds the annotations that express `rules` on a canary Ingress.
    pub fn from_rules(rules: &CanaryRules) -> Self {
        let (header, header_value, header_pattern) = match &rules.header {
            None => (None, None, None),
            Some(rule) => match &rule.matcher {
                HeaderMatch::AlwaysNever => (Some(rule.name.clone()), None, None),
                HeaderMatch::Value(value) => (Some(rule.name.clone()), Some(value.clone()), None),
                HeaderMatch::Pattern(pattern) => {
                    (Some(rule.name.clone()), None, Some(pattern.clone()))
                }
            },
        };
        CanaryAnnotations {
            canary: Some("true".to_string()),
            weight: Some(rules.weight.to_string()),
            weight_total: (rules.total != weight::DEFAULT_TOTAL).then(|| rules.total.to_string()),
            header,
            header_value,
            header_pattern,
            cookie: rules.cookie.clone(),
        }
    }
}

/// The routing rules of a canary, common to both providers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRules {
    /// Canary weight, out of `total`.
    pub weight: u32,
    /// Weight total as configured (ingress-nginx treats values below 100 as 100).
    pub total: u32,
    /// Header rule, checked before the cookie and the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderRule>,
    /// Cookie name whose value `always` or `never` decides, checked before the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

impl Default for CanaryRules {
    fn default() -> Self {
        CanaryRules {
            weight: 0,
            total: weight::DEFAULT_TOTAL,
            header: None,
            cookie: None,
        }
    }
}

/// A header rule: which header, and which values select the canary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRule {
    /// Header name, matched case-insensitively.
    pub name: String,
    /// Comparison of the header value.
    pub matcher: HeaderMatch,
}

/// Comparison that a header rule applies to the header value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderMatch {
    /// `always` selects the canary, `never` the stable backend, anything else falls through.
    AlwaysNever,
    /// This exact value selects the canary; anything else falls through.
    Value(String),
    /// A value matching this regular expression (unanchored) selects the canary.
    Pattern(String),
}

/// Returns the ingress class of an Ingress: `spec.ingressClassName`, else the legacy annotation.
pub fn ingress_class(
    class_name: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    class_name
        .map(str::to_string)
        .or_else(|| annotations.get(INGRESS_CLASS).cloned())
}

/// Lists the ingress-nginx annotations that the controller ignores on a canary Ingress.
///
/// The ingress-nginx annotations guide (user-guide/nginx-configuration/annotations, Canary section)
/// states that a canary inherits every setting of its primary Ingress except the canary
/// annotations, `load-balance`, `upstream-hash-by` and the session affinity annotations.
pub fn ignored_on_canary(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .keys()
        .filter_map(|key| key.strip_prefix(PREFIX))
        .filter(|name| {
            !(name.starts_with("canary")
                || *name == "load-balance"
                || *name == "upstream-hash-by"
                || name.starts_with("affinity")
                || name.starts_with("session-cookie"))
        })
        .map(|name| format!("{PREFIX}{name}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules_round_trip_through_annotations() {
        let rules = CanaryRules {
            weight: 30,
            total: 200,
            header: Some(HeaderRule {
                name: "X-Canary".into(),
                matcher: HeaderMatch::Pattern("^v2$".into()),
            }),
            cookie: Some("beta".into()),
        };
        let mut written = map(&[("other", "kept")]);
        CanaryAnnotations::from_rules(&rules).write_to(&mut written);
        assert_eq!(written.get(CANARY).map(String::as_str), Some("true"));
        assert_eq!(written.get(WEIGHT_TOTAL).map(String::as_str), Some("200"));
        assert_eq!(written.get("other").map(String::as_str), Some("kept"));
        assert_eq!(
            CanaryAnnotations::from_map(&written).effective_rules(),
            rules
        );
    }

    #[test]
    fn cleared_rules_remove_keys() {
        let mut written = map(&[(BY_HEADER, "X-Canary"), (BY_COOKIE, "beta")]);
        CanaryAnnotations::from_rules(&CanaryRules::default()).write_to(&mut written);
        assert!(!written.contains_key(BY_HEADER));
        assert!(!written.contains_key(BY_COOKIE));
        assert!(!written.contains_key(WEIGHT_TOTAL));
        assert_eq!(written.get(WEIGHT).map(String::as_str), Some("0"));
    }

    #[test]
    fn header_value_wins_over_pattern() {
        let annotations = CanaryAnnotations::from_map(&map(&[
            (BY_HEADER, "Region"),
            (BY_HEADER_VALUE, "beijing"),
            (BY_HEADER_PATTERN, "^sh"),
        ]));
        let header = annotations.effective_rules().header.unwrap();
        assert_eq!(header.matcher, HeaderMatch::Value("beijing".into()));
    }

    #[test]
    fn unparsable_weight_counts_as_zero() {
        let annotations = CanaryAnnotations::from_map(&map(&[(WEIGHT, "ten")]));
        assert_eq!(annotations.effective_rules().weight, 0);
    }

    #[test]
    fn ignored_annotations_listed() {
        let annotations = map(&[
            (WEIGHT, "10"),
            ("nginx.ingress.kubernetes.io/rewrite-target", "/"),
            ("nginx.ingress.kubernetes.io/load-balance", "ewma"),
            ("nginx.ingress.kubernetes.io/session-cookie-name", "route"),
            ("example.com/owner", "team"),
        ]);
        assert_eq!(
            ignored_on_canary(&annotations),
            vec!["nginx.ingress.kubernetes.io/rewrite-target".to_string()]
        );
    }

    #[test]
    fn class_prefers_spec_field() {
        let annotations = map(&[(INGRESS_CLASS, "legacy")]);
        assert_eq!(
            ingress_class(Some("nginx"), &annotations).as_deref(),
            Some("nginx")
        );
        assert_eq!(ingress_class(None, &annotations).as_deref(), Some("legacy"));
        assert_eq!(ingress_class(None, &BTreeMap::new()), None);
    }
}
