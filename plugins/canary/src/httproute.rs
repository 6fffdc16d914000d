//! Gateway API HTTPRoute: the parts of the spec the canary reads and writes, rule matching as the
//! Gateway API specification orders it, and the canary expressed as weights and extra rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::annotations::{CanaryRules, HeaderMatch};
use crate::routing::{Decision, Request, Route};

/// API group of the Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// Served version the plugin reads and writes.
pub const VERSION: &str = "v1";
/// Maximum number of rules in one HTTPRoute (the CRD's `maxItems`).
pub const MAX_RULES: usize = 16;
/// Prefix of the names of the rules the canary adds, so that they can be found and removed.
pub const RULE_PREFIX: &str = "kubectl-canary-";

/// `spec` of an HTTPRoute. Fields the canary does not use are kept as they are in `other`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Host names the route serves; empty means every host of its listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Routing rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
    /// Every other field (`parentRefs`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One rule of an HTTPRoute.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Optional rule name, unique within the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches, any of which selects the rule; none means a single `PathPrefix /` match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    /// Every other field (`filters`, `timeouts`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One match of a rule; every condition in it must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path condition; absent means `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatch>,
    /// HTTP method condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// Path condition: `Exact`, `PathPrefix` or `RegularExpression`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathMatch {
    /// Match type; absent means `PathPrefix`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Path or expression; absent means `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Header or query parameter condition: `Exact` (default) or `RegularExpression`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValueMatch {
    /// Match type; absent means `Exact`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Header or parameter name.
    pub name: String,
    /// Expected value or expression.
    pub value: String,
}

/// A backend of a rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Name of the Service (or other kind).
    pub name: String,
    /// Port of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Relative weight; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Every other field (`group`, `kind`, `namespace`, `filters`).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl BackendRef {
    /// Returns the weight with the specification's default of 1.
    pub fn effective_weight(&self) -> i64 {
        i64::from(self.weight.unwrap_or(1))
    }

    /// Reports whether the reference points at a core Service (the default group and kind).
    pub fn is_service(&self) -> bool {
        let group = self
            .other
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = self
            .other
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("Service");
        group.is_empty() && kind == "Service"
    }
}

/// Canary settings stored in an annotation on the HTTPRoute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteCanary {
    /// Service that receives stable traffic.
    pub stable_service: String,
    /// Weight of the stable backendRef before the canary was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_weight: Option<i32>,
    /// Service that receives canary traffic.
    pub canary_service: String,
    /// Port of the canary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_port: Option<i32>,
    /// Weight, total, header and cookie rules.
    pub rules: CanaryRules,
}

/// Reports whether a rule was added by the canary.
pub fn is_canary_rule(rule: &HttpRouteRule) -> bool {
    rule.name
        .as_deref()
        .is_some_and(|name| name.starts_with(RULE_PREFIX))
}

/// Lists the stable Services of a route: Services referenced by rules the canary did not add.
pub fn stable_services(spec: &HttpRouteSpec) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for rule in spec.rules.iter().filter(|rule| !is_canary_rule(rule)) {
        for backend in rule.backend_refs.iter().filter(|b| b.is_service()) {
            if !names.contains(&backend.name) {
                names.push(backend.name.clone());
            }
        }
    }
    names
}

/// Removes the canary from a route: the added rules and canary backendRefs go, and the stable
/// backendRefs get their original weight back.
pub fn remove_canary(spec: &mut HttpRouteSpec, canary: &RouteCanary) {
    spec.rules.retain(|rule| !is_canary_rule(rule));
    for rule in &mut spec.rules {
        rule.backend_refs
            .retain(|backend| backend.name != canary.canary_service);
        for backend in &mut rule.backend_refs {
            if backend.name == canary.stable_service {
                backend.weight = canary.stable_weight;
            }
        }
    }
}

