//! Object storage: JSON objects in a sorted map, a global resourceVersion counter, the recent
//! event history for watches, and an optional folder mirror written atomically.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept for watches that start from an older resourceVersion. A watch from before
/// the oldest kept event gets `410 Expired`, as from a compacted etcd.
const HISTORY_LIMIT: usize = 100_000;

/// Where an object is stored: its storage group, plural resource, namespace ("" when
/// cluster-scoped) and name. Sorting by this key makes a LIST a range scan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Key {
        Key {
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// Receives the events recorded after a subscription.
pub(crate) type EventReceiver = broadcast::Receiver<Arc<Event>>;

/// One change, as sent to watchers.
#[derive(Debug)]
pub(crate) struct Event {
    pub revision: u64,
    pub kind: EventType,
    pub key: Key,
    pub object: Arc<Value>,
    /// The object before a MODIFIED event, for watches whose selector it stops or starts matching.
    pub previous: Option<Arc<Value>>,
}

/// Cluster IPs and node ports held by the stored Services, each with its Service's
/// `(namespace, name)`. Kept in step with every write, so that an allocation looks values up
/// instead of reading every Service.
#[derive(Default)]
pub(crate) struct ServiceAllocations {
    pub cluster_ips: HashMap<String, (String, String)>,
    pub node_ports: HashMap<i64, (String, String)>,
}

impl ServiceAllocations {
    fn update(&mut self, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        if !(key.group.is_empty() && key.resource == "services") {
            return;
        }
        if let Some(old) = old {
            for ip in cluster_ips_of(old) {
                self.cluster_ips.remove(ip);
            }
            for port in node_ports_of(old) {
                self.node_ports.remove(&port);
            }
        }
        if let Some(new) = new {
            let holder = (key.namespace.clone(), key.name.clone());
            for ip in cluster_ips_of(new) {
                self.cluster_ips.insert(ip.to_string(), holder.clone());
            }
            for port in node_ports_of(new) {
                self.node_ports.insert(port, holder.clone());
            }
        }
    }
}

fn cluster_ips_of(service: &Value) -> impl Iterator<Item = &str> {
    service["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .into_iter()
}

fn node_ports_of(service: &Value) -> impl Iterator<Item = i64> + '_ {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|port| port["nodePort"].as_i64())
}

pub(crate) struct Store {
    objects: BTreeMap<Key, Arc<Value>>,
    services: ServiceAllocations,
    revision: u64,
    history: VecDeque<Arc<Event>>,
    /// The revision before the oldest event in `history`; watches from older revisions expire.
    compacted: u64,
    sender: broadcast::Sender<Arc<Event>>,
    state_dir: Option<PathBuf>,
}

impl Store {
    /// Creates a store, loading the objects persisted in `state_dir` if given.
    pub fn open(state_dir: Option<PathBuf>) -> Result<Store, String> {
        let (sender, _) = broadcast::channel(16_384);
        let mut store = Store {
            objects: BTreeMap::new(),
            services: ServiceAllocations::default(),
            revision: 1,
            history: VecDeque::new(),
            compacted: 1,
            sender,
            state_dir,
        };
        if let Some(dir) = store.state_dir.clone() {
            std::fs::create_dir_all(&dir).map_err(|error| {
                format!("failed to create state folder {}: {error}", dir.display())
            })?;
            store.load(&dir)?;
        }
        store.compacted = store.revision;
        Ok(store)
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// Returns the cluster IPs and node ports that stored Services hold.
    pub fn service_allocations(&self) -> &ServiceAllocations {
        &self.services
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.objects.contains_key(key)
    }

    /// Returns the objects of one resource, in one namespace or all, sorted by namespace and name.
    pub fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.list_keys(group, resource, namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Iterates over the keys and objects of one resource, optionally in one namespace.
    pub fn list_keys<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        let start = Key::new(group, resource, namespace.unwrap_or(""), "");
        self.objects.range(start..).take_while(move |(key, _)| {
            key.group == group
                && key.resource == resource
                && namespace.is_none_or(|ns| key.namespace == ns)
        })
    }

    /// Returns the keys of every object in a namespace, of any resource.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<Key> {
        self.objects
            .keys()
            .filter(|key| key.namespace == namespace)
            .cloned()
            .collect()
    }

    /// Stores an object under a new resourceVersion and records the event.
    pub fn put(&mut self, key: Key, mut object: Value, kind: EventType) -> Arc<Value> {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.revision.to_string());
        let object = Arc::new(object);
        self.persist(&key, Some(&object));
        let previous = self.objects.insert(key.clone(), object.clone());
        self.services
            .update(&key, previous.as_deref(), Some(&object));
        self.record(kind, key, object.clone(), previous);
        object
    }

    /// Removes an object; the DELETED event carries it with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &Key) -> Option<Arc<Value>> {
        let old = self.objects.remove(key)?;
        self.services.update(key, Some(&old), None);
        self.revision += 1;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(self.revision.to_string());
        let last = Arc::new(last);
        self.persist(key, None);
        self.record(EventType::Deleted, key.clone(), last.clone(), None);
        Some(last)
    }

    fn record(
        &mut self,
        kind: EventType,
        key: Key,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let event = Arc::new(Event {
            revision: self.revision,
            kind,
            key,
            object,
            previous,
        });
        if self.history.len() == HISTORY_LIMIT
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted = dropped.revision;
        }
        self.history.push_back(event.clone());
        // Sending fails only when no watcher is subscribed, which is harmless.
        let _ = self.sender.send(event);
    }

    /// Subscribes to events after `revision`: the already recorded ones are returned, later
    /// ones arrive on the receiver. Fails with the compaction revision when `revision` is too old.
    pub fn watch_from(&self, revision: u64) -> Result<(Vec<Arc<Event>>, EventReceiver), u64> {
        if revision < self.compacted {
            return Err(self.compacted);
        }
        let receiver = self.sender.subscribe();
        let backlog = self
            .history
            .iter()
            .filter(|event| event.revision > revision)
            .cloned()
            .collect();
        Ok((backlog, receiver))
    }

    /// Writes or removes the file of one object, by writing a temporary file and renaming it.
    fn persist(&self, key: &Key, object: Option<&Value>) {
        let Some(dir) = &self.state_dir else {
            return;
        };
        let folder = object_folder(dir, key);
        let path = folder.join(format!("{}.json", key.name));
        let result = match object {
            Some(object) => write_atomically(&folder, &path, object),
            None => match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
        };
        if let Err(error) = result {
            // NOTE: a failed write leaves memory and folder out of step; the request still
            // succeeds, as the folder only serves restarts.
            eprintln!(
                "test-apiserver: failed to persist {}: {error}",
                path.display()
            );
        }
    }

    fn load(&mut self, dir: &Path) -> Result<(), String> {
        let mut files = Vec::new();
        collect_json_files(dir, &mut files)
            .map_err(|error| format!("failed to read state folder {}: {error}", dir.display()))?;
        for path in files {
            let relative = path
                .strip_prefix(dir)
                .expect("file is under the state folder");
            let parts: Vec<&str> = relative.iter().filter_map(|part| part.to_str()).collect();
            let [group, resource, namespace, file] = parts.as_slice() else {
                continue;
            };
            let Some(name) = file.strip_suffix(".json") else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|error| format!("failed to read {}: {error}", path.display()))?;
            let object: Value = serde_json::from_str(&text)
                .map_err(|error| format!("invalid JSON in {}: {error}", path.display()))?;
            let revision = object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|rv| rv.parse::<u64>().ok())
                .unwrap_or(0);
            self.revision = self.revision.max(revision);
            let group = if *group == CORE_FOLDER { "" } else { group };
            let namespace = if *namespace == CLUSTER_FOLDER {
                ""
            } else {
                namespace
            };
            let key = Key::new(group, resource, namespace, name);
            self.services.update(&key, None, Some(&object));
            self.objects.insert(key, Arc::new(object));
        }
        Ok(())
    }
}

/// Folder name of the core group and of cluster-scoped objects in the state folder.
const CORE_FOLDER: &str = "core";
const CLUSTER_FOLDER: &str = "_cluster";

fn object_folder(dir: &Path, key: &Key) -> PathBuf {
    let group = if key.group.is_empty() {
        CORE_FOLDER
    } else {
        &key.group
    };
    let namespace = if key.namespace.is_empty() {
        CLUSTER_FOLDER
    } else {
        &key.namespace
    };
    dir.join(group).join(&key.resource).join(namespace)
}

fn write_atomically(folder: &Path, path: &Path, object: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let mut temp = tempfile::NamedTempFile::new_in(folder)?;
    serde_json::to_writer(&mut temp, object)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

fn collect_json_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}
