//! Network namespaces: running netlink code inside one, finding a pod's namespace from its UID,
//! and finding the host-side veth of a pod's interface.

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::netlink::{Link, Netlink};

/// Path of the calling process's own network namespace.
pub const SELF_NETNS: &str = "/proc/self/ns/net";

/// Runs an async task on a new thread that first enters the network namespace at `path`.
/// Netlink sockets opened by the task belong to that namespace; the calling thread's
/// namespace is never changed, because `setns` only affects the thread that calls it.
pub fn block_on_in_netns<T, F, Fut>(path: &Path, task: F) -> Result<T, String>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    let file = File::open(path)
        .map_err(|e| format!("failed to open network namespace {}: {e}", path.display()))?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                format!(
                    "failed to enter network namespace {}: {e}: the agent needs CAP_SYS_ADMIN",
                    path.display()
                )
            })?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("failed to start a runtime in the namespace: {e}"))?;
            Ok(runtime.block_on(task()))
        });
        worker
            .join()
            .map_err(|_| "the namespace worker thread panicked".to_string())?
    })
}

/// Reports whether two namespace files name the same namespace (same device and inode).
pub fn same_namespace(a: &Path, b: &Path) -> Result<bool, String> {
    let stat = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| format!("failed to read network namespace {}: {e}", path.display()))
    };
    Ok(stat(a)? == stat(b)?)
}

/// The pod's interface as seen inside the pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterface {
    /// Name inside the pod, usually `eth0`.
    pub name: String,
    /// Index inside the pod's namespace.
    pub index: u32,
    /// `IFLA_LINK`: index of the veth peer in the node's namespace.
    pub peer_index: u32,
}

/// Finds the pod's interface inside its namespace: `eth0` when it exists, else the interface
/// of the default route. Run inside the pod's namespace.
pub async fn pod_interface(netlink: &Netlink) -> Result<PodInterface, String> {
    let links = netlink.links().await.map_err(|e| e.to_string())?;
    let chosen = match links.iter().find(|l| l.name == "eth0") {
        Some(link) => link.clone(),
        None => {
            let index = netlink
                .default_route_ifindex()
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    "the pod's network namespace has neither eth0 nor a default route".to_string()
                })?;
            links
                .iter()
                .find(|l| l.index == index)
                .cloned()
                .ok_or_else(|| {
                    format!("the default route uses interface {index}, which is missing")
                })?
        }
    };
    let peer_index = match (chosen.kind.as_str(), chosen.peer_index) {
        ("veth", Some(peer)) => peer,
        _ => {
            return Err(format!(
                "the pod's interface {} is a {} link, not a veth with a peer on the node: \
                 only veth-based CNI plugins can be shaped this way",
                chosen.name,
                if chosen.kind.is_empty() {
                    "physical"
                } else {
                    &chosen.kind
                }
            ));
        }
    };
    Ok(PodInterface {
        name: chosen.name,
        index: chosen.index,
        peer_index,
    })
}

/// Finds the veth in the current namespace that is the peer of the pod's interface: its index
/// is the pod interface's `IFLA_LINK`, and its own `IFLA_LINK` is the pod interface's index.
pub async fn host_veth(netlink: &Netlink, pod: &PodInterface) -> Result<Link, String> {
    let link = netlink
        .link_by_index(pod.peer_index)
        .await
        .map_err(|e| e.to_string())?;
    match link {
        Some(link) if link.kind == "veth" && link.peer_index == Some(pod.index) => Ok(link),
        Some(link) => Err(format!(
            "interface {} (index {}) on the node is not the veth peer of the pod's {}: \
             the pod's veth peer is in another network namespace than the agent's",
            link.name, link.index, pod.name
        )),
        None => Err(format!(
            "no interface with index {} on the node, where the peer of the pod's {} should be: \
             the pod's veth peer is in another network namespace than the agent's",
            pod.peer_index, pod.name
        )),
    }
}