/// Writes the canary into a route: weights on every rule that sends to the stable Service, and a
/// rule per header or cookie condition in front of the weighted rules.
///
/// Returns an error (and leaves `spec` unchanged) when the result would exceed the CRD's limit
/// of 16 rules or no rule sends traffic to the stable Service.
pub fn apply_canary(spec: &mut HttpRouteSpec, canary: &RouteCanary) -> Result<(), String> {
    let mut updated = spec.clone();
    remove_canary(&mut updated, canary);

    let base_rules: Vec<(usize, HttpRouteRule)> = updated
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| {
            rule.backend_refs
                .iter()
                .any(|b| b.name == canary.stable_service)
        })
        .map(|(index, rule)| (index, rule.clone()))
        .collect();
    if base_rules.is_empty() {
        return Err(format!(
            "no rule of the HTTPRoute sends traffic to Service {}",
            canary.stable_service
        ));
    }

    // Weighted split on the rules as they stand.
    let rules = &canary.rules;
    let stable_weight = to_weight(rules.total.saturating_sub(rules.weight));
    for (index, _) in &base_rules {
        let rule = &mut updated.rules[*index];
        for backend in &mut rule.backend_refs {
            if backend.name == canary.stable_service {
                backend.weight = Some(stable_weight);
            }
        }
        rule.backend_refs
            .push(canary_backend(canary, Some(to_weight(rules.weight))));
    }

    // Header rules come before cookie rules so that equal precedence falls back to list order.
    // NOTE: pattern and cookie rules use RegularExpression header matches, which the Gateway API
    // marks implementation-specific, so their anchoring and syntax depend on the gateway.
    let mut added = Vec::new();
    for (index, rule) in &base_rules {
        if let Some(header) = &rules.header {
            let (kind, value) = match &header.matcher {
                HeaderMatch::AlwaysNever => ("Exact", "always".to_string()),
                HeaderMatch::Value(value) => ("Exact", value.clone()),
                HeaderMatch::Pattern(pattern) => ("RegularExpression", pattern.clone()),
            };
            let condition = header_condition(kind, &header.name, &value);
            added.push(extra_rule(
                rule,
                format!("{RULE_PREFIX}header-{index}"),
                &condition,
                vec![canary_backend(canary, None)],
            ));
            if header.matcher == HeaderMatch::AlwaysNever {
                let never = header_condition("Exact", &header.name, "never");
                added.push(extra_rule(
                    rule,
                    format!("{RULE_PREFIX}header-never-{index}"),
                    &never,
                    stable_backends(rule, canary),
                ));
            }
        }
    }
    for (index, rule) in &base_rules {
        if let Some(cookie) = &rules.cookie {
            let always = header_condition(
                "RegularExpression",
                "Cookie",
                &cookie_pattern(cookie, "always"),
            );
            added.push(extra_rule(
                rule,
                format!("{RULE_PREFIX}cookie-{index}"),
                &always,
                vec![canary_backend(canary, None)],
            ));
            let never = header_condition(
                "RegularExpression",
                "Cookie",
                &cookie_pattern(cookie, "never"),
            );
            added.push(extra_rule(
                rule,
                format!("{RULE_PREFIX}cookie-never-{index}"),
                &never,
                stable_backends(rule, canary),
            ));
        }
    }

    let count = updated.rules.len() + added.len();
    if count > MAX_RULES {
        return Err(format!(
            "the canary needs {count} rules but an HTTPRoute holds at most {MAX_RULES}: drop the header or cookie rule, or split the route"
        ));
    }
    added.append(&mut updated.rules);
    updated.rules = added;
    *spec = updated;
    Ok(())
}

/// Points every stable backendRef at the canary Service and removes the canary rules, as
/// `promote` does on an HTTPRoute.
pub fn promote_canary(spec: &mut HttpRouteSpec, canary: &RouteCanary) {
    remove_canary(spec, canary);
    for rule in &mut spec.rules {
        for backend in &mut rule.backend_refs {
            if backend.name == canary.stable_service {
                backend.name = canary.canary_service.clone();
                if canary.canary_port.is_some() {
                    backend.port = canary.canary_port;
                }
            }
        }
    }
}

