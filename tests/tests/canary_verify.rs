//! `kubectl canary verify` against local HTTP servers that respond like the hello-world app, and
//! `kubectl canary convert` on the legacy hello-world manifests.

mod canary_support;

use std::process::Output;
use std::sync::atomic::Ordering;

use canary_support::{HelloServer, Marker, assert_fails, manifest};
use testkit::plugins::{ensure_built, kubectl, run, stdout};

fn canary(args: &[&str]) -> Output {
    ensure_built(&["canary"]);
    run(kubectl().arg("canary").args(args))
}

#[test]
fn verify_matching_split_passes() {
    let server = HelloServer::start(0.25, Marker::Body);
    let output = canary(&[
        "verify",
        "--url",
        &server.url(),
        "-n",
        "200",
        "--canary-match",
        "version: v2",
        "--expect-weight",
        "25",
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains("Requests: 200 (0 failed)"), "{text}");
    assert!(
        text.contains("Canary:   50 (25.0%, 95% interval 19.5% to 31.4%)"),
        "{text}"
    );
    assert!(text.contains("Stable:   150 (75.0%)"), "{text}");
    assert!(
        text.contains("Expected: 25.0% (within the 95% interval)"),
        "{text}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 200);
}

#[test]
fn verify_mismatched_split_exits_one() {
    let server = HelloServer::start(0.25, Marker::Body);
    let output = canary(&[
        "verify",
        "--url",
        &server.url(),
        "-n",
        "200",
        "--canary-match",
        "version: v2",
        "--expect-weight",
        "50",
    ]);
    assert_fails(
        &output,
        1,
        "the observed canary share 25.0% disagrees with the expected 50.0%, which lies outside the 95% interval 19.5% to 31.4%",
    );
    assert!(stdout(&output).contains("Expected: 50.0% (outside the 95% interval)"));
}

#[test]
fn verify_classifies_by_response_header() {
    let server = HelloServer::start(0.1, Marker::Header);
    let output = canary(&[
        "verify",
        "--url",
        &server.url(),
        "--requests",
        "100",
        "--canary-header",
        "X-Version:v2",
        "--expect-weight",
        "10",
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON report");
    assert_eq!(report["requests"], 100);
    assert_eq!(report["canary"], 10);
    assert_eq!(report["stable"], 90);
    assert_eq!(report["agrees"], true);
}

#[test]
fn verify_sends_host_header_and_count() {
    let server = HelloServer::start(0.0, Marker::Body);
    let output = canary(&[
        "verify",
        "--url",
        &server.url(),
        "--host",
        "hello.world.test",
        "-n",
        "40",
        "--canary-match",
        "v2",
        "--expect-weight",
        "0",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 40);
    let hosts = server.hosts.lock().unwrap().clone();
    assert_eq!(hosts.len(), 40);
    assert!(hosts.iter().all(|h| h == "hello.world.test"), "{hosts:?}");
}

#[test]
fn verify_sends_headers_and_cookies() {
    let server = HelloServer::start(0.5, Marker::Body);
    let output = canary(&[
        "verify",
        "--url",
        &server.url(),
        "-n",
        "10",
        "--header",
        "X-Canary:always",
        "--cookie",
        "beta=always",
        "--cookie",
        "region=eu",
        "--canary-match",
        "v2",
    ]);
    assert!(output.status.success(), "{output:?}");
    let heads = server.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 10);
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("x-canary: always\r\n"), "{head}");
        assert!(
            lower.contains("cookie: beta=always; region=eu\r\n"),
            "{head}"
        );
    }
}

#[test]
fn verify_https_with_certificate_authority() {
    let (server, ca_pem) = HelloServer::start_tls(0.5, Marker::Body);
    let folder = tempfile::tempdir().unwrap();
    let ca_file = folder.path().join("ca.crt");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let url = format!("https://{}/", server.addr);

    let trusted = canary(&[
        "verify",
        "--url",
        &url,
        "-n",
        "20",
        "--canary-match",
        "v2",
        "--expect-weight",
        "50",
        "--certificate-authority",
        &ca_file.display().to_string(),
    ]);
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(
        stdout(&trusted).contains("Canary:   10 (50.0%"),
        "{}",
        stdout(&trusted)
    );

    let insecure = canary(&[
        "verify",
        "--url",
        &url,
        "-n",
        "4",
        "--canary-match",
        "v2",
        "--insecure-skip-tls-verify",
    ]);
    assert!(insecure.status.success(), "{insecure:?}");

    let untrusted = canary(&["verify", "--url", &url, "-n", "2", "--canary-match", "v2"]);
    assert_fails(&untrusted, 1, "all 2 requests");
    assert_fails(
        &canary(&[
            "verify",
            "--url",
            &url,
            "--canary-match",
            "v2",
            "--certificate-authority",
            "/nonexistent/ca.crt",
        ]),
        2,
        "failed to read --certificate-authority /nonexistent/ca.crt",
    );
}

#[test]
fn verify_unreachable_url_fails() {
    // Bind and drop a listener to get a loopback port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let output = canary(&["verify", "--url", &url, "-n", "5", "--canary-match", "v2"]);
    assert_fails(&output, 1, &format!("all 5 requests to {url} failed"));
}

#[test]
fn verify_bad_flags_are_usage_errors() {
    assert_fails(
        &canary(&[
            "verify",
            "--url",
            "http://127.0.0.1:1/",
            "-n",
            "many",
            "--canary-match",
            "v2",
        ]),
        2,
        "invalid -n \"many\"",
    );
    assert_fails(
        &canary(&[
            "verify",
            "--url",
            "http://127.0.0.1:1/",
            "--canary-match",
            "(",
        ]),
        2,
        "invalid --canary-match",
    );
    assert_fails(
        &canary(&[
            "verify",
            "--url",
            "http://127.0.0.1:1/",
            "--canary-match",
            "v2",
            "--expect-weight",
            "150",
        ]),
        2,
        "expected a percentage between 0 and 100",
    );
    assert_fails(
        &canary(&[
            "verify",
            "--url",
            "ftp://127.0.0.1/",
            "--canary-match",
            "v2",
        ]),
        2,
        "only http and https are supported",
    );
}

#[test]
fn convert_legacy_primary_exactly() {
    let output = canary(&[
        "convert",
        "-f",
        &manifest("helloworld-ingress-legacy.yaml")
            .display()
            .to_string(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let converted: serde_yaml::Value = serde_yaml::from_str(&stdout(&output)).expect("YAML output");
    let expected: serde_yaml::Value = serde_yaml::from_str(
        "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hello-world
  annotations:
    kubernetes.io/ingress.class: nginx
spec:
  rules:
  - host: hello.world.test
    http:
      paths:
      - backend:
          service:
            name: hello-world-svc
            port:
              number: 80
        pathType: ImplementationSpecific
",
    )
    .unwrap();
    assert_eq!(converted, expected);
}

#[test]
fn convert_legacy_canary_keeps_annotations() {
    let output = canary(&[
        "convert",
        "-f",
        &manifest("weight-ingress-legacy.yaml").display().to_string(),
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let converted: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON output");
    assert_eq!(converted["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        converted["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
        "50"
    );
    let backend = &converted["spec"]["rules"][0]["http"]["paths"][0]["backend"];
    assert_eq!(backend["service"]["name"], "hello-world-svc-v2");
    assert_eq!(backend["service"]["port"]["number"], 80);
    assert!(backend.get("serviceName").is_none());
}

#[test]
fn convert_missing_file_fails() {
    assert_fails(
        &canary(&["convert", "-f", "/nonexistent/ingress.yaml"]),
        1,
        "failed to read /nonexistent/ingress.yaml",
    );
}