/// Returns the `/proc` paths of the processes whose cgroup names the pod UID, in the cgroupfs
/// form (`pod<uid>`) or the systemd form (`pod<uid with underscores>.slice`).
pub fn pod_processes(proc_root: &Path, pod_uid: &str) -> Vec<PathBuf> {
    let dashed = pod_uid.to_ascii_lowercase();
    let underscored = dashed.replace('-', "_");
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).ok()?;
            cgroup_names_pod(&cgroup, &dashed, &underscored).then(|| (pid, entry.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// Reports whether a `/proc/<pid>/cgroup` text places the process in the pod's cgroup.
pub fn cgroup_names_pod(cgroup: &str, dashed_uid: &str, underscored_uid: &str) -> bool {
    cgroup.lines().any(|line| {
        let path = line.splitn(3, ':').nth(2).unwrap_or(line);
        path.contains(&format!("pod{dashed_uid}"))
            || path.contains(&format!("pod{underscored_uid}"))
    })
}

/// Finds the network namespace of a pod from its UID: the namespace of the first process in
/// the pod's cgroup that is not in the agent's own namespace.
pub fn pod_netns_from_uid(proc_root: &Path, pod_uid: &str) -> Result<PathBuf, String> {
    let processes = pod_processes(proc_root, pod_uid);
    if processes.is_empty() {
        return Err(format!(
            "no process of pod {pod_uid} on this node: is the pod running here, and does the agent run with hostPID?"
        ));
    }
    let own = Path::new(SELF_NETNS);
    for process in &processes {
        let netns = process.join("ns").join("net");
        match same_namespace(&netns, own) {
            Ok(false) => return Ok(netns),
            Ok(true) => continue,
            Err(error) => tracing::debug!(%error, "skipping a process of the pod"),
        }
    }
    Err(format!(
        "every process of pod {pod_uid} is in the node's network namespace: a hostNetwork pod \
         shares the node's interfaces and cannot be shaped per pod"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc";

    fn names(cgroup: &str) -> bool {
        cgroup_names_pod(cgroup, UID, &UID.replace('-', "_"))
    }

    #[test]
    fn cgroupfs_path_matches() {
        assert!(names(
            "0::/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-123456789abc/4c1d\n"
        ));
    }

    #[test]
    fn systemd_slice_matches() {
        assert!(names(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_aaaa_bbbb_cccc_123456789abc.slice/cri-containerd-4c1d.scope\n"
        ));
    }

    #[test]
    fn cgroup_v1_lines_match() {
        assert!(names(
            "12:memory:/kubepods/pod0f1e2d3c-aaaa-bbbb-cccc-123456789abc/abc\n11:cpu:/\n"
        ));
    }

    #[test]
    fn other_pods_do_not_match() {
        assert!(!names(
            "0::/kubepods/burstable/pod11111111-aaaa-bbbb-cccc-123456789abc/x\n"
        ));
        assert!(!names("0::/user.slice/user-0.slice/session-1.scope\n"));
    }

    #[test]
    fn processes_found_in_fake_proc() {
        let root = tempfile::tempdir().unwrap();
        for (pid, cgroup) in [
            ("42", format!("0::/kubepods/pod{UID}/c1\n")),
            ("7", "0::/system.slice/sshd.service\n".to_string()),
            (
                "9",
                format!(
                    "0::/kubepods.slice/kubepods-pod{}.slice/x\n",
                    UID.replace('-', "_")
                ),
            ),
        ] {
            std::fs::create_dir(root.path().join(pid)).unwrap();
            std::fs::write(root.path().join(pid).join("cgroup"), cgroup).unwrap();
        }
        std::fs::create_dir(root.path().join("self")).unwrap();

        let found = pod_processes(root.path(), UID);
        assert_eq!(found, vec![root.path().join("9"), root.path().join("42")]);
    }

    #[test]
    fn missing_pod_reported() {
        let root = tempfile::tempdir().unwrap();
        let error = pod_netns_from_uid(root.path(), UID).unwrap_err();
        assert!(
            error.starts_with(&format!("no process of pod {UID} on this node")),
            "{error}"
        );
    }
}
