//! Runs a container process in a mount namespace and root of its own, so that the pod's
//! volumes appear at their container paths without any change to the host's file tree.
//!
//! The process starts as `unshare --mount --propagation private /bin/sh -c SCRIPT`. The script
//! mounts a tmpfs on an empty temporary folder and an overlay with the host's `/` as lower
//! layer on `<folder>/merged`. It binds the host's other mount points into the overlay, then
//! each volume at its mount path, and execs `chroot`, which execs the command. Every step is an `exec`, so
//! the process id stays the container's own and a kill reaches the command itself. Between
//! `chroot` and the command, `setpriv` applies the container's securityContext: user and group,
//! capability bounding set and no_new_privs. The mounts exist only in the new namespace and
//! disappear with its last process. On the host only the empty temporary folder remains, and
//! the caller removes it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::pod_volumes::{Mount, MountSource};

/// Exit status of the script when a mount step fails, before the command starts.
pub(crate) const SETUP_FAILED: i32 = 125;

/// Everything the script needs besides the command line.
pub(crate) struct RootSpec<'a> {
    /// Empty folder on the host that receives the tmpfs. It must not be a mount point.
    pub folder: &'a Path,
    pub mounts: &'a [Mount],
    pub working_dir: &'a str,
    /// `securityContext.readOnlyRootFilesystem`: the overlay is remounted read-only after
    /// the mount points are created, so only volumes and the host's other mounts are writable.
    pub read_only_root: bool,
    pub privileges: &'a Privileges,
}

/// Capabilities of a container whose securityContext changes none: the default set of
/// containerd and Docker.
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// User, group and capabilities of a container process, from its securityContext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Privileges {
    /// Capability bounding set, as upper-case names without `CAP_`. `None` keeps every
    /// capability, as for a privileged container.
    pub capabilities: Option<Vec<String>>,
    pub user: Option<i64>,
    pub group: Option<i64>,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
}

impl Privileges {
    /// Reads the first container's securityContext, with the pod's runAsUser and runAsGroup
    /// as defaults. Capabilities start from the default set, lose `drop` (`ALL` drops every
    /// one) and gain `add`.
    pub fn of_pod(pod: &Value) -> Privileges {
        let context = &pod["spec"]["containers"][0]["securityContext"];
        let pod_context = &pod["spec"]["securityContext"];
        let id = |field: &str| {
            context[field]
                .as_i64()
                .or_else(|| pod_context[field].as_i64())
        };
        let names = |field: &str| -> Vec<String> {
            context["capabilities"][field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|name| name.trim_start_matches("CAP_").to_ascii_uppercase())
                .collect()
        };

        let capabilities = if context["privileged"] == true {
            None
        } else {
            let dropped = names("drop");
            let mut bounding_set: Vec<String> = if dropped.iter().any(|name| name == "ALL") {
                Vec::new()
            } else {
                DEFAULT_CAPABILITIES
                    .iter()
                    .map(|name| name.to_string())
                    .filter(|name| !dropped.contains(name))
                    .collect()
            };
            for name in names("add") {
                if !bounding_set.contains(&name) {
                    bounding_set.push(name);
                }
            }
            bounding_set.sort();
            Some(bounding_set)
        };
        Privileges {
            capabilities,
            user: id("runAsUser"),
            group: id("runAsGroup"),
            no_new_privileges: context["allowPrivilegeEscalation"] == false,
        }
    }

    /// Returns the `setpriv` options that apply these privileges.
    fn setpriv_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(user) = self.user {
            options.push(format!("--reuid={user}"));
        }
        if let Some(group) = self.group {
            options.push(format!("--regid={group}"));
        }
        if self.user.is_some() || self.group.is_some() {
            options.push("--clear-groups".to_string());
        }
        if let Some(capabilities) = &self.capabilities {
            let mut set = "-all".to_string();
            for name in capabilities {
                set.push_str(",+");
                set.push_str(&name.to_ascii_lowercase());
            }
            options.push("--inh-caps=-all".to_string());
            options.push(format!("--bounding-set={set}"));
        }
        if self.no_new_privileges {
            options.push("--no-new-privs".to_string());
        }
        options
    }
}

/// Builds the command that runs `argv` inside a private root. It fails when `unshare`,
/// `mount`, `chroot` or `setpriv` is missing.
pub(crate) fn command(spec: &RootSpec, argv: &[String]) -> Result<tokio::process::Command, String> {
    let unshare = find_tool("unshare")?;
    let mount = find_tool("mount")?;
    let chroot = find_tool("chroot")?;
    let setpriv = find_tool("setpriv")?;
    let mount_points = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| host_mount_points(&text, spec.folder))
        .map_err(|error| format!("failed to read /proc/self/mountinfo: {error}"))?;
    let tools = Tools {
        mount,
        chroot,
        setpriv,
    };
    let script = setup_script(spec, &mount_points, &tools, argv);

    let mut command = tokio::process::Command::new(unshare);
    command
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(script)
        .current_dir("/");
    Ok(command)
}

