//! The container image that runs the plugins' node agents (`kubectl-migrate agent`,
//! `kubectl-bwlimit agent`), built from the repository's `Dockerfile`.

/// Image repository of the agent image; the tag is the plugins' version.
pub const AGENT_IMAGE_REPOSITORY: &str = "ghcr.io/kubectl-plugins/kubectl-plugins-agent";

/// Returns the default agent image reference, `AGENT_IMAGE_REPOSITORY:<version>`.
/// Every command that starts an agent pod lets `--agent-image` override it.
pub fn default_agent_image() -> String {
    format!("{AGENT_IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}
