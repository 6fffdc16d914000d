//! Conformance of the local test API server: for each behaviour, what kube-apiserver (v1.30+)
//! returns, checked as status code and `Status` body over raw HTTP requests.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::{Method, Request};
use serde_json::{Value, json};
use testkit::apiserver::{ServerOptions, TestServer};

/// A raw HTTP client for one server, on its own tokio runtime.
struct Api {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

/// Status, `Retry-After` header and JSON body (or the text as a JSON string) of a response.
struct Answer {
    code: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Api {
    fn new(server: &TestServer) -> Api {
        Api::with_token(server, true)
    }

    fn with_token(server: &TestServer, authenticated: bool) -> Api {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = runtime.block_on(async {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(server.kubeconfig()).expect("kubeconfig");
            let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .expect("config");
            config.default_retry = false;
            if !authenticated {
                config.auth_info.token = None;
            }
            kube::Client::try_from(config).expect("client")
        });
        Api { runtime, client }
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
        accept: &str,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("Content-Type", content_type)
            .header("Accept", accept)
            .body(kube::client::Body::from(body.as_bytes().to_vec()))
            .expect("request");
        self.runtime.block_on(async {
            let response = self.client.send(request).await.expect("response");
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("Retry-After")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            Answer {
                code,
                retry_after,
                body,
            }
        })
    }

    fn get(&self, path: &str) -> Answer {
        self.send(
            Method::GET,
            path,
            "application/json",
            "",
            "application/json",
        )
    }

    fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::POST,
            path,
            "application/json",
            &body.to_string(),
            "application/json",
        )
    }

    fn put(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::PUT,
            path,
            "application/json",
            &body.to_string(),
            "application/json",
        )
    }

    fn patch(&self, path: &str, content_type: &str, body: Value) -> Answer {
        self.send(
            Method::PATCH,
            path,
            content_type,
            &body.to_string(),
            "application/json",
        )
    }

    fn delete(&self, path: &str) -> Answer {
        self.send(
            Method::DELETE,
            path,
            "application/json",
            "",
            "application/json",
        )
    }
}

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}
        }
    })
}

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

/// Real server: requests without credentials get 401 with reason Unauthorized.
#[test]
fn missing_token_is_unauthorized() {
    let server = TestServer::start(ServerOptions::default());
    let answer = Api::with_token(&server, false).get("/api/v1/namespaces");
    assert_eq!(answer.code, 401);
    assert_eq!(
        answer.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let version = Api::with_token(&server, false).get("/version");
    assert_eq!(version.code, 200, "/version is public on a default cluster");
}

/// Real server: 201 on create, 409 AlreadyExists on a second create of the same name.
#[test]
fn create_then_already_exists() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let created = api.post(CM, config_map("one"));
    assert_eq!(created.code, 201);
    assert_eq!(created.body["metadata"]["namespace"], "default");
    let again = api.post(CM, config_map("one"));
    assert_eq!(again.code, 409);
    assert_eq!(again.body["reason"], "AlreadyExists");
    assert_eq!(again.body["message"], "configmaps \"one\" already exists");
    assert_eq!(
        again.body["details"],
        json!({"name": "one", "kind": "configmaps"})
    );
}

/// Real server: creating in a namespace that does not exist is 404 for the namespace.
#[test]
fn create_in_missing_namespace_is_not_found() {
    let server = TestServer::start(ServerOptions::default());
    let answer = Api::new(&server).post("/api/v1/namespaces/nope/configmaps", config_map("x"));
    assert_eq!(answer.code, 404);
    assert_eq!(answer.body["message"], "namespaces \"nope\" not found");
    assert_eq!(
        answer.body["details"],
        json!({"name": "nope", "kind": "namespaces"})
    );
}

/// Real server: 422 Invalid naming the field, the value and the RFC 1123 rule.
#[test]
fn invalid_name_is_unprocessable() {
    let server = TestServer::start(ServerOptions::default());
    let answer = Api::new(&server).post(DEPLOY, deployment("Bad_Name"));
    assert_eq!(answer.code, 422);
    assert_eq!(answer.body["reason"], "Invalid");
    let message = answer.body["message"].as_str().expect("message");
    assert!(
        message.starts_with("Deployment.apps \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"),
        "{message}"
    );
    let cause = &answer.body["details"]["causes"][0];
    assert_eq!(cause["reason"], "FieldValueInvalid");
    assert_eq!(cause["field"], "metadata.name");
    assert_eq!(answer.body["details"]["group"], "apps");
    assert_eq!(answer.body["details"]["kind"], "Deployment");
}

