//! `kubectl canary` on ingress-nginx canary Ingresses, against the local API server with the
//! hello-world fixtures (the legacy Ingresses converted first).

mod canary_support;

use canary_support::{Env, HelloServer, Marker, assert_fails};
use testkit::plugins::{stderr, stdout};

const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
const BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
const BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";
const BY_COOKIE: &str = "nginx.ingress.kubernetes.io/canary-by-cookie";
const ROLLOUT: &str = "canary.kubectl-plugins.io/rollout";

fn env_with_canary(weight: &str) -> Env {
    let env = Env::start();
    env.hello_world();
    env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--weight",
        weight,
    ]);
    env
}

fn resource_version(env: &Env, name: &str) -> String {
    env.get("ingress", name)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn create_clones_primary() {
    let env = Env::start();
    env.hello_world();
    let text = env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--weight",
        "10",
        "--header",
        "X-Canary",
        "--cookie",
        "beta",
    ]);
    assert_eq!(
        text,
        "ingress.networking.k8s.io/hello-world-canary created: canary of hello-world to Service hello-world-svc-v2, weight 10/100, header X-Canary=always|never, cookie beta=always|never\n"
    );

    let canary = env.get("ingress", "hello-world-canary");
    let annotations = &canary["metadata"]["annotations"];
    assert_eq!(annotations[CANARY], "true");
    assert_eq!(annotations[WEIGHT], "10");
    assert_eq!(annotations[BY_HEADER], "X-Canary");
    assert_eq!(annotations[BY_COOKIE], "beta");
    assert_eq!(annotations["kubernetes.io/ingress.class"], "nginx");
    let rule = &canary["spec"]["rules"][0];
    assert_eq!(rule["host"], "hello.world.test");
    assert_eq!(
        rule["http"]["paths"][0]["pathType"],
        "ImplementationSpecific"
    );
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["name"],
        "hello-world-svc-v2"
    );
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
}

#[test]
fn create_dry_run_writes_nothing() {
    let env = Env::start();
    env.hello_world();
    let text = env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--dry-run",
    ]);
    assert!(text.contains("name: hello-world-canary"), "{text}");
    assert!(!env.exists("ingress", "hello-world-canary"));
    let server = env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--dry-run=server",
    ]);
    assert!(server.contains("(server dry run)"), "{server}");
    assert!(!env.exists("ingress", "hello-world-canary"));
}

#[test]
fn status_shows_services_weight_and_rules() {
    let env = env_with_canary("10");
    env.canary_ok(&["set-header", "hello-world", "Region", "--value", "eu"]);
    let table = env.canary_ok(&["status"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in [
        "NAME",
        "PROVIDER",
        "CANARY",
        "HOSTS",
        "PATHS",
        "STABLE",
        "CANARY-SERVICE",
        "WEIGHT",
        "RULES",
        "ROLLOUT",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    for cell in [
        "hello-world",
        "nginx",
        "hello-world-canary",
        "hello.world.test",
        "/ (ImplementationSpecific)",
        "hello-world-svc (1 ready)",
        "hello-world-svc-v2 (1 ready)",
        "10/100",
        "header Region=eu",
    ] {
        assert!(row.contains(cell), "missing {cell:?} in {row}");
    }

    let json: serde_json::Value =
        serde_json::from_str(&env.canary_ok(&["status", "hello-world", "-o", "json"])).unwrap();
    let status = &json[0];
    assert_eq!(status["stable"][0]["name"], "hello-world-svc");
    assert_eq!(status["stable"][0]["ready"], 1);
    assert_eq!(status["canaryService"]["ready"], 1);
    assert_eq!(status["weight"], 10);
    assert_eq!(status["total"], 100);
    assert_eq!(status["header"], "header Region=eu");
}

#[test]
fn status_all_namespaces_and_warnings() {
    let env = env_with_canary("10");
    env.endpoints("hello-world-svc", &[false]);
    let table = env.canary_ok(&["status", "-A"]);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(table.contains("demo"), "{table}");
    assert!(table.contains("hello-world-svc (0 ready)"), "{table}");
    assert!(table.contains("Warnings:\n  warning: ingress/hello-world-canary: stable Service hello-world-svc has no ready endpoints"), "{table}");
}

#[test]
fn legacy_weight_canary_detected() {
    let env = Env::start();
    env.hello_world();
    env.apply_converted("weight-ingress-legacy.yaml");
    let json: serde_json::Value =
        serde_json::from_str(&env.canary_ok(&["status", "hello-world", "-o", "json"])).unwrap();
    assert_eq!(json[0]["canary"], "helloworld-weight");
    assert_eq!(json[0]["weight"], 50);
    let explained = env.canary_ok(&["explain", "hello-world"]);
    assert!(
        explained.starts_with("Route:    split (50.0% canary)\n"),
        "{explained}"
    );
}

#[test]
fn set_commands_update_annotations() {
    let env = env_with_canary("10");
    env.canary_ok(&["set-weight", "hello-world", "30"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("30")
    );
    env.canary_ok(&["set-weight", "hello-world-canary", "60", "--total", "200"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("60")
    );
    assert_eq!(
        env.annotation(
            "ingress",
            "hello-world-canary",
            "nginx.ingress.kubernetes.io/canary-weight-total"
        )
        .as_deref(),
        Some("200")
    );

    env.canary_ok(&["set-header", "hello-world", "Region", "--value", "eu"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_HEADER)
            .as_deref(),
        Some("Region")
    );
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_HEADER_VALUE)
            .as_deref(),
        Some("eu")
    );
    env.canary_ok(&["set-cookie", "hello-world", "beta"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_COOKIE)
            .as_deref(),
        Some("beta")
    );

    env.canary_ok(&["clear-rules", "hello-world"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_HEADER),
        None
    );
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_HEADER_VALUE),
        None
    );
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_COOKIE),
        None
    );
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("60")
    );
}

