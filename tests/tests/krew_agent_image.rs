//! The agent image: the Dockerfile, docs/agent-image.md and the plugins' default
//! `--agent-image` must name the same reference. Docker cannot run where these tests run, so
//! the Dockerfile is parsed rather than built.

use std::collections::HashMap;

use shared::agent::{AGENT_IMAGE_REPOSITORY, default_agent_image};
use testkit::plugins::{plugin, run, stderr, stdout, workspace_root};

/// Instructions of a Dockerfile with continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
}

/// Default values of `ARG NAME=VALUE` lines.
fn arg_defaults(instructions: &[String]) -> HashMap<String, String> {
    instructions
        .iter()
        .filter_map(|line| line.strip_prefix("ARG "))
        .filter_map(|arg| arg.trim().split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect()
}

/// `key="value"` pairs of all LABEL instructions, with `${NAME}` taken from `args`.
fn labels(instructions: &[String], args: &HashMap<String, String>) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    for line in instructions
        .iter()
        .filter_map(|line| line.strip_prefix("LABEL "))
    {
        let mut rest = line.trim();
        while let Some((key, after)) = rest.split_once("=\"") {
            let Some((value, tail)) = after.split_once('"') else {
                break;
            };
            let mut value = value.to_string();
            for (name, default) in args {
                value = value.replace(&format!("${{{name}}}"), default);
            }
            labels.insert(key.trim().to_string(), value);
            rest = tail.trim();
        }
    }
    labels
}

fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
    instructions(&text)
}

#[test]
fn dockerfile_names_default_agent_image() {
    let instructions = dockerfile();
    let args = arg_defaults(&instructions);
    assert_eq!(
        args.get("IMAGE_REPOSITORY").map(String::as_str),
        Some(AGENT_IMAGE_REPOSITORY)
    );
    assert_eq!(
        args.get("VERSION").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );

    let labels = labels(&instructions, &args);
    assert_eq!(
        labels.get("org.opencontainers.image.version"),
        Some(&env!("CARGO_PKG_VERSION").to_string())
    );
    assert_eq!(
        labels.get("org.opencontainers.image.ref.name"),
        Some(&default_agent_image())
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.licenses")
            .map(String::as_str),
        Some("Apache-2.0")
    );
    for key in ["title", "description", "source", "url"] {
        assert!(
            labels.contains_key(&format!("org.opencontainers.image.{key}")),
            "label org.opencontainers.image.{key} missing: {labels:?}"
        );
    }
}

#[test]
fn dockerfile_is_multi_stage_and_small() {
    let instructions = dockerfile();
    let stages: Vec<&String> = instructions
        .iter()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "stages: {stages:?}");
    assert!(
        stages[0].starts_with("FROM rust:${RUST_VERSION}-bookworm AS builder"),
        "{}",
        stages[0]
    );
    assert!(
        stages[1].starts_with("FROM gcr.io/distroless/cc-debian12"),
        "{}",
        stages[1]
    );
    assert_eq!(
        arg_defaults(&instructions)
            .get("RUST_VERSION")
            .map(String::as_str),
        Some("1.95")
    );

    let build = instructions
        .iter()
        .find(|line| line.contains("cargo build"))
        .unwrap();
    for wanted in [
        "--release",
        "--locked",
        "-p kubectl-migrate",
        "-p kubectl-bwlimit",
    ] {
        assert!(build.contains(wanted), "build step lacks {wanted}: {build}");
    }
    let copy = instructions
        .iter()
        .find(|line| line.starts_with("COPY --from=builder"))
        .unwrap();
    assert!(
        copy.contains("kubectl-migrate") && copy.contains("kubectl-bwlimit"),
        "{copy}"
    );
    assert!(
        instructions.iter().any(|line| line == "USER 65532:65532"),
        "the image must default to a non-root user"
    );
}

#[test]
fn docs_name_same_image() {
    let docs = std::fs::read_to_string(workspace_root().join("docs/agent-image.md")).unwrap();
    assert!(
        docs.contains(&format!("{AGENT_IMAGE_REPOSITORY}:<version>")),
        "docs lack the repository"
    );
    assert!(
        docs.contains(&format!("docker build -t {} .", default_agent_image())),
        "docs lack the build command"
    );
    assert!(docs.contains("--agent-image"), "docs lack --agent-image");
    for capability in ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"] {
        assert!(docs.contains(capability), "docs lack {capability}");
    }
}

#[test]
fn bwlimit_help_shows_default_image() {
    let output = run(plugin("bwlimit").args(["set", "--help"]));
    assert!(output.status.success(), "{}", stderr(&output));
    // clap wraps long help lines, so compare with the whitespace collapsed.
    let help = stdout(&output)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains(&format!("[default: {}]", default_agent_image())),
        "kubectl bwlimit set --help:\n{}",
        stdout(&output)
    );
}