fn to_weight(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn canary_backend(canary: &RouteCanary, weight: Option<i32>) -> BackendRef {
    BackendRef {
        name: canary.canary_service.clone(),
        port: canary.canary_port,
        weight,
        other: Map::new(),
    }
}

fn stable_backends(rule: &HttpRouteRule, canary: &RouteCanary) -> Vec<BackendRef> {
    rule.backend_refs
        .iter()
        .filter(|backend| backend.name == canary.stable_service)
        .map(|backend| BackendRef {
            weight: None,
            ..backend.clone()
        })
        .collect()
}

fn header_condition(kind: &str, name: &str, value: &str) -> ValueMatch {
    ValueMatch {
        kind: Some(kind.to_string()),
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// Builds a regular expression on the `Cookie` header that finds `name=value` as a whole pair.
fn cookie_pattern(name: &str, value: &str) -> String {
    format!("(^|;\\s*){}={}(;|$)", regex::escape(name), value)
}

/// Copies a rule with one more header condition on each of its matches.
fn extra_rule(
    base: &HttpRouteRule,
    name: String,
    condition: &ValueMatch,
    backends: Vec<BackendRef>,
) -> HttpRouteRule {
    let matches = if base.matches.is_empty() {
        vec![HttpRouteMatch::default()]
    } else {
        base.matches.clone()
    };
    HttpRouteRule {
        name: Some(name),
        matches: matches
            .into_iter()
            .map(|mut m| {
                m.headers.push(condition.clone());
                m
            })
            .collect(),
        backend_refs: backends,
        other: base.other.clone(),
    }
}

/// Precedence of a match as the Gateway API specification orders it: exact path, then longest
/// path, then a method, then most header matches, then most query matches.
type Precedence = (u8, usize, bool, usize, usize);

fn precedence(m: &HttpRouteMatch) -> Precedence {
    let (kind, value) = path_of(m);
    let kind_rank = match kind {
        "Exact" => 2,
        "PathPrefix" => 1,
        _ => 0,
    };
    (
        kind_rank,
        value.len(),
        m.method.is_some(),
        m.headers.len(),
        m.query_params.len(),
    )
}

fn path_of(m: &HttpRouteMatch) -> (&str, &str) {
    match &m.path {
        Some(path) => (
            path.kind.as_deref().unwrap_or("PathPrefix"),
            path.value.as_deref().unwrap_or("/"),
        ),
        None => ("PathPrefix", "/"),
    }
}

/// Reports whether `path` matches a `PathPrefix` value element by element (`/foo` matches
/// `/foo` and `/foo/bar`, not `/foobar`).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn value_matches(condition: &ValueMatch, actual: Option<&str>) -> bool {
    let Some(actual) = actual else {
        return false;
    };
    match condition.kind.as_deref().unwrap_or("Exact") {
        "RegularExpression" => {
            regex::Regex::new(&condition.value).is_ok_and(|r| r.is_match(actual))
        }
        _ => actual == condition.value,
    }
}

fn match_applies(m: &HttpRouteMatch, request: &Request, cookie_header: Option<&str>) -> bool {
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let path_ok = match path_of(m) {
        ("Exact", value) => path == value,
        ("PathPrefix", value) => prefix_matches(value, path),
        (_, value) => regex::Regex::new(&format!("^(?:{value})$")).is_ok_and(|r| r.is_match(path)),
    };
    let method_ok = m
        .method
        .as_deref()
        .is_none_or(|method| method.eq_ignore_ascii_case(&request.method));
    let headers_ok = m.headers.iter().all(|condition| {
        let actual = if condition.name.eq_ignore_ascii_case("cookie") {
            cookie_header.or_else(|| request.header("cookie"))
        } else {
            request.header(&condition.name)
        };
        value_matches(condition, actual)
    });
    let query_ok = m.query_params.iter().all(|condition| {
        let actual = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == condition.name)
            .map(|(_, value)| value);
        value_matches(condition, actual)
    });
    path_ok && method_ok && headers_ok && query_ok
}

/// Reports whether a hostname of the route accepts `host` (`*.example.com` matches any
/// name below example.com). A route without hostnames accepts every host.
fn host_matches(hostnames: &[String], host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    hostnames.is_empty()
        || hostnames
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{}", suffix.to_ascii_lowercase())),
                None => pattern.eq_ignore_ascii_case(&host),
            })
}

