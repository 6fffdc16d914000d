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
