//! Builds the plugin binaries once per test process and runs them through the real kubectl.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The four plugins of the collection.
pub const PLUGINS: [&str; 4] = ["migrate", "canary", "bwlimit", "crimap"];

/// Returns the workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Returns the folder holding the built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("debug")
}

/// Builds the binaries of the named plugins (`migrate`, `canary`, ...) once per test process.
///
/// Binaries of other packages are not built for this package's tests, so this runs
/// `cargo build --bins -p kubectl-<name>`; when they are up to date it takes a second.
pub fn ensure_built(names: &[&str]) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let wanted: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !built.iter().any(|b| b == name))
        .collect();
    if wanted.is_empty() {
        return;
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--bins"]);
    for name in &wanted {
        command.args(["-p", &format!("kubectl-{name}")]);
    }
    let status = command
        .status()
        .expect("failed to run cargo build for the plugins");
    assert!(status.success(), "cargo build of {wanted:?} failed");
    built.extend(wanted.iter().map(|name| name.to_string()));
}

/// Returns the folder holding the plugin binaries after building all four.
pub fn plugin_bin_dir() -> PathBuf {
    ensure_built(&PLUGINS);
    bin_dir()
}

/// Returns a `PATH` value with the plugin binaries first.
pub fn path_with_plugins() -> OsString {
    let mut paths = vec![bin_dir()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH entries are valid")
}

/// Builds a `kubectl` command with the plugin binaries first on `PATH` and no user kubeconfig.
/// Call [`ensure_built`] first for the plugins the command runs.
pub fn kubectl() -> Command {
    let mut command = Command::new("kubectl");
    command
        .env("PATH", path_with_plugins())
        .env("KUBECONFIG", "/nonexistent/kubeconfig-for-tests")
        .env("NO_COLOR", "1")
        .env_remove("KUBERNETES_SERVICE_HOST");
    command
}

/// Builds a command that runs plugin `name` directly (`kubectl-<name>`).
pub fn plugin(name: &str) -> Command {
    ensure_built(&[name]);
    let mut command = Command::new(bin_dir().join(format!("kubectl-{name}")));
    command
        .env("PATH", path_with_plugins())
        .env("KUBECONFIG", "/nonexistent/kubeconfig-for-tests")
        .env("NO_COLOR", "1")
        .env_remove("KUBERNETES_SERVICE_HOST");
    command
}

/// Runs a command and returns its output, panicking only if it could not start.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"))
}

/// Runs `kubectl apply -f -` with `manifests` on stdin, appending `apply -f -` to `kubectl`
/// (which carries its kubeconfig and namespace flags), and panics with kubectl's message when
/// the apply fails.
pub fn apply_stdin(kubectl: &mut Command, manifests: &str) {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = kubectl
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {kubectl:?}: {error}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(manifests.as_bytes())
        .expect("manifests written to kubectl");
    let output = child.wait_with_output().expect("kubectl finishes");
    assert!(
        output.status.success(),
        "kubectl apply failed: {}\n{manifests}",
        stderr(&output)
    );
}

/// Runs the real kubectl (see [`kubectl`]) against the cluster of `kubeconfig`.
pub fn kubectl_at(kubeconfig: &Path, args: &[&str]) -> Output {
    run(kubectl().env("KUBECONFIG", kubeconfig).args(args))
}

/// Applies one object with `kubectl apply -f -` against the cluster of `kubeconfig`.
pub fn apply_json(kubeconfig: &Path, object: &serde_json::Value) {
    apply_stdin(kubectl().env("KUBECONFIG", kubeconfig), &object.to_string());
}

/// Runs `kubectl get ARGS -o json` against the cluster of `kubeconfig` and returns the parsed
/// output, panicking with kubectl's message when it fails.
pub fn get_json(kubeconfig: &Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["get"];
    full.extend(args);
    full.extend(["-o", "json"]);
    let output = kubectl_at(kubeconfig, &full);
    assert!(
        output.status.success(),
        "kubectl {full:?} failed: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
}

/// Returns stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
