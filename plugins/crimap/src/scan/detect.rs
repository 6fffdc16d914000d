//! Detection of Docker dependencies in one pod spec: pure functions over plain data.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};
use regex::Regex;
use serde::Serialize;

/// Kind of Docker dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A hostPath volume exposing the Docker Engine socket.
    DockerSocket,
    /// A hostPath volume of Docker's data folder, `/var/lib/docker` or below.
    DockerDataDir,
    /// A docker-in-docker image.
    DindImage,
    /// A container that runs dockerd.
    Dockerd,
    /// A `DOCKER_HOST` environment variable.
    DockerHostEnv,
    /// A docker CLI call in a command, argument list, probe or hook.
    DockerCli,
}

impl FindingKind {
    /// Returns the kebab-case name printed in tables.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::DockerSocket => "docker-socket",
            FindingKind::DockerDataDir => "docker-data-dir",
            FindingKind::DindImage => "dind-image",
            FindingKind::Dockerd => "dockerd",
            FindingKind::DockerHostEnv => "docker-host-env",
            FindingKind::DockerCli => "docker-cli",
        }
    }
}

/// One Docker dependency in a pod spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    /// Kind of dependency.
    pub kind: FindingKind,
    /// Container it belongs to; `None` for a volume no container mounts.
    pub container: Option<String>,
    /// The evidence: path, image, variable or command.
    pub detail: String,
}

const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];
const DOCKER_DATA_DIR: &str = "/var/lib/docker";

/// A docker CLI call: `docker`, global flags (with values for those that take one), then a
/// subcommand. Requiring a known subcommand keeps prose such as "docker image" and
/// references such as `docker.io/...` from counting.
static DOCKER_CLI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\w.-])(docker(?:\s+(?:-H|--host|-c|--context|--config|-l|--log-level)(?:\s+|=)\S+|\s+--?[a-zA-Z][\w-]*(?:=\S+)?)*\s+(?:attach|build|buildx|commit|compose|cp|create|exec|images|info|inspect|kill|load|login|logs|ps|pull|push|restart|rm|rmi|run|save|start|stop|tag|version|(?:container|image)\s+(?:build|exec|inspect|load|logs|ls|prune|pull|push|rm|run|save|start|stop|tag)|(?:network|volume)\s+(?:create|connect|inspect|ls|rm)|system\s+(?:df|events|info|prune))\b[^\n;&|]*)",
    )
    .expect("docker CLI pattern is valid")
});

static DOCKER_COMPOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\w.-])(docker-compose\b[^\n;&|]*)")
        .expect("docker-compose pattern is valid")
});

static DOCKERD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\w.-])(?:/[\w./-]*/)?dockerd(?:-[\w-]+\.sh)?(?:$|[^\w.-])")
        .expect("dockerd pattern is valid")
});

/// Data of the ConfigMaps in one namespace: ConfigMap name to its `data` (key to text).
pub type ConfigMaps = HashMap<String, BTreeMap<String, String>>;

/// Finds every Docker dependency in `spec`, sorted and without duplicates. Scripts in the
/// ConfigMaps that a container mounts count as the container's commands; `config_maps` contains
/// the ConfigMaps of the pod's namespace.
pub fn inspect_pod_spec(spec: &PodSpec, config_maps: &ConfigMaps) -> Vec<Finding> {
    let mut findings = Vec::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for container in containers {
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        inspect_container(container, volumes, &mut findings);
        inspect_mounted_scripts(container, volumes, config_maps, &mut findings);
    }
    for container in spec.ephemeral_containers.iter().flatten() {
        let line = join_words(
            container
                .command
                .iter()
                .flatten()
                .chain(container.args.iter().flatten()),
        );
        inspect_lines(&container.name, &[line], &mut findings);
    }
    inspect_unmounted_volumes(spec, &mut findings);
    findings.sort();
    findings.dedup();
    findings
}

