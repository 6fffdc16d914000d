//! Throughput of the local test API server: CREATE and LIST objects per second for 10,000
//! ConfigMaps, through the kube client as the plugins use it. Run with
//! `cargo bench -p kubectl-plugins-tests --bench apiserver`.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use testkit::apiserver::{ServerOptions, TestServer};

/// Objects created and listed.
const OBJECTS: usize = 10_000;
/// Requests in flight while creating.
const CONCURRENCY: usize = 16;
/// Full LIST requests timed.
const LIST_ROUNDS: usize = 5;

fn config_map(index: usize) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("bench-{index:05}"), "labels": {"app": "bench", "shard": (index % 10).to_string()}},
        "data": {"index": index.to_string(), "payload": "x".repeat(200)}
    }))
    .expect("valid ConfigMap")
}

async fn client(server: &TestServer) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn main() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");

        let started = Instant::now();
        futures::stream::iter(0..OBJECTS)
            .map(|index| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &config_map(index)).await }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
            .expect("creates succeed");
        let create = started.elapsed();

        let started = Instant::now();
        for _ in 0..LIST_ROUNDS {
            let list = api.list(&ListParams::default().labels("app=bench")).await.expect("list");
            assert_eq!(list.items.len(), OBJECTS);
        }
        let list = started.elapsed();

        let started = Instant::now();
        let mut seen = 0;
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.expect("page");
            seen += page.items.len();
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        let paged = started.elapsed();

        let rate = |count: usize, elapsed: std::time::Duration| count as f64 / elapsed.as_secs_f64();
        println!("objects: {OBJECTS} ConfigMaps of about 400 bytes, client and server on one machine");
        println!(
            "CREATE: {:.0} objects/s ({} in flight, {:.2} s)",
            rate(OBJECTS, create),
            CONCURRENCY,
            create.as_secs_f64()
        );
        println!(
            "LIST:   {:.0} objects/s (one request of {OBJECTS} with a label selector, {LIST_ROUNDS} rounds, {:.3} s each)",
            rate(OBJECTS * LIST_ROUNDS, list),
            list.as_secs_f64() / LIST_ROUNDS as f64
        );
        println!(
            "LIST:   {:.0} objects/s (pages of 500, {seen} objects, {:.3} s)",
            rate(seen, paged),
            paged.as_secs_f64()
        );
    });
}
