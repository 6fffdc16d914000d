//! The four plugins as kubectl sees them: discovery, help, version, completion and exit codes.

use testkit::plugins::{PLUGINS, ensure_built, kubectl, plugin, run, stderr, stdout};

#[test]
fn plugin_list_shows_all_four() {
    ensure_built(&PLUGINS);
    let output = run(kubectl().args(["plugin", "list"]));
    let text = stdout(&output);
    for name in PLUGINS {
        assert!(
            text.contains(&format!("kubectl-{name}")),
            "kubectl plugin list misses kubectl-{name}:\n{text}"
        );
    }
}

#[test]
fn help_through_kubectl() {
    ensure_built(&PLUGINS);
    for name in PLUGINS {
        let output = run(kubectl().args([name, "--help"]));
        assert!(
            output.status.success(),
            "kubectl {name} --help failed: {}",
            stderr(&output)
        );
        let text = stdout(&output);
        assert!(
            text.contains(&format!("Usage: kubectl {name}")),
            "usage line of {name}:\n{text}"
        );
        assert!(text.contains("Examples:"), "examples of {name}:\n{text}");
        assert!(
            text.contains("--kubeconfig"),
            "global flags of {name}:\n{text}"
        );
    }
}

#[test]
fn version_printed() {
    for name in PLUGINS {
        let output = run(plugin(name).arg("--version"));
        assert!(output.status.success());
        assert_eq!(
            stdout(&output),
            format!("kubectl-{name} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn unknown_flag_exits_two() {
    ensure_built(&PLUGINS);
    for name in PLUGINS {
        let output = run(kubectl().args([name, "--no-such-flag"]));
        assert_eq!(
            output.status.code(),
            Some(2),
            "exit code of kubectl {name} --no-such-flag"
        );
        assert!(
            stderr(&output).contains("unexpected argument '--no-such-flag'"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn completion_scripts_for_each_shell() {
    for name in PLUGINS {
        for shell in ["bash", "zsh", "fish"] {
            let output = run(plugin(name).args(["completion", shell]));
            assert!(
                output.status.success(),
                "completion {shell} of {name}: {}",
                stderr(&output)
            );
            assert!(
                stdout(&output).contains(&format!("kubectl-{name}")),
                "script for {shell} of {name}"
            );
        }
    }
}

#[test]
fn kubectl_completes_plugin_arguments() {
    ensure_built(&PLUGINS);
    for name in PLUGINS {
        let output = run(kubectl().args(["__complete", name, "comp"]));
        let text = stdout(&output);
        assert!(
            text.lines().any(|line| line.starts_with("completion")),
            "kubectl __complete {name}:\n{text}"
        );
    }
}

/// Commands that need a cluster, one per plugin, used to check kubeconfig errors.
const CLUSTER_COMMANDS: [&[&str]; 4] = [
    &["crimap", "nodes"],
    &["canary", "status"],
    &["bwlimit", "get"],
    &["migrate", "backup", "create", "kubeconfig-check"],
];

#[test]
fn missing_kubeconfig_exits_one_naming_paths() {
    ensure_built(&PLUGINS);
    let home = tempfile::tempdir().unwrap();
    for command in CLUSTER_COMMANDS {
        let output = run(kubectl()
            .args(command)
            .env("HOME", home.path())
            .env("KUBECONFIG", "/nonexistent/a.yaml:/nonexistent/b.yaml"));
        let text = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "exit code of kubectl {command:?}: {text}"
        );
        assert_eq!(
            text.lines().count(),
            1,
            "one line from kubectl {command:?}: {text}"
        );
        assert!(
            text.starts_with(&format!(
                "kubectl-{}: error: no kubeconfig found",
                command[0]
            )),
            "{text}"
        );
        assert!(
            text.contains("/nonexistent/a.yaml:/nonexistent/b.yaml"),
            "paths tried: {text}"
        );
        assert!(
            text.contains(&format!("{}/.kube/config", home.path().display())),
            "home path: {text}"
        );
        assert!(text.contains("--kubeconfig"), "how to fix: {text}");
    }
}

#[test]
fn unreadable_kubeconfig_exits_one() {
    ensure_built(&PLUGINS);
    let folder = tempfile::tempdir().unwrap();
    for command in CLUSTER_COMMANDS {
        let output = run(kubectl()
            .args(command)
            .arg("--kubeconfig")
            .arg(folder.path()));
        let text = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "exit code of kubectl {command:?}: {text}"
        );
        assert_eq!(
            text.lines().count(),
            1,
            "one line from kubectl {command:?}: {text}"
        );
        assert!(
            text.contains(&format!(
                "failed to read kubeconfig {}",
                folder.path().display()
            )),
            "{text}"
        );
    }
}

#[test]
fn unknown_context_lists_known_ones() {
    ensure_built(&["crimap"]);
    let folder = tempfile::tempdir().unwrap();
    let kubeconfig = folder.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: dev\n  context:\n    cluster: c\n    user: u\n",
    )
    .unwrap();
    let output = run(kubectl()
        .args(["crimap", "nodes", "--context", "nope"])
        .env("KUBECONFIG", &kubeconfig));
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("context \"nope\" not found in the kubeconfig: use one of: dev"),
        "{text}"
    );
}
