//! The four plugins as the manifests describe them, and their versions from Cargo metadata.

use std::process::Command;

use serde::Deserialize;

use crate::{Error, IoContext, Result, workspace_root};

/// Manifest fields of one plugin other than its platforms.
#[derive(Debug, Clone, Copy)]
pub struct PluginInfo {
    /// Name after `kubectl-`; also the manifest's `metadata.name`.
    pub name: &'static str,
    /// krew's one-line summary shown by `kubectl krew search`.
    pub short_description: &'static str,
    /// Longer description shown by `kubectl krew info`.
    pub description: &'static str,
    /// Cluster requirements printed after installation; `None` when the plugin needs nothing there.
    pub caveats: Option<&'static str>,
}

/// The plugins of the workspace, in the order `dist` builds them.
pub const PLUGINS: [PluginInfo; 4] = [
    PluginInfo {
        name: "migrate",
        short_description: "Back up and restore resources and volume data",
        description: "Backs up Kubernetes resources and persistent volume data to S3-compatible\n\
            storage (KS3, AWS S3, MinIO) or a local folder, and restores them into the same or\n\
            another cluster.",
        caveats: Some(
            "Copying volume data runs short-lived agent pods from the image\n\
             ghcr.io/kubectl-plugins/kubectl-plugins-agent (override with --agent-image).\n\
             Your account needs permission to create pods in the namespaces you back up,\n\
             and the nodes must be able to pull the agent image.",
        ),
    },
    PluginInfo {
        name: "canary",
        short_description: "Canary releases with ingress-nginx or Gateway API",
        description: "Runs canary releases by shifting traffic between a stable and a canary\n\
            Service through ingress-nginx canary annotations or Gateway API HTTPRoute weights.",
        caveats: Some(
            "Needs the ingress-nginx controller, or the Gateway API CRDs with a controller\n\
             that implements HTTPRoute weights, in the cluster.",
        ),
    },
    PluginInfo {
        name: "bwlimit",
        short_description: "Limit pod bandwidth, live through a node agent",
        description: "Sets pod ingress and egress bandwidth limits through the kubernetes.io\n\
            bandwidth annotations, and applies them to running pods through a short-lived node\n\
            agent that programs tc qdiscs over netlink.",
        caveats: Some(
            "Live changes run an agent pod on the target pod's node with hostNetwork, hostPID\n\
             and the NET_ADMIN, SYS_ADMIN and SYS_PTRACE capabilities, from the image\n\
             ghcr.io/kubectl-plugins/kubectl-plugins-agent (override with --agent-image).\n\
             The agent namespace must allow privileged pods (Pod Security level privileged).",
        ),
    },
    PluginInfo {
        name: "crimap",
        short_description: "Map docker to crictl and find Docker dependencies",
        description: "Translates docker command lines to crictl (and back), prints the\n\
            docker-to-crictl mapping, shows each node's container runtime and finds workloads\n\
            or manifests that still depend on Docker.",
        caveats: None,
    },
];

/// Looks up a plugin by name.
pub fn find(name: &str) -> Option<PluginInfo> {
    PLUGINS.iter().copied().find(|plugin| plugin.name == name)
}

/// Version and homepage of the workspace as Cargo reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceInfo {
    /// `workspace.package.version` (the plugins share it), without a `v`.
    pub version: String,
    /// `workspace.package.homepage`.
    pub homepage: String,
    /// `workspace.package.repository`, whose releases page hosts the archives.
    pub repository: String,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    homepage: Option<String>,
    repository: Option<String>,
}

/// Reads the plugins' version, homepage and repository with `cargo metadata`, and checks
/// that the four plugins agree on them.
pub fn workspace_info() -> Result<WorkspaceInfo> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context(|| "failed to run cargo metadata".to_string())?;
    if !output.status.success() {
        return Err(Error::Failed(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout)
        .map_err(|error| Error::Failed(format!("invalid cargo metadata output: {error}")))?;
    info_from_packages(&metadata.packages)
}

fn info_from_packages(packages: &[Package]) -> Result<WorkspaceInfo> {
    let mut found: Option<WorkspaceInfo> = None;
    for plugin in PLUGINS {
        let package_name = format!("kubectl-{}", plugin.name);
        let package = packages
            .iter()
            .find(|package| package.name == package_name)
            .ok_or_else(|| {
                Error::Failed(format!("package {package_name} is not in the workspace"))
            })?;
        let missing = |field: &str| {
            Error::Failed(format!(
                "package {package_name} has no {field}: add {field}.workspace = true to its Cargo.toml"
            ))
        };
        let info = WorkspaceInfo {
            version: package.version.clone(),
            homepage: package
                .homepage
                .clone()
                .ok_or_else(|| missing("homepage"))?,
            repository: package
                .repository
                .clone()
                .ok_or_else(|| missing("repository"))?,
        };
        match &found {
            Some(first) if *first != info => {
                return Err(Error::Failed(format!(
                    "package {package_name} has version {} and homepage {}, unlike the other plugins ({} and {}): the manifests need one version",
                    info.version, info.homepage, first.version, first.homepage
                )));
            }
            _ => found = Some(info),
        }
    }
    found.ok_or_else(|| Error::Failed("no plugins in the workspace".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str) -> Package {
        Package {
            name: name.to_string(),
            version: version.to_string(),
            homepage: Some("https://example.test/home".to_string()),
            repository: Some("https://example.test/repo".to_string()),
        }
    }

    #[test]
    fn plugins_must_share_version() {
        let packages: Vec<Package> = ["migrate", "canary", "bwlimit", "crimap"]
            .iter()
            .map(|name| {
                let version = if *name == "crimap" { "0.2.0" } else { "0.1.0" };
                package(&format!("kubectl-{name}"), version)
            })
            .collect();
        let error = info_from_packages(&packages).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("package kubectl-crimap has version 0.2.0")
        );
    }

    #[test]
    fn workspace_info_read_from_cargo() {
        let info = workspace_info().unwrap();
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert!(info.homepage.starts_with("https://"));
    }

    #[test]
    fn short_descriptions_fit_krew_search() {
        for plugin in PLUGINS {
            assert!(
                plugin.short_description.len() <= 50,
                "{}: {} characters",
                plugin.name,
                plugin.short_description.len()
            );
        }
    }
}
