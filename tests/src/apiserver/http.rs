//! The HTTP(S) front end: listening, TLS, bearer-token authentication, fault injection and
//! routing of paths to discovery documents or resource handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::faults::FaultInjector;
use super::resources::Registry;
use super::status::ApiError;
use super::store::Store;
use super::{ServerOptions, certs, crd, discovery, handlers, kubelet};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Everything the request handlers share.
pub(crate) struct ServerState {
    pub options: ServerOptions,
    pub token: String,
    pub store: Mutex<Store>,
    pub registry: RwLock<Registry>,
    pub faults: FaultInjector,
    pub kubelet: kubelet::Kubelet,
    /// Runtime that runs the server, for background work started by requests.
    pub runtime: tokio::runtime::Handle,
    /// The generated CA in PEM form, published in each namespace's `kube-root-ca.crt`.
    pub ca_pem: String,
    /// Weak reference to the `Arc` holding this state, for background tasks.
    self_ref: std::sync::OnceLock<std::sync::Weak<ServerState>>,
}

impl ServerState {
    pub fn lock_store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the shared handle of this state; `None` only while the server shuts down.
    pub fn arc(&self) -> Option<Arc<ServerState>> {
        self.self_ref.get().and_then(std::sync::Weak::upgrade)
    }

    pub fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A started server, before it is wrapped into a `TestServer`.
pub(crate) struct Started {
    pub url: String,
    pub token: String,
    pub state: Arc<ServerState>,
    pub shutdown: oneshot::Sender<()>,
    pub thread: JoinHandle<()>,
}

/// Binds the listener, prepares state and certificates, writes the kubeconfig and starts
/// serving on a new thread.
pub(crate) fn start(options: ServerOptions, kubeconfig: &Path) -> Result<Started, String> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    // The CA is generated in plain HTTP mode too, for the `kube-root-ca.crt` ConfigMaps.
    let generated = certs::generate()?;
    let ca_pem = generated.ca_pem.clone();
    let tls = if options.plain_http {
        None
    } else {
        Some(generated)
    };
    let registry = Registry::new(&options.extra_group_versions)?;
    super::admission::parse_cidr(&options.service_cidr)
        .map_err(|error| format!("invalid service CIDR {:?}: {error}", options.service_cidr))?;
    let store = Store::open(options.state_dir.clone())?;

    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|error| format!("failed to listen on {}: {error}", options.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|error| format!("failed to configure the listener: {error}"))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("failed to read the bound address: {error}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{address}");
    certs::write_kubeconfig(
        kubeconfig,
        &url,
        tls.as_ref().map(|tls| tls.ca_pem.as_str()),
        &token,
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("test-apiserver")
        .enable_all()
        .build()
        .map_err(|error| format!("failed to start the tokio runtime: {error}"))?;
    let state = Arc::new(ServerState {
        kubelet: kubelet::Kubelet::new(options.kubelet.clone()),
        options,
        token: token.clone(),
        store: Mutex::new(store),
        registry: RwLock::new(registry),
        faults: FaultInjector::default(),
        runtime: runtime.handle().clone(),
        ca_pem,
        self_ref: std::sync::OnceLock::new(),
    });
    let _ = state.self_ref.set(Arc::downgrade(&state));
    handlers::bootstrap(&state)?;
    crd::restore(&state);
    kubelet::register_nodes(&state);

    let (shutdown, shutdown_receiver) = oneshot::channel();
    let thread_state = state.clone();
    let thread = std::thread::Builder::new()
        .name("test-apiserver".to_string())
        .spawn(move || {
            runtime.block_on(serve(thread_state, listener, tls, shutdown_receiver));
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
        })
        .map_err(|error| format!("failed to start the server thread: {error}"))?;
    Ok(Started {
        url,
        token,
        state,
        shutdown,
        thread,
    })
}

async fn serve(
    state: Arc<ServerState>,
    listener: std::net::TcpListener,
    tls: Option<certs::Tls>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("test-apiserver: failed to register the listener: {error}");
            return;
        }
    };
    let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.config));
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("test-apiserver: accept failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, request).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            // Connection errors (clients going away mid-watch) are normal and not logged.
            match acceptor {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = builder.serve_connection(io, service).await;
                    }
                }
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = builder.serve_connection(io, service).await;
                }
            }
        });
    }
}

/// A parsed API request.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub content_type: String,
    pub accept: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl ApiRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    /// True for `as=PartialObjectMetadata` or `as=PartialObjectMetadataList` requests.
    pub fn wants_metadata(&self) -> bool {
        self.accept.contains("as=PartialObjectMetadata")
    }
}

