//! A real concurrent modification against the local test API server. Another writer changes the
//! object between the plugin's read and its write, so the write fails with 409 Conflict. The
//! plugin then retries on the fresh object and keeps the other writer's change.

use std::process::Command;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kubectl_canary::cluster::{Updated, update_with};
use testkit::apiserver::{ServerOptions, TestServer};

const CANARY: &str = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  namespace: demo
  annotations:
    nginx.ingress.kubernetes.io/canary: 'true'
    nginx.ingress.kubernetes.io/canary-weight: '10'
spec:
  rules:
  - host: web.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web-v2, port: {number: 80}}}}]}
";

async fn client_for(server: &TestServer) -> Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client builds")
}

fn weight_of(ingress: &Ingress) -> Option<String> {
    ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("nginx.ingress.kubernetes.io/canary-weight"))
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_write_retried_without_lost_update() {
    let server = TestServer::start(ServerOptions::default());
    let client = client_for(&server).await;
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "demo"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    let api: Api<Ingress> = Api::namespaced(client, "demo");
    let canary: Ingress = serde_yaml::from_str(CANARY).unwrap();
    api.create(&PostParams::default(), &canary)
        .await
        .expect("canary created");

    let kubeconfig = server.kubeconfig().display().to_string();
    let mut calls = 0;
    let outcome = update_with(
        &api,
        "Ingress",
        "web-canary",
        false,
        |ingress: &mut Ingress| {
            calls += 1;
            if calls == 1 {
                // Another writer changes the object after this read and before this write.
                let status = Command::new("kubectl")
                    .args(["annotate", "ingress", "web-canary", "team=payments"])
                    .args(["--kubeconfig", &kubeconfig, "-n", "demo"])
                    .env("KUBECONFIG", "/nonexistent/kubeconfig-for-tests")
                    .status()
                    .expect("kubectl runs");
                assert!(status.success(), "kubectl annotate failed");
            }
            ingress
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(
                    "nginx.ingress.kubernetes.io/canary-weight".into(),
                    "20".into(),
                );
            Ok(())
        },
    )
    .await
    .expect("update succeeds after the conflict");

    assert_eq!(calls, 2, "the change ran once per read");
    let Updated::Written(stored) = outcome else {
        panic!("expected a write");
    };
    assert_eq!(weight_of(&stored).as_deref(), Some("20"));
    let annotations = stored.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("team").map(String::as_str),
        Some("payments")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_object_not_written() {
    let server = TestServer::start(ServerOptions::default());
    let client = client_for(&server).await;
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "demo"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    let api: Api<Ingress> = Api::namespaced(client, "demo");
    let created = api
        .create(
            &PostParams::default(),
            &serde_yaml::from_str::<Ingress>(CANARY).unwrap(),
        )
        .await
        .expect("canary created");

    let outcome = update_with(&api, "Ingress", "web-canary", false, |_: &mut Ingress| {
        Ok(())
    })
    .await
    .expect("no-op update succeeds");
    let Updated::Unchanged(current) = outcome else {
        panic!("expected no write");
    };
    assert_eq!(
        current.metadata.resource_version,
        created.metadata.resource_version
    );
}