#[test]
fn bad_weight_changes_nothing() {
    let env = env_with_canary("10");
    let before = resource_version(&env, "hello-world-canary");
    assert_fails(
        &env.canary(&["set-weight", "hello-world", "150"]),
        2,
        "weight 150 is out of range: it must lie between 0 and the total 100",
    );
    assert_fails(
        &env.canary(&["set-weight", "hello-world", "ten"]),
        2,
        "invalid weight \"ten\"",
    );
    assert_fails(&env.canary(&["set-weight", "hello-world", "-5"]), 2, "");
    assert_fails(
        &env.canary(&["set-weight", "hello-world", "50", "--total", "40"]),
        2,
        "weight 50 is out of range",
    );
    assert_fails(
        &env.canary(&[
            "create",
            "hello-world",
            "--service",
            "hello-world-svc-v2",
            "--name",
            "x",
            "--weight",
            "101",
        ]),
        2,
        "weight 101 is out of range",
    );
    assert_fails(
        &env.canary(&["set-header", "hello-world", "X:Canary"]),
        1,
        "pre-flight checks failed, so nothing was written",
    );
    assert_fails(
        &env.canary(&["set-cookie", "hello-world", "be ta"]),
        1,
        "cookie name \"be ta\"",
    );
    assert_eq!(resource_version(&env, "hello-world-canary"), before);
    assert!(!env.exists("ingress", "x"));
}

#[test]
fn unknown_ingress_lists_existing() {
    let env = env_with_canary("10");
    let output = env.canary(&["status", "nope"]);
    assert_fails(
        &output,
        1,
        "no Ingress or HTTPRoute named nope in namespace demo: Ingresses there: hello-world, hello-world-canary",
    );
    let forced = env.canary(&["set-weight", "nope", "5", "--provider", "nginx"]);
    assert_fails(
        &forced,
        1,
        "Ingress nope not found in namespace demo: Ingresses there: hello-world, hello-world-canary",
    );
    let empty = Env::start();
    assert_fails(
        &empty.canary(&["explain", "web"]),
        1,
        "there are no Ingresses in namespace demo",
    );
}