fn inspect_container(container: &Container, volumes: &[Volume], findings: &mut Vec<Finding>) {
    let name = Some(container.name.clone());
    let privileged = container
        .security_context
        .as_ref()
        .and_then(|context| context.privileged)
        .unwrap_or(false);

    // hostPath volumes this container mounts.
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.iter().find(|volume| volume.name == mount.name) else {
            continue;
        };
        let Some(path) = host_path_of(volume) else {
            continue;
        };
        let sub_path = mount.sub_path.as_deref().unwrap_or_default();
        let full = if sub_path.is_empty() {
            path.clone()
        } else {
            format!("{path}/{}", sub_path.trim_matches('/'))
        };
        if let Some(kind) = host_path_kind(&full) {
            findings.push(Finding {
                kind,
                container: name.clone(),
                detail: format!("hostPath {full} mounted at {}", mount.mount_path),
            });
        }
    }

    // The image.
    if let Some(detail) = container
        .image
        .as_deref()
        .and_then(|image| dind_image(image, privileged))
    {
        findings.push(Finding {
            kind: FindingKind::DindImage,
            container: name.clone(),
            detail,
        });
    }

    // dockerd started by the command.
    let words: Vec<&String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .collect();
    if words.iter().any(|word| DOCKERD.is_match(word)) {
        let detail = if privileged {
            "privileged container runs dockerd".to_string()
        } else {
            "container runs dockerd without privileged, which dockerd needs".to_string()
        };
        findings.push(Finding {
            kind: FindingKind::Dockerd,
            container: name.clone(),
            detail,
        });
    }

    // DOCKER_HOST.
    for variable in container.env.iter().flatten() {
        if variable.name == "DOCKER_HOST" {
            let value = match (&variable.value, &variable.value_from) {
                (Some(value), _) => value.clone(),
                (None, Some(_)) => "<from a reference>".to_string(),
                (None, None) => String::new(),
            };
            findings.push(Finding {
                kind: FindingKind::DockerHostEnv,
                container: name.clone(),
                detail: format!("DOCKER_HOST={value}"),
            });
        }
    }

    // docker CLI calls in the command, probes and lifecycle hooks. Each command's words are
    // joined, so that the exec form ["docker", "run", ...] reads like the shell form.
    let mut lines = vec![join_words(words)];
    let probes = [
        &container.liveness_probe,
        &container.readiness_probe,
        &container.startup_probe,
    ];
    for probe in probes.into_iter().flatten() {
        lines.extend(
            probe
                .exec
                .iter()
                .map(|exec| join_words(exec.command.iter().flatten())),
        );
    }
    if let Some(lifecycle) = &container.lifecycle {
        for handler in [&lifecycle.post_start, &lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            lines.extend(
                handler
                    .exec
                    .iter()
                    .map(|exec| join_words(exec.command.iter().flatten())),
            );
        }
    }
    inspect_lines(&container.name, &lines, findings);
}

/// Reports docker CLI calls in the ConfigMap keys a container mounts, whole or as projected
/// volume sources. All keys of a mounted ConfigMap count, also those left out by `items`.
fn inspect_mounted_scripts(
    container: &Container,
    volumes: &[Volume],
    config_maps: &ConfigMaps,
    findings: &mut Vec<Finding>,
) {
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.iter().find(|volume| volume.name == mount.name) else {
            continue;
        };
        let mut names: Vec<&str> = volume
            .config_map
            .iter()
            .map(|source| source.name.as_str())
            .collect();
        let projected = volume
            .projected
            .iter()
            .flat_map(|projected| projected.sources.iter().flatten())
            .filter_map(|source| source.config_map.as_ref());
        names.extend(projected.map(|source| source.name.as_str()));

        for name in names {
            for (key, text) in config_maps.get(name).into_iter().flatten() {
                for call in docker_cli_calls(text) {
                    findings.push(Finding {
                        kind: FindingKind::DockerCli,
                        container: Some(container.name.clone()),
                        detail: format!("{call} (configmap {name}, key {key})"),
                    });
                }
            }
        }
    }
}

fn join_words<'a>(words: impl IntoIterator<Item = &'a String>) -> String {
    words
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

fn inspect_lines(container: &str, lines: &[String], findings: &mut Vec<Finding>) {
    for line in lines {
        for call in docker_cli_calls(line) {
            findings.push(Finding {
                kind: FindingKind::DockerCli,
                container: Some(container.to_string()),
                detail: call,
            });
        }
    }
}

/// Returns the docker CLI calls in a command word or shell script, trimmed to one statement.
pub fn docker_cli_calls(text: &str) -> Vec<String> {
    let mut calls = Vec::new();
    for pattern in [&*DOCKER_CLI, &*DOCKER_COMPOSE] {
        for captures in pattern.captures_iter(text) {
            let call = captures[1].trim().trim_end_matches(['"', '\'', ')']).trim();
            calls.push(truncate(call, 80));
        }
    }
    calls
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars - 3).collect();
    format!("{cut}...")
}

/// Reports hostPath volumes of Docker paths that no container mounts (they still pin the pod
/// to nodes that have them, and often mark a dependency the manifest author forgot).
fn inspect_unmounted_volumes(spec: &PodSpec, findings: &mut Vec<Finding>) {
    let mounted = |volume: &str| {
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .flat_map(|container| container.volume_mounts.iter().flatten())
            .any(|mount| mount.name == volume)
    };
    for volume in spec.volumes.iter().flatten() {
        let Some(path) = host_path_of(volume) else {
            continue;
        };
        if mounted(&volume.name) {
            continue;
        }
        if let Some(kind) = host_path_kind(&path) {
            findings.push(Finding {
                kind,
                container: None,
                detail: format!("hostPath {path} in volume {} (not mounted)", volume.name),
            });
        }
    }
}

