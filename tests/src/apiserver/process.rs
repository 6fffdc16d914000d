//! Containers of configured local images run as real processes: their output becomes the
//! `pods/log` of the pod, and their exit code its terminal phase.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use super::http::{ApiRequest, Reply, ServerState};
use super::meta;
use super::pod_volumes::Mount;
use super::private_root::{self, Privileges, RootSpec};
use super::status::ApiError;
use super::store::{EventType, Key};

/// Combined stdout and stderr of a container, growing while it runs.
#[derive(Default)]
pub(crate) struct LogBuffer {
    data: Mutex<Vec<u8>>,
    changed: Notify,
    finished: AtomicBool,
}

impl LogBuffer {
    fn append(&self, bytes: &[u8]) {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        self.changed.notify_waiters();
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn read_from(&self, offset: usize) -> Vec<u8> {
        let data = self
            .data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        data.get(offset..).map(<[u8]>::to_vec).unwrap_or_default()
    }
}

/// A started container process.
pub(crate) struct LocalProcess {
    pub log: Arc<LogBuffer>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

impl LocalProcess {
    /// Asks the supervising task to kill the process; a finished process is left alone.
    pub fn kill(&self) {
        if let Some(kill) = self
            .kill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            let _ = kill.send(());
        }
    }
}

/// How a container ended.
pub(crate) enum Outcome {
    Exited(i32),
    DeadlineExceeded,
    Killed,
    StartFailed(String),
}

/// Fails a pod that is not run locally with `DeadlineExceeded` once its
/// `activeDeadlineSeconds` have passed, unless it reached a terminal phase before. This covers
/// simulated containers and pods left Pending on their node because a volume cannot be mounted.
pub(crate) fn enforce_deadline(state: &Arc<ServerState>, pod: &Value) {
    let Some(seconds) = pod["spec"]["activeDeadlineSeconds"].as_u64() else {
        return;
    };
    let namespace = meta::namespace_of(pod).to_string();
    let name = meta::name_of(pod).to_string();
    let uid = pod["metadata"]["uid"].clone();
    let started = pod["status"]["startTime"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let task_state = state.clone();
    state.runtime.spawn(async move {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let running = task_state
            .lock_store()
            .get(&Key::new("", "pods", &namespace, &name))
            .is_some_and(|pod| {
                pod["metadata"]["uid"] == uid
                    && matches!(pod["status"]["phase"].as_str(), Some("Running" | "Pending"))
            });
        if running {
            finish_pod(
                &task_state,
                &namespace,
                &name,
                &uid,
                &started,
                Outcome::DeadlineExceeded,
            );
        }
    });
}

/// Runs the single container of `pod` as a local process with `bin_dir` first on `PATH`.
/// With `mounts` (a pod with claims) the process gets a private root in which its volumes
/// are mounted. Without them it starts directly in the host's file tree.
pub(crate) fn start_local_process(
    state: &Arc<ServerState>,
    pod: &Value,
    bin_dir: &Path,
    mounts: Option<Vec<Mount>>,
) {
    let namespace = meta::namespace_of(pod).to_string();
    let name = meta::name_of(pod).to_string();
    let container = pod["spec"]["containers"][0].clone();
    let mut argv: Vec<String> = Vec::new();
    for field in ["command", "args"] {
        if let Some(items) = container[field].as_array() {
            argv.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
    }
    let deadline = pod["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(Duration::from_secs);
    let log = Arc::new(LogBuffer::default());
    let (kill_sender, kill_receiver) = oneshot::channel();
    state
        .kubelet
        .processes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(
            (namespace.clone(), name.clone()),
            LocalProcess {
                log: log.clone(),
                kill: Mutex::new(Some(kill_sender)),
            },
        );

    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths).unwrap_or(path);
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    // NOTE: only literal `value` entries are set; `valueFrom` is not resolved.
                    Some((
                        item["name"].as_str()?.to_string(),
                        item["value"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let working_dir = container["workingDir"].as_str().unwrap_or("/").to_string();
    let settings = RootSettings {
        read_only_root: container["securityContext"]["readOnlyRootFilesystem"] == true,
        privileges: Privileges::of_pod(pod),
    };
    let uid = pod["metadata"]["uid"].clone();
    let task_state = state.clone();
    state.runtime.spawn(async move {
        let started = meta::now();
        // The private root's folder lives until the process has ended, also when it is killed
        // or this task is dropped with the runtime.
        let (prepared, root_folder) = if argv.is_empty() {
            let message = "no command or args set for a container of a local image";
            (Err(message.to_string()), None)
        } else {
            prepare_command(&argv, &working_dir, mounts.as_deref(), &uid, &settings)
        };
        let outcome = match prepared {
            Err(message) => Outcome::StartFailed(message),
            Ok(command) => {
                let program = command.as_std().get_program().to_owned();
                match spawn(command, &path, env, &log) {
                    Ok((child, drained)) => {
                        let outcome = supervise(child, deadline, kill_receiver).await;
                        // Output still in the pipe belongs in the log before the phase changes.
                        // A leftover child that keeps the pipe open delays this by the timeout only.
                        let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
                        outcome
                    }
                    Err(error) => {
                        Outcome::StartFailed(format!("failed to start {program:?}: {error}"))
                    }
                }
            }
        };
        drop(root_folder);
        log.finish();
        finish_pod(&task_state, &namespace, &name, &uid, &started, outcome);
    });
}

/// Container settings that only a process in a private root gets.
struct RootSettings {
    read_only_root: bool,
    privileges: Privileges,
}

/// Builds the command of a container: inside a private root when the pod has `mounts`, which
/// also returns the root's temporary folder, else directly in `working_dir`.
fn prepare_command(
    argv: &[String],
    working_dir: &str,
    mounts: Option<&[Mount]>,
    uid: &Value,
    settings: &RootSettings,
) -> (
    Result<tokio::process::Command, String>,
    Option<tempfile::TempDir>,
) {
    let Some(mounts) = mounts else {
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).current_dir(working_dir);
        return (Ok(command), None);
    };
    let folder = tempfile::Builder::new()
        .prefix(&format!("test-kubelet-{}-", uid.as_str().unwrap_or("")))
        .tempdir();
    let folder = match folder {
        Ok(folder) => folder,
        Err(error) => {
            let message = format!("failed to create the private root folder: {error}");
            return (Err(message), None);
        }
    };
    let spec = RootSpec {
        folder: folder.path(),
        mounts,
        working_dir,
        read_only_root: settings.read_only_root,
        privileges: &settings.privileges,
    };
    (private_root::command(&spec, argv), Some(folder))
}

/// Starts the process with stdout and stderr on one pipe, so the log keeps their order,
/// and copies that pipe into the log on a thread, which reports when the pipe is drained.
fn spawn(
    mut command: tokio::process::Command,
    path: &std::ffi::OsStr,
    env: Vec<(String, String)>,
    log: &Arc<LogBuffer>,
) -> std::io::Result<(tokio::process::Child, oneshot::Receiver<()>)> {
    let (mut reader, writer) = std::io::pipe()?;
    command
        .env("PATH", path)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .kill_on_drop(true);
    let child = command.spawn()?;
    // The command keeps copies of the write ends, so it is dropped for the reader to see end of file.
    drop(command);
    let log = log.clone();
    let (drained_sender, drained) = oneshot::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buffer = [0u8; 8192];
        while let Ok(count) = reader.read(&mut buffer) {
            if count == 0 {
                break;
            }
            log.append(&buffer[..count]);
        }
        let _ = drained_sender.send(());
    });
    Ok((child, drained))
}

async fn supervise(
    mut child: tokio::process::Child,
    deadline: Option<Duration>,
    kill: oneshot::Receiver<()>,
) -> Outcome {
    let deadline_sleep =
        tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
    tokio::pin!(deadline_sleep);
    let outcome = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Outcome::Exited(status.code().unwrap_or(128 + 9)),
            Err(error) => Outcome::StartFailed(format!("failed to wait for the process: {error}")),
        },
        _ = &mut deadline_sleep, if deadline.is_some() => {
            let _ = child.kill().await;
            Outcome::DeadlineExceeded
        }
        _ = kill => {
            let _ = child.kill().await;
            Outcome::Killed
        }
    };
    outcome
}

/// Writes the terminal status of a pod whose process ended.
pub(crate) fn finish_pod(
    state: &ServerState,
    namespace: &str,
    name: &str,
    uid: &Value,
    started: &str,
    outcome: Outcome,
) {
    let (phase, exit_code, reason, message) = match outcome {
        Outcome::Killed => return,
        Outcome::Exited(0) => ("Succeeded", 0, "Completed", None),
        Outcome::Exited(code) => ("Failed", code, "Error", None),
        Outcome::DeadlineExceeded => (
            "Failed",
            137,
            "DeadlineExceeded",
            Some("Pod was active on the node longer than the specified deadline".to_string()),
        ),
        Outcome::StartFailed(message) => ("Failed", 128, "StartError", Some(message)),
    };

    let mut store = state.lock_store();
    let key = Key::new("", "pods", namespace, name);
    let Some(pod) = store.get(&key) else {
        return;
    };
    if pod["metadata"]["uid"] != *uid {
        return;
    }

    let now = meta::now();
    let mut updated = (*pod).clone();
    let status = &mut updated["status"];
    status["phase"] = json!(phase);
    if reason == "DeadlineExceeded" {
        status["reason"] = json!("DeadlineExceeded");
        status["message"] = json!(message.clone().unwrap_or_default());
    }
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for condition in conditions {
            if condition["type"] == "Ready" || condition["type"] == "ContainersReady" {
                condition["status"] = json!("False");
                condition["reason"] = json!("PodCompleted");
                condition["lastTransitionTime"] = json!(now);
            }
        }
    }
    let containers = status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
        .map(|list| list.iter_mut())
        .into_iter()
        .flatten();
    // Containers that never started (waiting for their volumes) keep their waiting state.
    for container in containers.filter(|container| container["state"].get("waiting").is_none()) {
        let mut terminated = json!({
            "exitCode": exit_code,
            "reason": if reason == "DeadlineExceeded" { "Error" } else { reason },
            "startedAt": started,
            "finishedAt": now,
            "containerID": container["containerID"],
        });
        if let Some(message) = &message {
            terminated["message"] = json!(message);
        }
        container["state"] = json!({"terminated": terminated});
        container["ready"] = json!(false);
        container["started"] = json!(false);
    }
    store.put(key, updated, EventType::Modified);
    super::endpoints::sync(&mut store, namespace);
}