#[test]
fn second_canary_on_same_path_rejected() {
    let env = env_with_canary("10");
    assert_fails(
        &env.canary(&["create", "hello-world", "--service", "hello-world-svc-v2"]),
        1,
        "Ingress hello-world already has the canary Ingress hello-world-canary",
    );
    let output = env.canary(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--name",
        "second",
    ]);
    assert_fails(
        &output,
        1,
        "pre-flight checks failed, so nothing was written",
    );
    assert!(stderr(&output).contains("error: ingress/second: hello.world.test/ (ImplementationSpecific) already has the canary Ingress hello-world-canary"), "{}", stderr(&output));
    assert!(!env.exists("ingress", "second"));

    // One written around the plugin is reported by lint.
    env.apply_converted("weight-ingress-legacy.yaml");
    let lint = env.canary(&["lint"]);
    assert_fails(&lint, 1, "errors and");
    assert!(stdout(&lint).contains("error: ingress/helloworld-weight: hello.world.test/ (ImplementationSpecific) already has the canary Ingress hello-world-canary"), "{}", stdout(&lint));
}

#[test]
fn create_rejects_lint_errors() {
    let env = Env::start();
    env.hello_world();
    let same = env.canary(&["create", "hello-world", "--service", "hello-world-svc"]);
    assert_fails(
        &same,
        1,
        "the same Service as its primary Ingress hello-world",
    );
    let header = env.canary(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--header",
        "X Canary",
    ]);
    assert_fails(
        &header,
        1,
        "header name \"X Canary\" has characters a header name cannot contain",
    );
    let cookie = env.canary(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--cookie",
        "a;b",
    ]);
    assert_fails(&cookie, 1, "cookie name \"a;b\"");
    let value = env.canary(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--header",
        "Region",
        "--header-value",
        " eu",
    ]);
    assert_fails(&value, 1, "header value \" eu\"");
    let missing = env.canary(&["create", "hello-world", "--service", "absent"]);
    assert_fails(&missing, 1, "Service absent not found in namespace demo");
    assert!(!env.exists("ingress", "hello-world-canary"));

    // Warnings do not block, but are printed.
    env.endpoints("hello-world-svc", &[]);
    let warned = env.canary(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--header",
        "Version",
        "--header-pattern",
        "v2",
        "--total",
        "50",
        "--weight",
        "5",
    ]);
    assert!(warned.status.success(), "{}", stderr(&warned));
    let warnings = stderr(&warned);
    assert!(
        warnings
            .contains("warning: ingress/hello-world-canary: header pattern \"v2\" is not anchored"),
        "{warnings}"
    );
    assert!(
        warnings.contains("canary-weight-total 50 is below 100"),
        "{warnings}"
    );
    assert!(
        warnings.contains("stable Service hello-world-svc has no ready endpoints"),
        "{warnings}"
    );
}