/// Returns the normalized host path of a hostPath volume, `None` for other volume types.
fn host_path_of(volume: &Volume) -> Option<String> {
    volume
        .host_path
        .as_ref()
        .map(|host| normalize_path(&host.path))
}

fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Classifies a host path: the Docker socket or Docker's data folder.
pub fn host_path_kind(path: &str) -> Option<FindingKind> {
    if DOCKER_SOCKETS.contains(&path) {
        return Some(FindingKind::DockerSocket);
    }
    if path == DOCKER_DATA_DIR || path.starts_with(&format!("{DOCKER_DATA_DIR}/")) {
        return Some(FindingKind::DockerDataDir);
    }
    None
}

/// Describes a docker-in-docker image: the official `docker` image with a `dind` tag, any
/// image whose name contains `dind`, or the official `docker` image run privileged.
pub fn dind_image(image: &str, privileged: bool) -> Option<String> {
    let (repository, tag) = split_image(image);
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let official_docker = matches!(
        repository,
        "docker" | "library/docker" | "docker.io/docker" | "docker.io/library/docker"
    );
    if official_docker && tag.contains("dind") {
        return Some(format!("image {image} runs dockerd (docker-in-docker)"));
    }
    if name.split(['-', '_', '.']).any(|part| part == "dind") {
        return Some(format!("image {image} is a docker-in-docker image"));
    }
    if official_docker && privileged {
        return Some(format!(
            "image {image} runs privileged, as docker-in-docker does"
        ));
    }
    None
}

/// Splits an image reference into repository and tag (empty when it has none).
pub fn split_image(image: &str) -> (&str, &str) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |index| index + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(colon) => (
            &without_digest[..last_slash + colon],
            &without_digest[last_slash + colon + 1..],
        ),
        None => (without_digest, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_calls_are_word_bounded() {
        assert_eq!(
            docker_cli_calls("set -e; docker build -t app . && docker push app"),
            vec!["docker build -t app .", "docker push app"]
        );
        assert!(docker_cli_calls("pull docker.io/library/nginx").is_empty());
        assert!(docker_cli_calls("mydocker run x").is_empty());
        assert!(docker_cli_calls("dockerd --host=unix:///x").is_empty());
        assert!(docker_cli_calls("echo docker is great").is_empty());
        assert!(docker_cli_calls("echo push the docker image").is_empty());
        assert_eq!(docker_cli_calls("docker image ls"), vec!["docker image ls"]);
        assert_eq!(
            docker_cli_calls("docker system prune -af"),
            vec!["docker system prune -af"]
        );
        assert_eq!(
            docker_cli_calls("/usr/bin/docker run --rm x"),
            vec!["docker run --rm x"]
        );
        assert_eq!(
            docker_cli_calls("docker -H tcp://d:2375 ps"),
            vec!["docker -H tcp://d:2375 ps"]
        );
        assert_eq!(docker_cli_calls("docker --tls ps"), vec!["docker --tls ps"]);
        assert_eq!(
            docker_cli_calls("docker-compose up -d"),
            vec!["docker-compose up -d"]
        );
    }

    #[test]
    fn dind_images_recognized() {
        assert!(dind_image("docker:24-dind", false).is_some());
        assert!(dind_image("docker:dind", false).is_some());
        assert!(dind_image("docker.io/library/docker:24.0.7-dind-rootless", false).is_some());
        assert!(dind_image("cruizba/ubuntu-dind:latest", false).is_some());
        assert!(dind_image("docker:24", true).is_some());
        assert!(dind_image("docker:24", false).is_none());
        assert!(dind_image("nginx:1.25", true).is_none());
        assert!(dind_image("registry.local:5000/dinder:1", false).is_none());
    }

    #[test]
    fn images_split_at_tag() {
        assert_eq!(
            split_image("registry.local:5000/app:1"),
            ("registry.local:5000/app", "1")
        );
        assert_eq!(split_image("docker@sha256:ab"), ("docker", ""));
        assert_eq!(split_image("docker"), ("docker", ""));
    }

    #[test]
    fn host_paths_classified() {
        assert_eq!(
            host_path_kind("/var/run/docker.sock"),
            Some(FindingKind::DockerSocket)
        );
        assert_eq!(
            host_path_kind("/run/docker.sock"),
            Some(FindingKind::DockerSocket)
        );
        assert_eq!(
            host_path_kind("/var/lib/docker/containers"),
            Some(FindingKind::DockerDataDir)
        );
        assert_eq!(host_path_kind("/var/lib/dockerish"), None);
        assert_eq!(host_path_kind("/var/run/containerd/containerd.sock"), None);
    }
}
