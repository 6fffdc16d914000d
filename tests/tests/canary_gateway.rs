//! `kubectl canary` on a Gateway API HTTPRoute (the gateway-api provider), against the local API
//! server with the Gateway API CRDs installed by the test.

mod canary_support;

use canary_support::{Env, assert_fails, manifest};
use testkit::plugins::{stderr, stdout};

const STATE: &str = "canary.kubectl-plugins.io/state";

/// Starts a server with the CRDs, the hello-world Services and the hello-world HTTPRoute.
fn env_with_route() -> Env {
    let env = Env::start();
    env.kubectl_ok(&[
        "apply",
        "-f",
        &manifest("gateway-api-crds.yaml").display().to_string(),
    ]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/httproutes.gateway.networking.k8s.io",
        "--timeout=30s",
    ]);
    for fixture in [
        "helloworld-v1.yaml",
        "helloworld-v2.yaml",
        "helloworld-httproute.yaml",
    ] {
        env.kubectl_ok(&["apply", "-f", &manifest(fixture).display().to_string()]);
    }
    env.endpoints("hello-world-svc", &[true]);
    env.endpoints("hello-world-svc-v2", &[true]);
    env
}

fn rules(env: &Env) -> Vec<serde_json::Value> {
    env.get("httproute", "hello-world")["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn explain_route(env: &Env, args: &[&str]) -> String {
    let mut full = vec!["explain", "hello-world"];
    full.extend_from_slice(args);
    env.canary_ok(&full)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn create_adds_weighted_backend_and_header_rule() {
    let env = env_with_route();
    env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--weight",
        "20",
        "--header",
        "X-Canary",
    ]);

    let rules = rules(&env);
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(rules[0]["name"], "kubectl-canary-header-0");
    assert_eq!(rules[0]["matches"][0]["headers"][0]["name"], "X-Canary");
    assert_eq!(rules[0]["backendRefs"][0]["name"], "hello-world-svc-v2");
    assert_eq!(rules[1]["name"], "kubectl-canary-header-never-0");
    let weighted = &rules[2]["backendRefs"];
    assert_eq!(weighted[0]["name"], "hello-world-svc");
    assert_eq!(weighted[0]["weight"], 80);
    assert_eq!(weighted[1]["name"], "hello-world-svc-v2");
    assert_eq!(weighted[1]["weight"], 20);
    assert_eq!(weighted[1]["port"], 80);
    assert!(env.annotation("httproute", "hello-world", STATE).is_some());

    assert_eq!(
        explain_route(&env, &["--header", "x-canary:always"]),
        "Route:    canary"
    );
    assert_eq!(
        explain_route(&env, &["--header", "X-Canary:never"]),
        "Route:    stable"
    );
    assert_eq!(explain_route(&env, &[]), "Route:    split (20.0% canary)");
    assert_eq!(
        explain_route(&env, &["--host", "other.test"]),
        "Route:    no-match"
    );

    let json: serde_json::Value =
        serde_json::from_str(&env.canary_ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(json[0]["provider"], "gateway-api");
    assert_eq!(json[0]["weight"], 20);
    assert_eq!(json[0]["stable"][0]["ready"], 1);
    assert_eq!(json[0]["canaryService"]["name"], "hello-world-svc-v2");

    assert_eq!(
        env.canary_ok(&["lint"]),
        "no problems found in 1 canaries\n"
    );
    env.endpoints("hello-world-svc-v2", &[false]);
    let lint = env.canary_ok(&["lint", "hello-world"]);
    assert_eq!(
        lint,
        "warning: httproute/hello-world: canary Service hello-world-svc-v2 has no ready endpoints, so requests sent to it fail\n"
    );
    assert_fails(
        &env.canary(&["lint", "--strict"]),
        1,
        "1 warnings found, and --strict fails on warnings",
    );

    assert_fails(
        &env.canary(&["create", "hello-world", "--service", "hello-world-svc-v2"]),
        1,
        "HTTPRoute hello-world already has a canary",
    );
}

#[test]
fn set_commands_rewrite_route() {
    let env = env_with_route();
    env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--provider",
        "gateway-api",
    ]);
    env.canary_ok(&["set-weight", "hello-world", "50"]);
    assert_eq!(rules(&env)[0]["backendRefs"][1]["weight"], 50);
    assert_eq!(rules(&env)[0]["backendRefs"][0]["weight"], 50);

    env.canary_ok(&["set-cookie", "hello-world", "beta"]);
    env.canary_ok(&["set-header", "hello-world", "Region", "--value", "eu"]);
    let names: Vec<String> = rules(&env)
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        [
            "kubectl-canary-header-0",
            "kubectl-canary-cookie-0",
            "kubectl-canary-cookie-never-0"
        ]
    );
    assert_eq!(
        explain_route(&env, &["--cookie", "beta=always"]),
        "Route:    canary"
    );
    assert_eq!(
        explain_route(&env, &["--header", "Region:eu"]),
        "Route:    canary"
    );
    assert_eq!(
        explain_route(&env, &["--cookie", "beta=never"]),
        "Route:    stable"
    );

    env.canary_ok(&["clear-rules", "hello-world"]);
    assert_eq!(rules(&env).len(), 1);
    env.canary_ok(&["abort", "hello-world"]);
    assert_eq!(rules(&env)[0]["backendRefs"][1]["weight"], 0);
    assert_eq!(explain_route(&env, &[]), "Route:    stable");
}