/// Every pre-flight check on Ingresses written directly, one host per case.
#[test]
fn lint_reports_every_check() {
    let env = Env::start();
    env.hello_world();
    for service in ["svc-a", "svc-b", "svc-c", "svc-d"] {
        env.apply(&format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {service}}}\nspec: {{ports: [{{port: 80}}]}}\n"));
        env.endpoints(service, &[true]);
    }
    let primary = |name: &str, host: &str, class: &str, service: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: {class}\n  rules:\n  - host: {host}\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}\n"
        )
    };
    let canary = |name: &str,
                  host: &str,
                  path_type: &str,
                  class: &str,
                  service: &str,
                  annotations: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n    nginx.ingress.kubernetes.io/canary: 'true'\n{annotations}spec:\n  ingressClassName: {class}\n  rules:\n  - host: {host}\n    http: {{paths: [{{path: /, pathType: {path_type}, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}\n"
        )
    };
    let manifests = [
        primary("a", "a.test", "nginx", "svc-a"),
        canary("a-host", "other.test", "Prefix", "nginx", "svc-b", ""),
        primary("b", "b.test", "nginx", "svc-a"),
        canary("b-type", "b.test", "Exact", "nginx", "svc-b", ""),
        primary("c", "c.test", "nginx", "svc-a"),
        canary("c-class", "c.test", "Prefix", "traefik", "svc-b", ""),
        primary("d", "d.test", "nginx", "svc-c"),
        canary("d-same", "d.test", "Prefix", "nginx", "svc-c", ""),
        primary("e", "e.test", "nginx", "svc-a"),
        canary("e-elsewhere", "e.test", "Prefix", "nginx", "svc-c", ""),
        primary("f", "f.test", "nginx", "svc-a"),
        canary(
            "f-weight",
            "f.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/canary-weight: '250'\n    nginx.ingress.kubernetes.io/canary-weight-total: '200'\n",
        ),
        primary("g", "g.test", "nginx", "svc-a"),
        canary(
            "g-total",
            "g.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/canary-weight: '10'\n    nginx.ingress.kubernetes.io/canary-weight-total: '50'\n",
        ),
        primary("h", "h.test", "nginx", "svc-a"),
        canary(
            "h-value",
            "h.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/canary-by-header-value: beta\n",
        ),
        primary("i", "i.test", "nginx", "svc-a"),
        canary(
            "i-chars",
            "i.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/canary-by-header: 'X(Canary)'\n    nginx.ingress.kubernetes.io/canary-by-cookie: 'be ta'\n",
        ),
        primary("j", "j.test", "nginx", "svc-a"),
        canary(
            "j-pattern",
            "j.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/canary-by-header: Version\n    nginx.ingress.kubernetes.io/canary-by-header-pattern: v2\n",
        ),
        primary("k", "k.test", "nginx", "svc-a"),
        canary(
            "k-ignored",
            "k.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/rewrite-target: /x\n",
        ),
        primary("l", "l.test", "nginx", "svc-d"),
        canary("l-endpoints", "l.test", "Prefix", "nginx", "svc-b", ""),
        primary("m", "m.test", "nginx", "svc-a"),
        canary(
            "m-weight-text",
            "m.test",
            "Prefix",
            "nginx",
            "svc-b",
            "    nginx.ingress.kubernetes.io/canary-weight: half\n",
        ),
    ];
    env.apply(&manifests.join("---\n"));
    env.endpoints("svc-d", &[false]);

    let output = env.canary(&["lint"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let expected = [
        "error: ingress/a-host: other.test/ (Prefix) matches no primary Ingress with the same host, path and pathType",
        "error: ingress/b-type: b.test/ (Exact) matches no primary Ingress with the same host, path and pathType: Ingress b has this host and path with pathType Prefix",
        "error: ingress/c-class: ingress class traefik differs from class nginx of its primary Ingress c",
        "error: ingress/d-same: d.test/ (Prefix) sends to Service svc-c, the same Service as its primary Ingress d",
        "error: ingress/e-elsewhere: canary Service svc-c is also a plain backend of Ingress d",
        "error: ingress/f-weight: weight 250 is out of range: it must lie between 0 and the total 200",
        "warning: ingress/g-total: canary-weight-total 50 is below 100, which ingress-nginx treats as 100",
        "error: ingress/h-value: canary-by-header-value or canary-by-header-pattern is set without canary-by-header",
        "error: ingress/i-chars: header name \"X(Canary)\" has characters a header name cannot contain",
        "error: ingress/i-chars: cookie name \"be ta\" has characters a cookie name cannot contain",
        "warning: ingress/j-pattern: header pattern \"v2\" is not anchored",
        "warning: ingress/k-ignored: annotation nginx.ingress.kubernetes.io/rewrite-target is ignored on a canary Ingress",
        "warning: ingress/l-endpoints: stable Service svc-d has no ready endpoints",
        "error: ingress/m-weight-text: canary-weight: invalid weight \"half\": expected a whole number such as 10",
    ];
    for line in expected {
        assert!(text.contains(line), "lint lacks {line:?}:\n{text}");
    }
    assert!(
        stderr(&output).contains("errors and"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn lint_strict_fails_on_warnings() {
    let env = env_with_canary("10");
    let clean = env.canary(&["lint"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert_eq!(stdout(&clean), "no problems found in 1 canaries\n");

    env.canary_ok(&["set-header", "hello-world", "Version", "--pattern", "v2"]);
    assert!(env.canary(&["lint"]).status.success());
    assert_fails(
        &env.canary(&["lint", "--strict"]),
        1,
        "1 warnings found, and --strict fails on warnings",
    );
}

#[test]
fn promote_points_primary_then_deletes_canary() {
    let env = env_with_canary("40");
    let dry = env.canary_ok(&["promote", "hello-world", "--dry-run"]);
    assert!(dry.contains("name: hello-world-svc-v2"), "{dry}");
    assert!(env.exists("ingress", "hello-world-canary"));
    assert_eq!(
        env.get("ingress", "hello-world")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            ["name"],
        "hello-world-svc"
    );

    let text = env.canary_ok(&["promote", "hello-world"]);
    assert_eq!(
        text,
        "ingress.networking.k8s.io/hello-world configured\ningress.networking.k8s.io/hello-world-canary deleted\n"
    );
    assert_eq!(
        env.get("ingress", "hello-world")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            ["name"],
        "hello-world-svc-v2"
    );
    assert!(!env.exists("ingress", "hello-world-canary"));
}

#[test]
fn promote_failure_after_first_step_explained() {
    let env = env_with_canary("40");
    env.server.faults().fail("delete", "ingresses", 500, 1);
    let output = env.canary(&["promote", "hello-world"]);
    assert_fails(
        &output,
        1,
        "promote is half done: Ingress hello-world now sends to Service hello-world-svc-v2, but deleting the canary Ingress hello-world-canary failed",
    );
    assert!(
        stderr(&output).contains("finish with: kubectl delete ingress hello-world-canary -n demo"),
        "{}",
        stderr(&output)
    );
    assert!(env.exists("ingress", "hello-world-canary"));

    // A second promote finishes the job.
    env.canary_ok(&["promote", "hello-world"]);
    assert!(!env.exists("ingress", "hello-world-canary"));
    assert_eq!(
        env.get("ingress", "hello-world")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            ["name"],
        "hello-world-svc-v2"
    );
}

#[test]
fn abort_sends_everything_to_stable() {
    let env = env_with_canary("40");
    env.canary_ok(&["set-header", "hello-world", "X-Canary"]);
    env.canary_ok(&["abort", "hello-world"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", BY_HEADER),
        None
    );
    let explained = env.canary_ok(&["explain", "hello-world", "--header", "X-Canary:always"]);
    assert!(explained.starts_with("Route:    stable\n"), "{explained}");
}

#[test]
fn conflict_retried_then_reported() {
    let env = env_with_canary("10");
    env.server.faults().fail("update", "ingresses", 409, 2);
    env.canary_ok(&["set-weight", "hello-world", "20"]);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("20")
    );

    let faults = env.server.faults();
    faults.fail("update", "ingresses", 409, 0);
    let before = resource_version(&env, "hello-world-canary");
    let output = env.canary(&["set-weight", "hello-world", "30"]);
    faults.clear();
    assert_fails(
        &output,
        1,
        "failed to update Ingress hello-world-canary: it changed 6 times while this command tried to write it (409 Conflict), so nothing was written",
    );
    assert_eq!(resource_version(&env, "hello-world-canary"), before);
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("20")
    );
}

#[derive(serde::Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    canary: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    request: Request,
    route: String,
    canary_share: Option<f64>,
}

#[derive(serde::Deserialize, Default)]
struct Request {
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    cookies: std::collections::BTreeMap<String, String>,
}

/// `explain` through kubectl agrees with each documented routing case.
#[test]
fn explain_agrees_with_routing_cases() {
    let env = Env::start();
    env.hello_world();
    let path =
        testkit::plugins::workspace_root().join("../shared/fixtures/canary/routing-cases.yaml");
    let file: CaseFile =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("routing cases readable"))
            .expect("routing cases parse");
    assert_eq!(file.cases.len(), 19);

    for case in &file.cases {
        let mut annotations: Vec<String> = case
            .canary
            .iter()
            .map(|(k, v)| format!("    nginx.ingress.kubernetes.io/{k}: {v:?}\n"))
            .collect();
        if !case.canary.contains_key("canary") {
            annotations.push("    nginx.ingress.kubernetes.io/canary: \"true\"\n".to_string());
        }
        let manifest = format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: hello-world-canary\n  annotations:\n{}spec:\n  rules:\n  - host: hello.world.test\n    http: {{paths: [{{pathType: ImplementationSpecific, backend: {{service: {{name: hello-world-svc-v2, port: {{number: 80}}}}}}}}]}}\n",
            annotations.concat()
        );
        env.kubectl(&[
            "delete",
            "ingress",
            "hello-world-canary",
            "--ignore-not-found",
        ]);
        env.apply(&manifest);

        let mut args = vec![
            "explain".to_string(),
            "hello-world".to_string(),
            "--name".to_string(),
            "hello-world-canary".to_string(),
            "-o".to_string(),
            "json".to_string(),
        ];
        for (name, value) in &case.request.headers {
            args.extend(["--header".to_string(), format!("{name}:{value}")]);
        }
        for (name, value) in &case.request.cookies {
            args.extend(["--cookie".to_string(), format!("{name}={value}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = env.canary(&args);
        assert!(
            output.status.success(),
            "case {:?}: {}",
            case.name,
            stderr(&output)
        );
        let decision: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
        assert_eq!(
            decision["route"],
            case.route.as_str(),
            "case {:?}: {decision}",
            case.name
        );
        if let Some(share) = case.canary_share {
            let got = decision["canaryShare"].as_f64().expect("split has a share");
            assert!(
                (got - share).abs() < 1e-9,
                "case {:?}: share {got}",
                case.name
            );
        }
    }
}

#[test]
fn rollout_pauses_and_resumes() {
    let env = env_with_canary("0");
    let first = env.canary_ok(&[
        "rollout",
        "hello-world",
        "--steps",
        "10,50,100",
        "--interval",
        "0s",
        "--pause",
    ]);
    assert_eq!(first, "step 1/3: weight 10/100\n");
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("10")
    );
    let state: serde_json::Value = serde_json::from_str(
        &env.annotation("ingress", "hello-world-canary", ROLLOUT)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["phase"], "Paused");
    assert_eq!(state["applied"], 1);

    let second = env.canary_ok(&[
        "rollout",
        "hello-world",
        "--steps",
        "10,50,100",
        "--interval",
        "0s",
        "--pause",
    ]);
    assert_eq!(second, "step 2/3: weight 50/100\n");
    assert_fails(
        &env.canary(&[
            "rollout",
            "hello-world",
            "--steps",
            "20,100",
            "--interval",
            "0s",
        ]),
        2,
        "a rollout with --steps 10,50,100 is in progress",
    );

    let last = env.canary_ok(&[
        "rollout",
        "hello-world",
        "--steps",
        "10,50,100",
        "--interval",
        "0s",
    ]);
    assert_eq!(
        last,
        "step 3/3: weight 100/100\nrollout of hello-world completed at weight 100/100\n"
    );
    let state: serde_json::Value = serde_json::from_str(
        &env.annotation("ingress", "hello-world-canary", ROLLOUT)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["phase"], "Completed");
    assert!(env.canary_ok(&["status"]).contains("Completed 3/3"));
}

#[test]
fn rollout_resumes_after_interruption() {
    let env = env_with_canary("0");
    let mut child = testkit::plugins::kubectl()
        .args([
            "canary",
            "rollout",
            "hello-world",
            "--steps",
            "20,60",
            "--interval",
            "1h",
        ])
        .args([
            "--kubeconfig",
            &env.server.kubeconfig().display().to_string(),
            "-n",
            "demo",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rollout starts");
    let mut state = None;
    for _ in 0..100 {
        state = env.annotation("ingress", "hello-world-canary", ROLLOUT);
        if state.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().expect("rollout stops");
    let _ = child.wait();
    let state: serde_json::Value =
        serde_json::from_str(&state.expect("rollout wrote its state")).unwrap();
    assert_eq!(state["phase"], "Progressing");
    assert_eq!(state["applied"], 1);

    let output = env.canary(&[
        "rollout",
        "hello-world",
        "--steps",
        "20,60",
        "--interval",
        "0s",
        "--promote",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("resuming the rollout of hello-world at step 1/2"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        stdout(&output),
        "step 2/2: weight 60/100\nrollout of hello-world completed at weight 60/100\ningress.networking.k8s.io/hello-world configured\ningress.networking.k8s.io/hello-world-canary deleted\n"
    );
    assert!(!env.exists("ingress", "hello-world-canary"));
}

#[test]
fn rollout_aborts_when_verify_unreachable() {
    let env = env_with_canary("0");
    // Bind and drop a listener to get a loopback port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let output = env.canary(&[
        "rollout",
        "hello-world",
        "--steps",
        "10,100",
        "--interval",
        "0s",
        "--verify-url",
        &url,
        "--verify-requests",
        "5",
        "--verify-canary-match",
        "v2",
    ]);
    assert_fails(&output, 1, "verify at step 1/2 failed: all 5 requests");
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("0")
    );
}

#[test]
fn rollout_counts_failed_verify_requests() {
    let env = env_with_canary("0");
    // Every 8th request fails with 500 (12 of 100), and the rest split about 10% canary.
    let app = HelloServer::start_failing(0.1, Marker::Body, 8);
    let args = [
        "rollout",
        "hello-world",
        "--steps",
        "10",
        "--interval",
        "0s",
        "--verify-url",
        &app.url(),
        "--verify-requests",
        "100",
        "--verify-canary-match",
        "version: v2",
    ];
    let mut tolerant = args.to_vec();
    tolerant.extend(["--verify-max-failures", "12"]);
    let passed = env.canary_ok(&tolerant);
    assert!(passed.contains("Requests: 100 (12 failed)"), "{passed}");
    assert!(
        passed.contains("rollout of hello-world completed"),
        "{passed}"
    );

    // A fresh server so that the failures are again 12 of 100.
    let app = HelloServer::start_failing(0.1, Marker::Body, 8);
    let url = app.url();
    let mut args = args.to_vec();
    args[7] = &url;
    let output = env.canary(&args);
    assert_fails(
        &output,
        1,
        "verify at step 1/1 had 12 failed requests of 100, more than --verify-max-failures 0 (first failure: HTTP 500 Internal Server Error)",
    );
    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("0")
    );
}

#[test]
fn rollout_verifies_over_https() {
    let env = env_with_canary("0");
    let (app, ca_pem) = HelloServer::start_tls(0.5, Marker::Body);
    let folder = tempfile::tempdir().unwrap();
    let ca_file = folder.path().join("ca.crt");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let url = format!("https://{}/", app.addr);
    let text = env.canary_ok(&[
        "rollout",
        "hello-world",
        "--steps",
        "50",
        "--interval",
        "0s",
        "--verify-url",
        &url,
        "--verify-requests",
        "20",
        "--verify-canary-match",
        "version: v2",
        "--verify-certificate-authority",
        &ca_file.display().to_string(),
    ]);
    assert!(text.contains("Canary:   10 (50.0%"), "{text}");
    assert!(
        text.contains("rollout of hello-world completed at weight 50/100"),
        "{text}"
    );
}

#[test]
fn rollout_aborts_when_verify_fails() {
    let env = env_with_canary("0");
    // The app returns v2 for 10% of requests whatever the weight, so step 2 (50%) fails.
    let app = HelloServer::start(0.1, Marker::Body);
    let output = env.canary(&[
        "rollout",
        "hello-world",
        "--steps",
        "10,50,100",
        "--interval",
        "0s",
        "--verify-url",
        &app.url(),
        "--verify-host",
        "hello.world.test",
        "--verify-requests",
        "100",
        "--verify-canary-match",
        "version: v2",
    ]);

    assert_fails(
        &output,
        1,
        "verify at step 2/3 found 10.0% canary responses",
    );
    assert!(
        stderr(&output).contains("rollout aborted, all traffic is back on stable"),
        "{}",
        stderr(&output)
    );
    assert!(
        stdout(&output).starts_with("step 1/3: weight 10/100\n"),
        "{}",
        stdout(&output)
    );

    assert_eq!(
        env.annotation("ingress", "hello-world-canary", WEIGHT)
            .as_deref(),
        Some("0")
    );
    let state: serde_json::Value = serde_json::from_str(
        &env.annotation("ingress", "hello-world-canary", ROLLOUT)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["phase"], "Aborted");
    assert!(
        state["message"]
            .as_str()
            .unwrap()
            .contains("verify at step 2/3")
    );
    assert!(
        app.hosts
            .lock()
            .unwrap()
            .iter()
            .all(|h| h == "hello.world.test")
    );
}