/// Real server: generateName gets a five-character random suffix.
#[test]
fn generate_name_appends_suffix() {
    let server = TestServer::start(ServerOptions::default());
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "job-"}});
    let answer = Api::new(&server).post(CM, body);
    assert_eq!(answer.code, 201);
    let name = answer.body["metadata"]["name"].as_str().expect("name");
    assert_eq!(name.len(), "job-".len() + 5, "{name}");
    assert!(name.starts_with("job-"));
}

/// Real server: 404 NotFound with the qualified resource in the message.
#[test]
fn get_missing_is_not_found() {
    let server = TestServer::start(ServerOptions::default());
    let answer = Api::new(&server).get(&format!("{DEPLOY}/web"));
    assert_eq!(answer.code, 404);
    assert_eq!(
        answer.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "deployments.apps \"web\" not found", "reason": "NotFound",
               "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404})
    );
}

/// Real server: an update with a stale resourceVersion is 409 Conflict.
#[test]
fn stale_update_conflicts() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let created = api.post(CM, config_map("c"));
    let mut first = created.body.clone();
    first["data"]["k"] = json!("first");
    assert_eq!(api.put(&format!("{CM}/c"), first).code, 200);
    let mut stale = created.body.clone();
    stale["data"]["k"] = json!("second");
    let answer = api.put(&format!("{CM}/c"), stale);
    assert_eq!(answer.code, 409);
    assert_eq!(answer.body["reason"], "Conflict");
    assert_eq!(
        answer.body["message"],
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

/// Real server: resourceVersion increases on writes, generation only on spec changes.
#[test]
fn generation_tracks_spec_changes() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let created = api.post(DEPLOY, deployment("web"));
    assert_eq!(created.body["metadata"]["generation"], 1);
    let labelled = api.patch(
        &format!("{DEPLOY}/web"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"a": "b"}}}),
    );
    assert_eq!(labelled.body["metadata"]["generation"], 1);
    let scaled = api.patch(
        &format!("{DEPLOY}/web"),
        "application/strategic-merge-patch+json",
        json!({"spec": {"replicas": 2}}),
    );
    assert_eq!(scaled.body["metadata"]["generation"], 2);
    let before: u64 = created.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let after: u64 = scaled.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before);
}

/// Real server: `limit` pages carry a continue token and remainingItemCount until the end.
#[test]
fn list_pagination_and_selectors() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    for index in 0..5 {
        let mut body = config_map(&format!("page-{index}"));
        body["metadata"]["labels"] = json!({"parity": if index % 2 == 0 { "even" } else { "odd" }});
        assert_eq!(api.post(CM, body).code, 201);
    }
    let first = api.get(&format!("{CM}?labelSelector=parity&limit=2"));
    assert_eq!(first.body["kind"], "ConfigMapList");
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["metadata"]["remainingItemCount"], 3);
    let token = first.body["metadata"]["continue"]
        .as_str()
        .expect("continue token");
    let mut names: Vec<String> = Vec::new();
    let mut next = Some(token.to_string());
    names.extend(
        first.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
    );
    while let Some(token) = next {
        let page = api.get(&format!(
            "{CM}?labelSelector=parity&limit=2&continue={token}"
        ));
        names.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        next = page.body["metadata"]["continue"]
            .as_str()
            .map(str::to_string);
    }
    assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);

    let odd = api.get(&format!("{CM}?labelSelector=parity%3Dodd"));
    assert_eq!(odd.body["items"].as_array().unwrap().len(), 2);
    let field = api.get(&format!("{CM}?fieldSelector=metadata.name%21%3Dpage-0,metadata.namespace%3Ddefault&labelSelector=parity%20in%20(even)"));
    assert_eq!(field.body["items"].as_array().unwrap().len(), 2);
    let bad_field = api.get(&format!("{CM}?fieldSelector=spec.foo%3Dbar"));
    assert_eq!(bad_field.code, 400);
    assert_eq!(
        bad_field.body["message"],
        "field label not supported: spec.foo"
    );
    let revision = first.body["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion");
    assert!(revision.parse::<u64>().is_ok());
}