/// Finds the rule and match of the route that serve `request`, by the specification's precedence
/// and, for equal precedence, list order. Returns the rule index and the match index.
pub fn select_rule(spec: &HttpRouteSpec, request: &Request) -> Option<(usize, usize)> {
    let cookie_header = (!request.cookies.is_empty()).then(|| {
        request
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    });

    let mut best: Option<(Precedence, usize, usize)> = None;
    for (rule_index, rule) in spec.rules.iter().enumerate() {
        let default_match = [HttpRouteMatch::default()];
        let matches: &[HttpRouteMatch] = if rule.matches.is_empty() {
            &default_match
        } else {
            &rule.matches
        };
        for (match_index, m) in matches.iter().enumerate() {
            if !match_applies(m, request, cookie_header.as_deref()) {
                continue;
            }
            let rank = precedence(m);
            if best
                .as_ref()
                .is_none_or(|(best_rank, _, _)| rank > *best_rank)
            {
                best = Some((rank, rule_index, match_index));
            }
        }
    }
    best.map(|(_, rule, m)| (rule, m))
}

/// Decides where a gateway following the Gateway API specification sends `request`.
pub fn explain_route(
    spec: &HttpRouteSpec,
    canary_service: Option<&str>,
    request: &Request,
) -> Decision {
    if !host_matches(&spec.hostnames, request.host.as_deref()) {
        return Decision {
            route: Route::NoMatch,
            reason: format!(
                "host {:?} is not among the route's hostnames {:?}",
                request.host.as_deref().unwrap_or(""),
                spec.hostnames
            ),
        };
    }
    let Some((rule_index, match_index)) = select_rule(spec, request) else {
        return Decision {
            route: Route::NoMatch,
            reason: format!(
                "no rule matches path {:?}, so the gateway answers 404",
                request.path
            ),
        };
    };

    let rule = &spec.rules[rule_index];
    let label = match &rule.name {
        Some(name) => format!("rule {rule_index} ({name})"),
        None => format!("rule {rule_index}"),
    };
    let total: i64 = rule
        .backend_refs
        .iter()
        .map(BackendRef::effective_weight)
        .sum();
    let to_canary: i64 = rule
        .backend_refs
        .iter()
        .filter(|backend| Some(backend.name.as_str()) == canary_service)
        .map(BackendRef::effective_weight)
        .sum();
    let condition = describe_match(rule.matches.get(match_index));
    let route = if total <= 0 || to_canary == 0 {
        Route::Stable
    } else if to_canary == total {
        Route::Canary
    } else {
        Route::Split {
            canary_share: to_canary as f64 / total as f64,
        }
    };
    Decision {
        route,
        reason: format!(
            "{label} matches ({condition}) and sends weight {to_canary} of {total} to the canary"
        ),
    }
}

