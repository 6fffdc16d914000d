//! `cargo xtask dist`: build the plugins for this machine, pack their archives, write
//! `SHA256SUMS` and render the krew manifests for all six platforms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::archive::{archive_name, parse_checksums, plugin_entries, sha256_file, write_tar_gz};
use crate::manifest::{self, PlatformEntry};
use crate::platform::{PLATFORMS, Platform};
use crate::plugins::{PLUGINS, workspace_info};
use crate::{Error, IoContext, Result, workspace_root};

/// Options of `dist`.
#[derive(Debug, Clone)]
pub struct DistOptions {
    /// Cargo profile to build: `release` for publishing, `dev` for quick checks.
    pub profile: String,
    /// Cargo target folder; `None` uses the workspace's.
    pub target_dir: Option<PathBuf>,
    /// Folder for the archives and `SHA256SUMS`.
    pub out: PathBuf,
    /// Folder for the rendered manifests.
    pub manifests: PathBuf,
    /// `sha256sum` files with the checksums of archives built on other machines.
    pub checksums: Vec<PathBuf>,
    /// Pack binaries that are already built instead of running cargo build.
    pub skip_build: bool,
}

/// Output of `dist`.
#[derive(Debug, Clone)]
pub struct DistOutput {
    /// The platform built here.
    pub platform: Platform,
    /// Archives written, with their SHA-256.
    pub archives: Vec<(PathBuf, String)>,
    /// Manifests written.
    pub manifests: Vec<PathBuf>,
    /// Platforms left pending in the manifests, because no checksum was given for them.
    pub pending: Vec<String>,
}

/// Runs the whole release step for this machine's platform.
pub fn run(options: &DistOptions) -> Result<DistOutput> {
    let platform = Platform::host().ok_or_else(|| {
        Error::Failed(format!(
            "cannot build release archives on {}/{}: krew manifests list only linux, darwin and windows on amd64 and arm64",
            std::env::consts::OS,
            std::env::consts::ARCH
        ))
    })?;
    let info = workspace_info()?;
    let bin_dir = binary_dir(options);
    if !options.skip_build {
        build(options)?;
    }

    // Archives of this platform.
    std::fs::create_dir_all(&options.out)
        .context(|| format!("failed to create {}", options.out.display()))?;
    let license = workspace_root().join("LICENSE");
    let mut checksums: BTreeMap<String, String> = BTreeMap::new();
    let mut archives = Vec::new();
    for plugin in PLUGINS {
        let path = options
            .out
            .join(archive_name(plugin.name, &info.version, platform));
        write_tar_gz(
            &path,
            &plugin_entries(plugin.name, platform, &bin_dir, &license),
        )?;
        let hash = sha256_file(&path)?;
        checksums.insert(file_name(&path), hash.clone());
        archives.push((path, hash));
    }
    write_sums(&options.out.join("SHA256SUMS"), &checksums)?;

    // Checksums of the other platforms, from the release pipeline's other builders.
    for file in &options.checksums {
        let text = std::fs::read_to_string(file)
            .context(|| format!("failed to read {}", file.display()))?;
        for (name, hash) in parse_checksums(&text, &file.display().to_string())? {
            if let Some(built) = checksums.get(&name)
                && *built != hash
            {
                return Err(Error::Failed(format!(
                    "{} gives {name} the sha256 {hash}, but the archive built here has {built}",
                    file.display()
                )));
            }
            checksums.insert(name, hash);
        }
    }

    // Manifests for all six platforms.
    std::fs::create_dir_all(&options.manifests)
        .context(|| format!("failed to create {}", options.manifests.display()))?;
    let mut manifests = Vec::new();
    let mut pending = Vec::new();
    for plugin in PLUGINS {
        let entries: Vec<PlatformEntry> = PLATFORMS
            .iter()
            .map(|platform| {
                let archive = archive_name(plugin.name, &info.version, *platform);
                PlatformEntry {
                    platform: *platform,
                    uri: release_uri(&info.repository, &info.version, &archive),
                    sha256: checksums.get(&archive).cloned(),
                }
            })
            .collect();
        let text = manifest::render(&plugin, &info.version, &info.homepage, &entries);
        let path = options.manifests.join(format!("{}.yaml", plugin.name));
        std::fs::write(&path, &text).context(|| format!("failed to write {}", path.display()))?;
        let validated = manifest::validate(&manifest::parse(&text, &path)?, &path, true)?;
        pending.extend(
            validated
                .pending
                .iter()
                .map(|platform| format!("{}/{platform}", plugin.name)),
        );
        manifests.push(path);
    }

    Ok(DistOutput {
        platform,
        archives,
        manifests,
        pending,
    })
}

/// Returns the download URI of an archive on the repository's GitHub releases page.
pub fn release_uri(repository: &str, version: &str, archive: &str) -> String {
    format!(
        "{}/releases/download/v{version}/{archive}",
        repository.trim_end_matches('/')
    )
}

fn binary_dir(options: &DistOptions) -> PathBuf {
    let target = options.target_dir.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
    });
    // Cargo names the output folder of the dev profile "debug".
    let folder = if options.profile == "dev" {
        "debug"
    } else {
        options.profile.as_str()
    };
    target.join(folder)
}

fn build(options: &DistOptions) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--bins", "--profile", &options.profile]);
    for plugin in PLUGINS {
        command.args(["-p", &format!("kubectl-{}", plugin.name)]);
    }
    if let Some(target_dir) = &options.target_dir {
        command.arg("--target-dir").arg(target_dir);
    }
    let status = command
        .status()
        .context(|| "failed to run cargo build".to_string())?;
    if !status.success() {
        return Err(Error::Failed(format!(
            "cargo build --profile {} of the plugins failed ({status})",
            options.profile
        )));
    }
    Ok(())
}

fn write_sums(path: &Path, checksums: &BTreeMap<String, String>) -> Result<()> {
    let text: String = checksums
        .iter()
        .map(|(name, hash)| format!("{hash}  {name}\n"))
        .collect();
    std::fs::write(path, text).context(|| format!("failed to write {}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_on_releases_page() {
        assert_eq!(
            release_uri(
                "https://github.com/o/r/",
                "0.1.0",
                "kubectl-a-v0.1.0-linux-amd64.tar.gz"
            ),
            "https://github.com/o/r/releases/download/v0.1.0/kubectl-a-v0.1.0-linux-amd64.tar.gz"
        );
    }
}