/// Real server: dryRun=All validates and responds like a write but stores nothing.
#[test]
fn dry_run_stores_nothing() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let answer = api.post(
        &format!("{CM}?dryRun=All&fieldValidation=Strict"),
        config_map("dry"),
    );
    assert_eq!(answer.code, 201);
    assert_eq!(answer.body["metadata"]["name"], "dry");
    assert_eq!(api.get(&format!("{CM}/dry")).code, 404);
    let bad = api.post(&format!("{CM}?dryRun=Some"), config_map("dry"));
    assert_eq!(bad.code, 400);
}

/// Real server: the main resource ignores status; /status changes only status; /scale works.
#[test]
fn status_and_scale_subresources() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let created = api.post(DEPLOY, deployment("web"));
    let mut with_status = created.body.clone();
    with_status["status"] = json!({"replicas": 7});
    let main = api.put(&format!("{DEPLOY}/web"), with_status.clone());
    assert_eq!(main.code, 200);
    assert!(main.body["status"]["replicas"].is_null());
    with_status["metadata"]["resourceVersion"] = main.body["metadata"]["resourceVersion"].clone();
    let status = api.put(&format!("{DEPLOY}/web/status"), with_status);
    assert_eq!(status.body["status"]["replicas"], 7);

    let scale = api.get(&format!("{DEPLOY}/web/scale"));
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    assert_eq!(scale.body["spec"]["replicas"], 1);
    assert_eq!(scale.body["status"]["selector"], "app=web");
    let scaled = api.patch(
        &format!("{DEPLOY}/web/scale"),
        "application/merge-patch+json",
        json!({"spec": {"replicas": 5}}),
    );
    assert_eq!(scaled.body["spec"]["replicas"], 5);
    assert_eq!(
        api.get(&format!("{DEPLOY}/web")).body["spec"]["replicas"],
        5
    );
}

/// Real server: cluster IPs come from the service CIDR, node ports from 30000-32767, and a
/// taken node port or a changed cluster IP is 422.
#[test]
fn service_allocation_and_immutability() {
    let server = TestServer::start(ServerOptions {
        service_cidr: "10.100.0.0/24".to_string(),
        ..ServerOptions::default()
    });
    let api = Api::new(&server);
    let path = "/api/v1/namespaces/default/services";
    let service = |name: &str, node_port: Option<u16>| {
        let mut port = json!({"port": 80});
        if let Some(node_port) = node_port {
            port["nodePort"] = json!(node_port);
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]}})
    };
    let first = api.post(path, service("first", Some(30080)));
    assert_eq!(first.code, 201);
    let ip = first.body["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP");
    assert!(ip.starts_with("10.100.0."), "{ip}");
    assert_eq!(first.body["spec"]["ports"][0]["targetPort"], 80);
    let auto = api.post(path, service("auto", None));
    let node_port = auto.body["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("node port");
    assert!((30000..=32767).contains(&node_port));

    let clash = api.post(path, service("clash", Some(30080)));
    assert_eq!(clash.code, 422);
    assert_eq!(
        clash.body["message"],
        "Service \"clash\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let out_of_range = api.post(path, service("low", Some(80)));
    assert_eq!(out_of_range.code, 422);

    // The API server's own Service has the first address, so asking for it again clashes.
    let kubernetes = api.get(&format!("{path}/kubernetes"));
    assert_eq!(kubernetes.body["spec"]["clusterIP"], "10.100.0.1");
    let mut duplicate_ip = service("duplicate-ip", None);
    duplicate_ip["spec"]["clusterIP"] = json!("10.100.0.1");
    let duplicate_ip = api.post(path, duplicate_ip);
    assert_eq!(duplicate_ip.code, 422);
    assert!(
        duplicate_ip.body["message"]
            .as_str()
            .unwrap()
            .contains("provided IP is already allocated")
    );

    let other_ip = if ip == "10.100.0.200" {
        "10.100.0.201"
    } else {
        "10.100.0.200"
    };
    let changed = api.patch(
        &format!("{path}/first"),
        "application/merge-patch+json",
        json!({"spec": {"clusterIP": other_ip}}),
    );
    assert_eq!(changed.code, 422);
    assert!(
        changed.body["message"]
            .as_str()
            .unwrap()
            .contains("may not change once set")
    );
}

/// Real server: Job selector/template, PVC spec and most StatefulSet fields are immutable.
#[test]
fn immutable_fields_are_rejected() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
    let created = api.post("/apis/batch/v1/namespaces/default/jobs", job);
    assert_eq!(created.code, 201);
    let uid = created.body["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        created.body["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    let changed = api.patch(
        "/apis/batch/v1/namespaces/default/jobs/once",
        "application/strategic-merge-patch+json",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "alpine"}]}}}}),
    );
    assert_eq!(changed.code, 422);
    assert!(
        changed.body["message"]
            .as_str()
            .unwrap()
            .contains("spec.template: Invalid value")
    );

    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    assert_eq!(
        api.post("/api/v1/namespaces/default/persistentvolumeclaims", pvc)
            .code,
        201
    );
    let grow = api.patch(
        "/api/v1/namespaces/default/persistentvolumeclaims/data",
        "application/merge-patch+json",
        json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
    );
    assert_eq!(grow.code, 200);
    let modes = api.patch(
        "/api/v1/namespaces/default/persistentvolumeclaims/data",
        "application/merge-patch+json",
        json!({"spec": {"accessModes": ["ReadWriteMany"]}}),
    );
    assert_eq!(modes.code, 422);
    assert!(
        modes.body["message"]
            .as_str()
            .unwrap()
            .contains("spec: Forbidden: spec is immutable after creation")
    );

    let mut set = deployment("db");
    set["kind"] = json!("StatefulSet");
    set["spec"]["serviceName"] = json!("db");
    assert_eq!(
        api.post("/apis/apps/v1/namespaces/default/statefulsets", set)
            .code,
        201
    );
    let service_name = api.patch(
        "/apis/apps/v1/namespaces/default/statefulsets/db",
        "application/merge-patch+json",
        json!({"spec": {"serviceName": "other"}}),
    );
    assert_eq!(service_name.code, 422);
    let replicas = api.patch(
        "/apis/apps/v1/namespaces/default/statefulsets/db",
        "application/merge-patch+json",
        json!({"spec": {"replicas": 3}}),
    );
    assert_eq!(replicas.code, 200);
}