#[test]
fn bad_input_changes_nothing() {
    let env = env_with_route();
    env.canary_ok(&[
        "create",
        "hello-world",
        "--service",
        "hello-world-svc-v2",
        "--weight",
        "10",
    ]);
    let before = env.get("httproute", "hello-world")["metadata"]["resourceVersion"].clone();
    assert_fails(
        &env.canary(&["set-weight", "hello-world", "101"]),
        2,
        "weight 101 is out of range",
    );
    assert_fails(
        &env.canary(&["set-header", "hello-world", "Bad Header"]),
        1,
        "header name \"Bad Header\"",
    );
    assert_fails(
        &env.canary(&["status", "nope", "--provider", "gateway-api"]),
        1,
        "HTTPRoute nope not found in namespace demo: HTTPRoutes there: hello-world",
    );
    assert_eq!(
        env.get("httproute", "hello-world")["metadata"]["resourceVersion"],
        before
    );

    let faults = env.server.faults();
    faults.fail("update", "httproutes", 409, 0);
    let output = env.canary(&["set-weight", "hello-world", "30"]);
    faults.clear();
    assert_fails(
        &output,
        1,
        "failed to update HTTPRoute hello-world: it changed 6 times",
    );
    assert_eq!(
        env.get("httproute", "hello-world")["metadata"]["resourceVersion"],
        before
    );

    faults.fail("update", "httproutes", 409, 1);
    env.canary_ok(&["set-weight", "hello-world", "30"]);
    assert_eq!(rules(&env)[0]["backendRefs"][1]["weight"], 30);
}

#[test]
fn rollout_and_promote_on_route() {
    let env = env_with_route();
    env.canary_ok(&["create", "hello-world", "--service", "hello-world-svc-v2"]);
    assert_eq!(
        env.canary_ok(&[
            "rollout",
            "hello-world",
            "--steps",
            "25,100",
            "--interval",
            "0s",
            "--pause"
        ]),
        "step 1/2: weight 25/100\n"
    );
    assert_eq!(rules(&env)[0]["backendRefs"][1]["weight"], 25);
    let output = env.canary(&[
        "rollout",
        "hello-world",
        "--steps",
        "25,100",
        "--interval",
        "0s",
        "--promote",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("rollout of hello-world completed at weight 100/100"),
        "{}",
        stdout(&output)
    );

    let rules = rules(&env);
    assert_eq!(rules.len(), 1);
    let backends = rules[0]["backendRefs"].as_array().unwrap();
    assert_eq!(backends.len(), 1);
    assert_eq!(backends[0]["name"], "hello-world-svc-v2");
    assert!(backends[0].get("weight").is_none());
    assert_eq!(env.annotation("httproute", "hello-world", STATE), None);
}
