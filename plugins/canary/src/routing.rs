//! Routing decision of ingress-nginx for one request to a host and path with a primary and a canary Ingress.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::annotations::{self, CanaryAnnotations, HeaderMatch};
use crate::weight;

/// A request as `explain` describes it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Headers in the order given; names compare case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Cookies in the order given.
    pub cookies: Vec<(String, String)>,
    /// Request path, with an optional query string.
    pub path: String,
    /// HTTP method.
    pub method: String,
    /// Host header, when given.
    pub host: Option<String>,
}

impl Request {
    /// Returns the value of the first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the value of the first cookie with this name (cookie names are case-sensitive).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Destination of a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "route", rename_all = "camelCase")]
pub enum Route {
    /// Always the canary backend.
    Canary,
    /// Always the stable backend.
    Stable,
    /// Randomly, with this share of requests going to the canary.
    Split {
        /// Fraction of requests (0.0 to 1.0) that reach the canary.
        #[serde(rename = "canaryShare")]
        canary_share: f64,
    },
    /// The backend that issued the session affinity cookie the request carries.
    Affinity,
    /// No rule matches, so the gateway returns 404.
    NoMatch,
}

impl Route {
    /// Returns the short name printed by `explain`.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Canary => "canary",
            Route::Stable => "stable",
            Route::Split { .. } => "split",
            Route::Affinity => "affinity",
            Route::NoMatch => "no-match",
        }
    }
}

/// A routing decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Destination of the request.
    #[serde(flatten)]
    pub route: Route,
    /// The rule that decided, in one sentence.
    pub reason: String,
}

impl Decision {
    fn new(route: Route, reason: impl Into<String>) -> Self {
        Decision {
            route,
            reason: reason.into(),
        }
    }
}

/// Returns the session affinity cookie name when the annotations enable cookie affinity.
pub fn affinity_cookie(annotations: &BTreeMap<String, String>) -> Option<String> {
    if annotations.get(annotations::AFFINITY).map(String::as_str) != Some("cookie") {
        return None;
    }
    Some(
        annotations
            .get(annotations::SESSION_COOKIE_NAME)
            .cloned()
            .unwrap_or_else(|| annotations::DEFAULT_SESSION_COOKIE.to_string()),
    )
}

/// Decides where ingress-nginx (v1.x) sends `request`, in the controller's order: a session
/// affinity cookie already set, then the header rule, then the cookie rule, then the weight.
///
/// `affinity_cookie` is the session cookie name when the primary or canary enables cookie affinity.
pub fn explain_nginx(
    canary: &CanaryAnnotations,
    affinity_cookie: Option<&str>,
    request: &Request,
) -> Decision {
    if !canary.is_canary() {
        return Decision::new(
            Route::Stable,
            "the canary Ingress lacks nginx.ingress.kubernetes.io/canary: \"true\", so the controller ignores its canary rules",
        );
    }

    // NOTE: the cookie value names an endpoint, so the backend that issued it is unknown here.
    if let Some(cookie) = affinity_cookie
        && request.cookie(cookie).is_some()
    {
        return Decision::new(
            Route::Affinity,
            format!(
                "the session affinity cookie {cookie} is set, so the request stays on the backend that issued it"
            ),
        );
    }

    let rules = canary.effective_rules();
    if let Some(header) = &rules.header
        && let Some(value) = request.header(&header.name)
        && let Some(decision) = decide_by_header(&header.name, &header.matcher, value)
    {
        return decision;
    }

    if let Some(cookie) = &rules.cookie
        && let Some(value) = request.cookie(cookie)
    {
        match value {
            "always" => {
                return Decision::new(Route::Canary, format!("cookie {cookie} is \"always\""));
            }
            "never" => {
                return Decision::new(Route::Stable, format!("cookie {cookie} is \"never\""));
            }
            _ => {}
        }
    }

    decide_by_weight(rules.weight, rules.total)
}

/// Applies the header rule to a request that carries the header; `None` falls through.
fn decide_by_header(name: &str, matcher: &HeaderMatch, value: &str) -> Option<Decision> {
    match matcher {
        HeaderMatch::Value(expected) if value == expected => Some(Decision::new(
            Route::Canary,
            format!("header {name} equals canary-by-header-value {expected:?}"),
        )),
        HeaderMatch::Value(_) => None,
        HeaderMatch::Pattern(pattern) => match regex::Regex::new(pattern) {
            Ok(regex) if regex.is_match(value) => Some(Decision::new(
                Route::Canary,
                format!(
                    "header {name} value {value:?} matches canary-by-header-pattern {pattern:?}"
                ),
            )),
            Ok(_) => None,
            Err(_) => Some(Decision::new(
                Route::Stable,
                format!(
                    "canary-by-header-pattern {pattern:?} is not a valid regular expression, so the controller sends the request to stable"
                ),
            )),
        },
        HeaderMatch::AlwaysNever => match value {
            "always" => Some(Decision::new(
                Route::Canary,
                format!("header {name} is \"always\""),
            )),
            "never" => Some(Decision::new(
                Route::Stable,
                format!("header {name} is \"never\""),
            )),
            _ => None,
        },
    }
}