/// Real server: deletecollection deletes what the selector matches and returns the list.
#[test]
fn delete_collection_by_label() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut body = config_map(name);
        body["metadata"]["labels"] = json!({"app": app});
        api.post(CM, body);
    }
    let deleted = api.delete(&format!("{CM}?labelSelector=app%3Dx"));
    assert_eq!(deleted.code, 200);
    assert_eq!(deleted.body["items"].as_array().unwrap().len(), 2);
    let left = api.get(&format!("{CM}?labelSelector=app"));
    assert_eq!(left.body["items"].as_array().unwrap().len(), 1);
    let missing = api.delete(&format!("{CM}/a"));
    assert_eq!(missing.code, 404);
}

/// Real server: a cluster starts with four namespaces; each namespace gets the default
/// ServiceAccount and kube-root-ca.crt; `default` cannot be deleted.
#[test]
fn namespace_defaults() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let list = api.get("/api/v1/namespaces");
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let created = api.post(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    );
    assert_eq!(created.body["status"]["phase"], "Active");
    assert_eq!(
        created.body["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert_eq!(
        api.get("/api/v1/namespaces/team/serviceaccounts/default")
            .code,
        200
    );
    let root_ca = api.get("/api/v1/namespaces/team/configmaps/kube-root-ca.crt");
    assert!(
        root_ca.body["data"]["ca.crt"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let protected = api.delete("/api/v1/namespaces/default");
    assert_eq!(protected.code, 403);
    assert_eq!(
        protected.body["message"],
        "namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
}

/// Real server: a watch from a resourceVersion streams ADDED, MODIFIED and DELETED in order.
#[test]
fn watch_streams_events_from_version() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let list = api.get(CM);
    let revision = list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let created = api.post(CM, config_map("w"));
    api.patch(
        &format!("{CM}/w"),
        "application/merge-patch+json",
        json!({"data": {"k": "2"}}),
    );
    api.delete(&format!("{CM}/w"));
    let stream = api.get(&format!(
        "{CM}?watch=true&resourceVersion={revision}&timeoutSeconds=1"
    ));
    let text = match &stream.body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("event JSON"))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{text}");
    assert_eq!(
        events[0]["object"]["metadata"]["uid"],
        created.body["metadata"]["uid"]
    );
    assert_eq!(events[1]["object"]["data"]["k"], "2");
}

/// Real server: a watch from a compacted resourceVersion gets an ERROR event with 410 Expired.
#[test]
fn watch_from_compacted_version_is_gone() {
    let state = tempfile::tempdir().expect("temp dir");
    let options = ServerOptions {
        state_dir: Some(state.path().to_path_buf()),
        ..ServerOptions::default()
    };
    let first = TestServer::start(options.clone());
    Api::new(&first).post(CM, config_map("old"));
    drop(first);
    // After a restart the history starts at the persisted revision, as after etcd compaction.
    let second = TestServer::start(options);
    let api = Api::new(&second);
    assert_eq!(
        api.get(&format!("{CM}/old")).body["data"]["k"],
        "v",
        "object survived the restart"
    );
    let stream = api.get(&format!(
        "{CM}?watch=true&resourceVersion=2&timeoutSeconds=1"
    ));
    let line = stream
        .body
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| stream.body.to_string());
    let event: Value = serde_json::from_str(line.lines().next().expect("one event")).expect("JSON");
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(
        event["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 2 (")
    );
}