fn describe_match(m: Option<&HttpRouteMatch>) -> String {
    let default = HttpRouteMatch::default();
    let m = m.unwrap_or(&default);
    let (kind, value) = path_of(m);
    let mut parts = vec![format!("path {kind} {value}")];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    for header in &m.headers {
        parts.push(format!(
            "header {} {} {:?}",
            header.name,
            header.kind.as_deref().unwrap_or("Exact"),
            header.value
        ));
    }
    for query in &m.query_params {
        parts.push(format!(
            "query {} {} {:?}",
            query.name,
            query.kind.as_deref().unwrap_or("Exact"),
            query.value
        ));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::HeaderRule;

    fn spec(yaml: &str) -> HttpRouteSpec {
        serde_yaml::from_str(yaml).expect("spec parses")
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            path: path.to_string(),
            method: "GET".to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    fn canary(weight: u32) -> RouteCanary {
        RouteCanary {
            stable_service: "hello-world-svc".into(),
            stable_weight: None,
            canary_service: "hello-world-svc-v2".into(),
            canary_port: Some(80),
            rules: CanaryRules {
                weight,
                ..CanaryRules::default()
            },
        }
    }

    const HELLO: &str = "
parentRefs: [{name: web}]
hostnames: [hello.world.test]
rules:
- matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs: [{name: hello-world-svc, port: 80}]
";

    #[test]
    fn unknown_fields_survive_round_trip() {
        let parsed = spec(HELLO);
        let value = serde_json::to_value(&parsed).unwrap();
        assert_eq!(value["parentRefs"][0]["name"], "web");
    }

    #[test]
    fn exact_path_beats_longer_prefix() {
        let s = spec(
            "
rules:
- matches: [{path: {type: PathPrefix, value: /api/v1}}]
  backendRefs: [{name: a}]
- matches: [{path: {type: Exact, value: /api}}]
  backendRefs: [{name: b}]
",
        );
        assert_eq!(select_rule(&s, &request("/api", &[])), Some((1, 0)));
        assert_eq!(select_rule(&s, &request("/api/v1/x", &[])), Some((0, 0)));
    }

    #[test]
    fn longest_prefix_wins() {
        let s = spec(
            "
rules:
- matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs: [{name: a}]
- matches: [{path: {type: PathPrefix, value: /shop/}}]
  backendRefs: [{name: b}]
",
        );
        assert_eq!(select_rule(&s, &request("/shop", &[])), Some((1, 0)));
        assert_eq!(select_rule(&s, &request("/shopping", &[])), Some((0, 0)));
    }

    #[test]
    fn method_then_headers_break_ties() {
        let s = spec(
            "
rules:
- matches: [{path: {value: /}, headers: [{name: a, value: '1'}, {name: b, value: '2'}]}]
  backendRefs: [{name: headers}]
- matches: [{path: {value: /}, method: GET}]
  backendRefs: [{name: method}]
",
        );
        let req = request("/", &[("A", "1"), ("B", "2")]);
        assert_eq!(select_rule(&s, &req), Some((1, 0)));
        let mut post = req.clone();
        post.method = "POST".into();
        assert_eq!(select_rule(&s, &post), Some((0, 0)));
    }

    #[test]
    fn header_names_match_case_insensitively() {
        let s = spec(
            "
rules:
- matches: [{headers: [{name: X-Canary, value: always}]}]
  backendRefs: [{name: a}]
",
        );
        assert_eq!(
            select_rule(&s, &request("/", &[("x-canary", "always")])),
            Some((0, 0))
        );
        assert_eq!(
            select_rule(&s, &request("/", &[("x-canary", "Always")])),
            None
        );
    }

    #[test]
    fn equal_precedence_keeps_list_order() {
        let s = spec(
            "
rules:
- backendRefs: [{name: first}]
- backendRefs: [{name: second}]
",
        );
        assert_eq!(select_rule(&s, &request("/x", &[])), Some((0, 0)));
    }

    #[test]
    fn query_and_regex_path_match() {
        let s = spec("
rules:
- matches: [{path: {type: RegularExpression, value: '/v[0-9]+'}, queryParams: [{name: debug, value: '1'}]}]
  backendRefs: [{name: a}]
");
        assert_eq!(select_rule(&s, &request("/v2?debug=1", &[])), Some((0, 0)));
        assert_eq!(select_rule(&s, &request("/v2/x?debug=1", &[])), None);
        assert_eq!(select_rule(&s, &request("/v2", &[])), None);
    }

    #[test]
    fn weights_split_between_services() {
        let mut s = spec(HELLO);
        apply_canary(&mut s, &canary(20)).unwrap();
        let backends = &s.rules[0].backend_refs;
        assert_eq!(backends[0].weight, Some(80));
        assert_eq!(backends[1].name, "hello-world-svc-v2");
        assert_eq!(backends[1].weight, Some(20));
        let decision = explain_route(&s, Some("hello-world-svc-v2"), &request("/", &[]));
        assert_eq!(decision.route, Route::Split { canary_share: 0.2 });
    }

    #[test]
    fn header_rule_routes_to_canary() {
        let mut s = spec(HELLO);
        let mut c = canary(0);
        c.rules.header = Some(HeaderRule {
            name: "X-Canary".into(),
            matcher: HeaderMatch::AlwaysNever,
        });
        c.rules.cookie = Some("beta".into());
        apply_canary(&mut s, &c).unwrap();
        assert_eq!(s.rules.len(), 5);
        let explain = |headers: &[(&str, &str)], cookies: &[(&str, &str)]| {
            let mut req = request("/", headers);
            req.cookies = cookies
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            explain_route(&s, Some("hello-world-svc-v2"), &req).route
        };
        assert_eq!(explain(&[("x-canary", "always")], &[]), Route::Canary);
        assert_eq!(
            explain(&[("X-Canary", "never")], &[("beta", "always")]),
            Route::Stable
        );
        assert_eq!(explain(&[], &[("beta", "always")]), Route::Canary);
        assert_eq!(explain(&[], &[("xbeta", "always")]), Route::Stable);
        assert_eq!(explain(&[], &[]), Route::Stable);
    }

    #[test]
    fn reapplying_replaces_previous_canary() {
        let mut s = spec(HELLO);
        let mut c = canary(10);
        c.rules.header = Some(HeaderRule {
            name: "Region".into(),
            matcher: HeaderMatch::Value("eu".into()),
        });
        apply_canary(&mut s, &c).unwrap();
        c.rules.header = None;
        c.rules.weight = 30;
        apply_canary(&mut s, &c).unwrap();
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].backend_refs.len(), 2);
        assert_eq!(s.rules[0].backend_refs[1].weight, Some(30));
    }

    #[test]
    fn remove_and_promote_restore_single_backend() {
        let original = spec(HELLO);
        let mut s = original.clone();
        apply_canary(&mut s, &canary(50)).unwrap();
        let mut removed = s.clone();
        remove_canary(&mut removed, &canary(50));
        assert_eq!(removed, original);
        promote_canary(&mut s, &canary(50));
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].backend_refs.len(), 1);
        assert_eq!(s.rules[0].backend_refs[0].name, "hello-world-svc-v2");
        assert_eq!(s.rules[0].backend_refs[0].weight, None);
    }

    #[test]
    fn user_rules_with_similar_names_kept() {
        let mut s = spec(
            "
rules:
- name: canary-api
  matches: [{path: {value: /api}}]
  backendRefs: [{name: api}]
- backendRefs: [{name: hello-world-svc}]
",
        );
        apply_canary(&mut s, &canary(10)).unwrap();
        remove_canary(&mut s, &canary(10));
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.rules[0].name.as_deref(), Some("canary-api"));
    }

    #[test]
    fn too_many_rules_rejected_unchanged() {
        let mut yaml = String::from("rules:\n");
        for i in 0..6 {
            yaml.push_str(&format!("- matches: [{{path: {{value: /p{i}}}}}]\n  backendRefs: [{{name: hello-world-svc}}]\n"));
        }
        let mut s = spec(&yaml);
        let before = s.clone();
        let mut c = canary(10);
        c.rules.header = Some(HeaderRule {
            name: "X-Canary".into(),
            matcher: HeaderMatch::AlwaysNever,
        });
        let error = apply_canary(&mut s, &c).unwrap_err();
        assert!(error.contains("at most 16"), "{error}");
        assert_eq!(s, before);
    }

    #[test]
    fn missing_stable_backend_rejected() {
        let mut s = spec(HELLO);
        let mut c = canary(10);
        c.stable_service = "other".into();
        assert!(
            apply_canary(&mut s, &c)
                .unwrap_err()
                .contains("Service other")
        );
    }

    #[test]
    fn wildcard_hostnames_match_subdomains() {
        let names = vec!["*.example.com".to_string()];
        assert!(host_matches(&names, Some("a.example.com")));
        assert!(host_matches(&names, Some("a.b.example.com:8080")));
        assert!(!host_matches(&names, Some("example.com")));
        assert!(host_matches(&[], Some("anything")));
    }
}