/// A handler's result before it becomes an HTTP response.
pub(crate) enum Reply {
    Json(u16, Value),
    /// Already serialized JSON (large lists).
    Raw(u16, Bytes),
    /// A 200 body of another media type.
    Binary(&'static str, Bytes),
    /// A chunked stream of pre-serialized pieces (watch events, logs).
    Stream(&'static str, mpsc::Receiver<Bytes>),
    Text(u16, String),
}

async fn handle(state: Arc<ServerState>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    };

    if !is_public(&path) && !authorized(&parts.headers, &state.token) {
        return respond(Reply::from(ApiError::unauthorized()), None);
    }

    // Injected faults apply to authenticated requests, before the body is read.
    let (verb, resource) = handlers::classify(&parts.method, &path, &query);
    let decision = state.faults.decide(&verb, &resource);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(code) = decision.fail_with {
        let error = injected_error(code, &verb, &resource, &path);
        let retry_after = error.retry_after;
        return respond(Reply::from(error), retry_after);
    }

    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return respond(
                Reply::from(ApiError::bad_request(format!(
                    "failed to read the request body: {error}"
                ))),
                None,
            );
        }
    };
    let request = ApiRequest {
        method: parts.method.clone(),
        path,
        query,
        content_type: header(hyper::header::CONTENT_TYPE),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        body,
    };
    let reply = route(&state, &request).await;
    respond(reply, None)
}

/// Paths that a default cluster serves to unauthenticated clients too.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

fn authorized(headers: &hyper::HeaderMap, token: &str) -> bool {
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == token)
}

fn injected_error(code: u16, verb: &str, resource: &str, path: &str) -> ApiError {
    match code {
        429 => ApiError::too_many_requests(1),
        403 => {
            let (group, namespace, name) = handlers::describe_path(path);
            let plural = resource.split('/').next().unwrap_or(resource);
            let target = super::status::Target {
                group: &group,
                resource: plural,
                name: &name,
            };
            ApiError::forbidden(target, verb, &namespace, "test-user")
        }
        500 => ApiError::internal("injected fault"),
        other => {
            let mut error = ApiError::internal("injected fault");
            error.code = other;
            error
        }
    }
}

async fn route(state: &Arc<ServerState>, request: &ApiRequest) -> Reply {
    let segments: Vec<&str> = request
        .path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    match segments.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => Reply::Text(200, "ok".to_string()),
        ["version"] => Reply::Json(200, discovery::version()),
        ["openapi", "v2"] => discovery::openapi_v2(&request.accept),
        ["openapi", "v3"] => Reply::Json(200, discovery::openapi_root(&state.registry())),
        ["openapi", "v3", rest @ ..] => {
            match discovery::openapi_group_version(&state.registry(), rest) {
                Some(document) => Reply::Json(200, document),
                None => Reply::Text(404, "404 page not found\n".to_string()),
            }
        }
        _ => {
            let discovered = discovery::route(&state.registry(), &segments, request);
            match discovered {
                Some(reply) => reply,
                None => handlers::dispatch(state, request, &segments).await,
            }
        }
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Reply {
        Reply::Json(error.code, error.to_status())
    }
}

fn respond(reply: Reply, retry_after: Option<u64>) -> Response<Body> {
    let mut builder = Response::builder();
    if let Some(seconds) = retry_after {
        builder = builder.header("Retry-After", seconds.to_string());
    }
    let (status, content_type, body): (u16, &str, Body) = match reply {
        Reply::Json(code, value) => {
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            (
                code,
                "application/json",
                Full::new(Bytes::from(bytes)).boxed_unsync(),
            )
        }
        Reply::Raw(code, bytes) => (code, "application/json", Full::new(bytes).boxed_unsync()),
        Reply::Binary(content_type, bytes) => (200, content_type, Full::new(bytes).boxed_unsync()),
        Reply::Text(code, text) => (
            code,
            "text/plain; charset=utf-8",
            Full::new(Bytes::from(text)).boxed_unsync(),
        ),
        Reply::Stream(content_type, receiver) => {
            let stream = futures::stream::unfold(receiver, |mut receiver| async move {
                receiver
                    .recv()
                    .await
                    .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), receiver))
            });
            (200, content_type, StreamBody::new(stream).boxed_unsync())
        }
    };
    builder
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(body)
        .expect("response parts are valid")
}

/// Parses a query string, percent-decoding names and values; later duplicates win.
pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        decoded.push(byte);
                        index += 2;
                    }
                    Err(_) => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let query = parse_query("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=5");
        assert_eq!(query["labelSelector"], "app=web,tier in (a)");
        assert_eq!(query["limit"], "5");
    }

    #[test]
    fn trailing_percent_is_kept() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%41"), "aA");
    }
}