/// Keeps the last `tailLines` lines of a log; the whole log when the parameter is absent.
fn tail_lines(text: &str, tail: Option<&str>) -> Result<String, ApiError> {
    let Some(tail) = tail.filter(|t| !t.is_empty()) else {
        return Ok(text.to_string());
    };
    let count: usize = tail.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid tailLines value {tail:?}: expected a non-negative integer"
        ))
    })?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    Ok(lines[lines.len().saturating_sub(count)..].concat())
}

/// Serves `GET .../pods/NAME/log`: the output of a local process, or an empty log for pods
/// whose containers are only simulated.
pub(crate) async fn pod_log(
    state: &Arc<ServerState>,
    request: &ApiRequest,
    namespace: &str,
    name: &str,
) -> Result<Reply, ApiError> {
    let pod = state
        .lock_store()
        .get(&Key::new("", "pods", namespace, name))
        .ok_or_else(|| super::kubelet::pod_not_found(name))?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match request.param("container") {
        Some(container) if !container.is_empty() && !containers.iter().any(|c| c == container) => {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
        None | Some("") if containers.len() > 1 => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
        _ => {}
    }
    let waiting = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|status| status["state"]["waiting"]["reason"].as_str());
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) || waiting.is_some() {
        return Err(ApiError::bad_request(format!(
            "container \"{}\" in pod \"{name}\" is waiting to start: {}",
            containers.first().map(String::as_str).unwrap_or(""),
            waiting.unwrap_or("ContainerCreating")
        )));
    }
    let log = state
        .kubelet
        .processes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&(namespace.to_string(), name.to_string()))
        .map(|process| process.log.clone());
    let Some(log) = log else {
        return Ok(Reply::Text(200, String::new()));
    };
    let follow = matches!(request.param("follow"), Some("true" | "1"));
    if !follow {
        let text = String::from_utf8_lossy(&log.read_from(0)).into_owned();
        return Ok(Reply::Text(
            200,
            tail_lines(&text, request.param("tailLines"))?,
        ));
    }
    let (sender, chunks) = mpsc::channel::<Bytes>(64);
    state.runtime.spawn(async move {
        let mut offset = 0;
        loop {
            let changed = log.changed.notified();
            let finished = log.finished.load(Ordering::SeqCst);
            let fresh = log.read_from(offset);
            if !fresh.is_empty() {
                offset += fresh.len();
                if sender.send(Bytes::from(fresh)).await.is_err() {
                    return;
                }
            }
            if finished {
                return;
            }
            tokio::select! {
                _ = changed => {}
                _ = sender.closed() => return,
                // Re-check periodically in case a notification fell between read and wait.
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    Ok(Reply::Stream("text/plain", chunks))
}