/// Real server: an unknown resource in a served group is a NotFound Status, and an unknown
/// group is a plain 404. A server without aggregated discovery rejects a request for it alone.
#[test]
fn unknown_paths_and_discovery() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let unknown = api.get("/apis/apps/v1/namespaces/default/widgets");
    assert_eq!(unknown.code, 404);
    assert_eq!(
        unknown.body["message"],
        "the server could not find the requested resource"
    );
    assert_eq!(
        api.get("/apis/extensions/v1beta1/namespaces/default/ingresses")
            .code,
        404
    );
    let aggregated = api.send(
        Method::GET,
        "/apis",
        "application/json",
        "",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    );
    assert_eq!(aggregated.code, 406);
    let groups = api.get("/apis");
    let names: Vec<&str> = groups.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for group in [
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "policy",
        "autoscaling",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "scheduling.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
    ] {
        assert!(names.contains(&group), "{group} missing from {names:?}");
    }
    let core = api.get("/api/v1");
    let pods = core.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap()
        .clone();
    assert_eq!(
        pods,
        json!({"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"], "categories": ["all"], "storageVersionHash": pods["storageVersionHash"]})
    );
}

/// Real server: Table responses have column definitions and one row per object.
#[test]
fn table_response_for_kubectl() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    api.post(CM, config_map("t"));
    let table = api.send(
        Method::GET,
        CM,
        "application/json",
        "",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
    assert_eq!(table.body["kind"], "Table");
    assert_eq!(table.body["apiVersion"], "meta.k8s.io/v1");
    let columns: Vec<&str> = table.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Data", "Age"]);
    let row = table.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "t")
        .expect("row");
    assert_eq!(row["cells"][1], 1);
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
}

/// Removed Ingress versions are served only on request, stored as networking.k8s.io/v1 with
/// the exact conversion, and readable in both versions.
#[test]
fn legacy_ingress_versions_on_request() {
    let server = TestServer::start(ServerOptions {
        extra_group_versions: vec![
            "extensions/v1beta1".to_string(),
            "networking.k8s.io/v1beta1".to_string(),
        ],
        ..ServerOptions::default()
    });
    let api = Api::new(&server);
    let legacy = json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "a.test", "http": {"paths": [{"path": "/", "backend": {"serviceName": "web", "servicePort": 80}}]}}]}});
    let created = api.post(
        "/apis/extensions/v1beta1/namespaces/default/ingresses",
        legacy,
    );
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["apiVersion"], "extensions/v1beta1");
    let v1 = api.get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/web");
    assert_eq!(
        v1.body["spec"]["rules"][0]["http"]["paths"][0],
        json!({"path": "/", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 80}}}})
    );
    let beta = api.get("/apis/networking.k8s.io/v1beta1/namespaces/default/ingresses/web");
    assert_eq!(beta.body["apiVersion"], "networking.k8s.io/v1beta1");
    assert_eq!(
        beta.body["spec"]["rules"][0]["http"]["paths"][0]["backend"],
        json!({"serviceName": "web", "servicePort": 80})
    );
    let discovery = api.get("/apis/networking.k8s.io");
    assert_eq!(discovery.body["preferredVersion"]["version"], "v1");
}