/// Looks a tool up on `PATH` and in the system folders, which a non-login `PATH` can lack.
fn find_tool(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!("{name} not found on PATH: install util-linux, mount and coreutils to run pods with claims")
        })
}

/// Returns the host's mount points in mount order (parents before children), without `/`
/// and without anything at or under `folder`, which would bind the private root into itself.
fn host_mount_points(mountinfo: &str, folder: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_point)
        .filter(|point| point != "/" && !Path::new(point).starts_with(folder))
        .collect()
}

/// Decodes the octal escapes (`\040` for a space) that mountinfo uses in paths.
fn unescape_mount_point(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 4).filter(|digits| {
            bytes[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match escape {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                decoded.push(u8::try_from(value).unwrap_or(b'?'));
                index += 4;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Quotes a word for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// Host paths of the tools the script runs. `setpriv` runs after `chroot`, from the same path
/// in the overlay of the host's root.
struct Tools {
    mount: PathBuf,
    chroot: PathBuf,
    setpriv: PathBuf,
}

/// Writes the shell script that sets up the root and execs the command. Paths are quoted
/// into the script, so it reads no variables of the container's environment.
fn setup_script(
    spec: &RootSpec,
    host_mount_points: &[String],
    tools: &Tools,
    argv: &[String],
) -> String {
    let folder = spec.folder;
    let merged = folder.join("merged");
    let inside = |path: &str| quote_path(&merged.join(path.trim_start_matches('/')));
    let mount = quote_path(&tools.mount);
    let mut lines = vec![format!(
        "fail() {{ echo \"simulated kubelet: $*\" >&2; exit {SETUP_FAILED}; }}"
    )];

    // A tmpfs contains the overlay's upper layer, so writes to the root stay off the host.
    let tmpfs = quote_path(folder);
    lines.push(format!(
        "{mount} -t tmpfs -o mode=0700 simulated-kubelet {tmpfs} || fail 'failed to mount a tmpfs on '{tmpfs}"
    ));
    let (upper, work, empty_dirs) = (
        quote_path(&folder.join("upper")),
        quote_path(&folder.join("work")),
        quote_path(&folder.join("empty-dir")),
    );
    let merged_quoted = quote_path(&merged);
    lines.push(format!(
        "mkdir {upper} {work} {merged_quoted} {empty_dirs} || fail 'failed to create the overlay folders'"
    ));
    let options = quote(&format!(
        "lowerdir=/,upperdir={},workdir={}",
        folder.join("upper").display(),
        folder.join("work").display()
    ));
    lines.push(format!(
        "{mount} -t overlay -o {options} simulated-kubelet {merged_quoted} || fail 'failed to mount the overlay root on '{merged_quoted}"
    ));

    // The overlay shows only the root file system, so the host's other mounts are bound in
    // one by one. Those that cannot be bound, such as a mount point hidden by a later mount,
    // are skipped.
    for point in host_mount_points {
        lines.push(format!(
            "{mount} --bind {} {} 2>/dev/null || true",
            quote(point),
            inside(point)
        ));
    }

    // Mount points and the working folder first, while the root is writable.
    for item in spec.mounts {
        let target = inside(&item.container_path);
        let is_file = matches!(&item.source, MountSource::Host(path) if path.is_file());
        if is_file {
            let parent = Path::new(&item.container_path)
                .parent()
                .map(|parent| inside(&parent.to_string_lossy()))
                .unwrap_or_else(|| merged_quoted.clone());
            lines.push(format!(
                "mkdir -p {parent} && touch {target} || fail 'failed to create mount point '{}",
                quote(&item.container_path)
            ));
        } else {
            lines.push(format!(
                "mkdir -p {target} || fail 'failed to create mount point '{}",
                quote(&item.container_path)
            ));
        }
    }
    lines.push(format!(
        "mkdir -p {} || fail 'failed to create working folder '{}",
        inside(spec.working_dir),
        quote(spec.working_dir)
    ));
    if spec.read_only_root {
        lines.push(format!(
            "{mount} -o remount,ro {merged_quoted} || fail 'failed to make the root read-only'"
        ));
    }

    for item in spec.mounts {
        let source = match &item.source {
            MountSource::Host(path) => quote_path(path),
            MountSource::PrivateEmptyDir(name) => {
                let private = quote_path(&folder.join("empty-dir").join(name));
                lines.push(format!(
                    "mkdir -p -m 0777 {private} || fail 'failed to create emptyDir '{}",
                    quote(name)
                ));
                private
            }
        };
        let target = inside(&item.container_path);
        let quoted_path = quote(&item.container_path);
        lines.push(format!(
            "{mount} --bind {source} {target} || fail 'failed to mount '{source}' at '{quoted_path}"
        ));
        if item.read_only {
            lines.push(format!(
                "{mount} -o remount,bind,ro {target} || fail 'failed to make '{quoted_path}' read-only'"
            ));
        }
    }

    // chroot execs setpriv, which execs a shell that enters the working folder and execs the
    // command.
    let mut exec = format!(
        "exec {} {merged_quoted} {}",
        quote_path(&tools.chroot),
        quote_path(&tools.setpriv)
    );
    for option in spec.privileges.setpriv_options() {
        exec.push(' ');
        exec.push_str(&quote(&option));
    }
    exec.push_str(&format!(
        " -- /bin/sh -c 'cd \"$1\" || exit {SETUP_FAILED}; shift; exec \"$@\"' sh {}",
        quote(spec.working_dir)
    ));
    for word in argv {
        exec.push(' ');
        exec.push_str(&quote(word));
    }
    lines.push(exec);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_skip_root_and_private_folder() {
        let mountinfo = "22 27 0:21 / /proc rw - proc proc rw\n\
            27 1 254:0 / / rw - ext4 /dev/vda rw\n\
            50 27 0:40 / /tmp/test-kubelet-x rw - tmpfs t rw\n\
            51 50 0:41 / /tmp/test-kubelet-x/merged rw - overlay o rw\n\
            52 27 0:42 / /mnt/with\\040space rw - tmpfs t rw\n";
        assert_eq!(
            host_mount_points(mountinfo, Path::new("/tmp/test-kubelet-x")),
            ["/proc", "/mnt/with space"]
        );
    }

    #[test]
    fn quote_keeps_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn script_binds_volumes_after_host_mounts() {
        let mounts = [Mount {
            source: MountSource::Host(PathBuf::from("/srv/pv-1")),
            container_path: "/data".into(),
            read_only: true,
        }];
        let privileges = Privileges {
            capabilities: Some(vec!["DAC_READ_SEARCH".to_string()]),
            user: None,
            group: None,
            no_new_privileges: true,
        };
        let spec = RootSpec {
            folder: Path::new("/tmp/root"),
            mounts: &mounts,
            working_dir: "/",
            read_only_root: true,
            privileges: &privileges,
        };

        let tools = Tools {
            mount: PathBuf::from("/usr/bin/mount"),
            chroot: PathBuf::from("/usr/sbin/chroot"),
            setpriv: PathBuf::from("/usr/bin/setpriv"),
        };
        let script = setup_script(
            &spec,
            &["/proc".to_string()],
            &tools,
            &["kubectl-migrate".to_string(), "agent".to_string()],
        );

        let position = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} not in {script}"))
        };
        assert!(position("--bind '/proc'") < position("--bind '/srv/pv-1'"));
        assert!(position("remount,ro '/tmp/root/merged'") < position("--bind '/srv/pv-1'"));
        assert!(position("mkdir -p '/tmp/root/merged/data'") < position("remount,ro '"));
        assert!(script.contains("remount,bind,ro '/tmp/root/merged/data'"));
        assert!(script.contains(
            "'/usr/bin/setpriv' '--inh-caps=-all' '--bounding-set=-all,+dac_read_search' '--no-new-privs' -- /bin/sh"
        ));
        assert!(script.ends_with("sh '/' 'kubectl-migrate' 'agent'"));
    }

    fn pod_with(context: Value) -> Value {
        serde_json::json!({"spec": {"securityContext": {"runAsUser": 1000},
            "containers": [{"name": "c", "securityContext": context}]}})
    }

    #[test]
    fn privileges_follow_security_context() {
        let restricted = Privileges::of_pod(&pod_with(serde_json::json!({
            "runAsUser": 0, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "CAP_FOWNER"]}
        })));
        assert_eq!(
            restricted,
            Privileges {
                capabilities: Some(vec!["CHOWN".to_string(), "FOWNER".to_string()]),
                user: Some(0),
                group: None,
                no_new_privileges: true,
            }
        );
        let default = Privileges::of_pod(&pod_with(serde_json::json!({
            "capabilities": {"drop": ["NET_RAW"]}
        })));
        assert_eq!(default.user, Some(1000));
        let kept = default.capabilities.unwrap();
        assert_eq!(kept.len(), 13);
        assert!(!kept.contains(&"NET_RAW".to_string()));
        let privileged = Privileges::of_pod(&pod_with(serde_json::json!({"privileged": true})));
        assert_eq!(privileged.capabilities, None);
    }
}