/// Applies the weight: the controller draws 1..=total and picks the canary at or below the weight.
fn decide_by_weight(weight: u32, total: u32) -> Decision {
    let effective = weight::effective_total(total);
    let share = weight::canary_share(weight, total);
    let of_total = if effective == total {
        format!("weight {weight} of {total}")
    } else {
        format!("weight {weight} of {effective} (a total of {total} counts as {effective})")
    };
    if share <= 0.0 {
        Decision::new(
            Route::Stable,
            format!("no rule matched and {of_total} sends nothing to the canary"),
        )
    } else if share >= 1.0 {
        Decision::new(
            Route::Canary,
            format!("no rule matched and {of_total} sends everything to the canary"),
        )
    } else {
        Decision::new(
            Route::Split {
                canary_share: share,
            },
            format!(
                "no rule matched, so {of_total} sends {:.1}% of requests to the canary",
                share * 100.0
            ),
        )
    }
}

/// Parses `--header NAME:VALUE`.
pub fn parse_header_arg(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((name, header_value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), header_value.trim().to_string()))
        }
        _ => Err(format!(
            "invalid header {value:?}: expected NAME:VALUE such as X-Canary:always"
        )),
    }
}

/// Parses `--cookie NAME=VALUE`.
pub fn parse_cookie_arg(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, cookie_value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), cookie_value.trim().to_string()))
        }
        _ => Err(format!(
            "invalid cookie {value:?}: expected NAME=VALUE such as beta=always"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct CaseFile {
        cases: Vec<Case>,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        canary: BTreeMap<String, String>,
        #[serde(default)]
        request: CaseRequest,
        route: String,
        canary_share: Option<f64>,
    }

    #[derive(serde::Deserialize, Default)]
    struct CaseRequest {
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        cookies: BTreeMap<String, String>,
    }

    fn annotations_of(case: &Case) -> CanaryAnnotations {
        let mut map: BTreeMap<String, String> = case
            .canary
            .iter()
            .map(|(key, value)| (format!("{}{key}", annotations::PREFIX), value.clone()))
            .collect();
        map.entry(annotations::CANARY.to_string())
            .or_insert_with(|| "true".to_string());
        CanaryAnnotations::from_map(&map)
    }

    #[test]
    fn agrees_with_every_routing_case() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/canary/routing-cases.yaml"
        );
        let text = std::fs::read_to_string(path).expect("routing cases fixture is readable");
        let file: CaseFile = serde_yaml::from_str(&text).expect("routing cases parse");
        assert!(
            file.cases.len() >= 19,
            "fixture has {} cases",
            file.cases.len()
        );

        for case in &file.cases {
            let request = Request {
                headers: case.request.headers.clone().into_iter().collect(),
                cookies: case.request.cookies.clone().into_iter().collect(),
                ..Request::default()
            };
            let decision = explain_nginx(&annotations_of(case), None, &request);
            assert_eq!(
                decision.route.name(),
                case.route,
                "case {:?}: {}",
                case.name,
                decision.reason
            );
            if let (Route::Split { canary_share }, Some(expected)) =
                (decision.route, case.canary_share)
            {
                assert!(
                    (canary_share - expected).abs() < 1e-9,
                    "case {:?}: share {canary_share}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn affinity_cookie_decides_first() {
        let mut map = BTreeMap::new();
        map.insert(annotations::CANARY.to_string(), "true".to_string());
        map.insert(annotations::BY_HEADER.to_string(), "X-Canary".to_string());
        let request = Request {
            headers: vec![("X-Canary".into(), "always".into())],
            cookies: vec![("INGRESSCOOKIE".into(), "abc".into())],
            ..Request::default()
        };
        let decision = explain_nginx(
            &CanaryAnnotations::from_map(&map),
            Some("INGRESSCOOKIE"),
            &request,
        );
        assert_eq!(decision.route, Route::Affinity);
    }

    #[test]
    fn affinity_cookie_name_defaults() {
        let mut map = BTreeMap::new();
        assert_eq!(affinity_cookie(&map), None);
        map.insert(annotations::AFFINITY.to_string(), "cookie".to_string());
        assert_eq!(affinity_cookie(&map).as_deref(), Some("INGRESSCOOKIE"));
        map.insert(
            annotations::SESSION_COOKIE_NAME.to_string(),
            "route".to_string(),
        );
        assert_eq!(affinity_cookie(&map).as_deref(), Some("route"));
    }

    #[test]
    fn invalid_pattern_goes_to_stable() {
        let decision = decide_by_header("V", &HeaderMatch::Pattern("(".into()), "x").unwrap();
        assert_eq!(decision.route, Route::Stable);
    }

    #[test]
    fn header_and_cookie_args_parse() {
        assert_eq!(
            parse_header_arg("X-Canary: always"),
            Ok(("X-Canary".into(), "always".into()))
        );
        assert!(parse_header_arg("X-Canary").is_err());
        assert_eq!(
            parse_cookie_arg("beta=always"),
            Ok(("beta".into(), "always".into()))
        );
        assert!(parse_cookie_arg("=x").is_err());
    }
}
