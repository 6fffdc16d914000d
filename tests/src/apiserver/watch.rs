//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events from a
//! resourceVersion, with selector-aware ADDED/DELETED transitions and 410 for expired versions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::handlers::{Filter, to_request_version};
use super::http::{ApiRequest, Reply, ServerState};
use super::resources::ResourceType;
use super::status::ApiError;
use super::store::{Event, EventType};
use super::table;

/// Maximum watch duration when the client sets no `timeoutSeconds`. kube-apiserver picks a
/// random duration between 30 and 60 minutes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What one watch sends: resource, namespace, selectors and output form.
struct Watcher {
    resource: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    filter: Filter,
    table: bool,
    /// Objects are sent as `PartialObjectMetadata`.
    metadata_only: bool,
    include_object: Option<String>,
    /// Column definitions go only into the first Table event, as kube-apiserver does.
    sent_columns: bool,
}

impl Watcher {
    fn selects(&self, event: &Event) -> bool {
        event.key.group == self.resource.storage_group
            && event.key.resource == self.resource.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == event.key.namespace)
            && self
                .name
                .as_ref()
                .is_none_or(|name| *name == event.key.name)
    }

    /// Maps a store event to what this watcher reports, if anything.
    fn translate(&self, event: &Event) -> Option<EventType> {
        if !self.selects(event) {
            return None;
        }
        let now = self.filter.matches(&event.object);
        let before = event
            .previous
            .as_ref()
            .map(|previous| self.filter.matches(previous));
        match (event.kind, before, now) {
            (EventType::Modified, Some(false), true) => Some(EventType::Added),
            (EventType::Modified, Some(true), false) => Some(EventType::Deleted),
            (EventType::Modified, Some(false), false) => None,
            (_, _, true) => Some(event.kind),
            _ => None,
        }
    }

    fn encode(&mut self, kind: &str, object: &Value) -> Bytes {
        let object = if self.table {
            let mut table = table::build(
                &self.resource,
                &[Arc::new(object.clone())],
                self.include_object.as_deref(),
                object["metadata"]["resourceVersion"].clone(),
                None,
            );
            if self.sent_columns {
                table["columnDefinitions"] = Value::Null;
            }
            self.sent_columns = true;
            table
        } else if self.metadata_only {
            super::handlers::partial_metadata(object)
        } else {
            to_request_version(&self.resource, object)
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
            .expect("JSON values serialize");
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// Starts a watch and returns the streaming reply.
pub(crate) fn start(
    state: &Arc<ServerState>,
    request: &ApiRequest,
    resource: &ResourceType,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Reply, ApiError> {
    if !resource.allows("watch") {
        return Err(ApiError::method_not_allowed());
    }
    let filter = Filter::from_request(request, resource)?;
    let timeout = match request.param("timeoutSeconds") {
        Some(text) if !text.is_empty() => Duration::from_secs(text.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds value {text:?}"))
        })?),
        _ => DEFAULT_TIMEOUT,
    };
    let requested = request.param("resourceVersion").unwrap_or("");
    let send_initial = request.param("sendInitialEvents") == Some("true");
    let mut watcher = Watcher {
        resource: resource.clone(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        filter,
        table: request.wants_table(),
        metadata_only: request.wants_metadata(),
        include_object: request.param("includeObject").map(str::to_string),
        sent_columns: false,
    };

    // Take the starting point and subscribe under one lock so no event falls in between.
    let mut initial = Vec::new();
    let (backlog, receiver, start_revision) = {
        let store = state.lock_store();
        let from = if requested.is_empty() || requested == "0" || send_initial {
            for object in store.list(&resource.storage_group, &resource.plural, namespace) {
                if watcher
                    .name
                    .as_ref()
                    .is_none_or(|n| n == super::meta::name_of(&object))
                    && watcher.filter.matches(&object)
                {
                    initial.push(object);
                }
            }
            store.revision()
        } else {
            requested.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {requested:?}"))
            })?
        };
        match store.watch_from(from) {
            Ok((backlog, receiver)) => (backlog, Ok(receiver), from),
            Err(oldest) => (Vec::new(), Err(oldest), from),
        }
    };

    let (sender, chunks) = mpsc::channel::<Bytes>(256);
    let bookmark = send_initial && request.param("allowWatchBookmarks") == Some("true");
    state.runtime.spawn(async move {
        let receiver = match receiver {
            Ok(receiver) => receiver,
            Err(oldest) => {
                // The requested version is older than the kept history.
                let error = ApiError::expired(start_revision, oldest);
                let line = format!(
                    "{}\n",
                    json!({"type": "ERROR", "object": error.to_status()})
                );
                let _ = sender.send(Bytes::from(line)).await;
                return;
            }
        };
        run(
            &mut watcher,
            sender,
            initial,
            backlog,
            receiver,
            timeout,
            bookmark,
            start_revision,
        )
        .await;
    });
    Ok(Reply::Stream("application/json", chunks))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    watcher: &mut Watcher,
    sender: mpsc::Sender<Bytes>,
    initial: Vec<Arc<Value>>,
    backlog: Vec<Arc<Event>>,
    mut receiver: broadcast::Receiver<Arc<Event>>,
    timeout: Duration,
    bookmark: bool,
    start_revision: u64,
) {
    for object in initial {
        if sender.send(watcher.encode("ADDED", &object)).await.is_err() {
            return;
        }
    }
    if bookmark {
        let object = json!({
            "kind": watcher.resource.kind,
            "apiVersion": watcher.resource.api_version(),
            "metadata": {"resourceVersion": start_revision.to_string(),
                         "annotations": {"k8s.io/initial-events-end": "true"}}
        });
        let line = format!("{}\n", json!({"type": "BOOKMARK", "object": object}));
        if sender.send(Bytes::from(line)).await.is_err() {
            return;
        }
    }
    for event in backlog {
        if let Some(kind) = watcher.translate(&event)
            && sender
                .send(watcher.encode(kind.as_str(), &event.object))
                .await
                .is_err()
        {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            _ = &mut deadline => return,
            _ = sender.closed() => return,
            event = receiver.recv() => event,
        };
        match event {
            Ok(event) => {
                if let Some(kind) = watcher.translate(&event)
                    && sender
                        .send(watcher.encode(kind.as_str(), &event.object))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            // A watcher that fell behind is closed; the client re-lists and watches again.
            Err(broadcast::error::RecvError::Lagged(_))
            | Err(broadcast::error::RecvError::Closed) => {
                return;
            }
        }
    }
}