/// Fault injection: the Nth request, a verb and resource, 429 with Retry-After, 403, latency.
#[test]
fn injected_faults() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let faults = server.faults();

    faults.fail_request(2, 500);
    assert_eq!(api.get(CM).code, 200);
    let failed = api.get(CM);
    assert_eq!(failed.code, 500);
    assert_eq!(failed.body["reason"], "InternalError");
    assert_eq!(api.get(CM).code, 200);

    faults.fail("list", "configmaps", 429, 2);
    let throttled = api.get(CM);
    assert_eq!(throttled.code, 429);
    assert_eq!(throttled.retry_after.as_deref(), Some("1"));
    assert_eq!(throttled.body["reason"], "TooManyRequests");
    assert_eq!(api.get(CM).code, 429);
    assert_eq!(api.get(CM).code, 200);
    assert_eq!(
        api.get(&format!("{CM}/kube-root-ca.crt")).code,
        200,
        "get is not list"
    );

    faults.fail("create", "configmaps", 403, 1);
    let forbidden = api.post(CM, config_map("f"));
    assert_eq!(forbidden.code, 403);
    assert_eq!(
        forbidden.body["message"],
        "configmaps is forbidden: User \"test-user\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );

    faults.latency(Duration::from_millis(300));
    let started = Instant::now();
    api.get(CM);
    assert!(started.elapsed() >= Duration::from_millis(300));
    faults.clear();
    let started = Instant::now();
    api.get(CM);
    assert!(started.elapsed() < Duration::from_millis(300));
}

/// Objects persist to the state folder as one JSON file each, written by rename.
#[test]
fn state_folder_holds_objects() {
    let state = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(ServerOptions {
        state_dir: Some(state.path().to_path_buf()),
        ..ServerOptions::default()
    });
    Api::new(&server).post(CM, config_map("kept"));
    let file = state.path().join("core/configmaps/default/kept.json");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("file written")).expect("JSON");
    assert_eq!(stored["data"]["k"], "v");
    Api::new(&server).delete(&format!("{CM}/kept"));
    assert!(!file.exists());
}

/// Real server: deleting an object with finalizers only sets deletionTimestamp; the update
/// that removes the last finalizer deletes it.
#[test]
fn finalizers_delay_deletion() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    let mut body = config_map("held");
    body["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    assert_eq!(api.post(CM, body).code, 201);

    let deleted = api.delete(&format!("{CM}/held"));
    assert_eq!(deleted.code, 200);
    assert!(deleted.body["metadata"]["deletionTimestamp"].is_string());
    let still = api.get(&format!("{CM}/held"));
    assert_eq!(still.code, 200);
    assert!(still.body["metadata"]["deletionTimestamp"].is_string());

    let released = api.patch(
        &format!("{CM}/held"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    );
    assert_eq!(released.code, 200);
    assert_eq!(api.get(&format!("{CM}/held")).code, 404);
}

/// Real server: `as=PartialObjectMetadataList` returns metadata only, as kube's metadata API uses.
#[test]
fn metadata_only_list() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    api.post(CM, config_map("meta"));
    let list = api.send(
        Method::GET,
        CM,
        "application/json",
        "",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
    );
    assert_eq!(list.body["kind"], "PartialObjectMetadataList");
    let item = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "meta")
        .expect("item")
        .clone();
    assert_eq!(item["kind"], "PartialObjectMetadata");
    assert!(item["data"].is_null());
}

/// Real server: a label value outside the label syntax is 422 on metadata.labels.
#[test]
fn invalid_label_is_unprocessable() {
    let server = TestServer::start(ServerOptions::default());
    let mut body = config_map("labelled");
    body["metadata"]["labels"] = json!({"app": "bad value"});
    let answer = Api::new(&server).post(CM, body);
    assert_eq!(answer.code, 422);
    let message = answer.body["message"].as_str().expect("message");
    assert!(
        message.starts_with("ConfigMap \"labelled\" is invalid: metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string"),
        "{message}"
    );
}

/// Real server: a failed JSON patch `test` is 422 with a generic message; a patch whose path
/// does not exist is 400.
#[test]
fn json_patch_failures() {
    let server = TestServer::start(ServerOptions::default());
    let api = Api::new(&server);
    api.post(CM, config_map("p"));
    let failed_test = api.patch(
        &format!("{CM}/p"),
        "application/json-patch+json",
        json!([{"op": "test", "path": "/data/k", "value": "other"}]),
    );
    assert_eq!(failed_test.code, 422);
    assert_eq!(failed_test.body["reason"], "Invalid");
    assert_eq!(
        failed_test.body["message"],
        "the server rejected our request due to an error in our request"
    );
    let missing = api.patch(
        &format!("{CM}/p"),
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
    );
    assert_eq!(missing.code, 400);
    assert_eq!(missing.body["reason"], "BadRequest");
}
